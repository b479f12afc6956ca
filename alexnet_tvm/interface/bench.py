"""bench MODEL: PyTorch eager, ONNX Runtime, OpenVINO and TVM (tuned; untuned opt-in) side by side.

Every runtime is timed in this one process, on the same inputs, with the same
thread count, so the ratios mean something on a shared, noisy machine. ``--threads
1,2,4`` times every runtime at each count (one row per batch and count; the TVM library
is built once per batch, for the largest). Two physical references are measured in the
same run: read bandwidth from where the weights live (the batch-1 floor is the weight
bytes over it) and the fraction of fp32 FMA peak. The report names the record set the
TVM build took and the CPU it ran on; bench_report.py writes it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from alexnet_tvm.errors import ToolkitError

from . import bench_int8
from .bench_config import BenchConfig, build_tvm, write_results  # noqa: F401  (BenchConfig: also from here)
from .bench_refs import Sources, best_other, reference_runtimes, threads_used
from .bench_report import OTHERS, markdown_table, plot, summary_lines  # noqa: F401  (the report, also from here)

log = logging.getLogger(__name__)


def check_config(cfg: BenchConfig) -> None:
    """Refuse what cannot give a median and a spread, before anything is built."""
    if not cfg.batches or min(cfg.batches) < 1 or cfg.runs < 3:
        raise ToolkitError("--batch needs positive sizes and --runs at least 3")
    if cfg.threads is not None and (not cfg.threads or min(cfg.threads) < 1):
        raise ToolkitError("--threads needs positive counts")


def measure_read_bandwidth(threads: int, mbytes: int = 512, repeats: int = 5) -> float:
    """GB/s of reading an ``mbytes`` fp32 buffer on ``threads`` threads (512 MB: larger than any
    cache; see :func:`bandwidth_probe` for when a smaller one is the right floor). A small buffer
    is read several times per timing, at least 512 MB in all, so starting the threads stays noise.
    The read is a matrix-vector product with PyTorch (the batch-1 FC layer's own access pattern,
    vectorized, on PyTorch's thread pool): numpy's pairwise float64 sum on Python threads was
    bound by its adds, not by memory, and read about a third of what ONNX Runtime streamed on an
    Intel Xeon (a "weight floor" above ORT's whole batch-1 time)."""
    import torch

    buf = torch.ones(max(1, mbytes * (1 << 20) // 4096), 1024, dtype=torch.float32)
    vec = torch.ones(1024, dtype=torch.float32)
    passes = -(-512 // max(mbytes, 1))
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        torch.mv(buf, vec)  # the first touch of the pages is not a read
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(passes):
                torch.mv(buf, vec)
            best = min(best, time.perf_counter() - t)
    finally:
        torch.set_num_threads(before)
    return buf.numel() * 4 * passes / best / 1e9


def bandwidth_probe(weight_bytes: int, threads: int) -> dict:
    """Read bandwidth from where the weights stream from at batch 1. Weights that fit in the L3
    (a 300 MB L3 holds AlexNet's 233 MB) are read from it, not from DRAM: a DRAM-sized probe
    there would put the "weight floor" above what ONNX Runtime achieves. So the probe reads
    a buffer that fits in L3 when the weights do, and says which level it measured."""
    from alexnet_tvm.host import l3_cache_bytes

    l3 = l3_cache_bytes()
    in_l3 = l3 is not None and weight_bytes <= l3
    mbytes = max(1, weight_bytes >> 20) if in_l3 else 512
    return {"read_bandwidth_gb_s": measure_read_bandwidth(threads, mbytes), "read_bandwidth_level": "L3" if in_l3
            else "DRAM", "read_bandwidth_buffer_mbytes": mbytes, "l3_mbytes": round(l3 / 2**20, 1) if l3 else None}


def fp32_peak_gflops(threads: int) -> tuple[float, str]:
    """cores x GHz x FMA ports (2) x lanes x 2 flops: the nominal ceiling, from cpuinfo."""
    from alexnet_tvm.host import cpu_mhz, fp32_lanes_per_fma

    mhz, lanes = cpu_mhz(), fp32_lanes_per_fma()
    ghz = mhz / 1000 if mhz else 2.0
    return threads * ghz * 2 * lanes * 2, f"{threads} cores x {ghz:.2f} GHz x 2 FMA x {lanes} lanes x 2"


def model_flops_and_weights(module, input_size: int) -> tuple[float, int]:
    """Multiply-adds x 2 per image over conv and linear layers, and fp32 weight bytes."""
    import torch

    flops = 0.0

    def hook(m, inp, out):
        nonlocal flops
        if isinstance(m, torch.nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            flops += 2.0 * k * out[0].numel()
        elif isinstance(m, torch.nn.Linear):
            flops += 2.0 * m.in_features * m.out_features

    hs = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        module(torch.zeros(1, 3, input_size, input_size))
    for h in hs:
        h.remove()
    weights = sum(p.numel() * 4 for p in module.parameters())
    return flops, weights


def run_bench(cfg: BenchConfig) -> dict:
    """Time the model on ``cfg.target``: here against PyTorch and ONNX Runtime (CPU), on the GPU
    against PyTorch (CUDA), or on the board alone (rpc); write bench.json/.md/.png."""
    from alexnet_tvm.target_choice import resolve_target

    check_config(cfg)
    spec = resolve_target(cfg.target, cfg.targets_file, max(cfg.threads) if cfg.threads else None)
    if spec.runner == "rpc":
        return _bench_board(cfg, spec)
    if (cfg.fp16 or cfg.torch_compile) and spec.kind != "cuda":
        raise ToolkitError(f"--fp16 and --torch-compile are for CUDA targets, not {spec.name} (kind {spec.kind})")
    if spec.kind == "cuda":
        from .bench_gpu import bench_gpu

        return bench_gpu(cfg, spec)
    if not spec.is_cpu:
        raise ToolkitError(f"bench runs CPU, CUDA and RPC-board targets; {spec.name} is {spec.kind}")
    from alexnet_tvm.host import usable_cores
    from alexnet_tvm.host import tvm_threads_env

    counts = cfg.threads or [usable_cores()]
    with tvm_threads_env(max(counts)):  # while the libraries are built; each row sets its own
        return _bench_cpu(cfg, spec, counts)


def _bench_cpu(cfg: BenchConfig, spec, counts: list[int]) -> dict:
    """Every runtime in this process on the same inputs, at each thread count, with the physical references."""
    from alexnet_tvm.host import cpu_model, usable_cores
    from alexnet_tvm.recordsets import other_record_set, record_choice, single_set_view
    from alexnet_tvm.runtime.bench import rounds_for
    from alexnet_tvm.settings import logs_dir_for_reading
    from alexnet_tvm.target_choice import with_cores

    top = max(counts)
    if top > usable_cores():
        log.warning("bench --threads %d: this process may use %d cores; the larger counts share them", top,
                    usable_cores())
    spec = with_cores(spec, top)  # one library per batch, built for the largest count
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    src = _references(cfg, top)
    probe = bandwidth_probe(src.weight_bytes, top)
    peak, peak_how = fp32_peak_gflops(top)
    logs = logs_dir_for_reading(cfg.logs_dir, spec.name)
    cfg.int8 = bench_int8.wanted(cfg.int8, spec)
    records = record_choice(logs, spec, announce=False)  # each build says a fallback
    other = other_record_set(logs, spec)  # "another family's records": tvm-other
    other_logs = single_set_view(cfg.out_dir / "other-logs", other) if other else None
    rows = []
    for b in cfg.batches:
        x = np.random.default_rng(0).standard_normal((b, 3, src.size, src.size), dtype=np.float32)
        arts, untuned = _build_variants(cfg, spec, b, logs, other_logs)
        rows += [_time_cpu_row(cfg, src, x, t, arts, untuned, layers=cfg.layers and t == top) for t in counts]
    result = {
        "model": str(cfg.model), "target": spec.name, "threads": top, "thread_counts": counts, "runs": cfg.runs,
        "rounds": rounds_for(cfg.runs),
        "gflop_per_image": src.flops / 1e9, "weight_mbytes": src.weight_bytes / 1e6, **probe,
        "batch1_weight_floor_ms": src.weight_bytes / (probe["read_bandwidth_gb_s"] * 1e9) * 1e3,
        "fp32_peak_gflops": peak, "fp32_peak_how": peak_how, "rows": rows,
        "machine": os.uname().nodename, "cpu_model": cpu_model(), "host_cpu": records.host,
        "record_set": records.label, "record_set_cpu": records.manifest()["record_set_cpu"],
        "record_set_fallback": records.fallback,
        **({"other_record_set": other.label_for(spec.name), "other_record_set_cpu": other.cpu_model} if other else {}),
    }
    return write_results(cfg, result)


def _references(cfg: BenchConfig, threads: int) -> Sources:
    """Input size, FLOPs per image, weight bytes, the ONNX file and PyTorch's call: what the
    reference runtimes of every row are made from (bench_refs.reference_runtimes).

    An ONNX file has no PyTorch form: it is timed against ONNX Runtime (and OpenVINO) alone,
    and its FLOPs are counted on the ONNX graph."""
    from alexnet_tvm.model.formats import detect_format

    from . import openvino_ref

    openvino = openvino_ref.available()  # one warning line when it is not installed
    if detect_format(cfg.model) == "onnx":
        size, flops, weight_bytes = onnx_flops_and_weights(cfg.model)
        return Sources(size, flops, weight_bytes, cfg.model, None, openvino)
    import torch

    from alexnet_tvm.model.reference import load_torch_module, onnx_file_for, torch_reference

    torch.set_num_threads(threads)
    module, meta, program_batch = load_torch_module(cfg.model)
    if meta is None:  # no sidecar: the size is read as build reads it, from the module itself
        from alexnet_tvm.model.describe import describe_module

        meta = describe_module(module, cfg.model, batch=program_batch or 1)
    size = meta.input_size
    flops, weight_bytes = model_flops_and_weights(module, size)
    onnx_path = onnx_file_for(cfg.model, max(cfg.batches), cfg.out_dir, size)
    return Sources(size, flops, weight_bytes, onnx_path, torch_reference(cfg.model, threads), openvino)


def onnx_flops_and_weights(path: Path) -> tuple[int, float, int]:
    """(input size, multiply-adds x 2 per image over Conv/Gemm/MatMul, fp32 weight bytes) of an ONNX file."""
    import onnx
    from onnx import numpy_helper, shape_inference

    from alexnet_tvm.model.describe import describe_onnx

    model = onnx.load(str(path))
    size = describe_onnx(model, path).input_size
    inp = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}][0]
    for d, v in zip(inp.type.tensor_type.shape.dim, (1, 3, size, size)):
        d.Clear()
        d.dim_value = v
    graph = shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
    shapes.update({o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output})
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    flops = 0.0
    for n in graph.node:
        w = weights.get(n.input[1]) if len(n.input) > 1 else None
        out = shapes.get(n.output[0])
        if w is None or not out:
            continue
        if n.op_type == "Conv":
            flops += 2.0 * float(np.prod(w.shape[1:])) * float(np.prod(out))
        elif n.op_type in ("Gemm", "MatMul"):
            flops += 2.0 * float(np.prod(w.shape))
    return size, flops, int(sum(w.size * 4 for w in weights.values() if w.dtype == np.float32))


def _build_variants(cfg: BenchConfig, spec, b: int, logs: Path, other_logs: Path | None) -> tuple[dict, dict]:
    """One batch size's TVM libraries, built once for every thread count: ({name: (artifact, folder)},
    {name: its untuned tasks})."""
    from alexnet_tvm.runtime.artifact import load_artifact

    builds = {"tvm": (logs, "fp32")}
    if other_logs is not None:
        builds["tvm-other"] = (other_logs, "fp32")
    if cfg.bf16:
        builds["tvm-bf16"] = (logs, "bf16")
    if cfg.untuned:
        builds["tvm-untuned"] = (cfg.out_dir / "empty-logs", "fp32")
    if cfg.int8:
        builds["tvm-int8"] = (logs, "int8")
    untuned_tasks, artifacts = {}, {}
    for name, (ldir, precision) in builds.items():
        art_dir, untuned_tasks[name] = build_tvm(cfg, spec, b, name, ldir, precision)
        artifacts[name] = (load_artifact(art_dir), art_dir)
    return artifacts, untuned_tasks


def _time_cpu_row(cfg: BenchConfig, src: Sources, x: np.ndarray, threads: int, artifacts: dict, untuned: dict,
                  layers: bool = False) -> dict:
    """One (batch, thread count): every runtime at ``threads``, timed in rounds on ``x``, on a thread
    of its own (TVM's pool of that size); the row records what each runtime reported it ran on."""
    from alexnet_tvm.runtime.bench import with_tvm_threads

    b = x.shape[0]
    row = {"batch": b, "threads": threads, "untuned_tasks": untuned}
    timings, outputs, row["threads_used"] = with_tvm_threads(threads, lambda: _time_runtimes(cfg, src, x, threads,
                                                                                               artifacts))
    for name, t in timings.items():
        row[name] = t.to_dict()
        log.info("batch %d, %d threads: %-12s median %.2f ms", b, threads, name, t.median_ms)
    _add_ratios(row, outputs)
    bench_int8.add_ratios(row)
    row["tvm_fraction_of_fp32_peak"] = src.flops * b / (row["tvm"]["median_ms"] / 1e3) / 1e9 / fp32_peak_gflops(
        threads)[0]
    if layers:
        row["layers"] = with_tvm_threads(threads, lambda: _layer_times(artifacts["tvm"][0], src.onnx_path, x, threads,
                                                                       cfg.runs))
    if layers and "tvm-int8" in artifacts:
        row["layers_int8"] = with_tvm_threads(threads, lambda: bench_int8.layer_rows(*artifacts["tvm-int8"], x,
                                                                                     threads, cfg.runs))
    return row


def _time_runtimes(cfg: BenchConfig, src: Sources, x: np.ndarray, threads: int, artifacts: dict) -> tuple:
    """(timings, the logits bf16 is judged by, the threads each runtime runs on), on the calling thread."""
    from alexnet_tvm.runtime.bench import time_callable, time_in_rounds

    runtimes = reference_runtimes(src, threads, x.shape)
    runtimes.update({name: art.run_batch for name, (art, _) in artifacts.items()})
    if cfg.int8:
        bench_int8.add_runtimes(artifacts["tvm-int8"][1], artifacts["tvm-int8"][0], runtimes, threads)
    used = threads_used(runtimes)
    slow = {n: runtimes.pop(n) for n in ("tvm-untuned",) if n in runtimes}  # minutes a run: one short block
    timings = time_in_rounds(runtimes, x, runs=cfg.runs)
    timings.update({n: time_callable(n, fn, x, runs=3, warmup=1, max_seconds=60) for n, fn in slow.items()})
    judged = ("pytorch", "onnxruntime", "tvm-bf16") if cfg.bf16 else ()  # what bf16 costs in accuracy (_add_ratios)
    outputs = {n: np.asarray(runtimes[n](x)) for n in judged if n in runtimes}
    return timings, outputs, used


def _add_ratios(row: dict, outputs: dict[str, np.ndarray]) -> None:
    """TVM's speed ratios against the references, the headline one against the fastest of them,
    and with bf16 weights what they cost in logits."""
    present = [r for r in OTHERS if r in row]  # an ONNX file has no PyTorch column
    variants = (("tvm", "speedup_vs"), ("tvm-bf16", "bf16_speedup_vs"), ("tvm-other", "other_records_speedup_vs"))
    for name, key in variants:
        for r in present if name in row else []:
            row[f"{key}_{r}"] = row[r]["median_ms"] / row[name]["median_ms"]
    best = best_other(row, OTHERS)
    if best is not None and "tvm" in row:
        row["best_other"] = best
        row["speedup_vs_best_other"] = row[best]["median_ms"] / row["tvm"]["median_ms"]
    if "tvm-bf16" in row:
        ref = outputs[present[0]]
        # the price: how far bf16 weights move the logits, relative to their range
        row["bf16_max_abs_error_rel_range"] = float(np.abs(outputs["tvm-bf16"] - ref).max()
                                                    / max(float(np.ptp(ref)), 1.0))


def _layer_times(artifact, onnx_path: Path, x: np.ndarray, threads: int, runs: int) -> list[dict]:
    from alexnet_tvm.runtime.layers import match_layers, ort_node_times

    rows = match_layers(artifact.kernel_times(x, runs), ort_node_times(onnx_path, x, threads, runs))
    return [r.to_dict() for r in rows]


def _bench_board(cfg: BenchConfig, spec) -> dict:
    """TVM on the board, timed there (network excluded). PyTorch and ONNX Runtime do not run
    on the board, so there is no ratio: comparing with the host would compare machines."""
    from alexnet_tvm.runtime.artifact import load_artifact

    from .boards import board_for

    board = board_for(spec)  # one-line error when the tracker or the board is missing
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    emulated = "emulated" in spec.description.lower()
    rows = []
    for b in cfg.batches:
        art_dir, untuned = build_tvm(cfg, spec, b)
        t = load_artifact(art_dir, board=board).time_on_device(cfg.runs)
        rows.append({"batch": b, "untuned_tasks": {"tvm": untuned}, "tvm": t.to_dict()})
        log.info("batch %d tvm on board %s: median %.2f ms", b, spec.rpc.key, t.median_ms)
    note = (f"TVM timed on the board {spec.rpc.key!r} (tracker {spec.rpc.tracker}), network excluded."
            + (" EMULATED board (qemu-user): these timings are not ARM timings." if emulated else ""))
    return write_results(cfg, {"model": str(cfg.model), "target": spec.name, "runs": cfg.runs, "where": "board",
                                "emulated": emulated, "note": note, "rows": rows})


def bench(cfg: BenchConfig) -> str:
    """``bench``: run it, and the summary the command prints (bench.md's table and notes)."""
    return "\n".join(summary_lines(run_bench(cfg)))
