"""``tune --adapt``: make another CPU's records this CPU's, then tune where TVM loses here.

Inside one wall-clock budget for all batch sizes (import and task extraction included):

1. **Re-time the nearest family's records** (compile/tuning/adapt.py): when this host has no record
   set of its own, the nearest set's best schedules are built and timed here and written to
   this host's own set. Every task then has a record timed on this CPU. At a batch size above
   1, this host's batch-1 schedules are timed too, one image at a time (compile/tuning/batch_transfer.py).
2. **Profile the model here**, layer by layer against ONNX Runtime (the `bench --layers`
   measurement): the kernels that lose, and by how many milliseconds, are the tasks to tune.
   When none loses, every layer kernel is tuned, weighted by its time.
3. **Tune those tasks**: the re-timed schedules are the search's first population and the
   cost model is trained on them first; the gradient scheduler weighs each task by the
   milliseconds it loses. Above batch 1, what batch 1's search found is timed at this batch
   first (the batches are searched in ascending order).

Steps 1 and 2 run for every batch size first; the rest of the budget is then shared by the
fraction of each batch's run time that is lost (:func:`budget_shares`). An even split gave
batch 1 as much search as batch 16 on the Zen 3 although batch 1 lost 11 % of its time and
batch 16 28 %, and batch 16's rounds are the slow ones (docs/performance.md).

On a host with its own set, step 1 is skipped: adapt is then "tune where the profile says".
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from alexnet_tvm.errors import ToolkitError
from alexnet_tvm.target_choice import AUTO

log = logging.getLogger(__name__)

#: the whole run's wall time in minutes when ``tune --time-budget`` is not given
BUDGET_MINUTES = 20.0
#: whole-model runs behind the layer profile (a median per kernel)
PROFILE_RUNS = 10
#: below this many minutes left, a batch's share is not worth starting a search for
MIN_TUNE_MINUTES = 0.5


@dataclass
class AdaptReport:
    """One batch size's adaptation."""

    batch: int
    #: the set whose schedules seeded this host's (None: the host had its own)
    seeded_from: str | None
    retime: object | None  # compile.adapt.RetimeResult
    #: batch > 1: the batch-1 schedules timed at this batch (compile.batch_transfer.TransferResult)
    transfer: object | None = None
    #: the schedules re-derived for the target's cores (compile.cores_transfer.CoresTransferResult)
    cores: object | None = None
    #: task -> milliseconds lost to ONNX Runtime before tuning (the weights)
    losses: dict[str, float] = field(default_factory=dict)
    #: the profiled model's run time here (the sum of its kernels) and what its losing kernels
    #: lose in all, ms (0 when none loses: ``losses`` then weighs every kernel by its time)
    model_ms: float = 0.0
    lost_ms: float = 0.0
    tune: object | None = None  # compile.tune.TuneResult
    seconds: float = 0.0


def _check(spec, precision: str) -> None:
    if not (spec.is_cpu and spec.runner == "local"):
        raise ToolkitError(f"tune --adapt adapts records to this machine's CPU; {spec.name} is not a CPU target "
                           "timed here (tune it with tune --fresh)")
    if precision == "int8":
        raise ToolkitError("tune --adapt: int8 is not supported (its layers are not profiled by kind yet); "
                           "use tune --precision int8")


