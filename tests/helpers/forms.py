"""One network, every file form a user may bring it in, written the way other tools write them.

Each writer takes an eval-mode torch module (torchvision's ``alexnet()`` shape), an example
input and a folder, and writes one file with the exporter a user would call: plain
``torch.save``/``torch.jit``/``torch.onnx.export``/``torch.export``, and for the ONNX
variants that other exporters produce (Gemm with transB 0 or alpha/beta, MatMul+Add,
Reshape instead of Flatten) an edit of the TorchScript exporter's graph with ``onnx``'s
own helpers. No sidecar is written: the toolkit must read everything from the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper


def _onnx(model, x, path: Path, opset: int, dynamic: bool) -> Path:
    axes = {"data": {0: "batch"}} if dynamic else None
    torch.onnx.export(model, (x,), str(path), input_names=["data"], opset_version=opset, dynamo=False,
                      dynamic_axes=axes)
    return path


def _edit_onnx(model, x, path: Path, edit: Callable[[onnx.ModelProto], None]) -> Path:
    _onnx(model, x, path, 13, True)
    proto = onnx.load(str(path))
    edit(proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def _inits(proto) -> dict:
    return {i.name: i for i in proto.graph.initializer}


def _replace_init(proto, name: str, array: np.ndarray) -> None:
    init = _inits(proto)[name]
    init.CopyFrom(numpy_helper.from_array(array.astype(np.float32), name))


def _gemms(proto):
    return [n for n in proto.graph.node if n.op_type == "Gemm"]


def _set_attr(node, name: str, value) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept + [helper.make_attribute(name, value)])


def _gemm_trans_b0(proto) -> None:
    """Weights stored (in, out), as Keras/TF converters write them."""
    for n in _gemms(proto):
        w = numpy_helper.to_array(_inits(proto)[n.input[1]])
        _replace_init(proto, n.input[1], np.ascontiguousarray(w.T))
        _set_attr(n, "transB", 0)


def _gemm_alpha_beta(proto) -> None:
    """The same math with alpha 0.5 / beta 2 (weights doubled, biases halved)."""
    for n in _gemms(proto):
        inits = _inits(proto)
        _replace_init(proto, n.input[1], numpy_helper.to_array(inits[n.input[1]]) * 2.0)
        _replace_init(proto, n.input[2], numpy_helper.to_array(inits[n.input[2]]) * 0.5)
        _set_attr(n, "alpha", 0.5)
        _set_attr(n, "beta", 2.0)


def _matmul_add(proto) -> None:
    """Gemm split into MatMul (weights (in, out)) + Add, as some converters write it."""
    nodes = list(proto.graph.node)
    del proto.graph.node[:]
    for n in nodes:
        if n.op_type != "Gemm":
            proto.graph.node.append(n)
            continue
        w = numpy_helper.to_array(_inits(proto)[n.input[1]])
        _replace_init(proto, n.input[1], np.ascontiguousarray(w.T))
        mid = n.output[0] + "_mm"
        proto.graph.node.extend([helper.make_node("MatMul", [n.input[0], n.input[1]], [mid]),
                                 helper.make_node("Add", [mid, n.input[2]], list(n.output))])


def _reshape(proto) -> None:
    """Flatten written as Reshape(x, [0, -1])."""
    proto.graph.initializer.append(numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "flat_shape"))
    for n in proto.graph.node:
        if n.op_type == "Flatten":
            n.op_type = "Reshape"
            del n.attribute[:]
            n.input.append("flat_shape")


def _dynamo(model, x, path: Path) -> Path:
    torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=18, input_names=["data"],
                      dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, external_data=False)
    return path


def _pt2(model, x, path: Path) -> Path:
    with open(path, "wb") as f:
        torch.export.save(torch.export.export(model, (x,)), f)
    return path


def _state_dict(model, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


#: form name -> writer(model, x, folder) -> path of the written file (no sidecar)
WRITERS: dict[str, Callable] = {
    "state_dict": lambda m, x, d: _state_dict(m, d / "alexnet-owt.pth"),
    "torchscript_traced": lambda m, x, d: torch.jit.trace(m, x).save(str(d / "traced.pt")) or d / "traced.pt",
    "torchscript_scripted": lambda m, x, d: torch.jit.script(m).save(str(d / "scripted.pt")) or d / "scripted.pt",
    "onnx11_fixed": lambda m, x, d: _onnx(m, x, d / "o11f.onnx", 11, False),
    "onnx11_dynamic": lambda m, x, d: _onnx(m, x, d / "o11d.onnx", 11, True),
    "onnx13_fixed": lambda m, x, d: _onnx(m, x, d / "o13f.onnx", 13, False),
    "onnx13_dynamic": lambda m, x, d: _onnx(m, x, d / "o13d.onnx", 13, True),
    "onnx17_fixed": lambda m, x, d: _onnx(m, x, d / "o17f.onnx", 17, False),
    "onnx17_dynamic": lambda m, x, d: _onnx(m, x, d / "o17d.onnx", 17, True),
    "onnx18_dynamo": lambda m, x, d: _dynamo(m, x, d / "dynamo.onnx"),
    "onnx_gemm_transb0": lambda m, x, d: _edit_onnx(m, x, d / "transb0.onnx", _gemm_trans_b0),
    "onnx_gemm_alpha_beta": lambda m, x, d: _edit_onnx(m, x, d / "alpha.onnx", _gemm_alpha_beta),
    "onnx_matmul_add": lambda m, x, d: _edit_onnx(m, x, d / "matmul.onnx", _matmul_add),
    "onnx_reshape": lambda m, x, d: _edit_onnx(m, x, d / "reshape.onnx", _reshape),
    "pt2": lambda m, x, d: _pt2(m, x, d / "alexnet.pt2"),
}


def write_form(name: str, model, x, folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        return Path(WRITERS[name](model, x, folder))
