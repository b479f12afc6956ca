"""One HTTP request with an overall deadline: connect, headers and body together.

A socket timeout bounds each read, not the request: a server that sends one
byte a second never trips it, and ``registry list URL --timeout 3`` used to run
on for minutes. Here a timer shuts the connection's socket down when the
deadline passes, which ends any blocked read at once, and the request fails
with one line naming the deadline.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import IO

from alexnet_tvm.errors import RegistryError

#: bytes a second a transfer must average at least: a pack of N bytes gets ``timeout + N / MIN_RATE``
MIN_RATE = 256 << 10
#: the most seconds the size of a transfer adds up to (a huge size a hostile index claims gets no more)
MAX_TRANSFER_S = 3600.0


def deadline_for(timeout: float, size: int = 0) -> float:
    """Seconds a request moving ``size`` bytes may take in all: ``timeout`` plus the time at
    ``MIN_RATE``, which stops adding at an hour (a longer ``timeout`` is kept as given)."""
    return max(timeout, min(timeout + max(size, 0) / MIN_RATE, MAX_TRANSFER_S))


def check_url(url: str) -> urllib.parse.SplitResult:
    """An ``http(s)://`` URL with a host and a usable port, or one line saying what is wrong with it.

    Every registry URL (``pull --from``, ``publish --to``, ``registry list``, ``serve --pull``)
    comes through here before any request is made.
    """
    try:
        parts = urllib.parse.urlsplit(str(url))
        port = parts.port
    except ValueError as e:  # "Invalid IPv6 URL", "Port out of range 0-65535", a port that is no number
        raise RegistryError(f"{url!r} is not a valid URL ({e})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise RegistryError(f"{url!r}: only http:// and https:// registry URLs are supported")
    if not parts.hostname:
        raise RegistryError(f"{url!r} is not a valid URL (no host)")
    if port == 0:
        raise RegistryError(f"{url!r} is not a valid URL (port 0)")
    return parts


class HttpRefused(RegistryError):
    """The server answered with an HTTP error status; ``reason`` is its JSON ``error`` or the status text."""

    def __init__(self, code: int, reason: str):
        super().__init__(f"HTTP {code} {reason}")
        self.code, self.reason = code, reason


@dataclass
class BoundedRequest:
    """``with BoundedRequest(url, deadline) as req: req.read(n)``; every failure is a RegistryError.

    ``timeout`` bounds each socket operation as well (a dead server fails fast);
    ``deadline`` bounds the whole request.
    """

    url: str
    timeout: float
    deadline: float
    method: str = "GET"
    body: IO[bytes] | None = None
    headers: dict = field(default_factory=dict)
    expired: bool = False
    length: int | None = None

    def __post_init__(self) -> None:
        parts = check_url(self.url)
        cls = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._conn = cls(parts.hostname or "", parts.port, timeout=self.timeout)
        self._timer = threading.Timer(self.deadline, self._expire)
        self._timer.daemon = True
        self._resp: http.client.HTTPResponse | None = None

    def _expire(self) -> None:
        self.expired = True
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _late(self) -> RegistryError:
        return RegistryError(f"no complete answer within {self.deadline:g} s")

    def __enter__(self) -> "BoundedRequest":
        self._timer.start()
        try:
            self._send()
        except Exception as e:
            self.__exit__(None, None, None)
            raise self._failure(e) from None
        if self._resp.status >= 400:
            err = self._refusal()
            self.__exit__(None, None, None)
            raise err
        length = self._resp.getheader("Content-Length")
        self.length = int(length) if length and length.isdigit() else None
        return self

    def _send(self) -> None:
        """The request, then the answer's status and headers. A server that refuses an upload answers
        and hangs up without reading the body: the send then fails, but its answer is read all the same."""
        try:
            self._conn.request(self.method, self._path, body=self.body,
                               headers={"User-Agent": "alexnet-tvm", **self.headers})
        except (BrokenPipeError, ConnectionResetError) as sent:
            if self.expired or self.body is None:
                raise
            try:
                self._resp = self._conn.getresponse()
            except Exception:
                raise sent from None
            return
        self._resp = self._conn.getresponse()

    def _refusal(self) -> HttpRefused:
        """The server's own reason (its JSON ``error``), else the HTTP reason."""
        resp = self._resp
        try:
            reason = json.loads(resp.read(1 << 16)).get("error") or resp.reason
        except (ValueError, AttributeError, OSError, http.client.HTTPException):
            reason = resp.reason
        return HttpRefused(resp.status, str(reason))

    def _failure(self, e: BaseException) -> RegistryError:
        if self.expired:
            return self._late()
        if isinstance(e, RegistryError):
            return e
        if isinstance(e, (socket.timeout, TimeoutError)):
            return RegistryError(f"no answer within {self.timeout:g} s")
        if isinstance(e, http.client.IncompleteRead):
            return RegistryError(f"truncated answer ({len(e.partial)} more bytes, then the connection closed)")
        return RegistryError(f"{type(e).__name__}: {e}")

    def read(self, n: int) -> bytes:
        """At most ``n`` bytes (one socket read at most, so the deadline is checked between reads)."""
        if self.expired:
            raise self._late()
        try:
            data = self._resp.read1(n)
        except Exception as e:
            raise self._failure(e) from None
        if self.expired:
            raise self._late()
        return data

    def read_all(self, limit: int) -> bytes:
        """The whole body, refusing one longer than ``limit`` bytes."""
        chunks, got = [], 0
        while chunk := self.read(min(1 << 20, limit + 1 - got)):
            chunks.append(chunk)
            got += len(chunk)
            if got > limit:
                raise RegistryError(f"answer larger than {limit >> 20} MiB")
        return b"".join(chunks)

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        self._conn.close()

