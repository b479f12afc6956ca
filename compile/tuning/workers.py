"""A MetaSchedule builder whose worker processes stay warm for the whole tuning run.

The stock LocalBuilder starts a fresh process pool for every batch of candidates, and its
build function imports ``tvm.s_tir.tensor_intrin`` (every target's tensor intrinsics) in each
fresh worker: ~25 s on the Xeon, 77 s on the Zen 3, inside a 30 s build timeout, so every
build timed out and nothing was recorded. Here the pool lives until the run ends, and
:func:`build_candidate` builds without that import: a candidate reaches the builder already
scheduled, a tensorized block inlined as its implementation, so the build never looks an
intrinsic up (int8 GEMMs included; our VNNI intrinsic was never registered in these workers).
"""

from __future__ import annotations

import logging

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.builder import local_builder as _lb
from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

log = logging.getLogger(__name__)


def build_candidate(mod, target, _params):
    """MetaSchedule's default build (the layout-rewrite blocks dropped, then ``tvm.build``)
    without its import of every tensor intrinsic."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


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
            self._pool = PopenPoolExecutor(max_workers=self.max_workers, timeout=self.timeout_sec)
        return self._pool

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        jobs = [(build_candidate, self.f_export, b.mod, b.target, _lb._serialize_params(b.params)) for b in build_inputs]
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
