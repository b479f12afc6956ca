"""``registry serve``: a registry folder over HTTP, with ``PUT /publish`` when uploads are allowed.

Uploads are published through the folder's own :class:`FolderRegistry`, with
the same checks and lock as a local ``publish``, so an HTTP registry and a
shared folder can be written at once. Uploads need the bearer token the server
was started with. Hidden files (the lock, uploads in progress) and folder
listings are never served. Every request has a deadline in all (``read_timeout``
for its request line and headers, more per byte for a body or a file sent), and at
most ``max_connections`` are served at once (the rest get 503), so slow or stalled
clients cannot hold every thread. An upload the server refuses (no token, too
large) is answered on its headers, and its body is never read.
``registry serve`` stops cleanly on Ctrl-C or SIGTERM (:func:`serve_until_stopped`).
"""

from __future__ import annotations

import functools
import hmac
import http.server
import json
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from alexnet_tvm.errors import RegistryError, ToolkitError

from .archive import CHUNK, MAX_EXTRACT_BYTES
from .httpclient import deadline_for
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


class _Watchdog:
    """Shuts a connection's socket down when its deadline passes, which ends a blocked read or write
    at once whatever the client sends (a socket timeout bounds each recv: one byte a second never trips it)."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._timer: threading.Timer | None = None
        self.expired = False
        #: what the deadline was for, and how long it was (for the log line)
        self.what, self.seconds = "request", 0.0

    def arm(self, seconds: float, what: str) -> None:
        self.cancel()
        self.what, self.seconds = what, seconds
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self.expired = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files of the registry folder; ``PUT /publish`` when the server allows uploads."""

    server: "RegistryServer"

    def setup(self) -> None:
        self.timeout = self.server.read_timeout  # StreamRequestHandler applies it to the socket
        super().setup()
        self._watch = _Watchdog(self.connection)

    def handle_one_request(self) -> None:
        """One request under a deadline: ``read_timeout`` for the request line and headers in all
        (re-armed for a body or a file sent); past it the connection is closed, the slot freed."""
        watch = self._watch
        watch.arm(self.server.read_timeout, "request line and headers")
        try:
            super().handle_one_request()
        finally:
            watch.cancel()
            if watch.expired:
                self.close_connection = True
                log.info("%s: %s not done within %g s; connection closed", self.address_string(), watch.what,
                         watch.seconds)

    def parse_request(self) -> bool:
        """http.server's parsing, unless the deadline cut the request short (a partial line is no request)."""
        if self._watch.expired or not super().parse_request():
            return False
        return not self._watch.expired

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
            return
        path = self.translate_path(self.path)
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        self._watch.arm(deadline_for(self.server.read_timeout, size), f"sending {size} bytes")
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
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _refuse_upload(self, code: int, msg: str) -> None:
        """Answer on the headers and hang up, never reading the body: a client without the token must not
        make the server read 300 MiB first (``publish`` reads the answer even though its send failed)."""
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
            self._refuse_upload(404, f"no such upload endpoint {self.path} (PUT /publish)")
        elif srv.registry is None:
            self._refuse_upload(405, "this registry does not accept uploads (serve it with --allow-publish)")
        elif not srv.authorized(self.headers.get("Authorization", "")):
            self._refuse_upload(401, "uploads need the server's bearer token (publish --token-file FILE or "
                                     f"${TOKEN_ENV})")
        elif n > srv.max_upload:
            self._refuse_upload(413, f"pack of {n} bytes exceeds the {srv.max_upload} byte limit")
        else:
            return n
        return None

    def _receive(self, path: Path, n: int) -> int:
        """Up to ``n`` body bytes into ``path``; returns how many came before the client hung up or stalled."""
        got = 0
        with open(path, "wb") as f:
            while got < n:
                try:
                    chunk = self.rfile.read(min(CHUNK, n - got))
                except OSError:  # reset by the client, a stalled read, or the deadline's shutdown
                    break
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
            self._reply(400, {"error": self.server.public(str(e), path)})
            return
        except Exception:  # the registry must keep serving whatever one upload did
            log.exception("publish failed")
            self._reply(500, {"error": "the registry failed to publish the pack (its log says why)"})
            return
        self._reply(201, entry.to_dict())

    def do_PUT(self) -> None:
        n = self._upload_length()
        if n is None:
            return
        self._watch.arm(deadline_for(self.server.read_timeout, n), f"upload of {n} bytes")
        with tempfile.TemporaryDirectory(prefix="alexnet-tvm-upload-") as tmp:
            path = Path(tmp) / "upload.tar.gz"
            got = self._receive(path, n)
            self._watch.cancel()  # publishing is the server's own work
            if got < n:  # nobody is left to answer: one log line, no reply, nothing published
                self.close_connection = True
                why = "ran out of time" if self._watch.expired else "hung up or stalled"
                log.info("%s: upload ended after %d of %d bytes (the client %s); nothing published",
                         self.address_string(), got, n, why)
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

    def public(self, msg: str, upload: Path) -> str:
        """``msg`` as a client may read it: no path of this machine (the upload is "the uploaded pack",
        the registry folder "the registry", anything else in the temp folder "a temporary file")."""
        msg = msg.replace(str(upload), "the uploaded pack")
        for folder in sorted({str(self.folder.resolve()), str(self.folder)}, key=len, reverse=True):
            msg = msg.replace(f"registry {folder}", "the registry").replace(folder, "the registry")
        tmp = re.escape(tempfile.gettempdir().rstrip("/"))
        return re.sub(tmp + r"/[^\s:'\",)]*", "a temporary file", msg)

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


def serve_until_stopped(server: RegistryServer) -> None:
    """Serve until Ctrl-C or SIGTERM; either way the listening socket is closed and one line logged.

    SIGTERM (``docker stop``, systemd, ``kill``) asks ``serve_forever`` to return, from a
    thread (``shutdown`` waits for the loop, which the handler would be interrupting);
    the previous handler is restored when serving ends.
    """
    stop = threading.Event()

    def on_sigterm(signum, frame) -> None:  # noqa: ANN001 (signal's signature)
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, name="alexnet-tvm-registry-stop", daemon=True).start()

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main else None
    how = "shut down"
    try:
        server.serve_forever()
        if stop.is_set():
            how = "SIGTERM"
    except KeyboardInterrupt:
        how = "interrupted"
    finally:
        if in_main:  # None: a handler not set from Python; the default is the nearest
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        server.server_close()
    log.info("registry at %s stopped (%s)", server.url, how)


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
