"""The Relax passes around tuning, shared by `tune` and `build` so database keys match.

prepare():  bring every exporter's graph to one canonical form (canonical.py), optionally
            convert the convs to NHWC, on a GPU make the FC layers dense kernels
            (cuda_gemm.py), then decompose, legalize, fuse (the `zero` pipeline) and,
            on CPU, mark weight buffers layout-free so MetaSchedule may choose a packed
            weight layout.
lower():    apply the tuning records, split the weight repacking out of `main` into
            `main_transform_params` (run once at build time), then compile.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def is_gpu(target) -> bool:
    return "gpu" in [str(k) for k in target.keys]


def prepare(mod, target, conv_layout: str = "NCHW", winograd_tile: int = 0):
    """``conv_layout="NHWC"`` puts channels innermost, where MetaSchedule's CPU tiling
    vectorizes them (64-384 channels, multiples of 16); in NCHW its innermost loop is the
    output width (55, 27 or 13 in AlexNet), which vectorizes badly. The kernels stay OIHW:
    a permuted kernel would be a computed value, not a parameter, and lose its layout-free
    mark. The input and the flatten get one transpose each. ``winograd_tile`` > 0 then
    turns the 3x3 convs into Winograd convolutions (see winograd.py)."""
    import tvm
    from tvm import relax
    from tvm.relax import transform as T

    from .canonical import canonicalize
    from ..winograd import winograd_convs

    passes = [tvm.transform.module_pass(lambda m, _ctx: canonicalize(m), opt_level=0, name="Canonicalize")]
    if conv_layout == "NHWC":
        passes.append(T.ConvertLayout({"relax.nn.conv2d": ["NHWC", "OIHW"]}))
    if winograd_tile:
        passes.append(tvm.transform.module_pass(lambda m, _ctx: winograd_convs(m, winograd_tile), opt_level=0,
                                                name="WinogradConvs"))
    if is_gpu(target):
        from .cuda_gemm import dense_fcs

        passes.append(tvm.transform.module_pass(lambda m, _ctx: dense_fcs(m), opt_level=0, name="DenseFCs"))
    passes += [T.DecomposeOpsForInference(), T.CanonicalizeBindings(), relax.get_pipeline("zero")]
    if not is_gpu(target):
        from .layout_free import mark_computed_weights

        passes += [T.AttachAttrLayoutFreeBuffers(),
                   tvm.transform.module_pass(lambda m, _ctx: mark_computed_weights(m), opt_level=0,
                                             name="MarkComputedWeights")]
    with target, tvm.transform.PassContext(opt_level=3):
        return tvm.transform.Sequential(passes)(mod)


def apply_records(prepared, target, database):
    """Tuned schedules from the database; DLight defaults for what GPU tasks lack."""
    import tvm
    from tvm.relax import transform as T

    with target, database, tvm.transform.PassContext(opt_level=3):
        mod = T.MetaScheduleApplyDatabase(enable_warning=False)(prepared)
        if is_gpu(target):
            from .gpu_rules import heavy_fallbacks, schedule_defaults

            mod, taken = schedule_defaults(mod, target)
            if heavy_fallbacks(taken):
                log.warning("conv/FC kernels left to DLight's generic Fallback schedule (slow): %s",
                            ", ".join(heavy_fallbacks(taken)))
        else:
            mod = tvm.transform.Sequential([T.SplitLayoutRewritePreproc(), T.LiftTransformParams(),
                                            T.FoldConstant()])(mod)
    return mod


def compile_module(mod, target):
    import tvm

    with target, tvm.transform.PassContext(opt_level=3):
        return tvm.compile(mod, target=target)
