"""The producer side of distribution: pack an artifact, publish packs, move tuning logs.

Packs and log archives are written with a ``SHA256SUMS`` over every file so that
the pulling side (``runtime/distribution.py``) can check them without trusting
the transport. Publishing to a folder registry serialises writers with an
``fcntl.flock`` on a lock file and replaces ``index.json`` by rename, so
concurrent publishers never lose an entry and readers never see half an index.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from alexnet_tvm.errors import ArtifactError, DatabaseError, RegistryError
from alexnet_tvm.fsutil import atomic_path, read_json, refuse_existing, sha256_file, write_json, write_text
from alexnet_tvm.runtime.artifact import LIB, MANIFEST, PARAMS, check_files, read_manifest
from alexnet_tvm.runtime.distribution import (
    INDEX, LOGS_KIND, LOGS_META, PACK_FORMAT, PACK_KIND, PACK_META, PACKS_DIR, SUMS, TUNING_DIR,
    VERIFY_REPORT, FolderRegistry, Index, PackEntry, extract_archive, format_sums, is_url, open_pack,
    safe_component, sha256_digest, utc_now, verify_summary,
)

from .database import RECORDS, WORKLOADS, check_database, database_digest, dedupe_workloads, fold_workloads, split_record

log = logging.getLogger(__name__)

LOCK_FILE = ".index.lock"
DEFAULT_LOCK_TIMEOUT = 30.0
#: records kept per workload on import: the best one builds, a few more seed the next tuning run
#: (the same rule as ``prune_database``)
DEFAULT_KEEP = 8



# --------------------------------------------------------------------------- archives


def write_archive(out: Path, files: dict[str, Path | bytes], force: bool = False) -> tuple[str, int]:
    """A ``.tar.gz`` of ``files`` (archive name -> file or bytes) plus their SHA256SUMS, written atomically.

    Members are plain files with neutral owner and mode so the archive says
    nothing about the machine it was made on. Returns (digest, size).
    """
    refuse_existing(out, force)
    blobs: dict[str, bytes | Path] = dict(files)
    sums = {}
    for name, src in blobs.items():
        sums[name] = sha256_file(src) if isinstance(src, Path) else hashlib.sha256(src).hexdigest()
    blobs[SUMS] = format_sums(sums).encode()
    mtime = int(time.time())
    with atomic_path(out) as tmp:
        with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(blobs, key=lambda n: (n != SUMS, n)):
                src = blobs[name]
                info = tarfile.TarInfo(name)
                info.mode, info.uid, info.gid, info.uname, info.gname, info.mtime = 0o644, 0, 0, "", "", mtime
                if isinstance(src, Path):
                    info.size = src.stat().st_size
                    with open(src, "rb") as f:
                        tar.addfile(info, f)
                else:
                    info.size = len(src)
                    tar.addfile(info, io.BytesIO(src))
        digest, size = sha256_digest(tmp), tmp.stat().st_size
    return digest, size


# --------------------------------------------------------------------------- pack


@dataclass
class PackResult:
    out: Path
    digest: str
    size: int
    files: list[str]
    tuning_included: bool
    verify: dict | None


def _load_report(path: Path) -> dict:
    report = read_json(path, RegistryError, "verify report")
    if not isinstance(report, dict) or not isinstance(report.get("passed"), bool) or "against" not in report:
        raise RegistryError(f"{path}: not a verify report (write one with `verify --report`)")
    if not report["passed"]:
        raise RegistryError(f"{path}: the verify report says FAILED ({'; '.join(report.get('failures') or [])}); "
                            "refusing to pack an unverified artifact")
    return report


def pack_artifact(artifact: Path, out: Path, report: Path | None = None, logs_dir: Path | None = None,
                  force: bool = False) -> PackResult:
    """One archive with the artifact, its tuning records and verify report, and SHA256SUMS.

    The artifact is checked against its own manifest first: packing a modified
    library would sign it anew. Tuning records come from the manifest's database
    folder (or ``logs_dir/<target>``), so whoever pulls can also re-tune from them.
    """
    artifact, out = Path(artifact), Path(out)
    refuse_existing(out, force)
    try:
        manifest = read_manifest(artifact)
        check_files(artifact, manifest)
    except ArtifactError as e:
        raise RegistryError(f"cannot pack {artifact}: {e}") from None
    model = safe_component(str(manifest.get("model", {}).get("name", "")), "model name")
    target = safe_component(str(manifest["target"].get("name", "")), "target name")
    files: dict[str, Path | bytes] = {LIB: artifact / LIB, PARAMS: artifact / PARAMS, MANIFEST: artifact / MANIFEST}
    rep = _load_report(report) if report else None
    if rep is not None:
        files[VERIFY_REPORT] = Path(report)
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-pack-") as tmp:
        tuning = _tuning_for(manifest, target, logs_dir, Path(tmp))
        if tuning is not None:
            for name in (WORKLOADS, RECORDS):
                if (tuning["folder"] / name).exists():
                    files[f"{TUNING_DIR}/{name}"] = tuning["folder"] / name
        meta = {
            "format": PACK_FORMAT, "kind": PACK_KIND, "created": utc_now(), "model": model, "target": target,
            "batch": int(manifest["input"]["shape"][0]), "tvm_version": manifest["tvm_version"],
            "verify": verify_summary(rep),
            "tuning": None if tuning is None else {k: v for k, v in tuning.items() if k != "folder"},
        }
        files[PACK_META] = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
        digest, size = write_archive(out, files, force=force)
    log.info("packed %s into %s (%d bytes, %s)", artifact, out, size, digest)
    return PackResult(out, digest, size, sorted(files) + [SUMS], tuning is not None, meta["verify"])


def snapshot_database(folder: Path, tmp: Path) -> tuple[Path, int, int]:
    """A checked private copy of a tuning database: (copy, #workloads, #records).

    A tuning run may be appending to the live files; the copy is what gets
    checksummed and archived, so the archive cannot disagree with its own sums,
    and a record cut off mid-write is dropped from the copy only.
    """
    copy = Path(tmp) / "db"
    copy.mkdir(parents=True)
    for name in (WORKLOADS, RECORDS):
        if (folder / name).exists():
            shutil.copyfile(folder / name, copy / name)
    workloads, records = check_database(copy, repair=True)
    return copy, workloads, records


def _tuning_for(manifest: dict, target: str, logs_dir: Path | None, tmp: Path) -> dict | None:
    """The target's database the artifact was built with, or ``None`` when there is none here."""
    database = (manifest.get("tuning") or {}).get("database")
    folder = Path(logs_dir) / target if logs_dir else Path(database) if database else None
    if folder is None or not (folder / RECORDS).is_file():
        log.info("no tuning records for %s at %s; packing without them", target, folder)
        return None
    copy, workloads, records = snapshot_database(folder, tmp)
    digest = database_digest(copy)
    built_with = (manifest.get("tuning") or {}).get("digest")
    if digest != built_with:
        log.warning("%s changed since the artifact was built (digest %s, build used %s); packing the current "
                    "records", folder, digest, built_with)
    return {"folder": copy, "source": str(folder), "digest": digest, "workloads": workloads, "records": records,
            "matches_build": digest == built_with}


# --------------------------------------------------------------------------- publish


@contextlib.contextmanager
def registry_lock(folder: Path, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive access to a folder registry's index, waiting at most ``timeout`` seconds.

    ``flock`` is released by the kernel when the holder dies, so a crashed
    publisher never leaves the registry locked.
    """
    path = Path(folder) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RegistryError(f"registry {folder} is busy: another publisher has held its lock for "
                                        f"{timeout:g} s; nothing was published, try again") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _pack_file_name(e: PackEntry) -> str:
    return f"{PACKS_DIR}/{e.model}-{e.target}-b{e.batch}-{e.digest[7:19]}.tar.gz"


def publish_to_folder(pack: Path, registry: Path, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> PackEntry:
    """Add a checked pack to a folder registry (created if absent); re-publishing a pack is a no-op.

    The pack is copied under ``packs/`` before the index names it, so the index
    never points at a missing or partial file.
    """
    pack, registry = Path(pack), Path(registry)
    if not pack.is_file():
        raise RegistryError(f"{pack}: no such pack")
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-publish-") as tmp:
        info = open_pack(pack, Path(tmp) / "pack")
        digest, size = sha256_digest(pack), pack.stat().st_size
        entry = info.entry(digest, size, "")
    entry.file = _pack_file_name(entry)
    if registry.exists() and not registry.is_dir():
        raise RegistryError(f"registry {registry}: not a folder")
    registry.mkdir(parents=True, exist_ok=True)
    with registry_lock(registry, lock_timeout):
        index_path = registry / INDEX
        index = FolderRegistry(registry).read_index() if index_path.exists() else Index()
        dest = registry / entry.file
        if not (dest.is_file() and sha256_digest(dest) == digest):
            with atomic_path(dest) as tmp_file, open(pack, "rb") as src, open(tmp_file, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    dst.write(chunk)
            if sha256_digest(dest) != digest:  # the source changed while we copied it
                raise RegistryError(f"{pack}: changed while being published; try again")
        index.packs = [p for p in index.packs if p.digest != digest] + [entry]
        write_json(index_path, index.to_dict())
    log.info("published %s to %s", entry.label(), registry)
    return entry


def publish_http(pack: Path, url: str, timeout: float = 60.0) -> PackEntry:
    """Upload a pack to ``registry serve --allow-publish``; the server checks it as a folder publish would."""
    pack = Path(pack)
    if not pack.is_file():
        raise RegistryError(f"{pack}: no such pack")
    base = url.rstrip("/")
    size = pack.stat().st_size
    with open(pack, "rb") as f:
        req = urllib.request.Request(f"{base}/publish", data=f, method="PUT",
                                     headers={"Content-Length": str(size), "Content-Type": "application/gzip",
                                              "User-Agent": "alexnet-tvm"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read(1 << 20)
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read(1 << 16)).get("error") or e.reason
            except (ValueError, AttributeError, OSError):
                msg = e.reason
            if e.code == 501:  # a plain static server: no PUT at all
                msg = f"{msg} (is it `alexnet-tvm registry serve --allow-publish`?)"
            raise RegistryError(f"registry {base} refused the pack: HTTP {e.code}: {msg}") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, (BrokenPipeError, ConnectionResetError)):
                raise RegistryError(f"registry {base} hung up during the upload ({e.reason}); does it accept "
                                    "uploads (`alexnet-tvm registry serve --allow-publish`)?") from None
            raise RegistryError(f"registry {base} unreachable ({e.reason})") from None
        except (BrokenPipeError, ConnectionResetError) as e:
            raise RegistryError(f"registry {base} hung up during the upload ({e}); does it accept "
                                "uploads (`alexnet-tvm registry serve --allow-publish`)?") from None
        except (TimeoutError, OSError) as e:
            raise RegistryError(f"registry {base} unreachable ({type(e).__name__}: {e})") from None
    try:
        return PackEntry.from_dict(json.loads(body), f"registry {base} answer")
    except ValueError:
        raise RegistryError(f"registry {base}: unreadable answer to the upload") from None


def publish(pack: Path, to: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
            timeout: float = 60.0) -> PackEntry:
    """Publish to a folder or an HTTP(S) registry."""
    if is_url(to):
        return publish_http(pack, to, timeout)
    return publish_to_folder(pack, Path(to), lock_timeout)


# --------------------------------------------------------------------------- tuning logs


@dataclass
class LogsExportResult:
    out: Path
    target: str
    workloads: int
    records: int
    digest: str


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
class MergeResult:
    folder: Path
    target: str
    workloads_added: int
    records_offered: int
    records_added: int
    records_before: int
    records_after: int


def _cost(body: str) -> float:
    """Mean measured seconds of a record; unmeasured or failed records sort last."""
    try:
        rec = json.loads("[0," + body)[1]
        secs = rec[1] if len(rec) > 1 else None
        return sum(secs) / len(secs) if secs else float("inf")
    except (ValueError, TypeError, IndexError):
        return float("inf")


def merge_tuning_records(src: Path, dest: Path, keep: int = DEFAULT_KEEP, validate: bool = True,
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
    parse (another TVM version) never reach ``dest`` to break the next build.
    """
    src, dest = Path(src), Path(dest)
    if keep < 1:
        raise RegistryError("--keep must be at least 1")
    check_database(src)
    check_database(dest)  # an absent folder is an empty database
    if (dest / WORKLOADS).exists():
        dedupe_workloads(dest)
    old_w = _lines(dest / WORKLOADS)
    old_r = _lines(dest / RECORDS)
    new_w = _lines(src / WORKLOADS)
    new_r = _lines(src / RECORDS)

    workloads: list[str] = []
    first: dict[str, int] = {}  # structural hash -> index in dest (text can differ, see workload_key)
    old_map = fold_workloads(old_w, workloads, first)  # the identity: dest was folded above
    new_map = fold_workloads(new_w, workloads, first)

    seen: set[tuple[int, str]] = set()
    merged: list[tuple[int, str, str]] = []  # (workload, body, line)
    n_old = 0
    replaced = {new_map[split_record(line, str(src / RECORDS))[0]] for line in new_r} if replace else set()
    for lines, mapping, where in ((old_r, old_map, dest / RECORDS), (new_r, new_map, src / RECORDS)):
        for line in lines:
            idx, body = split_record(line, str(where))
            wl = mapping[idx]  # in range: check_database checked every index
            if (wl, body) in seen or (mapping is old_map and wl in replaced):
                continue
            seen.add((wl, body))
            merged.append((wl, body, line if wl == idx else f"[{wl},{body}"))
        if mapping is old_map:
            n_old = len(merged)
    by_wl: dict[int, list[tuple[float, int]]] = {}
    for i, (wl, body, _) in enumerate(merged):
        by_wl.setdefault(wl, []).append((_cost(body), i))
    kept = {i for recs in by_wl.values() for _, i in sorted(recs)[:keep]}
    out = [line for i, (_, _, line) in enumerate(merged) if i in kept]
    added = sum(1 for i in kept if i >= n_old)
    if validate and (len(workloads) != len(old_w) or out != old_r):
        _validate_with_metaschedule(workloads, out, src)
    dest.mkdir(parents=True, exist_ok=True)
    # workloads first: the old records' indices stay valid whichever file a reader sees
    if len(workloads) != len(old_w):
        write_text(dest / WORKLOADS, "".join(w + "\n" for w in workloads))
    if out != old_r:
        write_text(dest / RECORDS, "".join(r + "\n" for r in out))
    check_database(dest)
    return MergeResult(dest, dest.name, len(workloads) - len(old_w), len(new_r), added, len(old_r), len(out))


def _validate_with_metaschedule(workloads: list[str], records: list[str], src: Path) -> None:
    from .database import open_database

    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-merge-") as tmp:
        write_text(Path(tmp) / WORKLOADS, "".join(w + "\n" for w in workloads))
        write_text(Path(tmp) / RECORDS, "".join(r + "\n" for r in records))
        try:
            open_database(Path(tmp), for_tuning=False)
        except DatabaseError as e:
            detail = str(e).split("(", 1)[-1].rstrip(")") if "(" in str(e) else str(e)
            raise RegistryError(f"{src}: MetaSchedule cannot read the merged records ({detail}); "
                                "were they tuned with another TVM version? Nothing was merged") from None


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().split("\n") if line.strip()]


def _tvm_version() -> str | None:
    try:
        import tvm

        return tvm.__version__
    except ImportError:
        return None


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
