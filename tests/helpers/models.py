"""The checkout's targets and the tiny checkpoints the compile, tune, bench and RPC tests start from."""

from __future__ import annotations

import shutil
from pathlib import Path

#: the checkout's root (targets.yaml, tuning_logs/)
ROOT = Path(__file__).resolve().parents[2]
#: the target most tests build for: it runs on any AVX2 machine, CI included
TARGET = "x86-avx2"


def repo_targets() -> dict:
    """The checkout's targets.yaml, parsed: name -> TargetSpec."""
    from alexnet_tvm.targets import load_targets

    return load_targets(ROOT / "targets.yaml")


def write_tiny_checkpoint(folder: Path, arch: str, name: str = "model.pt") -> Path:
    """An untrained width-0.125 ``arch`` model with 4 classes (w, x, y, z), seeded, saved as
    ``folder/name``: small enough to build in seconds, the same bytes on every run."""
    import torch

    from alexnet_tvm.meta import ModelMeta
    from alexnet_tvm.model.checkpoint import save_checkpoint
    from alexnet_tvm.model.variants import build_model

    torch.manual_seed(0)
    size = {"cifar": 32, "caffe": 227}.get(arch, 224)  # 224-family: 6x6 features, so ONNX can export the pool
    model = build_model(arch, 4, width=0.125).eval()
    meta = ModelMeta(arch=arch, num_classes=4, input_size=size, resize_size=size, width=0.125,
                     class_names=["w", "x", "y", "z"])
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, meta, path)
    return path


def copy_checkpoint(src: Path, dest_dir: Path, name: str = "model.pt") -> Path:
    """Copy a checkpoint and its ``.json`` sidecar; return the copy's path."""
    from alexnet_tvm.meta import sidecar_path

    dest_dir.mkdir(parents=True, exist_ok=True)
    dst = dest_dir / name
    shutil.copyfile(src, dst)
    if sidecar_path(src).exists():
        shutil.copyfile(sidecar_path(src), sidecar_path(dst))
    return dst
