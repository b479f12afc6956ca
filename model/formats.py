"""Which kind of model file this is, told from its bytes (not its suffix alone).

Shared by the importer (compile/) and the PyTorch references, so both read a file
the same way.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from alexnet_tvm.errors import ModelFormatError

FORMATS = ("onnx", "torchscript", "pt2", "checkpoint")


def detect_format(path: Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such model file")
    if zipfile.is_zipfile(path):
        try:
            names = zipfile.ZipFile(path).namelist()
        except zipfile.BadZipFile:
            raise ModelFormatError(f"{path}: damaged zip archive") from None
        if any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("/archive_format") for n in names):
            return "pt2"
        if any(n.endswith("/data.pkl") for n in names):
            return "checkpoint"
        raise ModelFormatError(f"{path}: a zip archive but not a PyTorch model")
    if path.suffix == ".onnx":
        return "onnx"
    head = path.read_bytes()[:64]
    if head[:1] == b"\x08":  # ONNX ModelProto starts with ir_version (field 1, varint)
        return "onnx"
    raise ModelFormatError(f"{path}: unknown model format (expected .onnx, TorchScript .pt, .pt2 or a checkpoint)")


def program_batch(ep) -> int:
    """The batch a torch.export program was exported at: it is specialised on it."""
    sig = ep.graph_signature.user_inputs
    user = [n for n in ep.graph.nodes if n.op == "placeholder" and n.name in sig]
    return int(user[0].meta["val"].shape[0])
