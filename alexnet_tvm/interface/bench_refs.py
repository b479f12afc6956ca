"""The runtimes ``bench`` compares TVM with, made for one thread count, and the counts they run at.

PyTorch's intra-op pool is the process's (set per row); ONNX Runtime and OpenVINO fix
their threads when a session is made, so each row gets its own sessions. What each
runtime reports back is what the row records, not what was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .openvino_ref import NAME as OPENVINO


@dataclass
class Sources:
    """What the reference runtimes are made from, once per bench run."""

    size: int
    flops: float
    weight_bytes: int
    #: the file ONNX Runtime and OpenVINO read (the model itself, or its export)
    onnx_path: Path
    #: the PyTorch module's call; None for an ONNX file (no PyTorch form)
    torch_fn: Callable[[np.ndarray], np.ndarray] | None
    #: whether the openvino package imports (else the column is left out, with one warning)
    openvino: bool


def reference_runtimes(src: Sources, threads: int, shape: tuple[int, ...]) -> dict[str, Callable]:
    """PyTorch, ONNX Runtime and OpenVINO (when installed), each at ``threads`` threads, for inputs of ``shape``."""
    from alexnet_tvm.runtime.references import OnnxRuntimeReference

    refs: dict[str, Callable] = {}
    if src.torch_fn is not None:
        import torch

        torch.set_num_threads(threads)
        refs["pytorch"] = src.torch_fn
    refs["onnxruntime"] = OnnxRuntimeReference(src.onnx_path, threads)
    if src.openvino:
        from .openvino_ref import OpenVinoReference

        refs[OPENVINO] = OpenVinoReference(src.onnx_path, threads, shape)
    return refs


def threads_used(runtimes: dict[str, Callable]) -> dict[str, int]:
    """The thread count each runtime reports it runs on. For TVM: the pool of the calling thread,
    so call it on the thread that times the row (runtime.bench.with_tvm_threads)."""
    from alexnet_tvm.runtime.bench import tvm_pool_threads
    from alexnet_tvm.runtime.references import OnnxRuntimeReference

    from .openvino_ref import OpenVinoReference

    used = {}
    for name, fn in runtimes.items():
        if isinstance(fn, OnnxRuntimeReference):
            used[name] = int(fn.sess.get_session_options().intra_op_num_threads)
        elif isinstance(fn, OpenVinoReference):
            used[name] = fn.threads
        elif name == "pytorch":
            import torch

            used[name] = torch.get_num_threads()
        elif name.startswith("tvm"):
            used[name] = tvm_pool_threads()
    return used


def best_other(row: dict, others: tuple[str, ...]) -> str | None:
    """The fastest runtime of ``others`` in ``row`` (the headline ratio's denominator), or None."""
    present = [k for k in others if k in row]
    return min(present, key=lambda k: row[k]["median_ms"]) if present else None
