"""One canonical Relax graph for the same math, whatever exporter wrote the model.

MetaSchedule finds a tuning record by the structural hash of a fused kernel, so the same
AlexNet must reach the same kernels from a checkpoint (torch.export), TorchScript, ONNX
(Gemm with transB 0/1 and alpha/beta, MatMul+Add, Flatten or Reshape) and `.pt2`.
The exporters differ in ways that change no number but do change the kernels:

- a fully connected layer is ``add(bias, matmul(x, W^T))`` from torch.export (its addmm)
  but ``add(matmul(x, W^T), bias)`` from ONNX: the operand order of the add is part of
  the fused kernel, so the matmul's bias goes first (the form the committed records hold);
- ONNX's Gemm attributes (transB 0, alpha, beta) and MatMul+Add are rewritten into the
  plain Gemm on the ONNX side, where the weights are numbers (onnx_canonical.py);
- pools that are identities (AdaptiveAvgPool(6) on a 6x6 map, a 1x1/stride-1 AveragePool,
  a global pool on a 1x1 map) are dropped: each would be a copy kernel of its own;
- local response normalisation, which both PyTorch and ONNX exporters write out as ops:
  PyTorch pads, then pools, then squeezes; ONNX pools with padding, then reshapes. A zero
  padding counted in the average is made an explicit pad, and a reshape that only drops
  size-1 axes is a squeeze (PyTorch's form, the one the records hold).

Dropout and Identity need nothing here: every frontend drops them at inference.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def _spatial(ty) -> tuple[int, int] | None:
    shape = getattr(ty, "shape", None)
    values = getattr(shape, "values", None)
    if values is None or len(values) != 4:
        return None
    try:
        return int(values[2]), int(values[3])
    except TypeError:  # symbolic
        return None


def _is_identity_pool(call) -> bool:
    """A pool whose output equals its input (NCHW, as the frontends emit it): a 1x1/stride-1
    average pool, an adaptive pool to the input's own size, a global mean over a 1x1 map."""
    name = call.op.name
    attrs = call.attrs
    if name == "relax.nn.avg_pool2d":
        return (list(attrs.pool_size) == [1, 1] and list(attrs.strides) == [1, 1]
                and not any(int(p) for p in attrs.padding) and attrs.layout == "NCHW")
    if name == "relax.nn.adaptive_avg_pool2d":
        hw = _spatial(call.args[0].ty)
        out = attrs.output_size
        return (attrs.layout == "NCHW" and hw is not None and out is not None
                and tuple(int(v) for v in out) == hw)
    if name == "relax.mean":  # ONNX GlobalAveragePool
        axes = [int(a) for a in attrs.axis] if attrs.axis is not None else []
        return bool(attrs.keepdims) and sorted(axes) == [2, 3] and _spatial(call.args[0].ty) == (1, 1)
    return False


def _static_shape(ty) -> list[int] | None:
    values = getattr(getattr(ty, "shape", None), "values", None)
    try:
        return None if values is None else [int(v) for v in values]
    except TypeError:  # symbolic
        return None


def _explicit_pad(builder, call):
    """avg_pool{2,3}d(x, padding=p, count_include_pad) -> avg_pool(pad(x, p)): the same zeros
    counted the same way, in PyTorch's LRN form."""
    from tvm import relax

    name = call.op.name
    if name not in ("relax.nn.avg_pool2d", "relax.nn.avg_pool3d") or not call.attrs.count_include_pad:
        return None
    pads = [int(p) for p in call.attrs.padding]
    if not any(pads) or not call.attrs.layout.startswith("NC"):
        return None
    half = len(pads) // 2
    pad_width = [0, 0, 0, 0] + [v for i in range(half) for v in (pads[i], pads[i + half])]
    padded = builder.emit(relax.op.nn.pad(call.args[0], pad_width=pad_width, pad_value=0.0))
    pool = relax.op.nn.avg_pool2d if name.endswith("2d") else relax.op.nn.avg_pool3d
    a = call.attrs
    return pool(padded, pool_size=list(a.pool_size), strides=list(a.strides), padding=[0] * len(pads),
                dilation=list(a.dilation), ceil_mode=bool(a.ceil_mode), count_include_pad=True, layout=a.layout,
                out_layout=a.out_layout)


