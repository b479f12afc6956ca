"""FC weights that MetaSchedule may repack: a transposed weight is a weight too.

Relax's ``AttachAttrLayoutFreeBuffers`` marks a kernel argument layout-free (MetaSchedule may
choose its layout, and the repacking runs once at build time) only when it is a parameter of
``main``. A fully connected layer reads ``permute_dims(W)``: a value computed from a weight
alone, which ``LiftTransformParams`` moves to build time all the same, but which is not a
parameter, so its FC kernel was tiled over the row-major ``[K, N]`` matrix. At batch 16 on the
Zen 3 that kernel streamed its weights at about half of what ONNX Runtime's prepacked GEMM
does (docs/performance.md). This pass marks such arguments of the FC kernels (the functions
with a ``matmul`` block) as well.

Only the FC kernels: marking changes a kernel's workload (its attributes are hashed), so
every other kernel keeps the workload its records were tuned for.
"""

from __future__ import annotations

LAYOUT_FREE = "layout_free_buffers"


def _is_fc(func) -> bool:
    return "T.sblock(\"matmul\")" in func.script()


def _call_tir_args(value) -> tuple[object, list] | None:
    """(callee, arguments) of an ``R.call_tir`` binding value, else None."""
    import tvm
    from tvm import relax

    if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) and value.op.name == "relax.call_tir"):
        return None
    args = value.args[1]
    return value.args[0], list(args.fields) if isinstance(args, relax.Tuple) else [args]


def _weight_derived(main) -> set:
    """The variables of ``main`` that depend on its weights alone (parameters after the inputs,
    and what is computed from them only)."""
    num_input = int(main.attrs["num_input"]) if main.attrs and "num_input" in main.attrs else len(main.params)
    derived = set(main.params[num_input:])
    for block in main.body.blocks:
        for binding in block.bindings:
            call = _call_tir_args(binding.value)
            if call is not None and call[1] and all(a in derived for a in call[1]):
                derived.add(binding.var)
    return derived


def mark_computed_weights(mod):
    """``mod`` with each FC kernel's computed-weight arguments added to its layout-free buffers
    (only where every call passes a computed weight there, and the call also reads an input)."""
    main = mod["main"]
    derived = _weight_derived(main)
    params = set(main.params)
    marks: dict = {}  # global var -> the argument indices that every call passes a computed weight at
    for block in main.body.blocks:
        for binding in block.bindings:
            call = _call_tir_args(binding.value)
            if call is None:
                continue
            gv, args = call
            computed = {i for i, a in enumerate(args) if a in derived and a not in params}
            if all(a in derived for a in args):  # weights only: lifted to build time, never tuned
                computed = set()
            marks[gv] = computed if gv not in marks else (marks[gv] & computed)
    mod = mod.clone()
    for gv, indices in marks.items():
        func = mod[gv]
        if not indices or not _is_fc(func):
            continue
        old = [int(i) for i in func.attrs[LAYOUT_FREE]] if func.attrs and LAYOUT_FREE in func.attrs else []
        mod.update_func(gv, func.with_attr(LAYOUT_FREE, sorted(set(old) | indices)))
    return mod
