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
    return _rebuild(load_weights(path), meta or read_sidecar(path), path)


def _rebuild(state: dict, meta: ModelMeta, path: Path) -> tuple[nn.Module, ModelMeta]:
    check_input_size(get_variant(meta.arch), meta.input_size)
    model = build_model(meta.arch, meta.num_classes, meta.width)
    load_state_dict_strict(model, state, str(path))
    model.eval()
    return model, meta


def _fits(arch: str, state: dict) -> float | None:
    """The width at which variant ``arch`` has exactly ``state``'s keys and shapes, else None."""
    from .variants import VARIANTS

    c1 = state.get("features.0.weight")
    head = state.get("classifier.6.weight")
    if c1 is None or head is None or c1.dim() != 4:
        return None
    base = VARIANTS[arch].build(2, 1.0).features[0].out_channels
    width = round(float(c1.shape[0]) / base, 4)
    own = build_model(arch, int(head.shape[0]), width).state_dict()
    if set(own) != set(state) or any(tuple(own[k].shape) != tuple(state[k].shape) for k in own):
        return None
    return width


def describe_state_dict(path: Path, state: dict) -> ModelMeta:
    """A bare state_dict (torchvision's ``alexnet-owt-*.pth``, or any variant's): its keys and
    shapes tell the variant, width and classes; the input size is the variant's default."""
    from .describe import meta_from
    from .variants import VARIANTS

    for arch, spec in VARIANTS.items():
        width = _fits(arch, state)
        if width is not None:
            classes = int(state["classifier.6.weight"].shape[0])
            return meta_from(arch, classes, spec.default_input_size, width, source="state_dict shapes")
    raise CheckpointError(f"{path}: no sidecar {sidecar_path(path).name} and the state_dict fits no AlexNet "
                          f"variant ({', '.join(VARIANTS)}); pass a sidecar or export TorchScript/ONNX")


def load_any_checkpoint(path: Path, overrides=None) -> tuple[nn.Module, ModelMeta]:
    """Our checkpoint (with sidecar) or a bare state_dict of any variant; ``overrides``
    (describe.ModelOverrides) are the user's flags over either."""
    from .describe import ModelOverrides, apply_overrides

    path = Path(path)
    state = load_weights(path)
    meta = read_sidecar(path) if sidecar_path(path).exists() else describe_state_dict(path, state)
    return _rebuild(state, apply_overrides(meta, overrides or ModelOverrides(), str(path)), path)


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
