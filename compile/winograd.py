"""Winograd convolutions for AlexNet's stride-1 convs (conv2 5x5, conv3-5 3x3), CPU, NHWC.

They are 85 % of AlexNet's arithmetic, and the direct convs already run near the FMA peak
(docs/performance.md), so only fewer multiplications make them faster. F(4x4, 3x3) does 36
multiplies per 4x4 output tile instead of 144; the 13x13 maps round up to 16x16 in 4x4
tiles, so the net saving is about 2.6x, paid for with two memory-bound transforms.
F(4x4, 5x5) does 64 multiplies per 4x4 tile instead of 400.

Each conv becomes four calls:
- the kernel transform, weights only: `LiftTransformParams` moves it to build time;
- the data transform and the inverse transform, hand-scheduled (winograd_tir.py), not tuned;
- the batched GEMM between them, the only tuned task: MetaSchedule tiles it like the FC
  layers, its transformed kernel marked layout-free so it is prepacked at build time too.

A first version put all stages in one function under MetaSchedule's built-in Winograd rules;
its transforms were not vectorized and it was no faster than the direct convs.

Set per target (`winograd_tile` in targets.yaml; on for x86-avx512), because it changes
the tuned workloads and the rounding (still far inside the verify gates).
"""

from __future__ import annotations

from dataclasses import dataclass

from .winograd_tir import Tiling, data_transform_source, inverse_source, matrices, parse

#: task-name stem of the one tuned Winograd stage
BGEMM = "winograd_bgemm"


