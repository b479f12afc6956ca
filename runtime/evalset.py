"""A labelled evaluation set in any of the three layouts AlexNet's users keep one in.

- an ImageFolder (one folder per class; ``DATA/val/`` is taken when present), read with
  the toolkit's one scanner (:func:`alexnet_tvm.preprocess.scan_class_folders`);
- a flat folder of images with a ``val_label.txt`` (``NAME LABEL`` lines, the ImageNet /
  Ascend ModelZoo form: NAME is the file name up to its first '.');
- a ``val_list.txt`` (``PATH LABEL`` lines, the Paddle form), given as the file or found
  in DATA.

Labels are 0-based class indices. An ImageFolder's folder names are mapped through the
model's class names; where they are not class names (ImageNet's ``n01440764`` ids) and
there is one folder per class, the sorted order is the index, as torchvision's
ImageFolder assigns it. Torch-free: this runs wherever the runtime runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet_tvm.errors import DatasetError
from alexnet_tvm.preprocess import is_image_file, list_images, scan_class_folders

from .labels import read_label_list, read_labels, sample_name

log = logging.getLogger(__name__)

LABEL_FILE = "val_label.txt"
LIST_FILE = "val_list.txt"


@dataclass
class EvalSet:
    """Images and their 0-based labels, in a fixed order."""

    source: str  # "imagefolder", "val_label.txt" or "val_list.txt"
    root: Path
    images: list[Path]
    labels: np.ndarray
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def _check_range(labels: list[int], num_classes: int, where: Path) -> np.ndarray:
    bad = [lab for lab in labels if not 0 <= lab < num_classes]
    if bad:
        raise DatasetError(f"{where}: label {bad[0]} is out of range for a {num_classes}-class model "
                           f"({len(bad)} such labels; labels are 0-based class indices)")
    return np.asarray(labels, dtype=np.int64)


def _class_index(folders: list[str], class_names: list[str], root: Path) -> list[int]:
    index = {name: i for i, name in enumerate(class_names)}
    if all(f in index for f in folders):
        return [index[f] for f in folders]
    if len(folders) == len(class_names):
        log.info("%s: folder names are not the model's class names; using their sorted order as the "
                 "class index (torchvision's ImageFolder rule)", root)
        return list(range(len(folders)))
    unknown = next(f for f in folders if f not in index)
    raise DatasetError(f"{root / unknown}: {unknown!r} is not one of the model's class names, and there are "
                       f"{len(folders)} folders for {len(class_names)} classes (cannot map by order)")


def _image_folder(root: Path, class_names: list[str]) -> EvalSet:
    tree = scan_class_folders(root, allow_empty=True)
    if not tree.classes:
        raise DatasetError(f"{root}: no class folders, {LABEL_FILE} or {LIST_FILE} in it")
    index = _class_index(tree.classes, class_names, root)
    labels = [index[ci] for ci in tree.labels]
    return EvalSet("imagefolder", root, tree.paths, _check_range(labels, len(class_names), root))


def _flat_folder(root: Path, num_classes: int) -> EvalSet:
    labels = read_labels(root / LABEL_FILE)
    by_name = {sample_name(p.name): p for p in list_images(root)}
    missing = [n for n in labels.labels if n not in by_name]
    if missing:
        raise DatasetError(f"{root / LABEL_FILE}: names {len(missing)} image(s) not in {root} "
                           f"(first: {missing[0]!r})")
    unlabelled = len(by_name) - len(labels.labels)
    warnings = list(labels.warnings)
    if unlabelled:
        warnings.append(f"{root}: {unlabelled} image(s) without a label in {LABEL_FILE} left out")
        log.warning(warnings[-1])
    names = sorted(labels.labels)
    values = _check_range([labels.labels[n] for n in names], num_classes, root / LABEL_FILE)
    return EvalSet(LABEL_FILE, root, [by_name[n] for n in names], values, warnings)


def _list_file(path: Path, num_classes: int) -> EvalSet:
    listed = read_label_list(path)
    missing = [p for p, _ in listed.items if not p.is_file()]
    if missing:
        raise DatasetError(f"{path}: names {len(missing)} image(s) that do not exist (first: {missing[0]})")
    not_images = [p for p, _ in listed.items if not is_image_file(p)]
    if not_images:
        raise DatasetError(f"{path}: {not_images[0]} is not an image file")
    values = _check_range([lab for _, lab in listed.items], num_classes, path)
    return EvalSet(LIST_FILE, path.parent, [p for p, _ in listed.items], values, list(listed.warnings))


def open_eval_set(data: Path, class_names: list[str]) -> EvalSet:
    """DATA as an ImageFolder, a flat folder with val_label.txt, or a val_list.txt."""
    data = Path(data)
    if data.is_file():
        found = _list_file(data, len(class_names))
    elif not data.is_dir():
        raise DatasetError(f"{data}: no such evaluation set (a folder or a {LIST_FILE})")
    elif (data / LABEL_FILE).is_file():
        found = _flat_folder(data, len(class_names))
    elif (data / LIST_FILE).is_file():
        found = _list_file(data / LIST_FILE, len(class_names))
    else:
        found = _image_folder(data / "val" if (data / "val").is_dir() else data, class_names)
    if not len(found):
        raise DatasetError(f"{data}: no labelled images in it")
    return found
