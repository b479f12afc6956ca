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


#: a Winograd conv's GEMM, its one tuned kernel
WINOGRAD_GEMM = "winograd_bgemm"
#: kernels that belong to the conv they precede: an int8 im2col, Winograd's data transform and GEMM
CONV_PARTS = ("im2col", "winograd_data_transform", WINOGRAD_GEMM)
#: the kernel that ends a Winograd conv (a bias and ReLU the rewrite could not absorb follow it
#: as one elementwise kernel)
WINOGRAD_END = "winograd_inverse"


def tvm_kind(name: str) -> str:
    if "conv2d" in name or name.startswith(("qconv", WINOGRAD_END)):  # fp32 (Relax), int8, Winograd
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


def _medians(samples: dict[tuple[str, int], list[float]], order: list[tuple[str, int]],
             runs: int) -> list[tuple[str, float]]:
    """Median time per call site, in call order; a site is (kernel, its n-th call in a run)."""
    return [(n, float(np.median(samples[(n, k)])) * len(samples[(n, k)]) / runs) for n, k in order]


def tvm_kernel_times(vm, args: list, runs: int = 20, warmup: int = 3) -> list[tuple[str, float]]:
    """(kernel, median ms) per call site in call order for one ``main`` call: a kernel that two
    layers share (two Winograd inverses of one shape) is listed at both. VM built-ins
    (allocation, shape checks) are summed into one entry."""
    for _ in range(warmup):
        vm["main"](*args)
    samples: dict[tuple[str, int], list[float]] = defaultdict(list)
    order: list[tuple[str, int]] = []
    start: list[float] = [0.0]
    calls: dict[str, int] = defaultdict(int)  # calls of each kernel so far in this run

    def instrument(func, symbol, before_run, ret_value, *call_args):
        now = time.perf_counter()
        if before_run:
            start[0] = now
        else:
            builtin = symbol.startswith("vm.builtin.")
            site = ("vm builtins", 0) if builtin else (symbol, calls[symbol])
            calls[symbol] += not builtin
            samples[site].append(1e3 * (now - start[0]))
            if site not in order:
                order.append(site)
        return 0  # VMInstrumentReturnKind.NO_OP: run the call as usual

    vm.set_instrument(instrument)
    try:
        for _ in range(runs):
            calls.clear()
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
    # the warm-up runs are profiled too: keep each node's last ``runs`` samples (ONNX node names are unique)
    sites = {(n, 0): v[-runs:] for n, v in samples.items()}
    return [(n, ops[n], t) for n, t in _medians(sites, [(n, 0) for n in order], runs)]


def layer_calls(tvm_times: list[tuple[str, float]]) -> list[tuple[str, float, str]]:
    """(kind, ms, tuned kernel) per layer call, in order. A conv split into several kernels
    counts once with their times summed: an int8 im2col and its GEMM (qgemm), or Winograd's
    data transform, GEMM, inverse and the bias/ReLU kernel after it. Its tuned kernel is the
    GEMM; a qgemm with no im2col before it is an FC layer."""
    out: list[tuple[str, float, str]] = []
    parts: list[tuple[str, float]] = []
    after_winograd = False
    for name, ms in tvm_times:
        if name.startswith(CONV_PARTS):
            parts.append((name, ms))
            continue
        kind = tvm_kind(name)
        if after_winograd and kind == "other" and "add" in name:  # the Winograd conv's bias (+ ReLU)
            k, t, tuned = out[-1]
            out[-1] = (k, t + ms, tuned)
            after_winograd = False
            continue
        if name.startswith("qgemm"):
            kind = "conv" if parts else "fc"
        tuned = next((n for n, _ in parts if n.startswith(WINOGRAD_GEMM)), name)
        out.append((kind, ms + sum(t for _, t in parts), tuned))
        after_winograd = name.startswith(WINOGRAD_END)
        parts = []
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
    for kind, ms, _ in layer_calls(tvm_times):
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
    """Tuned TVM kernel -> milliseconds its layer loses to the ONNX Runtime node of its kind and
    rank (conv2 against ORT's second conv), for the layers that lose; what ``tune --adapt`` tunes."""
    ort = _ort_by_kind(ort_times)
    rank: dict[str, int] = defaultdict(int)
    lost: dict[str, float] = {}
    for kind, ms, name in layer_calls(tvm_times):
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
