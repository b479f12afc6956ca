"""Per-layer time inside the whole model, for TVM and ONNX Runtime side by side.

Why in the model and not per task: a kernel timed alone runs back to back with its weights
in cache, but in AlexNet the FC layers stream 234 MB per inference through the L3, so in
the model no layer finds its weights there. Tuned FC3 ran 0.31 ms alone and 1.69 ms in the
model; only an in-model breakdown shows where a gap to another runtime really is.

TVM: the Relax VM calls an instrument before and after every call; the time between the two
is one kernel. ONNX Runtime: its own profiler's per-node kernel times. Layers are matched by
kind (conv, pool, fc) and order, since the two graphs name and fuse them differently.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: kinds that are layers of the network; anything else is summed as "other"
KINDS = ("conv", "pool", "fc")


@dataclass
class LayerTime:
    layer: str
    tvm_ms: float | None
    ort_ms: float | None

    @property
    def ratio(self) -> float | None:
        """ORT time over TVM time: >1 means TVM is faster on this layer."""
        if self.tvm_ms and self.ort_ms:
            return self.ort_ms / self.tvm_ms
        return None

    def to_dict(self) -> dict:
        return {"layer": self.layer, "tvm_ms": self.tvm_ms, "onnxruntime_ms": self.ort_ms,
                "speedup_vs_onnxruntime": self.ratio}


def tvm_kind(name: str) -> str:
    if "conv2d" in name or name.startswith("qconv"):  # fp32 (Relax) or int8 (a direct conv)
        return "conv"
    if "matmul" in name or "dense" in name:
        return "fc"
    if "pool" in name and "adaptive" not in name:
        return "pool"
    return "other"


def ort_kind(op: str) -> str:
    if op in ("Conv", "FusedConv", "QLinearConv"):
        return "conv"
    if op in ("Gemm", "FusedGemm", "MatMul", "FusedMatMul", "QGemm", "QLinearMatMul", "MatMulIntegerToFloat"):
        return "fc"
    if op in ("MaxPool", "AveragePool", "NhwcMaxPool", "QLinearAveragePool"):
        return "pool"
    return "other"


def _medians(samples: dict[str, list[float]], order: list[str], runs: int) -> list[tuple[str, float]]:
    """Median time per call site, in call order (each name is one call site per run)."""
    return [(n, float(np.median(samples[n])) * len(samples[n]) / runs) for n in order]


def tvm_kernel_times(vm, args: list, runs: int = 20, warmup: int = 3) -> list[tuple[str, float]]:
    """(kernel, median ms) in call order for one ``main`` call; VM built-ins (allocation,
    shape checks) are summed into one entry."""
    for _ in range(warmup):
        vm["main"](*args)
    samples: dict[str, list[float]] = defaultdict(list)
    order: list[str] = []
    start: list[float] = [0.0]

    def instrument(func, symbol, before_run, ret_value, *call_args):
        now = time.perf_counter()
        if before_run:
            start[0] = now
        else:
            name = "vm builtins" if symbol.startswith("vm.builtin.") else symbol
            samples[name].append(1e3 * (now - start[0]))
            if name not in order:
                order.append(name)
        return 0  # VMInstrumentReturnKind.NO_OP: run the call as usual

    vm.set_instrument(instrument)
    try:
        for _ in range(runs):
            vm["main"](*args)
    finally:
        vm.set_instrument(None)
    return _medians(samples, order, runs)


def ort_node_times(onnx_path: Path, x: np.ndarray, threads: int, runs: int = 20,
                   warmup: int = 3) -> list[tuple[str, str, float]]:
    """(node, op type, median ms) in execution order, from ONNX Runtime's own profiler."""
    from .references import OnnxRuntimeReference

    with tempfile.TemporaryDirectory() as tmp:
        ref = OnnxRuntimeReference(onnx_path, threads, profile_prefix=os.path.join(tmp, "ort"))
        for _ in range(warmup + runs):
            ref(x)
        events = json.loads(Path(ref.sess.end_profiling()).read_text())
    samples: dict[str, list[float]] = defaultdict(list)
    ops: dict[str, str] = {}
    order: list[str] = []
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            samples[name].append(e["dur"] / 1e3)
            ops[name] = e.get("args", {}).get("op_name", "")
            if name not in order:
                order.append(name)
    # the warm-up runs are profiled too: keep each node's last ``runs`` samples
    samples = {n: v[-runs:] for n, v in samples.items()}
    return [(n, ops[n], t) for n, t in _medians(samples, order, runs)]


