"""The pull side of tuned-library distribution: registries, downloads, checked packs.

A *pack* is one ``.tar.gz`` holding an artifact (``model.so``, ``params.bin``,
``manifest.json``), ``pack.json``, optionally the tuning records it was built
with (``tuning/``) and its verify report (``verify.json``), and a
``SHA256SUMS`` covering every other file. A *registry* is a folder or an
HTTP(S) base URL with ``index.json`` listing the packs under ``packs/``.

This module is what a deployment machine runs, so it imports neither torch nor
``alexnet_tvm.compile`` (there may be no compiler toolchain there), and it never
loads a library: a ``.so`` is code, so the index digest, every file's checksum,
the tar's member names and the TVM/CPU compatibility are all checked first, in
a temporary folder that is renamed into place only once everything passed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import http.client
import http.server
import json
import logging
import platform
import re
import socket
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Iterator

from alexnet_tvm.errors import ArtifactError, RegistryError
from alexnet_tvm.fsutil import atomic_dir, read_json, refuse_existing, sha256_file

from .artifact import LIB, MANIFEST, PARAMS, check_files, read_manifest
from .host import host_cpu_flags

log = logging.getLogger(__name__)

PACK_FORMAT = 1
INDEX_FORMAT = 1
INDEX = "index.json"
PACKS_DIR = "packs"
SUMS = "SHA256SUMS"
PACK_META = "pack.json"
LOGS_META = "logs.json"
VERIFY_REPORT = "verify.json"
TUNING_DIR = "tuning"
PACK_KIND = "alexnet-tvm-pack"
LOGS_KIND = "alexnet-tvm-logs"

#: seconds any one network operation may take (connect, or one read)
DEFAULT_TIMEOUT = 10.0
#: refuse archives that would unpack to more than this (a gzip bomb fills the disk, not the registry)
MAX_EXTRACT_BYTES = 8 << 30
MAX_MEMBERS = 256
MAX_INDEX_BYTES = 16 << 20
CHUNK = 1 << 20

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_url(location: str) -> bool:
    return str(location).startswith(("http://", "https://"))


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sha256_digest(path: Path) -> str:
    """The ``sha256:<hex>`` form the index uses for a whole pack file."""
    return "sha256:" + sha256_file(path)


def safe_component(name: str, what: str) -> str:
    """A name that goes into a file name (model, target): no separators, no dot-files."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise RegistryError(f"{what} {name!r} is not a plain name (letters, digits, '.', '_', '-', '+')")
    return name


# --------------------------------------------------------------------------- index


@dataclass
class PackEntry:
    """One pack as the index lists it: enough to pick a pack without downloading any."""

    model: str
    target: str
    batch: int
    tvm_version: str
    digest: str
    size: int
    created: str
    file: str
    kind: str = "llvm"
    host_features: list[str] = field(default_factory=list)
    tvm_target: str = ""
    verify: dict | None = None
    published: str | None = None

    #: keys an entry must have, with their types (a class attribute, not a field)
    REQUIRED = {"model": str, "target": str, "batch": int, "tvm_version": str, "digest": str, "size": int,
                "created": str, "file": str}

    @classmethod
    def from_dict(cls, d: object, where: str) -> "PackEntry":
        if not isinstance(d, dict):
            raise RegistryError(f"{where}: not an object")
        for key, typ in cls.REQUIRED.items():
            if not isinstance(d.get(key), typ) or isinstance(d.get(key), bool):
                raise RegistryError(f"{where}: {key!r} missing or not a {typ.__name__}")
        if not _DIGEST.match(d["digest"]):
            raise RegistryError(f"{where}: digest {d['digest']!r} is not sha256:<64 hex digits>")
        check_member_name(d["file"], where)
        feats = d.get("host_features", [])
        if not isinstance(feats, list) or not all(isinstance(f, str) for f in feats):
            raise RegistryError(f"{where}: host_features must be a list of CPU flags")
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        return f"{self.model} {self.target} b{self.batch} (TVM {self.tvm_version}, {self.digest[7:19]})"


