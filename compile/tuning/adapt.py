"""Another CPU's records as the start of this CPU's: re-time them here, then warm the cost model.

A record is a schedule and the time it took on the machine that tuned it. On another
microarchitecture the schedule still builds and still computes the right thing, but its
time is not this machine's (Zen 4 records ran at 0.69x ONNX Runtime on an Intel Xeon), and
a stock search from random candidates needs hours to find better ones (project issue 15).
So ``tune --adapt`` starts from the nearest family's records instead:

1. :func:`retime_seeds`: the best few schedules of every task in the seed set are built and
   timed **here** and committed to this host's own set with this host's times. After this
   step every task has a record timed on this CPU, and a build takes it, with no fallback.
2. :func:`warm_cost_model`: the XGBoost model is trained on those measurements before the
   first round, so the search ranks its first candidates by this machine's behaviour.
   The re-timed schedules are also the evolutionary search's first population, because
   it draws that from the database it tunes into.

What gets the remaining budget (the layers where TVM loses to ONNX Runtime on this CPU) is
decided a layer above, where the layer profile can be measured (interface/adapt.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: schedules re-timed per task: the seed set's best few (its own order, timed on its CPU)
SEEDS_PER_TASK = 3


@dataclass
class RetimeResult:
    """What re-timing a seed set gave for one model and batch."""

    tasks: int
    #: tasks that now have a record timed here
    seeded: int
    #: tasks the seed set had no record for (they need a search from scratch)
    unseeded: list[str] = field(default_factory=list)
    #: schedules timed (built and run) here
    timed: int = 0
    seconds: float = 0.0


def seed_candidates(seed_db, task, k: int = SEEDS_PER_TASK) -> list:
    """The seed set's best ``k`` records for ``task`` (none when it never saw the workload)."""
    mod = task.dispatched[0]
    if not seed_db.has_workload(mod):
        return []
    return list(seed_db.get_top_k(seed_db.commit_workload(mod), k))


def retime_seeds(tasks: list, target, seed_db, own_db, builder, runner, k: int = SEEDS_PER_TASK) -> RetimeResult:
    """Build and time each task's best ``k`` seed schedules here; commit those that ran to
    ``own_db`` with this machine's times. One builder and runner call for all of them."""
    import time

    t0 = time.perf_counter()
    res = RetimeResult(tasks=len(tasks), seeded=0)
    jobs = []  # (task, seed record)
    for task in tasks:
        records = seed_candidates(seed_db, task, k)
        if not records:
            res.unseeded.append(task.task_name)
        jobs += [(task, rec) for rec in records]
    timed = measure_and_commit(jobs, target, own_db, builder, runner)
    res.timed = len(timed)
    res.seeded = len({name for name, _ in timed})
    res.seconds = time.perf_counter() - t0
    return res


@dataclass
class CandidateTiming:
    """What timing candidate schedules against a database's records gave (:func:`time_candidates`)."""

    #: tasks that had a candidate
    tasks: int = 0
    #: candidates that ran here (each is now a record of its task)
    timed: int = 0
    #: task -> (best ms before, best candidate ms) where a candidate is now the fastest
    improved: dict[str, tuple[float, float]] = field(default_factory=dict)
    seconds: float = 0.0


def candidates_line(t: CandidateTiming, what: str) -> str:
    """``timed N <what> of M tasks here in S s; now the fastest: ...`` (or none is faster)."""
    won = ", ".join(f"{k} {a:.3g} -> {b:.3g} ms" for k, (a, b) in t.improved.items())
    return (f"timed {t.timed} {what} of {t.tasks} tasks here in {t.seconds:.0f} s; "
            + (f"now the fastest: {won}" if won else "none is faster than the records"))


def best_ms(database, task) -> float | None:
    """The fastest record's median time for ``task`` in ``database``, ms."""
    mod = task.dispatched[0]
    if not database.has_workload(mod):
        return None
    top = [r for r in database.get_top_k(database.commit_workload(mod), 1) if r.run_secs]
    return median_secs(top[0].run_secs) * 1e3 if top else None


