"""ais_bench's files, one at a time: a result in TXT, BIN or NPY, and the run's summary json.

Each reader refuses a malformed file with one line naming it; TXT is read the way
vision_metric reads it (the first line only, appended runs counted by the caller).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alexnet_tvm.errors import AscendError

from .npy import load_npy

#: result formats ais_bench writes (``--outfmt`` lower-cased into the file suffix)
FORMATS = ("txt", "bin", "npy")


def scan_results_dir(root: Path) -> tuple[list[str], list[str]]:
    """(file names, folder names) of a results folder, sorted."""
    files, dirs = [], []
    for p in sorted(root.iterdir()):
        (dirs if p.is_dir() else files).append(p.name)
    return files, dirs


def read_summary(path: Path) -> tuple[dict | None, str | None]:
    """The summary json, or (None, a warning): vision_metric never reads it, so damage is not fatal."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"{path}: unreadable summary ignored ({type(e).__name__}: {str(e)[:80]})"
    if not isinstance(obj, dict):
        return None, f"{path}: summary is not a JSON object, ignored"
    return obj, None


def filesinfo(summary: dict | None, spath: Path | None) -> tuple[dict[int, dict] | None, str | None]:
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


def parse_txt(path: Path, num_classes: int | None) -> tuple[np.ndarray, int, bool]:
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


def parse_bin(path: Path, num_classes: int | None) -> np.ndarray:
    size = path.stat().st_size
    if num_classes is not None and size != num_classes * 4:
        hint = " (float16 output? build the OM with float32 output)" if size == num_classes * 2 else ""
        raise AscendError(f"{path}: {size} bytes, expected {num_classes * 4} ({num_classes} float32){hint}")
    if size == 0 or size % 4:
        raise AscendError(f"{path}: {size} bytes is not a whole number of float32 values")
    return np.fromfile(path, dtype="<f4")


def parse_npy(path: Path, num_classes: int | None) -> np.ndarray:
    arr = load_npy(path)
    if arr.dtype not in (np.float32, np.float16):
        raise AscendError(f"{path}: dtype {arr.dtype}, expected float32 (or float16)")
    if arr.ndim == 0 or arr.size != arr.shape[-1] or (num_classes is not None and arr.size != num_classes):
        want = f"(1, {num_classes})" if num_classes is not None else "(1, classes)"
        raise AscendError(f"{path}: shape {arr.shape}, expected {want}")
    return arr.reshape(-1).astype(np.float32)
