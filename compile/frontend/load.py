"""The one road from a model file to the prepared Relax module, shared by ``tune`` and ``build``.

fp32, bf16 and fp16 (fp16.py: CUDA only) go through importer.import_model and pipeline.prepare. int8 goes through a
QDQ ONNX model: the user's own (a file ORT's quantizer wrote builds as int8 whatever
``--precision`` says), or one made here from the fp32 model and ``--calibrate DATA``
(model/quantize.py), lowered to int8 kernels by qdq_import.py. Tune and build must reach
the same kernels, so both call :func:`load_prepared`.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from alexnet_tvm.errors import ToolkitError
from alexnet_tvm.model.describe import ModelOverrides, describe_onnx, onnx_io, sidecar_or
from alexnet_tvm.model.formats import detect_format
from alexnet_tvm.model.quantize import DEFAULT_CALIB_IMAGES, METHOD

from .fp16 import check_fp16_target, fp16_model
from .importer import ImportedModel, import_model, load_onnx
from .pipeline import prepare
from .precision import check_precision, with_precision

log = logging.getLogger(__name__)

#: the CPU flag int8 kernels need (vpdpbusd); documented in docs/int8.md
VNNI_FLAG = "avx512_vnni"


@dataclass
class Calibration:
    """``build/tune --calibrate DATA [--calib-images N]``."""

    data: str | None = None
    images: int = DEFAULT_CALIB_IMAGES


def qdq_model(path: Path):
    """The loaded ONNX model when ``path`` is a QDQ (quantized) ONNX file, else None."""
    from ..int8.qdq_import import is_qdq

    if detect_format(Path(path)) != "onnx":
        return None
    model = load_onnx(path)
    return model if is_qdq(model) else None


def check_int8_target(spec) -> None:
    if not spec.is_cpu or VNNI_FLAG not in (spec.host_features or []):
        raise ToolkitError(f"--precision int8 needs a CPU target with AVX-512 VNNI ({VNNI_FLAG} in its host_features); "
                           f"{spec.name} has none (int8 kernels are VNNI-only here: no slow fallback)")


def _lower(model, path: Path, batch: int, overrides: ModelOverrides, base: ImportedModel | None,
           quantization: dict) -> ImportedModel:
    from alexnet_tvm.fsutil import sha256_file

    from ..int8.module import program_module
    from ..int8.qdq_import import lower_qdq

    name, dims, _ = onnx_io(model, path)
    meta = base.meta if base else sidecar_or(path, lambda: describe_onnx(model, path), overrides)
    shape = (batch, 3, meta.input_size, meta.input_size)
    program = lower_qdq(model, name, shape)
    mod, params = program_module(program)
    src = base.source if base else Path(path)
    return ImportedModel(mod, params, base.input_name if base else name, shape, meta, src,
                         base.source_format if base else "onnx", base.source_sha256 if base else sha256_file(path),
                         precision="int8", quantization=quantization, qdq_onnx=Path(path))


def import_int8(path: Path, batch: int, overrides: ModelOverrides, calib: Calibration, workdir: Path,
                model=None) -> ImportedModel:
    """An int8 model: the QDQ file itself (``model``, already loaded), or the fp32 model quantized
    with ``calib`` in ``workdir``."""
    from alexnet_tvm.model.quantize import calibration_set, quantize_onnx
    from alexnet_tvm.model.reference import onnx_file_for

    from .onnx_canonical import canonical_fc

    if model is not None:
        if calib.data:
            raise ToolkitError(f"{path}: already quantized (QDQ ONNX); it builds as int8 without --calibrate")
        return _lower(model, path, batch, overrides, None, {"source": "the model file (QDQ ONNX)"})
    if not calib.data:
        raise ToolkitError("--precision int8 needs --calibrate DATA (an image folder, or 'digits' for the "
                           "embedded set), or a QDQ ONNX model file")
    base = import_model(path, 1, overrides)  # the model's meta, whatever its format
    fp32 = onnx_file_for(path, 1, workdir, base.meta.input_size)
    model = load_onnx(fp32)
    canonical_fc(model)  # Gemm(transB=1) for every FC form, as the fp32 road does
    import onnx

    onnx.save(model, str(workdir / "fp32.onnx"))
    cal = calibration_set(calib.data, base.meta, calib.images)
    qdq = quantize_onnx(workdir / "fp32.onnx", workdir / "model.int8.onnx", cal)
    info = {"source": "calibrated", "data": cal.source, "images": cal.count, "digest": cal.digest,
            "method": METHOD, "weights": "int8 symmetric per channel", "activations": "uint8 per tensor"}
    return _lower(load_onnx(qdq), qdq, batch, overrides, base, info)


def load_prepared(model: Path, batch: int, overrides: ModelOverrides | None, precision: str, calib: Calibration | None,
                  spec, target, workdir: Path) -> tuple[ImportedModel, object]:
    """(imported, prepared) for ``precision``; ``workdir`` holds the QDQ file an int8 build ships."""
    from ..int8.module import prepare_int8

    check_precision(precision)
    if precision == "fp16":
        check_fp16_target(spec)
    overrides = overrides or ModelOverrides()
    if precision != "int8" and calib and calib.data:
        raise ToolkitError("--calibrate is for --precision int8")
    qdq = qdq_model(model)
    if precision == "int8" or qdq is not None:
        if precision in ("bf16", "fp16"):
            raise ToolkitError(f"{model}: a QDQ (int8) ONNX model cannot be built as {precision}")
        check_int8_target(spec)
        imported = import_int8(Path(model), batch, overrides, calib or Calibration(), Path(workdir), qdq)
        log.info("int8: %d kernels from the QDQ graph", len(imported.params))
        return imported, prepare_int8(imported.mod, target)
    imported = import_model(model, batch, overrides)
    if precision == "fp16":  # the parameters change too (fp16.py)
        imported = fp16_model(imported)
        return imported, prepare(imported.mod, target, spec.conv_layout, spec.winograd_tile)
    return imported, prepare(with_precision(imported.mod, precision), target, spec.conv_layout, spec.winograd_tile)


def ship_qdq(imported: ImportedModel, dest: Path) -> str | None:
    """Copy the QDQ model into the artifact (ORT's int8 reference); its file name, or None."""
    if imported.qdq_onnx is None:
        return None
    shutil.copyfile(imported.qdq_onnx, dest)
    return dest.name
