"""Latency measurement shared by every runtime in a benchmark: same inputs, same clock."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, TypeVar

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


def rounds_for(runs: int, rounds: int = 3, min_per_round: int = 5) -> int:
    """How many rounds ``runs`` samples are split into: at most ``rounds``, each of at least
    ``min_per_round`` samples (fewer runs: one block, as time_callable)."""
    return max(1, min(rounds, runs // min_per_round))


def time_in_rounds(fns: dict[str, Callable[[np.ndarray], object]], x: np.ndarray, runs: int = 30,
                   rounds: int = 3, warmup: int = 3) -> dict[str, Timing]:
    """Every runtime's ``runs`` samples, taken in ``rounds`` blocks that the runtimes take turns
    at (the order rotating each round), pooled into one median per runtime.

    Why: on a shared machine the noise comes in bursts of seconds. With one block per runtime,
    a burst lands on one runtime's block and its ratio to the others moves by 10-20 %
    (docs/performance.md, "Noise"); spread over the whole run, every runtime sees the same
    bursts. Each block starts with ``warmup`` calls: a runtime's first call after another's
    pays for waking its thread pool (interleaving call by call cost TVM 3x at batch 1)."""
    n = rounds_for(runs, rounds)
    per_round = [runs // n + (1 if r < runs % n else 0) for r in range(n)]
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r, count in enumerate(per_round):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn = fns[name]
            for _ in range(warmup):
                fn(x)
            for _ in range(count):
                t = time.perf_counter()
                fn(x)
                samples[name].append(1e3 * (time.perf_counter() - t))
    return {name: Timing.from_samples(name, len(x), samples[name]) for name in names}


T = TypeVar("T")


def with_tvm_threads(threads: int, fn: Callable[[], T]) -> T:
    """``fn()`` on a fresh thread whose TVM thread pool runs ``threads`` threads.

    TVM's pool is per calling thread and sized once, when that thread first runs a parallel
    loop (TVM_NUM_THREADS read then; ``runtime.config_threadpool`` can only lower the count,
    and it re-pins the calling thread, which the other runtimes' threads would inherit). A new
    thread with the variable set gets a new pool of exactly ``threads``, whatever this process
    ran before."""
    from alexnet_tvm.host import tvm_threads_env

    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller
            box["error"] = e

    with tvm_threads_env(threads):
        worker = threading.Thread(target=run, name=f"bench-{threads}-threads", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.2)  # a short wait: Ctrl-C reaches the main thread
    if "error" in box:
        raise box["error"]
    return box["value"]


def tvm_pool_threads() -> int:
    """The threads TVM's pool of the calling thread runs parallel loops on."""
    import tvm

    return int(tvm.runtime.num_threads())
