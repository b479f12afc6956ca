"""Label files, both common forms: ``NAME LABEL`` (val_label.txt) and ``PATH LABEL`` (val_list.txt).

A labelled evaluation set often comes as a folder of images plus one text file of
0-based class indices: keyed by image name (the ImageNet/ModelZoo ``val_label.txt``)
or by relative path (the ``val_list.txt`` of PaddleClas and others). Both are read
here with one set of rules, so that ``ascend metric``, ``verify --against ascend:``
and any other top-k evaluation agree on what a label file says. Malformed lines are
refused with the file and line number; harmless oddities (blank lines, a line
repeated with the same label) are tolerated but counted in a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from alexnet_tvm.errors import DatasetError

from .counted import counted_warnings

log = logging.getLogger(__name__)


def sample_name(filename: str) -> str:
    """The key a ``NAME LABEL`` file gives an image: its file name up to the first '.'.

    It is the ModelZoo's rule (imagenet_torch_preprocess names ``x.JPEG`` -> ``x.bin``,
    ais_bench names results after ``basename.split('.')[0]``, vision_metric keys
    labels the same way), so one key ties an image to its input, result and label.
    """
    return Path(filename).name.split(".")[0]


@dataclass
class Labels:
    """A ``NAME LABEL`` file: sample name (up to the first '.') -> 0-based class index."""

    path: Path
    labels: dict[str, int]
    warnings: list[str] = field(default_factory=list)


@dataclass
class LabelList:
    """A ``PATH LABEL`` file: (image path, 0-based class index) in file order.

    Relative paths are taken relative to the list file's folder, which is where
    such lists sit (beside the images or at the data set's root).
    """

    path: Path
    items: list[tuple[Path, int]]
    warnings: list[str] = field(default_factory=list)


def _read_label_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such label file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: unreadable label file ({e})") from None


def _parse(path: Path, head: str, key_of: Callable[[str, str], str]) -> tuple[dict[str, int], list[str]]:
    """key -> label over the file's ``HEAD LABEL`` lines, and the counted warnings.

    vision_metric crashes on blank lines and ignores fields beyond the second; here
    blank lines are counted and skipped (they label nothing) and extra fields are
    refused (a 3-column file is not the documented format). ``key_of(field, where)``
    turns the first field into the key, or raises naming ``where``.
    """
    labels: dict[str, int] = {}
    where: dict[str, int] = {}
    blank = dup = 0
    for lineno, line in enumerate(_read_label_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            blank += 1
            continue
        if len(fields) != 2:
            raise DatasetError(f"{path}:{lineno}: expected '{head} LABEL', got {line.strip()[:80]!r}")
        key, lab = key_of(fields[0], f"{path}:{lineno}"), fields[1]
        if not lab.isdigit() or not lab.isascii():
            raise DatasetError(f"{path}:{lineno}: label {lab!r} is not a non-negative integer")
        value = int(lab)
        if key in labels:
            if labels[key] != value:
                raise DatasetError(f"{path}:{lineno}: {key} is labelled {value} here and "
                                   f"{labels[key]} on line {where[key]}")
            dup += 1
            continue
        labels[key] = value
        where[key] = lineno
    if not labels:
        raise DatasetError(f"{path}: no labels")
    return labels, counted_warnings(
        log,
        f"{path}: {blank} blank lines skipped" if blank else None,
        f"{path}: {dup} repeated lines (same {head.lower()}, same label) counted once" if dup else None)


def _name_key(first: str, where: str) -> str:
    name = sample_name(first)
    if not name:
        raise DatasetError(f"{where}: empty image name in {first!r}")
    return name


def read_labels(path: Path) -> Labels:
    """Parse ``NAME LABEL`` lines (val_label.txt), keyed by :func:`sample_name`."""
    path = Path(path)
    labels, warnings = _parse(path, "NAME", _name_key)
    return Labels(path, labels, warnings)


def read_label_list(path: Path) -> LabelList:
    """Parse ``PATH LABEL`` lines (val_list.txt); a repeated path must repeat its label."""
    path = Path(path)
    labels, warnings = _parse(path, "PATH", lambda first, where: first)
    return LabelList(path, [(path.parent / p, lab) for p, lab in labels.items()], warnings)
