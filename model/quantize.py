"""Calibrate and quantize: an fp32 ONNX AlexNet into a QDQ ONNX model, with ONNX Runtime's quantizer.

Why ORT's quantizer and not our own: its QDQ file is both what TVM's int8 build lowers
(compile/int8/qdq_import.py) and the model ORT itself runs as the int8 reference, so the two
int8 results come from one calibration by construction, and a QDQ file a user made with
the same tool builds the same way.

The scheme (documented in docs/int8.md):
- weights: int8, symmetric (zero point 0), one scale per output channel;
- activations: uint8, asymmetric, one scale and zero point per tensor, from the min/max
  of the calibration images (``CalibrationMethod.MinMax``). After a ReLU the minimum is 0,
  so the zero point is 0 and the u8 clip is the ReLU. ORT's percentile method computes
  symmetric ranges, which would spend half of the u8 range on negative values that
  ReLU outputs never have, so it is not offered.
- calibration images: DATA (an ImageFolder or a flat folder, read recursively) or
  ``digits`` (the embedded set's training split), preprocessed by the model's meta exactly
  as at inference; up to ``count`` images spread evenly over the sorted file list.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_tvm.errors import DatasetError, ToolkitError
from alexnet_tvm.meta import ModelMeta
from alexnet_tvm.preprocess import eval_transform, load_image, walk_images

from .datasets import EMBEDDED

log = logging.getLogger(__name__)

DEFAULT_CALIB_IMAGES = 100
METHOD = "minmax"


@dataclass
class CalibrationSet:
    """Preprocessed calibration images and what identifies them (for the manifest)."""

    images: np.ndarray  # [N, 3, S, S] float32
    source: str
    digest: str  # sha256 of the preprocessed float32 images, in order
    count: int


def _pick(items: list, count: int) -> list:
    if count < 1:
        raise ToolkitError("--calib-images must be at least 1")
    step = max(1, len(items) // count)
    return items[::step][:count]


def _embedded_images(count: int) -> list:
    from .datasets import load_digits

    train = load_digits(0).train
    return [train.image(i) for i in _pick(list(range(len(train))), count)]


def calibration_set(data: str | Path, meta: ModelMeta, count: int = DEFAULT_CALIB_IMAGES) -> CalibrationSet:
    """Up to ``count`` images of ``data``, preprocessed by ``meta``; no image is an error."""
    if str(data) == EMBEDDED:
        pil = _embedded_images(count)
    else:
        root = Path(data)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such calibration folder")
        paths = _pick(sorted(walk_images(root)), count) if count >= 1 else []
        if not paths:
            raise DatasetError(f"{root}: no images to calibrate with (looked for image files at any depth)")
        pil = [load_image(p) for p in paths]
    arr = np.stack([eval_transform(im, meta.resize_size, meta.input_size, meta.mean, meta.std) for im in pil])
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    digest = "sha256:" + hashlib.sha256(arr.tobytes()).hexdigest()
    log.info("calibration: %d images from %s (%s)", len(arr), data, digest[:19])
    return CalibrationSet(arr, str(data), digest, len(arr))


class _Reader:
    """ORT's CalibrationDataReader protocol: one image per call, then None."""

    def __init__(self, name: str, images: np.ndarray):
        self.name, self.images, self.i = name, images, 0

    def get_next(self):
        if self.i >= len(self.images):
            return None
        self.i += 1
        return {self.name: self.images[self.i - 1: self.i]}

    def rewind(self) -> None:
        self.i = 0


def quantize_onnx(fp32: Path, out: Path, calib: CalibrationSet) -> Path:
    """Write the QDQ model of ``fp32`` (an ONNX file, batch 1 or dynamic) to ``out``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(fp32))
    init = {i.name for i in model.graph.initializer}
    name = next(i.name for i in model.graph.input if i.name not in init)
    quiet = _DropAdvice()  # ORT's quantizer logs "consider pre-processing" on the root logger, twice
    logging.getLogger().addFilter(quiet)
    try:
        quantize_static(str(fp32), str(out), _Reader(name, calib.images), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    except Exception as e:
        raise ToolkitError(f"{fp32}: ONNX Runtime's quantizer failed: {type(e).__name__}: "
                           f"{str(e).strip().splitlines()[-1][:200] if str(e).strip() else ''}") from None
    finally:
        logging.getLogger().removeFilter(quiet)
    return out


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()
