"""What this machine's CPU offers (/proc/cpuinfo: x86 'flags', Arm 'Features') and how many runtime threads to use."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[frozenset[str], float]:
    flags: frozenset[str] = frozenset()
    mhz = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")) and not flags:
                flags = frozenset(line.split(":", 1)[1].split())
            elif line.startswith("cpu MHz") and not mhz:
                mhz = float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return flags, mhz


def host_cpu_flags() -> set[str]:
    """CPU feature flags; empty when unknown."""
    return set(_cpuinfo()[0])


def cpu_mhz() -> float:
    """Nominal clock of the first core in MHz; 0 when unknown."""
    return _cpuinfo()[1]


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
