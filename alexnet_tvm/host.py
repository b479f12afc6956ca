"""What this machine's CPU offers (/proc/cpuinfo: x86 'flags', Arm 'Features') and how many runtime threads to use."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[frozenset[str], float, str, int]:
    flags: frozenset[str] = frozenset()
    mhz = 0.0
    vendor, family = "", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")) and not flags:
                flags = frozenset(line.split(":", 1)[1].split())
            elif line.startswith("cpu MHz") and not mhz:
                mhz = float(line.split(":", 1)[1])
            elif line.startswith("vendor_id") and not vendor:
                vendor = line.split(":", 1)[1].strip()
            elif line.startswith("cpu family") and not family:
                family = int(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return flags, mhz, vendor, family


def host_cpu_flags() -> set[str]:
    """CPU feature flags; empty when unknown."""
    return set(_cpuinfo()[0])


def cpu_mhz() -> float:
    """Nominal clock of the first core in MHz; 0 when unknown."""
    return _cpuinfo()[1]


def fp32_lanes_per_fma() -> int:
    """fp32 lanes one FMA pipe retires per cycle. AMD Zen 4 (family 0x19) runs AVX-512 as two
    256-bit halves, so its AVX-512 FMA does 8 lanes a cycle, not 16; Zen 5 and Intel do 16."""
    flags, _, vendor, family = _cpuinfo()
    if "avx512f" in flags:
        return 8 if vendor == "AuthenticAMD" and family == 0x19 else 16
    return 8 if "avx2" in flags else 4


THREADS_ENV = "TVM_NUM_THREADS"


def runtime_threads(num_cores: int | None) -> int | None:
    """Threads the TVM runtime should use for a library built for ``num_cores``.

    Without TVM_NUM_THREADS, TVM's thread pool takes half the logical CPUs on x86 (it assumes
    hyper-threading). On a VM whose vCPUs are all real cores that runs a 2-core library on one
    thread, and MetaSchedule would measure every candidate that way: tuned schedules then lose
    their parallel loops (measured: conv2 32 ms on one thread and on two). A user's own
    TVM_NUM_THREADS wins; ``None`` means leave TVM's default.
    """
    if os.environ.get(THREADS_ENV) or not num_cores:
        return None
    return max(1, min(int(num_cores), os.cpu_count() or 1))


def use_threads(num_cores: int | None) -> None:
    """Set the runtime's thread count before its pool starts (it reads the variable once, and
    worker processes inherit it)."""
    n = runtime_threads(num_cores)
    if n is not None:
        os.environ[THREADS_ENV] = str(n)
