"""Tuning-record files of one record set, ``tuning_logs/<target>/<cpu>/``: MetaSchedule's JSON pair,
checked and kept small (which set a command takes is :mod:`alexnet_tvm.recordsets`' rule).

This is the one home of every rule about those two files, because three callers
write them: tuning (``compile/tuning/tune.py``), building (which only reads them) and
moving them between machines (``alexnet_tvm.distribution``). It is a core module: it
reads and writes the files as JSON lines and never imports torch or TVM, so a deployment
machine can import it. Opening them as MetaSchedule's database is compile's
(``compile/tuning/database.py``), and so is the check that MetaSchedule can read a merge.

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
from typing import Callable, Sequence

from alexnet_tvm.errors import DatabaseError, RegistryError
from alexnet_tvm.fsutil import write_text

log = logging.getLogger(__name__)

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
#: records kept per workload: the best one builds, a few more seed the next tuning run
DEFAULT_KEEP = 8

_RECORD_PREFIX = re.compile(r"^\[\s*(-?\d+)\s*,")


# --------------------------------------------------------------------------- check


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
            _write_lines(folder / name, checked.lines)
    return len(w.lines), len(r.lines)


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    write_text(path, "".join(line + "\n" for line in lines))


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().split("\n") if line.strip()]


# --------------------------------------------------------------------------- fold


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
    log.warning("%s: folded %d duplicate workload lines into their first copies", folder, len(w_lines) - len(kept))
    _rewrite(folder, len(w_lines), kept, remap)
    return len(w_lines) - len(kept)


def _rewrite(folder: Path, n_before: int, kept: list[str], remap: dict[int, int]) -> None:
    """Write the ``kept`` workload lines, and the records re-pointed by ``remap`` (old line ->
    new line); a record whose workload ``remap`` lacks is dropped."""
    rec_path = folder / RECORDS
    records = []
    for line in _check_file(rec_path, n_before).lines:
        idx, body = split_record(line, str(rec_path))
        if idx in remap:
            records.append(f"[{remap[idx]},{body}")
    # records first: their new indices are all below len(kept), valid with either workload file
    _write_lines(rec_path, records)
    _write_lines(folder / WORKLOADS, kept)


def drop_workloads(folder: Path, keep: Callable[[str], bool]) -> int:
    """Drop the workload lines whose structural hash ``keep`` refuses, with their records.

    Why: a kernel whose definition changed leaves its old workloads behind, each with its
    whole TIR (20-90 KB for an int8 GEMM); no build can match them again. Returns the number
    of workload lines dropped."""
    folder = Path(folder)
    w_lines = _check_file(folder / WORKLOADS, None).lines
    new_index: dict[int, int] = {}
    kept: list[str] = []
    for i, line in enumerate(w_lines):
        if keep(workload_key(line)):
            new_index[i] = len(kept)
            kept.append(line)
    if len(kept) == len(w_lines):
        return 0
    _rewrite(folder, len(w_lines), kept, new_index)
    return len(w_lines) - len(kept)


# --------------------------------------------------------------------------- keep the best


def record_cost(body: str) -> float:
    """Mean measured seconds of a record (its line after the workload index); unmeasured or failed
    records sort last."""
    try:
        rec = json.loads("[0," + body)[1]
        secs = rec[1] if len(rec) > 1 else None
        return sum(secs) / len(secs) if secs else float("inf")
    except (ValueError, TypeError, IndexError):
        return float("inf")


def best_per_workload(records: Sequence[tuple[int, str]], keep: int) -> set[int]:
    """Positions in ``records`` ((workload, body) pairs) of the ``keep`` fastest of each workload.

    The best record is all a build needs, a few more seed the next tuning run; the
    rest would only bloat the committed logs. Equal costs keep the earlier record.
    """
    by_workload: dict[int, list[tuple[float, int]]] = {}
    for i, (wl, body) in enumerate(records):
        by_workload.setdefault(wl, []).append((record_cost(body), i))
    return {i for recs in by_workload.values() for _, i in sorted(recs)[:keep]}


def prune_database(folder: Path, keep: int = DEFAULT_KEEP) -> tuple[int, int]:
    """Keep the ``keep`` fastest valid records per workload (file order kept); return (before, after)."""
    folder = Path(folder)
    path = folder / RECORDS
    if not path.exists():
        return 0, 0
    lines = _check_file(path, None).lines
    kept = best_per_workload([split_record(line, str(path)) for line in lines], keep)
    if len(kept) < len(lines):
        _write_lines(path, [line for i, line in enumerate(lines) if i in kept])
    return len(lines), len(kept)


# --------------------------------------------------------------------------- merge


@dataclass
class MergeResult:
    folder: Path
    target: str
    workloads_added: int
    records_offered: int
    records_added: int
    records_before: int
    records_after: int


def _reindexed(lines: list[str], mapping: dict[int, int], where: str, seen: set[tuple[int, str]],
               skip: set[int]) -> list[tuple[int, str, str]]:
    """(workload, body, line) of each record re-pointed to its merged workload index, leaving out
    records already ``seen`` and those of the workloads in ``skip``."""
    out = []
    for line in lines:
        idx, body = split_record(line, where)
        wl = mapping[idx]  # in range: check_database checked every index
        if (wl, body) in seen or wl in skip:
            continue
        seen.add((wl, body))
        out.append((wl, body, line if wl == idx else f"[{wl},{body}"))
    return out


#: raises DatabaseError when MetaSchedule cannot read the pair in the folder it is given
#: (``compile.tuning.database.check_readable``); core cannot ask MetaSchedule itself
Readable = Callable[[Path], None]


def merge_tuning_records(src: Path, dest: Path, keep: int = DEFAULT_KEEP, *, validate: Readable | None,
                         replace: bool = False) -> MergeResult:
    """Merge the database in ``src`` into ``dest`` (created if absent), deduplicated, best first kept.

    With ``replace``, the records ``dest`` holds for a workload that ``src`` has records for
    are dropped first: timings taken on another machine are not comparable with these, so
    the faster-looking old ones must not win the "best record" choice.

    Records name their workload by line number in ``database_workload.json``, so
    incoming workloads are matched to existing ones by structural hash and
    appended otherwise, and every incoming record is rewritten to the new index.
    Existing lines keep their positions, so a reader between the two file
    replacements still sees a consistent pair. At most ``keep`` records (the
    fastest, in file order) stay per workload. With ``validate`` the merged pair
    is first loaded by MetaSchedule from a scratch copy, so records it cannot
    parse (another TVM version) never reach ``dest`` to break the next build;
    every caller says whether (None only where the records are made up or known good).
    """
    src, dest = Path(src), Path(dest)
    if keep < 1:
        raise RegistryError("--keep must be at least 1")
    check_database(src)
    check_database(dest)  # an absent folder is an empty database
    if (dest / WORKLOADS).exists():
        dedupe_workloads(dest)
    old_w, old_r = _lines(dest / WORKLOADS), _lines(dest / RECORDS)
    new_w, new_r = _lines(src / WORKLOADS), _lines(src / RECORDS)
    workloads: list[str] = []
    first: dict[str, int] = {}  # structural hash -> index in dest (text can differ, see workload_key)
    old_map = fold_workloads(old_w, workloads, first)  # the identity: dest was folded above
    new_map = fold_workloads(new_w, workloads, first)
    replaced = {new_map[split_record(line, str(src / RECORDS))[0]] for line in new_r} if replace else set()
    seen: set[tuple[int, str]] = set()
    merged = _reindexed(old_r, old_map, str(dest / RECORDS), seen, replaced)
    n_old = len(merged)
    merged += _reindexed(new_r, new_map, str(src / RECORDS), seen, set())
    kept = best_per_workload([(wl, body) for wl, body, _ in merged], keep)
    out = [line for i, (_, _, line) in enumerate(merged) if i in kept]
    if validate and (len(workloads) != len(old_w) or out != old_r):
        _validate_with_metaschedule(validate, workloads, out, src)
    dest.mkdir(parents=True, exist_ok=True)
    # workloads first: the old records' indices stay valid whichever file a reader sees
    if len(workloads) != len(old_w):
        _write_lines(dest / WORKLOADS, workloads)
    if out != old_r:
        _write_lines(dest / RECORDS, out)
    check_database(dest)
    added = sum(1 for i in kept if i >= n_old)
    return MergeResult(dest, dest.name, len(workloads) - len(old_w), len(new_r), added, len(old_r), len(out))


def _validate_with_metaschedule(readable: Readable, workloads: list[str], records: list[str], src: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-merge-") as tmp:
        _write_lines(Path(tmp) / WORKLOADS, workloads)
        _write_lines(Path(tmp) / RECORDS, records)
        try:
            readable(Path(tmp))
        except DatabaseError as e:
            detail = str(e).split("(", 1)[-1].rstrip(")") if "(" in str(e) else str(e)
            raise RegistryError(f"{src}: MetaSchedule cannot read the merged records ({detail}); "
                                "were they tuned with another TVM version? Nothing was merged") from None


# --------------------------------------------------------------------------- digest, snapshot


def database_digest(folder: Path) -> str | None:
    """``sha256:<hex>`` over both files: what an artifact's manifest records as "built with"."""
    folder = Path(folder)
    if not (folder / RECORDS).exists():
        return None
    h = hashlib.sha256()
    for name in (WORKLOADS, RECORDS):
        p = folder / name
        if p.exists():
            h.update(p.read_bytes())
    return "sha256:" + h.hexdigest()


def copy_pair(folder: Path, dest: Path) -> None:
    """Copy the two files of a database (those that exist) into ``dest``."""
    for name in (WORKLOADS, RECORDS):
        if (folder / name).exists():
            shutil.copyfile(folder / name, dest / name)


def snapshot_database(folder: Path, tmp: Path) -> tuple[Path, int, int]:
    """A checked private copy of a tuning database: (copy, #workloads, #records).

    A tuning run may be appending to the live files; the copy is what gets
    checksummed and archived, so the archive cannot disagree with its own sums,
    and a record cut off mid-write is dropped from the copy only.
    """
    copy = Path(tmp) / "db"
    copy.mkdir(parents=True)
    copy_pair(Path(folder), copy)
    workloads, records = check_database(copy, repair=True)
    return copy, workloads, records
