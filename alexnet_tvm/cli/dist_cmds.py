"""pack / publish / pull / registry / logs / keygen: parse, then call alexnet_tvm.interface.dist.

``pull`` (and ``registry list``) must work on a runtime-only machine, so nothing
here imports ``alexnet_tvm.compile``.
"""

from __future__ import annotations

from pathlib import Path

import click

from alexnet_tvm.distribution.pull import DEFAULT_MAX_PACK_MB
from alexnet_tvm.distribution.registry import DEFAULT_LOCK_TIMEOUT
from alexnet_tvm.interface.dist import REGISTRY_PORT

from .options import (
    batch_option, force_option, host_option, logs_dir_option, out_option, port_option, registry_from_option,
    target_option, targets_file_option, timeout_option, token_file_option, trust_option,
)


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@out_option(required=True, help="The pack, NAME.tar.gz.")
@click.option("--report", type=click.Path(path_type=Path), default=None,
              help="The artifact's `verify --report` JSON (must have passed).")
@logs_dir_option(help="Take the tuning records from LOGS_DIR/<target>/<cpu> (the set the build used, else the "
                     "nearest) instead of the manifest's database folder.")
@click.option("--sign", "sign_with", type=click.Path(path_type=Path), default=None, metavar="KEY",
              help="Sign the pack's SHA256SUMS with this Ed25519 private key (`alexnet-tvm keygen`).")
@force_option(help="Replace an existing pack.")
def pack(artifact: Path, out: Path, report: Path | None, logs_dir: Path | None, sign_with: Path | None,
         force: bool) -> None:
    """Pack ARTIFACT with its tuning records and verify report into one checksummed archive."""
    from alexnet_tvm.interface.dist import pack as run

    click.echo(run(artifact, out, report=report, logs_dir=logs_dir, sign_with=sign_with, force=force))


@click.command()
@click.argument("pack_file", metavar="PACK", type=click.Path(path_type=Path))
@click.option("--to", "to", required=True, help="Registry: a folder or an http(s):// base URL.")
@click.option("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT, show_default=True,
              help="Seconds to wait for another publisher to finish (folder registries).")
@timeout_option()
@token_file_option()
def publish(pack_file: Path, to: str, lock_timeout: float, timeout: float | None, token_file: Path | None) -> None:
    """Check PACK and add it to a registry's index."""
    from alexnet_tvm.interface.dist import publish as run

    click.echo(run(pack_file, to, lock_timeout=lock_timeout, timeout=timeout, token_file=token_file))


@click.command()
@click.argument("model")
@target_option(help="Prefer this target's pack; otherwise any pack this machine can run.")
@registry_from_option(required=True)
@out_option(help="Artifact folder. Default: artifacts/<model>-<target>-b<batch>.")
@batch_option(help="Default: the smallest batch available.")
@force_option(help="Replace an existing artifact folder.")
@targets_file_option(help="For --target auto. Default: targets.yaml of the project.")
@timeout_option()
@trust_option()
@click.option("--max-pack-mb", type=click.IntRange(min=1), default=DEFAULT_MAX_PACK_MB, show_default=True,
              help="Refuse, before downloading, a pack the index says is larger than this many MiB.")
def pull(model: str, target_name: str, registry: str, out: Path | None, batch: int | None, force: bool,
         targets_file: Path | None, timeout: float | None, trust: tuple[Path, ...], max_pack_mb: int) -> None:
    """Download MODEL's best pack for this machine, check it, and install it as an artifact."""
    from alexnet_tvm.interface.dist import pull as run

    click.echo(run(model, target_name, registry, out=out, batch=batch, force=force, targets_file=targets_file,
                   timeout=timeout, trust=trust, max_pack_mb=max_pack_mb))


@click.group()
def registry() -> None:
    """Serve or list a pack registry."""


@registry.command("serve")
@click.argument("folder", type=click.Path(path_type=Path))
@port_option(REGISTRY_PORT, help="0 picks a free port.")
@host_option()
@click.option("--allow-publish", is_flag=True,
              help="Accept `publish --to http://...` uploads (PUT /publish) that carry the bearer token.")
@token_file_option()
@click.option("--read-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds a client may take to send a request's line and headers, in all (a body or a "
                   "file sent gets more per MiB); then its connection is closed.")
@click.option("--max-connections", type=click.IntRange(min=1), default=32, show_default=True,
              help="Connections served at once; more get 503.")
def serve(folder: Path, port: int, host: str, allow_publish: bool, token_file: Path | None, read_timeout: float,
          max_connections: int) -> None:
    """Serve a registry FOLDER over HTTP (read-only unless --allow-publish)."""
    from alexnet_tvm.interface.dist import registry_serve

    click.echo(registry_serve(folder, host, port, allow_publish, token_file, read_timeout, max_connections,
                              on_ready=click.echo))


@registry.command("list")
@click.argument("location")
@timeout_option()
def list_cmd(location: str, timeout: float | None) -> None:
    """List the packs in a registry folder or URL."""
    from alexnet_tvm.interface.dist import registry_list

    for line in registry_list(location, timeout):
        click.echo(line)


@click.group()
def logs() -> None:
    """Move tuning records between machines and registries."""


@logs.command("export")
@click.argument("target")
@out_option(required=True, help="logs.tar.gz")
@logs_dir_option()
@click.option("--set", "record_set", default=None, metavar="CPU",
              help="The record set (tuning_logs/<target>/<CPU>/). Default: the one a build here takes.")
@force_option()
def logs_export(target: str, out: Path, logs_dir: Path | None, record_set: str | None, force: bool) -> None:
    """Archive one record set of TARGET's tuning records (checked, with SHA256SUMS)."""
    from alexnet_tvm.interface.dist import logs_export as run

    click.echo(run(target, out, logs_dir=logs_dir, record_set=record_set, force=force))


@logs.command("import")
@click.argument("archive", type=click.Path(path_type=Path))
@target_option(default=None, help="Default: the target the archive names.", dest="target")
@logs_dir_option()
@click.option("--keep", type=int, default=8, show_default=True, help="Records kept per workload (fastest first).")
@click.option("--set", "record_set", default=None, metavar="CPU",
              help="Merge into tuning_logs/<target>/<CPU>/. Default: the set the archive names.")
@click.option("--this-cpu", is_flag=True,
              help="Merge into this host's own set (records timed elsewhere then count as this CPU's).")
def logs_import(archive: Path, target: str | None, logs_dir: Path | None, keep: int, record_set: str | None,
                this_cpu: bool) -> None:
    """Merge the tuning records of a `logs export` archive or a pack into tuning_logs/<target>/<cpu>/."""
    from alexnet_tvm.interface.dist import logs_import as run

    click.echo(run(archive, target=target, logs_dir=logs_dir, keep=keep, record_set=record_set, this_cpu=this_cpu))


@click.command()
@out_option(required=True, help="The private key file; the public key goes to OUT.pub.")
@force_option(help="Replace an existing key pair.")
def keygen(out: Path, force: bool) -> None:
    """Make an Ed25519 key pair for `pack --sign` (KEY) and `pull --trust` (KEY.pub)."""
    from alexnet_tvm.interface.dist import keygen as run

    click.echo(run(out, force=force))


COMMANDS = [pack, publish, pull, registry, logs, keygen]
