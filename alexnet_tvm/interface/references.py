"""The reference runtime an artifact is compared with (verify, evaluate): one choice, one cleanup.

PyTorch runs the source file itself; ONNX Runtime runs it as ONNX, exported into a
temporary folder when the source is a PyTorch file. The folder (240 MB for AlexNet-1000)
is removed on every exit path, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from alexnet_tvm.errors import VerifyError

AGAINST = ("pytorch", "onnxruntime", "onnxruntime-int8")

Reference = Callable[[np.ndarray], np.ndarray]


def source_model(model: Path | None, manifest: dict) -> Path:
    """The file the artifact was built from (or ``--model``), which the reference runs."""
    path = Path(model or manifest["model"]["file"])
    if not path.is_file():
        raise VerifyError(f"{path}: the source model is not here; pass --model PATH")
    return path


@contextlib.contextmanager
def reference_runtime(against: str, source: Path, art) -> Iterator[Reference]:
    """``numpy batch -> logits`` of ``source`` under ``against``: PyTorch, ONNX Runtime, or
    (int8 artifacts) ONNX Runtime on the QDQ model the artifact ships (same calibration)."""
    if against not in AGAINST:
        raise VerifyError(f"unknown reference {against!r} ({', '.join(AGAINST)} or ascend:RESULTS_DIR)")
    if against == "pytorch":
        from alexnet_tvm.model.reference import torch_reference

        yield torch_reference(source)
        return
    from alexnet_tvm.runtime.references import OnnxRuntimeReference

    if against == "onnxruntime-int8":
        from alexnet_tvm.artifact_format import INT8_REFERENCE

        if INT8_REFERENCE not in art.manifest["files"]:
            raise VerifyError(f"{art.folder}: onnxruntime-int8 needs an int8 artifact (build --precision int8); "
                              f"this one is {art.manifest.get('precision', 'fp32')}")
        yield OnnxRuntimeReference(Path(art.folder) / INT8_REFERENCE)
        return
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-onnx-") as tmp:
        if source.suffix == ".onnx":
            onnx_path = source
        else:
            from alexnet_tvm.model.reference import onnx_file_for

            onnx_path = onnx_file_for(source, art.batch, Path(tmp), art.meta.input_size)
        yield OnnxRuntimeReference(onnx_path)
