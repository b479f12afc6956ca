"""serve / serve-bench: parse, then call alexnet_tvm.interface.serve (no torch: runs where ``pull`` runs)."""

from __future__ import annotations

from pathlib import Path

import click

from alexnet_tvm.interface.serve import ServeOptions as Defaults  # a dataclass's defaults are its class's
from alexnet_tvm.target_choice import AUTO

from .options import (
    AT_LEAST_1, NON_NEGATIVE, POSITIVE, counts_option, host_option, out_option, port_option, registry_from_option,
    timeout_option, trust_option,
)


@click.command()
@click.argument("artifacts", nargs=-1, type=click.Path(path_type=Path))
@host_option(help="Bind address; anything but loopback needs --token.")
@port_option(Defaults.port, help="0 picks a free port.")
@click.option("--token", envvar="ALEXNET_TVM_SERVE_TOKEN", default=None,
              help="Bearer token clients must send (env ALEXNET_TVM_SERVE_TOKEN).")
@click.option("--name", default=None, help="Serve every artifact under this model name (default: the manifests').")
@click.option("--max-delay-ms", type=NON_NEGATIVE, default=Defaults.max_delay_ms, show_default=True,
              help="How long a batch waits to fill (0: take what is queued, as Triton's default).")
@click.option("--max-queue", type=AT_LEAST_1, default=Defaults.max_queue, show_default=True,
              help="Requests waiting per model; one more is answered 503 at once.")
@timeout_option(default=Defaults.timeout_s, help="Seconds per request; past it the answer is 504.", dest="timeout_s",
                type=POSITIVE)
@click.option("--max-body-mb", type=POSITIVE, default=Defaults.max_body_mb, show_default=True,
              help="Largest request body (413).")
@click.option("--max-image-mb", type=POSITIVE, default=Defaults.max_image_mb, show_default=True,
              help="Largest classify image file.")
@click.option("--max-image-pixels", type=AT_LEAST_1, default=Defaults.max_image_pixels, show_default=True,
              help="Largest classify image, width x height (413).")
@click.option("--pull", "pull_models", multiple=True, metavar="NAME",
              help="Pull this model's pack from --from (digests checked) and serve it.")
@registry_from_option(help="Registry for --pull: a folder or an http(s):// URL.")
@click.option("--pull-batch", multiple=True, type=AT_LEAST_1,
              help="Pull one pack per batch size (default: the smallest).")
@click.option("--pull-target", default=AUTO, show_default=True,
              help="Prefer packs of this target, as pull --target (auto: the targets.yaml entry this host runs); "
                   "otherwise any pack this machine can run.")
@trust_option(help="--pull: accept only packs signed by a key in this .pub or trusted-keys file (as pull --trust).")
def serve(artifacts: tuple[Path, ...], host: str, port: int, token: str | None, name: str | None,
          max_delay_ms: float, max_queue: int, timeout_s: float, max_body_mb: float, max_image_mb: float,
          max_image_pixels: int, pull_models: tuple[str, ...], registry: str | None, pull_batch: tuple[int, ...],
          pull_target: str, trust: tuple[Path, ...]) -> None:
    """Serve ARTIFACTS over the Open Inference Protocol (KServe v2) until SIGTERM."""
    from alexnet_tvm.interface.serve import ServeOptions, serve as run_serve

    run_serve(ServeOptions(list(artifacts), host=host, port=port, token=token, name=name, max_delay_ms=max_delay_ms,
                           max_queue=max_queue, timeout_s=timeout_s, max_body_mb=max_body_mb,
                           max_image_mb=max_image_mb, max_image_pixels=max_image_pixels,
                           pull_models=list(pull_models), registry=registry, pull_batch=list(pull_batch),
                           pull_target=pull_target, trust=trust), on_ready=click.echo)


@click.command("serve-bench")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@counts_option("--concurrency", default="1,32", show_default=True,
               help="Concurrent clients of each run, comma-separated.")
@click.option("--requests", type=AT_LEAST_1, default=200, show_default=True,
              help="Timed requests at each concurrency, per served round.")
@click.option("--warmup", type=click.IntRange(min=0), default=8, show_default=True,
              help="Untimed requests before each concurrency's timed ones, per served round.")
@click.option("--max-delay-ms", type=NON_NEGATIVE, default=Defaults.max_delay_ms, show_default=True,
              help="The server's --max-delay-ms.")
@click.option("--bare-runs", type=AT_LEAST_1, default=10, show_default=True,
              help="Timed calls of each bare artifact, per bare round.")
@click.option("--runs", type=AT_LEAST_1, default=3, show_default=True,
              help="Rounds of each side: bare and served take turns this many times; medians are reported.")
@out_option(default=Path("runs/serve-bench"), help="Folder for serve-bench.json and serve-bench.md.")
def serve_bench(artifacts: tuple[Path, ...], concurrency: list[int], requests: int, warmup: int,
                max_delay_ms: float, bare_runs: int, runs: int, out: Path) -> None:
    """Load-test a server on ARTIFACTS over loopback against the bare artifacts' throughput, in turns."""
    from alexnet_tvm.interface.serve import serve_bench as run_serve_bench

    click.echo(run_serve_bench(list(artifacts), out, concurrency=concurrency, requests=requests, warmup=warmup,
                               max_delay_ms=max_delay_ms, bare_runs=bare_runs, runs=runs))


COMMANDS = [serve, serve_bench]
