"""PyTorch references for verify and bench, and ONNX files for ONNX Runtime."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from alexnet_tvm.errors import VerifyError
from alexnet_tvm.meta import ModelMeta


def _detect(path: Path) -> str:
    from alexnet_tvm.compile.importer import detect_format

    return detect_format(path)


def load_torch_module(path: Path) -> tuple[torch.nn.Module, ModelMeta | None]:
    """The eager (or scripted) module behind any of our model files, in eval mode."""
    from .checkpoint import load_any_checkpoint

    path = Path(path)
    fmt = _detect(path)
    if fmt == "checkpoint":
        return load_any_checkpoint(path)
    if fmt == "torchscript":
        return torch.jit.load(str(path), map_location="cpu").eval(), None
    if fmt == "pt2":
        return torch.export.load(str(path)).module(), None
    raise VerifyError(f"{path}: an ONNX model has no PyTorch form; verify with --against onnxruntime "
                      "or pass --model CHECKPOINT")


def torch_reference(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    module, _ = load_torch_module(path)
    if threads:
        torch.set_num_threads(threads)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    return run


def onnx_file_for(path: Path, batch: int, workdir: Path | None = None) -> Path:
    """The model as ONNX: the file itself, or an export (dynamic batch) into a temp folder."""
    path = Path(path)
    if _detect(path) == "onnx":
        return path
    module, meta = load_torch_module(path)
    size = meta.input_size if meta else None
    if size is None:
        from alexnet_tvm.meta import read_sidecar

        size = read_sidecar(path).input_size
    workdir = Path(workdir or tempfile.mkdtemp(prefix="alexnet-tvm-onnx-"))
    out = workdir / "reference.onnx"
    x = torch.zeros(batch, 3, size, size)
    torch.onnx.export(module, (x,), str(out), input_names=["input"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    return out
