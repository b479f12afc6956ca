"""Tiny generated datasets: image folders whose classes a colour tells apart, and CIFAR-10 python
files written the way the real ones are (Python 2 pickles with bytes keys)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image


def class_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """An HxWx3 uint8 image whose dominant colour channel is ``label % 3``: easy to learn."""
    arr = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
    arr[..., label % 3] += 150
    if label >= 3:  # more than 3 classes: tell them apart by a bright top half too
        arr[: size // 2] = np.minimum(arr[: size // 2].astype(np.int32) + 25 * (label // 3), 255).astype(np.uint8)
    return arr


def write_image_folder(root: Path, class_counts: dict[str, int], size: int = 32, seed: int = 0,
                       suffix: str = ".png") -> Path:
    """Write an ImageFolder tree ``root/<class>/<i>.png``; a count of 0 makes an empty class folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for label, (name, count) in enumerate(class_counts.items()):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(class_image(label, size, rng)).save(d / f"{name}_{i:03d}{suffix}")
    return root


def write_split_image_folder(root: Path, train_counts: dict[str, int], val_counts: dict[str, int],
                             size: int = 32, seed: int = 0) -> Path:
    """Write ``root/train/<class>/...`` and ``root/val/<class>/...`` (an explicit split)."""
    write_image_folder(Path(root) / "train", train_counts, size, seed)
    write_image_folder(Path(root) / "val", val_counts, size, seed + 1)
    return Path(root)


@dataclass
class CifarFiles:
    """What ``write_cifar10`` wrote, to compare the loader against."""

    root: Path
    train_images: np.ndarray  # N x 32 x 32 x 3 uint8, data_batch_* concatenated in order
    train_labels: list[int]
    test_images: np.ndarray
    test_labels: list[int]
    label_names: list[str]


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """NHWC -> the on-disk layout: N x 3072, all R then all G then all B (row-major)."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072).astype(np.uint8)


def _dump_batch(path: Path, images: np.ndarray, labels: list[int], name: str) -> None:
    # the real files are Python 2 pickles with bytes keys
    d = {b"batch_label": name.encode(), b"labels": list(labels), b"data": _cifar_rows(images),
         b"filenames": [f"{name}_{i}.png".encode() for i in range(len(labels))]}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def write_cifar10(root: Path, train_batches: Sequence[int] = (12, 8), n_test: int = 6,
                  label_names: Sequence[str] | None = None, seed: int = 0, meta: bool = True) -> CifarFiles:
    """Write a CIFAR-10 python folder: data_batch_1..k, test_batch and batches.meta."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    names = list(label_names or ["airplane", "automobile", "bird", "cat", "deer",
                                 "dog", "frog", "horse", "ship", "truck"])
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, list[int]]:
        labels = [int(x) for x in rng.integers(0, len(names), size=n)]
        return np.stack([class_image(lab, 32, rng) for lab in labels]), labels

    all_x, all_y = [], []
    for i, n in enumerate(train_batches, start=1):
        x, y = make(n)
        _dump_batch(root / f"data_batch_{i}", x, y, f"training batch {i} of {len(train_batches)}")
        all_x.append(x)
        all_y += y
    tx, ty = make(n_test)
    _dump_batch(root / "test_batch", tx, ty, "testing batch 1 of 1")
    if meta:
        with open(root / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": [n.encode() for n in names], b"num_cases_per_batch": max(train_batches),
                         b"num_vis": 3072}, f, protocol=2)
    return CifarFiles(root, np.concatenate(all_x), all_y, tx, ty, names)
