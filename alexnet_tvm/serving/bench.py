"""``serve-bench``: a bounded load run on loopback, measured against the bare artifact.

A server is started as a child process on the artifacts; then bare rounds and served rounds
take turns, ``runs`` of each: a bare round times every artifact in this process (``run_batch``
on its built batch, no HTTP), a served round has N concurrent clients send a fixed number of
one-image binary infer requests, for each N. The ratio that matters is the server's images/s
over the bare images/s of the artifact that batch size lands on: what HTTP, decoding, queueing
and padding cost.

Why turns: on a shared machine the noise comes in bursts of seconds. Timed one after the other,
a burst lands on one side only and the ratio moves by 10-20 % (one run read 115.7 % of bare).
Alternating, each served round has a bare round just before it; the ratio reported is the
median over rounds of served / bare of the same round, the throughputs the medians over rounds
(as ``bench --runs`` takes turns between runtimes, alexnet_tvm.runtime.bench.time_in_rounds).

Like with like: a served round's images/s is its requests over its wall time, so a burst of noise
counts in full; the bare images/s it is divided by is likewise the round's calls over their total
time (the mean), not over the median call, which a burst that slows 3 of 10 calls does not move.
The 1-client latency is compared median to median (served p50 against the median bare call).
Failed requests are counted by HTTP status code (or ``connection``, ``timeout``, ``bad answer``);
the clients are serving.load's (one thread and keep-alive connection each).
Nothing here asserts a target; it records.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from alexnet_tvm.errors import ServeError
from alexnet_tvm.fsutil import write_json, write_text
from alexnet_tvm.host import cpu_model
from alexnet_tvm.runtime.artifact import load_artifact

from .models import quiet_thread_pool, ServedModel, group_models
from .process import server_process
from .load import client_load
from .protocol import encode_binary_request

log = logging.getLogger(__name__)

BARE, SERVED = "bare", "served"


@dataclass
class ServeBenchConfig:
    artifacts: list[Path]
    out: Path
    concurrency: list[int] = field(default_factory=lambda: [1, 32])
    #: timed requests at each concurrency, per served round
    requests: int = 200
    #: requests sent at each concurrency before the timed ones of a round (connections, caches)
    warmup: int = 8
    max_delay_ms: float = 0.0
    #: timed calls of each bare artifact, per bare round
    bare_runs: int = 10
    #: rounds of each kind: bare, served, bare, served, ...
    runs: int = 3
    #: seconds one request may take before the run counts it as an error
    request_timeout: float = 120.0
    start_timeout: float = 300.0


@dataclass
class BareTiming:
    """One artifact's bare numbers, the samples of every bare round pooled."""

    batch: int
    #: the median call: what the 1-client p50 is compared with
    median_ms: float
    #: images over the total time of the calls (the mean): what served throughput is compared with
    images_per_s: float


@dataclass
class Round:
    """One turn of one side, in the order they ran."""

    index: int
    kind: str  # "bare" or "served"
    #: seconds from the first round's start to this one's, and how long it took
    start_s: float
    seconds: float
    #: bare: batch -> mean ms of a call in this round; served: clients -> images/s in this round
    results: dict[str, float]
    #: served: failed requests by HTTP status code (or connection / timeout / bad answer)
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class LoadRun:
    concurrency: int
    #: timed requests per served round, and the rounds
    requests: int
    rounds: int
    errors: int
    errors_by_status: dict[str, int]
    seconds: float
    #: median over rounds
    images_per_s: float
    #: over every answered request of every round
    p50_ms: float
    p99_ms: float
    #: the artifact a batch of ``concurrency`` rows lands on, and its bare numbers (samples pooled)
    bare_batch: int
    bare_images_per_s: float
    bare_ms: float
    #: median over rounds of (served images/s) / (bare images/s of the bare round just before)
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
    rounds: list[Round] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def check_config(cfg: ServeBenchConfig) -> None:
    if not cfg.concurrency or min(cfg.concurrency) < 1:
        raise ServeError("--concurrency needs positive client counts, e.g. 1,32")
    if cfg.requests < 1 or cfg.warmup < 0 or cfg.bare_runs < 1 or cfg.runs < 1:
        raise ServeError("--requests, --bare-runs and --runs must be at least 1, --warmup at least 0")


