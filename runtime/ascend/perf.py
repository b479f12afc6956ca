"""Throughput and latencies from an ais_bench summary json (``{dir}_summary.json`` or ``sumary.json``)."""

from __future__ import annotations

from typing import Any


def _batchsize_from_args(args: Any) -> float | None:
    if isinstance(args, dict):
        v = args.get("batchsize")
        return float(v) if isinstance(v, (int, float)) else None
    if isinstance(args, list):
        for i, a in enumerate(args):
            a = str(a)
            if a.startswith("--batchsize="):
                a, val = a.split("=", 1)
            elif a == "--batchsize" and i + 1 < len(args):
                val = str(args[i + 1])
            else:
                continue
            try:
                return float(val)
            except ValueError:
                return None
    return None


def _stat(d: Any) -> dict | None:
    if not isinstance(d, dict):
        return None
    keys = ("min", "max", "mean", "median", "percentile(99%)")
    out: dict = {k: float(d[k]) for k in keys if isinstance(d.get(k), (int, float))}
    if isinstance(d.get("count"), int):
        out["count"] = d["count"]
    return out or None


def summary_perf(summary: dict | None) -> dict | None:
    """Throughput (fps) and latencies (ms) from an ais_bench summary; None without one.

    ``throughput`` is ais_bench's own ``1000*batchsize/NPU_compute_time.mean``; for
    several devices the per-device values are summed, as ais_bench reports them.
    """
    if not summary:
        return None
    if "devices" in summary and isinstance(summary["devices"], dict):
        per = {d: summary_perf(s) for d, s in summary["devices"].items()}
        tps = [p["throughput"] for p in per.values() if p and p.get("throughput") is not None]
        return {"throughput": sum(tps) if tps else None, "devices": per}
    tp = summary.get("throughput")
    return {
        "throughput": float(tp) if isinstance(tp, (int, float)) else None,
        "batchsize": _batchsize_from_args(summary.get("args")),
        "npu_compute_time_ms": _stat(summary.get("NPU_compute_time")),
        "h2d_latency_ms": _stat(summary.get("H2D_latency")),
        "d2h_latency_ms": _stat(summary.get("D2H_latency")),
    }
