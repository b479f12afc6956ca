"""The ONNX the Ascend ModelZoo's pth2onnx.py writes, from any of our checkpoints.

pth2onnx exports ``torchvision.models.alexnet()`` with input ``actual_input_1``,
output ``output1``, the batch axis of both named ``'-1'`` and opset 11 (what ATC
supports), from a ``torch.randn(1, 3, 224, 224)`` trace. Downstream files (the atc
``--input_shape``, ais_bench, vision_metric) rely on exactly those names, so the
export is checked against that contract and against eager PyTorch (at batch 1 and
at another batch, to prove the dynamic axis) before it is renamed into place.

The names and opset are the runtime's (``runtime/ascend/modelzoo.py``, their one home),
which this layer may not import: the caller hands them in as an :class:`OnnxContract`
(``alexnet_tvm.interface.ascend.modelzoo_contract``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from alexnet_tvm.errors import ExportError
from alexnet_tvm.fsutil import atomic_path, refuse_existing, write_json
from alexnet_tvm.meta import sidecar_path

from .checkpoint import load_any_checkpoint
from .export import ExportConfig, check_export, export_onnx_file, sample_input

log = logging.getLogger(__name__)

#: a batch other than the traced one, to run the dynamic axis for real
CHECK_BATCH = 3


class OnnxContract(NamedTuple):
    """The tensor names, batch axis name and opset the exported file must have."""

    input_name: str
    output_name: str
    batch_axis_name: str
    opset: int


@dataclass
class AscendExport:
    """What was written: the ONNX, its sidecar, and the worst difference from eager PyTorch."""

    out: Path
    arch: str
    num_classes: int
    input_size: int
    max_abs_error: float


def check_onnx_contract(path: Path, num_classes: int, input_size: int, contract: OnnxContract) -> None:
    """Raise unless the file has the contract's names, batch axis names, shapes and opset."""
    import onnx

    INPUT_NAME, OUTPUT_NAME, BATCH_AXIS_NAME, OPSET = contract

    model = onnx.load(str(path))
    opset = {o.domain: o.version for o in model.opset_import}.get("", None)
    if opset != OPSET:
        raise ExportError(f"{path}: opset {opset}, the ModelZoo contract is {OPSET}")
    ins = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    outs = list(model.graph.output)
    if [i.name for i in ins] != [INPUT_NAME] or [o.name for o in outs] != [OUTPUT_NAME]:
        raise ExportError(f"{path}: inputs {[i.name for i in ins]} / outputs {[o.name for o in outs]}, "
                          f"expected [{INPUT_NAME!r}] / [{OUTPUT_NAME!r}]")

    def dims(v) -> list:
        return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in v.type.tensor_type.shape.dim]

    want_in = [BATCH_AXIS_NAME, 3, input_size, input_size]
    want_out = [BATCH_AXIS_NAME, num_classes]
    if dims(ins[0]) != want_in or dims(outs[0]) != want_out:
        raise ExportError(f"{path}: shapes {dims(ins[0])} -> {dims(outs[0])}, expected {want_in} -> {want_out}")


def export_ascend_onnx(checkpoint: Path, out: Path, contract: OnnxContract, force: bool = False) -> AscendExport:
    """Write ``out`` (and its sidecar) as pth2onnx would, verified with ONNX Runtime first."""
    import onnxruntime as ort

    INPUT_NAME, OUTPUT_NAME, BATCH_AXIS_NAME, OPSET = contract

    checkpoint, out = Path(checkpoint), Path(out)
    if out.resolve() == checkpoint.resolve():
        raise ExportError(f"{out}: the export would overwrite its own checkpoint")
    refuse_existing(out, force)
    model, meta = load_any_checkpoint(checkpoint)
    cfg = ExportConfig(checkpoint=checkpoint, fmt="onnx", out=out, batch=1, opset=OPSET, input_name=INPUT_NAME,
                       output_name=OUTPUT_NAME, dynamic_batch=True, batch_axis_name=BATCH_AXIS_NAME, force=force)
    trace = sample_input(meta, 1)
    checks = [trace, sample_input(meta, CHECK_BATCH, seed=1)]
    with atomic_path(out) as tmp:
        with torch.no_grad():
            try:
                export_onnx_file(model, trace, tmp, cfg)
            except Exception as e:
                raise ExportError(f"ONNX export failed: {type(e).__name__}: {str(e).splitlines()[0]}") from None
            check_onnx_contract(tmp, meta.num_classes, meta.input_size, contract)
            sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            err = 0.0
            for x in checks:
                got = sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
                err = max(err, check_export(f"onnx (batch {len(x)})", np.asarray(got), model(x).numpy()))
    side = meta.to_dict()
    side["extra"] = {**meta.extra, "export": {
        "format": "onnx", "flavour": "ascend-modelzoo", "opset": OPSET, "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME, "dynamic_batch": True, "batch_axis_name": BATCH_AXIS_NAME,
        "source": str(checkpoint), "max_abs_error": err}}
    write_json(sidecar_path(out), side)
    log.info("wrote %s (ModelZoo contract, max abs error vs eager %.2e)", out, err)
    return AscendExport(out, meta.arch, meta.num_classes, meta.input_size, err)
