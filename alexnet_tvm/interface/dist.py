"""pack / publish / pull / registry / logs / keygen: one job per command over alexnet_tvm.distribution,
each returning the lines the command prints.

``pull`` (and ``registry list``) must work on a runtime-only machine, so nothing here imports
``alexnet_tvm.compile``: ``pull --target auto`` is resolved by core
(:func:`alexnet_tvm.target_choice.preferred_pack_target`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

#: the port ``registry serve`` binds unless told otherwise
REGISTRY_PORT = 8000


def pack(artifact: Path, out: Path, report: Path | None = None, logs_dir: Path | None = None,
         sign_with: Path | None = None, force: bool = False) -> str:
    """Pack ``artifact`` with its tuning records and verify report; the line saying what was packed."""
    from alexnet_tvm.distribution.pack import pack_artifact

    res = pack_artifact(artifact, out, report=report, logs_dir=logs_dir, force=force, sign_with=sign_with)
    v = res.verify
    return (f"wrote {res.out} ({res.size} bytes, {res.digest}); "
            f"tuning records {'included' if res.tuning_included else 'none'}; "
            + (f"verified against {v['against']}" if v else "no verify report"))


def publish(pack_file: Path, to: str, lock_timeout: float | None = None, timeout: float | None = None,
            token_file: Path | None = None) -> str:
    """Check ``pack_file`` and add it to a registry's index (the timeouts' defaults: the registry's)."""
    from alexnet_tvm.distribution.registry import publish as run_publish
    from alexnet_tvm.distribution.server import read_token

    given = {k: v for k, v in (("lock_timeout", lock_timeout), ("timeout", timeout)) if v is not None}
    entry = run_publish(pack_file, to, token=read_token(token_file), **given)
    return f"published {entry.label()} to {to} as {entry.file}"


def pull(model: str, target_name: str, registry: str, out: Path | None = None, batch: int | None = None,
         force: bool = False, targets_file: Path | None = None, timeout: float | None = None,
         trust: tuple[Path, ...] = (), max_pack_mb: int | None = None) -> str:
    """Download ``model``'s best pack for this machine, check it and install it; the line saying which."""
    from alexnet_tvm.distribution.pull import DEFAULT_MAX_PACK_MB, DEFAULT_TIMEOUT, PullConfig, pull as run_pull
    from alexnet_tvm.distribution.signing import Trust
    from alexnet_tvm.target_choice import preferred_pack_target

    trusted = Trust.from_files(trust)  # read before anything is downloaded: a bad key file fails first
    target = preferred_pack_target(target_name, targets_file)
    res = run_pull(PullConfig(model=model, registry=registry, target=target, batch=batch, out=out, force=force,
                              timeout=timeout or DEFAULT_TIMEOUT, trust=trusted,
                              max_pack_mb=max_pack_mb or DEFAULT_MAX_PACK_MB))
    how = "exact target" if res.exact else f"compatible with {target}" if target else "compatible with this host"
    v = res.entry.verify
    signed = f"; signed by {res.entry.signer}" if res.entry.signer else ""
    return (f"pulled {res.entry.label()} ({how}) into {res.out}; "
            + (f"verify {'passed' if v.get('passed') else 'FAILED'} against {v.get('against')}"
               if v else "not verified") + signed)


def registry_serve(folder: Path, host: str, port: int, allow_publish: bool, token_file: Path | None,
                   read_timeout: float, max_connections: int, on_ready: Callable[[str], None]) -> str:
    """Serve a registry folder until stopped: ``on_ready`` gets the line saying where; returns the last line."""
    from alexnet_tvm.distribution.server import ServeLimits, make_server, read_token, serve_until_stopped

    server = make_server(folder, host, port, allow_publish=allow_publish,
                         token=read_token(token_file) if allow_publish else None,
                         limits=ServeLimits(read_timeout=read_timeout, max_connections=max_connections))
    on_ready(f"serving {folder} at {server.url}/ ({'uploads allowed' if allow_publish else 'read-only'}); "
             "Ctrl-C or SIGTERM stops")
    serve_until_stopped(server)
    return "stopped"


def registry_list(location: str, timeout: float | None = None) -> list[str]:
    """One line per pack of a registry folder or URL."""
    from alexnet_tvm.distribution.registry import DEFAULT_TIMEOUT, open_registry

    index = open_registry(location, timeout or DEFAULT_TIMEOUT).read_index()
    lines = []
    for e in index.packs:
        v = e.verify
        ver = "unverified" if not v else ("verified" if v.get("passed") else "FAILED") + f" ({v.get('against')})"
        lines.append(f"{e.model:12s} {e.target:14s} b{e.batch:<3d} TVM {e.tvm_version:14s} {e.size:>10d} B "
                     f"{e.published or e.created}  {ver}  {e.signer or 'unsigned'}  {e.digest[:19]}")
    return lines


def logs_export(target: str, out: Path, logs_dir: Path | None = None, record_set: str | None = None,
                force: bool = False) -> str:
    """Archive one record set of ``target``'s tuning records (the tuning_logs/ reads use: settings)."""
    from alexnet_tvm.distribution.logs import export_logs
    from alexnet_tvm.settings import logs_dir_for_reading

    res = export_logs(target, logs_dir_for_reading(logs_dir, target), out, force=force, record_set=record_set)
    return (f"wrote {res.out}: {res.workloads} workloads, {res.records} records of {res.target} "
            f"(set {res.record_set})")


def logs_import(archive: Path, target: str | None = None, logs_dir: Path | None = None, keep: int = 8,
                record_set: str | None = None, this_cpu: bool = False) -> str:
    """Merge an archive's or a pack's tuning records into the tuning_logs/ writes use (settings)."""
    from alexnet_tvm.compile.tuning.database import check_readable
    from alexnet_tvm.distribution.logs import import_logs
    from alexnet_tvm.settings import logs_dir_for_writing

    m = import_logs(archive, logs_dir_for_writing(logs_dir, target), target=target, keep=keep,
                    record_set=record_set, this_cpu=this_cpu, validate=check_readable).merge
    return (f"merged into {m.folder}: {m.workloads_added} new workloads, {m.records_added} of "
            f"{m.records_offered} records added; {m.records_before} -> {m.records_after} records")


def keygen(out: Path, force: bool = False) -> str:
    """An Ed25519 key pair for ``pack --sign`` and ``pull --trust``."""
    from alexnet_tvm.distribution.signing import keygen as make_keys

    pub, kid = make_keys(out, force=force)
    return f"wrote {out} (private, keep it) and {pub} ({kid})"
