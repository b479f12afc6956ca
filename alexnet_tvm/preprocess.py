"""Image preprocessing and image-folder scanning in PIL + numpy (core: no torch, no TVM).

Training, ``verify --eval-set``, the Ascend ``.bin`` inputs and the deployed
library all use these functions, so an image fed to a deployed library is
bit-for-bit the tensor the model was validated on, and every command that reads
an ImageFolder tree sees the same images in it. The geometry follows
torchvision's ``Resize(int)`` + ``CenterCrop`` rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from alexnet_tvm.errors import DatasetError, ImageSizeError, ToolkitError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")

#: the most pixels an image may have once its short side is resized: Pillow's own limit for a
#: decoded image. Resizing only grows a strip: a 1 kB PNG of 400000x1 would become 12.8M x 32
#: at a 32-px model (1.2 GB of RGB, 2.8 GB peak) though its decoded size passed every check.
MAX_RESIZED_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


def resized_dims(w: int, h: int, size: int) -> tuple[int, int]:
    """(width, height) once the shorter side is ``size`` (torchvision's truncation of the long side)."""
    short, long = (w, h) if w <= h else (h, w)
    if short == size or short < 1:
        return w, h
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


def check_resized(w: int, h: int, size: int, max_pixels: int = MAX_RESIZED_PIXELS) -> None:
    """Refuse an image of ``w`` x ``h`` whose resize to short side ``size`` would exceed ``max_pixels``,
    before any pixel of that resize is allocated."""
    new_w, new_h = resized_dims(w, h, size)
    if new_w * new_h > max_pixels:
        raise ImageSizeError(f"image of {w}x{h} pixels would be {new_w}x{new_h} once its short side is "
                             f"resized to {size}, over the limit of {max_pixels} pixels")


def resize_short_side(img: Image.Image, size: int) -> Image.Image:
    """Scale so the shorter side is ``size`` (torchvision's rounding), bilinear."""
    w, h = img.size
    if min(w, h) == size:
        return img
    check_resized(w, h, size)
    return img.resize(resized_dims(w, h, size), Image.BILINEAR)


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
    """The one image loader: RGB, or one typed error for anything PIL refuses, including a header
    that claims more pixels than PIL's decompression-bomb limit (it would exhaust memory)."""
    if not Path(path).is_file():  # a FIFO or a device would block the open or never end
        raise ToolkitError(f"{path}: not a regular file")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ToolkitError(f"{path}: not a readable image ({e})") from None


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def is_image_file(path: Path) -> bool:
    """A visible file whose suffix (any case) is one of :data:`IMAGE_SUFFIXES`."""
    return not _is_hidden(path) and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def list_images(folder: Path) -> list[Path]:
    """The images directly in ``folder`` (not below it), sorted; the file rule of :func:`scan_class_folders`."""
    return sorted(p for p in Path(folder).iterdir() if is_image_file(p))


def walk_images(folder: Path) -> Iterator[Path]:
    """The image files below ``folder`` at any depth (unsorted); hidden names and symlinked folders skipped."""
    for p in folder.iterdir():
        if _is_hidden(p):
            continue
        if p.is_dir() and not p.is_symlink():
            yield from walk_images(p)
        elif is_image_file(p):
            yield p


@dataclass
class ClassFolders:
    """An ImageFolder tree as found on disk: class ``i`` is ``classes[i]``, its images ``images[i]``."""

    root: Path
    classes: list[str]
    images: list[list[Path]]

    @property
    def paths(self) -> list[Path]:
        """Every image, class by class (the order training fingerprints and labels them in)."""
        return [p for files in self.images for p in files]

    @property
    def labels(self) -> list[int]:
        """The class index of each of :attr:`paths`."""
        return [ci for ci, files in enumerate(self.images) for _ in files]


def scan_class_folders(root: Path, *, min_classes: int = 0, allow_empty: bool = False) -> ClassFolders:
    """The one reading of an ImageFolder tree, shared by training, ``verify --eval-set`` and Ascend.

    The rule, so that every command sees the same images:

    * classes are the visible sub-folders of ``root`` (names not starting with '.'),
      sorted by name; a class's index is its position in that order;
    * a class's images are the files below its folder, at any depth, whose suffix
      (any case) is one of :data:`IMAGE_SUFFIXES`, sorted by path;
    * anything whose name starts with '.' is skipped at every level (``.DS_Store``,
      macOS ``._x.jpg`` companions, ``.ipynb_checkpoints/``), and symlinked
      sub-folders are not followed (as ``Path.rglob`` does not), so no image is
      seen twice.

    ``min_classes``: refuse a tree with fewer class folders (checked before any
    image is looked for). ``allow_empty``: tolerate a class folder without images
    (an evaluation set may cover some classes only); otherwise it is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such image folder")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not _is_hidden(d))
    if len(classes) < min_classes:
        raise DatasetError(f"{root}: an ImageFolder needs at least {min_classes} class folders, "
                           f"found {len(classes)}")
    images: list[list[Path]] = []
    for c in classes:
        files = sorted(walk_images(root / c))
        if not files and not allow_empty:
            raise DatasetError(f"{root / c}: class folder has no images")
        images.append(files)
    return ClassFolders(root, classes, images)


def load_labelled_folder(folder: Path, class_names: list[str], resize_size: int, input_size: int,
                         mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """An ImageFolder-style evaluation set (``val/`` if present), labelled by the model's class names.

    Read with :func:`scan_class_folders`, so it holds exactly the images training
    would take from the same tree; class folders may be empty or a subset.
    """
    folder = Path(folder)
    if (folder / "val").is_dir():
        folder = folder / "val"
    if not folder.is_dir():
        raise ToolkitError(f"{folder}: no such evaluation folder")
    index = {name: i for i, name in enumerate(class_names)}
    tree = scan_class_folders(folder, allow_empty=True)
    for c in tree.classes:
        if c not in index:
            raise ToolkitError(f"{folder / c}: class {c!r} is not one of the model's classes")
    if not tree.paths:
        raise ToolkitError(f"{folder}: no labelled images found (expected one folder per class)")
    xs = [eval_transform(load_image(f), resize_size, input_size, mean, std) for f in tree.paths]
    ys = [index[tree.classes[ci]] for ci in tree.labels]
    return np.stack(xs), np.asarray(ys)
