"""``logs export`` / ``logs import``: tuning records between machines, as checksummed archives.

Export archives a checked snapshot of one target's database (a tuning run may
be appending to the live files); import extracts and checks an export or a
pack in a temporary folder and merges its records (``records.merge_tuning_records``),
so nothing is written unless the archive passed.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alexnet_tvm.errors import DatabaseError, RegistryError
from alexnet_tvm.fsutil import refuse_existing
from alexnet_tvm.records import (
    DEFAULT_KEEP, RECORDS, WORKLOADS, MergeResult, database_digest, merge_tuning_records, snapshot_database,
)

from .archive import LOGS_KIND, LOGS_META, PACK_FORMAT, TUNING_DIR, extract_archive, safe_component, utc_now, \
    write_archive

log = logging.getLogger(__name__)


@dataclass
class LogsExportResult:
    out: Path
    target: str
    workloads: int
    records: int
    digest: str


def _tvm_version() -> str | None:
    try:
        import tvm

        return tvm.__version__
    except ImportError:
        return None


def export_logs(target: str, logs_dir: Path, out: Path, force: bool = False) -> LogsExportResult:
    """A checked archive of one target's tuning database, for ``logs import`` elsewhere."""
    safe_component(target, "target name")
    folder = Path(logs_dir) / target
    if not (folder / RECORDS).is_file():
        raise RegistryError(f"{folder}: no tuning records to export")
    refuse_existing(Path(out), force)
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-logs-") as tmp:
        copy, workloads, records = snapshot_database(folder, Path(tmp))
        files: dict[str, Path | bytes] = {f"{TUNING_DIR}/{n}": copy / n for n in (WORKLOADS, RECORDS)
                                          if (copy / n).exists()}
        meta = {"format": PACK_FORMAT, "kind": LOGS_KIND, "created": utc_now(), "target": target,
                "workloads": workloads, "records": records, "digest": database_digest(copy)}
        meta["tvm_version"] = _tvm_version()  # records are plain JSON; the version is informative
        files[LOGS_META] = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
        digest, _ = write_archive(Path(out), files, force=force)
    return LogsExportResult(Path(out), target, workloads, records, digest)


@dataclass
class LogsImportResult:
    merge: MergeResult
    source_kind: str


def import_logs(archive: Path, logs_dir: Path, target: str | None = None, keep: int = DEFAULT_KEEP) -> LogsImportResult:
    """Merge the tuning records of a ``logs export`` archive, or of a pack, into ``logs_dir/<target>``.

    The target defaults to the one the archive names; the archive is extracted
    and checked in a temporary folder, and nothing is written unless it passed.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise RegistryError(f"{archive}: no such archive")
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-logs-") as tmp:
        contents = extract_archive(archive, Path(tmp) / "x")
        # pack.json and logs.json both name the target the records were tuned for
        name = safe_component(target or str(contents.meta.get("target", "")), "target name")
        src = contents.folder / TUNING_DIR
        if not (src / RECORDS).is_file():
            raise RegistryError(f"{archive}: carries no tuning records")
        try:
            theirs, mine = contents.meta.get("tvm_version"), _tvm_version()
            if theirs and mine and theirs != mine:
                log.warning("%s was tuned with TVM %s, this is TVM %s", archive, theirs, mine)
            merge = merge_tuning_records(src, Path(logs_dir) / name, keep)
        except (DatabaseError, RegistryError) as e:  # name the archive, not the scratch folder
            raise type(e)(str(e).replace(str(src), f"{archive}:{TUNING_DIR}")) from None
    log.info("merged %s into %s", archive, merge.folder)
    return LogsImportResult(merge, contents.kind)
