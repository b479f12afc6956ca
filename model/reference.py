"""PyTorch references for verify and bench, and ONNX files for ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from alexnet_tvm.errors import VerifyError
from alexnet_tvm.meta import ModelMeta

from .formats import detect_format, program_batch


def load_torch_module(path: Path) -> tuple[torch.nn.Module, ModelMeta | None, int | None]:
    """The eager (or scripted) module behind any of our model files, in eval mode, and the
    batch it is fixed to: a torch.export program is specialised on its example batch and
    must be run in chunks of it (None: any batch)."""
    from .checkpoint import load_any_checkpoint

    path = Path(path)
    fmt = detect_format(path)
    if fmt == "checkpoint":
        return (*load_any_checkpoint(path), None)
    if fmt == "torchscript":
        return torch.jit.load(str(path), map_location="cpu").eval(), None, None
    if fmt == "pt2":
        ep = torch.export.load(str(path))
        return ep.module(), None, program_batch(ep)
    raise VerifyError(f"{path}: an ONNX model has no PyTorch form; verify with --against onnxruntime "
                      "or pass --model CHECKPOINT")


def torch_reference(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    from alexnet_tvm.batching import run_in_batches

    module, _, batch = load_torch_module(path)
    if threads:
        torch.set_num_threads(threads)

    def once(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    return lambda x: run_in_batches(once, x, batch)


def onnx_file_for(path: Path, batch: int, workdir: Path, input_size: int | None = None) -> Path:
    """The model as ONNX: the file itself, or an export (dynamic batch) into ``workdir``
    (the caller's temp folder, which it removes). ``input_size``: where the file has no
    sidecar, the size the artifact was built at (its manifest knows it)."""
    path = Path(path)
    if detect_format(path) == "onnx":
        return path
    module, meta, pb = load_torch_module(path)
    size = input_size or (meta.input_size if meta else None)
    if size is None:
        from alexnet_tvm.meta import read_sidecar

        size = read_sidecar(path).input_size
    out = Path(workdir) / "reference.onnx"
    from .export import ExportConfig, export_onnx_file

    x = torch.zeros(pb or batch, 3, size, size)
    export_onnx_file(module, x, out, ExportConfig(checkpoint=path, fmt="onnx", out=out, dynamic_batch=pb is None))
    return out
