"""The Ascend OM path, numpy only: what the ModelZoo flow consumes and what ais_bench writes.

There is no Ascend hardware here, so this module is about being exact at the file
boundary, where the ModelZoo scripts (pth2onnx, imagenet_torch_preprocess,
vision_metric), ATC and the ais_bench inference tool meet:

* preprocessing to the ModelZoo's raw ``.bin`` inputs (the same PIL + numpy
  transform the rest of the toolkit uses, so TVM and the NPU see identical bytes);
* the ``atc`` command lines (one static OM per batch size);
* reading ais_bench result folders in every format (TXT, BIN, NPY) and both
  layouts (``{stem}_0.ext`` with ``{dir}_summary.json`` beside the folder, and the
  mid-2022 ``sample_id_N_output_M.ext`` with ``sumary.json`` inside);
* vision_metric's Top-1..Top-5 and its ``result.json``, byte for byte;
* the comparison the ``verify --against ascend:DIR`` gate is built on.

It never imports torch: it runs on boards that only have the TVM runtime and numpy.
Malformed input is refused with one precise line (:class:`AscendError`); where the
ModelZoo tolerates something, it is tolerated here too but counted in a warning,
never skipped silently.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from alexnet_tvm.errors import AscendError
from alexnet_tvm.fsutil import atomic_dir, atomic_path, refuse_existing, write_text
from alexnet_tvm.meta import IMAGENET_MEAN, IMAGENET_STD

from .preprocess import IMAGE_SUFFIXES, eval_transform, list_images, load_image

log = logging.getLogger(__name__)

#: the ModelZoo's pth2onnx names and opset (ATC supports opset 11)
INPUT_NAME = "actual_input_1"
OUTPUT_NAME = "output1"
BATCH_AXIS_NAME = "-1"
OPSET = 11
INPUT_SIZE = 224
RESIZE_SIZE = 256
DEFAULT_BATCHES = (1, 4, 8, 16, 32, 64)
DEFAULT_SOC = "Ascend310P3"
KNOWN_SOCS = ("Ascend310P3", "Ascend310")
#: result formats ais_bench writes (``--outfmt`` lower-cased into the file suffix)
FORMATS = ("txt", "bin", "npy")
#: the old (mid-2022) summary name, misspelt by ais_bench itself, inside the results folder
OLD_SUMMARY = "sumary.json"
#: TXT results are ``%f``: 6 decimals, so a value is known to half a unit in the 6th place
TXT_ROUNDING = 5e-7
#: what vision_metric reports: Top-1 .. Top-5
TOPN = 5
#: input files ais_bench takes from an input folder
INPUT_SUFFIXES = (".bin", ".BIN", ".npy", ".NPY")

_OLD_NAME = re.compile(r"sample_id_(\d+)_output_(\d+)")
_NEW_NAME = re.compile(r"(.+)_(\d+)")
_DEVICE_DIR = re.compile(r"device\d+")
_SOC = re.compile(r"Ascend[0-9A-Za-z]+")


# --------------------------------------------------------------------------- names


def sample_name(filename: str) -> str:
    """The ModelZoo's key for a file: its name up to the first '.'.

    imagenet_torch_preprocess names ``x.JPEG`` -> ``x.bin``, ais_bench names results
    after ``basename.split('.')[0]`` and vision_metric keys labels the same way, so
    this one rule ties images, inputs, results and labels together.
    """
    return Path(filename).name.split(".")[0]


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"([0-9]+)", text)]


def natural_sort(names: Sequence[str]) -> list[str]:
    """ais_bench's input order (plain sort, then a stable natural sort).

    Old-layout results are numbered by position in this order, so it must be
    reproduced exactly to give them their names back.
    """
    return sorted(sorted(names), key=_natural_key)


# --------------------------------------------------------------------------- atc


def check_soc(soc: str) -> str:
    if not _SOC.fullmatch(soc):
        raise AscendError(f"--soc {soc!r} is not an Ascend SoC name (e.g. {', '.join(KNOWN_SOCS)}; "
                          "see 'npu-smi info')")
    return soc


def check_batches(batches: Sequence[int]) -> list[int]:
    out: list[int] = []
    for b in batches:
        if int(b) < 1:
            raise AscendError(f"batch size {b} must be at least 1")
        if int(b) not in out:
            out.append(int(b))
    if not out:
        raise AscendError("no batch size given")
    return out


def atc_command(batch: int, soc: str = DEFAULT_SOC, model: str = "./alexnet.onnx",
                output_prefix: str = "./onnx_alexnet_bs", input_size: int = INPUT_SIZE,
                input_name: str = INPUT_NAME) -> str:
    """The ModelZoo's atc line for one static batch size (ATC builds no dynamic batch here)."""
    check_batches([batch])
    check_soc(soc)
    return (f"atc --model={model} --framework=5 --output={output_prefix}{batch} --input_format=NCHW "
            f"--input_shape=\"{input_name}:{batch},3,{input_size},{input_size}\" --log=debug "
            f"--soc_version={soc}")


