"""A server as a child process: started on a free port, found by the URL line it prints,
stopped by its PID with SIGTERM (the way an orchestrator stops it).

``serve-bench`` measures the server this way so that clients and server do not share one
interpreter, and the tests use it to check what only a real process shows (exit status,
draining on SIGTERM).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Iterator

from alexnet_tvm.errors import ServeError

#: the stdout line ``serve`` prints once it listens: "serving NAMES at URL"
READY_PREFIX = "serving "


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    url: str
    stderr: IO[bytes]

    def log_tail(self, chars: int = 2000) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-chars:]

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM, then wait for the drain; the exit status (killed and -9 if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -signal.SIGKILL


def _lines(stream: IO[str], out: "queue.Queue[str | None]") -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def _wait_for_url(proc: subprocess.Popen, lines: "queue.Queue[str | None]", timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=min(left, 1.0))
        except queue.Empty:
            continue
        if line is None:
            return None
        if line.startswith(READY_PREFIX) and " at http" in line:
            return line.rsplit(" at ", 1)[1].strip()
    return None


@contextmanager
def server_process(args: list[str], start_timeout: float = 300.0,
                   env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """``alexnet-tvm serve ARGS --port 0`` in a child; yields once it listens, stops it on exit."""
    cmd = [sys.executable, "-m", "alexnet_tvm.cli.main", "serve", *args, "--port", "0"]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                env={**os.environ, **(env or {})})
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
        server = ServerProcess(proc, "", err)
        try:
            url = _wait_for_url(proc, lines, start_timeout)
            if url is None:
                raise ServeError(f"the server did not start within {start_timeout:g} s: "
                                 + (server.log_tail(400).strip().splitlines() or ["no output"])[-1])
            server.url = url
            yield server
        finally:
            server.stop()
            if proc.stdout is not None:
                proc.stdout.close()
