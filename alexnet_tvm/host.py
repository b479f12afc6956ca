"""What this machine's CPU is and offers (/proc/cpuinfo: x86 'flags', Arm 'Features'; LLVM's name for it),
the x86 microarchitectures tuning records are filed under, and how many runtime threads to use."""

from __future__ import annotations

import datetime as _dt
import functools
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

#: a test (or a user checking what another CPU would get) names the host CPU instead of LLVM
HOST_CPU_ENV = "ALEXNET_TVM_HOST_CPU"


@dataclass(frozen=True)
class CpuInfo:
    """The first core's entry of /proc/cpuinfo; empty fields when unknown (not Linux, not x86)."""

    flags: frozenset[str] = frozenset()
    mhz: float = 0.0
    vendor: str = ""
    family: int = 0
    model: int = 0
    model_name: str = ""


_CPUINFO_KEYS = {"flags": "flags", "Features": "flags", "cpu MHz": "mhz", "vendor_id": "vendor",
                 "cpu family": "family", "model": "model", "model name": "model_name"}


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> CpuInfo:
    fields: dict = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            name = _CPUINFO_KEYS.get(key.strip())
            if name is None or name in fields:
                continue  # the first core's values only
            value = value.strip()
            fields[name] = (frozenset(value.split()) if name == "flags" else float(value) if name == "mhz"
                            else int(value) if name in ("family", "model") else value)
    except (OSError, ValueError):
        pass
    return CpuInfo(**fields)


def host_cpu_flags() -> set[str]:
    """CPU feature flags; empty when unknown."""
    return set(_cpuinfo().flags)


def cpu_mhz() -> float:
    """Nominal clock of the first core in MHz; 0 when unknown."""
    return _cpuinfo().mhz


def cpu_model() -> str:
    """The CPU model string ("model name" of /proc/cpuinfo), for reports; "" when unknown."""
    return _cpuinfo().model_name


def fp32_lanes_per_fma() -> int:
    """fp32 lanes one FMA pipe retires per cycle. AMD Zen 4 (family 0x19) runs AVX-512 as two
    256-bit halves, so its AVX-512 FMA does 8 lanes a cycle, not 16; Zen 5 and Intel do 16."""
    info = _cpuinfo()
    if "avx512f" in info.flags:
        return 8 if info.vendor == "AuthenticAMD" and info.family == 0x19 else 16
    return 8 if "avx2" in info.flags else 4


def l3_cache_bytes() -> int | None:
    """Size of the L3 cache the first core sees (one CCX on AMD, the socket on Intel); None when unknown."""
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
        return int(text.rstrip("KMGkmg")) * scale
    except (OSError, ValueError):
        pass
    try:
        size = os.sysconf("SC_LEVEL3_CACHE_SIZE")
    except (ValueError, OSError):
        return None
    return size if size > 0 else None


# --------------------------------------------------------------------------- which CPU this is


@functools.lru_cache(maxsize=1)
def _llvm_system_cpu() -> str:
    try:
        import tvm
    except ImportError:
        return ""
    return str(tvm.get_global_func("target.llvm_get_system_cpu")())


def host_cpu_name() -> str:
    """LLVM's name for this CPU (``znver4``, ``sapphirerapids``; ``generic`` when LLVM does not
    know it): the name tuning records are filed under, and what ``--target auto`` compiles for.
    ``$ALEXNET_TVM_HOST_CPU`` overrides it, read afresh each call."""
    return os.environ.get(HOST_CPU_ENV) or _llvm_system_cpu()


def describe_cpu(name: str | None = None) -> dict:
    """What a record set's cpu.json says about the machine that timed it: this machine's
    /proc/cpuinfo under LLVM's name for it (``name``: the host's unless given)."""
    info = _cpuinfo()
    return {"llvm_cpu": name or host_cpu_name(), "model_name": info.model_name, "vendor": info.vendor,
            "family": info.family, "model": info.model, "date": _dt.date.today().isoformat()}


@dataclass(frozen=True)
class Microarch:
    """One x86 microarchitecture by its LLVM name: who makes it, where it stands in that
    vendor's line, and the widest vector ISA a target family may assume of it."""

    name: str
    vendor: str
    generation: int
    isa: str  # "avx512" or "avx2"


