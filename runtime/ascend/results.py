"""An ais_bench results folder, validated and named: every format, both layouts, one or several devices.

Layouts: ``{stem}_0.ext`` files with ``{dir}_summary.json`` beside the folder
(current), or the mid-2022 ``sample_id_N_output_M.ext`` with ``sumary.json`` inside
(old). Several devices write ``DIR/deviceN/`` each. Whatever the layout, the result
is one :class:`AisResults` whose rows are named by their input's stem, so they can
be paired with labels and with another runtime's outputs.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from alexnet_tvm.errors import AscendError

from ..counted import counted_warnings
from ..labels import sample_name
from .inputs import check_finite
from .modelzoo import OUTPUT_NAME
from .names import first_duplicate, natural_key, natural_order, natural_sort
from .perf import summary_perf
from .resultfiles import FORMATS, filesinfo, parse_bin, parse_npy, parse_txt, read_summary, scan_results_dir

log = logging.getLogger(__package__)

#: the old (mid-2022) summary name, misspelt by ais_bench itself, inside the results folder
OLD_SUMMARY = "sumary.json"

_OLD_NAME = re.compile(r"sample_id_(\d+)_output_(\d+)")
_NEW_NAME = re.compile(r"(.+)_(\d+)")
_DEVICE_DIR = re.compile(r"device\d+")


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
    files, dirs = scan_results_dir(root)
    if dirs and all(_DEVICE_DIR.fullmatch(d) for d in dirs):
        return _load_multi_device(root, dirs, files, num_classes, input_names)
    if dirs:
        raise AscendError(f"{root / dirs[0]}: unexpected folder in an ais_bench results folder")
    res = _load_single(root, files, root.parent / f"{root.name}_summary.json", num_classes)
    return _finish(res, input_names)


def _finish(res: AisResults, input_names: Sequence[str] | None) -> AisResults:
    numbered = None
    if input_names is not None:
        res = _name_and_check_against_inputs(res, list(input_names))
    elif res.numbered:
        numbered = (f"{res.results_dir}: old-layout results without {OLD_SUMMARY}: samples are known "
                    "by number only; give the inputs folder to name them")
    res.warnings = counted_warnings(log, *res.warnings, numbered)
    return res


# --------------------------------------------------------------------------- one folder


@dataclass
class _Listing:
    """A results folder before its files are read: the result files, its layout and its summary."""

    root: Path
    files: list[str]
    old: bool
    summary: dict | None
    spath: Path | None
    warnings: list[str]


def _list_folder(root: Path, files: list[str], beside: Path) -> _Listing:
    """The result files and the summary that goes with them (inside for the old layout, else beside)."""
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
        summary, w = read_summary(spath)
        if w:
            warnings.append(w)
    if not files:
        raise AscendError(f"{root}: no ais_bench results in it")
    return _Listing(root, files, old, summary, spath, warnings)


def _result_keys(ls: _Listing) -> tuple[dict[str, str], str]:
    """file -> sample id (old layout) or sample name (current layout), and the one format of the run.

    Settles the layout too: without any summary, a folder of ``sample_id_N_output_M``
    names only is the old layout.
    """
    parsed: list[tuple[str, str, re.Match | None, re.Match | None]] = []
    for f in ls.files:
        stem, _, ext = f.partition(".")
        if ext not in FORMATS:
            raise AscendError(f"{ls.root / f}: unexpected file (ais_bench writes NAME_0.txt, .bin or .npy results)")
        parsed.append((f, ext, _OLD_NAME.fullmatch(stem), _NEW_NAME.fullmatch(stem)))
    if not ls.old and ls.spath is None and all(m_old for _, _, m_old, _ in parsed):
        ls.old = True
    layout = "old" if ls.old else "current"
    exts = sorted({ext for _, ext, _, _ in parsed})
    if len(exts) > 1:
        counts = ", ".join(f"{sum(1 for _, e, _, _ in parsed if e == x)} .{x}" for x in exts)
        raise AscendError(f"{ls.root}: mixed result formats ({counts}); one ais_bench run writes one format, "
                          "point at a single run's folder")
    fmt = exts[0]
    keys: dict[str, str] = {}
    for f, _, m_old, m_new in parsed:
        m = m_old if ls.old else m_new
        if m is None:
            want = "sample_id_N_output_0" if ls.old else "NAME_0"
            raise AscendError(f"{ls.root / f}: not an ais_bench result name (expected {want}.{fmt} in a "
                              f"{layout}-layout folder)")
        out_index = int(m.group(2))
        if out_index != 0:
            raise AscendError(f"{ls.root / f}: output index {out_index}, but AlexNet has one output "
                              f"({OUTPUT_NAME}); results of another model?")
        keys[f] = m.group(1)
    return keys, fmt


def _check_listed(ls: _Listing, keys: dict[str, str], info: dict[int, dict]) -> None:
    """The files on disk are exactly those the summary says the run wrote."""
    listed = {os.path.basename(o) for v in info.values() for o in v["outfiles"]}
    missing = sorted(listed - set(keys), key=natural_key)
    if missing:
        raise AscendError(f"{ls.root / missing[0]}: missing ({len(missing)} result files listed in {ls.spath} "
                          "are absent)")
    extra = sorted(set(keys) - listed, key=natural_key)
    if extra:
        raise AscendError(f"{ls.root / extra[0]}: not in {ls.spath} ({len(extra)} such files: left over from "
                          "another run?)")


def _old_order(ls: _Listing, keys: dict[str, str], fmt: str, info: dict[int, dict] | None
               ) -> tuple[list[str], list[str]]:
    """(files, sample names) of an old-layout run, by sample id; numbered names without a filesinfo."""
    # ais_bench numbers samples batch * size + position; pads come last and are not written
    by_id = {int(k): f for f, k in keys.items()}
    gaps = sorted(set(range(len(by_id))) - set(by_id))
    if gaps:
        raise AscendError(f"{ls.root / f'sample_id_{gaps[0]}_output_0.{fmt}'}: missing (sample ids run to "
                          f"{max(by_id)}, {len(gaps)} absent)")
    order = [by_id[i] for i in range(len(by_id))]
    if info is None:
        return order, [f"sample_id_{i}" for i in range(len(by_id))]
    names = []
    for i in range(len(by_id)):
        entry = info.get(i)
        if entry is None or not entry["infiles"]:
            raise AscendError(f"{ls.spath}: no input listed for sample id {i}")
        names.append(sample_name(entry["infiles"][0]))
    return order, names


def _check_current_names(ls: _Listing, info: dict[int, dict]) -> None:
    """Each result the summary lists is named after the input it lists with it."""
    for v in info.values():
        for o in v["outfiles"]:
            m = _NEW_NAME.fullmatch(sample_name(o))
            want = sample_name(v["infiles"][0]) if v["infiles"] else None
            if m is not None and want is not None and m.group(1) != want:
                raise AscendError(f"{ls.spath}: {os.path.basename(o)} is listed for input {want}")


def _read_rows(root: Path, order: list[str], fmt: str, num_classes: int | None
               ) -> tuple[list[np.ndarray], str | None]:
    """One logits row per file, all of one size; and a warning for TXT files holding appended runs."""
    parse = {"bin": parse_bin, "npy": parse_npy}.get(fmt)
    rows: list[np.ndarray] = []
    multi = differ = 0
    for f in order:
        path = root / f
        if parse is None:
            row, extra, diff = parse_txt(path, num_classes)
            multi += bool(extra)
            differ += diff
        else:
            row = parse(path, num_classes)
        if num_classes is None:
            num_classes = int(row.size)
        check_finite(row, f"{path}: non-finite output")
        rows.append(row)
    if not multi:
        return rows, None
    msg = (f"{root}: {multi} TXT results hold more than one line (runs appended to the same folder); "
           "the first line is used, as vision_metric does")
    if differ:
        msg += f"; in {differ} of them the later lines differ from the first"
    return rows, msg


def _load_single(root: Path, files: list[str], beside: Path, num_classes: int | None) -> AisResults:
    """One folder of results (one device), in natural name order; not yet checked against the inputs."""
    ls = _list_folder(root, files, beside)
    keys, fmt = _result_keys(ls)
    info, w = filesinfo(ls.summary, ls.spath)
    if w:
        ls.warnings.append(w)
    if info is not None:
        _check_listed(ls, keys, info)
    if ls.old:
        order, names = _old_order(ls, keys, fmt, info)
    else:
        order = list(keys)
        names = [keys[f] for f in order]
        if info is not None:
            _check_current_names(ls, info)
    dup = first_duplicate(names)
    if dup:
        raise AscendError(f"{root}: two results for sample {dup!r}")
    rows, w = _read_rows(root, order, fmt, num_classes)
    if w:
        ls.warnings.append(w)
    idx = natural_order(names)
    return AisResults(root, [names[i] for i in idx], np.stack(rows)[idx], fmt, "old" if ls.old else "current",
                      ls.summary, ls.spath, [root / order[i] for i in idx], ls.warnings,
                      numbered=ls.old and info is None)


# --------------------------------------------------------------------------- several devices, pairing


def _load_multi_device(root: Path, dirs: list[str], files: list[str], num_classes: int | None,
                       input_names: Sequence[str] | None) -> AisResults:
    """ais_bench with several devices: ``DIR/deviceN/`` each, ``DIR/deviceN_summary.json`` beside them."""
    allowed = {f"{d}_summary.json" for d in dirs}
    stray = [f for f in files if f not in allowed]
    if stray:
        raise AscendError(f"{root / stray[0]}: unexpected file beside the device folders")
    devices = sorted(dirs, key=natural_key)
    parts = []
    for d in devices:
        dfiles, ddirs = scan_results_dir(root / d)
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
    dup = first_duplicate(names)
    if dup:
        raise AscendError(f"{root}: sample {dup!r} has results in two device folders")
    order = natural_order(names)
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
    dup = first_duplicate(names)
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
