"""Seeded, resumable training that keeps the best-validation checkpoint."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
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
from .datasets import TransformedImages, load_dataset
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


def train(cfg: TrainConfig) -> TrainResult:
    spec = get_variant(cfg.arch)
    input_size = cfg.input_size or spec.default_input_size
    check_input_size(spec, input_size)
    resize_size = cfg.resize_size or default_resize_size(input_size)
    if resize_size < input_size:
        raise ToolkitError(f"resize size {resize_size} is smaller than the input size {input_size}")
    cfg.input_size, cfg.resize_size = input_size, resize_size
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise ToolkitError("epochs, batch size and learning rate must be positive")
    data = load_dataset(cfg.dataset, cfg.seed)
    _prepare_out_dir(cfg)

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_model(cfg.arch, len(data.class_names), cfg.width)
    if cfg.pretrained is not None:
        transfer_from(model, load_weights(cfg.pretrained), str(cfg.pretrained), cfg.freeze_features)
    meta = ModelMeta(arch=cfg.arch, num_classes=len(data.class_names), input_size=input_size,
                     resize_size=resize_size, class_names=list(data.class_names), width=cfg.width,
                     dataset_fingerprint=data.fingerprint, extra={"dataset": data.name})
    mk = lambda src, is_train: TransformedImages(  # noqa: E731
        src, resize_size, input_size, meta.mean, meta.std, is_train, data.allow_flip, cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    train_set = mk(data.train, True)
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=g)
    val_loader = DataLoader(mk(data.val, False), batch_size=max(cfg.batch_size, 64))
    trainable = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(trainable, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        raise ToolkitError(f"unknown optimizer {cfg.optimizer!r} (adam or sgd)")
    # cosine in closed form over cfg.epochs, so that --resume with more --epochs
    # re-aims the schedule instead of continuing from the finished run's lr of 0
    cosine = lambda e: 0.5 * (1.0 + math.cos(math.pi * min(e, cfg.epochs) / cfg.epochs))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)

    start_epoch, best_acc, history = 0, -1.0, []
    if cfg.resume:
        try:
            state = torch.load(cfg.out_dir / LAST, map_location="cpu", weights_only=True)
            config = json.loads(state["config"])
        except Exception as e:  # damaged or foreign file: one line, not a traceback
            raise CheckpointError(f"{cfg.out_dir / LAST}: unreadable training state ({type(e).__name__})") from None
        if config != _config_key(cfg):
            raise CheckpointError(f"{cfg.out_dir / LAST}: was trained with other settings; cannot resume")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        g.set_state(state["loader_rng"])
        start_epoch, best_acc = int(state["epoch"]), float(state["best_acc"])
        sched.last_epoch = start_epoch
        for group, base_lr in zip(opt.param_groups, sched.base_lrs):
            group["lr"] = base_lr * cosine(start_epoch)
        if "augment_rng" in state:  # crops and flips continue as in an uninterrupted run
            version, internal, gauss = json.loads(state["augment_rng"])
            train_set.rng.setstate((version, tuple(internal), gauss))
        history = json.loads(state["history"])
        log.info("resuming after epoch %d (best val accuracy %.4f)", start_epoch, best_acc)

    t0 = time.perf_counter()
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        model.train()
        loss_sum, correct, n = 0.0, 0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, unit="batch", disable=None)
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
        sched.step()
        val_loss, val_acc = _evaluate(model, val_loader)
        history.append({"epoch": epoch, "train_loss": loss_sum / max(n, 1), "train_acc": correct / max(n, 1),
                        "val_loss": val_loss, "val_acc": val_acc})
        log.info("epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f", epoch,
                 history[-1]["train_loss"], history[-1]["train_acc"], val_loss, val_acc)
        if val_acc > best_acc:
            best_acc = val_acc
            meta.val_accuracy, meta.epoch = val_acc, epoch
            save_checkpoint(model, meta, cfg.out_dir / BEST)
        with atomic_path(cfg.out_dir / LAST) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
                        "loader_rng": g.get_state(), "augment_rng": json.dumps(train_set.rng.getstate()),
                        "epoch": epoch, "best_acc": best_acc,
                        "history": json.dumps(history), "config": json.dumps(_config_key(cfg))}, tmp)
        write_json(cfg.out_dir / "history.json", history)
        plot_curves(history, cfg.out_dir / "curves.png")
    return TrainResult(cfg.out_dir / BEST, best_acc, len(history), time.perf_counter() - t0, history)
