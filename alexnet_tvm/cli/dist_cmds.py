"""pack / publish / pull / registry / logs: thin wrappers over alexnet_tvm.distribution.

``pull`` (and ``registry list``) must work on a runtime-only machine, so nothing
here imports ``alexnet_tvm.compile`` at module level; ``pull`` resolves ``--target
auto`` through targets.yaml with core settings (no compile side needed).
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from alexnet_tvm.settings import logs_dir_for_reading, logs_dir_for_writing

from .options import batch_option, force_option, logs_dir_option, out_option, target_option, targets_file_option

log = logging.getLogger(__name__)

timeout_option = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
                              help="Seconds a request may take in all (default 10, publish 60; "
                                   "a download gets more per MiB, up to an hour).")
token_file_option = click.option("--token-file", type=click.Path(path_type=Path), default=None,
                                 help="File holding the upload bearer token. Default: $ALEXNET_TVM_TOKEN.")


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
    from alexnet_tvm.distribution.pack import pack_artifact

    res = pack_artifact(artifact, out, report=report, logs_dir=logs_dir, force=force, sign_with=sign_with)
    v = res.verify
    click.echo(f"wrote {res.out} ({res.size} bytes, {res.digest}); "
               f"tuning records {'included' if res.tuning_included else 'none'}; "
               + (f"verified against {v['against']}" if v else "no verify report"))


@click.command()
@click.argument("pack_file", metavar="PACK", type=click.Path(path_type=Path))
@click.option("--to", "to", required=True, help="Registry: a folder or an http(s):// base URL.")
@click.option("--lock-timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for another publisher to finish (folder registries).")
@timeout_option
@token_file_option
def publish(pack_file: Path, to: str, lock_timeout: float, timeout: float | None, token_file: Path | None) -> None:
    """Check PACK and add it to a registry's index."""
    from alexnet_tvm.distribution.registry import publish as run_publish
    from alexnet_tvm.distribution.server import read_token

    entry = run_publish(pack_file, to, lock_timeout=lock_timeout, timeout=timeout or 60.0,
                        token=read_token(token_file))
    click.echo(f"published {entry.label()} to {to} as {entry.file}")


def _local_target(name: str, targets_file: Path | None) -> str | None:
    """The target name to prefer: ``auto`` via targets.yaml.

    Without yaml to read it, or when no entry fits this host, ``auto`` means "any
    pack this CPU runs, most specific first".
    """
    if name != "auto":
        return name
    from alexnet_tvm.errors import TargetError
    from alexnet_tvm.settings import resolve_target

    try:
        return resolve_target(name, targets_file).name
    except ImportError:  # no yaml to read targets.yaml with
        return None
    except TargetError as e:
        log.info("--target auto: %s; taking any compatible pack", e)
        return None


@click.command()
@click.argument("model")
@target_option(help="Prefer this target's pack; otherwise any pack this machine can run.")
@click.option("--from", "registry", required=True, help="Registry: a folder or an http(s):// base URL.")
@out_option(help="Artifact folder. Default: artifacts/<model>-<target>-b<batch>.")
@batch_option(help="Default: the smallest batch available.")
@force_option(help="Replace an existing artifact folder.")
@targets_file_option(help="For --target auto. Default: targets.yaml of the project.")
@timeout_option
@click.option("--trust", type=click.Path(path_type=Path), multiple=True, metavar="PUBKEY",
              help="Accept only packs signed by a key in this .pub or trusted-keys file (repeatable).")
@click.option("--max-pack-mb", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Refuse, before downloading, a pack the index says is larger than this many MiB.")
def pull(model: str, target_name: str, registry: str, out: Path | None, batch: int | None, force: bool,
         targets_file: Path | None, timeout: float | None, trust: tuple[Path, ...], max_pack_mb: int) -> None:
    """Download MODEL's best pack for this machine, check it, and install it as an artifact."""
    from alexnet_tvm.distribution.pull import DEFAULT_TIMEOUT, PullConfig, pull as run_pull
    from alexnet_tvm.distribution.signing import Trust

    trusted = Trust.from_files(trust)  # read before anything is downloaded: a bad key file fails first
    target = _local_target(target_name, targets_file)
    res = run_pull(PullConfig(model=model, registry=registry, target=target, batch=batch, out=out, force=force,
                              timeout=timeout or DEFAULT_TIMEOUT, trust=trusted, max_pack_mb=max_pack_mb))
    how = "exact target" if res.exact else f"compatible with {target}" if target else "compatible with this host"
    v = res.entry.verify
    signed = f"; signed by {res.entry.signer}" if res.entry.signer else ""
    click.echo(f"pulled {res.entry.label()} ({how}) into {res.out}; "
               + (f"verify {'passed' if v.get('passed') else 'FAILED'} against {v.get('against')}"
                  if v else "not verified") + signed)


@click.group()
def registry() -> None:
    """Serve or list a pack registry."""


@registry.command("serve")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--allow-publish", is_flag=True,
              help="Accept `publish --to http://...` uploads (PUT /publish) that carry the bearer token.")
