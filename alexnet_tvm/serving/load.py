"""The load generator of ``serve-bench``: N clients, each one keep-alive HTTP/1.1 connection on its
own thread, sending a fixed number of requests in all.

Why the standard library's ``http.client`` and not an async client: on the 2-vCPU machines this
toolkit is measured on, the load generator shares the server's cores, and whatever it spends per
request is counted as serving overhead. One client round trip of a 600 KB binary infer request
cost 0.5-0.7 ms more with aiohttp's client than with ``http.client`` on a Zen 4 (the server's own
phases unchanged, docs/performance.md), a third of the 2 ms the 1-client target allows. A
request is a ``sendall`` of a prepared body and a read of a small answer, both outside the GIL,
so 32 threads do not get in each other's way.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .protocol import HEADER_LENGTH, decode_binary_response


@dataclass
class LoadResult:
    """Latencies (ms) of the answered requests, failures by key, and the run's wall time."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    seconds: float = 0.0


def failure_key(status: int | None, exc: BaseException | None) -> str:
    """The error-count key of a failed request: its HTTP status code, or what went wrong instead."""
    if status is not None:
        return str(status)
    return "timeout" if isinstance(exc, TimeoutError) else "connection"


class _Client:
    """One connection, reopened after a failure (as a real client's pool would)."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port, parts.path
        self.timeout = timeout
        self.conn = self._open()

    def _open(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        conn.connect()
        return conn

    def post(self, body: bytes, headers: dict) -> str | None:
        """One request; None when answered with a decodable 200, else its failure key."""
        try:
            self.conn.request("POST", self.path, body, headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            try:
                self.conn = self._open()
            except OSError:
                pass  # the next request fails too, and is counted
            return failure_key(None, e)
        if resp.status != 200:
            return failure_key(resp.status, None)
        try:
            ok = decode_binary_response(data, resp.headers[HEADER_LENGTH]).size > 0
        except (KeyError, TypeError, ValueError):
            ok = False
        return None if ok else "bad answer"

    def close(self) -> None:
        self.conn.close()


def client_load(url: str, body: bytes, headers: dict, concurrency: int, requests: int,
                timeout: float) -> LoadResult:
    """``requests`` POSTs of ``body`` shared among ``concurrency`` clients; connections are opened
    before the clock starts. Every request is bounded by ``timeout`` seconds per socket step."""
    out = LoadResult()
    issued = itertools.count()
    lock = threading.Lock()
    clients: list[_Client] = []
    try:
        for _ in range(concurrency):
            clients.append(_Client(url, timeout))
    except OSError as e:
        for c in clients:
            c.close()
        out.errors[failure_key(None, e)] += requests
        return out
    start = threading.Barrier(concurrency + 1)

    def run(client: _Client) -> None:
        start.wait()
        while next(issued) < requests:
            t = time.perf_counter()
            failed = client.post(body, headers)
            ms = 1e3 * (time.perf_counter() - t)
            with lock:
                if failed is None:
                    out.latencies.append(ms)
                else:
                    out.errors[failed] += 1

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    out.seconds = time.perf_counter() - t0
    for c in clients:
        c.close()
    return out
