"""Checksummed ``.tar.gz`` archives (packs and tuning-log exports): writing, and extracting without trust.

Every archive carries a ``SHA256SUMS`` over all its other files, so the reading
side can check it without trusting the transport, and is unpacked member by
member (never ``extractall``): a hostile name, link, device or duplicate is
refused before anything lands outside the destination folder.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import re
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from alexnet_tvm.errors import RegistryError
from alexnet_tvm.fsutil import atomic_path, read_json, refuse_existing, sha256_file

PACK_FORMAT = 1
SUMS = "SHA256SUMS"
PACK_META = "pack.json"
LOGS_META = "logs.json"
VERIFY_REPORT = "verify.json"
TUNING_DIR = "tuning"
PACK_KIND = "alexnet-tvm-pack"
LOGS_KIND = "alexnet-tvm-logs"

#: refuse archives that would unpack to more than this (a gzip bomb fills the disk, not the registry)
MAX_EXTRACT_BYTES = 8 << 30
MAX_MEMBERS = 256
CHUNK = 1 << 20

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_SUMS_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def utc_now() -> str:
    """The timestamp packs, log archives and the index record (UTC, to the second)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sha256_digest(path: Path) -> str:
    """The ``sha256:<hex>`` form the index uses for a whole pack file."""
    return "sha256:" + sha256_file(path)


def safe_component(name: str, what: str) -> str:
    """A name that goes into a file name (model, target): no separators, no dot-files."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise RegistryError(f"{what} {name!r} is not a plain name (letters, digits, '.', '_', '-', '+')")
    return name


def check_member_name(name: str, where: str) -> PurePosixPath:
    """A relative path with no ``..``, no absolute root and no backslashes, or a refusal."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise RegistryError(f"{where}: unsafe path {name!r} (absolute or malformed); refusing it")
    p = PurePosixPath(name)
    if any(part == ".." for part in p.parts) or not p.parts or p.parts == (".",):
        raise RegistryError(f"{where}: unsafe path {name!r} (leaves the folder); refusing it")
    return p


def parse_sums(text: str, where: str) -> dict[str, str]:
    """``sha256sum`` format: ``<64 hex>  <path>`` per line."""
    sums: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _SUMS_LINE.match(line)
        if not m:
            raise RegistryError(f"{where}: {SUMS} line {n} is malformed")
        name = str(check_member_name(m.group(2), where))
        sums[name] = m.group(1)
    return sums


def format_sums(sums: dict[str, str]) -> str:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))


# --------------------------------------------------------------------------- writing


def _add_member(tar: tarfile.TarFile, name: str, src: Path | bytes, mtime: int) -> None:
    """A plain file with neutral owner and mode: the archive says nothing about the machine it was made on."""
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid, info.uname, info.gname, info.mtime = 0o644, 0, 0, "", "", mtime
    if isinstance(src, Path):
        info.size = src.stat().st_size
        with open(src, "rb") as f:
            tar.addfile(info, f)
    else:
        info.size = len(src)
        tar.addfile(info, io.BytesIO(src))


def write_archive(out: Path, files: dict[str, Path | bytes], force: bool = False) -> tuple[str, int]:
    """A ``.tar.gz`` of ``files`` (archive name -> file or bytes) plus their SHA256SUMS, written atomically.

    SHA256SUMS comes first, so a reader meets the sums before the files they cover.
    Returns (digest, size).
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
                _add_member(tar, name, blobs[name], mtime)
        digest, size = sha256_digest(tmp), tmp.stat().st_size
    return digest, size


# --------------------------------------------------------------------------- extracting


@dataclass
class Contents:
    """A safely extracted archive whose every file matched its SHA256SUMS line."""

    folder: Path
    sums: dict[str, str]
    #: pack.json or logs.json
    meta: dict
    kind: str


def _members(tar: tarfile.TarFile, where: str) -> Iterator[tuple[tarfile.TarInfo, PurePosixPath]]:
    """Every member, refusing links, devices and paths that would land outside the folder."""
    seen: set[PurePosixPath] = set()
    for i, m in enumerate(tar):
        if i >= MAX_MEMBERS:
            raise RegistryError(f"{where}: more than {MAX_MEMBERS} entries; refusing it")
        p = check_member_name(m.name, where)
        if m.issym() or m.islnk():
            raise RegistryError(f"{where}: {m.name!r} is a link; refusing it")
        if not (m.isreg() or m.isdir()):
            raise RegistryError(f"{where}: {m.name!r} is not a regular file; refusing it")
        if p in seen:
            raise RegistryError(f"{where}: {m.name!r} appears twice; refusing it")
        seen.add(p)
        yield m, p


def _copy_member(tar: tarfile.TarFile, m: tarfile.TarInfo, target: Path) -> str:
    """Write one member with an exclusive create (never over another file); return its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = tar.extractfile(m)
    h = hashlib.sha256()
    with src, open(target, "xb") as out:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


