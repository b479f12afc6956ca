"""The CLI as a user runs it: its command line for a subprocess, a free port for the servers it
starts, the end of a service started in its own session, and the check that a refused run says
one ``error:`` line and exits 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

#: the CLI as a subprocess, through this interpreter (no installed script needed)
CLI = [sys.executable, "-m", "alexnet_tvm.cli.main"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of ``proc`` (started with ``start_new_session=True``: a service and
    the workers it forked) and reap it; a group that is gone already is fine."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def assert_one_line_error(result, *fragments: str) -> str:
    """A refused CLI run: exit status 2, exactly one stderr line ``error: ...``, no traceback.

    ``result`` is a click ``Result`` or a ``subprocess.CompletedProcess``; each of
    ``fragments`` must appear (case-insensitively) in the error line, which is returned.
    """
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    stderr = result.stderr
    assert code != 0, f"the command succeeded; stdout: {result.stdout!r}"
    assert code == 2, f"exit code {code}, stderr: {stderr!r}"
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line, got: {stderr!r}"
    assert lines[0].startswith("error: "), lines[0]
    for frag in fragments:
        assert frag.lower() in lines[0].lower(), f"{frag!r} not in {lines[0]!r}"
    return lines[0]
