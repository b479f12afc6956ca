"""Checkpoints: a plain state_dict (``torch.load(weights_only=True)``) plus a JSON sidecar."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from alexnet_tvm.errors import CheckpointError
from alexnet_tvm.fsutil import atomic_path, write_json
from alexnet_tvm.meta import ModelMeta, default_resize_size, read_sidecar, sidecar_path

from .variants import build_model, check_input_size, get_variant, load_state_dict_strict


def load_weights(path: Path) -> dict:
    """Read tensors only; a pickled whole model (arbitrary code) is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch raises this both for pickled classes and for plain garbage; only the
        # former is a whole model
        if "Unsupported global" in str(e):
            raise CheckpointError(
                f"{path}: not a plain state_dict (a pickled whole model is refused; save model.state_dict())"
            ) from None
        raise CheckpointError(f"{path}: unreadable checkpoint (not a torch.save file)") from None
    except Exception as e:  # torch raises RuntimeError/EOFError/zip errors for damaged files
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # a training state (last.ckpt)
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state_dict of tensors")
    return obj


def save_checkpoint(model: nn.Module, meta: ModelMeta, path: Path) -> None:
    """State dict and sidecar, each renamed into place whole."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    write_json(sidecar_path(path), meta.to_dict())


def load_checkpoint(path: Path, meta: ModelMeta | None = None) -> tuple[nn.Module, ModelMeta]:
    """Rebuild the model that the sidecar describes and load its weights, in eval mode."""
    path = Path(path)
    state = load_weights(path)
    meta = meta or read_sidecar(path)
    check_input_size(get_variant(meta.arch), meta.input_size)
    model = build_model(meta.arch, meta.num_classes, meta.width)
    load_state_dict_strict(model, state, str(path))
    model.eval()
    return model, meta


def meta_for_torchvision_weights(path: Path, num_classes: int = 1000) -> ModelMeta:
    """A sidecar for a bare torchvision alexnet-owt-*.pth, which ships without one."""
    return ModelMeta(arch="torchvision", num_classes=num_classes, input_size=224, resize_size=256,
                     class_names=[f"class_{i}" for i in range(num_classes)])


def load_any_checkpoint(path: Path) -> tuple[nn.Module, ModelMeta]:
    """Our checkpoint (with sidecar) or a bare torchvision state_dict."""
    path = Path(path)
    if sidecar_path(path).exists():
        return load_checkpoint(path)
    state = load_weights(path)
    w = state.get("classifier.6.weight")
    if w is None:
        raise CheckpointError(f"{path}: no sidecar {sidecar_path(path).name} and not a torchvision AlexNet state_dict")
    return load_checkpoint(path, meta_for_torchvision_weights(path, int(w.shape[0])))


def init_checkpoint(arch: str, num_classes: int, out: Path, input_size: int | None = None, width: float = 1.0,
                    seed: int = 0, force: bool = False) -> None:
    from alexnet_tvm.fsutil import refuse_existing

    from .variants import build_model

    refuse_existing(Path(out), force)
    spec = get_variant(arch)
    size = input_size or spec.default_input_size
    check_input_size(spec, size)
    torch.manual_seed(seed)
    model = build_model(arch, num_classes, width)
    meta = ModelMeta(arch=arch, num_classes=num_classes, input_size=size,
                     resize_size=default_resize_size(size), width=width,
                     class_names=[f"class_{i}" for i in range(num_classes)], extra={"init": f"random seed {seed}"})
    save_checkpoint(model, meta, Path(out))
