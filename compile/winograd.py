"""Winograd F(m x m, 3 x 3) for AlexNet's 3x3 convolutions (conv3-5), CPU, NHWC.

conv3-5 are half of AlexNet's arithmetic, and at batch 16 TVM loses to ONNX Runtime in
the convolutions (docs/performance.md). Winograd trades multiplications for cheap
transforms: F(4x4, 3x3) does 36 multiplies per 4x4 output tile instead of 144. The 13x13
maps of AlexNet round up to 16x16 in 4x4 tiles, so the net saving is about 2.6x before the
transforms, and the remaining work is a batched GEMM that MetaSchedule tiles well.

The rewrite splits each conv in two calls: the kernel transform, which depends on the
weights only, so `LiftTransformParams` moves it to build time (params.bin stores the
transformed kernels), and the convolution proper. Its stages carry the block annotations
that select MetaSchedule's built-in CPU Winograd rules (data pack and inverse transform);
the batched GEMM gets the default multi-level tiling.

Opt-in per target (`winograd_tile` in targets.yaml), because it changes the tuned
workloads and the rounding (still far inside the verify gates).
"""

from __future__ import annotations


def _kernel_transform(kernel, m: int):
    """OIHW 3x3 kernel -> (alpha, alpha, CI, CO), output channels innermost for the GEMM."""
    from tvm import te
    from tvm.topi.nn.winograd_util import winograd_transform_matrices

    m = int(m)  # call_te hands Python ints over as IntImm
    co, ci, _, _ = (int(d) for d in kernel.shape)
    alpha = m + 2
    _, _, g = winograd_transform_matrices(m, 3, str(kernel.dtype))
    r_kh = te.reduce_axis((0, 3), name="r_kh")
    r_kw = te.reduce_axis((0, 3), name="r_kw")
    return te.compute(
        (alpha, alpha, ci, co),
        lambda eps, nu, c, k: te.sum(kernel[k, c, r_kh, r_kw] * g[eps, r_kh] * g[nu, r_kw], axis=[r_kh, r_kw]),
        name="kernel_pack")


def _two_sided(x, mat, size: int, name: str, rule: str):
    """out[i, j, p, c] = sum over a, b of x[a, b, p, c] * mat[a, i] * mat[b, j]: the data and the
    inverse transforms, shaped (i, j, p, c, a, b) as MetaSchedule's Winograd rules expect."""
    from tvm import te

    alpha = int(x.shape[0])
    r_a = te.reduce_axis((0, alpha), "r_a")
    r_b = te.reduce_axis((0, alpha), "r_b")
    return te.compute((size, size, int(x.shape[2]), int(x.shape[3])),
                      lambda i, j, p, c: te.sum(x[r_a, r_b, p, c] * mat[r_a, i] * mat[r_b, j], axis=[r_a, r_b]),
                      name=name, attrs={"schedule_rule": rule})


def _conv(data, kernel_pack, pads: tuple[int, int, int, int], m: int):
    """NHWC data, transformed kernel -> NHWC output; stage layout as MetaSchedule's rules expect."""
    from tvm import te, topi
    from tvm.topi.nn.winograd_util import winograd_transform_matrices

    m = int(m)  # call_te hands Python ints over as IntImm
    n, h, w, ci = (int(d) for d in data.shape)
    alpha, _, _, co = (int(d) for d in kernel_pack.shape)
    pt, pl, pb, pr = (int(p) for p in pads)
    oh, ow = h + pt + pb - 2, w + pl + pr - 2
    nh, nw = (oh + m - 1) // m, (ow + m - 1) // m
    p_total = n * nh * nw
    a, b, _ = winograd_transform_matrices(m, 3, str(data.dtype))
    extra_h = (nh - 1) * m + alpha - (h + pt + pb)
    extra_w = (nw - 1) * m + alpha - (w + pl + pr)
    data_pad = topi.nn.pad(data, (0, pt, pl, 0), (0, pb + max(extra_h, 0), pr + max(extra_w, 0), 0),
                           name="data_pad", attrs={"schedule_rule": "None"})
    input_tile = te.compute(
        (alpha, alpha, p_total, ci),
        lambda eps, nu, p, c: data_pad[p // (nh * nw), ((p // nw) % nh) * m + eps, (p % nw) * m + nu, c],
        name="input_tile", attrs={"schedule_rule": "None"})
    data_pack = _two_sided(input_tile, b, alpha, "data_pack", "conv2d_nhwc_winograd_data_pack")
    rc = te.reduce_axis((0, ci), name="rc")
    bgemm = te.compute(
        (alpha, alpha, p_total, co),
        lambda eps, nu, p, k: te.sum(data_pack[eps, nu, p, rc] * kernel_pack[eps, nu, rc, k], axis=[rc]),
        name="bgemm", attrs={"meta_schedule.write_cache_level": [2]})
    inverse = _two_sided(bgemm, a, m, "inverse", "conv2d_nhwc_winograd_inverse")
    return te.compute(
        (n, oh, ow, co),
        lambda i, y, x, k: inverse[y % m, x % m, i * nh * nw + (y // m) * nw + (x // m), k],
        name="conv2d_winograd")


def _eligible(call, conv2d_op) -> tuple[int, int, int, int] | None:
    """The padding of an NHWC/OIHW fp32 3x3, stride-1, undilated, ungrouped conv; else None."""
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
    if (kh, kw) != (3, 3) or str(call.args[0].ty.dtype) != "float32":
        return None
    if str(at.out_dtype) not in ("", "float32", "void"):
        return None
    pad = [int(p) for p in at.padding]
    return (pad[0], pad[1], pad[2], pad[3]) if len(pad) == 4 else (pad[0], pad[1], pad[0], pad[1])


def winograd_convs(mod, tile: int):
    """``mod`` with every eligible 3x3 conv in ``main`` as Winograd F(tile x tile, 3x3); tile 0 = unchanged.

    Runs after the NHWC layout conversion and before legalization (see pipeline.prepare)."""
    if tile == 0:
        return mod
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    conv2d = tvm.ir.Op.get("relax.nn.conv2d")

    @mutator
    class Rewrite(PyExprMutator):
        def __init__(self, m):
            super().__init__(m)
            self.count = 0

        def visit_var_binding_(self, binding):
            value = binding.value
            pads = _eligible(value, conv2d) if isinstance(value, relax.Call) else None
            if pads is None:
                super().visit_var_binding_(binding)
                return
            x, w = self.visit_expr(value.args[0]), self.visit_expr(value.args[1])
            u = self.builder_.emit_te(_kernel_transform, w, tile, primfunc_name_hint="winograd_kernel_transform")
            y = self.builder_.emit_te(_conv, x, u, pads, tile, primfunc_name_hint="conv2d_winograd")
            self.set_var_remap(binding.var, y)
            self.count += 1

    rewriter = Rewrite(mod)
    new_main = rewriter.visit_expr(mod["main"])
    out = rewriter.builder_.get()  # holds the new PrimFuncs
    out["main"] = new_main
    return relax.transform.DeadCodeElimination(["main"])(out)
