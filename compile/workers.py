"""A MetaSchedule builder whose worker processes stay warm for the whole tuning run.

The stock LocalBuilder starts a fresh process pool for every batch of candidates,
and each fresh worker spends ~25 s importing ``tvm.s_tir.tensor_intrin`` inside the
30 s build timeout: every build times out and nothing is recorded. Here the import
runs once per worker, in the initializer (outside the timeout), and the pool lives
until the run ends.
"""

from __future__ import annotations

import logging

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.builder import local_builder as _lb
from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

log = logging.getLogger(__name__)


def warm_worker() -> None:
    """Runs once in each builder worker: the slow import every build needs."""
    import tvm.s_tir.tensor_intrin  # noqa: F401


@derived_object
class WarmBuilder(PyBuilder):
    def __init__(self, max_workers: int = 2, timeout_sec: float = 120.0, f_export=None) -> None:
        super().__init__()
        self.f_export = f_export
        self.max_workers = max_workers
        self.timeout_sec = timeout_sec
        self._pool: PopenPoolExecutor | None = None

    def _executor(self) -> PopenPoolExecutor:
        if self._pool is None:
            log.info("starting %d warm builder workers", self.max_workers)
            self._pool = PopenPoolExecutor(max_workers=self.max_workers, timeout=self.timeout_sec,
                                           initializer=warm_worker)
        return self._pool

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        jobs = [(None, self.f_export, b.mod, b.target, _lb._serialize_params(b.params)) for b in build_inputs]
        results: list[BuilderResult] = []
        for r in self._executor().map_with_error_catching(lambda x: _lb._worker_func(*x), jobs):
            if r.status == StatusKind.COMPLETE:
                results.append(BuilderResult(r.value, None))
            elif r.status == StatusKind.TIMEOUT:
                results.append(BuilderResult(None, f"build timed out after {self.timeout_sec} s"))
            else:
                results.append(BuilderResult(None, f"build failed: {r.value}"))
        return results

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
