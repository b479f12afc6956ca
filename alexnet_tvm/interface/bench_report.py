"""What ``bench`` writes and says: bench.md's tables, bench.png, and the summary lines.

One row of bench.json is one (batch, thread count): every runtime timed on the same
inputs at the same threads. With one thread count the table has a row per batch and
the plot is images/s against batch; with several, a table per batch of images/s against
threads (one line per runtime) is added, and the plot is images/s against threads.
"""

from __future__ import annotations

from pathlib import Path

from . import bench_int8

#: the runtimes of a GPU row (bench_gpu.py)
GPU_RUNTIMES = ("pytorch-fp16", "pytorch-compile", "pytorch-compile-fp16", "tvm-fp16")
#: (title, key) of the GPU ratios (> 1: TVM faster)
GPU_RATIOS = (("TVM fp16 vs PyTorch autocast fp16", "fp16_speedup_vs_pytorch_fp16"),
              ("TVM vs torch.compile", "speedup_vs_pytorch_compile"),
              ("TVM fp16 vs torch.compile fp16", "fp16_speedup_vs_pytorch_compile_fp16"))
#: the runtimes TVM is compared with; the headline ratio is TVM over the fastest of them in the row
OTHERS = ("pytorch", "onnxruntime", "openvino")
RUNTIMES = OTHERS + ("tvm", "tvm-other", "tvm-bf16", "tvm-untuned") + bench_int8.RUNTIMES + GPU_RUNTIMES
NAMES = {"pytorch": "PyTorch", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}

BEST = ("TVM vs best other", "speedup_vs_best_other")
RATIOS = ((BEST, ("TVM vs PyTorch", "speedup_vs_pytorch"), ("TVM vs ORT", "speedup_vs_onnxruntime"),
           ("TVM vs OpenVINO", "speedup_vs_openvino"),
           ("TVM (another CPU's records) vs ORT", "other_records_speedup_vs_onnxruntime")) + bench_int8.RATIOS
          + GPU_RATIOS)


def thread_counts(r: dict) -> list[int]:
    """The thread counts of the rows, in order (an older bench.json: its one ``threads``)."""
    return list(dict.fromkeys(row.get("threads", r.get("threads")) for row in r["rows"]))


def _threads(n: int) -> str:
    return f"{n} thread" + ("s" if n != 1 else "")


def _many_threads(r: dict) -> bool:
    return len(thread_counts(r)) > 1


def markdown_table(r: dict) -> str:
    present = [k for k in RUNTIMES if any(k in row for row in r["rows"])]
    ratios = [(title, key) for title, key in RATIOS if all(key in row for row in r["rows"])]
    many = _many_threads(r)
    first = ["batch"] + (["threads"] if many else [])
    head = "| " + " | ".join(first + [f"{k} ms (median) | {k} fps" for k in present] + [t for t, _ in ratios]) + " |\n"
    head += "|---" * (len(first) + 2 * len(present) + len(ratios)) + "|\n"
    lines = []
    for row in r["rows"]:
        cells = [str(row["batch"])] + ([str(row["threads"])] if many else [])
        for k in present:
            t = row.get(k)
            cells += [f"{t['median_ms']:.2f}", f"{t['images_per_s']:.0f}"] if t else ["-", "-"]
        cells += [f"{row[key]:.2f}x" + (f" ({row['best_other']})" if key == BEST[1] else "") for _, key in ratios]
        lines.append("| " + " | ".join(cells) + " |")
    table = head + "\n".join(lines) + "\n"
    if "note" in r:
        return table + f"\n{r['note']}\n"
    return table + (threads_table(r) if many else "") + _footer(r)


def threads_table(r: dict) -> str:
    """Per batch, images/s against threads: one line per runtime (bench.png draws the same)."""
    counts = thread_counts(r)
    out = ["", "## images/s against threads", ""]
    for b in dict.fromkeys(row["batch"] for row in r["rows"]):
        rows = {row["threads"]: row for row in r["rows"] if row["batch"] == b}
        out += [f"| batch {b}: runtime | " + " | ".join(_threads(n) for n in counts) + " |",
                "|---" * (1 + len(counts)) + "|"]
        for k in RUNTIMES:
            if any(k in row for row in rows.values()):
                out.append(f"| {k} | " + " | ".join(f"{rows[n][k]['images_per_s']:.0f}" if k in rows.get(n, {})
                                                    else "-" for n in counts) + " |")
        out.append("")
    return "\n".join(out)


