"""DLight's default GPU schedules, applied kernel by kernel with the rule that took each one named.

What a GPU kernel without a tuning record runs is DLight's first rule that takes it (the
order of :func:`default_rules`). ``Fallback`` takes anything, with one generic block/thread
mapping; it is fine for pools and reshapes but slow for a conv or FC layer, so a build
that leaves one there should be visible: :func:`schedule_defaults` returns the rule per
kernel, ``build`` logs the heavy kernels it left to ``Fallback``, and the compile-only
test (tests/test_cuda_compile.py) fails on one.

The loop mirrors ``dlight.ApplyDefaultSchedule`` (which keeps no record of the rule).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

FALLBACK = "Fallback"
#: the rule name recorded for a kernel that already had a schedule (a tuning record)
TUNED = "tuned"
#: substrings of a kernel's name that mark a conv or fully connected layer (fused_conv2d..., fused_dense...)
HEAVY = ("conv2d", "dense", "matmul")


def default_rules() -> list:
    """The rules, first match wins: GEMM, GEMV, reductions, then the generic fallback."""
    from tvm.s_tir import dlight as dl

    return [dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(), dl.gpu.Fallback()]


def _scheduled(func) -> bool:
    return bool(func.attrs and "tirx.is_scheduled" in func.attrs and int(func.attrs["tirx.is_scheduled"]) == 1)


def schedule_defaults(mod, target) -> tuple[object, dict[str, str]]:
    """(``mod`` with every unscheduled PrimFunc scheduled by the first rule that takes it,
    {kernel name: rule class name, or :data:`TUNED`}); a kernel no rule takes keeps its loops."""
    from tvm import tirx

    rules = default_rules()
    taken: dict[str, str] = {}
    updated = {}
    for gv, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        if _scheduled(func):
            taken[gv.name_hint] = TUNED
            continue
        for rule in rules:
            space = rule.apply(func, target, False)
            if space is None:
                continue
            sch = space[0] if isinstance(space, list) else space
            updated[gv] = sch.mod["main"].with_attr("tirx.is_scheduled", True)
            taken[gv.name_hint] = type(rule).__name__
            break
    mod = mod.clone()  # the caller's module stays as it was
    for gv, func in updated.items():
        mod[gv] = func
    return mod, taken


def heavy_fallbacks(taken: dict[str, str]) -> list[str]:
    """The conv and FC kernels that only the generic ``Fallback`` rule took."""
    return sorted(name for name, rule in taken.items() if rule == FALLBACK and any(h in name for h in HEAVY))


def uses_tensor_cores(func) -> bool:
    """Whether a scheduled PrimFunc computes with tensor-core (WMMA/MMA) intrinsics."""
    text = func.script()
    return "wmma" in text or "mma_sync" in text or "ptx_mma" in text
