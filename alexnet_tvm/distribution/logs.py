"""``logs export`` / ``logs import``: tuning records between machines, as checksummed archives.

Export archives a checked snapshot of one record set of one target (``<target>/<cpu>/``,
by default the one a build here would take; a tuning run may be appending to the live
files), and names the set and its CPU in logs.json; import extracts and checks an export
or a pack in a temporary folder and merges its records (``records.merge_tuning_records``)
into the set the archive names (or this host's own, when asked), so nothing is written
unless the archive passed, and records timed on one CPU never land in another's set unasked.
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
    DEFAULT_KEEP, RECORDS, WORKLOADS, MergeResult, Readable, database_digest, merge_tuning_records, snapshot_database,
)
from alexnet_tvm.host import describe_cpu
from alexnet_tvm.recordsets import RecordSet, choose_record_set, ensure_cpu_file, host_set_name, record_sets

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
    record_set: str


def _tvm_version() -> str | None:
    try:
        import tvm

        return tvm.__version__
    except ImportError:
        return None


def _set_to_export(target: str, logs_dir: Path, record_set: str | None) -> RecordSet:
    """The named set, or the one a build here would take (a fallback is said in one line)."""
    if record_set is None:
        chosen = choose_record_set(logs_dir, target).chosen
    else:
        chosen = next((s for s in record_sets(logs_dir, target) if s.name == record_set), None)
    if chosen is None:
        where = Path(logs_dir) / target / (record_set or "")
        raise RegistryError(f"{where}: no tuning records to export")
    return chosen


def export_logs(target: str, logs_dir: Path, out: Path, force: bool = False,
                record_set: str | None = None) -> LogsExportResult:
    """A checked archive of one record set of a target, for ``logs import`` elsewhere."""
    safe_component(target, "target name")
    if record_set is not None:
        safe_component(record_set, "record set")
    chosen = _set_to_export(target, logs_dir, record_set)
    refuse_existing(Path(out), force)
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-logs-") as tmp:
        copy, workloads, records = snapshot_database(chosen.folder, Path(tmp))
        files: dict[str, Path | bytes] = {f"{TUNING_DIR}/{n}": copy / n for n in (WORKLOADS, RECORDS)
                                          if (copy / n).exists()}
        meta = {"format": PACK_FORMAT, "kind": LOGS_KIND, "created": utc_now(), "target": target,
                "record_set": chosen.name, "cpu": chosen.cpu,
                "workloads": workloads, "records": records, "digest": database_digest(copy)}
        meta["tvm_version"] = _tvm_version()  # records are plain JSON; the version is informative
        files[LOGS_META] = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
        digest, _ = write_archive(Path(out), files, force=force)
    return LogsExportResult(Path(out), target, workloads, records, digest, chosen.name)


@dataclass
class LogsImportResult:
    merge: MergeResult
    source_kind: str


def _archive_set(meta: dict) -> tuple[str | None, dict]:
    """(record set, its cpu.json) an archive names: logs.json at the top, pack.json under "tuning"."""
    described = meta if meta.get("kind") == LOGS_KIND else (meta.get("tuning") or {})
    cpu = described.get("cpu")
    return described.get("record_set"), cpu if isinstance(cpu, dict) else {}


def _destination_set(archive: Path, meta: dict, record_set: str | None, this_cpu: bool) -> tuple[str, dict]:
    """(set to merge into, cpu.json for it if new): ``record_set``, this host's own with
    ``this_cpu``, else the set the archive names; an archive that names none must be told."""
    if record_set is not None and this_cpu:
        raise RegistryError("give --set NAME or --this-cpu, not both")
    theirs, cpu = _archive_set(meta)
    name = record_set or (host_set_name() if this_cpu else theirs)
    if not name:
        raise RegistryError(f"{archive}: does not say which CPU timed its records (made before record sets); "
                            "give --set NAME or --this-cpu")
    safe_component(name, "record set")
    if name == theirs and cpu:
        return name, cpu
    return name, describe_cpu(name) if name == host_set_name() else {"llvm_cpu": name, "imported_from": str(archive)}


def import_logs(archive: Path, logs_dir: Path, target: str | None = None, keep: int = DEFAULT_KEEP,
                record_set: str | None = None, this_cpu: bool = False, *,
                validate: Readable | None) -> LogsImportResult:
    """Merge the tuning records of a ``logs export`` archive, or of a pack, into
    ``logs_dir/<target>/<set>``: the target and set default to the ones the archive names
    (``this_cpu``: this host's own set instead).

    The archive is extracted and checked in a temporary folder, and nothing is written
    unless it passed. ``validate`` is the check that MetaSchedule can read the merged records
    (``compile.tuning.database.check_readable``), passed in because distribution may not import
    compile (docs/architecture.md).
    """
    archive = Path(archive)
    if not archive.is_file():
        raise RegistryError(f"{archive}: no such archive")
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-logs-") as tmp:
        contents = extract_archive(archive, Path(tmp) / "x")
        # pack.json and logs.json both name the target the records were tuned for
        name = safe_component(target or str(contents.meta.get("target", "")), "target name")
        set_name, cpu = _destination_set(archive, contents.meta, record_set, this_cpu)
        src = contents.folder / TUNING_DIR
        if not (src / RECORDS).is_file():
            raise RegistryError(f"{archive}: carries no tuning records")
        try:
            theirs, mine = contents.meta.get("tvm_version"), _tvm_version()
            if theirs and mine and theirs != mine:
                log.warning("%s was tuned with TVM %s, this is TVM %s", archive, theirs, mine)
            merge = merge_tuning_records(src, Path(logs_dir) / name / set_name, keep, validate=validate)
        except (DatabaseError, RegistryError) as e:  # name the archive, not the scratch folder
            raise type(e)(str(e).replace(str(src), f"{archive}:{TUNING_DIR}")) from None
    ensure_cpu_file(merge.folder, cpu)
    log.info("merged %s into %s", archive, merge.folder)
    return LogsImportResult(merge, contents.kind)
