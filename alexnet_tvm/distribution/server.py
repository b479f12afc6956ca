"""``registry serve``: a registry folder over HTTP, with ``PUT /publish`` when uploads are allowed.

Uploads are published through the folder's own :class:`FolderRegistry`, with
the same checks and lock as a local ``publish``, so an HTTP registry and a
shared folder can be written at once. Hidden files (the lock, uploads in
progress) are never served.
"""

from __future__ import annotations

import functools
import http.server
import json
import logging
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

from alexnet_tvm.errors import RegistryError

from .archive import CHUNK, MAX_EXTRACT_BYTES
from .registry import FolderRegistry

log = logging.getLogger(__name__)


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
        except RegistryError as e:
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


class RegistryServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path, host: str, port: int, allow_publish: bool, max_upload: int):
        self.folder = Path(folder)
        #: where uploads are published; ``None``: read-only
        self.registry = FolderRegistry(self.folder) if allow_publish else None
        self.max_upload = max_upload
        super().__init__((host, port), functools.partial(_Handler, directory=str(self.folder)))

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
                max_upload: int = MAX_EXTRACT_BYTES) -> RegistryServer:
    """An HTTP server for a registry folder; ``allow_publish`` enables ``PUT /publish``. Port 0 picks a free port."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RegistryError(f"{folder}: no such registry folder")
    try:
        return RegistryServer(folder, host, port, allow_publish, max_upload)
    except OSError as e:
        raise RegistryError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
