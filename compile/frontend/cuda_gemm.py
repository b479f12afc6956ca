"""GPU targets: every conv and fully connected layer as a GEMM that DLight's GPU rules schedule
with no tuning records (gpu_rules.py names the rule each kernel got).

Convolutions need no rewrite. DLight's ``Matmul`` rule (TVM 0.27, ``tvm.s_tir.dlight.gpu``)
takes a legalized NCHW ``conv2d`` as it is: its iterators classify as a GEMM's (batch and
output pixels -> rows, output channels -> columns, input channels x kernel window ->
reduction), and ``reindex`` + the shared-memory fetch gather the padded input patches
straight into shared memory, an implicit GEMM with no im2col buffer in global memory, bias
and ReLU fused into the store. tests/test_cuda_compile.py holds that for AlexNet's five convs.

Fully connected layers do need one. Every frontend gives ``matmul(x, permute_dims(W))``
(canonical.py), and on a GPU the transpose of the weights is a kernel of its own, run on
every inference (LiftTransformParams runs only on CPU targets), scheduled by the generic
``Fallback`` rule: at AlexNet-1000 that is 58 M weights read and written per call before
the first FC starts. It also leaves the reduction axis outermost in the weights, which
DLight's ``GEMV`` rule does not take at batch 1 (the generic ``Reduction`` rule did).
:func:`dense_fcs` replaces the pair with one ``dense`` kernel, ``y[m, n] = sum_k x[m, k] *
W[n, k]``, reading ``W`` as stored: no transpose kernel, and the reduction innermost in
both operands, the form ``GEMV`` (batch 1) and ``Matmul`` (batch > 1; tensor cores for
fp16 when every extent is over 64) are written for.

It runs in ``pipeline.prepare`` for GPU targets, so ``tune`` and ``build`` see the same kernels.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

#: the PrimFunc name hint of the FC kernel (fused kernels are named fused_dense_...)
DENSE = "dense"


def _dense(x, w, out_dtype: str):
    """x (M, K) . w (N, K)^T -> (M, N) in ``out_dtype`` (fp16 inputs accumulate in fp32)."""
    from tvm import te

    k = te.reduce_axis((0, x.shape[1]), name="k")
    return te.compute((x.shape[0], w.shape[0]),
                      lambda i, j: te.sum(x[i, k].astype(out_dtype) * w[j, k].astype(out_dtype), axis=k),
                      name="dense", tag="dense")


def _transposed_weight(value, permute, bindings: dict):
    """W when ``value`` is ``permute_dims(W, [1, 0])`` of a 2-D tensor; else None."""
    from tvm import relax

    if isinstance(value, relax.Var) and value in bindings:
        value = bindings[value]
    if not (isinstance(value, relax.Call) and value.op == permute):
        return None
    axes = value.attrs.axes
    w = value.args[0]
    if len(w.ty.shape) != 2 or (axes is not None and [int(a) for a in axes] != [1, 0]):
        return None
    return w


def dense_fcs(mod):
    """``mod`` with every 2-D ``matmul(x, permute_dims(W))`` in ``main`` as one ``dense(x, W)``
    kernel; the transposes, now unused, go (DeadCodeElimination)."""
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    matmul, permute = tvm.ir.Op.get("relax.matmul"), tvm.ir.Op.get("relax.permute_dims")
    func = mod["main"]
    bindings = {b.var: b.value for block in func.body.blocks for b in block.bindings}

    @mutator
    class Rewrite(PyExprMutator):
        """matmul(x, permute_dims(W)) -> call_tir(dense, x, W)."""

        def __init__(self, m):
            super().__init__(m)
            self.count = 0

        def visit_var_binding_(self, binding):
            value = binding.value
            w = None
            if isinstance(value, relax.Call) and value.op == matmul and len(value.args[0].ty.shape) == 2:
                w = _transposed_weight(value.args[1], permute, bindings)
            if w is None:
                super().visit_var_binding_(binding)
                return
            out_dtype = str(binding.var.ty.dtype)
            new = self.builder_.emit_te(_dense, self.visit_expr(value.args[0]), self.visit_expr(w), out_dtype,
                                        primfunc_name_hint=DENSE)
            self.set_var_remap(binding.var, new)
            self.count += 1

    rewriter = Rewrite(mod)
    new_main = rewriter.visit_expr(func)
    out = rewriter.builder_.get()  # holds the new PrimFuncs
    out["main"] = new_main
    log.debug("%d fully connected layers as dense kernels", rewriter.count)
    return relax.transform.DeadCodeElimination(["main"])(out)
