"""Remote boards through a TVM RPC tracker: reachability checks, the MetaSchedule
RPC runner, and cross-compiling exports for the builder."""

from __future__ import annotations

import functools
import logging
import signal
import socket
import subprocess
import sys

from alexnet_tvm.errors import RPCError
from alexnet_tvm.rpc_session import board_registered, free_boards, tracker_summary
from alexnet_tvm.targets import TargetSpec

log = logging.getLogger(__name__)


def check_board(spec: TargetSpec, timeout: float = 10.0) -> dict:
    """Fail early, with the cause, instead of letting MetaSchedule wait on a missing board; the
    tracker's summary when a board is free."""
    assert spec.rpc is not None
    summary = tracker_summary(spec.rpc.tracker_host, spec.rpc.tracker_port, timeout)
    if not board_registered(summary, spec.rpc.key):
        raise RPCError(f"no board is registered with tracker {spec.rpc.tracker} under key {spec.rpc.key!r}")
    if free_boards(summary, spec.rpc.key) < 1:
        raise RPCError(f"every board under key {spec.rpc.key!r} at {spec.rpc.tracker} is busy")
    return summary


def check_cross_compiler(spec: TargetSpec) -> None:
    import shutil

    cc = spec.rpc.cross_compiler if spec.rpc else None
    if cc and shutil.which(cc) is None:
        raise RPCError(f"target {spec.name}: cross compiler {cc!r} is not installed "
                       f"(apt-get install g++-aarch64-linux-gnu)")


def cross_export(compiler: str, rt_mod) -> str:
    """Builder export step for a board: link with the cross compiler (runs in a worker)."""
    import os
    import tempfile

    from tvm.support import cc

    path = os.path.join(tempfile.mkdtemp(), "tvm_tmp_mod.so")
    rt_mod.export_library(path, fcompile=cc.cross_compiler(compiler))
    return path


def builder_export_for(spec: TargetSpec):
    if spec.runner == "rpc" and spec.rpc and spec.rpc.cross_compiler:
        check_cross_compiler(spec)
        return functools.partial(cross_export, spec.rpc.cross_compiler)
    return None



class _Family:
    """Every process a service started, remembered while it runs: a ``popen_worker`` whose parent
    died is re-parented away and could no longer be found from the service."""

    def __init__(self, pid: int):
        import psutil

        self.root = psutil.Process(pid)
        self.known: dict[int, object] = {pid: self.root}

    def refresh(self) -> None:
        import psutil

        try:
            for p in self.root.children(recursive=True):
                self.known.setdefault(p.pid, p)
        except psutil.Error:
            pass

    def end(self, grace: float) -> None:
        """SIGTERM every one still alive, SIGKILL those still there after ``grace`` seconds."""
        import psutil

        alive = []
        for p in self.known.values():
            try:
                p.terminate()
                alive.append(p)
            except psutil.Error:
                pass
        _, left = psutil.wait_procs(alive, timeout=grace)
        for p in left:
            try:
                p.kill()
            except psutil.Error:
                pass


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on, in one line, before TVM's service tries it (TVM's
    tracker answers a busy port with a traceback and exit status 1)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise RPCError(f"cannot listen on {host}:{port} ({e})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise RPCError(f"cannot listen on {host}:{port}: {e.strerror or e} (another tracker or server "
                           "there? choose another --port)") from None


def run_tvm_service(module: str, args: list[str], grace: float = 5.0) -> int:
    """Run TVM's ``python -m <module>`` (tracker, server) as a child and return its exit status.

    TVM's tracker and server start ``popen_worker`` children of their own; exec'ing
    into TVM left them orphaned when the service got SIGTERM. Here SIGTERM, SIGINT
    and SIGHUP end the service and every process it started; so does the service
    ending by itself. The child stays in this process group, so a signal to the
    group reaches all of them at once as before.
    """
    child = subprocess.Popen([sys.executable, "-m", module, *args])
    family = _Family(child.pid)
    stopped: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _f: stopped.append(signum))
                for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while child.poll() is None and not stopped:
            family.refresh()
            try:
                child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
    finally:
        family.refresh()  # whatever started since the last look
        family.end(grace)
        for s, h in previous.items():
            signal.signal(s, h)
    code = child.wait()
    return 128 + stopped[0] if stopped else code


def run_tracker(host: str, port: int) -> int:
    """TVM's tracker on ``host:port`` (and PORT+1, as TVM's range needs) until it is stopped."""
    check_port_free(host, port)
    return run_tvm_service("tvm.exec.rpc_tracker", ["--host", host, "--port", str(port), "--port-end", str(port + 1)])
