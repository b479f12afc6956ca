"""Fully connected layers written the one way, on the ONNX side where the weights are numbers.

Exporters write ``y = x W^T + b`` as Gemm(transB=1) (PyTorch), Gemm(transB=0) with the
weight stored (in, out) (TF/Keras converters), Gemm with alpha/beta scalings, or
MatMul + Add. Relax imports each as a different kernel, and a kernel with no tuning
record runs ~40x slower. Rewriting the initializers here (transpose, scale) costs
nothing at run time, and every form then becomes PyTorch's Gemm(transB=1), the form
whose kernels the committed records hold. A Gemm whose weights are not initializers
is left alone (it still imports, just without the rewrite).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


class _Graph:
    """The initializers and consumers of one ONNX graph, for in-place rewrites."""

    def __init__(self, model):
        from onnx import shape_inference

        self.model = model
        self.graph = model.graph
        self.inits = {i.name: i for i in self.graph.initializer}
        self.users: dict[str, int] = {}
        for n in self.graph.node:
            for name in n.input:
                self.users[name] = self.users.get(name, 0) + 1
        for o in self.graph.output:
            self.users[o.name] = self.users.get(o.name, 0) + 1
        try:
            inferred = shape_inference.infer_shapes(model).graph
            self.ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in inferred.value_info}
        except Exception:  # an unusual graph: no rank facts, so no MatMul rewrite
            self.ranks = {}

    def array(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        init = self.inits.get(name)
        return None if init is None else numpy_helper.to_array(init)

    def put(self, name: str, array: np.ndarray, suffix: str) -> str:
        """A new initializer (an initializer may be shared, so it is never edited in place)."""
        from onnx import numpy_helper

        new = f"{name}__{suffix}"
        init = numpy_helper.from_array(np.ascontiguousarray(array), new)
        self.graph.initializer.append(init)
        self.inits[new] = init
        return new


def _attr(node, name: str, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _set_attrs(node, **values) -> None:
    from onnx import helper

    kept = [a for a in node.attribute if a.name not in values]
    del node.attribute[:]
    node.attribute.extend(kept + [helper.make_attribute(k, v) for k, v in values.items()])


def _plain_gemm(g: _Graph, node) -> bool:
    """Gemm(transB 0, alpha, beta) -> Gemm(transB 1, alpha 1, beta 1) with rewritten weights."""
    alpha, beta = float(_attr(node, "alpha", 1.0)), float(_attr(node, "beta", 1.0))
    trans_b = int(_attr(node, "transB", 0))
    weight = g.array(node.input[1])
    if weight is None or weight.ndim != 2 or (trans_b == 1 and alpha == 1.0 and beta == 1.0):
        return False
    has_bias = len(node.input) > 2 and node.input[2] != ""
    bias = g.array(node.input[2]) if has_bias else None
    if has_bias and bias is None and beta != 1.0:
        return False
    w = (weight if trans_b else weight.T) * np.asarray(alpha, dtype=weight.dtype)
    node.input[1] = g.put(node.input[1], w.astype(weight.dtype), "canonical")
    if bias is not None and beta != 1.0:
        node.input[2] = g.put(node.input[2], (bias * np.asarray(beta, dtype=bias.dtype)).astype(bias.dtype), "canonical")
    _set_attrs(node, alpha=1.0, beta=1.0, transB=1)
    return True


def _matmul_add_pairs(g: _Graph):
    """(MatMul, Add) pairs that are one fully connected layer: 2-D data, 2-D weight, 1-D bias."""
    producers = {n.output[0]: n for n in g.graph.node if n.op_type == "MatMul"}
    for add in g.graph.node:
        if add.op_type != "Add" or len(add.input) != 2:
            continue
        for mm_out, bias_name in (add.input, add.input[::-1]):
            mm = producers.get(mm_out)
            bias, weight = g.array(bias_name), g.array(mm.input[1]) if mm else None
            if (mm is None or g.users.get(mm_out) != 1 or weight is None or weight.ndim != 2 or bias is None
                    or bias.shape != (weight.shape[1],) or g.ranks.get(mm.input[0]) != 2):
                continue
            yield mm, add, bias_name
            break


def _fuse_matmul_add(g: _Graph) -> int:
    from onnx import helper

    pairs = list(_matmul_add_pairs(g))
    for mm, add, bias_name in pairs:
        weight = g.array(mm.input[1])
        w = g.put(mm.input[1], weight.T, "canonical")
        gemm = helper.make_node("Gemm", [mm.input[0], w, bias_name], list(add.output), name=f"{add.name}_gemm",
                                transB=1)
        index = list(g.graph.node).index(add)
        g.graph.node.remove(mm)
        g.graph.node.remove(add)
        g.graph.node.insert(index - 1, gemm)
    return len(pairs)


def canonical_fc(model) -> int:
    """Rewrite ``model``'s fully connected layers in place; return how many were rewritten."""
    g = _Graph(model)
    count = _fuse_matmul_add(g)
    count += sum(_plain_gemm(g, n) for n in g.graph.node if n.op_type == "Gemm")
    if count:
        used = {name for n in g.graph.node for name in n.input}
        stale = [i for i in g.graph.initializer if i.name not in used]
        for init in stale:
            g.graph.initializer.remove(init)
        stale_names = {i.name for i in stale}
        for inp in [i for i in g.graph.input if i.name in stale_names]:  # IR < 4 lists initializers as inputs
            g.graph.input.remove(inp)
        log.info("rewrote %d fully connected layer(s) into the canonical Gemm form", count)
    return count
