"""The int8 kernels: u8 x s8 -> s32 GEMMs tensorized with AVX-512 VNNI, and the u8 glue.

Every FC layer is one GEMM (``qgemm``); every conv is a direct conv (``qconv``, an implicit
GEMM that reads its input map in place). The weights are packed as ``[N/16, K/4, 16, 4]``
int8, the layout ``vpdpbusd`` reads: one instruction multiplies 4 consecutive u8 activations
with a 16x4 block of weights and adds the 16 int32 sums into 16 accumulators (64
multiply-adds). MetaSchedule's ``MultiLevelTilingWithIntrin`` tiles the GEMM or conv around
that 16x4 block and tensorizes it.

Activations are u8 with a zero point, weights s8 symmetric per output channel. The
zero-point compensation, bias, rescale, rounding and clipping (ReLU included) are one
fused epilogue per output value::

    q_out = clip(nearbyint(acc * mul[n] + add[n]), lo, 255)
    mul[n] = s_in * s_w[n] / s_out
    add[n] = (bias[n] - s_in * s_w[n] * zp_in * sum_k w[n, k]) / s_out + zp_out

so the GEMM reads no zero point at all. A layer whose output leaves the graph as floats
(the logits) gets the same epilogue without ``/ s_out`` and the clip.

The tensor intrinsic is compile/int8/tensor_intrin.py's (why not TVM's own: see there).

Activations are NHWC u8 (the quantized image alone is NCHW: ConvShape.image). An FC GEMM
reads and writes 2-D views (``[N, K]`` in, ``[N, C]`` out); convs, pools and the input's
quantize use the 4-D shapes, so none of them divides an index; the views between are free
reshapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from alexnet_tvm.compile.int8.tensor_intrin import VNNI_INTRIN, register_intrinsic  # noqa: F401  (re-exported)

#: the prim-func names of the GEMMs (FC layers) and of the direct convs; int8 tuning uses the
#: VNNI space for these tasks only
GEMM_NAME, CONV_NAME = "qgemm", "qconv"
#: prim funcs that FuseOps must leave alone (TVM's kOpaque), so each stays one tuned task
OPAQUE = 8
LANES, GROUP = 16, 4

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


@dataclass(frozen=True)
class ConvShape:
    n: int
    h: int
    w: int
    c: int  # a multiple of 4 (so K is), except for the image's conv: see ``image``
    kh: int
    kw: int
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    #: the image's conv. The quantized image is NCHW (the quantize kernel is then a plain
    #: elementwise copy), its padding written in, and K is (ky, ch, kx) with each run of kx
    #: padded to a multiple of 4: for AlexNet's 11x11 conv1 on RGB, K = 11 x 3 x 12 =
    #: 396, where NHWC with a zero 4th channel made it 11 x 11 x 4 = 484 (18 % fewer
    #: multiply-adds). The pad column reads the next pixel, whose weight is 0: no bounds check.
    image: bool = False

    @property
    def out_hw(self) -> tuple[int, int]:
        oh = (self.h + self.pads[0] + self.pads[2] - self.kh) // self.stride[0] + 1
        ow = (self.w + self.pads[1] + self.pads[3] - self.kw) // self.stride[1] + 1
        return oh, ow

    @property
    def kw_run(self) -> int:
        """The image conv's kx run, padded to a multiple of 4."""
        return round_up(self.kw, GROUP)

    @property
    def slack(self) -> int:
        """Columns the image conv's pad column reads past the padded image (the quantize writes them)."""
        return max(0, (self.out_hw[1] - 1) * self.stride[1] + self.kw_run - self.w) if self.image else 0

    @property
    def k(self) -> int:
        return self.kh * self.c * self.kw_run if self.image else self.kh * self.kw * self.c

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.n, self.c, self.h, self.w + self.slack) if self.image else (self.n, self.h, self.w, self.c)


