"""A pack: one checksummed archive of an artifact, its tuning records and its verify report.

Packing checks the artifact against its own manifest first (packing a modified
library would sign it anew); opening a pack checks the archive's SHA256SUMS and
then the artifact's manifest checksums, so a pack is trusted only as far as both.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alexnet_tvm.artifact_format import LIB, MANIFEST, PARAMS
from alexnet_tvm.errors import ArtifactError, RegistryError
from alexnet_tvm.fsutil import read_json, refuse_existing
from alexnet_tvm.records import RECORDS, WORKLOADS, database_digest, snapshot_database
from alexnet_tvm.recordsets import choose_record_set, read_cpu_file
from alexnet_tvm.runtime.artifact import artifact_digest, check_files, read_manifest
from alexnet_tvm.schemas import check_verify_report

from .archive import (
    PACK_FORMAT, PACK_KIND, PACK_META, SUMS, TUNING_DIR, VERIFY_REPORT, Contents, Trust,
    extract_archive, safe_component, utc_now, write_archive,
)
from .index import PackEntry, verify_summary

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- packing


@dataclass
class PackResult:
    out: Path
    digest: str
    size: int
    files: list[str]
    tuning_included: bool
    verify: dict | None


def load_evidence(path: Path, digest: str, where: str | None = None) -> dict:
    """A verify report that vouches for the artifact whose manifest digest is ``digest``: written by
    ``verify --report`` for this very artifact, passed, on at least one image. Anything less
    (a hand-written ``{"passed": true}``, another artifact's report, ``--random 0``) is refused."""
    where = where or str(path)
    try:
        data = read_json(path, RegistryError, "verify report")
    except RegistryError as e:  # named as the caller names it (in a pack: never the temp folder it was unpacked to)
        raise RegistryError(str(e).replace(str(path), where, 1)) from None
    report = check_verify_report(data, where, RegistryError)
    if report["artifact_digest"] != digest:
        raise RegistryError(f"{where}: the verify report is for artifact {report['artifact_digest'][:19]}..., "
                            f"not this one ({digest[:19]}...); verify this artifact")
    if not report["passed"]:
        raise RegistryError(f"{where}: the verify report says FAILED ({'; '.join(report['failures'])}); "
                            "refusing to pack an unverified artifact")
    if report["images"] < 1:
        raise RegistryError(f"{where}: the verify report compared no image; refusing it as evidence")
    return report


def _checked_manifest(folder: Path, where: str, hide_folder: bool = False) -> dict:
    """The artifact's manifest (schema-checked: plain file names only), once its own checksums
    hold; errors start with ``where`` (and name an extracted pack's files as ``pack``)."""
    try:
        manifest = read_manifest(folder)
        check_files(folder, manifest)
    except ArtifactError as e:
        raise RegistryError(f"{where}: {str(e).replace(str(folder), 'pack') if hide_folder else e}") from None
    return manifest


def pack_artifact(artifact: Path, out: Path, report: Path | None = None, logs_dir: Path | None = None,
                  force: bool = False, sign_with: Path | None = None) -> PackResult:
    """One archive with the artifact, its tuning records and verify report, and SHA256SUMS.

    The artifact is checked against its own manifest first: packing a modified
    library would sign it anew. Tuning records come from the manifest's database
    folder (or ``logs_dir/<target>/<set>``: the set the build used, else the one a build
    here takes), so whoever pulls can also re-tune from them; pack.json names the set.
    """
    artifact, out = Path(artifact), Path(out)
    refuse_existing(out, force)
    manifest = _checked_manifest(artifact, f"cannot pack {artifact}")
    model = safe_component(str(manifest.get("model", {}).get("name", "")), "model name")
    target = safe_component(str(manifest["target"].get("name", "")), "target name")
    # every file the manifest lists (an int8 build also ships its QDQ model), and the manifest
    files: dict[str, Path | bytes] = {name: artifact / name for name in manifest["files"]}
    files[MANIFEST] = artifact / MANIFEST
    rep = load_evidence(report, artifact_digest(artifact)) if report else None
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
        digest, size = write_archive(out, files, force=force, sign_with=sign_with)
    log.info("packed %s into %s (%d bytes, %s)", artifact, out, size, digest)
    return PackResult(out, digest, size, sorted(files) + [SUMS], tuning is not None, meta["verify"])


def _tuning_for(manifest: dict, target: str, logs_dir: Path | None, tmp: Path) -> dict | None:
    """The record set the artifact was built with, or ``None`` when there is none here."""
    built = manifest.get("tuning") or {}
    database, name = built.get("database"), built.get("record_set")
    if logs_dir:
        set_target, _, set_name = (name or "").rpartition("/")  # "x86-avx512/znver4": a records_from set
        chosen = choose_record_set(Path(logs_dir), set_target or target, host=set_name or None).chosen
        if chosen is not None:
            folder, name = chosen.folder, chosen.label_for(target)
        else:
            folder = Path(logs_dir) / target / (name or "")
    else:
        folder = Path(database) if database else None
        if folder is not None and name is None and "record_set" in built:
            name = folder.name  # built with no records: the set a tune here added after the build
    if folder is None or not (folder / RECORDS).is_file():
        log.info("no tuning records for %s at %s; packing without them", target, folder)
        return None
    copy, workloads, records = snapshot_database(folder, tmp)
    digest = database_digest(copy)
    built_with = built.get("digest")
    if digest != built_with:
        log.warning("%s changed since the artifact was built (digest %s, build used %s); packing the current "
                    "records", folder, digest, built_with)
    return {"folder": copy, "source": str(folder), "digest": digest, "workloads": workloads, "records": records,
            "matches_build": digest == built_with, "record_set": name, "cpu": read_cpu_file(folder)}


# --------------------------------------------------------------------------- opening


@dataclass
class PackInfo:
    """A checked, extracted pack: its artifact manifest is what the index entry must agree with."""

    contents: Contents
    manifest: dict
    #: how errors name the pack
    where: str = "pack"

    @property
    def folder(self) -> Path:
        return self.contents.folder

    @property
    def meta(self) -> dict:
        return self.contents.meta

    @property
    def model(self) -> str:
        return str(self.manifest.get("model", {}).get("name", ""))

    @property
    def target(self) -> dict:
        return self.manifest["target"]

    @property
    def batch(self) -> int:
        return int(self.manifest["input"]["shape"][0])

    @property
    def has_tuning(self) -> bool:
        return f"{TUNING_DIR}/{RECORDS}" in self.contents.sums

    def verify_report(self) -> dict | None:
        """The packed report, checked as ``pack`` checked it (it must vouch for this artifact)."""
        if VERIFY_REPORT not in self.contents.sums:
            return None
        return load_evidence(self.folder / VERIFY_REPORT, artifact_digest(self.folder),
                             f"{self.where}: {VERIFY_REPORT}")

    def entry(self, digest: str, size: int, file: str) -> PackEntry:
        """The index entry; ``published`` is the registry's clock, never the pack's own claim."""
        t = self.target
        return PackEntry(model=self.model, target=str(t.get("name")), batch=self.batch,
                         tvm_version=str(self.manifest["tvm_version"]), digest=digest, size=size,
                         created=str(self.meta.get("created", "")), file=file, kind=str(t.get("kind", "")),
                         host_features=list(t.get("host_features") or []),
                         tvm_target=str(t.get("tvm_target", "")), verify=verify_summary(self.verify_report()),
                         published=utc_now(), signer=self.contents.signer)


def open_pack(archive: Path, dest: Path, label: str | None = None, trust: Trust | None = None) -> PackInfo:
    """Extract and check a pack: signature (against ``trust``) and archive sums, then the artifact's
    own manifest checksums and schema, then the verify report as evidence for this artifact."""
    where = label or str(archive)
    contents = extract_archive(archive, dest, where, trust=trust)
    if contents.kind != PACK_KIND:
        raise RegistryError(f"{where}: a tuning-log archive, not a pack")
    for name in (LIB, PARAMS, MANIFEST):
        if name not in contents.sums:
            raise RegistryError(f"{where}: the pack has no {name}")
    manifest = _checked_manifest(contents.folder, where, hide_folder=True)
    model = manifest.get("model", {}).get("name")
    safe_component(model, f"{where}: model name")
    safe_component(manifest["target"].get("name"), f"{where}: target name")
    info = PackInfo(contents, manifest, where)
    for key, value in {"model": info.model, "target": info.target["name"], "batch": info.batch}.items():
        if contents.meta[key] != value:
            raise RegistryError(f"{where}: {PACK_META} says {key} {contents.meta[key]!r}, the manifest {value!r}; "
                                "refusing it")
    info.verify_report()  # a report that does not vouch for this artifact is refused here, not trusted later
    return info
