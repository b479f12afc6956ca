"""Sample names, ais_bench's input order, and the ModelZoo's ``val_label.txt`` writer.

One rule ties images, ``.bin`` inputs, results and labels together: a file's name up
to the first '.' (:func:`alexnet_tvm.runtime.labels.sample_name`). ais_bench orders
its inputs naturally and numbers old-layout results by that position, so the order
must be reproduced exactly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from alexnet_tvm.errors import AscendError
from alexnet_tvm.fsutil import refuse_existing, write_text
from alexnet_tvm.preprocess import ClassFolders, scan_class_folders

from ..labels import sample_name


def natural_key(text: str) -> list:
    """Digits compare as numbers, the rest case-insensitively (``img_2`` before ``img_10``)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"([0-9]+)", text)]


def natural_sort(names: Sequence[str]) -> list[str]:
    """ais_bench's input order (plain sort, then a stable natural sort).

    Old-layout results are numbered by position in this order, so it must be
    reproduced exactly to give them their names back.
    """
    return sorted(sorted(names), key=natural_key)


def natural_order(names: Sequence[str]) -> list[int]:
    """Indices that put ``names`` in natural order (ties: plain order), for reordering rows with them."""
    return sorted(range(len(names)), key=lambda i: (natural_key(names[i]), names[i]))


def first_duplicate(names: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return None


def unique_names(paths: Sequence[Path], what: str) -> list[str]:
    """Stems up to the first '.', refusing two files that would write the same .bin/result."""
    seen: dict[str, Path] = {}
    for p in paths:
        name = sample_name(p.name)
        if not name:
            raise AscendError(f"{p}: the name before the first '.' is empty; {what} needs one")
        if name in seen:
            raise AscendError(f"{seen[name]} and {p} both map to {name!r} (the name up to the first '.'); "
                              f"rename one, or {what} would overwrite it")
        seen[name] = p
    return list(seen)


def scan_image_folder(root: Path) -> ClassFolders:
    """The shared ImageFolder reading (training's), refusing a root that holds both train/ and val/."""
    if (root / "train").is_dir() and (root / "val").is_dir():
        raise AscendError(f"{root}: holds train/ and val/; point at one of them")
    return scan_class_folders(root)


def write_label_file(image_folder: Path, out: Path, force: bool = False) -> tuple[int, list[str]]:
    """``name label`` lines for an ImageFolder set (class index = sorted folder order).

    Returns (images, class names). The names are the image file names, as in the
    ModelZoo's val_label.txt; their stems must be unique and free of whitespace.
    """
    root = Path(image_folder)
    if not root.is_dir():
        raise AscendError(f"{root}: no such image folder")
    refuse_existing(Path(out), force)
    tree = scan_image_folder(root)
    if len(tree.classes) < 2:
        raise AscendError(f"{root}: a labelled ImageFolder needs at least 2 class folders, "
                          f"found {len(tree.classes)}")
    items = list(zip(tree.paths, tree.labels))
    unique_names([p for p, _ in items], "the label file")
    for p, _ in items:
        if any(ch.isspace() for ch in p.name):
            raise AscendError(f"{p}: the file name holds whitespace, which a 'name label' line cannot")
    items.sort(key=lambda it: natural_key(it[0].name))
    write_text(Path(out), "".join(f"{p.name} {label}\n" for p, label in items))
    return len(items), tree.classes
