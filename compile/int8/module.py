"""The int8 program (qdq_import.py) as a Relax module, and how its GEMMs are tuned.

The module has the shape every build expects: ``main(input, *params)`` with
``num_input`` = 1, the packed weights and epilogue vectors as parameters (so they go to
params.bin like fp32 weights), and one ``call_tir`` per kernel. The kernels are marked
opaque, so no fusion regroups them and each is the task its records were tuned for.

The GEMM tasks are tuned in a space with VNNI tensorization (``MultiLevelTilingWithIntrin``)
and no auto-vectorization: vectorizing a loop that holds the tensorized 16-lane block is
what TVM's vectorizer refuses ("Cannot broadcast lanes=16 to 256"). The epilogue is left
to LLVM's loop vectorizer. The other kernels (pools, (de)quantize) get the
target's default space.
"""

from __future__ import annotations

import numpy as np

from . import kernels as K
from .qdq_import import Program


def program_module(program: Program):
    """(IRModule, params as tvm tensors in main's order)."""
    import tvm
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("input", relax.TensorType(program.input_shape, "float32"))
    pvars, values = [], []
    for i, step in enumerate(program.steps):
        for j, p in enumerate(step.params):
            pvars.append(relax.Var(f"{step.name}{i}_{j}", relax.TensorType(p.shape, str(p.dtype))))
            values.append(tvm.runtime.tensor(np.ascontiguousarray(p)))
    with bb.function("main", [x, *pvars], attrs={"num_input": 1}):
        with bb.dataflow():
            cur, k, prev_shape = x, 0, None
            for step in program.steps:
                gv = bb.add_func(step.prim.without_attr("global_symbol"), step.name)
                if step.in_shape is not None and step.in_shape != prev_shape:  # a flatten: a view
                    cur = bb.emit(relax.op.reshape(cur, step.in_shape))
                prev_shape = step.out_shape
                args = [cur, *pvars[k:k + len(step.params)]]
                k += len(step.params)
                cur = bb.emit(relax.call_tir(gv, args, relax.TensorType(step.out_shape, step.out_dtype)))
            out = bb.emit_output(cur)
        bb.emit_func_output(out)
    return bb.get(), values


def prepare_int8(mod, target):
    """The int8 counterpart of pipeline.prepare: the module is kernels already; legalize what
    little is left and annotate, nothing to fuse."""
    import tvm
    from tvm import relax

    K.register_intrinsic()
    with target, tvm.transform.PassContext(opt_level=3):
        return relax.get_pipeline("zero")(mod)


def _prefix(task) -> str:
    """K.GEMM_NAME or K.CONV_NAME for a VNNI task, "" for any other kernel."""
    return next((p for p in (K.GEMM_NAME, K.CONV_NAME) if task.task_name.startswith(p)), "")


def gemm_space(compute_location: bool = True):
    """MetaSchedule's x86 rules with the VNNI tile rule and without vectorization (see above).
    A direct conv's padding copy stays where it is (``compute_location`` False): moved inside
    the tiled loops, it splits the block that the VNNI intrinsic must replace, and the
    tensorization fails."""
    from tvm.s_tir import meta_schedule as ms

    K.register_intrinsic()
    R, P = ms.schedule_rule, ms.postproc
    rules = [
        R.ApplyCustomRule(), R.InlineConstantScalars(),
        R.AutoInline(into_producer=False, into_consumer=True, inline_const_tensor=True, disallow_if_then_else=True,
                     require_injective=True, require_ordered=True, disallow_op=["tirx.exp"]),
        R.AddRFactor(max_jobs_per_core=16, max_innermost_factor=64),
        R.MultiLevelTilingWithIntrin(K.VNNI_INTRIN, structure="SSRSRS", tile_binds=None, max_innermost_factor=64,
                                     vector_load_lens=None, reuse_read=None,
                                     reuse_write=R.ReuseType(req="may", levels=[1, 2], scope="global")),
        R.ParallelizeVectorizeUnroll(max_jobs_per_core=16, max_vectorize_extent=0, unroll_max_steps=[0, 16, 64, 512],
                                     unroll_explicit=True),
        *([R.RandomComputeLocation()] if compute_location else []),
    ]
    posts = [P.DisallowDynamicLoop(), P.RewriteParallelVectorizeUnroll(), P.RewriteReductionBlock(),
             P.RewriteTensorize(vectorize_init_loop=True)]
    return ms.space_generator.PostOrderApply(sch_rules=rules, postprocs=posts, mutator_probs="llvm")


def tune_contexts(tasks: list, work_dir: str, seed: int, threads: int) -> tuple[list, list]:
    """Tune contexts in ``tasks``' order: GEMMs and direct convs in the VNNI space (the convs
    without compute-location sampling, see gemm_space), the rest in the default one."""
    from tvm.s_tir import meta_schedule as ms

    make = ms.relax_integration.extracted_tasks_to_tune_contexts
    spaces = {K.GEMM_NAME: gemm_space, K.CONV_NAME: lambda: gemm_space(compute_location=False),
              "": lambda: "post-order-apply"}  # "": every other kernel
    by_task = {}
    for prefix, space in spaces.items():
        group = [t for t in tasks if _prefix(t) == prefix]
        if group:
            ctxs, weights = make(group, work_dir=work_dir, space=space(), seed=seed, num_threads=threads)
            by_task.update({id(t): (c, w) for t, c, w in zip(group, ctxs, weights)})
    return [by_task[id(t)][0] for t in tasks], [by_task[id(t)][1] for t in tasks]
