"""OpenVINO as a bench column: the ONNX file ONNX Runtime runs, on OpenVINO's CPU plugin.

Optional (``pip install 'alexnet-tvm[openvino]'``): without the package the column is left
out with one warning. The model is compiled with an f32 inference precision (no bf16 or
fp16 on CPUs that have them: the same arithmetic as the other columns), the latency
performance hint (one stream, one request: what a batch call is) and the row's thread count.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from alexnet_tvm.errors import ToolkitError

log = logging.getLogger(__name__)

NAME = "openvino"


def available() -> bool:
    """Whether OpenVINO imports; when not, one warning line says the column is left out."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        log.warning("bench: no OpenVINO column (openvino is not installed: pip install 'alexnet-tvm[openvino]')")
        return False
    return True


class OpenVinoReference:
    """``numpy batch -> logits`` of an ONNX file on OpenVINO's CPU plugin, at ``threads`` threads.

    A dynamic input shape is fixed to ``shape`` (OpenVINO plans memory once for a static one); an
    input fixed to another batch is fed in chunks of it, as ONNX Runtime's is."""

    def __init__(self, path: Path, threads: int, shape: tuple[int, ...]):
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(path))
            port = model.inputs[0]
            dims = port.get_partial_shape()
            self.batch = None if dims[0].is_dynamic else dims[0].get_length()
            if dims.is_dynamic:
                model.reshape({port.get_any_name(): ov.PartialShape([self.batch or shape[0], *shape[1:]])})
            self.compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                              "PERFORMANCE_HINT": "LATENCY",
                                                              "INFERENCE_NUM_THREADS": int(threads)})
        except Exception as e:  # openvino raises RuntimeError and its own types
            raise ToolkitError(f"{path}: OpenVINO cannot compile it ({str(e).splitlines()[0][:200]})") from None
        if self.batch == shape[0]:
            self.batch = None  # one call per batch
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)

    @property
    def threads(self) -> int:
        """The thread count the compiled model runs on, as OpenVINO reports it."""
        return int(self.compiled.get_property("INFERENCE_NUM_THREADS"))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from alexnet_tvm.batching import run_in_batches

        return run_in_batches(lambda c: np.array(self.request.infer({0: c})[self.output]),
                              np.ascontiguousarray(x, dtype=np.float32), self.batch)