def atc_script(batches: Sequence[int] = DEFAULT_BATCHES, soc: str = DEFAULT_SOC, model: str = "./alexnet.onnx",
               output_prefix: str = "./onnx_alexnet_bs", input_size: int = INPUT_SIZE,
               input_name: str = INPUT_NAME) -> str:
    """A pth2om.sh that builds one OM per batch size; ``set -e`` so a failed atc stops it."""
    lines = ["#!/bin/bash",
             "# ONNX -> OM for the Ascend ModelZoo AlexNet flow (written by 'alexnet-tvm ascend atc-cmd').",
             "# Source the CANN environment first (set_env.sh); the SoC name comes from 'npu-smi info'.",
             "set -e"]
    lines += [atc_command(b, soc, model, output_prefix, input_size, input_name) for b in check_batches(batches)]
    return "\n".join(lines) + "\n"


def write_atc_script(path: Path, text: str, force: bool = False) -> None:
    """Write the script whole and executable."""
    path = Path(path)
    refuse_existing(path, force)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        os.chmod(tmp, 0o755)


# --------------------------------------------------------------------------- preprocessing


@dataclass
class PreprocessReport:
    """What ``preprocess_folder`` wrote and what it left aside (counted, never silent)."""

    out_dir: Path
    names: list[str]
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _scan_class_folders(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """ImageFolder rules (classes = sorted folder names, index = position), as training uses."""
    if (root / "train").is_dir() and (root / "val").is_dir():
        raise AscendError(f"{root}: holds train/ and val/; point at one of them")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    items: list[tuple[Path, int]] = []
    for ci, c in enumerate(classes):
        files = sorted(p for p in (root / c).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise AscendError(f"{root / c}: class folder has no images")
        items += [(p, ci) for p in files]
    return classes, items


def collect_images(images_dir: Path) -> tuple[list[Path], list[str]]:
    """Images of a flat folder (the ModelZoo's case) or of an ImageFolder tree; plus what is ignored.

    A flat folder wins when it has images; class subfolders are then ignored (and
    counted). Non-image files are ignored and counted: the ModelZoo script would
    crash on them, they hold no image either way.
    """
    root = Path(images_dir)
    if not root.is_dir():
        raise AscendError(f"{root}: no such image folder")
    images = list_images(root)
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    if images:
        ignored = [p.name for p in entries if p not in images]
        return images, ignored
    subdirs = [p for p in entries if p.is_dir()]
    if not subdirs:
        raise AscendError(f"{root}: no images (suffixes {', '.join(IMAGE_SUFFIXES)})")
    _, items = _scan_class_folders(root)
    ignored = [p.name for p in entries if p.is_file()]
    return [p for p, _ in items], ignored


def _unique_names(paths: Sequence[Path], what: str) -> list[str]:
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
    names = _unique_names(images, "preprocessing")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, force=force) as tmp:
        for path, name in zip(images, names):
            arr = preprocess_image(path, resize_size, input_size, mean, std)
            arr.astype("<f4", copy=False).tofile(tmp / f"{name}.bin")
    warnings = []
    if ignored:
        warnings.append(f"{len(ignored)} entries of {images_dir} are not images and were ignored "
                        f"(e.g. {ignored[0]})")
    for w in warnings:
        log.warning(w)
    log.info("wrote %d inputs of %d bytes to %s", len(names), 3 * input_size * input_size * 4, out_dir)
    return PreprocessReport(out_dir, names, ignored, warnings)


# --------------------------------------------------------------------------- labels


@dataclass
class Labels:
    """A vision_metric label file: sample name (up to the first '.') -> 0-based class index."""

    path: Path
    labels: dict[str, int]
    warnings: list[str] = field(default_factory=list)


def write_label_file(image_folder: Path, out: Path, force: bool = False) -> tuple[int, list[str]]:
    """``name label`` lines for an ImageFolder set (class index = sorted folder order).

    Returns (images, class names). The names are the image file names, as in the
    ModelZoo's val_label.txt; their stems must be unique and free of whitespace.
    """
    root = Path(image_folder)
    if not root.is_dir():
        raise AscendError(f"{root}: no such image folder")
    refuse_existing(Path(out), force)
    classes, items = _scan_class_folders(root)
    if len(classes) < 2:
        raise AscendError(f"{root}: a labelled ImageFolder needs at least 2 class folders, found {len(classes)}")
    _unique_names([p for p, _ in items], "the label file")
    for p, _ in items:
        if any(ch.isspace() for ch in p.name):
            raise AscendError(f"{p}: the file name holds whitespace, which a 'name label' line cannot")
    items.sort(key=lambda it: _natural_key(it[0].name))
    write_text(Path(out), "".join(f"{p.name} {label}\n" for p, label in items))
    return len(items), classes


def read_labels(path: Path) -> Labels:
    """Parse ``NAME LABEL`` lines; a line that does not parse is an error naming it.

    vision_metric crashes on blank lines and ignores fields beyond the second; here
    blank lines are counted and skipped (they label nothing) and extra fields are
    refused (a 3-column file is not the format vision_metric documents).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AscendError(f"{path}: no such label file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AscendError(f"{path}: unreadable label file ({e})") from None
    labels: dict[str, int] = {}
    where: dict[str, int] = {}
    blank = dup = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            blank += 1
            continue
        if len(fields) != 2:
            raise AscendError(f"{path}:{lineno}: expected 'NAME LABEL', got {line.strip()[:80]!r}")
        name, lab = sample_name(fields[0]), fields[1]
        if not name:
            raise AscendError(f"{path}:{lineno}: empty image name in {fields[0]!r}")
        if not lab.isdigit() or not lab.isascii():
            raise AscendError(f"{path}:{lineno}: label {lab!r} is not a non-negative integer")
        value = int(lab)
        if name in labels:
            if labels[name] != value:
                raise AscendError(f"{path}:{lineno}: {name} is labelled {value} here and "
                                  f"{labels[name]} on line {where[name]}")
            dup += 1
            continue
        labels[name] = value
        where[name] = lineno
    if not labels:
        raise AscendError(f"{path}: no labels")
    warnings = []
    if blank:
        warnings.append(f"{path}: {blank} blank lines skipped")
    if dup:
        warnings.append(f"{path}: {dup} repeated lines (same name, same label) counted once")
    for w in warnings:
        log.warning(w)
    return Labels(path, labels, warnings)


# --------------------------------------------------------------------------- inputs


def _check_finite(arr: np.ndarray, where: str) -> None:
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
    order = natural_sort([p.name for p in files])
    paths = [root / n for n in order]
    names = _unique_names(paths, "ais_bench")
    want = int(np.prod(shape)) * 4
    for p in paths:
        if p.suffix.lower() == ".bin":
            size = p.stat().st_size
            if size != want:
                raise AscendError(f"{p}: {size} bytes, expected {want} (float32 x {'x'.join(map(str, shape))})")
    warnings = []
    if others:
        warnings.append(f"{root}: {len(others)} entries that are not .bin/.npy ignored, as ais_bench does "
                        f"(e.g. {sorted(others)[0]})")
    for w in warnings:
        log.warning(w)
    return names, paths, warnings


def read_bin_input(path: Path, shape: Sequence[int] = (3, INPUT_SIZE, INPUT_SIZE)) -> np.ndarray:
    """One preprocessed input as a CHW float32 array (raw .bin, or a float32 .npy)."""
    path = Path(path)
    want = int(np.prod(shape))
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise AscendError(f"{path}: not a readable .npy ({e})") from None
        if arr.dtype != np.float32 or arr.size != want:
            raise AscendError(f"{path}: {arr.dtype} {arr.shape}, expected float32 with {want} values")
    else:
        arr = np.fromfile(path, dtype="<f4")
        if arr.size * 4 != path.stat().st_size or arr.size != want:
            raise AscendError(f"{path}: {path.stat().st_size} bytes, expected {want * 4}")
    _check_finite(arr, f"{path}: non-finite input value")
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


# --------------------------------------------------------------------------- results


@dataclass
class AisResults:
    """One ais_bench run's outputs, validated: row i of ``logits`` is sample ``names[i]``.

    ``names`` are the input stems (what the .bin files and the label file are keyed
    by), in ais_bench's natural order. ``summary`` is the run's summary json (for a
    multi-device run: ``{"devices": {"device0": {...}, ...}}``).
    """

    results_dir: Path
    names: list[str]
    logits: np.ndarray
    fmt: str
    layout: str  # 'current' | 'old'
    summary: dict | None
    summary_path: Path | None
    files: list[Path]
    warnings: list[str] = field(default_factory=list)
    #: old layout without sumary.json: names are ``sample_id_N`` until the inputs name them
    numbered: bool = False

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])

    def perf(self) -> dict | None:
        return summary_perf(self.summary)

    def align(self, names: Sequence[str], source: str = "the inputs") -> "AisResults":
        """These results reordered to ``names``; any sample on one side only is an error."""
        return _align(self, list(names), source)


def _read_json(path: Path) -> tuple[dict | None, str | None]:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"{path}: unreadable summary ignored ({type(e).__name__}: {str(e)[:80]})"
    if not isinstance(obj, dict):
        return None, f"{path}: summary is not a JSON object, ignored"
    return obj, None


def _filesinfo(summary: dict | None, spath: Path | None) -> tuple[dict[int, dict] | None, str | None]:
    """The summary's sample_id -> {infiles, outfiles} (None when it has none), and a warning if malformed.

    The summary is ais_bench's record of what it wrote, used to catch missing and
    left-over files; vision_metric never reads it, so a damaged one is ignored (and
    said so) rather than fatal.
    """
    if not summary or not isinstance(summary.get("filesinfo"), dict) or not summary["filesinfo"]:
        return None, None
    out: dict[int, dict] = {}
    for k, v in summary["filesinfo"].items():
        try:
            sid = int(k)
            infiles = [str(x) for x in v["infiles"]]
            outfiles = [str(x) for x in v["outfiles"]]
        except (ValueError, TypeError, KeyError):
            return None, f"{spath}: malformed filesinfo entry {k!r}; the file list in it is ignored"
        out[sid] = {"infiles": infiles, "outfiles": outfiles}
    return out, None


def _parse_txt(path: Path, num_classes: int | None) -> tuple[np.ndarray, int, bool]:
    """First line of a TXT result, as vision_metric reads it; (row, extra lines, extra lines differ)."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise AscendError(f"{path}: unreadable TXT result ({type(e).__name__})") from None
    lines = [ln for ln in text.split("\n")]
    first = lines[0].split() if lines else []
    if not first:
        raise AscendError(f"{path}: empty first line")
    if num_classes is not None and len(first) != num_classes:
        raise AscendError(f"{path}: first line has {len(first)} values, expected {num_classes} (one per class)")
    try:
        row = np.array(first, dtype=np.float64).astype(np.float32)
    except ValueError:
        for i, tok in enumerate(first):
            try:
                float(tok)
            except ValueError:
                raise AscendError(f"{path}: value {i} {tok[:20]!r} is not a number") from None
        raise  # pragma: no cover - numpy refused a token that float() takes
    extra = [ln for ln in lines[1:] if ln.strip()]
    differ = any(ln.split() != first for ln in extra)
    return row, len(extra), differ


def _parse_bin(path: Path, num_classes: int | None) -> np.ndarray:
    size = path.stat().st_size
    if num_classes is not None and size != num_classes * 4:
        hint = " (float16 output? build the OM with float32 output)" if size == num_classes * 2 else ""
        raise AscendError(f"{path}: {size} bytes, expected {num_classes * 4} ({num_classes} float32){hint}")
    if size == 0 or size % 4:
        raise AscendError(f"{path}: {size} bytes is not a whole number of float32 values")
    return np.fromfile(path, dtype="<f4")


def _parse_npy(path: Path, num_classes: int | None) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise AscendError(f"{path}: not a readable .npy ({type(e).__name__}: {str(e)[:80]})") from None
    if arr.dtype not in (np.float32, np.float16):
        raise AscendError(f"{path}: dtype {arr.dtype}, expected float32 (or float16)")
    if arr.ndim == 0 or arr.size != arr.shape[-1] or (num_classes is not None and arr.size != num_classes):
        want = f"(1, {num_classes})" if num_classes is not None else "(1, classes)"
        raise AscendError(f"{path}: shape {arr.shape}, expected {want}")
    return arr.reshape(-1).astype(np.float32)


def _scan_results_dir(root: Path) -> tuple[list[str], list[str]]:
    files, dirs = [], []
    for p in sorted(root.iterdir()):
        (dirs if p.is_dir() else files).append(p.name)
    return files, dirs


def load_results(results_dir: Path, num_classes: int | None = None, *,
                 input_names: Sequence[str] | None = None) -> AisResults:
    """Load and validate an ais_bench results folder (any format, either layout, or per-device folders).

    ``num_classes``: the model's output size (None: taken from the first file, all
    others must agree). ``input_names``: the input stems from :func:`list_bin_inputs`;
    with them, every input must have exactly one result and vice versa, and
    old-layout results are named by position. Without them, the run's summary is the
    reference when present (its filesinfo lists every file the run wrote).
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise AscendError(f"{root}: no such results folder")
    files, dirs = _scan_results_dir(root)
    if dirs and all(_DEVICE_DIR.fullmatch(d) for d in dirs):
        return _load_multi_device(root, dirs, files, num_classes, input_names)
    if dirs:
        raise AscendError(f"{root / dirs[0]}: unexpected folder in an ais_bench results folder")
    res = _load_single(root, files, root.parent / f"{root.name}_summary.json", num_classes)
    return _finish(res, input_names)


def _finish(res: AisResults, input_names: Sequence[str] | None) -> AisResults:
    if input_names is not None:
        res = _name_and_check_against_inputs(res, list(input_names))
    elif res.numbered:
        res.warnings.append(f"{res.results_dir}: old-layout results without {OLD_SUMMARY}: samples are known "
                            "by number only; give the inputs folder to name them")
    for w in res.warnings:
        log.warning(w)
    return res


def _load_single(root: Path, files: list[str], beside: Path, num_classes: int | None) -> AisResults:
    warnings: list[str] = []
    summary: dict | None = None
    spath: Path | None = None
    old = OLD_SUMMARY in files
    if old:
        files = [f for f in files if f != OLD_SUMMARY]
        spath = root / OLD_SUMMARY
    elif beside.is_file():
        spath = beside
    if spath is not None:
        summary, w = _read_json(spath)
        if w:
            warnings.append(w)
    if not files:
        raise AscendError(f"{root}: no ais_bench results in it")

    parsed: list[tuple[str, str, re.Match | None, re.Match | None]] = []
    for f in files:
        stem, _, ext = f.partition(".")
        if ext not in FORMATS:
            raise AscendError(f"{root / f}: unexpected file (ais_bench writes NAME_0.txt, .bin or .npy results)")
        parsed.append((f, ext, _OLD_NAME.fullmatch(stem), _NEW_NAME.fullmatch(stem)))
    if not old and spath is None and all(m_old for _, _, m_old, _ in parsed):
        old = True
    layout = "old" if old else "current"

    exts = sorted({ext for _, ext, _, _ in parsed})
    if len(exts) > 1:
        counts = ", ".join(f"{sum(1 for _, e, _, _ in parsed if e == x)} .{x}" for x in exts)
        raise AscendError(f"{root}: mixed result formats ({counts}); one ais_bench run writes one format, "
                          "point at a single run's folder")
    fmt = exts[0]

    info, w = _filesinfo(summary, spath)
    if w:
        warnings.append(w)
    keys: dict[str, str] = {}  # file -> sample id (old layout) or sample name (current layout)
    for f, _, m_old, m_new in parsed:
        m = m_old if old else m_new
        if m is None:
            want = "sample_id_N_output_0" if old else "NAME_0"
            raise AscendError(f"{root / f}: not an ais_bench result name (expected {want}.{fmt} in a "
                              f"{layout}-layout folder)")
        out_index = int(m.group(2))
        if out_index != 0:
            raise AscendError(f"{root / f}: output index {out_index}, but AlexNet has one output ({OUTPUT_NAME}); "
                              "results of another model?")
        keys[f] = m.group(1)

    if info is not None:
        listed = {os.path.basename(o) for v in info.values() for o in v["outfiles"]}
        missing = sorted(listed - set(keys), key=_natural_key)
        if missing:
            raise AscendError(f"{root / missing[0]}: missing ({len(missing)} result files listed in {spath} "
                              "are absent)")
        extra = sorted(set(keys) - listed, key=_natural_key)
        if extra:
            raise AscendError(f"{root / extra[0]}: not in {spath} ({len(extra)} such files: left over from "
                              "another run?)")

    if old:
        # ais_bench numbers samples batch * size + position; pads come last and are not written
        by_id = {int(k): f for f, k in keys.items()}
        gaps = sorted(set(range(len(by_id))) - set(by_id))
        if gaps:
            raise AscendError(f"{root / f'sample_id_{gaps[0]}_output_0.{fmt}'}: missing (sample ids run to "
                              f"{max(by_id)}, {len(gaps)} absent)")
        order = [by_id[i] for i in range(len(by_id))]
        if info is not None:
            names = []
            for i in range(len(by_id)):
                entry = info.get(i)
                if entry is None or not entry["infiles"]:
                    raise AscendError(f"{spath}: no input listed for sample id {i}")
                names.append(sample_name(entry["infiles"][0]))
        else:
            names = [f"sample_id_{i}" for i in range(len(by_id))]
    else:
        order = list(keys)
        names = [keys[f] for f in order]
        if info is not None:
            for v in info.values():
                for o in v["outfiles"]:
                    m = _NEW_NAME.fullmatch(sample_name(o))
                    want = sample_name(v["infiles"][0]) if v["infiles"] else None
                    if m is not None and want is not None and m.group(1) != want:
                        raise AscendError(f"{spath}: {os.path.basename(o)} is listed for input {want}")
    dup = _first_duplicate(names)
    if dup:
        raise AscendError(f"{root}: two results for sample {dup!r}")

    rows: list[np.ndarray] = []
    multi = differ = 0
    for f in order:
        path = root / f
        if fmt == "txt":
            row, extra, diff = _parse_txt(path, num_classes)
            multi += bool(extra)
            differ += diff
        elif fmt == "bin":
            row = _parse_bin(path, num_classes)
        else:
            row = _parse_npy(path, num_classes)
        if num_classes is None:
            num_classes = int(row.size)
        _check_finite(row, f"{path}: non-finite output")
        rows.append(row)
    if multi:
        msg = (f"{root}: {multi} TXT results hold more than one line (runs appended to the same folder); "
               "the first line is used, as vision_metric does")
        if differ:
            msg += f"; in {differ} of them the later lines differ from the first"
        warnings.append(msg)

    idx = sorted(range(len(names)), key=lambda i: (_natural_key(names[i]), names[i]))
    logits = np.stack(rows)[idx]
    return AisResults(root, [names[i] for i in idx], logits, fmt, layout, summary, spath,
                      [root / order[i] for i in idx], warnings, numbered=old and info is None)


def _first_duplicate(names: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return None


def _load_multi_device(root: Path, dirs: list[str], files: list[str], num_classes: int | None,
                       input_names: Sequence[str] | None) -> AisResults:
    """ais_bench with several devices: ``DIR/deviceN/`` each, ``DIR/deviceN_summary.json`` beside them."""
    allowed = {f"{d}_summary.json" for d in dirs}
    stray = [f for f in files if f not in allowed]
    if stray:
        raise AscendError(f"{root / stray[0]}: unexpected file beside the device folders")
    devices = sorted(dirs, key=_natural_key)
    parts = []
    for d in devices:
        dfiles, ddirs = _scan_results_dir(root / d)
        if ddirs:
            raise AscendError(f"{root / d / ddirs[0]}: unexpected folder inside a device folder")
        parts.append(_load_single(root / d, dfiles, root / f"{d}_summary.json", num_classes))
    fmts = {p.fmt for p in parts}
    if len(fmts) > 1:
        raise AscendError(f"{root}: device folders hold different formats ({', '.join(sorted(fmts))})")
    if len({p.logits.shape[1] for p in parts}) > 1:
        raise AscendError(f"{root}: device folders hold outputs of different sizes")
    numbered = [p for p in parts if p.numbered]
    if numbered:
        raise AscendError(f"{numbered[0].results_dir}: old-layout results of one of several devices, without "
                          f"{OLD_SUMMARY}: their samples cannot be named; keep each device's {OLD_SUMMARY}")
    names = [n for p in parts for n in p.names]
    dup = _first_duplicate(names)
    if dup:
        raise AscendError(f"{root}: sample {dup!r} has results in two device folders")
    order = sorted(range(len(names)), key=lambda i: (_natural_key(names[i]), names[i]))
    logits = np.concatenate([p.logits for p in parts])[order]
    all_files = [f for p in parts for f in p.files]
    per_device = {d: p.summary for d, p in zip(devices, parts) if p.summary is not None}
    res = AisResults(root, [names[i] for i in order], logits, parts[0].fmt, parts[0].layout,
                     {"devices": per_device} if per_device else None, None,
                     [all_files[i] for i in order], [w for p in parts for w in p.warnings])
    return _finish(res, input_names)


def _name_and_check_against_inputs(res: AisResults, inputs: list[str]) -> AisResults:
    """Name old-layout samples by position and check that inputs and results pair up one to one."""
    ordered = natural_sort(inputs)
    if res.numbered:
        # ais_bench numbers samples by position in its natural input order; pads come last, unwritten
        ids = [int(n.rsplit("_", 1)[1]) for n in res.names]
        if max(ids) >= len(ordered):
            i = ids.index(max(ids))
            raise AscendError(f"{res.files[i]}: sample id {ids[i]}, but there are only {len(ordered)} inputs")
        res = AisResults(res.results_dir, [ordered[i] for i in ids], res.logits, res.fmt, res.layout, res.summary,
                         res.summary_path, res.files, res.warnings, numbered=False)
    return _align(res, ordered, "the inputs")


def _align(res: AisResults, names: list[str], source: str) -> AisResults:
    have = {n: i for i, n in enumerate(res.names)}
    dup = _first_duplicate(names)
    if dup:
        raise AscendError(f"{source}: sample {dup!r} appears twice")
    missing = [n for n in names if n not in have]
    if missing:
        ext = res.fmt
        want = f"{missing[0]}_0.{ext}" if res.layout == "current" else f"a result for {missing[0]}"
        raise AscendError(f"{res.results_dir}: no result for input {missing[0]} (expected {want}; "
                          f"{len(missing)} of {len(names)} inputs have none)")
    wanted = set(names)
    extra = [n for n in res.names if n not in wanted]
    if extra:
        f = res.files[have[extra[0]]]
        raise AscendError(f"{f}: result for {extra[0]!r}, which is not among {source} "
                          f"({len(extra)} such results)")
    idx = [have[n] for n in names]
    return AisResults(res.results_dir, list(names), res.logits[idx], res.fmt, res.layout, res.summary,
                      res.summary_path, [res.files[i] for i in idx], list(res.warnings))


def _batchsize_from_args(args: Any) -> float | None:
    if isinstance(args, dict):
        v = args.get("batchsize")
        return float(v) if isinstance(v, (int, float)) else None
    if isinstance(args, list):
        for i, a in enumerate(args):
            a = str(a)
            if a.startswith("--batchsize="):
                a, val = a.split("=", 1)
            elif a == "--batchsize" and i + 1 < len(args):
                val = str(args[i + 1])
            else:
                continue
            try:
                return float(val)
            except ValueError:
                return None
    return None


def _stat(d: Any) -> dict | None:
    if not isinstance(d, dict):
        return None
    keys = ("min", "max", "mean", "median", "percentile(99%)")
    out: dict = {k: float(d[k]) for k in keys if isinstance(d.get(k), (int, float))}
    if isinstance(d.get("count"), int):
        out["count"] = d["count"]
    return out or None


def summary_perf(summary: dict | None) -> dict | None:
    """Throughput (fps) and latencies (ms) from an ais_bench summary; None without one.

    ``throughput`` is ais_bench's own ``1000*batchsize/NPU_compute_time.mean``; for
    several devices the per-device values are summed, as ais_bench reports them.
    """
    if not summary:
        return None
    if "devices" in summary and isinstance(summary["devices"], dict):
        per = {d: summary_perf(s) for d, s in summary["devices"].items()}
        tps = [p["throughput"] for p in per.values() if p and p.get("throughput") is not None]
        return {"throughput": sum(tps) if tps else None, "devices": per}
    tp = summary.get("throughput")
    return {
        "throughput": float(tp) if isinstance(tp, (int, float)) else None,
        "batchsize": _batchsize_from_args(summary.get("args")),
        "npu_compute_time_ms": _stat(summary.get("NPU_compute_time")),
        "h2d_latency_ms": _stat(summary.get("H2D_latency")),
        "d2h_latency_ms": _stat(summary.get("D2H_latency")),
    }


# --------------------------------------------------------------------------- metric


@dataclass
class TopKResult:
    """vision_metric's statistics: hits[k] = samples whose label is the (k+1)-th prediction."""

    n_images: int
    n_classes: int
    hits: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> np.ndarray:
        """Cumulative Top-1..Top-k accuracy, computed as vision_metric does (float64 cumsum / count)."""
        return np.cumsum(self.hits) / self.n_images

    def top(self, k: int) -> float:
        return float(self.accuracy[min(k, len(self.hits)) - 1])

    def table(self) -> dict:
        """The result.json object, key order and value strings exactly as vision_metric builds them."""
        value = [{"key": "Number of images", "value": str(self.n_images)},
                 {"key": "Number of classes", "value": str(self.n_classes)}]
        acc = self.accuracy
        for i in range(len(self.hits)):
            # numpy float64 rounding and str(), not Python's, to match vision_metric digit for digit
            value.append({"key": "Top" + str(i + 1) + " accuracy", "value": str(round(acc[i] * 100, 2)) + "%"})
        return {"title": "Overall statistical evaluation", "value": value}

    def to_json(self) -> str:
        """Single line, ``json.dump``'s default separators, no trailing newline: vision_metric's bytes."""
        return json.dumps(self.table())


def topk_accuracy(logits: np.ndarray, names: Sequence[str], labels: Mapping[str, int],
                  topn: int = TOPN, label_source: str = "the label file") -> TopKResult:
    """Top-1..Top-n over ``logits`` (N x C) the way vision_metric counts them.

    Each row is ranked with ``np.argsort(-row)`` (vision_metric's call, so ties
    break identically); a 1001-way output shifts labels by one (background class).
    A result without a label is an error (vision_metric dies on it); labels outside
    the output count as misses, as there, but are counted in a warning.
    """
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2 or len(logits) != len(names):
        raise AscendError(f"logits of shape {logits.shape} for {len(names)} names")
    if len(names) == 0:
        raise AscendError("no results to score")
    n, c = logits.shape
    res_cnt = min(c, topn)
    truth = np.empty(n, dtype=np.int64)
    for i, name in enumerate(names):
        if name not in labels:
            raise AscendError(f"{name}: no label in {label_source}")
        truth[i] = int(labels[name]) + (1 if c == 1001 else 0)
    order = np.argsort(-logits, axis=1)[:, :res_cnt]
    match = order == truth[:, None]
    hits = np.zeros(res_cnt)
    found = match.any(axis=1)
    np.add.at(hits, match.argmax(axis=1)[found], 1)
    warnings = []
    out_of_range = int(((truth < 0) | (truth >= c)).sum())
    if out_of_range:
        warnings.append(f"{out_of_range} labels lie outside the {c} output classes; counted as misses, "
                        "as vision_metric does")
    unused = len(set(labels) - set(names))
    if unused:
        warnings.append(f"{unused} labelled images have no result; the accuracy covers the {n} results only")
    for w in warnings:
        log.warning(w)
    return TopKResult(n, c, hits, warnings)


def write_result_json(path: Path, result: TopKResult, force: bool = False) -> None:
    """Write vision_metric's result.json (atomically; refuses an existing file without force)."""
    path = Path(path)
    refuse_existing(path, force)
    write_text(path, result.to_json())


def evaluate_results(results_dir: Path, label_file: Path, num_classes: int | None = None, *,
                     input_names: Sequence[str] | None = None) -> tuple[AisResults, Labels, TopKResult]:
    """``ascend metric`` in one call: load, validate, score."""
    res = load_results(results_dir, num_classes, input_names=input_names)
    labels = read_labels(label_file)
    return res, labels, topk_accuracy(res.logits, res.names, labels.labels, label_source=str(label_file))


# --------------------------------------------------------------------------- comparison


def om_tolerance(om: AisResults, atol: float = 1e-4) -> float:
    """The absolute difference to allow between another runtime's logits and these.

    ``atol`` is the compute tolerance (float32 runtimes: 1e-4, as the exports use);
    TXT adds its 6-decimal rounding (5e-7) and the float32 re-rounding of the parsed
    value (half an ulp at the largest magnitude).
    """
    tol = float(atol)
    if om.fmt == "txt":
        peak = float(np.max(np.abs(om.logits))) if om.logits.size else 0.0
        tol += TXT_ROUNDING + float(np.spacing(np.float32(peak))) / 2
    return tol


def compare_to_om(tvm_logits: np.ndarray, om: AisResults, labels: Mapping[str, int] | None = None, *,
                  names: Sequence[str] | None = None, atol: float = 1e-4) -> dict:
    """Per-image agreement between TVM's logits and the OM's, plus Top-1/Top-5 for both.

    ``names``: the sample of each row of ``tvm_logits`` (from :func:`load_bin_inputs`);
    None means the rows already follow ``om.names``. A top-1 disagreement where the
    OM's two candidates lie within the tolerance of each other is a tie, not a
    mismatch (TXT rounding alone can swap them).
    """
    tvm = np.asarray(tvm_logits, dtype=np.float32)
    if names is not None:
        if len(names) != len(tvm):
            raise AscendError(f"{len(names)} names for {len(tvm)} rows of TVM logits")
        om = om.align(names, "the TVM inputs")
    if tvm.shape != om.logits.shape:
        raise AscendError(f"TVM logits {tvm.shape} vs OM results {om.logits.shape} in {om.results_dir}")
    if not len(tvm):
        raise AscendError("nothing to compare")
    ref = om.logits
    n, c = ref.shape
    tol = om_tolerance(om, atol)
    diff = np.abs(tvm.astype(np.float64) - ref.astype(np.float64))
    per_image = diff.max(axis=1)
    worst = int(per_image.argmax())
    t1, o1 = tvm.argmax(axis=1), ref.argmax(axis=1)
    agree = t1 == o1
    tie = ~agree & (np.abs(ref[np.arange(n), t1].astype(np.float64) - ref[np.arange(n), o1]) <= tol)
    k = min(5, c)
    tk, ok = np.argsort(-tvm, axis=1)[:, :k], np.argsort(-ref, axis=1)[:, :k]
    overlap = np.array([len(set(a) & set(b)) / k for a, b in zip(tk.tolist(), ok.tolist())])
    mismatched = [om.names[i] for i in np.flatnonzero(~agree & ~tie)]
    report: dict[str, Any] = {
        "n_images": n,
        "n_classes": c,
        "fmt": om.fmt,
        "layout": om.layout,
        "top1_match": int(agree.sum()),
        "top1_ties": int(tie.sum()),
        "top1_match_rate": float((agree | tie).mean()),
        "top1_mismatches": mismatched[:20],
        "mean_top5_overlap": float(overlap.mean()),
        "max_abs_diff": float(per_image[worst]),
        "worst_image": om.names[worst],
        "tolerance": tol,
        "within_tolerance": bool(per_image[worst] <= tol),
        "om_perf": om.perf(),
    }
    if labels is not None:
        mine = topk_accuracy(tvm, om.names, labels)
        theirs = topk_accuracy(ref, om.names, labels)
        report["accuracy"] = {
            "tvm": {"top1": mine.top(1), "top5": mine.top(5)},
            "om": {"top1": theirs.top(1), "top5": theirs.top(5)},
        }
        report["warnings"] = mine.warnings
    return report
