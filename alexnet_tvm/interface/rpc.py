"""rpc tracker | server | status: TVM's RPC services as supervised children, and the tracker's boards.

The services are compile's (``compile.tuning.rpc``: TVM's own entry points, with their workers ended
with them); the tracker query is core's (:mod:`alexnet_tvm.rpc_session`, within a deadline).
"""

from __future__ import annotations

#: the ports a tracker and a board listen on unless told otherwise (TVM's)
TRACKER_PORT = 9190
SERVER_PORT = 9090
#: seconds ``rpc status`` waits for the tracker's answer (rpc_session.tracker_summary's own default is
#: the same 10 s; that module is core's and keeps its own)
STATUS_TIMEOUT = 10.0


def tracker(host: str, port: int) -> int:
    """Run a tracker on ``host:port`` (and PORT+1) until stopped; its exit status."""
    from alexnet_tvm.compile.tuning.rpc import run_tracker

    return run_tracker(host, port)


def server(tracker_host: str, tracker_port: int, key: str, host: str, port: int) -> int:
    """Run an RPC server (a board) registered with the tracker under ``key``, on the first free port
    of PORT..PORT+100 (TVM's range); its exit status."""
    from alexnet_tvm.compile.tuning.rpc import run_tvm_service

    return run_tvm_service("tvm.exec.rpc_server", [
        "--tracker", f"{tracker_host}:{tracker_port}", "--key", key, "--host", host, "--port", str(port),
        "--port-end", str(min(port + 100, 65536))])


def status(host: str, port: int, timeout: float = STATUS_TIMEOUT) -> list[str]:
    """The boards registered with the tracker, per key: free and pending."""
    from alexnet_tvm.rpc_session import tracker_summary

    summary = tracker_summary(host, port, timeout)
    queue = summary.get("queue_info", {})
    lines = [f"tracker {host}:{port}: {len(summary.get('server_info', []))} server(s)"]
    lines += [f"  {key:16s} free {q.get('free', 0)}  pending {q.get('pending', 0)}" for key, q in sorted(queue.items())]
    return lines
