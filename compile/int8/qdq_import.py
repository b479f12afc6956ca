"""A QDQ ONNX model (ONNX Runtime's quantizer writes them) as a chain of int8 kernel steps.

A QDQ graph says where values are quantized (QuantizeLinear / DequantizeLinear pairs) and
leaves the math in float: ``Conv(DQ(x_u8), DQ(w_s8), DQ(b_s32))``. Here each such layer
becomes what the pairs permit: one u8 x s8 GEMM with a fused requantizing epilogue
(int8_kernels.py), so no float tensor exists between the input and the logits.

The walk keeps, for each ONNX tensor name, what it is: the float image input, a u8
activation produced by a step, the dequantized view of one, quantized constants, or a
pending Conv/Gemm whose output quantization the next QuantizeLinear decides. Supported:
Conv (group 1), Gemm, Relu, MaxPool, identity AveragePool, Flatten/Reshape to 2-D,
Dropout/Identity, with u8 activations and symmetric s8 weights (per channel or per
tensor). Anything else is refused in one line: AlexNet is a chain, and the caffe
variant's LRN and grouped convs have no int8 kernel here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from alexnet_tvm.errors import ModelFormatError

from . import kernels as K

SUPPORTED = ("QuantizeLinear", "DequantizeLinear", "Conv", "Gemm", "Relu", "MaxPool", "AveragePool", "Flatten",
             "Reshape", "Dropout", "Identity")


@dataclass
class Step:
    """One kernel call: ``prim`` applied to the previous step's output and ``params``."""

    name: str
    prim: object  # tvm.tirx.PrimFunc
    params: list[np.ndarray]
    out_shape: tuple[int, ...]
    out_dtype: str
    #: the input as this step reads it; where it differs from the last output, a reshape (a view)
    in_shape: tuple[int, ...] | None = None


@dataclass
class QAct:
    """A u8 activation: the output of step ``step`` (-1: none yet), 2-D as int8_kernels says."""

    step: int
    scale: float
    zp: int
    rows: int
    cols: int
    #: (n, h, w) of a feature map; None once flattened
    fmap: tuple[int, int, int] | None = None
    #: (h, w, c) of the NHWC map this flat tensor came from: the next FC's columns are permuted
    flat_from: tuple[int, int, int] | None = None
    #: the quantized image: NCHW, and only a conv reads it (int8_kernels.ConvShape.image)
    image: bool = False


@dataclass
class Deq:
    q: QAct


@dataclass
class QConst:
    """A DequantizeLinear of an initializer: integer values, scales, zero points."""

    values: np.ndarray
    scale: np.ndarray
    zp: np.ndarray

    def real(self) -> np.ndarray:
        return (self.values.astype(np.float64) - self._bcast(self.zp)) * self._bcast(self.scale)

    def _bcast(self, v: np.ndarray) -> np.ndarray:
        return v.reshape((-1,) + (1,) * (self.values.ndim - 1)) if v.size > 1 else v.reshape(())


@dataclass
class Pending:
    """A Conv or Gemm whose output quantization is not known yet."""

    x: QAct
    w: np.ndarray  # s8, [N, K] in the GEMM's column order
    w_scale: np.ndarray  # [N]
    bias: np.ndarray  # float64 [N]
    conv: K.ConvShape | None
    relu: bool = False


class FloatInput:
    pass


@dataclass
class Program:
    """The int8 graph: the input's quantization, then one step per kernel."""

    input_shape: tuple[int, int, int, int]
    steps: list[Step] = field(default_factory=list)
    output_classes: int = 0


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _fail(msg: str):
    raise ModelFormatError(f"int8: {msg}")


