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
  a global pool on a 1x1 map) are dropped: each would be a copy kernel of its own.

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
            if isinstance(call.op, Op) and _is_identity_pool(call):
                self.changes += 1
                return call.args[0]
            if call.op == add:
                return self._bias_first(call)
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
