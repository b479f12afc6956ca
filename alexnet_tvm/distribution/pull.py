"""``pull``: pick the best pack for this host, download it, check it, install it as an artifact folder.

This is what a deployment machine runs, so it needs only the TVM runtime, numpy
and pillow. Nothing is trusted: the download must match the index's size and
digest, the archive its SHA256SUMS, the artifact its manifest, and the manifest
must say what the index said and be runnable here, all in a temporary folder
that is renamed into place only once everything passed.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from alexnet_tvm.errors import RegistryError
from alexnet_tvm.fsutil import atomic_dir, refuse_existing
from alexnet_tvm.runtime.compat import HostInfo, host_info
from alexnet_tvm.settings import default_artifact_dir

from .archive import CHUNK
from .index import PackEntry, incompatibility, select_pack
from .pack import PackInfo, open_pack
from .signing import Trust
from .registry import DEFAULT_TIMEOUT, Registry, open_registry

log = logging.getLogger(__name__)

#: ``pull --max-pack-mb``: the largest pack a pull downloads (an index may claim anything)
DEFAULT_MAX_PACK_MB = 2048


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
    #: the keys a pack must be signed with (``--trust``); ``None``: unsigned packs are accepted
    trust: Trust | None = None
    #: for tests; default: this machine
    host: HostInfo | None = None
    #: the largest pack downloaded, in MiB (``--max-pack-mb``): a larger index entry is refused unread
    max_pack_mb: int = DEFAULT_MAX_PACK_MB


@dataclass
class PullResult:
    out: Path
    entry: PackEntry
    exact: bool
    refused: list[str]


def pull(cfg: PullConfig) -> PullResult:
    """Pick, download, check and install one pack as an artifact folder (all or nothing)."""
    registry = open_registry(cfg.registry, cfg.timeout)
    index = registry.read_index()
    host = cfg.host or host_info()
    sel = select_pack(index, cfg.model, cfg.target, cfg.batch, host, where=f"registry {registry.location}")
    e = sel.entry
    if cfg.target and not sel.exact:
        log.info("no usable %s pack of %s; taking the compatible %s", cfg.target, cfg.model, e.target)
    out = Path(cfg.out) if cfg.out else default_artifact_dir(e.model, e.target, e.batch)
    refuse_existing(out, cfg.force)
    if e.size > cfg.max_pack_mb << 20:
        raise RegistryError(f"pack {e.file}: the index says {e.size} bytes ({e.size >> 20} MiB), more than "
                            f"--max-pack-mb {cfg.max_pack_mb} allows; refusing it before downloading")
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-pull-") as tmp:
        archive = Path(tmp) / "pack.tar.gz"
        download(registry, e, archive, cfg.progress)
        with atomic_dir(out, force=cfg.force) as folder:
            folder.rmdir()  # extract_archive creates it, refusing anything already there
            info = open_pack(archive, folder, label=f"pack {e.file}", trust=cfg.trust)
            _check_entry_matches(e, info)
            why = incompatibility(info.target, str(info.manifest["tvm_version"]), host, cfg.target)
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


def _read_chunk(stream: IO[bytes], n: int, entry: PackEntry, got: int, timeout: float) -> bytes:
    """Up to ``n`` bytes of the download; a cut, stalled or failed transfer is one refusal line."""
    try:
        return stream.read(n)
    except RegistryError as e:  # the bounded HTTP client's own failures (deadline, reset)
        raise RegistryError(f"download of {entry.file} failed: {e}") from None
    except http.client.IncompleteRead as e:
        raise RegistryError(f"truncated download of {entry.file}: got {got + len(e.partial)} of {entry.size} "
                            "bytes") from None
    except (socket.timeout, TimeoutError):
        raise RegistryError(f"download of {entry.file} stalled: no data within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as e:
        raise RegistryError(f"download of {entry.file} failed ({type(e).__name__}: {e})") from None


def download(registry: Registry, entry: PackEntry, dest: Path, progress: bool = True) -> None:
    """Copy one pack to ``dest``, refusing a short, long or altered file (size and digest of the index)."""
    from tqdm import tqdm

    h = hashlib.sha256()
    got = 0
    with registry.open(entry.file, entry.size) as (stream, length), open(dest, "wb") as out, \
            tqdm(total=entry.size, unit="B", unit_scale=True, unit_divisor=1024, desc=Path(entry.file).name,
                 disable=None if progress else True, leave=False) as bar:
        if length is not None and length != entry.size:
            raise RegistryError(f"{entry.file}: the registry offers {length} bytes, the index says {entry.size}"
                                + ("" if length > entry.size else " (truncated)") + "; refusing it")
        while chunk := _read_chunk(stream, min(CHUNK, entry.size - got + 1), entry, got, registry.timeout):
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
