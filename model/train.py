"""Seeded, resumable training that keeps the best-validation checkpoint."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from alexnet_tvm.errors import CheckpointError, OutputExistsError, ToolkitError
from alexnet_tvm.fsutil import atomic_path, write_json
from alexnet_tvm.meta import ModelMeta, default_resize_size

from .checkpoint import load_weights, save_checkpoint
from .datasets import DatasetSplit, TransformedImages, load_dataset
from .variants import build_model, check_input_size, get_variant, transfer_from

log = logging.getLogger(__name__)

BEST = "model.pt"
LAST = "last.ckpt"


@dataclass
class TrainConfig:
    dataset: str
    out_dir: Path
    arch: str = "cifar"
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 3e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    input_size: int | None = None
    resize_size: int | None = None
    width: float = 1.0
    pretrained: Path | None = None
    freeze_features: bool = False
    resume: bool = False
    force: bool = False
    #: stop each epoch after this many batches (quick runs and tests)
    max_steps: int | None = None


@dataclass
class TrainResult:
    checkpoint: Path
    best_val_accuracy: float
    epochs_run: int
    seconds: float
    history: list[dict]


def _config_key(cfg: TrainConfig) -> dict:
    """What must not change between a run and its --resume."""
    return {k: str(v) for k, v in asdict(cfg).items()
            if k in ("dataset", "arch", "input_size", "resize_size", "width", "seed", "batch_size", "optimizer")}


def _evaluate(model: nn.Module, loader: DataLoader) -> tuple[float, float]:
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            loss_sum += float(nn.functional.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            n += len(y)
    return loss_sum / max(n, 1), correct / max(n, 1)


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(ep, [h["train_loss"] for h in history], label="train")
    a1.plot(ep, [h["val_loss"] for h in history], label="val")
    a1.set_xlabel("epoch"), a1.set_ylabel("loss"), a1.legend()
    a2.plot(ep, [h["train_acc"] for h in history], label="train")
    a2.plot(ep, [h["val_acc"] for h in history], label="val")
    a2.set_xlabel("epoch"), a2.set_ylabel("accuracy"), a2.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def _prepare_out_dir(cfg: TrainConfig) -> None:
    out = cfg.out_dir
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a folder")
    if cfg.resume:
        if not (out / LAST).is_file():
            raise CheckpointError(f"{out}: nothing to resume ({LAST} is missing)")
        return
    if out.exists() and any(out.iterdir()) and not cfg.force:
        raise OutputExistsError(f"{out} already holds a run (use --resume to continue or --force to replace it)")
    out.mkdir(parents=True, exist_ok=True)


@dataclass
class _Run:
    """What travels between the steps of one training run: built by :func:`_start_run`,
    brought back by :func:`_restore` on --resume, advanced by each epoch."""

    cfg: TrainConfig
    model: nn.Module
    meta: ModelMeta
    train_set: TransformedImages
    train_loader: DataLoader
    val_loader: DataLoader
    #: the shuffling generator; saved and restored so that a resumed run sees the same batches
    loader_rng: torch.Generator
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    start_epoch: int = 0
    best_acc: float = -1.0
    history: list[dict] = field(default_factory=list)


def _resolve_sizes(cfg: TrainConfig) -> None:
    """Fill in the variant's default input and resize sizes and refuse impossible settings,
    before any data is read or any file is written."""
    spec = get_variant(cfg.arch)
    input_size = cfg.input_size or spec.default_input_size
    check_input_size(spec, input_size)
    resize_size = cfg.resize_size or default_resize_size(input_size)
    if resize_size < input_size:
        raise ToolkitError(f"resize size {resize_size} is smaller than the input size {input_size}")
    cfg.input_size, cfg.resize_size = input_size, resize_size
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise ToolkitError("epochs, batch size and learning rate must be positive")


def _seeded_model(cfg: TrainConfig, data: DatasetSplit) -> tuple[nn.Module, ModelMeta]:
    """Seed first: the initial weights (and everything drawn later) depend only on ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_model(cfg.arch, len(data.class_names), cfg.width)
    if cfg.pretrained is not None:
        transfer_from(model, load_weights(cfg.pretrained), str(cfg.pretrained), cfg.freeze_features)
    meta = ModelMeta(arch=cfg.arch, num_classes=len(data.class_names), input_size=cfg.input_size,
                     resize_size=cfg.resize_size, class_names=list(data.class_names), width=cfg.width,
                     dataset_fingerprint=data.fingerprint, extra={"dataset": data.name})
    return model, meta


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Only the trainable parameters: frozen pretrained features stay exactly as loaded."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(trainable, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ToolkitError(f"unknown optimizer {cfg.optimizer!r} (adam or sgd)")


def _cosine(epochs: int) -> Callable[[int], float]:
    """Cosine in closed form over ``epochs``, so that --resume with more --epochs re-aims the
    schedule instead of continuing from the finished run's lr of 0. A lambda, not a callable
    object: LambdaLR then leaves it out of the scheduler state saved in last.ckpt."""
    return lambda e: 0.5 * (1.0 + math.cos(math.pi * min(e, epochs) / epochs))