class _Walker:
    def __init__(self, model, input_name: str, input_shape: tuple[int, int, int, int]):
        from onnx import numpy_helper

        self.consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.values: dict[str, object] = {input_name: FloatInput()}
        self.program = Program(input_shape)

    # -- the steps -------------------------------------------------------------------
    def emit(self, x: QAct | None, name: str, prim, params, out_shape, out_dtype="uint8", in_shape=None) -> int:
        expected = len(self.program.steps) - 1
        if x is not None and x.step != expected:
            _fail("the graph branches; only a chain of layers (AlexNet's) has int8 kernels here")
        if in_shape is None and x is not None:
            in_shape = (x.rows, x.cols)
        self.program.steps.append(Step(name, prim, [np.ascontiguousarray(p) for p in params], out_shape, out_dtype,
                                       in_shape))
        return len(self.program.steps) - 1

    def scalar(self, name: str, default=0) -> np.ndarray:
        """A constant quantization parameter; an activation's must be one value (per tensor)."""
        if not name:
            return np.asarray(default)
        if name not in self.consts:
            _fail(f"quantization parameter {name!r} is not a constant")
        return self.consts[name]

    def per_tensor(self, name: str, default=0) -> np.ndarray:
        v = np.asarray(self.scalar(name, default))
        if v.size != 1:
            _fail(f"{name!r}: activations must be quantized per tensor ({v.size} values)")
        return v.reshape(())

    # -- ONNX ops ----------------------------------------------------------------------
    def value(self, name: str):
        if name not in self.values:
            _fail(f"{name!r} is neither the image input nor computed before it is used")
        return self.values[name]

    def quantize(self, node):
        x = self.value(node.input[0])
        scale = float(self.per_tensor(node.input[1]))
        zp_arr = self.per_tensor(node.input[2] if len(node.input) > 2 else "", np.uint8(0))
        if zp_arr.dtype != np.uint8:
            _fail(f"{node.output[0]}: activations must be uint8 (QuantType.QUInt8), not {zp_arr.dtype}")
        zp = int(zp_arr)
        if isinstance(x, FloatInput):
            n, c, h, w = self.program.input_shape
            step = self.emit(None, "quantize", K.quantize_nchw(n, c, h, w), [_qp(scale, zp)], (n, c, h, w))
            return QAct(step, scale, zp, n * h * w, c, fmap=(n, h, w), image=True)
        if isinstance(x, Pending):
            return self.finish(x, scale, zp)
        if isinstance(x, Deq):
            return self.requantize(x.q, scale, zp)
        _fail(f"QuantizeLinear of {node.input[0]!r} (a constant) is not supported")

    def requantize(self, q: QAct, scale: float, zp: int, lo: float = 0.0) -> QAct:
        if np.isclose(scale, q.scale, rtol=1e-6) and zp == q.zp and lo == 0.0:
            return q
        ratio = q.scale / scale
        step = self.emit(q, "requantize", K.requantize(q.rows, q.cols, ratio, zp - q.zp * ratio, lo), [],
                         (q.rows, q.cols))
        return QAct(step, scale, zp, q.rows, q.cols, q.fmap, q.flat_from)

    def dequantize(self, node):
        src = node.input[0]
        scale = self.scalar(node.input[1]).astype(np.float64)
        zp = self.scalar(node.input[2] if len(node.input) > 2 else "", 0)
        if src in self.consts:
            return QConst(self.consts[src], scale.reshape(-1), np.asarray(zp).reshape(-1))
        x = self.value(src)
        scale, zp = self.per_tensor(node.input[1]), self.per_tensor(node.input[2] if len(node.input) > 2 else "", 0)
        if not isinstance(x, QAct):
            _fail(f"DequantizeLinear of {src!r}: expected a quantized activation")
        if not np.isclose(float(scale), x.scale, rtol=1e-6) or int(zp) != x.zp:
            _fail(f"DequantizeLinear of {src!r} uses other parameters than its QuantizeLinear")
        return Deq(x)

    def activation(self, name: str, op: str) -> QAct:
        v = self.values.get(name)
        if not isinstance(v, Deq):
            _fail(f"{op}: its input {name!r} is not a dequantized u8 activation (is the model quantized "
                  "in QDQ format, activations included?)")
        if v.q.image and op != "Conv":
            _fail(f"{op} on the input image: the image's only int8 reader here is a conv")
        return v.q

    def weights(self, name: str, op: str) -> QConst:
        v = self.values.get(name)
        if not isinstance(v, QConst) or v.values.dtype != np.int8:
            _fail(f"{op}: its weight {name!r} is not an int8 constant behind a DequantizeLinear")
        if np.any(v.zp != 0):
            _fail(f"{op}: weight {name!r} has a non-zero zero point; quantize weights symmetrically "
                  "(extra_options WeightSymmetric=True)")
        return v

    def bias(self, node, n: int) -> np.ndarray:
        if len(node.input) < 3 or not node.input[2]:
            return np.zeros(n)
        v = self.values.get(node.input[2], self.consts.get(node.input[2]))
        if isinstance(v, QConst):
            return v.real().reshape(-1)
        if isinstance(v, np.ndarray):
            return v.astype(np.float64).reshape(-1)
        _fail(f"{node.op_type}: bias {node.input[2]!r} is not a constant")

    def conv(self, node):
        a = _attrs(node)
        x = self.activation(node.input[0], "Conv")
        wq = self.weights(node.input[1], "Conv")
        if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
            _fail("Conv: grouped or dilated convolutions have no int8 kernel here")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            _fail("Conv: auto_pad is not supported; export with explicit pads")
        if x.fmap is None:
            _fail("Conv: its input is not a feature map")
        oc, c, kh, kw = wq.values.shape
        if x.cols != c or (x.cols % K.GROUP and not x.image):
            _fail(f"Conv: {x.cols} input channels (weights for {c}); int8 convs need a multiple of {K.GROUP}"
                  " (any count for a conv on the input image)")
        pads = tuple(a.get("pads", [0, 0, 0, 0]))
        shape = K.ConvShape(*x.fmap, x.cols, kh, kw, tuple(a.get("strides", [1, 1])),
                            (pads[0], pads[1], pads[2], pads[3]), x.image)
        if x.image:  # K = (kh, c, kw), each kx run zero-padded to a multiple of 4: ConvShape.image
            w = np.zeros((oc, kh, c, shape.kw_run), np.int8)
            w[..., :kw] = wq.values.transpose(0, 2, 1, 3)
        else:
            w = wq.values.transpose(0, 2, 3, 1)  # K = (kh, kw, c), the order the conv reads an NHWC map
        return Pending(x, w.reshape(oc, -1), _per_channel(wq.scale, oc), self.bias(node, oc), shape)

    def gemm(self, node):
        a = _attrs(node)
        x = self.activation(node.input[0], "Gemm")
        wq = self.weights(node.input[1], "Gemm")
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            _fail("Gemm: transA, alpha and beta other than 0, 1, 1 are not supported")
        if x.fmap is not None:
            _fail("Gemm: its input is not flattened")
        w = wq.values if a.get("transB", 0) else wq.values.T
        n = w.shape[0]
        scale = _per_channel(wq.scale, n)
        if x.flat_from is not None:  # the graph flattened NCHW (c, h, w); ours is NHWC (h, w, c)
            h, ww, c = x.flat_from
            w = w.reshape(n, c, h, ww).transpose(0, 2, 3, 1).reshape(n, -1)
        if w.shape[1] != x.cols:
            _fail(f"Gemm: weight has {w.shape[1]} inputs, its input {x.cols}")
        return Pending(x, w, scale, self.bias(node, n), None)

    def finish(self, p: Pending, scale: float | None, zp: int = 0) -> QAct:
        """Emit the pending layer's kernel: a direct conv, or an FC layer's GEMM; ``scale`` None:
        float logits."""
        src, c = p.x, p.conv
        if c is not None:
            c = self.pad_in_quantize(src, c)
            oh, ow = c.out_hw
            shape = _gemm_shape(p, c.n * oh * ow, c.k, scale, zp)
            prim, params = K.qconv(c, shape), [np.array([src.zp], np.uint8)]
            out_shape, in_shape, fmap = (c.n, oh, ow, shape.n), c.in_shape, (c.n, oh, ow)
        else:
            if src.cols % K.GROUP:
                _fail(f"Gemm: {src.cols} inputs is not a multiple of {K.GROUP}")
            shape = _gemm_shape(p, src.rows, src.cols, scale, zp)
            prim, params = K.qgemm(shape), []
            out_shape, in_shape, fmap = (shape.m, shape.n), None, None
        mul, add = _epilogue(p, scale, zp)
        step = self.emit(src, K.CONV_NAME if c is not None else K.GEMM_NAME, prim,
                         [*params, pack_weights(p.w, shape), mul, add], out_shape,
                         "float32" if scale is None else "uint8", in_shape=in_shape)
        return QAct(step, scale or 1.0, zp, shape.m, shape.n, fmap)

    def pad_in_quantize(self, src: QAct, conv: K.ConvShape) -> K.ConvShape:
        """The image's conv: its padding (and the columns its pad column reads past it) is
        written by the quantize kernel, so the conv reads the image without a bounds check."""
        if not src.image:
            return conv
        first = self.program.steps[src.step]
        n, c, h, w = self.program.input_shape
        p = conv.pads
        padded = replace(conv, h=h + p[0] + p[2], w=w + p[1] + p[3], pads=(0, 0, 0, 0))
        first.prim = K.quantize_nchw(n, c, h, w, (p[0], p[1], p[2], p[3] + padded.slack))
        first.out_shape = padded.in_shape
        return padded

    def maxpool(self, node):
        a = _attrs(node)
        x = self.activation(node.input[0], "MaxPool")
        if x.fmap is None or a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
            _fail("MaxPool: only floor-mode, undilated pools on a feature map")
        pads = tuple(a.get("pads", [0, 0, 0, 0]))
        prim, (oh, ow) = K.maxpool(*x.fmap, x.cols, tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1])), pads)
        rows = x.fmap[0] * oh * ow
        step = self.emit(x, "qmaxpool", prim, [], (x.fmap[0], oh, ow, x.cols), in_shape=(*x.fmap, x.cols))
        return Deq(QAct(step, x.scale, x.zp, rows, x.cols, (x.fmap[0], oh, ow)))

    def flatten(self, node):
        x = self.activation(node.input[0], node.op_type)
        if node.op_type == "Reshape":
            shape = self.consts.get(node.input[1])
            if shape is None or len(shape) != 2:
                _fail("Reshape: only a reshape to 2-D (a flatten) is supported")
        elif _attrs(node).get("axis", 1) != 1:
            _fail("Flatten: only axis 1 is supported")
        if x.fmap is None:
            return Deq(x)
        n, h, w = x.fmap
        return Deq(QAct(x.step, x.scale, x.zp, n, h * w * x.cols, None, (h, w, x.cols)))


