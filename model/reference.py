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
    """The eager (or scripted) module behind any of our model files, in eval mode.

    A torch.export program is specialised on its example batch: it is run in
    chunks of that batch (see ``program_batch``)."""
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


def program_batch(path: Path) -> int | None:
    """The batch a .pt2 program was exported at (None for batch-agnostic formats)."""
    if _detect(path) != "pt2":
        return None
    ep = torch.export.load(str(path))
    user = [n for n in ep.graph.nodes if n.op == "placeholder" and n.name in ep.graph_signature.user_inputs]
    return int(user[0].meta["val"].shape[0])


def torch_reference(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    from alexnet_tvm.runtime.bench import run_in_batches

    module, _ = load_torch_module(path)
    batch = program_batch(path)
    if threads:
        torch.set_num_threads(threads)

    def once(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    return lambda x: run_in_batches(once, x, batch)


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
    from .export import ExportConfig, export_onnx_file

    pb = program_batch(path)
    x = torch.zeros(pb or batch, 3, size, size)
    export_onnx_file(module, x, out, ExportConfig(checkpoint=path, fmt="onnx", out=out, dynamic_batch=pb is None))
    return out