def _tvm_kinds(tvm_times: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """(kind, ms) per TVM kernel. An int8 conv is one direct conv (qconv), or two kernels, im2col
    and its GEMM (qgemm), that count as one conv; a GEMM with no im2col before it is an FC layer."""
    out: list[tuple[str, float]] = []
    pending = None
    for name, ms in tvm_times:
        if name.startswith("im2col"):
            pending = ms
            continue
        kind = tvm_kind(name)
        if name.startswith("qgemm"):
            kind = "conv" if pending is not None else "fc"
        out.append((kind, ms + (pending or 0.0)))
        pending = None
    return out


def _ort_by_kind(ort_times: list[tuple[str, str, float]]) -> dict[str, list[float]]:
    """ORT node times by layer kind, in execution order (the rank pairs them with TVM's)."""
    by_kind: dict[str, list[float]] = defaultdict(list)
    for _, op, ms in ort_times:
        by_kind[ort_kind(op)].append(ms)
    return by_kind


def match_layers(tvm_times: list[tuple[str, float]], ort_times: list[tuple[str, str, float]]) -> list[LayerTime]:
    """conv1..N, pool1..N, fc1..N paired by order within their kind; the rest summed as 'other'."""
    by_kind_tvm: dict[str, list[float]] = defaultdict(list)
    for kind, ms in _tvm_kinds(tvm_times):
        by_kind_tvm[kind].append(ms)
    by_kind_ort = _ort_by_kind(ort_times)
    rows = []
    for kind in KINDS:
        t, o = by_kind_tvm.get(kind, []), by_kind_ort.get(kind, [])
        for i in range(max(len(t), len(o))):
            rows.append(LayerTime(f"{kind}{i + 1}", t[i] if i < len(t) else None, o[i] if i < len(o) else None))
    rows.append(LayerTime("other", sum(by_kind_tvm.get("other", [])), sum(by_kind_ort.get("other", []))))
    rows.append(LayerTime("sum", sum(ms for _, ms in tvm_times), sum(ms for _, _, ms in ort_times)))
    return rows


def kernel_losses(tvm_times: list[tuple[str, float]], ort_times: list[tuple[str, str, float]]) -> dict[str, float]:
    """TVM kernel -> milliseconds it loses to the ONNX Runtime node of its kind and rank (conv2
    against ORT's second conv), for the kernels that lose; what ``tune --adapt`` tunes."""
    ort = _ort_by_kind(ort_times)
    rank: dict[str, int] = defaultdict(int)
    lost: dict[str, float] = {}
    for name, ms in tvm_times:
        kind = tvm_kind(name)
        if kind == "other":
            continue
        i = rank[kind]
        rank[kind] += 1
        if i < len(ort[kind]) and ms > ort[kind][i]:
            lost[name] = lost.get(name, 0.0) + ms - ort[kind][i]
    return lost


def layers_markdown(batch: int, rows: list[dict]) -> str:
    lines = [f"### batch {batch}", "", "| layer | TVM ms | ORT ms | TVM vs ORT |", "|---|---|---|---|"]
    for r in rows:
        t = "-" if r["tvm_ms"] is None else f"{r['tvm_ms']:.3f}"
        o = "-" if r["onnxruntime_ms"] is None else f"{r['onnxruntime_ms']:.3f}"
        s = "-" if r["speedup_vs_onnxruntime"] is None else f"{r['speedup_vs_onnxruntime']:.2f}x"
        lines.append(f"| {r['layer']} | {t} | {o} | {s} |")
    return "\n".join(lines) + "\n"