def _kernel_transform(kernel, m: int):
    """OIHW r x r kernel -> (alpha^2, CI, CO): G g G^T, output channels innermost for the GEMM."""
    from tvm import te

    m = int(m)  # call_te hands Python ints over as IntImm
    co, ci, r, _ = (int(d) for d in kernel.shape)
    alpha = m + r - 1
    g_np = matrices(m, r)[2]
    g = te.compute((alpha, r), lambda i, j: _const(g_np, i, j), name="G")
    r_kh = te.reduce_axis((0, r), name="r_kh")
    r_kw = te.reduce_axis((0, r), name="r_kw")
    return te.compute(
        (alpha * alpha, ci, co),
        lambda e, c, k: te.sum(kernel[k, c, r_kh, r_kw] * g[e // alpha, r_kh] * g[e % alpha, r_kw],
                               axis=[r_kh, r_kw]),
        name="kernel_pack")


def _const(values, i, j):
    """values[i, j] of a small constant matrix as a Select chain (no buffer to pass)."""
    from tvm import tirx

    expr = tirx.const(0.0, "float32")
    for a in range(values.shape[0]):
        for b in range(values.shape[1]):
            if values[a, b] != 0:
                expr = tirx.Select(tirx.all(i == a, j == b), tirx.const(float(values[a, b]), "float32"), expr)
    return expr


def _bgemm_func(e: int, p: int, ci: int, co: int):
    """(e, P, CI) x (e, CI, CO) -> (e, P, CO); the transformed kernel (arg 1) is layout-free."""
    from tvm import te

    data = te.placeholder((e, p, ci), "float32", name="data_pack")
    kern = te.placeholder((e, ci, co), "float32", name="kernel_pack")
    rc = te.reduce_axis((0, ci), name="rc")
    out = te.compute((e, p, co), lambda b, i, k: te.sum(data[b, i, rc] * kern[b, rc, k], axis=[rc]), name="bgemm")
    func = te.create_prim_func([data, kern, out]).without_attr("global_symbol")  # named by the module
    return func.with_attr("layout_free_buffers", [1])


def output_tile(tile: int, r: int) -> int:
    """m of F(m x m, r x r) for a target's ``winograd_tile``: the same output tile for every
    kernel size, so a 5x5 conv gets F(4x4, 5x5) (8x8 transforms: 2.25x fewer multiplies than
    F(2x2, 5x5), at 4e-6 relative error in fp32 against 1.5e-6: docs/performance.md).
    0 = no Winograd."""
    return tile if tile >= 2 else 0


def _eligible(call, conv2d_op) -> tuple[tuple[int, int, int, int], int] | None:
    """(padding, r) of an NHWC/OIHW fp32 r x r (3 or 5), stride-1, undilated, ungrouped conv; else None."""
    if not (hasattr(call, "op") and call.op == conv2d_op):
        return None
    at = call.attrs
    if (str(at.data_layout), str(at.kernel_layout), str(at.out_layout)) != ("NHWC", "OIHW", "NHWC"):
        return None
    if [int(s) for s in at.strides] != [1, 1] or [int(d) for d in at.dilation] != [1, 1] or int(at.groups) != 1:
        return None
    wshape = call.args[1].ty.shape
    dshape = call.args[0].ty.shape
    if wshape is None or dshape is None:
        return None
    try:
        kh, kw = int(wshape[2]), int(wshape[3])
        [int(d) for d in dshape]
    except TypeError:  # symbolic shape
        return None
    if kh != kw or kh not in (3, 5) or str(call.args[0].ty.dtype) != "float32":
        return None
    if at.out_dtype is not None and str(at.out_dtype) not in ("", "float32", "void"):  # None: as the input
        return None
    pad = [int(p) for p in at.padding]
    return ((pad[0], pad[1], pad[2], pad[3]) if len(pad) == 4 else (pad[0], pad[1], pad[0], pad[1])), kh


@dataclass
class _Conv:
    """A conv to rewrite, with the bias add and ReLU after it that its inverse transform absorbs."""

    call: object  # the relax.nn.conv2d call
    pads: tuple[int, int, int, int]
    m: int
    bias: object = None  # the (1, 1, 1, K) bias expression of the add, if absorbed
    relu: bool = False


def _emit(builder, visit, conv: _Conv):
    """The four calls of one Winograd conv; returns the NHWC output var."""
    from tvm import relax

    x, w = visit(conv.call.args[0]), visit(conv.call.args[1])
    n, h, wd, ci = (int(d) for d in x.ty.shape)
    co, r = int(w.ty.shape[0]), int(w.ty.shape[2])
    t = Tiling(n, h, wd, conv.pads, conv.m, r)
    e = t.alpha * t.alpha
    oh, ow = t.out_hw

    def call(func, name, args, shape):
        gv = builder.add_func(func, name)
        return builder.emit(relax.call_tir(gv, args, relax.TensorType(shape, "float32")))

    u = builder.emit_te(_kernel_transform, w, conv.m, primfunc_name_hint="winograd_kernel_transform")
    d = call(parse(data_transform_source(t, ci)), "winograd_data_transform", [x], (e, t.p, ci))
    g = call(_bgemm_func(e, t.p, ci, co), BGEMM, [d, u], (e, t.p, co))
    bias = [visit(conv.bias)] if conv.bias is not None else []
    rank = len(conv.bias.ty.shape) if bias else 0
    return call(parse(inverse_source(t, co, rank, conv.relu)), "winograd_inverse", [g, *bias], (n, oh, ow, co))


def _bias_of(call, conv_var, channels: int):
    """The other operand of ``add(conv, bias)`` when it is a per-channel bias (1, ..., 1, K)."""
    others = [a for a in call.args if not a.same_as(conv_var)]
    if len(others) != 1 or len(call.args) != 2 or getattr(others[0].ty, "shape", None) is None:
        return None
    try:
        shape = [int(d) for d in others[0].ty.shape]
    except TypeError:
        return None
    ok = shape and shape[-1] == channels and all(d == 1 for d in shape[:-1]) and str(others[0].ty.dtype) == "float32"
    return others[0] if ok else None


def _plan(func, tile: int) -> tuple[dict, set]:
    """{var whose binding emits a Winograd conv: _Conv}, and the vars whose bindings vanish
    (a conv and its bias add, when the add and the ReLU after it are absorbed)."""
    import tvm
    from tvm import relax

    ops = {name: tvm.ir.Op.get(f"relax.{name}") for name in ("nn.conv2d", "add", "nn.relu")}
    bindings = [b for block in func.body.blocks for b in block.bindings]
    users: dict = {}
    for b in bindings:
        for v in relax.analysis.free_vars(b.value):
            users.setdefault(v, []).append(b)
    for v in relax.analysis.free_vars(func.body.body):
        users.setdefault(v, []).append(None)  # the function's result

    def only_user(var, op):
        found = users.get(var, [])
        b = found[0] if len(found) == 1 else None
        return b if b is not None and isinstance(b.value, relax.Call) and b.value.op.same_as(ops[op]) else None

    plan, gone = {}, set()
    for b in bindings:
        found = _eligible(b.value, ops["nn.conv2d"]) if isinstance(b.value, relax.Call) else None
        m = output_tile(tile, found[1]) if found else 0
        if not m:
            continue
        conv, last = _Conv(b.value, found[0], m), b.var
        add = only_user(b.var, "add")
        conv.bias = _bias_of(add.value, b.var, int(b.value.args[1].ty.shape[0])) if add else None
        if conv.bias is not None:
            gone.add(b.var)
            last = add.var
            relu = only_user(add.var, "nn.relu")
            if relu is not None:
                gone.add(add.var)
                conv.relu, last = True, relu.var
        plan[last] = conv
    return plan, gone


def winograd_convs(mod, tile: int):
    """``mod`` with every eligible conv in ``main`` as Winograd F(tile x tile, r x r), r = 3 or 5;
    tile 0 = unchanged.

    Runs after the NHWC layout conversion and before legalization (see pipeline.prepare)."""
    if tile == 0:
        return mod
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    plan, gone = _plan(mod["main"], tile)

    @mutator
    class Rewrite(PyExprMutator):
        def visit_var_binding_(self, binding):
            if binding.var in gone:  # emitted with the binding that absorbs it
                return
            if binding.var not in plan:
                super().visit_var_binding_(binding)
                return
            self.set_var_remap(binding.var, _emit(self.builder_, self.visit_expr, plan[binding.var]))

    rewriter = Rewrite(mod)
    new_main = rewriter.visit_expr(mod["main"])
    out = rewriter.builder_.get()  # holds the new PrimFuncs
    out["main"] = new_main
    return relax.transform.DeadCodeElimination(["main"])(out)
