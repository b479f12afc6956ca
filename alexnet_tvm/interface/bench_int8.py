"""``bench --int8``: TVM's int8 library and ONNX Runtime's own int8, in the same run as fp32.

Both int8 columns come from one QDQ model (one calibration): the artifact ships the QDQ
file it was lowered from, and ONNX Runtime runs that file on its MLAS int8 kernels
(VNNI/AMX where the CPU has them). The calibration set only sets scales, not speed, so
the default is the embedded digits; ``--calibrate DATA`` takes the user's images.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

#: the bench columns this adds, after bench.RUNTIMES' fp32 ones
RUNTIMES = ("onnxruntime-int8", "tvm-int8")
RATIOS = (("TVM int8 vs ORT", "int8_speedup_vs_onnxruntime"),
          ("TVM int8 vs ORT int8", "int8_speedup_vs_onnxruntime-int8"))


def wanted(requested: bool, spec) -> bool:
    """--int8 on a target without VNNI: one warning and no int8 columns, so ``make bench`` runs anywhere."""
    from alexnet_tvm.compile.frontend.load import check_int8_target
    from alexnet_tvm.errors import ToolkitError

    if not requested:
        return False
    try:
        check_int8_target(spec)
    except ToolkitError as e:
        log.warning("bench --int8 skipped: %s", e)
        return False
    return True


def add_runtimes(art_dir: Path, artifact, runtimes: dict, threads: int) -> None:
    """The int8 artifact's library and ORT on its QDQ model, as bench runtimes."""
    from alexnet_tvm.artifact_format import INT8_REFERENCE
    from alexnet_tvm.runtime.references import OnnxRuntimeReference

    runtimes["onnxruntime-int8"] = OnnxRuntimeReference(Path(art_dir) / INT8_REFERENCE, threads)
    runtimes["tvm-int8"] = artifact.run_batch


def add_ratios(row: dict) -> None:
    if "tvm-int8" not in row:
        return
    for ref in ("onnxruntime", "onnxruntime-int8"):
        if ref in row:
            row[f"int8_speedup_vs_{ref}"] = row[ref]["median_ms"] / row["tvm-int8"]["median_ms"]


def layer_rows(artifact, art_dir: Path, x, threads: int, runs: int) -> list[dict]:
    """TVM int8 against ORT int8, layer by layer (a conv is its im2col and its GEMM)."""
    from alexnet_tvm.artifact_format import INT8_REFERENCE
    from alexnet_tvm.runtime.layers import match_layers, ort_node_times

    rows = match_layers(artifact.kernel_times(x, runs), ort_node_times(Path(art_dir) / INT8_REFERENCE, x, threads, runs))
    return [r.to_dict() for r in rows]


def summary_lines(row: dict, where: str | None = None) -> list[str]:
    """``where``: the row's name in the summary (default "batch N")."""
    if "int8_speedup_vs_onnxruntime" not in row:
        return []
    where = where or f"batch {row['batch']}"
    line = f"{where}: TVM int8 is {row['int8_speedup_vs_onnxruntime']:.2f}x ONNX Runtime (fp32)"
    if "int8_speedup_vs_onnxruntime-int8" in row:
        line += f" and {row['int8_speedup_vs_onnxruntime-int8']:.2f}x ONNX Runtime int8"
    return [line]