def load_served(folders: list[Path]) -> ServedModel:
    """The one model the artifacts make (loaded in this process, for the bare rounds, with the
    thread pool set as the server sets its own)."""
    quiet_thread_pool()
    model = group_models([load_artifact(f) for f in folders])
    if len(model) != 1:
        raise ServeError(f"serve-bench measures one model; these artifacts are {', '.join(sorted(model))}")
    return next(iter(model.values()))


def bare_round(served: ServedModel, runs: int, warmup: int = 3) -> dict[int, list[float]]:
    """Each artifact's ``runs`` latencies (ms) on its built batch, in this process; ``warmup``
    calls first wake its thread pool (the server's ran last)."""
    rng = np.random.default_rng(0)
    samples: dict[int, list[float]] = {}
    for art in served.artifacts:
        x = rng.standard_normal(art.input_shape).astype(np.float32)
        for _ in range(warmup):
            art.run_batch(x)
        samples[art.batch] = []
        for _ in range(runs):
            t = time.perf_counter()
            art.run_batch(x)
            samples[art.batch].append(1e3 * (time.perf_counter() - t))
    return samples


@dataclass
class _Served:
    """One concurrency's numbers across the served rounds."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    ips: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)


def served_round(url: str, served: ServedModel, cfg: ServeBenchConfig, bare_mean_ms: dict[int, float],
                 acc: dict[int, _Served]) -> tuple[dict[str, float], dict[str, int]]:
    """Every concurrency once against the server; its images/s (and ratio to ``bare_mean_ms``, the
    mean call of the bare round just before) go into ``acc``. Returns the round's images/s and
    failures by code."""
    x = np.random.default_rng(1).standard_normal((1, *served.row_shape)).astype(np.float32)
    body, headers = encode_binary_request(x, served.input_name)
    infer_url = f"{url}/v2/models/{served.name}/infer"
    results: dict[str, float] = {}
    errors: Counter = Counter()
    for c in cfg.concurrency:
        if cfg.warmup:
            client_load(infer_url, body, headers, c, cfg.warmup, cfg.request_timeout)
        load = client_load(infer_url, body, headers, c, cfg.requests, cfg.request_timeout)
        ips = len(load.latencies) / load.seconds if load.seconds > 0 else 0.0
        batch = served.pick(c).batch
        a = acc.setdefault(c, _Served())
        a.latencies += load.latencies
        a.errors += load.errors
        a.seconds += load.seconds
        a.ips.append(ips)
        a.ratios.append(ips / (1e3 * batch / bare_mean_ms[batch]) if bare_mean_ms[batch] > 0 else float("nan"))
        results[str(c)] = ips
        errors += load.errors
        log.info("concurrency %d: %.1f images/s (%.0f%% of this round's bare batch %d), %d errors",
                 c, ips, 100 * a.ratios[-1], batch, sum(load.errors.values()))
    return results, dict(errors)


def _load_run(c: int, a: _Served, cfg: ServeBenchConfig, bare: BareTiming) -> LoadRun:
    p50, p99 = (float(np.percentile(a.latencies, q)) for q in (50, 99)) if a.latencies else (float("nan"),) * 2
    return LoadRun(c, cfg.requests, cfg.runs, sum(a.errors.values()), dict(sorted(a.errors.items())), a.seconds,
                   float(np.median(a.ips)), p50, p99, bare.batch, bare.images_per_s, bare.median_ms,
                   float(np.median(a.ratios)), p50 - bare.median_ms)


def take_turns(url: str, served: ServedModel, cfg: ServeBenchConfig) -> tuple[list[Round], dict[int, list[float]],
                                                                              dict[int, _Served]]:
    """``cfg.runs`` bare rounds and as many served rounds, alternating, bare first."""
    rounds: list[Round] = []
    bare_samples: dict[int, list[float]] = {a.batch: [] for a in served.artifacts}
    acc: dict[int, _Served] = {}
    t0 = time.perf_counter()
    for r in range(cfg.runs):
        start = time.perf_counter()
        samples = bare_round(served, cfg.bare_runs)
        bare_mean_ms = {b: float(np.mean(s)) for b, s in samples.items()}
        for b, s in samples.items():
            bare_samples[b] += s
        rounds.append(Round(2 * r, BARE, start - t0, time.perf_counter() - start,
                            {str(b): ms for b, ms in bare_mean_ms.items()}))
        log.info("round %d bare: %s", r + 1, ", ".join(f"batch {b} {ms:.2f} ms mean" for b, ms in bare_mean_ms.items()))
        start = time.perf_counter()
        results, errors = served_round(url, served, cfg, bare_mean_ms, acc)
        rounds.append(Round(2 * r + 1, SERVED, start - t0, time.perf_counter() - start, results, errors))
    return rounds, bare_samples, acc


def run_serve_bench(cfg: ServeBenchConfig) -> ServeBenchResult:
    """Bare and served rounds taking turns against a child server; writes serve-bench.json and .md."""
    check_config(cfg)
    served = load_served(cfg.artifacts)
    args = [*map(str, cfg.artifacts), "--max-delay-ms", str(cfg.max_delay_ms),
            "--max-queue", str(2 * max(cfg.concurrency)), "--timeout", str(cfg.request_timeout)]
    with server_process(args, start_timeout=cfg.start_timeout) as server:
        rounds, bare_samples, acc = take_turns(server.url, served, cfg)
    bare = {}
    for b, s in bare_samples.items():
        bare[b] = BareTiming(b, float(np.median(s)), 1e3 * b * len(s) / sum(s))
    runs = [_load_run(c, acc[c], cfg, bare[served.pick(c).batch]) for c in cfg.concurrency]
    for x in runs:
        log.info("concurrency %d: %.1f images/s (median of %d rounds: %.0f%% of bare batch %d), p50 %.2f ms, "
                 "p99 %.2f ms, errors %s", x.concurrency, x.images_per_s, x.rounds, 100 * x.ratio, x.bare_batch,
                 x.p50_ms, x.p99_ms, x.errors_by_status or 0)
    result = ServeBenchResult(served.name, served.target, cpu_model(), cfg.max_delay_ms, list(bare.values()), runs,
                              rounds)
    write_results(result, Path(cfg.out))
    return result


def _errors_cell(x: LoadRun) -> str:
    """``0``, or the total and its codes: ``3 (503: 2, timeout: 1)``."""
    if not x.errors:
        return "0"
    return f"{x.errors} ({', '.join(f'{k}: {v}' for k, v in x.errors_by_status.items())})"


def markdown_table(r: ServeBenchResult) -> str:
    n = max((x.rounds for x in r.runs), default=1)
    head = (f"serve-bench: model {r.model}, target {r.target}, CPU {r.cpu}, batches "
            f"{', '.join(str(b.batch) for b in r.bare)}, max delay {r.max_delay_ms:g} ms; {n} bare and {n} "
            "served rounds taking turns, images/s and served / bare are medians over rounds (bare images/s: "
            "calls over their total time; bare ms: the median call)\n\n"
            "| clients | requests | errors | images/s | p50 ms | p99 ms | bare batch | bare images/s | "
            "served / bare | bare ms | p50 - bare ms |\n|" + "---|" * 11 + "\n")
    rows = [f"| {x.concurrency} | {x.requests} | {_errors_cell(x)} | {x.images_per_s:.1f} | {x.p50_ms:.2f} | "
            f"{x.p99_ms:.2f} | {x.bare_batch} | {x.bare_images_per_s:.1f} | {100 * x.ratio:.1f} % | "
            f"{x.bare_ms:.2f} | {x.p50_over_bare_ms:+.2f} |" for x in r.runs]
    return head + "\n".join(rows) + "\n" + rounds_table(r.rounds)


def rounds_table(rounds: list[Round]) -> str:
    """The rounds in the order they ran: bare ones give ms per batch, served ones images/s per client count."""
    if not rounds:
        return ""
    lines = ["", "| round | kind | start s | seconds | results | errors |", "|---|---|---|---|---|---|"]
    for x in rounds:
        unit = ("batch {} {:.2f} ms" if x.kind == BARE else "{} clients {:.1f} images/s")
        results = ", ".join(unit.format(k, v) for k, v in x.results.items())
        errors = ", ".join(f"{k}: {v}" for k, v in x.errors.items()) or "0"
        lines.append(f"| {x.index + 1} | {x.kind} | {x.start_s:.1f} | {x.seconds:.1f} | {results} | "
                     f"{errors if x.kind == SERVED else '-'} |")
    return "\n".join(lines) + "\n"


def write_results(r: ServeBenchResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "serve-bench.json", r.to_dict())
    write_text(out / "serve-bench.md", markdown_table(r))