def _footer(r: dict) -> str:
    rounds = r.get("rounds", 1)
    taken = f" in {rounds} rounds, the runtimes taking turns" if rounds > 1 else ""
    counts = thread_counts(r)
    threads = _threads(counts[0]) if len(counts) == 1 else f"{', '.join(map(str, counts))} threads (a row each)"
    where = (lambda row: f"batch {row['batch']}, {_threads(row['threads'])}") if len(counts) > 1 else \
        (lambda row: f"batch {row['batch']}")
    return (f"\nModel {r['model']} on {r['target']}, {threads}, {r['runs']} runs after warm-up{taken}.\n"
            + records_line(r) +
            f"Read bandwidth {r['read_bandwidth_gb_s']:.1f} GB/s ({_probe_label(r)}): batch-1 weight floor "
            f"{r['batch1_weight_floor_ms']:.2f} ms for {r['weight_mbytes']:.0f} MB of fp32 weights.\n"
            f"fp32 FMA peak {r['fp32_peak_gflops']:.0f} GFLOP/s ({r['fp32_peak_how']}); TVM runs the model's "
            "direct-convolution FLOPs at "
            + ", ".join(f"{row['tvm_fraction_of_fp32_peak']:.1%} of it at {where(row)}" for row in r["rows"])
            + " (over 100 %: a boost clock above the nominal one, or Winograd convs, which do fewer multiplies;"
              " each row against the peak of its own thread count).\n")


def records_line(r: dict) -> str:
    """Which records the TVM column was built with, and on which CPU it ran (older bench.json: nothing)."""
    if "cpu_model" not in r:
        return ""
    used = "no tuning records"
    if r.get("record_set"):
        used = f"record set {r['record_set']} ({r.get('record_set_cpu')})"
        if r.get("record_set_fallback"):
            used += ", timed on another CPU"
    if r.get("other_record_set"):
        used += f"; tvm-other with record set {r['other_record_set']} ({r.get('other_record_set_cpu')})"
    return f"CPU: {r['cpu_model'] or 'unknown'} ({r.get('host_cpu')}); TVM built with {used}.\n"


def _probe_label(r: dict) -> str:
    level = r.get("read_bandwidth_level", "DRAM")
    l3 = f" of {r['l3_mbytes']:.0f} MB L3" if r.get("l3_mbytes") else ""
    return f"{level}: {r.get('read_bandwidth_buffer_mbytes', 512)} MB buffer{l3}"


def plot(r: dict, path: Path) -> None:
    """images/s against batch (one thread count), or against threads, a panel per batch (several)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alexnet_tvm.fsutil import atomic_path

    many = _many_threads(r)
    batches = dict.fromkeys(row["batch"] for row in r["rows"])
    panels = [[row for row in r["rows"] if row["batch"] == b] for b in batches] if many else [r["rows"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.5), squeeze=False)
    for ax, rows in zip(axes[0], panels):
        xs = [row["threads"] if many else row["batch"] for row in rows]
        for k in RUNTIMES:
            if all(k in row for row in rows):
                ax.plot(xs, [row[k]["images_per_s"] for row in rows], marker="o", label=k)
        ax.set_xlabel("threads" if many else "batch"), ax.set_ylabel("images / s")
        ax.set_xscale("log", base=2), ax.legend()
        if many:
            ax.set_xticks(xs, [str(n) for n in xs]), ax.minorticks_off()
        ax.set_title(f"{Path(r['model']).name} on {r['target']}" + (f", batch {rows[0]['batch']}" if many else ""))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def summary_lines(r: dict) -> list[str]:
    out = [markdown_table(r).rstrip()]
    many = _many_threads(r)
    for row in r["rows"]:
        where = f"batch {row['batch']}" + (f", {_threads(row['threads'])}" if many else "")
        out += _ratio_lines(row, where)
        if "layers" in row:
            worst = min((x for x in row["layers"]
                         if x["speedup_vs_onnxruntime"] and x["layer"] not in ("other", "sum")),
                        key=lambda x: x["speedup_vs_onnxruntime"], default=None)
            if worst is not None:
                out.append(f"{where}: slowest layer against ONNX Runtime: {worst['layer']} "
                           f"{worst['tvm_ms']:.2f} ms vs {worst['onnxruntime_ms']:.2f} ms (layers.md)")
        out += bench_int8.summary_lines(row, where)
        if "bf16_speedup_vs_onnxruntime" in row:
            out.append(f"{where}: TVM with bf16 FC weights is {row['bf16_speedup_vs_onnxruntime']:.2f}x "
                       f"ONNX Runtime (fp32); its logits "
                       f"differ by {row['bf16_max_abs_error_rel_range']:.1e} of their range")
    return out


def _ratio_lines(row: dict, where: str) -> list[str]:
    """The headline (TVM against the fastest other runtime in the row), then each ratio."""
    ratios = [f"{row[f'speedup_vs_{k}']:.2f}x {NAMES[k]}" for k in OTHERS if f"speedup_vs_{k}" in row]
    if not ratios:
        return []
    head = ""
    if "best_other" in row:
        head = f"{row['speedup_vs_best_other']:.2f}x the fastest other runtime ({NAMES[row['best_other']]}); "
    return [f"{where}: TVM is {head}{', '.join(ratios)} (speed ratio, >1 = TVM faster)"]