def adapt_each_batch(model: Path, target: str = AUTO, *, batch: int | None = None,
                     time_budget: float = BUDGET_MINUTES, targets_file: Path | None = None,
                     logs_dir: Path | None = None, precision: str = "fp32", seed: int = 0, overrides=None,
                     threads: int | None = None) -> Iterator[tuple[str, AdaptReport]]:
    """Adapt ``model``'s records for ``target`` to this CPU in ``time_budget`` minutes of wall
    time for all batch sizes: every batch re-timed and profiled, then searched in its share of
    what is left; yields (target name, report) per batch as its search ends."""
    from alexnet_tvm.compile.tuning.plan import TuneConfig
    from alexnet_tvm.recordsets import database_folder, record_choice
    from alexnet_tvm.settings import logs_dir_for_writing
    from alexnet_tvm.target_choice import resolve_target

    deadline = time.monotonic() + 60.0 * time_budget
    spec = resolve_target(target, targets_file, threads)
    _check(spec, precision)
    logs = logs_dir_for_writing(logs_dir, spec.name)
    choice = record_choice(logs, spec, announce=False)
    if choice.chosen is None:
        raise ToolkitError(f"tune --adapt: {spec.name} has no record set to start from under {logs / spec.name}; "
                           "tune --fresh searches from scratch")
    seed_dir = database_folder(choice.chosen.folder, precision) if choice.fallback else None
    if seed_dir is not None:
        log.info("no records timed on %s for %s: adapting %s's (%s)", choice.host, spec.name, choice.label,
                 choice.chosen.cpu_model)
    batches = [batch] if batch else sorted(spec.batch_sizes)  # batch 1 first: its schedules seed the others
    measured = []
    for b in batches:
        base = TuneConfig(model=model, target=spec, logs_dir=logs, batch=b, precision=precision, seed=seed,
                          overrides=overrides)
        measured.append((base, _measure_batch(base, seed_dir, choice.label if seed_dir else None)))
    shares = budget_shares([r for _, r in measured])
    log.info("search time left: %.1f min, shared %s", (deadline - time.monotonic()) / 60.0,
             ", ".join(f"batch {r.batch} {s:.0%}" for (_, r), s in zip(measured, shares)))
    for i, ((base, report), share) in enumerate(zip(measured, shares)):
        left = deadline - time.monotonic()
        end = time.monotonic() + left * share / (sum(shares[i:]) or 1.0)
        yield spec.name, _search_batch(base, report, end)


def _measure_batch(base, seed_dir: Path | None, seed_name: str | None) -> AdaptReport:
    """Steps 1 and 2 for one batch size: re-time the seeds (when the host has no set) and the
    batch-1 schedules (above batch 1), then profile."""
    from alexnet_tvm.compile.tuning.tune import tune

    t0 = time.monotonic()
    report = AdaptReport(base.batch, seed_name, None)
    # the cores step costs nothing where every record was written for the target's cores
    res = tune(replace(base, seed_from=seed_dir, focus={}, from_batch_one=base.batch > 1, to_target_cores=True))
    report.retime, report.transfer, report.cores = res.retime, res.transfer, res.cores
    report.losses, report.model_ms, report.lost_ms = losing_kernels(base)
    report.seconds = time.monotonic() - t0
    return report


def _search_batch(base, report: AdaptReport, end: float) -> AdaptReport:
    """Step 3 for one batch size, until ``end``."""
    from alexnet_tvm.compile.tuning.tune import tune

    t0 = time.monotonic()
    minutes = (end - t0) / 60.0
    if report.losses and minutes >= MIN_TUNE_MINUTES:
        # above batch 1, the schedules batch 1's search just found are timed here first
        report.tune = tune(replace(base, focus=report.losses, deadline=end, from_batch_one=base.batch > 1))
    else:
        log.info("batch %d: %.1f min left of its share; no search started", base.batch, minutes)
    report.seconds += time.monotonic() - t0
    return report


def budget_shares(reports: list[AdaptReport]) -> list[float]:
    """Each batch size's share of the search time: the fraction of its model time that its
    losing kernels lose to ONNX Runtime. A batch where nothing loses (its losses are then every
    kernel's time, see :func:`losing_kernels`) gets no share of its own; all-winning batches
    split evenly."""
    fractions = [r.lost_ms / r.model_ms if r.model_ms else 0.0 for r in reports]
    if not any(fractions):
        return [1.0 / len(reports)] * len(reports)
    total = sum(fractions)
    return [f / total for f in fractions]


