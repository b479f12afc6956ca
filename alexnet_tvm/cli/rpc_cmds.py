"""rpc tracker | server | status: parse, then call alexnet_tvm.interface.rpc."""

from __future__ import annotations

import sys

import click

from alexnet_tvm.interface.rpc import SERVER_PORT, STATUS_TIMEOUT, TRACKER_PORT

from . import options
from .options import LOOPBACK, host_option, port_option, timeout_option, tracker_option


@click.group()
def rpc() -> None:
    """TVM RPC tracker and servers (boards)."""


@rpc.command()
@host_option()
@port_option(TRACKER_PORT, type=options.TRACKER_PORT)
def tracker(host: str, port: int) -> None:
    """Run a tracker that boards register with and tuners ask for boards."""
    from alexnet_tvm.interface.rpc import tracker as run

    sys.exit(run(host, port))


@rpc.command()
@tracker_option(required=True, help="host:port of the tracker")
@click.option("--key", required=True, help="The board kind, e.g. rpi4 or local")
@host_option()
@port_option(SERVER_PORT, type=options.SERVER_PORT)
def server(tracker_addr: tuple[str, int], key: str, host: str, port: int) -> None:
    """Run an RPC server on this machine (a board) registered with the tracker under KEY."""
    from alexnet_tvm.interface.rpc import server as run

    sys.exit(run(tracker_addr[0], tracker_addr[1], key, host, port))


@rpc.command()
@tracker_option(default=f"{LOOPBACK}:{TRACKER_PORT}")
@timeout_option(default=STATUS_TIMEOUT, help=None)
def status(tracker_addr: tuple[str, int], timeout: float) -> None:
    """Boards registered with the tracker, per key: free, pending, total."""
    from alexnet_tvm.interface.rpc import status as run

    for line in run(tracker_addr[0], tracker_addr[1], timeout):
        click.echo(line)


COMMANDS = [rpc]
