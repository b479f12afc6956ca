"""Tuning records: the committed record sets, copied so that a test reads fixed files, and a
running tune's records, waited on as an event."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from helpers.models import ROOT

COMMITTED_LOGS = ROOT / "tuning_logs"


def committed_record_sets(target: str) -> list[str]:
    """The record sets (``tuning_logs/<target>/<cpu>/``) committed for ``target``, by name."""
    folder = COMMITTED_LOGS / target
    return sorted(p.parent.name for p in folder.glob("*/database_tuning_record.json"))


def copy_committed_records(target: str, dest: Path, record_set: str | None = None, precision: str = "fp32") -> Path:
    """The checkout's ``tuning_logs/<target>/<record_set>/`` database pair, copied into ``dest``:
    what a test reads stays fixed while a tune in the work tree appends (no git: tests run from
    a tarball too). ``record_set`` may be left out only while the target has one set; a test
    meant for every set parametrizes over :func:`committed_record_sets`."""
    from alexnet_tvm.records import RECORDS, WORKLOADS
    from alexnet_tvm.recordsets import database_folder

    sets = committed_record_sets(target)
    if record_set is None:
        assert len(sets) == 1, f"{target} has the record sets {sets}: name one"
        record_set = sets[0]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for f in (WORKLOADS, RECORDS):
        shutil.copyfile(database_folder(COMMITTED_LOGS / target / record_set, precision) / f, dest / f)
    return dest


def committed_databases(target: str, dest: Path, precision: str = "fp32") -> dict:
    """Every committed record set of ``target``, copied under ``dest`` and opened read-only, by name."""
    from alexnet_tvm.compile.tuning.database import open_database

    return {name: open_database(copy_committed_records(target, Path(dest) / name, name, precision), for_tuning=False)
            for name in committed_record_sets(target)}


def untuned_by_set(tasks: list, databases: dict, tvm_target) -> dict[str, list[str]]:
    """set name -> the tasks it has no record for: a coverage test extracts the tasks once (the
    slow part) and checks them against every committed set."""
    from alexnet_tvm.compile.tuning.plan import has_record

    return {name: [t.task_name for t in tasks if not has_record(db, t, tvm_target)] for name, db in databases.items()}


def record_lines(db: Path) -> list[str]:
    """The tuning record lines at ``db``: a database file, or a folder with one below it (a target's
    folder with its record set inside, or a set itself); [] when there is none yet."""
    db = Path(db)
    if db.is_file():
        return db.read_text().splitlines()
    found = sorted(db.rglob("database_tuning_record.json")) if db.is_dir() else []
    return found[0].read_text().splitlines() if found else []


def wait_for_records(db: Path, n: int, proc: subprocess.Popen, seconds: float = 900) -> list[str]:
    """Until ``n`` records are on disk or ``proc`` ended (an event, not a sleep: a slow or busy machine
    only waits longer, up to ``seconds``); the lines then, at least ``n`` of them."""
    deadline = time.monotonic() + seconds
    while len(record_lines(db)) < n and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    lines = record_lines(db)
    assert len(lines) >= n, f"{len(lines)} records after up to {seconds} s (tune exit {proc.poll()})"
    return lines


def short_tune(cli: list[str], model: Path, target: str, targets_file: Path, logs: Path) -> subprocess.CompletedProcess:
    """The short tune the RPC tests run (8 trials, 2 per task and round, batch 1) on ``target``."""
    return subprocess.run(cli + ["tune", str(model), "--batch", "1", "--trials", "8", "--trials-per-task", "2",
                                 "--trials-per-round", "2", "--target", target, "--targets-file", str(targets_file),
                                 "--logs-dir", str(logs)], capture_output=True, text=True, timeout=900)
