"""Labelled image sets: an ImageFolder tree, CIFAR-10 python batches, and the embedded digits.

Every source yields PIL images; the transforms and the ImageFolder scan are the core
PIL + numpy ones (:mod:`alexnet_tvm.preprocess`), so training, evaluation and
deployment see identical images and tensors.
"""

from __future__ import annotations

import hashlib
import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from alexnet_tvm.errors import DatasetError
from alexnet_tvm.preprocess import crop, load_image, resize_short_side, scan_class_folders, to_chw

EMBEDDED = "digits"


class ImageSource(Protocol):
    labels: list[int]

    def __len__(self) -> int: ...

    def image(self, i: int) -> Image.Image: ...


@dataclass
class FileImages:
    paths: list[Path]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> Image.Image:
        try:
            return load_image(self.paths[i])
        except Exception as e:
            raise DatasetError(str(e)) from None


@dataclass
class ArrayImages:
    """uint8 arrays, NHWC (RGB) or NHW (grey)."""

    arrays: np.ndarray
    labels: list[int]

    def __len__(self) -> int:
        return len(self.arrays)

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(self.arrays[i]).convert("RGB")


@dataclass
class DatasetSplit:
    name: str
    train: ImageSource
    val: ImageSource
    class_names: list[str]
    fingerprint: str
    #: whether mirrored images keep their label (not for digits)
    allow_flip: bool


def _subset(src: ImageSource, idx: list[int]) -> ImageSource:
    labels = [src.labels[i] for i in idx]
    if isinstance(src, FileImages):
        return FileImages([src.paths[i] for i in idx], labels)
    assert isinstance(src, ArrayImages)
    return ArrayImages(src.arrays[idx], labels)


def split_by_class(labels: list[int], seed: int, val_fraction: float = 0.1) -> tuple[list[int], list[int]]:
    """A reproducible stratified 9:1 split: each class keeps >= 1 image on each side."""
    rng = random.Random(seed)
    train, val = [], []
    for c in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == c]
        rng.shuffle(idx)
        n_val = max(1, int(round(len(idx) * val_fraction))) if len(idx) > 1 else 0
        val += idx[:n_val]
        train += idx[n_val:]
    return sorted(train), sorted(val)


def _scan_class_dirs(root: Path) -> tuple[list[str], list[Path], list[int]]:
    """The shared ImageFolder reading (:func:`alexnet_tvm.preprocess.scan_class_folders`), at least 2 classes."""
    tree = scan_class_folders(root, min_classes=2)
    return tree.classes, tree.paths, tree.labels


def _fingerprint_files(root: Path, paths: list[Path], labels: list[int]) -> str:
    h = hashlib.sha256()
    for p, lab in zip(paths, labels):
        h.update(f"{p.relative_to(root)}\0{p.stat().st_size}\0{lab}\n".encode())
    return "sha256:" + h.hexdigest()


def load_image_folder(root: Path, seed: int) -> DatasetSplit:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    if (root / "train").is_dir() and (root / "val").is_dir():
        classes, tp, tl = _scan_class_dirs(root / "train")
        vclasses, vp, vl = _scan_class_dirs(root / "val")
        if vclasses != classes:
            raise DatasetError(f"{root}: train/ and val/ have different class folders")
        fp = _fingerprint_files(root, tp + vp, tl + vl)
        return DatasetSplit(root.name, FileImages(tp, tl), FileImages(vp, vl), classes, fp, True)
    classes, paths, labels = _scan_class_dirs(root)
    src = FileImages(paths, labels)
    tr, va = split_by_class(labels, seed)
    fp = _fingerprint_files(root, paths, labels) + f":split{seed}"
    return DatasetSplit(root.name, _subset(src, tr), _subset(src, va), classes, fp, True)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = [int(x) for x in d[b"labels"]]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"{path}: not a CIFAR-10 python batch ({type(e).__name__})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DatasetError(f"{path}: expected N x 3072 uint8 rows with N labels")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def load_cifar10(root: Path) -> DatasetSplit:
    """``data_batch_*`` for training, ``test_batch`` for validation, names from ``batches.meta``."""
    root = Path(root)
    train_files = sorted(root.glob("data_batch_*"))
    if not train_files or not (root / "test_batch").is_file():
        raise DatasetError(f"{root}: not a CIFAR-10 python folder (needs data_batch_* and test_batch)")
    parts = [_read_cifar_batch(p) for p in train_files]
    xs = np.concatenate([p[0] for p in parts])
    ys = [lab for p in parts for lab in p[1]]
    vx, vy = _read_cifar_batch(root / "test_batch")
    names = [f"class_{i}" for i in range(10)]
    if (root / "batches.meta").is_file():
        try:
            with open(root / "batches.meta", "rb") as f:
                names = [n.decode() for n in pickle.load(f, encoding="bytes")[b"label_names"]]
        except Exception as e:
            raise DatasetError(f"{root / 'batches.meta'}: unreadable ({type(e).__name__})") from None
    if max(ys + vy) >= len(names):
        raise DatasetError(f"{root}: label {max(ys + vy)} outside the {len(names)} class names")
    h = hashlib.sha256()
    for p in train_files + [root / "test_batch"]:
        h.update(p.read_bytes())
    return DatasetSplit("cifar10", ArrayImages(xs, ys), ArrayImages(vx, vy), names, "sha256:" + h.hexdigest(), True)


def load_digits(seed: int) -> DatasetSplit:
    """scikit-learn's 1,797 handwritten digits (8x8 grey), shipped inside the package."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    arrays = np.clip(d.images * 16.0, 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    labels = [int(x) for x in d.target]
    tr, va = split_by_class(labels, seed)
    src = ArrayImages(arrays, labels)
    fp = "sha256:" + hashlib.sha256(arrays.tobytes() + bytes(labels)).hexdigest() + f":split{seed}"
    return DatasetSplit(EMBEDDED, _subset(src, tr), _subset(src, va), [str(i) for i in range(10)], fp, False)


def load_dataset(spec: str, seed: int) -> DatasetSplit:
    """``digits`` (embedded), a CIFAR-10 batches folder, or an ImageFolder tree."""
    if spec == EMBEDDED:
        return load_digits(seed)
    root = Path(spec)
    if not root.exists():
        raise DatasetError(f"{root}: no such dataset (give a folder, or '{EMBEDDED}' for the embedded set)")
    if not root.is_dir():
        raise DatasetError(f"{root}: a dataset must be a folder")
    if any(root.glob("data_batch_*")):
        return load_cifar10(root)
    return load_image_folder(root, seed)


class TransformedImages:
    """A torch-style dataset: (CHW float32 array, label), eval or train geometry."""

    def __init__(self, src: ImageSource, resize_size: int, input_size: int, mean, std,
                 train: bool, allow_flip: bool, seed: int):
        self.src, self.resize_size, self.input_size = src, resize_size, input_size
        self.mean, self.std, self.train, self.allow_flip = mean, std, train, allow_flip
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        img = resize_short_side(self.src.image(i), self.resize_size)
        w, h = img.size
        s = self.input_size
        if self.train:
            top, left = self.rng.randint(0, h - s), self.rng.randint(0, w - s)
        else:
            top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
        img = crop(img, top, left, s)
        if self.train and self.allow_flip and self.rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return to_chw(img, self.mean, self.std), self.src.labels[i]
