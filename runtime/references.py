"""Torch-free reference runtimes for verify and bench (ONNX Runtime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alexnet_tvm.errors import VerifyError


class OnnxRuntimeReference:
    """Runs an ONNX file, chunking to its fixed batch when it has one."""

    def __init__(self, path: Path, threads: int | None = None, profile_prefix: str | None = None):
        """``profile_prefix``: record ONNX Runtime's per-node profile there (see layers.py)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        if profile_prefix:
            opts.enable_profiling = True
            opts.profile_file_prefix = profile_prefix
        try:
            self.sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise VerifyError(f"{path}: ONNX Runtime cannot load it ({type(e).__name__})") from None
        inp = self.sess.get_inputs()[0]
        self.name = inp.name
        self.batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from alexnet_tvm.batching import run_in_batches

        return run_in_batches(lambda c: self.sess.run(None, {self.name: c})[0],
                              np.ascontiguousarray(x, dtype=np.float32), self.batch)
