"""Tampering with packs the way an attacker or a broken registry would: read a pack's members,
write them back (with or without SHA256SUMS made to match), and a folder registry that lists
such an archive under its true digest and size, so that only the pack's own checks stand."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path


def pack_members(archive: Path) -> dict[str, bytes]:
    """name -> bytes of every regular file in ``archive``, in archive order (SHA256SUMS first)."""
    with tarfile.open(archive, "r:gz") as t:
        return {m.name: t.extractfile(m).read() for m in t if m.isreg()}


def write_tar(path: Path, files: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> Path:
    """A tar.gz of ``files`` as they are (a stale SHA256SUMS stays stale), then the ``extra`` members."""
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for info in extra:
            t.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return path


def repack(path: Path, files: dict[str, bytes]) -> Path:
    """A tar.gz of ``files`` under a fresh SHA256SUMS, first as in every archive, that matches them:
    what is changed passes the sums check and must be caught by what comes after it."""
    from alexnet_tvm.distribution.archive import SUMS, format_sums

    files = {n: b for n, b in files.items() if n != SUMS}
    sums = format_sums({n: hashlib.sha256(b).hexdigest() for n, b in files.items()}).encode()
    return write_tar(path, {SUMS: sums, **files})


def index_entry(pack: Path, scratch: Path | None = None, **changes) -> dict:
    """The index entry a publish of ``pack`` writes (into a scratch registry at ``scratch``, a
    temporary folder if None), with ``changes`` (file, size, ...) on top."""
    from alexnet_tvm.distribution.registry import FolderRegistry

    if scratch is None:
        with tempfile.TemporaryDirectory() as tmp:
            return index_entry(pack, Path(tmp) / "reg", **changes)
    return dict(FolderRegistry(scratch).publish(pack).to_dict(), **changes)


def registry_listing(folder: Path, archive: Path, entry: dict, **changes) -> Path:
    """A folder registry whose index lists ``archive`` under ``entry`` with the archive's true digest
    and size (a compromised registry: the index check passes), ``changes`` on top."""
    from alexnet_tvm.distribution.archive import sha256_digest

    (folder / "packs").mkdir(parents=True)
    shutil.copyfile(archive, folder / "packs" / "p.tar.gz")
    entry = {**entry, "file": "packs/p.tar.gz", "digest": sha256_digest(archive), "size": archive.stat().st_size,
             **changes}
    (folder / "index.json").write_text(json.dumps({"format": 1, "packs": [entry]}))
    return folder