def qgemm(s: GemmShape):
    """acc[m, n] = sum_k a[m, k] * w[n, k] (u8 x s8 -> s32), then the fused epilogue."""
    from tvm import te

    a = te.placeholder((s.m, s.k), "uint8", name="a")
    w = te.placeholder((s.n_padded // LANES, s.k // GROUP, LANES, GROUP), "int8", name="w")
    mul = te.placeholder((s.n,), "float32", name="mul")
    add = te.placeholder((s.n,), "float32", name="add")
    k = te.reduce_axis((0, s.k), name="k")
    acc = te.compute((s.m, s.n_padded), lambda i, j: te.sum(
        a[i, k].astype("int32") * w[j // LANES, k // GROUP, j % LANES, k % GROUP].astype("int32"), axis=k),
        name="acc")

    out = te.compute((s.m, s.n), _requantized(acc, mul, add, s), name="requant")
    return _prim([a, w, mul, add, out])


def _requantized(acc, mul, add, s: GemmShape):
    """The fused epilogue (module docstring) of an accumulator indexed by (..., channel)."""
    from tvm import tirx as tir

    def value(*idx):
        y = acc[idx].astype("float32") * mul[idx[-1]] + add[idx[-1]]
        if s.float_out:
            return y
        y = tir.max(tir.min(tir.nearbyint(y), tir.const(255.0, "float32")), tir.const(s.lo, "float32"))
        return y.astype("uint8")
    return value


def qconv(c: ConvShape, s: GemmShape):
    """A direct conv (implicit GEMM): acc[img, y, x, n] = sum over the kernel window of the padded
    input times the weights, u8 x s8 -> s32, then the fused epilogue; [N, OH, OW, n] out.

    Why not im2col + qgemm: the im2col copy is kh*kw times the input (9x for AlexNet's 3x3
    convs, 4.7-19 MB at batch 16); it is written to memory and read back, and its time moved
    between 0.1 and 1.2 ms per conv with the machine's memory traffic. Here the GEMM reads the
    input map in place, and MultiLevelTilingWithIntrin tensorizes its (16 channels x 4 inputs)
    block as it does a GEMM's. The weights are packed as qgemm's, [N/16, K/4, 16, 4], with K
    in the order the 4 inputs are consecutive: (ky, kx, ch) for an NHWC map, (ky, ch, kx
    padded) for the NCHW image (ConvShape.image). The padding (the zero point) is a small
    copy of the input map; the image's is written by its quantize kernel."""
    from tvm import te

    if c.c % GROUP and not c.image:
        raise ValueError("a direct int8 conv needs a multiple of 4 input channels, or the image")
    if c.image and any(c.pads):
        raise ValueError("the image conv reads an image with its padding written in")
    x = te.placeholder(c.in_shape, "uint8", name="x")
    pad = te.placeholder((1,), "uint8", name="pad")  # the zero point; the image's is written in already
    w = te.placeholder((s.n_padded // LANES, s.k // GROUP, LANES, GROUP), "int8", name="w")
    mul = te.placeholder((s.n,), "float32", name="mul")
    add = te.placeholder((s.n,), "float32", name="add")
    src = _padded(x, pad, c) if any(c.pads) else x
    (sy, sx), oh, ow = c.stride, *c.out_hw
    ky = te.reduce_axis((0, c.kh), "ky")
    if c.image:  # the innermost reduction, kx, walks 4 consecutive pixels of an image row
        rc, kx = te.reduce_axis((0, c.c), "rc"), te.reduce_axis((0, c.kw_run), "kx")
        row, chan = c.c * c.kw_run // GROUP, c.kw_run // GROUP  # K/4 strides of ky and ch
        axes = [ky, rc, kx]

        def pair(i, y, xx, j):
            return src[i, rc, y * sy + ky, xx * sx + kx], w[j // LANES, ky * row + rc * chan + kx // GROUP, j % LANES,
                                                            kx % GROUP]
    else:  # the innermost reduction, ch, walks 4 consecutive channels of a pixel
        kx, rc = te.reduce_axis((0, c.kw), "kx"), te.reduce_axis((0, c.c), "rc")
        row, col = c.kw * c.c // GROUP, c.c // GROUP  # K/4 strides of ky and kx
        axes = [ky, kx, rc]

        def pair(i, y, xx, j):
            return src[i, y * sy + ky, xx * sx + kx, rc], w[j // LANES, ky * row + kx * col + rc // GROUP, j % LANES,
                                                            rc % GROUP]

    def dot(i, y, xx, j):
        a, b = pair(i, y, xx, j)
        return te.sum(a.astype("int32") * b.astype("int32"), axis=axes)

    acc = te.compute((c.n, oh, ow, s.n_padded), dot, name="acc")
    out = te.compute((c.n, oh, ow, s.n), _requantized(acc, mul, add, s), name="requant")
    return _prim([x, pad, w, mul, add, out])


def _padded(x, pad, c: ConvShape):
    """The NHWC map with its border of zero points (the value of real 0)."""
    from tvm import te
    from tvm import tirx as tir

    top, left, bottom, right = c.pads
    return te.compute((c.n, c.h + top + bottom, c.w + left + right, c.c), lambda i, y, xx, ch: tir.if_then_else(
        tir.all(y >= top, y < c.h + top, xx >= left, xx < c.w + left), x[i, y - top, xx - left, ch], pad[0]),
        name="xpad")


def maxpool(n: int, h: int, w: int, c: int, kernel: tuple[int, int], stride: tuple[int, int],
            pads: tuple[int, int, int, int]):
    """Max over windows of a u8 [N, H, W, C] map. The max commutes with dequantization (a
    positive scale), so the pool runs on the u8 values; padding is 0, the smallest u8."""
    from tvm import te
    from tvm import tirx as tir

    x = te.placeholder((n, h, w, c), "uint8", name="x")
    oh = (h + pads[0] + pads[2] - kernel[0]) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - kernel[1]) // stride[1] + 1
    ry = te.reduce_axis((0, kernel[0]), name="ry")
    rx = te.reduce_axis((0, kernel[1]), name="rx")

    def window(img, y0, x0, ch):
        y = y0 * stride[0] + ry - pads[0]
        xx = x0 * stride[1] + rx - pads[1]
        inside = tir.all(y >= 0, y < h, xx >= 0, xx < w)
        return te.max(tir.if_then_else(inside, x[img, y, xx, ch], tir.const(0, "uint8")), axis=[ry, rx])

    out = te.compute((n, oh, ow, c), window, name="qmaxpool")
    return _prim([x, out]), (oh, ow)


def quantize_nchw(n: int, c: int, h: int, w: int, pads: tuple[int, int, int, int] = (0, 0, 0, 0)):
    """The float NCHW input -> u8 NCHW, round half to even as ONNX's QuantizeLinear: an
    elementwise kernel over contiguous rows. ``pads`` (top, left, bottom, right): the first
    conv's spatial padding, written here, so that the conv reads it without a bounds check; pad
    pixels hold the zero point (real 0). ``qp`` = (scale, zero point), a parameter like every
    calibration-made number."""
    from tvm import te
    from tvm import tirx as tir

    x = te.placeholder((n, c, h, w), "float32", name="x")
    qp = te.placeholder((2,), "float32", name="qp")
    top, left = pads[0], pads[1]

    def q(img, ch, y, xx):
        inside = tir.all(y >= top, y < h + top, xx >= left, xx < w + left)
        v = tir.if_then_else(inside, tir.nearbyint(x[img, ch, y - top, xx - left] / qp[0]) + qp[1], qp[1])
        return tir.max(tir.min(v, tir.const(255.0, "float32")), tir.const(0.0, "float32")).astype("uint8")

    shape = (n, c, h + pads[0] + pads[2], w + pads[1] + pads[3])
    return _prim([x, qp, te.compute(shape, q, name="quantize")])


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