def _start_run(cfg: TrainConfig, data: DatasetSplit) -> _Run:
    """Model, loaders, optimizer and schedule in the order the seeded RNGs expect."""
    model, meta = _seeded_model(cfg, data)
    mk = lambda src, is_train: TransformedImages(  # noqa: E731
        src, cfg.resize_size, cfg.input_size, meta.mean, meta.std, is_train, data.allow_flip, cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    train_set = mk(data.train, True)
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=g)
    val_loader = DataLoader(mk(data.val, False), batch_size=max(cfg.batch_size, 64))
    opt = _make_optimizer(cfg, model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(cfg.epochs))
    return _Run(cfg, model, meta, train_set, train_loader, val_loader, g, opt, sched)


def _load_state(cfg: TrainConfig) -> dict:
    """last.ckpt, checked to come from a run with the same settings."""
    path = cfg.out_dir / LAST
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        config = json.loads(state["config"])
    except Exception as e:  # damaged or foreign file: one line, not a traceback
        raise CheckpointError(f"{path}: unreadable training state ({type(e).__name__})") from None
    if config != _config_key(cfg):
        raise CheckpointError(f"{path}: was trained with other settings; cannot resume")
    return state


def _restore(run: _Run, state: dict) -> None:
    """Put back model, optimizer, schedule, RNG states and history, so that the resumed
    epochs match those of an uninterrupted run."""
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    run.loader_rng.set_state(state["loader_rng"])
    run.start_epoch, run.best_acc = int(state["epoch"]), float(state["best_acc"])
    run.sched.last_epoch = run.start_epoch
    cosine = _cosine(run.cfg.epochs)
    for group, base_lr in zip(run.opt.param_groups, run.sched.base_lrs):
        group["lr"] = base_lr * cosine(run.start_epoch)
    if "augment_rng" in state:  # crops and flips continue as in an uninterrupted run
        version, internal, gauss = json.loads(state["augment_rng"])
        run.train_set.rng.setstate((version, tuple(internal), gauss))
    run.history = json.loads(state["history"])
    log.info("resuming after epoch %d (best val accuracy %.4f)", run.start_epoch, run.best_acc)


def _train_epoch(run: _Run, epoch: int) -> tuple[float, float]:
    """One pass over the training set (at most ``max_steps`` batches); mean loss and accuracy."""
    cfg, model, opt = run.cfg, run.model, run.opt
    model.train()
    loss_sum, correct, n = 0.0, 0, 0
    bar = tqdm(run.train_loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, unit="batch", disable=None)
    for step, (x, y) in enumerate(bar):
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        opt.zero_grad()
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(y)
        correct += int((out.argmax(1) == y).sum())
        n += len(y)
        bar.set_postfix(loss=f"{loss_sum / n:.4f}")
    return loss_sum / max(n, 1), correct / max(n, 1)


def _end_epoch(run: _Run, epoch: int, train_loss: float, train_acc: float) -> None:
    """Validate, keep the best checkpoint, and save everything --resume needs after every epoch."""
    cfg = run.cfg
    val_loss, val_acc = _evaluate(run.model, run.val_loader)
    run.history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                        "val_loss": val_loss, "val_acc": val_acc})
    log.info("epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f", epoch,
             train_loss, train_acc, val_loss, val_acc)
    if val_acc > run.best_acc:
        run.best_acc = val_acc
        run.meta.val_accuracy, run.meta.epoch = val_acc, epoch
        save_checkpoint(run.model, run.meta, cfg.out_dir / BEST)
    with atomic_path(cfg.out_dir / LAST) as tmp:
        torch.save({"model": run.model.state_dict(), "optimizer": run.opt.state_dict(),
                    "scheduler": run.sched.state_dict(), "rng": torch.get_rng_state(),
                    "loader_rng": run.loader_rng.get_state(),
                    "augment_rng": json.dumps(run.train_set.rng.getstate()),
                    "epoch": epoch, "best_acc": run.best_acc,
                    "history": json.dumps(run.history), "config": json.dumps(_config_key(cfg))}, tmp)
    write_json(cfg.out_dir / "history.json", run.history)
    plot_curves(run.history, cfg.out_dir / "curves.png")


def train(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg.arch`` on ``cfg.dataset``. model.pt is the best-validation checkpoint; last.ckpt
    holds the whole state after every epoch, so a killed run continues with --resume as if it
    had never stopped (and --resume with more --epochs trains on)."""
    _resolve_sizes(cfg)
    data = load_dataset(cfg.dataset, cfg.seed)
    _prepare_out_dir(cfg)
    run = _start_run(cfg, data)
    if cfg.resume:
        _restore(run, _load_state(cfg))
    t0 = time.perf_counter()
    for epoch in range(run.start_epoch + 1, cfg.epochs + 1):
        train_loss, train_acc = _train_epoch(run, epoch)
        run.sched.step()
        _end_epoch(run, epoch, train_loss, train_acc)
    return TrainResult(cfg.out_dir / BEST, run.best_acc, len(run.history), time.perf_counter() - t0, run.history)