def _reshape_as_squeeze(call):
    """A reshape that only drops size-1 axes is a squeeze of those axes."""
    from tvm import relax

    if call.op.name != "relax.reshape":
        return None
    src, dst = _static_shape(call.args[0].ty), _static_shape(call.ty)
    if src is None or dst is None or len(dst) >= len(src):
        return None
    axes, j = [], 0
    for i, d in enumerate(src):
        if j < len(dst) and d == dst[j]:
            j += 1
        elif d == 1:
            axes.append(i)
        else:
            return None
    return relax.op.squeeze(call.args[0], axes) if j == len(dst) else None


def _make_mutator():
    """Build the mutator class lazily: tvm is imported only when a model is compiled."""
    from tvm import relax
    from tvm.ir import Op
    from tvm.relax.expr_functor import PyExprMutator, mutator

    add, matmul = Op.get("relax.add"), Op.get("relax.matmul")

    @mutator
    class Canonicalizer(PyExprMutator):
        def __init__(self, mod):
            super().__init__(mod)
            self.mod_ = mod
            self.changes = 0

        def _bound(self, expr, op):
            """The call ``expr`` is bound to, if it is a call of ``op``."""
            if not isinstance(expr, relax.Var):
                return None
            value = self.lookup_binding(expr)
            return value if isinstance(value, relax.Call) and value.op == op else None

        def visit_call_(self, call):
            call = super().visit_call_(call)
            if not isinstance(call.op, Op):
                return call
            if _is_identity_pool(call):
                self.changes += 1
                return call.args[0]
            if call.op == add:
                return self._bias_first(call)
            for rule in (lambda c: _explicit_pad(self.builder_, c), _reshape_as_squeeze):
                rewritten = rule(call)
                if rewritten is not None:
                    self.changes += 1
                    return rewritten
            return call

        def _bias_first(self, call):
            lhs, rhs = call.args
            if self._bound(lhs, matmul) is not None and self._bound(rhs, matmul) is None:
                self.changes += 1
                return relax.op.add(rhs, lhs)
            return call

        def run(self):
            for gv, func in self.mod_.functions_items():
                if isinstance(func, relax.Function):
                    self.builder_.update_func(gv, self.visit_expr(func))
            return self.builder_.get()

    return Canonicalizer


def canonicalize(mod):
    """The canonical form of ``mod`` (see the module docstring), dead bindings removed."""
    from tvm.relax import transform as T

    mutator = _make_mutator()(mod)
    out = mutator.run()
    log.debug("canonical graph: %d rewrites", mutator.changes)
    return T.DeadCodeElimination()(T.CanonicalizeBindings()(out))


def canonical_param_order(mod, params: list) -> tuple[object, list]:
    """``main``'s weights in the order the graph first uses them, and ``params`` to match;
    parameters the graph never reads are dropped.

    Exporters list weights in different orders (torch.export: weight then bias; ONNX:
    initializer order), which changes no kernel but does change the graph a build
    compiles; one order makes the imports of one network identical, whatever wrote them.
    """
    import tvm
    from tvm import relax

    func = mod["main"]
    n_in = int(func.attrs["num_input"])
    weights = list(func.params[n_in:])
    position = {w: i for i, w in enumerate(weights)}
    order: list[int] = []

    def visit(expr) -> None:
        if isinstance(expr, relax.Var) and expr in position and position[expr] not in order:
            order.append(position[expr])

    relax.analysis.post_order_visit(func.body, visit)
    if len(order) < len(weights):  # e.g. an ONNX Reshape's shape initializer, folded by the frontend
        log.debug("dropped %d unused parameter(s)", len(weights) - len(order))
    new = relax.Function(list(func.params[:n_in]) + [weights[i] for i in order], func.body, func.ret_ty,
                         func.is_pure, func.attrs, func.span)
    out = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)
    out["main"] = new
    return out, [params[i] for i in order]
