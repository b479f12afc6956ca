"""Helpers the test modules share (imported as ``helpers``; fixtures stay in conftest.py)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


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
