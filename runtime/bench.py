"""Latency measurement shared by every runtime in a benchmark: same inputs, same clock."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


@dataclass
class Timing:
    runtime: str
    batch: int
    runs: int
    median_ms: float
    p10_ms: float
    p90_ms: float

    @property
    def images_per_s(self) -> float:
        return 1e3 * self.batch / self.median_ms if self.median_ms > 0 else float("inf")

    @classmethod
    def from_samples(cls, name: str, batch: int, samples_ms) -> "Timing":
        a = np.asarray(samples_ms, dtype=np.float64)
        return cls(name, batch, len(a), float(np.median(a)), float(np.percentile(a, 10)),
                   float(np.percentile(a, 90)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["images_per_s"] = self.images_per_s
        return d


def time_callable(name: str, fn: Callable[[np.ndarray], object], x: np.ndarray, runs: int = 20,
                  warmup: int = 3, max_seconds: float | None = None) -> Timing:
    """Median and spread of wall time per call; ``max_seconds`` caps very slow runtimes."""
    for _ in range(warmup):
        fn(x)
    samples = []
    start = time.perf_counter()
    for _ in range(runs):
        t = time.perf_counter()
        fn(x)
        samples.append(1e3 * (time.perf_counter() - t))
        if max_seconds is not None and time.perf_counter() - start > max_seconds and len(samples) >= 3:
            break
    return Timing.from_samples(name, len(x), samples)
