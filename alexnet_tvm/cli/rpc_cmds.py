"""rpc tracker | server | status: stand up and inspect TVM RPC boards in one command."""

from __future__ import annotations

import os
import sys

import click


def _exec(module: str, args: list[str]) -> None:
    """Replace this process with TVM's own entry point (signals and exit codes pass through)."""
    argv = [sys.executable, "-m", module, *args]
    os.execv(sys.executable, argv)


@click.group()
def rpc() -> None:
    """TVM RPC tracker and servers (boards)."""


@rpc.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9190, show_default=True)
def tracker(host: str, port: int) -> None:
    """Run a tracker that boards register with and tuners ask for boards."""
    _exec("tvm.exec.rpc_tracker", ["--host", host, "--port", str(port), "--port-end", str(port + 1)])


@rpc.command()
@click.option("--tracker", "tracker_addr", required=True, help="host:port of the tracker")
@click.option("--key", required=True, help="The board kind, e.g. rpi4 or local")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9090, show_default=True)
def server(tracker_addr: str, key: str, host: str, port: int) -> None:
    """Run an RPC server on this machine (a board) registered with the tracker under KEY."""
    from alexnet_tvm.errors import RPCError

    if ":" not in tracker_addr:
        raise RPCError(f"--tracker {tracker_addr!r}: give host:port")
    _exec("tvm.exec.rpc_server", ["--tracker", tracker_addr, "--key", key, "--host", host,
                                  "--port", str(port), "--port-end", str(port + 100)])


@rpc.command()
@click.option("--tracker", "tracker_addr", default="127.0.0.1:9190", show_default=True)
@click.option("--timeout", default=10.0, show_default=True)
def status(tracker_addr: str, timeout: float) -> None:
    """Boards registered with the tracker, per key: free, pending, total."""
    from alexnet_tvm.compile.rpc import tracker_summary
    from alexnet_tvm.errors import RPCError

    if ":" not in tracker_addr:
        raise RPCError(f"--tracker {tracker_addr!r}: give host:port")
    host, port = tracker_addr.rsplit(":", 1)
    summary = tracker_summary(host, int(port), timeout)
    queue = summary.get("queue_info", {})
    click.echo(f"tracker {tracker_addr}: {len(summary.get('server_info', []))} server(s)")
    for key, q in sorted(queue.items()):
        click.echo(f"  {key:16s} free {q.get('free', 0)}  pending {q.get('pending', 0)}")


COMMANDS = [rpc]
