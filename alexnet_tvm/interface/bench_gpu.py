"""``bench`` on a CUDA target: TVM's library against PyTorch on the same GPU, both timed there.

fp32: TVM against PyTorch eager (cuDNN's defaults, TF32 convolutions included, which is what a
PyTorch user gets). ``--fp16``: TVM's fp16 build (compile/frontend/fp16.py) against PyTorch eager under
``torch.autocast(float16)``, the fair pair, and how far fp16 moves TVM's logits. ``--torch-compile``:
``torch.compile`` too (fp32, and under autocast with ``--fp16``); its compilation is warm-up, not timed.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from alexnet_tvm.errors import ToolkitError

log = logging.getLogger(__name__)



def _torch_timer(module, x, fp16: bool, runs: int, name: str):
    """Median of ``module(x)`` on the GPU, synchronized per call, under autocast(fp16) when asked."""
    import torch

    from alexnet_tvm.runtime.bench import time_callable

    def call(_):
        ctx = torch.autocast("cuda", dtype=torch.float16) if fp16 else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            out = module(x)
        torch.cuda.synchronize()
        return out

    return time_callable(name, call, np.zeros((x.shape[0],)), runs=runs, warmup=5), call(None)


def _tvm_timer(cfg, spec, batch: int, precision: str, x):
    """(timing, logits on ``x``, untuned tasks) of a fresh TVM build at ``precision``."""
    from alexnet_tvm.runtime.artifact import load_artifact

    from .bench_config import build_tvm

    name = "tvm" if precision == "fp32" else f"tvm-{precision}"
    art_dir, untuned = build_tvm(cfg, spec, batch, name=name, precision=precision)
    art = load_artifact(art_dir)
    return art.time_on_device(cfg.runs), np.asarray(art.call(x.cpu().numpy())), untuned


def _row(cfg, spec, module, compiled, batch: int, size: int) -> dict:
    """One batch: every runtime on the same input, and the ratios (> 1: TVM faster)."""
    import torch

    x = torch.randn(batch, 3, size, size, device="cuda")
    row: dict = {"batch": batch, "untuned_tasks": {}}
    t, ref = _torch_timer(module, x, False, cfg.runs, "pytorch")
    row["pytorch"] = t.to_dict()
    t_tvm, out, row["untuned_tasks"]["tvm"] = _tvm_timer(cfg, spec, batch, "fp32", x)
    row["tvm"] = t_tvm.to_dict()
    row["speedup_vs_pytorch"] = t.median_ms / t_tvm.median_ms
    if compiled is not None:
        t, _ = _torch_timer(compiled, x, False, cfg.runs, "pytorch-compile")
        row["pytorch-compile"] = t.to_dict()
        row["speedup_vs_pytorch_compile"] = t.median_ms / t_tvm.median_ms
    if cfg.fp16:
        t, _ = _torch_timer(module, x, True, cfg.runs, "pytorch-fp16")
        row["pytorch-fp16"] = t.to_dict()
        t16, out16, row["untuned_tasks"]["tvm-fp16"] = _tvm_timer(cfg, spec, batch, "fp16", x)
        row["tvm-fp16"] = t16.to_dict()
        row["fp16_speedup_vs_pytorch_fp16"] = t.median_ms / t16.median_ms
        ref = ref.float().cpu().numpy()
        row["fp16_max_abs_error_rel_range"] = float(np.abs(out16 - ref).max() / max(1.0, float(np.ptp(ref))))
        if compiled is not None:
            t, _ = _torch_timer(compiled, x, True, cfg.runs, "pytorch-compile-fp16")
            row["pytorch-compile-fp16"] = t.to_dict()
            row["fp16_speedup_vs_pytorch_compile_fp16"] = t.median_ms / t16.median_ms
    return row


def bench_gpu(cfg, spec) -> dict:
    """PyTorch on the GPU against the TVM CUDA library; bench.json/.md/.png as on a CPU."""
    import torch
    import tvm

    from alexnet_tvm.model.reference import load_torch_module

    from .bench_config import write_results

    if not tvm.cuda(0).exist or not torch.cuda.is_available():
        raise ToolkitError(f"bench on {spec.name} needs a CUDA GPU and this machine has none")
    module, meta, _ = load_torch_module(cfg.model)
    module = module.cuda().eval()
    compiled = torch.compile(module) if cfg.torch_compile else None
    size = meta.input_size if meta else 224
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for b in cfg.batches:
        rows.append(_row(cfg, spec, module, compiled, b, size))
        log.info("batch %d: %s", b, {k: round(v["median_ms"], 3) for k, v in rows[-1].items()
                                     if isinstance(v, dict) and "median_ms" in v})
    gpu = torch.cuda.get_device_name(0)
    note = (f"PyTorch {torch.__version__} eager (CUDA"
            + (", autocast fp16" if cfg.fp16 else "") + (", torch.compile" if compiled is not None else "")
            + f") and TVM on {gpu}.")
    return write_results(cfg, {"model": str(cfg.model), "target": spec.name, "runs": cfg.runs, "where": "gpu",
                                "gpu": gpu, "note": note, "rows": rows})