def _unpack(archive: Path, root: Path, where: str) -> dict[str, str]:
    """Every regular member into ``root``: {name: sha256}. Corrupt or hostile archives are refused."""
    written: dict[str, str] = {}
    total = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for m, p in _members(tar, where):
                target = root.joinpath(*p.parts)
                if not target.resolve().is_relative_to(root):
                    raise RegistryError(f"{where}: {m.name!r} would land outside the folder; refusing it")
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                total += m.size
                if total > MAX_EXTRACT_BYTES:
                    raise RegistryError(f"{where}: unpacks to more than {MAX_EXTRACT_BYTES >> 30} GiB; refusing it")
                written[str(p)] = _copy_member(tar, m, target)
            # tarfile stops at the end-of-archive block; reading on makes gzip check its CRC and length
            while tar.fileobj.read(CHUNK):
                pass
    except RegistryError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise RegistryError(f"{where}: corrupt or truncated archive ({type(e).__name__}: {e})") from None
    return written


def _check_sums(root: Path, written: dict[str, str], where: str) -> dict[str, str]:
    """The archive's SHA256SUMS, once it covers exactly the files written and each one matches."""
    if SUMS not in written:
        raise RegistryError(f"{where}: no {SUMS}; refusing an unchecked archive")
    sums = parse_sums((root / SUMS).read_text(errors="replace"), where)
    del written[SUMS]
    unlisted = sorted(set(written) - set(sums))
    if unlisted:
        raise RegistryError(f"{where}: {unlisted[0]} is not covered by {SUMS}; refusing it")
    absent = sorted(set(sums) - set(written))
    if absent:
        raise RegistryError(f"{where}: {absent[0]} is listed in {SUMS} but missing")
    for name, digest in sorted(sums.items()):
        if written[name] != digest:
            raise RegistryError(f"{where}: {name} does not match its sha256 in {SUMS} (tampered or corrupt); "
                                "refusing it")
    return sums


def _describe(folder: Path, root: Path, sums: dict[str, str], where: str) -> Contents:
    """What kind of archive this is, from its pack.json or logs.json (``root``: ``folder`` resolved)."""
    for meta_name, kind in ((PACK_META, PACK_KIND), (LOGS_META, LOGS_KIND)):
        if meta_name in sums:
            meta = read_json(root / meta_name, RegistryError, "pack description")
            if not isinstance(meta, dict) or meta.get("kind") != kind:
                raise RegistryError(f"{where}: {meta_name} is not an {kind} description")
            if meta.get("format") != PACK_FORMAT:
                raise RegistryError(f"{where}: format {meta.get('format')!r}, this tool reads {PACK_FORMAT}")
            return Contents(folder, sums, meta, kind)
    raise RegistryError(f"{where}: neither {PACK_META} nor {LOGS_META}; not an alexnet-tvm archive")


def extract_archive(archive: Path, dest: Path, label: str | None = None) -> Contents:
    """Unpack ``archive`` into the (new) folder ``dest`` and check it against its SHA256SUMS.

    Members are written one by one with exclusive creates (never ``extractall``),
    so a hostile name, a link or a duplicate cannot write outside ``dest`` or over
    another file. The caller owns ``dest`` and removes it on failure. ``label``
    names the archive in errors (e.g. its registry path rather than a temp file).
    """
    archive, dest = Path(archive), Path(dest)
    where = label or str(archive)
    dest.mkdir(parents=True, exist_ok=False)
    root = dest.resolve()
    written = _unpack(archive, root, where)
    sums = _check_sums(root, written, where)
    return _describe(dest, root, sums, where)
