"""serve / serve-bench: one job per command over alexnet_tvm.serving (no torch: they run where ``pull`` runs).

``serve --pull-target`` is resolved as ``pull --target`` is
(:func:`alexnet_tvm.target_choice.preferred_pack_target`), with the same default (``auto``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from alexnet_tvm.errors import FlagClashError
from alexnet_tvm.serving.limits import MIB, Limits
from alexnet_tvm.target_choice import AUTO

#: the server's limits when a flag is not given (serving's), which the flags' defaults show
DEFAULT_LIMITS = Limits()
#: the port ``serve`` binds unless told otherwise
DEFAULT_PORT = 8000


@dataclass
class ServeOptions:
    """``serve``'s flags as given (sizes in MiB; the limits are checked by serving)."""

    artifacts: list[Path]
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    name: str | None = None
    max_delay_ms: float = DEFAULT_LIMITS.max_delay_ms
    max_queue: int = DEFAULT_LIMITS.max_queue
    timeout_s: float = DEFAULT_LIMITS.timeout_s
    max_body_mb: float = DEFAULT_LIMITS.max_body_bytes / MIB
    max_image_mb: float = DEFAULT_LIMITS.max_image_bytes / MIB
    max_image_pixels: int = DEFAULT_LIMITS.max_image_pixels
    #: ``--pull NAME``: packs pulled from ``registry`` and served besides ``artifacts``
    pull_models: list[str] = field(default_factory=list)
    registry: str | None = None
    pull_batch: list[int] = field(default_factory=list)
    pull_target: str = AUTO
    trust: tuple[Path, ...] = ()


def serve(opts: ServeOptions, on_ready: Callable[[str], None]) -> None:
    """Serve until SIGTERM; ``on_ready`` gets the line saying what is served where. ``--pull``
    without a registry, or ``--trust`` without ``--pull``, is refused before anything is read."""
    if opts.pull_models and not opts.registry:
        raise FlagClashError("--pull needs --from URL")
    if opts.trust and not opts.pull_models:
        raise FlagClashError("--trust is for --pull")
    from alexnet_tvm.distribution.signing import Trust
    from alexnet_tvm.serving.app import ServeConfig, serve as run_serve
    from alexnet_tvm.serving.pulled import PullRequest
    from alexnet_tvm.target_choice import preferred_pack_target

    limits = Limits(max_queue=opts.max_queue, max_delay_ms=opts.max_delay_ms, timeout_s=opts.timeout_s,
                    max_body_bytes=int(opts.max_body_mb * MIB), max_image_bytes=int(opts.max_image_mb * MIB),
                    max_image_pixels=opts.max_image_pixels)
    trusted = Trust.from_files(opts.trust)  # a bad key file fails before anything is downloaded
    pull = None
    if opts.pull_models:
        pull = PullRequest(list(opts.pull_models), opts.registry, preferred_pack_target(opts.pull_target),
                           list(opts.pull_batch), trust=trusted)
    cfg = ServeConfig(list(opts.artifacts), host=opts.host, port=opts.port, token=opts.token, name=opts.name,
                      limits=limits, pull=pull)
    run_serve(cfg, on_ready=lambda url, names: on_ready(f"serving {', '.join(names)} at {url}"))


def serve_bench(artifacts: list[Path], out: Path, concurrency: list[int], requests: int, warmup: int,
                max_delay_ms: float, bare_runs: int, runs: int) -> str:
    """Load-test a server on ``artifacts`` against the bare artifacts; the report the command prints."""
    from alexnet_tvm.serving.bench import ServeBenchConfig, markdown_table, run_serve_bench

    res = run_serve_bench(ServeBenchConfig(list(artifacts), out, concurrency=concurrency, requests=requests,
                                           warmup=warmup, max_delay_ms=max_delay_ms, bare_runs=bare_runs,
                                           runs=runs))
    return markdown_table(res) + f"wrote {out / 'serve-bench.json'} and {out / 'serve-bench.md'}"