def losing_kernels(cfg) -> tuple[dict[str, float], float, float]:
    """Build with this host's records, time each kernel inside the model against ONNX Runtime's
    nodes on the same input, and return the kernels that lose with the milliseconds they lose
    (every layer kernel, weighted by its time, when none loses), the model's time and the
    milliseconds lost in all (0 when none loses)."""
    from alexnet_tvm.compile.build import BuildConfig, build
    from alexnet_tvm.host import use_threads
    from alexnet_tvm.model.reference import onnx_file_for
    from alexnet_tvm.runtime.artifact import load_artifact
    from alexnet_tvm.runtime.layers import kernel_losses, layer_calls, ort_node_times

    threads = cfg.target.cores or 1
    use_threads(threads)
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-adapt-") as tmp:
        art_dir = Path(tmp) / "artifact"
        build(BuildConfig(model=cfg.model, target=cfg.target, out=art_dir, logs_dir=cfg.logs_dir, batch=cfg.batch,
                          precision=cfg.precision, overrides=cfg.overrides))
        art = load_artifact(art_dir)
        size = art.meta.input_size
        x = np.random.default_rng(0).standard_normal((cfg.batch, 3, size, size), dtype=np.float32)
        tvm_times = art.kernel_times(x, PROFILE_RUNS)
        ort_times = ort_node_times(onnx_file_for(cfg.model, cfg.batch, Path(tmp), size), x, threads, PROFILE_RUNS)
    lost = kernel_losses(tvm_times, ort_times)
    lost_ms = sum(lost.values())
    if not lost:
        lost = {name: ms for kind, ms, name in layer_calls(tvm_times) if kind != "other"}
    lost = {task_of_kernel(k): v for k, v in lost.items()}
    log.info("batch %d: TVM loses to ONNX Runtime here on %s", cfg.batch,
             ", ".join(f"{k} (+{v:.2f} ms)" for k, v in sorted(lost.items(), key=lambda kv: -kv[1])) or "nothing")
    return lost, sum(ms for _, ms in tvm_times), lost_ms


#: what TVM's SplitLayoutRewritePreproc appends to a kernel whose weights it prepacks
PREPACKED = "_prepacked"


def task_of_kernel(name: str) -> str:
    """The tuning task a kernel of the built library came from."""
    return name[: -len(PREPACKED)] if name.endswith(PREPACKED) else name


def report_lines(name: str, r: AdaptReport) -> list[str]:
    """What the CLI prints for one batch size."""
    lines = []
    if r.retime is not None:
        rt = r.retime
        lines.append(f"{name} batch {r.batch}: re-timed {rt.timed} schedules of {r.seeded_from}'s records here in "
                     f"{rt.seconds:.0f} s; {rt.seeded} of {rt.tasks} tasks now have records timed on this CPU"
                     + (f" (no seed for {', '.join(rt.unseeded)})" if rt.unseeded else ""))
    from alexnet_tvm.compile.tuning.batch_transfer import transfer_line
    from alexnet_tvm.compile.tuning.cores_transfer import cores_line

    if r.cores is not None and r.cores.tasks:
        lines.append(cores_line(f"{name} batch {r.batch}", r.cores))

    # batch 1's schedules: timed before the profile, and again before the search (after batch 1's)
    lines += [transfer_line(name, t) for t in (r.transfer, getattr(r.tune, "transfer", None)) if t is not None]
    lines.append(f"{name} batch {r.batch}: tuned where TVM lost to ONNX Runtime here: "
                 + ", ".join(f"{k} (+{v:.2f} ms)" for k, v in sorted(r.losses.items(), key=lambda kv: -kv[1])))
    if r.tune is not None:
        t = r.tune
        lines.append(f"{name} batch {r.batch}: {t.trials} trials in {t.seconds:.0f} s"
                     + (" (time budget reached)" if t.stopped_by_budget else "") + f"; records in {t.db_dir}")
    lines.append(f"{name} batch {r.batch}: adapted in {r.seconds:.0f} s")
    return lines