@token_file_option
@click.option("--read-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds a client may take to send a request's line and headers, in all (a body or a "
                   "file sent gets more per MiB); then its connection is closed.")
@click.option("--max-connections", type=click.IntRange(min=1), default=32, show_default=True,
              help="Connections served at once; more get 503.")
def serve(folder: Path, port: int, host: str, allow_publish: bool, token_file: Path | None, read_timeout: float,
          max_connections: int) -> None:
    """Serve a registry FOLDER over HTTP (read-only unless --allow-publish)."""
    from alexnet_tvm.distribution.server import ServeLimits, make_server, read_token, serve_until_stopped

    server = make_server(folder, host, port, allow_publish=allow_publish,
                         token=read_token(token_file) if allow_publish else None,
                         limits=ServeLimits(read_timeout=read_timeout, max_connections=max_connections))
    click.echo(f"serving {folder} at {server.url}/ ({'uploads allowed' if allow_publish else 'read-only'}); "
               "Ctrl-C or SIGTERM stops", err=False)
    serve_until_stopped(server)
    click.echo("stopped")


@registry.command("list")
@click.argument("location")
@timeout_option
def list_cmd(location: str, timeout: float | None) -> None:
    """List the packs in a registry folder or URL."""
    from alexnet_tvm.distribution.registry import DEFAULT_TIMEOUT, open_registry

    index = open_registry(location, timeout or DEFAULT_TIMEOUT).read_index()
    for e in index.packs:
        v = e.verify
        ver = "unverified" if not v else ("verified" if v.get("passed") else "FAILED") + f" ({v.get('against')})"
        click.echo(f"{e.model:12s} {e.target:14s} b{e.batch:<3d} TVM {e.tvm_version:14s} {e.size:>10d} B "
                   f"{e.published or e.created}  {ver}  {e.signer or 'unsigned'}  {e.digest[:19]}")


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
    from alexnet_tvm.distribution.logs import export_logs

    res = export_logs(target, logs_dir_for_reading(logs_dir, target), out, force=force, record_set=record_set)
    click.echo(f"wrote {res.out}: {res.workloads} workloads, {res.records} records of {res.target} "
               f"(set {res.record_set})")


@logs.command("import")
@click.argument("archive", type=click.Path(path_type=Path))
@click.option("--target", default=None, help="Default: the target the archive names.")
@logs_dir_option()
@click.option("--keep", type=int, default=8, show_default=True, help="Records kept per workload (fastest first).")
@click.option("--set", "record_set", default=None, metavar="CPU",
              help="Merge into tuning_logs/<target>/<CPU>/. Default: the set the archive names.")
@click.option("--this-cpu", is_flag=True,
              help="Merge into this host's own set (records timed elsewhere then count as this CPU's).")
def logs_import(archive: Path, target: str | None, logs_dir: Path | None, keep: int, record_set: str | None,
                this_cpu: bool) -> None:
    """Merge the tuning records of a `logs export` archive or a pack into tuning_logs/<target>/<cpu>/."""
    from alexnet_tvm.compile.tuning.database import check_readable
    from alexnet_tvm.distribution.logs import import_logs

    m = import_logs(archive, logs_dir_for_writing(logs_dir, target), target=target, keep=keep,
                    record_set=record_set, this_cpu=this_cpu, validate=check_readable).merge
    click.echo(f"merged into {m.folder}: {m.workloads_added} new workloads, {m.records_added} of "
               f"{m.records_offered} records added; {m.records_before} -> {m.records_after} records")


@click.command()
@out_option(required=True, help="The private key file; the public key goes to OUT.pub.")
@force_option(help="Replace an existing key pair.")
def keygen(out: Path, force: bool) -> None:
    """Make an Ed25519 key pair for `pack --sign` (KEY) and `pull --trust` (KEY.pub)."""
    from alexnet_tvm.distribution.signing import keygen as make_keys

    pub, kid = make_keys(out, force=force)
    click.echo(f"wrote {out} (private, keep it) and {pub} ({kid})")


COMMANDS = [pack, publish, pull, registry, logs, keygen]