def _qp(scale: float, zp: int) -> np.ndarray:
    return np.array([scale, zp], np.float32)


def _per_channel(scale: np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(scale.reshape(-1), (n,)).astype(np.float64) if scale.size in (1, n) else _fail(
        f"weight scales: {scale.size} values for {n} output channels")


def _gemm_shape(p: Pending, m: int, k: int, scale: float | None, zp: int) -> K.GemmShape:
    """The layer as a GEMM; after a ReLU its u8 output is clipped at the zero point (real 0)."""
    return K.GemmShape(m, k, p.w.shape[0], float_out=scale is None, lo=float(zp) if p.relu and scale is not None else 0.0)


def _epilogue(p: Pending, scale: float | None, zp: int) -> tuple[np.ndarray, np.ndarray]:
    """mul, add of the fused epilogue (see int8_kernels.py), in float64 then float32."""
    ws = p.x.scale * p.w_scale
    add = p.bias - ws * p.x.zp * p.w.astype(np.int64).sum(axis=1)
    if scale is None:
        return ws.astype(np.float32), add.astype(np.float32)
    return (ws / scale).astype(np.float32), (add / scale + zp).astype(np.float32)


def pack_weights(w: np.ndarray, s: K.GemmShape) -> np.ndarray:
    """[N, K] s8 -> [N/16, K/4, 16, 4], zero-padded to whole blocks."""
    padded = np.zeros((s.n_padded, s.k), np.int8)
    padded[: w.shape[0], : w.shape[1]] = w
    return padded.reshape(s.n_padded // K.LANES, K.LANES, s.k // K.GROUP, K.GROUP).transpose(0, 2, 1, 3)


def is_qdq(model) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def lower_qdq(model, input_name: str, input_shape: tuple[int, int, int, int]) -> Program:
    """The program of a QDQ model at the given (batch-specific) input shape."""
    w = _Walker(model, input_name, input_shape)
    ops = {"QuantizeLinear": w.quantize, "DequantizeLinear": w.dequantize, "Conv": w.conv, "Gemm": w.gemm,
           "MaxPool": w.maxpool, "Flatten": w.flatten, "Reshape": w.flatten}
    for node in model.graph.node:
        if node.op_type == "Constant":  # a shape or a scale written as a node, not an initializer
            value = _attrs(node)
            v = next(iter(value.values()), None) if len(value) == 1 else None
            if v is None:
                _fail(f"Constant ({node.output[0]}) has no single value")
            from onnx import numpy_helper

            w.consts[node.output[0]] = numpy_helper.to_array(v) if hasattr(v, "raw_data") else np.asarray(v)
            continue
        if node.op_type not in SUPPORTED:
            _fail(f"{node.op_type} ({node.name or node.output[0]}) has no int8 kernel here "
                  f"(supported: {', '.join(SUPPORTED)})")
        if node.op_type in ops:
            w.values[node.output[0]] = ops[node.op_type](node)
        else:
            w.values[node.output[0]] = _passthrough(w, node)
    out = w.values.get(model.graph.output[0].name)
    if isinstance(out, Pending):
        out = w.finish(out, None)
    elif isinstance(out, Deq):
        q = out.q
        step = w.emit(q, "dequantize", K.dequantize(q.rows, q.cols), [_qp(q.scale, q.zp)], (q.rows, q.cols),
                      "float32")
        out = QAct(step, 1.0, 0, q.rows, q.cols)
    else:
        _fail("the graph's output is not computed by a quantized layer")
    w.program.output_classes = out.cols
    return w.program


def _passthrough(w: _Walker, node):
    x = w.values.get(node.input[0])
    if node.op_type == "Relu":
        if isinstance(x, Pending):
            x.relu = True
            return x
        if isinstance(x, Deq):
            return Deq(w.requantize(x.q, x.q.scale, x.q.zp, lo=float(x.q.zp)))
        _fail("Relu: its input is not quantized")
    if node.op_type == "AveragePool":
        a = _attrs(node)
        if list(a.get("kernel_shape", [])) != [1, 1] or any(a.get("pads", [0]))  or any(
                s != 1 for s in a.get("strides", [1, 1])):
            _fail("AveragePool: only the identity pool (1x1, stride 1) is supported")
    return x
