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
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from alexnet_tvm.errors import RegistryError
from alexnet_tvm.fsutil import atomic_path, read_json, refuse_existing, sha256_file
from alexnet_tvm.schemas import PACK_FORMAT, PLAIN_NAME, check_pack_meta

from .signing import SIG, Trust, check_signature, sign
from .tarstream import StrictGunzip, check_tar_end

SUMS = "SHA256SUMS"
PACK_META = "pack.json"
LOGS_META = "logs.json"
VERIFY_REPORT = "verify.json"
TUNING_DIR = "tuning"
PACK_KIND = "alexnet-tvm-pack"
LOGS_KIND = "alexnet-tvm-logs"

#: refuse archives that would unpack to more than this (a gzip bomb fills the disk, not the registry);
#: each member also has its own cap (:func:`member_cap`)
MAX_EXTRACT_BYTES = 4 << 30
MAX_MEMBERS = 256
CHUNK = 1 << 20

_SUMS_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def utc_now() -> str:
    """The timestamp packs, log archives and the index record (UTC, to the second)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sha256_digest(path: Path) -> str:
    """The ``sha256:<hex>`` form the index uses for a whole pack file."""
    return "sha256:" + sha256_file(path)


def safe_component(name: str, what: str) -> str:
    """A name that goes into a file name (model, target): no separators, no dot-files."""
    if not isinstance(name, str) or not PLAIN_NAME.match(name):
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


def write_archive(out: Path, files: dict[str, Path | bytes], force: bool = False,
                  sign_with: Path | None = None) -> tuple[str, int]:
    """A ``.tar.gz`` of ``files`` (archive name -> file or bytes) plus their SHA256SUMS, written atomically.

    SHA256SUMS comes first and its signature (with ``sign_with``, a private key)
    second, so a reader checks both before writing any file they cover.
    Returns (digest, size).
    """
    refuse_existing(out, force)
    blobs: dict[str, bytes | Path] = dict(files)
    sums = {}
    for name, src in blobs.items():
        sums[name] = sha256_file(src) if isinstance(src, Path) else hashlib.sha256(src).hexdigest()
    blobs[SUMS] = format_sums(sums).encode()
    if sign_with is not None:
        blobs[SIG] = sign(blobs[SUMS], sign_with)
    mtime = int(time.time())
    with atomic_path(out) as tmp:
        with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(blobs, key=lambda n: (n != SUMS, n != SIG, n)):
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
    #: the key id that signed SHA256SUMS (``None``: unsigned)
    signer: str | None = None


def member_cap(name: str) -> int:
    """The most bytes a member of this name may unpack to, checked on its tar header before
    anything is written: an 11 MB gzip of 2 GiB of zeros is refused at its header."""
    return _MEMBER_CAPS.get(name, _MEMBER_CAPS["*"])


_MEMBER_CAPS = {"model.so": 1 << 30, "params.bin": 1536 << 20, f"{TUNING_DIR}/database_workload.json": 512 << 20,
                f"{TUNING_DIR}/database_tuning_record.json": 512 << 20, "*": 16 << 20}


def _members(tar: tarfile.TarFile, where: str) -> Iterator[tuple[tarfile.TarInfo, PurePosixPath]]:
    """Every member, refusing links, devices, oversized files and paths that would land outside."""
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
        if m.isreg() and m.size > member_cap(str(p)):
            raise RegistryError(f"{where}: {m.name} would unpack to {m.size} bytes, more than the "
                                f"{member_cap(str(p))} allowed; refusing it")
        seen.add(p)
        yield m, p


def _read_small(tar: tarfile.TarFile, m: tarfile.TarInfo) -> bytes:
    with tar.extractfile(m) as f:
        return f.read(m.size)


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


@dataclass
class _Unpacking:
    """What one pass over the archive learnt: the sums (first member), the signer, the files written."""

    root: Path
    where: str
    gate: Callable[[bytes, bytes | None], str | None]
    sums: dict[str, str] | None = None
    sums_bytes: bytes = b""
    sig: bytes | None = None
    signer: str | None = None
    gated: bool = False
    written: dict[str, str] = field(default_factory=dict)

    def take(self, tar: tarfile.TarFile, m: tarfile.TarInfo, p: PurePosixPath) -> None:
        """One member: SHA256SUMS must come first, its signature next; every file is checked
        against its line (listed, then digest) and nothing is written before the gate passed."""
        name = str(p)
        if self.sums is None:
            if name != SUMS or not m.isreg():
                raise RegistryError(f"{self.where}: {SUMS} is not the first member; refusing an unchecked archive")
            self.sums_bytes = _read_small(tar, m)
            self.sums = parse_sums(self.sums_bytes.decode(errors="replace"), self.where)
            return
        if name == SIG and not self.gated and m.isreg():
            self.sig = _read_small(tar, m)
            return
        self.open_gate()
        target = self.root.joinpath(*p.parts)
        if not target.resolve().is_relative_to(self.root):
            raise RegistryError(f"{self.where}: {m.name!r} would land outside the folder; refusing it")
        if m.isdir():
            target.mkdir(parents=True, exist_ok=True)
            return
        if name not in self.sums:
            raise RegistryError(f"{self.where}: {name} is not covered by {SUMS}; refusing it")
        self.written[name] = _copy_member(tar, m, target)
        if self.written[name] != self.sums[name]:
            raise RegistryError(f"{self.where}: {name} does not match its sha256 in {SUMS} (tampered or corrupt); "
                                "refusing it")

    def open_gate(self) -> None:
        if not self.gated:
            self.signer = self.gate(self.sums_bytes, self.sig)
            self.gated = True


def _unpack(archive: Path, state: _Unpacking) -> None:
    """Every regular member into ``state.root``. Corrupt or hostile archives are refused."""
    total = 0
    try:
        with open(archive, "rb") as raw:
            stream = StrictGunzip(raw, state.where)
            with tarfile.open(fileobj=stream, mode="r:") as tar:
                for m, p in _members(tar, state.where):
                    total += m.size
                    if total > MAX_EXTRACT_BYTES:
                        raise RegistryError(f"{state.where}: unpacks to more than {MAX_EXTRACT_BYTES >> 30} GiB; "
                                            "refusing it")
                    state.take(tar, m, p)
                # nothing but tar's zero padding after the last member, and nothing after the gzip stream
                check_tar_end(tar, stream, state.where)
    except RegistryError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as e:
        raise RegistryError(f"{state.where}: corrupt or truncated archive ({type(e).__name__}: {e})") from None


def _check_complete(state: _Unpacking) -> dict[str, str]:
    """The archive's SHA256SUMS, once every file it lists was written (each was checked on the way)."""
    if state.sums is None:
        raise RegistryError(f"{state.where}: no {SUMS}; refusing an unchecked archive")
    state.open_gate()
    absent = sorted(set(state.sums) - set(state.written))
    if absent:
        raise RegistryError(f"{state.where}: {absent[0]} is listed in {SUMS} but missing")
    return state.sums