#: LLVM CPU names per vendor, oldest first: "nearest" record sets and ``--target auto``'s mcpu
#: both read this one table. Client and server lines are interleaved by release.
GENERATIONS = {
    "AuthenticAMD": ("znver1", "znver2", "znver3", "znver4", "znver5"),
    "GenuineIntel": ("haswell", "broadwell", "skylake", "skylake-avx512", "cascadelake", "cooperlake",
                     "icelake-client", "icelake-server", "tigerlake", "rocketlake", "alderlake", "sapphirerapids",
                     "raptorlake", "meteorlake", "emeraldrapids", "arrowlake", "graniterapids"),
}
_AVX512 = frozenset({"znver4", "znver5", "skylake-avx512", "cascadelake", "cooperlake", "icelake-client",
                     "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids", "graniterapids"})


def microarch(name: str) -> Microarch | None:
    """The table's entry for an LLVM CPU name; None for a CPU it does not know (``generic``, Arm, a typo)."""
    for vendor, names in GENERATIONS.items():
        if name in names:
            return Microarch(name, vendor, names.index(name), "avx512" if name in _AVX512 else "avx2")
    return None


THREADS_ENV = "TVM_NUM_THREADS"
#: cgroup v2's CPU limit of this process's group ("max 100000": none; "150000 100000": 1.5 CPUs)
CGROUP_ROOT = Path("/sys/fs/cgroup")


def quota_cores(cpu_max: str) -> int | None:
    """Whole cores a cgroup v2 ``cpu.max`` line ("QUOTA PERIOD") allows, rounded up; None without a limit."""
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return max(1, -(-quota // period)) if quota > 0 and period > 0 else None


def _cgroup_quota_cores() -> int | None:
    """The CPU quota of this process's cgroup (v2, or v1's cfs quota), in whole cores; None when unlimited."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, _, path = line.partition("::")
        if hierarchy == "0":  # v2: the group's own file, then the namespace root's
            for folder in (CGROUP_ROOT / path.lstrip("/"), CGROUP_ROOT):
                try:
                    return quota_cores((folder / "cpu.max").read_text())
                except OSError:
                    continue
    try:  # v1
        quota = int((CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((CGROUP_ROOT / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_cores(f"{quota} {period}") if quota > 0 else None


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (``taskset``, a container's cpuset)
    and its cgroup's CPU quota (``docker --cpus``), not the machine's total. What ``--target auto``
    compiles for and the most threads a library runs on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota_cores()
    return max(1, min(cores, quota) if quota else cores)


def runtime_threads(num_cores: int | None) -> int | None:
    """Threads the TVM runtime should use for a library built for ``num_cores``.

    Without TVM_NUM_THREADS, TVM's thread pool takes half the logical CPUs on x86 (it assumes
    hyper-threading). On a VM whose vCPUs are all real cores that runs a 2-core library on one
    thread, and MetaSchedule would measure every candidate that way: tuned schedules then lose
    their parallel loops (measured: conv2 32 ms on one thread and on two). A user's own
    TVM_NUM_THREADS wins; ``None`` means leave TVM's default. Never more threads than
    :func:`usable_cores`: a library built for 16 cores runs on a 2-core host's 2.
    """
    if os.environ.get(THREADS_ENV) or not num_cores:
        return None
    return max(1, min(int(num_cores), usable_cores()))


def use_threads(num_cores: int | None) -> None:
    """Set the runtime's thread count before its pool starts (it reads the variable once, and
    worker processes inherit it)."""
    n = runtime_threads(num_cores)
    if n is not None:
        os.environ[THREADS_ENV] = str(n)


@contextmanager
def tvm_threads_env(threads: int | None) -> Iterator[None]:
    """TVM_NUM_THREADS set to ``threads`` inside (left as it is for None), as it was after: TVM
    reads it when a thread's pool starts, at each parallel launch and in worker processes, and a
    later job in this process must not inherit it."""
    before = os.environ.get(THREADS_ENV)
    if threads is not None:
        os.environ[THREADS_ENV] = str(threads)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = before


@functools.lru_cache(maxsize=1)
def local_gpu_name() -> str | None:
    """This machine's first CUDA GPU as a plain name (``NVIDIA H100 80GB HBM3`` ->
    ``NVIDIA_H100_80GB_HBM3``), None without one: GPU records are kept per GPU model, since a
    schedule timed on one card (clocks, memory, SM count) is not the best on another."""
    try:
        import tvm

        dev = tvm.cuda(0)
        if not dev.exist:
            return None
        from .schemas import plain_name

        return plain_name(str(dev.device_name))
    except Exception:  # noqa: BLE001 - a TVM without CUDA raises assorted errors: no GPU here
        return None
