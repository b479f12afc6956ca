"""Reduced-precision builds: bf16 weights for the fully connected layers.

At batch 1 AlexNet is a weight-streaming problem: the three FC layers hold 95 % of the
parameters, and their GEMVs run at memory-read speed. Storing those weights as bf16 halves
the bytes read per inference while activations and accumulation stay fp32 (each weight is
widened in registers, where the cast is two cheap vector ops). The cast of the weights
depends only on parameters, so `LiftTransformParams` moves it into `main_transform_params`
and `build` runs it once; the library only ever reads bf16 weights.

The rewrite runs before `prepare`, in `tune` and `build` alike, so the tuned workloads
(bf16-weight matmuls) and the built ones match.
"""

from __future__ import annotations

from alexnet_tvm.errors import ToolkitError
from alexnet_tvm.meta import PRECISIONS


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ToolkitError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


def with_precision(mod, precision: str):
    """``mod`` with the FC weights stored as bf16 when ``precision`` is "bf16"."""
    check_precision(precision)
    if precision in ("int8", "fp16"):  # QDQ graphs, and fp16 parameters (fp16.py), come from frontend.py
        raise ValueError(f"{precision} modules come from frontend.load_prepared, not with_precision")
    if precision == "fp32":
        return mod
    return _bf16_fc_weights(mod)


def _bf16_fc_weights(mod):
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    func = mod["main"]
    num_input = int(func.attrs["num_input"]) if func.attrs and "num_input" in func.attrs else len(func.params)
    weights = set(func.params[num_input:])
    matmul, permute = tvm.ir.Op.get("relax.matmul"), tvm.ir.Op.get("relax.permute_dims")

    @mutator
    class Rewrite(PyExprMutator):
        """matmul(x, W) -> matmul(x, astype(W, bf16), out_dtype=fp32) where W comes from weights only."""

        def __init__(self, m):
            super().__init__(m)
            self.weight_derived = set(weights)
            self.count = 0

        def visit_var_binding_(self, binding):
            value = binding.value
            if isinstance(value, relax.Call) and value.op == permute and value.args[0] in self.weight_derived:
                self.weight_derived.add(binding.var)
            if (isinstance(value, relax.Call) and value.op == matmul and value.args[1] in self.weight_derived
                    and str(value.args[1].ty.dtype) == "float32"):
                x = self.visit_expr(value.args[0])
                w = self.builder_.emit(relax.op.astype(self.visit_expr(value.args[1]), "bfloat16"))
                new = self.builder_.emit(relax.op.matmul(x, w, out_dtype="float32"), binding.var.name)
                self.set_var_remap(binding.var, new)
                self.count += 1
                return
            super().visit_var_binding_(binding)

    rewriter = Rewrite(mod)
    new_main = rewriter.visit_expr(func)
    if rewriter.count == 0:
        raise ToolkitError("--precision bf16 found no fully connected layer with constant weights to convert")
    out = mod
    out["main"] = new_main
    return relax.transform.DeadCodeElimination(["main"])(out)
