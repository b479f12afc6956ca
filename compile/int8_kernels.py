"""The int8 kernels: u8 x s8 -> s32 GEMMs tensorized with AVX-512 VNNI, and the u8 glue.

Every convolution is an im2col followed by one GEMM; every FC layer is the GEMM alone. The
GEMM's weights are packed as ``[N/16, K/4, 16, 4]`` int8, the layout ``vpdpbusd`` reads: one
instruction multiplies 4 consecutive u8 activations with a 16x4 block of weights and adds
the 16 int32 sums into 16 accumulators (64 multiply-adds). MetaSchedule's
``MultiLevelTilingWithIntrin`` tiles the GEMM around that 16x4 block and tensorizes it.

Activations are u8 with a zero point, weights s8 symmetric per output channel. The
zero-point compensation, bias, rescale, rounding and clipping (ReLU included) are one
fused epilogue per output value::

    q_out = clip(nearbyint(acc * mul[n] + add[n]), lo, 255)
    mul[n] = s_in * s_w[n] / s_out
    add[n] = (bias[n] - s_in * s_w[n] * zp_in * sum_k w[n, k]) / s_out + zp_out

so the GEMM reads no zero point at all. A layer whose output leaves the graph as floats
(the logits) gets the same epilogue without ``/ s_out`` and the clip.

TVM's own ``dot_16x4_vnni`` intrinsic passes ``int32x16`` operands to
``llvm.x86.avx512.vpdpbusd.512``, whose signature in the LLVM that TVM 0.27 links takes
``<64 x i8>``; every build with it fails LLVM verification. The intrinsic here is the same
description with the operands typed as LLVM now wants them.

Activation tensors are 2-D: ``[N*H*W, C]`` (NHWC, rows are pixels) for feature maps and
``[N, F]`` after a flatten, so a GEMM's output is the next layer's input as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the registered name of the tensor intrinsic (see module docstring)
VNNI_INTRIN = "alexnet_tvm_dot_16x4_vnni"
#: the prim-func name of every GEMM; int8 tuning uses the VNNI space for these tasks only
GEMM_NAME = "qgemm"
#: prim funcs that FuseOps must leave alone (TVM's kOpaque), so each stays one tuned task
OPAQUE = 8
LANES, GROUP = 16, 4

_registered = False


def register_intrinsic() -> None:
    """Registers VNNI_INTRIN once per process (tuning, and every build that replays a record)."""
    global _registered
    if _registered:
        return
    from tvm.s_tir import TensorIntrin
    from tvm.s_tir.tensor_intrin.x86 import dot_product_16x4_u8i8i32_desc
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def vnni_impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (4,), "uint8", offset_factor=1)
        B = T.match_buffer(b, (16, 4), "int8", offset_factor=1)
        C = T.match_buffer(c, (16,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            a_i32 = T.reinterpret("int32", A.vload([0], "uint8x4"))
            C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                "int32x16", "llvm.x86.avx512.vpdpbusd.512", C.vload([0], dtype="int32x16"),
                T.reinterpret("uint8x64", T.broadcast(a_i32, 16)), B.vload([0, 0], dtype="int8x64"))

    try:
        TensorIntrin.register(VNNI_INTRIN, dot_product_16x4_u8i8i32_desc, vnni_impl)
    except Exception:  # already registered by an earlier import in this process
        pass
    _registered = True


def round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


@dataclass(frozen=True)
class GemmShape:
    m: int  # rows: pixels (convs) or images (FC)
    k: int  # reduction, a multiple of 4 (padded with zero weights)
    n: int  # output channels as the graph has them
    float_out: bool = False  # the logits: dequantized, not clipped
    lo: float = 0.0  # lower clip of the u8 output (the output zero point after a ReLU)

    @property
    def n_padded(self) -> int:
        return round_up(self.n, LANES)


def qgemm(s: GemmShape):
    """acc[m, n] = sum_k a[m, k] * w[n, k] (u8 x s8 -> s32), then the fused epilogue."""
    from tvm import te
    from tvm import tirx as tir

    a = te.placeholder((s.m, s.k), "uint8", name="a")
    w = te.placeholder((s.n_padded // LANES, s.k // GROUP, LANES, GROUP), "int8", name="w")
    mul = te.placeholder((s.n,), "float32", name="mul")
    add = te.placeholder((s.n,), "float32", name="add")
    k = te.reduce_axis((0, s.k), name="k")
    acc = te.compute((s.m, s.n_padded), lambda i, j: te.sum(
        a[i, k].astype("int32") * w[j // LANES, k // GROUP, j % LANES, k % GROUP].astype("int32"), axis=k),
        name="acc")

    def epilogue(i, j):
        y = acc[i, j].astype("float32") * mul[j] + add[j]
        if s.float_out:
            return y
        y = tir.max(tir.min(tir.nearbyint(y), tir.const(255.0, "float32")), tir.const(s.lo, "float32"))
        return y.astype("uint8")

    out = te.compute((s.m, s.n), epilogue, name="requant")
    return _prim([a, w, mul, add, out])


@dataclass(frozen=True)
class Im2colShape:
    n: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right

    @property
    def out_hw(self) -> tuple[int, int]:
        oh = (self.h + self.pads[0] + self.pads[2] - self.kh) // self.stride[0] + 1
        ow = (self.w + self.pads[1] + self.pads[3] - self.kw) // self.stride[1] + 1
        return oh, ow

    @property
    def k(self) -> int:
        return round_up(self.kh * self.kw * self.c, GROUP)


def im2col(s: Im2colShape):
    """[N*H*W, C] u8 -> [N*OH*OW, K] u8, K ordered (kh, kw, c); padding reads the zero point."""
    from tvm import te
    from tvm import tirx as tir

    x = te.placeholder((s.n * s.h * s.w, s.c), "uint8", name="x")
    pad = te.placeholder((1,), "uint8", name="pad")  # the input's zero point: a parameter, so that
    oh, ow = s.out_hw                                 # one record serves every calibration
    real_k = s.kh * s.kw * s.c

    def value(m, k):
        img, rem = m // (oh * ow), m % (oh * ow)
        y = rem // ow * s.stride[0] + k // (s.kw * s.c) - s.pads[0]
        xx = rem % ow * s.stride[1] + k // s.c % s.kw - s.pads[1]
        inside = tir.all(k < real_k, y >= 0, y < s.h, xx >= 0, xx < s.w)
        return tir.if_then_else(inside, x[(img * s.h + y) * s.w + xx, k % s.c], pad[0])

    out = te.compute((s.n * oh * ow, s.k), value, name="im2col")
    return _prim([x, pad, out])


def maxpool(n: int, h: int, w: int, c: int, kernel: tuple[int, int], stride: tuple[int, int],
            pads: tuple[int, int, int, int]):
    """Max over windows of a u8 [N*H*W, C] map. The max commutes with dequantization (a
    positive scale), so the pool runs on the u8 values; padding is 0, the smallest u8."""
    from tvm import te
    from tvm import tirx as tir

    x = te.placeholder((n * h * w, c), "uint8", name="x")
    oh = (h + pads[0] + pads[2] - kernel[0]) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - kernel[1]) // stride[1] + 1
    ry = te.reduce_axis((0, kernel[0]), name="ry")
    rx = te.reduce_axis((0, kernel[1]), name="rx")

    def window(m, ch):
        img, rem = m // (oh * ow), m % (oh * ow)
        y = rem // ow * stride[0] + ry - pads[0]
        xx = rem % ow * stride[1] + rx - pads[1]
        inside = tir.all(y >= 0, y < h, xx >= 0, xx < w)
        return te.max(tir.if_then_else(inside, x[(img * h + y) * w + xx, ch], tir.const(0, "uint8")), axis=[ry, rx])

    out = te.compute((n * oh * ow, c), window, name="qmaxpool")
    return _prim([x, out]), (oh, ow)


def quantize_nchw(n: int, c: int, h: int, w: int):
    """The float NCHW input -> u8 [N*H*W, C], round half to even as ONNX's QuantizeLinear.
    ``qp`` = (scale, zero point), a parameter like every calibration-made number."""
    from tvm import te
    from tvm import tirx as tir

    x = te.placeholder((n, c, h, w), "float32", name="x")
    qp = te.placeholder((2,), "float32", name="qp")

    def q(m, ch):
        img, rem = m // (h * w), m % (h * w)
        v = tir.nearbyint(x[img, ch, rem // w, rem % w] / qp[0]) + qp[1]
        return tir.max(tir.min(v, tir.const(255.0, "float32")), tir.const(0.0, "float32")).astype("uint8")

    return _prim([x, qp, te.compute((n * h * w, c), q, name="quantize")])


def requantize(rows: int, cols: int, scale: float, zero_point: int, lo: float = 0.0):
    """u8 -> u8 under new quantization parameters: ``scale`` = s_in / s_out; ``zero_point`` is
    the float offset zp_out - zp_in * scale. A ReLU on u8 is this with ``lo`` = zp."""
    from tvm import te
    from tvm import tirx as tir

    x = te.placeholder((rows, cols), "uint8", name="x")
    out = te.compute((rows, cols), lambda i, j: tir.max(tir.min(
        tir.nearbyint(x[i, j].astype("float32") * tir.const(scale, "float32") + tir.const(zero_point, "float32")),
        tir.const(255.0, "float32")), tir.const(lo, "float32")).astype("uint8"), name="requantize")
    return _prim([x, out])


def dequantize(rows: int, cols: int):
    """u8 -> float; ``qp`` = (scale, zero point)."""
    from tvm import te

    x = te.placeholder((rows, cols), "uint8", name="x")
    qp = te.placeholder((2,), "float32", name="qp")
    out = te.compute((rows, cols), lambda i, j: (x[i, j].astype("float32") - qp[1]) * qp[0], name="dequantize")
    return _prim([x, qp, out])


def _prim(tensors):
    from tvm import te

    return te.create_prim_func(tensors).with_attr("op_pattern", OPAQUE)
