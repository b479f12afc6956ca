"""``registry serve``: a registry folder over HTTP, with ``PUT /publish`` when uploads are allowed.

Uploads are published through the folder's own :class:`FolderRegistry`, with
the same checks and lock as a local ``publish``, so an HTTP registry and a
shared folder can be written at once. Uploads need the bearer token the server
was started with. Hidden files (the lock, uploads in progress) and folder
listings are never served. Every connection has a read timeout and at most
``max_connections`` are served at once (the rest get 503), so stalled clients
cannot hold every thread.
"""

from __future__ import annotations

import functools
import hmac
import http.server
import json
import logging
import os
import sys
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from alexnet_tvm.errors import RegistryError, ToolkitError

from .archive import CHUNK, MAX_EXTRACT_BYTES
from .registry import FolderRegistry

log = logging.getLogger(__name__)

#: where ``registry serve`` and ``publish`` read the upload token when no --token-file is given
TOKEN_ENV = "ALEXNET_TVM_TOKEN"


def read_token(token_file: Path | None) -> str | None:
    """The upload token: the first line of ``token_file``, else ``$ALEXNET_TVM_TOKEN``, else ``None``.

    Never a command-line value: other users of the machine can read a process's arguments.
    """
    if token_file is None:
        return os.environ.get(TOKEN_ENV) or None
    try:
        token = Path(token_file).read_text().strip().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RegistryError(f"{token_file}: unreadable token file ({e})") from None
    if not token or not token[0].strip():
        raise RegistryError(f"{token_file}: empty token file")
    return token[0].strip()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files of the registry folder; ``PUT /publish`` when the server allows uploads."""

    server: "RegistryServer"

    def setup(self) -> None:
        self.timeout = self.server.read_timeout  # StreamRequestHandler applies it to the socket
        super().setup()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
        log.info("%s %s", self.address_string(), format % args)

    def _refused_path(self) -> int | None:
        """404 for hidden files, 400 for a path no file can have (a NUL byte); ``None``: serve it."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if "\x00" in path:
            return 400
        return 404 if any(part.startswith(".") for part in path.split("/") if part) else None

    def do_GET(self) -> None:
        self._serve_file(super().do_GET)

    def do_HEAD(self) -> None:
        self._serve_file(super().do_HEAD)

    def _serve_file(self, serve) -> None:
        code = self._refused_path()
        if code:
            self.send_error(code)
        else:
            serve()

    def list_directory(self, path):  # noqa: ANN001 (http.server's signature)
        """No folder listings: a registry is read through its index."""
        self.send_error(404)
        return None

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

    def _upload_length(self) -> int | None:
        """The announced size of an acceptable upload; ``None`` once the upload was refused."""
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self.close_connection = True
            self._reply(411, {"error": "an upload needs a Content-Length"})
            return None
        n = int(length)
        srv = self.server
        if urllib.parse.urlsplit(self.path).path != "/publish":
            self._refuse_upload(404, f"no such upload endpoint {self.path} (PUT /publish)", n)
        elif srv.registry is None:
            self._refuse_upload(405, "this registry does not accept uploads (serve it with --allow-publish)", n)
        elif not srv.authorized(self.headers.get("Authorization", "")):
            self._refuse_upload(401, "uploads need the server's bearer token (publish --token-file FILE or "
                                     f"${TOKEN_ENV})", n)
        elif n > srv.max_upload:
            self._refuse_upload(413, f"pack of {n} bytes exceeds the {srv.max_upload} byte limit", n)
        else:
            return n
        return None

    def _receive(self, path: Path, n: int) -> int:
        """Up to ``n`` body bytes into ``path``; returns how many came."""
        got = 0
        with open(path, "wb") as f:
            while got < n:
                chunk = self.rfile.read(min(CHUNK, n - got))
                if not chunk:
                    break
                f.write(chunk)
                got += len(chunk)
        return got

    def _publish(self, path: Path) -> None:
        """Publish the received pack and answer with its entry, or with why not (no server paths)."""
        try:
            entry = self.server.registry.publish(path)
        except ToolkitError as e:  # every malformed pack is the client's fault: 4xx, with the CLI's line
            self._reply(400, {"error": str(e).replace(str(path), "the uploaded pack")})
            return
        except Exception as e:  # the registry must keep serving whatever one upload did
            log.exception("publish failed")
            self._reply(500, {"error": f"{type(e).__name__}: {e}"})
            return
        self._reply(201, entry.to_dict())

    def do_PUT(self) -> None:
        n = self._upload_length()
        if n is None:
            return
        with tempfile.TemporaryDirectory(prefix="alexnet-tvm-upload-") as tmp:
            path = Path(tmp) / "upload.tar.gz"
            got = self._receive(path, n)
            if got < n:
                self._reply(400, {"error": f"truncated upload: got {got} of {n} bytes"})
                return
            self._publish(path)


@dataclass
class ServeLimits:
    """What one client may hold: seconds a read may stall, connections at once, upload bytes."""

    read_timeout: float = 30.0
    max_connections: int = 32
    max_upload: int = MAX_EXTRACT_BYTES


class RegistryServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path, host: str, port: int, token: str | None, limits: ServeLimits):
        self.folder = Path(folder)
        #: where uploads are published; ``None``: read-only
        self.registry = FolderRegistry(self.folder) if token else None
        self._token = token
        self.read_timeout = limits.read_timeout
        self.max_upload = limits.max_upload
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        super().__init__((host, port), functools.partial(_Handler, directory=str(self.folder)))

    def authorized(self, header: str) -> bool:
        return bool(self._token) and hmac.compare_digest(header.encode(), f"Bearer {self._token}".encode())

    def process_request(self, request, client_address) -> None:
        """A thread per connection while a slot is free; otherwise a 503 and the connection closed."""
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        """A client that hung up (e.g. a pull refusing a short file) is routine, not a traceback."""
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


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 8000, allow_publish: bool = False,
                token: str | None = None, limits: ServeLimits | None = None) -> RegistryServer:
    """An HTTP server for a registry folder; ``allow_publish`` enables ``PUT /publish`` for clients that
    send ``token`` as a bearer token (required). Port 0 picks a free port."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RegistryError(f"{folder}: no such registry folder")
    if allow_publish and not token:
        raise RegistryError(f"--allow-publish needs a bearer token (--token-file FILE or ${TOKEN_ENV}): "
                            "anyone who can reach the server could publish otherwise")
    try:
        return RegistryServer(folder, host, port, token if allow_publish else None, limits or ServeLimits())
    except OSError as e:
        raise RegistryError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
