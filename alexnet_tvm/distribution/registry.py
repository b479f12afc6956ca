"""Registries: where packs are read from and published to, a folder or an HTTP(S) base URL.

One interface (:class:`Registry`: ``read_index``, ``open``, ``publish``) whichever
the location, so ``pull``, ``publish``, ``registry list`` and the HTTP server never
ask which kind they hold. Publishing to a folder serialises writers with an
``fcntl.flock`` on a lock file and replaces ``index.json`` by rename, so
concurrent publishers never lose an entry and readers never see half an index;
publishing over HTTP uploads to ``registry serve --allow-publish``, which then
publishes to its folder the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import IO, Iterator

from alexnet_tvm.errors import RegistryError
from alexnet_tvm.fsutil import atomic_path, write_json

from .archive import CHUNK, check_member_name, sha256_digest, utc_now
from .httpclient import BoundedRequest, HttpRefused, check_url, deadline_for
from .index import INDEX, Index, PackEntry
from .pack import open_pack

log = logging.getLogger(__name__)

#: seconds a request may take (a pack download gets more per byte, see ``httpclient.deadline_for``)
DEFAULT_TIMEOUT = 10.0
#: seconds an upload may take
DEFAULT_PUBLISH_TIMEOUT = 60.0
MAX_INDEX_BYTES = 16 << 20
LOCK_FILE = ".index.lock"
DEFAULT_LOCK_TIMEOUT = 30.0

_UPLOAD_HINT = "does it accept uploads (`alexnet-tvm registry serve --allow-publish`)?"


#: ``scheme://``: a location that is a URL, not a folder
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location: str) -> bool:
    return str(location).lower().startswith(("http://", "https://"))


def _no_such_pack(pack: Path) -> Path:
    pack = Path(pack)
    if not pack.is_file():
        raise RegistryError(f"{pack}: no such pack")
    return pack


class Registry:
    """Where packs come from and go to. Subclasses open files by their index-relative path."""

    location: str
    timeout: float

    def read_index(self) -> Index:
        raise NotImplementedError

    def open(self, relpath: str, size: int = 0) -> contextlib.AbstractContextManager[tuple[IO[bytes], int | None]]:
        """A readable stream of one registry file and its length, if known (``size``: what the index
        says, which sets a download's deadline)."""
        raise NotImplementedError

    def publish(self, pack: Path) -> PackEntry:
        """Check ``pack`` and add it to the index; re-publishing a pack is a no-op. Returns its entry."""
        raise NotImplementedError


# --------------------------------------------------------------------------- folder


class FolderRegistry(Registry):
    def __init__(self, folder: Path, timeout: float = DEFAULT_TIMEOUT,
                 lock_timeout: float = DEFAULT_LOCK_TIMEOUT):
        self.folder = Path(folder)
        self.location = str(folder)
        self.timeout = timeout
        self.lock_timeout = lock_timeout

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
    def open(self, relpath: str, size: int = 0) -> Iterator[tuple[IO[bytes], int | None]]:
        path = self.path_of(relpath)
        try:
            f = open(path, "rb")
        except OSError as e:
            raise RegistryError(f"registry {self.folder}: cannot read {relpath} ({e.strerror})") from None
        with f:
            yield f, path.stat().st_size

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive access to the index, waiting at most ``lock_timeout`` seconds.

        ``flock`` is released by the kernel when the holder dies, so a crashed
        publisher never leaves the registry locked.
        """
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise RegistryError(f"registry {self.folder} is busy: another publisher has held its lock "
                                            f"for {self.lock_timeout:g} s; nothing was published, try again") \
                            from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def publish(self, pack: Path) -> PackEntry:
        """Add a checked pack (the folder is created if absent).

        The pack is copied under ``packs/`` before the index names it, so the index
        never points at a missing or partial file.
        """
        pack = _no_such_pack(pack)
        with tempfile.TemporaryDirectory(prefix="alexnet-tvm-publish-") as tmp:
            info = open_pack(pack, Path(tmp) / "pack")
            digest, size = sha256_digest(pack), pack.stat().st_size
            entry = info.entry(digest, size, "")
        entry.file = entry.pack_file_name()
        if self.folder.exists() and not self.folder.is_dir():
            raise RegistryError(f"registry {self.folder}: not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.lock():
            index = self.read_index() if (self.folder / INDEX).exists() else Index()
            entry.published = utc_now()
            self._store(pack, entry)
            index.packs = [p for p in index.packs if p.digest != digest] + [entry]
            write_json(self.folder / INDEX, index.to_dict())
        log.info("published %s to %s", entry.label(), self.folder)
        return entry

    def _store(self, pack: Path, entry: PackEntry) -> None:
        """Copy ``pack`` to ``entry.file`` unless that holds it already; the copy must have the entry's digest."""
        dest = self.folder / entry.file
        if dest.is_file() and sha256_digest(dest) == entry.digest:
            return
        with atomic_path(dest) as tmp_file, open(pack, "rb") as src, open(tmp_file, "wb") as dst:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                dst.write(chunk)
        if sha256_digest(dest) != entry.digest:  # the source changed while we copied it
            raise RegistryError(f"{pack}: changed while being published; try again")


# --------------------------------------------------------------------------- HTTP


class HttpRegistry(Registry):
    """A registry at an HTTP(S) base URL; every request has an overall deadline (see ``httpclient``)."""

    def __init__(self, base: str, timeout: float = DEFAULT_TIMEOUT, token: str | None = None):
        check_url(base)
        self.base = base.rstrip("/")
        self.location = self.base
        self.timeout = timeout
        #: the bearer token ``registry serve --allow-publish`` requires for uploads
        self.token = token

    def url(self, relpath: str) -> str:
        return f"{self.base}/{urllib.parse.quote(relpath)}"

    @contextlib.contextmanager
    def _request(self, relpath: str, size: int = 0, **kw) -> Iterator[BoundedRequest]:
        """One request; an unreachable, slow or refusing server is one line naming the registry."""
        req = BoundedRequest(self.url(relpath), self.timeout, deadline_for(self.timeout, size), **kw)
        try:
            with req:
                yield req
        except HttpRefused as e:
            raise RegistryError(f"registry {self.base}: {relpath}: HTTP {e.code} {e.reason}") from None
        except RegistryError as e:
            if isinstance(e, _Passed):
                raise
            raise RegistryError(f"registry {self.base} unreachable: {e}") from None

    def read_index(self) -> Index:
        with self._request(INDEX) as req:
            data = req.read_all(MAX_INDEX_BYTES)
        return Index.parse(data, self.url(INDEX))

    @contextlib.contextmanager
    def open(self, relpath: str, size: int = 0) -> Iterator[tuple[IO[bytes], int | None]]:
        with self._request(relpath, size) as req:
            try:
                yield req, req.length
            except RegistryError as e:  # the caller's own refusal (a short or altered file) passes unchanged
                raise _Passed(str(e)) from None

    def publish(self, pack: Path) -> PackEntry:
        """Upload to ``registry serve --allow-publish``; the server checks it as a folder publish would."""
        body = self._upload(_no_such_pack(pack))
        try:
            return PackEntry.from_dict(json.loads(body), f"registry {self.base} answer")
        except ValueError:
            raise RegistryError(f"registry {self.base}: unreadable answer to the upload") from None

    def _upload(self, pack: Path) -> bytes:
        """PUT the pack to ``/publish``; the server's answer, or one line saying why not."""
        size = pack.stat().st_size
        headers = {"Content-Length": str(size), "Content-Type": "application/gzip"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        with open(pack, "rb") as f:
            req = BoundedRequest(f"{self.base}/publish", self.timeout, deadline_for(self.timeout, size),
                                 method="PUT", body=f, headers=headers)
            try:
                with req:
                    return req.read_all(1 << 20)
            except HttpRefused as e:
                hint = " (is it `alexnet-tvm registry serve --allow-publish`?)" if e.code == 501 else ""
                raise RegistryError(f"registry {self.base} refused the pack: HTTP {e.code}: {e.reason}{hint}") \
                    from None
            except RegistryError as e:
                if any(w in str(e) for w in ("BrokenPipe", "ConnectionReset")):
                    raise RegistryError(f"registry {self.base} hung up during the upload ({e}); {_UPLOAD_HINT}") \
                        from None
                raise RegistryError(f"registry {self.base} unreachable: {e}") from None


class _Passed(RegistryError):
    """A refusal raised by whoever reads an open registry file: not the registry's failure."""


def open_registry(location: str | Path, timeout: float = DEFAULT_TIMEOUT,
                  lock_timeout: float = DEFAULT_LOCK_TIMEOUT, token: str | None = None) -> Registry:
    """The registry at a folder, a ``file://`` URL or an ``http(s)://`` base URL (checked by
    :func:`~.httpclient.check_url`: a malformed URL is one line, before any request)."""
    loc = str(location)
    if is_url(loc):
        return HttpRegistry(loc, timeout, token)
    if loc.lower().startswith("file://"):
        loc = urllib.parse.unquote(urllib.parse.urlsplit(loc).path)
    elif _SCHEME.match(loc):  # ftp://..., s3://...: never a folder named "ftp:"
        check_url(loc)
    return FolderRegistry(Path(loc), timeout, lock_timeout)


def publish(pack: Path, to: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
            timeout: float = DEFAULT_PUBLISH_TIMEOUT, token: str | None = None) -> PackEntry:
    """Publish to a folder or an HTTP(S) registry (``token``: the server's bearer token)."""
    return open_registry(to, timeout, lock_timeout, token).publish(pack)
