"""``serve-bench``: a bounded load run on loopback, measured against the bare artifact.

First the bare libraries are timed in this process (``run_batch`` on their built batch, no
HTTP); then a server is started as a child process on the same artifacts and N concurrent
clients send a fixed number of one-image binary infer requests. The ratio that matters is
the server's images/s over the bare images/s of the artifact that batch size lands on:
what HTTP, decoding, queueing and padding cost. Nothing here asserts a target; it records.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from alexnet_tvm.errors import ServeError
from alexnet_tvm.fsutil import write_json, write_text
from alexnet_tvm.runtime.artifact import load_artifact
from alexnet_tvm.runtime.bench import time_callable

from .models import ServedModel, group_models
from .process import server_process
from .protocol import HEADER_LENGTH, decode_binary_response, encode_binary_request

log = logging.getLogger(__name__)


@dataclass
class ServeBenchConfig:
    artifacts: list[Path]
    out: Path
    concurrency: list[int] = field(default_factory=lambda: [1, 32])
    requests: int = 200
    #: requests sent at each concurrency before the timed ones (connections, caches)
    warmup: int = 8
    max_delay_ms: float = 0.0
    bare_runs: int = 30
    #: seconds one request may take before the run counts it as an error
    request_timeout: float = 120.0
    start_timeout: float = 300.0


@dataclass
class BareTiming:
    batch: int
    median_ms: float
    images_per_s: float


@dataclass
class LoadRun:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    images_per_s: float
    p50_ms: float
    p99_ms: float
    #: the artifact a batch of ``concurrency`` rows lands on, and its bare numbers
    bare_batch: int
    bare_images_per_s: float
    bare_ms: float
    ratio: float
    p50_over_bare_ms: float


@dataclass
class ServeBenchResult:
    model: str
    target: str
    cpu: str
    max_delay_ms: float
    bare: list[BareTiming]
    runs: list[LoadRun]

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_model() -> str:
    """The CPU's marketing name (``lscpu``'s Model name), for the record."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def check_config(cfg: ServeBenchConfig) -> None:
    if not cfg.concurrency or min(cfg.concurrency) < 1:
        raise ServeError("--concurrency needs positive client counts, e.g. 1,32")
    if cfg.requests < 1 or cfg.warmup < 0 or cfg.bare_runs < 1:
        raise ServeError("--requests and --bare-runs must be at least 1, --warmup at least 0")


def time_bare(folders: list[Path], runs: int) -> tuple[ServedModel, list[BareTiming]]:
    """Each artifact's own latency on its built batch, in this process, before any server runs."""
    model = group_models([load_artifact(f) for f in folders])
    if len(model) != 1:
        raise ServeError(f"serve-bench measures one model; these artifacts are {', '.join(sorted(model))}")
    served = next(iter(model.values()))
    rng = np.random.default_rng(0)
    timings = []
    for art in served.artifacts:
        x = rng.standard_normal(art.input_shape).astype(np.float32)
        t = time_callable("tvm", art.run_batch, x, runs=runs, warmup=3)
        timings.append(BareTiming(art.batch, t.median_ms, t.images_per_s))
        log.info("bare batch %d: %.2f ms, %.1f images/s", art.batch, t.median_ms, t.images_per_s)
    return served, timings


async def _client_load(url: str, body: bytes, headers: dict, concurrency: int, requests: int,
                       timeout: float) -> tuple[list[float], int, float]:
    """Latencies (ms) of the answered requests, the error count, and the wall time of the run."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    issued = itertools.count()
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async def client() -> None:
            nonlocal errors
            while next(issued) < requests:
                t = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        data = await resp.read()
                        ok = resp.status == 200 and decode_binary_response(data, resp.headers[HEADER_LENGTH]).size
                except (aiohttp.ClientError, asyncio.TimeoutError, KeyError, ValueError):
                    ok = False
                if ok:
                    latencies.append(1e3 * (time.perf_counter() - t))
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - t0


def _load_run(url: str, served: ServedModel, bare: dict[int, BareTiming], c: int,
              cfg: ServeBenchConfig) -> LoadRun:
    x = np.random.default_rng(1).standard_normal((1, *served.row_shape)).astype(np.float32)
    body, headers = encode_binary_request(x, served.input_name)
    infer_url = f"{url}/v2/models/{served.name}/infer"
    if cfg.warmup:
        asyncio.run(_client_load(infer_url, body, headers, c, cfg.warmup, cfg.request_timeout))
    lat, errors, seconds = asyncio.run(_client_load(infer_url, body, headers, c, cfg.requests, cfg.request_timeout))
    ref = bare[served.pick(c).batch]
    ips = len(lat) / seconds if seconds > 0 else 0.0
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99)) if lat else (float("nan"),) * 2
    run = LoadRun(c, cfg.requests, errors, seconds, ips, p50, p99, ref.batch, ref.images_per_s, ref.median_ms,
                  ips / ref.images_per_s if ref.images_per_s else float("nan"), p50 - ref.median_ms)
    log.info("concurrency %d: %.1f images/s (%.0f%% of bare batch %d), p50 %.2f ms, p99 %.2f ms, %d errors",
             c, ips, 100 * run.ratio, ref.batch, p50, p99, errors)
    return run


def run_serve_bench(cfg: ServeBenchConfig) -> ServeBenchResult:
    """Bare timings, then the load runs against a child server; writes serve-bench.json and .md."""
    check_config(cfg)
    served, bare = time_bare(cfg.artifacts, cfg.bare_runs)
    by_batch = {b.batch: b for b in bare}
    args = [*map(str, cfg.artifacts), "--max-delay-ms", str(cfg.max_delay_ms),
            "--max-queue", str(2 * max(cfg.concurrency)), "--timeout", str(cfg.request_timeout)]
    with server_process(args, start_timeout=cfg.start_timeout) as server:
        runs = [_load_run(server.url, served, by_batch, c, cfg) for c in cfg.concurrency]
    result = ServeBenchResult(served.name, served.target, cpu_model(), cfg.max_delay_ms, bare, runs)
    write_results(result, Path(cfg.out))
    return result


def markdown_table(r: ServeBenchResult) -> str:
    head = (f"serve-bench: model {r.model}, target {r.target}, CPU {r.cpu}, batches "
            f"{', '.join(str(b.batch) for b in r.bare)}, max delay {r.max_delay_ms:g} ms\n\n"
            "| clients | requests | errors | images/s | p50 ms | p99 ms | bare batch | bare images/s | "
            "served / bare | bare ms | p50 - bare ms |\n|" + "---|" * 11 + "\n")
    rows = [f"| {x.concurrency} | {x.requests} | {x.errors} | {x.images_per_s:.1f} | {x.p50_ms:.2f} | "
            f"{x.p99_ms:.2f} | {x.bare_batch} | {x.bare_images_per_s:.1f} | {100 * x.ratio:.1f} % | "
            f"{x.bare_ms:.2f} | {x.p50_over_bare_ms:+.2f} |" for x in r.runs]
    return head + "\n".join(rows) + "\n"


def write_results(r: ServeBenchResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "serve-bench.json", r.to_dict())
    write_text(out / "serve-bench.md", markdown_table(r))
