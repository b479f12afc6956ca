"""The tuning database under ``tuning_logs/<target>/``: MetaSchedule's JSON pair, checked.

MetaSchedule's JSONDatabase crashes or silently misreads damaged files, so every
line is checked first. A last line cut off without its newline is what a killed
tuning run leaves: tuning drops it (the record was never complete) and warns;
anything else damaged is refused with the file and line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alexnet_tvm.errors import DatabaseError
from alexnet_tvm.fsutil import write_text

log = logging.getLogger(__name__)

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


@dataclass
class CheckedLines:
    lines: list[str]
    #: a partial final line (interrupted write) was found and left out
    dropped_partial: bool


def _check_file(path: Path, n_workloads: int | None) -> CheckedLines:
    if not path.exists():
        return CheckedLines([], False)
    raw = path.read_bytes()
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise DatabaseError(f"{path}: not UTF-8 text (corrupt tuning database)") from None
    parts = text.split("\n")
    tail = parts.pop()  # after the last newline: "" when the file ends cleanly
    lines, dropped = [], False
    for i, line in enumerate(parts, 1):
        if not line.strip():
            continue
        lines.append(_check_line(path, i, line, n_workloads))
    if tail.strip():
        try:
            lines.append(_check_line(path, len(parts) + 1, tail, n_workloads))
        except DatabaseError:
            dropped = True
    return CheckedLines(lines, dropped)


def _check_line(path: Path, lineno: int, line: str, n_workloads: int | None) -> str:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DatabaseError(f"{path}:{lineno}: corrupt tuning record ({e.msg})") from None
    if not isinstance(obj, list) or len(obj) != 2:
        raise DatabaseError(f"{path}:{lineno}: not a MetaSchedule entry")
    if n_workloads is not None and (not isinstance(obj[0], int) or not 0 <= obj[0] < n_workloads):
        raise DatabaseError(f"{path}:{lineno}: refers to workload {obj[0]!r}, the workload file has {n_workloads}")
    return line


def check_database(folder: Path, repair: bool = False) -> tuple[int, int]:
    """Validate (and with ``repair`` drop a partial last line); return (#workloads, #records)."""
    folder = Path(folder)
    w = _check_file(folder / WORKLOADS, None)
    r = _check_file(folder / RECORDS, len(w.lines))
    for name, checked in ((WORKLOADS, w), (RECORDS, r)):
        if checked.dropped_partial:
            if not repair:
                raise DatabaseError(f"{folder / name}: truncated (the last line is cut off); "
                                    "re-run tune to repair it")
            log.warning("%s: dropping a cut-off last line left by an interrupted run", folder / name)
            write_text(folder / name, "".join(line + "\n" for line in checked.lines))
    return len(w.lines), len(r.lines)


def workload_key(line: str) -> str:
    """A workload line's identity: its structural hash. Two lines of one workload can differ in
    text (the PrimFunc's parameter names follow the Relax graph's numbering), never in hash."""
    return str(json.loads(line)[0])


def fold_workloads(lines: list[str], into: list[str], first: dict[str, int]) -> dict[int, int]:
    """Append to ``into`` each line whose workload (structural hash) ``first`` does not know yet;
    return where each of ``lines`` now lives in ``into``."""
    where: dict[int, int] = {}
    for i, line in enumerate(lines):
        key = workload_key(line)
        if key not in first:
            first[key] = len(into)
            into.append(line)
        where[i] = first[key]
    return where


def split_record(line: str, where: str) -> tuple[int, str]:
    """(workload index, the rest of the line after it)."""
    m = _RECORD_PREFIX.match(line)
    if not m:
        raise DatabaseError(f"{where}: a tuning record that does not start with its workload index")
    return int(m.group(1)), line[m.end():].strip()


_RECORD_PREFIX = re.compile(r"^\[\s*(-?\d+)\s*,")


def dedupe_workloads(folder: Path) -> int:
    """Fold workload lines with one structural hash into the first, re-pointing their records.

    MetaSchedule's JSONDatabase numbers a newly committed workload by the count of *distinct*
    workloads it loaded, but appends it as the next *line*: after a duplicate line every new
    workload's records point one line too early, at another workload (seen: Winograd traces
    filed under an FC layer). Returns the number of lines folded."""
    folder = Path(folder)
    w_lines = _check_file(folder / WORKLOADS, None).lines
    kept: list[str] = []
    remap = fold_workloads(w_lines, kept, {})
    if len(kept) == len(w_lines):
        return 0
    rec_path = folder / RECORDS
    records = []
    for line in _check_file(rec_path, len(w_lines)).lines:
        idx, body = split_record(line, str(rec_path))
        records.append(f"[{remap[idx]},{body}")
    log.warning("%s: folded %d duplicate workload lines into their first copies", folder, len(w_lines) - len(kept))
    # records first: their new indices are all below len(kept), valid with either workload file
    write_text(rec_path, "".join(r + "\n" for r in records))
    write_text(folder / WORKLOADS, "".join(w + "\n" for w in kept))
    return len(w_lines) - len(kept)


def open_database(folder: Path, for_tuning: bool):
    """A JSONDatabase on the checked files; read-only users get a private copy."""
    from tvm.s_tir.meta_schedule.database import JSONDatabase

    folder = Path(folder)
    if for_tuning:
        folder.mkdir(parents=True, exist_ok=True)
        check_database(folder, repair=True)
        dedupe_workloads(folder)  # before MetaSchedule appends to it (see there)
        where = folder
    else:
        check_database(folder, repair=False)
        where = Path(tempfile.mkdtemp(prefix="alexnet-tvm-db-"))
        for name in (WORKLOADS, RECORDS):
            if (folder / name).exists():
                shutil.copyfile(folder / name, where / name)
    try:
        return JSONDatabase(path_workload=str(where / WORKLOADS), path_tuning_record=str(where / RECORDS),
                            allow_missing=True)
    except Exception as e:  # MetaSchedule raises assorted FFI errors on entries it cannot parse
        raise DatabaseError(f"{folder}: corrupt tuning database, MetaSchedule cannot read it "
                            f"({type(e).__name__}: {str(e).strip().splitlines()[-1][:200]})") from None


def database_digest(folder: Path) -> str | None:
    folder = Path(folder)
    if not (folder / RECORDS).exists():
        return None
    h = hashlib.sha256()
    for name in (WORKLOADS, RECORDS):
        p = folder / name
        if p.exists():
            h.update(p.read_bytes())
    return "sha256:" + h.hexdigest()


def prune_database(folder: Path, keep: int = 8) -> tuple[int, int]:
    """Keep the ``keep`` fastest valid records per workload (file order kept).

    The best record is all a build needs, a few more seed the next tuning run; the
    rest would only bloat the committed logs. Returns (records before, after).
    """
    folder = Path(folder)
    path = folder / RECORDS
    if not path.exists():
        return 0, 0
    lines = _check_file(path, None).lines
    by_workload: dict[int, list[tuple[float, int]]] = {}
    for i, line in enumerate(lines):
        wl, rec = json.loads(line)
        secs = rec[1] if len(rec) > 1 else None
        cost = sum(secs) / len(secs) if secs else float("inf")
        by_workload.setdefault(wl, []).append((cost, i))
    keep_idx = {i for recs in by_workload.values() for _, i in sorted(recs)[:keep]}
    if len(keep_idx) < len(lines):
        write_text(path, "".join(line + "\n" for i, line in enumerate(lines) if i in keep_idx))
    return len(lines), len(keep_idx)