def _describe(folder: Path, root: Path, sums: dict[str, str], where: str) -> Contents:
    """What kind of archive this is, from its pack.json (schema-checked) or logs.json."""
    for meta_name, kind in ((PACK_META, PACK_KIND), (LOGS_META, LOGS_KIND)):
        if meta_name in sums:
            try:
                meta = read_json(root / meta_name, RegistryError, "pack description")
            except RegistryError as e:  # the member's name, never the folder it was unpacked to
                raise RegistryError(str(e).replace(str(root / meta_name), f"{where}: {meta_name}", 1)) from None
            if not isinstance(meta, dict) or meta.get("kind") != kind:
                raise RegistryError(f"{where}: {meta_name} is not an {kind} description")
            if meta.get("format") != PACK_FORMAT:
                raise RegistryError(f"{where}: format {meta.get('format')!r}, this tool reads {PACK_FORMAT}")
            if kind == PACK_KIND:
                check_pack_meta(meta, f"{where}: {PACK_META}", RegistryError)
            return Contents(folder, sums, meta, kind)
    raise RegistryError(f"{where}: neither {PACK_META} nor {LOGS_META}; not an alexnet-tvm archive")


def extract_archive(archive: Path, dest: Path, label: str | None = None, trust: Trust | None = None) -> Contents:
    """Unpack ``archive`` into the (new) folder ``dest`` and check it against its SHA256SUMS.

    Members are written one by one with exclusive creates (never ``extractall``),
    so a hostile name, a link or a duplicate cannot write outside ``dest`` or over
    another file. SHA256SUMS and its signature are read first and the signature
    is checked against ``trust`` before any file is written. The caller owns
    ``dest`` and removes it on failure. ``label`` names the archive in errors.
    """
    archive, dest = Path(archive), Path(dest)
    where = label or str(archive)
    dest.mkdir(parents=True, exist_ok=False)
    root = dest.resolve()
    state = _Unpacking(root, where, lambda sums, sig: check_signature(sums, sig, trust, where))
    _unpack(archive, state)
    contents = _describe(dest, root, _check_complete(state), where)
    contents.signer = state.signer
    return contents