@dataclass
class Index:
    """``index.json``: every published pack; invalid content is refused, never half-read."""

    packs: list[PackEntry] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | bytes, where: str) -> "Index":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RegistryError(f"{where}: corrupt index ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("packs"), list):
            raise RegistryError(f"{where}: not a registry index (no 'packs' list)")
        if data.get("format", INDEX_FORMAT) != INDEX_FORMAT:
            raise RegistryError(f"{where}: index format {data.get('format')!r}, this tool reads {INDEX_FORMAT}")
        return cls([PackEntry.from_dict(p, f"{where}: packs[{i}]") for i, p in enumerate(data["packs"])])

    def to_dict(self) -> dict:
        return {"format": INDEX_FORMAT, "updated": utc_now(), "packs": [p.to_dict() for p in self.packs]}


def verify_summary(report: dict | None) -> dict | None:
    """The few numbers of a verify report that the index shows (``None``: never verified)."""
    if report is None:
        return None
    comp = report.get("labelled") or report.get("random") or {}
    return {"passed": bool(report.get("passed")), "against": report.get("against"),
            "images": comp.get("images"), "max_abs_error": comp.get("max_abs_error"),
            "top1_agreement": comp.get("top1_agreement"), "accuracy": comp.get("accuracy_tvm")}


# --------------------------------------------------------------------------- registries


class Registry:
    """Where packs come from. Subclasses open files by their index-relative path."""

    location: str
    timeout: float

    def read_index(self) -> Index:
        raise NotImplementedError

    def open(self, relpath: str) -> contextlib.AbstractContextManager[tuple[IO[bytes], int | None]]:
        """A readable stream of one registry file and its length, if known."""
        raise NotImplementedError


class FolderRegistry(Registry):
    def __init__(self, folder: Path, timeout: float = DEFAULT_TIMEOUT):
        self.folder = Path(folder)
        self.location = str(folder)
        self.timeout = timeout

    def read_index(self) -> Index:
        path = self.folder / INDEX
        if not self.folder.is_dir():
            raise RegistryError(f"registry {self.folder}: no such folder")
        if not path.is_file():
            raise RegistryError(f"registry {self.folder}: no {INDEX} (nothing published yet?)")
        try:
            return Index.parse(path.read_bytes(), str(path))
        except OSError as e:
            raise RegistryError(f"{path}: unreadable ({e.strerror})") from None

    def path_of(self, relpath: str) -> Path:
        check_member_name(relpath, f"registry {self.folder}")
        path = (self.folder / relpath).resolve()
        if not path.is_relative_to(self.folder.resolve()):
            raise RegistryError(f"registry {self.folder}: {relpath!r} points outside the registry")
        return path

    @contextlib.contextmanager
    def open(self, relpath: str) -> Iterator[tuple[IO[bytes], int | None]]:
        path = self.path_of(relpath)
        try:
            f = open(path, "rb")
        except OSError as e:
            raise RegistryError(f"registry {self.folder}: cannot read {relpath} ({e.strerror})") from None
        with f:
            yield f, path.stat().st_size


class HttpRegistry(Registry):
    def __init__(self, base: str, timeout: float = DEFAULT_TIMEOUT):
        self.base = base.rstrip("/")
        self.location = self.base
        self.timeout = timeout

    def url(self, relpath: str) -> str:
        return f"{self.base}/{urllib.parse.quote(relpath)}"

    def _urlopen(self, relpath: str):
        req = urllib.request.Request(self.url(relpath), headers={"User-Agent": "alexnet-tvm"})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            raise RegistryError(f"registry {self.base}: {relpath}: HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise RegistryError(f"registry {self.base} unreachable: no answer within {self.timeout:g} s") from None
            raise RegistryError(f"registry {self.base} unreachable ({reason})") from None
        except (socket.timeout, TimeoutError):
            raise RegistryError(f"registry {self.base} unreachable: no answer within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as e:
            raise RegistryError(f"registry {self.base} unreachable ({type(e).__name__}: {e})") from None

    def read_index(self) -> Index:
        with self._urlopen(INDEX) as resp:
            try:
                data = resp.read(MAX_INDEX_BYTES + 1)
            except (OSError, http.client.HTTPException) as e:
                raise RegistryError(f"registry {self.base}: reading {INDEX} failed ({type(e).__name__}: {e})") \
                    from None
        if len(data) > MAX_INDEX_BYTES:
            raise RegistryError(f"registry {self.base}: {INDEX} is larger than {MAX_INDEX_BYTES >> 20} MiB")
        return Index.parse(data, self.url(INDEX))

    @contextlib.contextmanager
    def open(self, relpath: str) -> Iterator[tuple[IO[bytes], int | None]]:
        with self._urlopen(relpath) as resp:
            length = resp.headers.get("Content-Length")
            yield resp, int(length) if length and length.isdigit() else None


def open_registry(location: str | Path, timeout: float = DEFAULT_TIMEOUT) -> Registry:
    loc = str(location)
    if is_url(loc):
        return HttpRegistry(loc, timeout)
    if loc.startswith("file://"):
        loc = urllib.parse.unquote(urllib.parse.urlparse(loc).path)
    return FolderRegistry(Path(loc), timeout)


# --------------------------------------------------------------------------- host and compatibility


@dataclass
class HostInfo:
    """What decides whether a pack runs here: CPU flags, architecture, TVM version."""

    flags: set[str]
    machine: str
    tvm_version: str


def host_info() -> HostInfo:
    import tvm

    return HostInfo(flags=host_cpu_flags(), machine=platform.machine(), tvm_version=tvm.__version__)


def incompatibility(kind: str, target: str, host_features: list[str], tvm_target: str, tvm_version: str,
                    host: HostInfo, requested: str | None) -> str | None:
    """Why a pack cannot run here (``None``: it can); mirrors ``artifact.check_runnable_here``."""
    if tvm_version != host.tvm_version:
        return f"built with TVM {tvm_version}, this runtime has TVM {host.tvm_version}"
    if kind == "cuda":
        # GPU packs are matched by name only: CPU flags say nothing about the GPU.
        return None if target == requested else "a CUDA pack (ask for it with --target NAME)"
    if kind not in ("llvm", ""):
        return f"target kind {kind!r} is not runnable by this runtime"
    if "mtriple" in tvm_target and "x86_64" not in tvm_target:
        if not (host.machine in ("aarch64", "arm64") and "aarch64" in tvm_target):
            return "cross-compiled for another CPU architecture"
    if host.machine in ("x86_64", "AMD64"):
        missing = set(host_features) - host.flags
        if missing:
            return f"this CPU lacks {', '.join(sorted(missing))}"
    return None


@dataclass
class Selection:
    entry: PackEntry
    #: the pack's target is the one asked for (else: a compatible one)
    exact: bool
    #: packs of the model passed over, with the reason
    refused: list[str]


def select_pack(index: Index, model: str, target: str | None, batch: int | None, host: HostInfo,
                where: str = "registry") -> Selection:
    """The best pack of ``model`` for this host: the exact target first, then any compatible one.

    Among equals, the most specific target (most CPU features, i.e. the fastest
    code this CPU runs), then the requested or smallest batch, then the newest.
    """
    mine = [e for e in index.packs if e.model == model]
    if not mine:
        known = sorted({e.model for e in index.packs})
        raise RegistryError(f"{where} has no pack of model {model!r} (models: {', '.join(known) or 'none'})")
    if batch is not None:
        sized = [e for e in mine if e.batch == batch]
        if not sized:
            raise RegistryError(f"{where} has no pack of {model} at batch {batch} "
                                f"(batches: {', '.join(map(str, sorted({e.batch for e in mine})))})")
        mine = sized
    ok, refused = [], []
    for e in mine:
        why = incompatibility(e.kind, e.target, e.host_features, e.tvm_target, e.tvm_version, host, target)
        (refused.append(f"{e.target} b{e.batch}: {why}") if why else ok.append(e))
    if not ok:
        raise RegistryError(f"no pack of {model} in {where} runs here: {'; '.join(sorted(set(refused)))}")
    best = max(ok, key=lambda e: (e.target == target, len(e.host_features), -e.batch, e.created))
    return Selection(best, best.target == target, refused)


# --------------------------------------------------------------------------- download


def download(registry: Registry, entry: PackEntry, dest: Path, progress: bool = True) -> None:
    """Copy one pack to ``dest``, refusing a short, long or altered file (size and digest of the index)."""
    h = hashlib.sha256()
    got = 0
    from tqdm import tqdm

    with registry.open(entry.file) as (stream, length), open(dest, "wb") as out, \
            tqdm(total=entry.size, unit="B", unit_scale=True, unit_divisor=1024, desc=Path(entry.file).name,
                 disable=None if progress else True, leave=False) as bar:
        if length is not None and length < entry.size:
            raise RegistryError(f"truncated download of {entry.file}: the registry offers {length} bytes, "
                                f"the index says {entry.size}")
        while True:
            try:
                chunk = stream.read(min(CHUNK, entry.size - got + 1))
            except http.client.IncompleteRead as e:
                got += len(e.partial)
                raise RegistryError(f"truncated download of {entry.file}: got {got} of {entry.size} bytes") \
                    from None
            except (socket.timeout, TimeoutError):
                raise RegistryError(f"download of {entry.file} stalled: no data within {registry.timeout:g} s") \
                    from None
            except (OSError, http.client.HTTPException) as e:
                raise RegistryError(f"download of {entry.file} failed ({type(e).__name__}: {e})") from None
            if not chunk:
                break
            got += len(chunk)
            if got > entry.size:
                raise RegistryError(f"{entry.file} is larger than the {entry.size} bytes the index says; refusing it")
            h.update(chunk)
            out.write(chunk)
            bar.update(len(chunk))
    if got < entry.size:
        raise RegistryError(f"truncated download of {entry.file}: got {got} of {entry.size} bytes")
    digest = "sha256:" + h.hexdigest()
    if digest != entry.digest:
        raise RegistryError(f"{entry.file}: digest {digest[:19]}... does not match the index's "
                            f"{entry.digest[:19]}... (tampered or corrupt); refusing it")


# --------------------------------------------------------------------------- archives


def check_member_name(name: str, where: str) -> PurePosixPath:
    """A relative path with no ``..``, no absolute root and no backslashes, or a refusal."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise RegistryError(f"{where}: unsafe path {name!r} (absolute or malformed); refusing it")
    p = PurePosixPath(name)
    if any(part == ".." for part in p.parts) or not p.parts or p.parts == (".",):
        raise RegistryError(f"{where}: unsafe path {name!r} (leaves the folder); refusing it")
    return p


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


def parse_sums(text: str, where: str) -> dict[str, str]:
    """``sha256sum`` format: ``<64 hex>  <path>`` per line."""
    sums: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = re.match(r"^([0-9a-f]{64}) [ *](.+)$", line)
        if not m:
            raise RegistryError(f"{where}: {SUMS} line {n} is malformed")
        name = str(check_member_name(m.group(2), where))
        sums[name] = m.group(1)
    return sums


def format_sums(sums: dict[str, str]) -> str:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))


@dataclass
class Contents:
    """A safely extracted archive whose every file matched its SHA256SUMS line."""

    folder: Path
    sums: dict[str, str]
    #: pack.json or logs.json
    meta: dict
    kind: str


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
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                h = hashlib.sha256()
                with src, open(target, "xb") as out:
                    for chunk in iter(lambda: src.read(CHUNK), b""):
                        h.update(chunk)
                        out.write(chunk)
                written[str(p)] = h.hexdigest()
            # tarfile stops at the end-of-archive block; reading on makes gzip check its CRC and length
            while tar.fileobj.read(CHUNK):
                pass
    except RegistryError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise RegistryError(f"{where}: corrupt or truncated archive ({type(e).__name__}: {e})") from None
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
    for meta_name, kind in ((PACK_META, PACK_KIND), (LOGS_META, LOGS_KIND)):
        if meta_name in sums:
            meta = read_json(root / meta_name, RegistryError, "pack description")
            if not isinstance(meta, dict) or meta.get("kind") != kind:
                raise RegistryError(f"{where}: {meta_name} is not an {kind} description")
            if meta.get("format") != PACK_FORMAT:
                raise RegistryError(f"{where}: format {meta.get('format')!r}, this tool reads {PACK_FORMAT}")
            return Contents(dest, sums, meta, kind)
    raise RegistryError(f"{where}: neither {PACK_META} nor {LOGS_META}; not an alexnet-tvm archive")


@dataclass
class PackInfo:
    """A checked, extracted pack: its artifact manifest is what the index entry must agree with."""

    contents: Contents
    manifest: dict

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
        return f"{TUNING_DIR}/database_tuning_record.json" in self.contents.sums

    def verify_report(self) -> dict | None:
        path = self.folder / VERIFY_REPORT
        return json.loads(path.read_text()) if path.is_file() else None

    def entry(self, digest: str, size: int, file: str) -> PackEntry:
        t = self.target
        return PackEntry(model=self.model, target=str(t.get("name")), batch=self.batch,
                         tvm_version=str(self.manifest["tvm_version"]), digest=digest, size=size,
                         created=str(self.meta.get("created", "")), file=file, kind=str(t.get("kind", "")),
                         host_features=list(t.get("host_features") or []),
                         tvm_target=str(t.get("tvm_target", "")), verify=verify_summary(self.verify_report()),
                         published=utc_now())


def open_pack(archive: Path, dest: Path, label: str | None = None) -> PackInfo:
    """Extract and check a pack: archive sums, then the artifact's own manifest checksums."""
    where = label or str(archive)
    contents = extract_archive(archive, dest, where)
    if contents.kind != PACK_KIND:
        raise RegistryError(f"{where}: a tuning-log archive, not a pack")
    for name in (LIB, PARAMS, MANIFEST):
        if name not in contents.sums:
            raise RegistryError(f"{where}: the pack has no {name}")
    try:
        manifest = read_manifest(contents.folder)
        if not isinstance(manifest["files"], dict):
            raise ArtifactError("manifest 'files' is not a mapping")
        for name in manifest["files"]:  # checked before check_files opens them
            check_member_name(name, f"{where}: manifest")
        check_files(contents.folder, manifest)
    except ArtifactError as e:
        raise RegistryError(f"{where}: {str(e).replace(str(contents.folder), 'pack')}") from None
    model = manifest.get("model", {}).get("name")
    safe_component(model, f"{where}: model name")
    safe_component(manifest["target"].get("name"), f"{where}: target name")
    return PackInfo(contents, manifest)


# --------------------------------------------------------------------------- pull


@dataclass
class PullConfig:
    model: str
    registry: str
    #: the local target's name (``--target`` resolved); ``None``: any compatible pack
    target: str | None = None
    batch: int | None = None
    out: Path | None = None
    force: bool = False
    timeout: float = DEFAULT_TIMEOUT
    progress: bool = True
    #: for tests; default: this machine
    host: HostInfo | None = None


@dataclass
class PullResult:
    out: Path
    entry: PackEntry
    exact: bool
    refused: list[str]


def default_pull_dir(entry: PackEntry) -> Path:
    return Path("artifacts") / f"{entry.model}-{entry.target}-b{entry.batch}"


def pull(cfg: PullConfig) -> PullResult:
    """Pick, download, check and install one pack as an artifact folder (all or nothing)."""
    registry = open_registry(cfg.registry, cfg.timeout)
    index = registry.read_index()
    host = cfg.host or host_info()
    sel = select_pack(index, cfg.model, cfg.target, cfg.batch, host, where=f"registry {registry.location}")
    e = sel.entry
    if cfg.target and not sel.exact:
        log.info("no usable %s pack of %s; taking the compatible %s", cfg.target, cfg.model, e.target)
    out = Path(cfg.out) if cfg.out else default_pull_dir(e)
    refuse_existing(out, cfg.force)
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-pull-") as tmp:
        archive = Path(tmp) / "pack.tar.gz"
        download(registry, e, archive, cfg.progress)
        with atomic_dir(out, force=cfg.force) as folder:
            folder.rmdir()  # extract_archive creates it, refusing anything already there
            info = open_pack(archive, folder, label=f"pack {e.file}")
            _check_entry_matches(e, info)
            t = info.target
            why = incompatibility(str(t.get("kind", "")), str(t.get("name")), list(t.get("host_features") or []),
                                  str(t.get("tvm_target", "")), str(info.manifest["tvm_version"]), host, cfg.target)
            if why:
                raise RegistryError(f"pack {e.file}: {why}; refusing it")
    log.info("pulled %s into %s", e.label(), out)
    return PullResult(out, e, sel.exact, sel.refused)


def _check_entry_matches(e: PackEntry, info: PackInfo) -> None:
    """The index chose the pack; the pack's manifest must say the same, or the index lies."""
    pairs = (("model", e.model, info.model), ("target", e.target, info.target.get("name")),
             ("batch", e.batch, info.batch), ("TVM version", e.tvm_version, info.manifest["tvm_version"]))
    for what, said, found in pairs:
        if said != found:
            raise RegistryError(f"pack {e.file}: the index says {what} {said!r}, the pack's manifest {found!r}; "
                                "refusing it")


# --------------------------------------------------------------------------- serving


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files of the registry folder; ``PUT /publish`` when the server allows uploads."""

    server: "RegistryServer"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
        log.info("%s %s", self.address_string(), format % args)

    def _hidden(self) -> bool:
        path = urllib.parse.urlsplit(self.path).path
        return any(part.startswith(".") for part in urllib.parse.unquote(path).split("/") if part)

    def do_GET(self) -> None:
        if self._hidden():
            self.send_error(404)
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        if self._hidden():
            self.send_error(404)
            return
        super().do_HEAD()

    def _reply(self, code: int, obj: dict) -> None:
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse_upload(self, code: int, msg: str, length: int) -> None:
        """Read the body before answering: a client still sending would see a broken pipe, not ``msg``."""
        left = length if length <= self.server.max_upload else 0
        while left > 0:
            chunk = self.rfile.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
        self.close_connection = True
        self._reply(code, {"error": msg})

    def do_PUT(self) -> None:
        srv = self.server
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self.close_connection = True
            self._reply(411, {"error": "an upload needs a Content-Length"})
            return
        n = int(length)
        if urllib.parse.urlsplit(self.path).path != "/publish":
            self._refuse_upload(404, f"no such upload endpoint {self.path} (PUT /publish)", n)
            return
        if srv.on_publish is None:
            self._refuse_upload(405, "this registry does not accept uploads (serve it with --allow-publish)", n)
            return
        if n > srv.max_upload:
            self._refuse_upload(413, f"pack of {n} bytes exceeds the {srv.max_upload} byte limit", n)
            return
        with tempfile.TemporaryDirectory(prefix="alexnet-tvm-upload-") as tmp:
            path = Path(tmp) / "upload.tar.gz"
            got = 0
            with open(path, "wb") as f:
                while got < n:
                    chunk = self.rfile.read(min(CHUNK, n - got))
                    if not chunk:
                        break
                    f.write(chunk)
                    got += len(chunk)
            if got < n:
                self._reply(400, {"error": f"truncated upload: got {got} of {n} bytes"})
                return
            try:
                entry = srv.on_publish(path)
            except RegistryError as e:
                self._reply(400, {"error": str(e).replace(str(path), "the uploaded pack")})  # no server paths
                return
            except Exception as e:  # the registry must keep serving whatever one upload did
                log.exception("publish failed")
                self._reply(500, {"error": f"{type(e).__name__}: {e}"})
                return
        self._reply(201, entry.to_dict())


class RegistryServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path, host: str, port: int, on_publish: Callable[[Path], PackEntry] | None,
                 max_upload: int):
        self.folder = Path(folder)
        self.on_publish = on_publish
        self.max_upload = max_upload
        super().__init__((host, port), functools.partial(_Handler, directory=str(self.folder)))

    def handle_error(self, request, client_address) -> None:
        """A client that hung up (e.g. a pull refusing a short file) is routine, not a traceback."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address, exc)
        else:
            log.exception("request from %s failed", client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_background(self) -> threading.Thread:
        """Serve from a daemon thread (tests, embedding); stop with ``shutdown()``."""
        t = threading.Thread(target=self.serve_forever, name="alexnet-tvm-registry", daemon=True)
        t.start()
        return t


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 8000,
                on_publish: Callable[[Path], PackEntry] | None = None,
                max_upload: int = MAX_EXTRACT_BYTES) -> RegistryServer:
    """An HTTP server for a registry folder; ``on_publish`` (e.g. ``compile.pack.publish_to_folder``
    bound to the folder) enables ``PUT /publish``. Port 0 picks a free port."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RegistryError(f"{folder}: no such registry folder")
    try:
        return RegistryServer(folder, host, port, on_publish, max_upload)
    except OSError as e:
        raise RegistryError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None


__all__ = [
    "Contents", "FolderRegistry", "HostInfo", "HttpRegistry", "Index", "PackEntry", "PackInfo", "PullConfig",
    "PullResult", "Registry", "RegistryServer", "Selection", "default_pull_dir", "download", "extract_archive",
    "format_sums", "host_cpu_flags", "host_info", "incompatibility", "is_url", "make_server", "open_pack",
    "open_registry", "parse_sums", "pull", "safe_component", "select_pack", "sha256_digest", "verify_summary",
]
