"""The model description that travels with every checkpoint, export and artifact.

It is plain data (no torch) so that the thin runtime can read it on a board.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import CheckpointError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Weight precisions a build can have. Here, not in compile/, because the CLI offers them
# as choices and the CLI must import on a board that has no compile package.
PRECISIONS = ("fp32", "bf16", "int8", "fp16")


def default_resize_size(input_size: int) -> int:
    """The short side an image is resized to before the centre crop: torchvision's 256 for
    224 (the same 8/7 ratio at other sizes); small inputs (CIFAR-sized) are not cropped."""
    return input_size if input_size <= 64 else int(round(input_size * 256 / 224))


@dataclass
class ModelMeta:
    """What a consumer needs to rebuild, feed and label the model."""

    arch: str
    num_classes: int
    input_size: int
    resize_size: int
    class_names: list[str]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    width: float = 1.0
    val_accuracy: float | None = None
    dataset_fingerprint: str | None = None
    epoch: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "sidecar") -> "ModelMeta":
        known = {f for f in cls.__dataclass_fields__}
        try:
            kwargs = {k: v for k, v in d.items() if k in known}
            meta = cls(**kwargs)
            meta.mean = tuple(float(x) for x in meta.mean)  # type: ignore[assignment]
            meta.std = tuple(float(x) for x in meta.std)  # type: ignore[assignment]
        except TypeError as e:
            raise CheckpointError(f"{source}: malformed model description ({e})") from None
        if len(meta.class_names) != meta.num_classes:
            raise CheckpointError(
                f"{source}: {len(meta.class_names)} class names for {meta.num_classes} classes"
            )
        return meta


def sidecar_path(path: Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``: one sidecar per file, whatever its suffix."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def refuse_sidecar(path: Path, force: bool) -> None:
    """A command writing ``path`` writes its sidecar too: an existing one is kept unless ``force``."""
    from .fsutil import refuse_existing

    refuse_existing(sidecar_path(path), force)


def read_sidecar(path: Path) -> ModelMeta:
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{path}: its sidecar {side.name} is missing")
    from .fsutil import read_json

    return ModelMeta.from_dict(read_json(side, CheckpointError, "sidecar"), source=str(side))
