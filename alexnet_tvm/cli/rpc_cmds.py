"""rpc tracker | server | status: stand up and inspect TVM RPC boards in one command."""

from __future__ import annotations

import sys

import click

#: a tracker uses PORT and PORT+1, a server the first free one of PORT..PORT+100 (TVM's port range)
tracker_port = click.IntRange(1, 65534)
server_port = click.IntRange(1, 65535)


class HostPort(click.ParamType):
    """``host:port`` with a port of 1..65535, parsed once for every rpc command."""

    name = "host:port"

    def convert(self, value, param, ctx) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        host, sep, port = str(value).rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            self.fail(f"{value!r}: give host:port with a port of 1..65535", param, ctx)
        return host, int(port)


def _run(module: str, args: list[str]) -> None:
    """TVM's own entry point as a supervised child: it and its workers end with this command."""
    from alexnet_tvm.compile.tuning.rpc import run_tvm_service

    sys.exit(run_tvm_service(module, args))


@click.group()
def rpc() -> None:
    """TVM RPC tracker and servers (boards)."""


@rpc.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=tracker_port, default=9190, show_default=True)
def tracker(host: str, port: int) -> None:
    """Run a tracker that boards register with and tuners ask for boards."""
    from alexnet_tvm.compile.tuning.rpc import run_tracker

    sys.exit(run_tracker(host, port))


@rpc.command()
@click.option("--tracker", "tracker_addr", type=HostPort(), required=True, help="host:port of the tracker")
@click.option("--key", required=True, help="The board kind, e.g. rpi4 or local")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=server_port, default=9090, show_default=True)
def server(tracker_addr: tuple[str, int], key: str, host: str, port: int) -> None:
    """Run an RPC server on this machine (a board) registered with the tracker under KEY."""
    _run("tvm.exec.rpc_server", ["--tracker", f"{tracker_addr[0]}:{tracker_addr[1]}", "--key", key,
                                 "--host", host, "--port", str(port), "--port-end", str(min(port + 100, 65536))])


@rpc.command()
@click.option("--tracker", "tracker_addr", type=HostPort(), default="127.0.0.1:9190", show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True)
def status(tracker_addr: tuple[str, int], timeout: float) -> None:
    """Boards registered with the tracker, per key: free, pending, total."""
    from alexnet_tvm.compile.tuning.rpc import tracker_summary

    host, port = tracker_addr
    summary = tracker_summary(host, port, timeout)
    queue = summary.get("queue_info", {})
    click.echo(f"tracker {host}:{port}: {len(summary.get('server_info', []))} server(s)")
    for key, q in sorted(queue.items()):
        click.echo(f"  {key:16s} free {q.get('free', 0)}  pending {q.get('pending', 0)}")


COMMANDS = [rpc]
