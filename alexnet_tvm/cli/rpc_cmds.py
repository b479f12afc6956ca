"""rpc tracker | server | status: parse, then call alexnet_tvm.interface.rpc."""

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


@click.group()
def rpc() -> None:
    """TVM RPC tracker and servers (boards)."""


@rpc.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=tracker_port, default=9190, show_default=True)
def tracker(host: str, port: int) -> None:
    """Run a tracker that boards register with and tuners ask for boards."""
    from alexnet_tvm.interface.rpc import tracker as run

    sys.exit(run(host, port))


@rpc.command()
@click.option("--tracker", "tracker_addr", type=HostPort(), required=True, help="host:port of the tracker")
@click.option("--key", required=True, help="The board kind, e.g. rpi4 or local")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=server_port, default=9090, show_default=True)
def server(tracker_addr: tuple[str, int], key: str, host: str, port: int) -> None:
    """Run an RPC server on this machine (a board) registered with the tracker under KEY."""
    from alexnet_tvm.interface.rpc import server as run

    sys.exit(run(tracker_addr[0], tracker_addr[1], key, host, port))


@rpc.command()
@click.option("--tracker", "tracker_addr", type=HostPort(), default="127.0.0.1:9190", show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True)
def status(tracker_addr: tuple[str, int], timeout: float) -> None:
    """Boards registered with the tracker, per key: free, pending, total."""
    from alexnet_tvm.interface.rpc import status as run

    for line in run(tracker_addr[0], tracker_addr[1], timeout):
        click.echo(line)


COMMANDS = [rpc]