def time_candidates(res: CandidateTiming, candidates: list[tuple[object, list]], target, database, builder,
                    runner) -> CandidateTiming:
    """Time (task, its unmeasured candidate records) with :func:`measure_and_commit`, where they
    compete with the task's records, and fill in ``res``."""
    import time

    t0 = time.perf_counter()
    before: dict[str, float | None] = {}
    jobs = []
    for task, records in candidates:
        if records:
            before[task.task_name] = best_ms(database, task)
            jobs += [(task, rec) for rec in records]
    timed = measure_and_commit(jobs, target, database, builder, runner)
    fastest: dict[str, float] = {}
    for name, secs in timed:
        fastest[name] = min(fastest.get(name, float("inf")), secs * 1e3)
    improved = {}
    for name, ms in fastest.items():
        old = before.get(name)
        if old is None or ms < old:
            improved[name] = (float("nan") if old is None else old, ms)
    res.tasks, res.timed, res.improved = len(before), len(timed), improved
    res.seconds = time.perf_counter() - t0
    return res


def measure_and_commit(jobs: list, target, own_db, builder, runner) -> list[tuple[str, float]]:
    """Build and time each (task, record)'s schedule here, in one builder and one runner call,
    and commit those that ran to ``own_db`` with this machine's times; a trace that no longer
    applies to its task's workload is skipped. Returns (task name, median seconds) per schedule
    that ran."""
    from tvm.s_tir.meta_schedule.builder import BuilderInput
    from tvm.s_tir.meta_schedule.database import TuningRecord
    from tvm.s_tir.meta_schedule.runner import RunnerInput

    candidates = []
    for task, rec in jobs:
        try:
            candidates.append((task, rec, rec.as_measure_candidate()))
        except Exception as e:  # a trace that does not apply to this workload: skip it
            log.debug("a schedule for %s does not apply: %s", task.task_name, e)
    if not candidates:
        return []
    built = builder.build([BuilderInput(c.sch.mod, target) for _, _, c in candidates])
    runnable = [(j, b) for j, b in zip(candidates, built) if b.error_msg is None]
    device = "cpu" if target.kind.name == "llvm" else target.kind.name  # a device name, not a target kind
    futures = runner.run([RunnerInput(b.artifact_path, device, c.args_info) for (_, _, c), b in runnable])
    timed = []
    for ((task, rec, cand), _), fut in zip(runnable, futures):
        r = fut.result()
        if r.error_msg is not None or not r.run_secs:
            continue
        own_db.commit_tuning_record(TuningRecord(rec.trace, own_db.commit_workload(task.dispatched[0]), r.run_secs,
                                                 target, cand.args_info))
        timed.append((task.task_name, median_secs(r.run_secs)))
    return timed


def median_secs(run_secs) -> float:
    """A record's (or runner result's) median run time, seconds."""
    import numpy as np

    return float(np.median([float(s) for s in run_secs]))


def warm_cost_model(contexts: list, tasks: list, database, cores: int, k: int = 32):
    """An XGBoost cost model already trained on what ``database`` holds for these tasks (the
    re-timed seeds, and any records from earlier runs here), for MetaSchedule's tune_tasks."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.runner import RunnerResult

    # it trains once it has seen num_warmup_samples measurements (100 by default, i.e. not
    # before the third round): the re-timed seeds are real measurements, so fewer will do
    model = ms.CostModel.create("xgb", num_tuning_cores=cores, tree_method="auto", num_warmup_samples=16)
    trained = 0
    for ctx, task in zip(contexts, tasks):
        mod = task.dispatched[0]
        if not database.has_workload(mod):
            continue
        records = [r for r in database.get_top_k(database.commit_workload(mod), k) if r.run_secs]
        if not records:
            continue
        model.update(ctx, [r.as_measure_candidate() for r in records],
                     [RunnerResult(r.run_secs, None) for r in records])
        trained += len(records)
    log.info("cost model warmed on %d measured schedules from %s", trained, "this host's records")
    return model


def seed_database(folder: Path):
    """The seed set's database, read-only (a private copy: nothing is ever written to it)."""
    from .database import open_database

    return open_database(folder, for_tuning=False)
