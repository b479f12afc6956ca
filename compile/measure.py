"""How tuning candidates are timed: cold weights on a local CPU, warm repeats elsewhere.

Tried on the Zen 3 and dropped: timing a candidate slower than 150 ms fewer times. The one adapt
run with it searched at 1.91 s per trial at batch 16; no run without it was timed beside it, so
no gain was shown, and a round's time went mostly to the search and the builds.
"""

from __future__ import annotations

from alexnet_tvm.targets import TargetSpec


def evaluator_config(target: TargetSpec):
    """How a candidate is timed. On a local CPU every timed run starts with the weights flushed
    from the caches: in the model, the FC layers stream 234 MB of weights per inference through
    a 32 MB L3, so no kernel finds its weights in cache. Timed warm (repeated back to back),
    a 16 MB FC layer fits in L3 and MetaSchedule picks schedules that are fast only from cache:
    FC3 measured 0.31 ms warm and ran 1.69 ms inside the model (ONNX Runtime's: 0.69 ms).
    The activations (each kernel's first argument) stay warm, as they are in the model.
    Elsewhere (GPU, RPC boards) runs repeat warm."""
    from tvm.s_tir import meta_schedule as ms

    if target.is_cpu and target.runner == "local":
        return ms.runner.EvaluatorConfig(number=1, repeat=7, min_repeat_ms=0, enable_cpu_cache_flush=True)
    return ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50, enable_cpu_cache_flush=False)


def make_runner(target: TargetSpec, boards: int | None = None):
    """The runner for ``target``: RPC for a board (checked first; one worker per board, ``boards``
    or every free one), else the local runner."""
    from tvm.s_tir import meta_schedule as ms

    cfg = evaluator_config(target)
    if target.runner == "rpc":
        from .rpc import make_rpc_runner

        return make_rpc_runner(target, cfg, boards)
    return ms.runner.LocalRunner(timeout_sec=60, evaluator_config=cfg)
