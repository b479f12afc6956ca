"""Image preprocessing in PIL + numpy.

Training uses these same functions for its eval transform, so an image fed to a
deployed library is bit-for-bit the tensor the model was validated on. The
geometry follows torchvision's ``Resize(int)`` + ``CenterCrop`` rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from alexnet_tvm.errors import ToolkitError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")


def resize_short_side(img: Image.Image, size: int) -> Image.Image:
    """Scale so the shorter side is ``size`` (torchvision's rounding), bilinear."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return img
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return img.resize((new_w, new_h), Image.BILINEAR)


def crop(img: Image.Image, top: int, left: int, size: int) -> Image.Image:
    return img.crop((left, top, left + size, top + size))


def center_crop_box(img: Image.Image, size: int) -> tuple[int, int]:
    w, h = img.size
    if w < size or h < size:
        raise ToolkitError(f"image of {w}x{h} is smaller than the {size}px crop")
    return int(round((h - size) / 2.0)), int(round((w - size) / 2.0))


def to_chw(img: Image.Image, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    arr = (arr - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def eval_transform(img: Image.Image, resize_size: int, input_size: int,
                   mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Resize shorter side, centre crop, scale to [0,1], normalise, HWC -> CHW float32."""
    img = resize_short_side(img.convert("RGB"), resize_size)
    top, left = center_crop_box(img, input_size)
    return to_chw(crop(img, top, left, input_size), mean, std)


def load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as e:
        raise ToolkitError(f"{path}: not a readable image ({e})") from None


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_labelled_folder(folder: Path, class_names: list[str], resize_size: int, input_size: int,
                         mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """An ImageFolder-style evaluation set (``val/`` if present), labelled by the model's class names."""
    folder = Path(folder)
    if (folder / "val").is_dir():
        folder = folder / "val"
    if not folder.is_dir():
        raise ToolkitError(f"{folder}: no such evaluation folder")
    index = {name: i for i, name in enumerate(class_names)}
    xs, ys = [], []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        if d.name not in index:
            raise ToolkitError(f"{d}: class {d.name!r} is not one of the model's classes")
        for f in list_images(d):
            xs.append(eval_transform(load_image(f), resize_size, input_size, mean, std))
            ys.append(index[d.name])
    if not xs:
        raise ToolkitError(f"{folder}: no labelled images found (expected one folder per class)")
    return np.stack(xs), np.asarray(ys)
