"""The ModelZoo's raw ``.bin`` inputs: written from images, listed and read in ais_bench's order.

Preprocessing is the toolkit's own PIL + numpy transform (:mod:`alexnet_tvm.preprocess`),
so TVM and the NPU see identical bytes; a ``.bin`` is headerless little-endian
float32 CHW, as imagenet_torch_preprocess writes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from alexnet_tvm.errors import AscendError
from alexnet_tvm.fsutil import atomic_dir
from alexnet_tvm.meta import IMAGENET_MEAN, IMAGENET_STD
from alexnet_tvm.preprocess import IMAGE_SUFFIXES, eval_transform, list_images, load_image

from ..counted import counted_warnings
from .modelzoo import INPUT_SIZE, RESIZE_SIZE
from .npy import load_npy
from .names import natural_sort, scan_image_folder, unique_names

log = logging.getLogger(__package__)

#: input files ais_bench takes from an input folder
INPUT_SUFFIXES = (".bin", ".BIN", ".npy", ".NPY")


@dataclass
class PreprocessReport:
    """What ``preprocess_folder`` wrote and what it left aside (counted, never silent)."""

    out_dir: Path
    names: list[str]
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def collect_images(images_dir: Path) -> tuple[list[Path], list[str]]:
    """Images of a flat folder (the ModelZoo's case) or of an ImageFolder tree; plus what is ignored.

    A flat folder wins when it has images; class subfolders are then ignored (and
    counted). Non-image files are ignored and counted: the ModelZoo script would
    crash on them, they hold no image either way. Both cases follow the toolkit's
    one file rule (:func:`alexnet_tvm.preprocess.scan_class_folders`).
    """
    root = Path(images_dir)
    if not root.is_dir():
        raise AscendError(f"{root}: no such image folder")
    images = list_images(root)
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    if images:
        ignored = [p.name for p in entries if p not in images]
        return images, ignored
    if not any(p.is_dir() for p in entries):
        raise AscendError(f"{root}: no images (suffixes {', '.join(IMAGE_SUFFIXES)})")
    tree = scan_image_folder(root)
    return tree.paths, [p.name for p in entries if p.is_file()]


def preprocess_image(path: Path, resize_size: int = RESIZE_SIZE, input_size: int = INPUT_SIZE,
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """Resize(256) bilinear, CenterCrop(224), ToTensor, Normalize after ``.convert('RGB')``: CHW float32."""
    return eval_transform(load_image(Path(path)), resize_size, input_size, mean, std)


def preprocess_folder(images_dir: Path, out_dir: Path, *, resize_size: int = RESIZE_SIZE,
                      input_size: int = INPUT_SIZE, mean: Sequence[float] = IMAGENET_MEAN,
                      std: Sequence[float] = IMAGENET_STD, force: bool = False) -> PreprocessReport:
    """One headerless float32 CHW ``<name>.bin`` per image; the folder appears whole or not at all."""
    if resize_size < input_size:
        raise AscendError(f"resize size {resize_size} is smaller than the {input_size}px crop")
    images, ignored = collect_images(images_dir)
    names = unique_names(images, "preprocessing")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, force=force) as tmp:
        for path, name in zip(images, names):
            arr = preprocess_image(path, resize_size, input_size, mean, std)
            arr.astype("<f4", copy=False).tofile(tmp / f"{name}.bin")
    warnings = counted_warnings(
        log, f"{len(ignored)} entries of {images_dir} are not images and were ignored (e.g. {ignored[0]})"
        if ignored else None)
    log.info("wrote %d inputs of %d bytes to %s", len(names), 3 * input_size * input_size * 4, out_dir)
    return PreprocessReport(out_dir, names, ignored, warnings)


def check_finite(arr: np.ndarray, where: str) -> None:
    """Refuse NaN/inf, naming the first bad element: one would poison every comparison downstream."""
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        raise AscendError(f"{where}: {arr.reshape(-1)[i]} at element {i}")


def list_bin_inputs(inputs_dir: Path, shape: Sequence[int] = (3, INPUT_SIZE, INPUT_SIZE)
                    ) -> tuple[list[str], list[Path], list[str]]:
    """(names, paths, warnings) of an input folder, in ais_bench's order, sizes checked.

    ais_bench takes ``*.bin``/``*.npy`` and ignores the rest (counted here); it sorts
    the paths naturally and batches them in that order, which is what gives
    old-layout results (numbered by position) their names.
    """
    root = Path(inputs_dir)
    if not root.is_dir():
        raise AscendError(f"{root}: no such input folder")
    files = [p for p in root.iterdir() if p.is_file() and p.name.endswith(INPUT_SUFFIXES)]
    others = [p.name for p in root.iterdir() if p not in files]
    if not files:
        raise AscendError(f"{root}: no .bin or .npy inputs")
    paths = [root / n for n in natural_sort([p.name for p in files])]
    names = unique_names(paths, "ais_bench")
    want = int(np.prod(shape)) * 4
    for p in paths:
        if p.suffix.lower() == ".bin":
            size = p.stat().st_size
            if size != want:
                raise AscendError(f"{p}: {size} bytes, expected {want} (float32 x {'x'.join(map(str, shape))})")
    warnings = counted_warnings(
        log, f"{root}: {len(others)} entries that are not .bin/.npy ignored, as ais_bench does "
        f"(e.g. {sorted(others)[0]})" if others else None)
    return names, paths, warnings


def read_bin_input(path: Path, shape: Sequence[int] = (3, INPUT_SIZE, INPUT_SIZE)) -> np.ndarray:
    """One preprocessed input as a CHW float32 array (raw .bin, or a float32 .npy)."""
    path = Path(path)
    want = int(np.prod(shape))
    if path.suffix.lower() == ".npy":
        arr = load_npy(path)
        if arr.dtype != np.float32 or arr.size != want:
            raise AscendError(f"{path}: {arr.dtype} {arr.shape}, expected float32 with {want} values")
    else:
        arr = np.fromfile(path, dtype="<f4")
        if arr.size * 4 != path.stat().st_size or arr.size != want:
            raise AscendError(f"{path}: {path.stat().st_size} bytes, expected {want * 4}")
    check_finite(arr, f"{path}: non-finite input value")
    return arr.reshape(tuple(shape)).astype(np.float32, copy=False)


def iter_bin_batches(inputs_dir: Path, shape: Sequence[int] = (3, INPUT_SIZE, INPUT_SIZE), batch_size: int = 16
                     ) -> Iterator[tuple[list[str], np.ndarray]]:
    """(names, N x C x H x W) batches in ais_bench order, for sets too big to hold at once."""
    if batch_size < 1:
        raise AscendError("batch size must be at least 1")
    names, paths, _ = list_bin_inputs(inputs_dir, shape)
    for i in range(0, len(paths), batch_size):
        yield names[i:i + batch_size], np.stack([read_bin_input(p, shape) for p in paths[i:i + batch_size]])


def load_bin_inputs(inputs_dir: Path, shape: Sequence[int] = (3, INPUT_SIZE, INPUT_SIZE)
                    ) -> tuple[list[str], np.ndarray]:
    """All inputs of a preprocessed folder: (names in ais_bench order, N x C x H x W float32)."""
    names, paths, _ = list_bin_inputs(inputs_dir, shape)
    return names, np.stack([read_bin_input(p, shape) for p in paths])
