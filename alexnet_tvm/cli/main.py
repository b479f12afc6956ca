"""The ``alexnet-tvm`` command group and its single error edge."""

from __future__ import annotations

import logging
import signal
import sys

import click

from alexnet_tvm.errors import FlagClashError, ToolkitError


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``kill``, systemd and CI runners send), raised where the main thread is, so the
    same ``finally`` blocks and context managers that clean up after Ctrl-C clean up after it:
    temp folders, half-written outputs, child processes."""


def _raise_terminated(signum, _frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM does not interrupt the cleanup
    raise Terminated()


class ToolkitGroup(click.Group):
    """Turns every :class:`ToolkitError`, and a bad option of a command, into one line on
    stderr and exit status 2 (click's own usage block would be three)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FlagClashError as e:  # worded as click's usage errors, after the command given (a top-level
            # one: a command of a nested group would be named by its group; none of those raises it)
            where = " ".join(filter(None, [ctx.command_path, ctx.invoked_subcommand]))
            click.echo(f"error: {where}: {e}", err=True)
            sys.exit(2)
        except ToolkitError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except click.UsageError as e:
            where = f"{e.ctx.command_path}: " if e.ctx is not None else ""
            click.echo(f"error: {where}{e.format_message()}", err=True)
            sys.exit(2)
        except Terminated:
            click.echo("terminated", err=True)
            sys.exit(128 + signal.SIGTERM)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=ToolkitGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
def cli(verbose: bool, quiet: bool) -> None:
    """Compile, autotune, verify and ship AlexNet with Apache TVM."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


#: modules under alexnet_tvm.cli, one per command group, each with a COMMANDS list (their shared
#: options are in options.py); a module missing from an install is skipped
COMMAND_MODULES = ("model_cmds", "compile_cmds", "runtime_cmds", "evaluate_cmds", "demo_cmds", "bench_cmds",
                   "ascend_cmds", "dist_cmds", "rpc_cmds", "serve_cmds")


def _register() -> None:
    import importlib
    import importlib.util

    for name in COMMAND_MODULES:
        if importlib.util.find_spec(f"alexnet_tvm.cli.{name}") is None:
            continue
        mod = importlib.import_module(f"alexnet_tvm.cli.{name}")
        for cmd in mod.COMMANDS:
            cli.add_command(cmd)


_register()


def main() -> None:
    """The console script: SIGTERM is turned into :class:`Terminated` first (commands that serve
    install their own handlers for a graceful drain, which replace this one)."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    cli(prog_name="alexnet-tvm")


if __name__ == "__main__":
    main()
