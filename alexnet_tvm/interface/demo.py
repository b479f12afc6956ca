"""The main job on the embedded default: train -> export -> tune what is missing -> build
-> verify against PyTorch and ONNX Runtime -> latency of each."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    out_dir: Path = Path("runs/demo")
    target: str = "auto"
    targets_file: Path | None = None
    logs_dir: Path | None = None
    epochs: int = 10
    retrain: bool = False
    #: trials for tasks the committed logs do not cover
    tune_trials: int = 64
    tune_minutes: float = 4.0


@dataclass
class DemoResult:
    val_accuracy: float
    train_seconds: float
    artifact: Path
    verify_passed: dict[str, bool] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    untuned: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)


def write_eval_folder(out: Path, seed: int = 0) -> Path:
    """The digits validation split as PNG files, one folder per class, for verify --eval-set."""
    from PIL import Image

    from alexnet_tvm.model.datasets import load_digits

    data = load_digits(seed)
    for i in range(len(data.val)):
        d = out / data.class_names[data.val.labels[i]]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.val.arrays[i]).save(d / f"{i:04d}.png")
    return out


def run_demo(cfg: DemoConfig) -> DemoResult:
    from alexnet_tvm.compile.build import BuildConfig, build
    from alexnet_tvm.compile.tuning.plan import TuneConfig
    from alexnet_tvm.compile.tuning.tune import tune
    from alexnet_tvm.interface.verify import VerifyConfig, run_verify
    from alexnet_tvm.meta import read_sidecar
    from alexnet_tvm.model.export import SUFFIX, ExportConfig, export_model
    from alexnet_tvm.model.train import BEST, TrainConfig, train
    from alexnet_tvm.runtime.verify import summary_lines
    from alexnet_tvm.settings import logs_dir_for_writing
    from alexnet_tvm.target_choice import resolve_target

    t0 = time.perf_counter()
    out = cfg.out_dir
    ckpt = out / BEST
    lines: list[str] = []
    if ckpt.exists() and not cfg.retrain:
        meta = read_sidecar(ckpt)
        acc, train_s = float(meta.val_accuracy or 0.0), 0.0
        lines.append(f"train: reusing {ckpt} (val accuracy {acc:.4f}; --retrain to train again)")
    else:
        res = train(TrainConfig(dataset="digits", out_dir=out, arch="cifar", epochs=cfg.epochs, force=True))
        acc, train_s = res.best_val_accuracy, res.seconds
        lines.append(f"train: digits, cifar AlexNet, {res.epochs_run} epochs in {train_s:.1f} s, "
                     f"best val accuracy {acc:.4f}")
    for fmt in ("onnx", "torchscript", "pt2"):
        dst = out / ("model" + SUFFIX[fmt])
        err = export_model(ExportConfig(checkpoint=ckpt, fmt=fmt, out=dst, force=True))
        lines.append(f"export: {dst} (max abs error vs eager {err:.1e})")
    eval_dir = out / "eval"
    if not eval_dir.exists():
        write_eval_folder(eval_dir)

    spec = resolve_target(cfg.target, cfg.targets_file)
    logs = logs_dir_for_writing(cfg.logs_dir, spec.name)  # tuned here, then built from
    tres = tune(TuneConfig(model=ckpt, target=spec, logs_dir=logs, batch=1, total_trials=cfg.tune_trials,
                           trials_per_task=cfg.tune_trials, time_budget=cfg.tune_minutes))
    lines.append(f"tune: {tres.tasks} tasks, {tres.already_tuned} covered by {tres.db_dir}, "
                 f"{tres.tuned_now} tuned now ({tres.trials} trials, {tres.seconds:.0f} s)")
    art_dir = out / f"artifact-{spec.name}-b1"
    bres = build(BuildConfig(model=ckpt, target=spec, out=art_dir, logs_dir=logs, batch=1, force=True))
    lines.append(f"build: {art_dir} in {bres.seconds:.1f} s ({bres.tuned}/{bres.tasks} tasks tuned)")
    result = DemoResult(acc, train_s, art_dir, untuned=bres.untuned)
    for against in ("pytorch", "onnxruntime"):
        rep = run_verify(VerifyConfig(artifact=art_dir, against=against, eval_set=eval_dir,
                                      report=out / f"verify-{against}.json"))
        result.verify_passed[against] = rep.passed
        lines += summary_lines(rep)
    result.latency_ms = _latencies(art_dir, ckpt, out / "model.onnx")
    lines.append("latency, batch 1, median of 20 runs: " +
                 ", ".join(f"{k} {v:.2f} ms" for k, v in result.latency_ms.items()))
    result.seconds = time.perf_counter() - t0
    lines.append(f"demo finished in {result.seconds:.0f} s: val accuracy {acc:.4f}, verify "
                 + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in result.verify_passed.items()))
    result.lines = lines
    return result


def _latencies(art_dir: Path, ckpt: Path, onnx_path: Path) -> dict[str, float]:
    from alexnet_tvm.model.reference import torch_reference
    from alexnet_tvm.runtime.artifact import load_artifact
    from alexnet_tvm.runtime.bench import time_callable
    from alexnet_tvm.runtime.references import OnnxRuntimeReference

    art = load_artifact(art_dir)
    x = np.random.default_rng(0).standard_normal(art.input_shape, dtype=np.float32)
    runners = {"pytorch": torch_reference(ckpt), "onnxruntime": OnnxRuntimeReference(onnx_path),
               "tvm": art.run_batch}
    return {name: time_callable(name, fn, x, runs=20).median_ms for name, fn in runners.items()}


def demo(cfg: DemoConfig) -> tuple[str, bool]:
    """``demo``: the lines it prints, and whether every verify passed."""
    res = run_demo(cfg)
    return "\n".join(res.lines), all(res.verify_passed.values())
