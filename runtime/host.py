"""What this machine's CPU offers, read once from /proc/cpuinfo (x86 'flags', Arm 'Features')."""

from __future__ import annotations

import functools
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
