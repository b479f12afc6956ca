"""MetaSchedule tuning with the XGBoost cost model, resumable, with a trial progress bar.

Records go to ``tuning_logs/<target>/<cpu>/``, this host's own record set (a JSON database
shared by every model for that target, see :mod:`alexnet_tvm.recordsets`). A re-run
tunes only the tasks that still lack a record there, and an interrupted run keeps every
record committed so far.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from alexnet_tvm.errors import TuningError
from alexnet_tvm.targets import TargetSpec

from .measure import make_runner
from .plan import Plan, TuneConfig, has_record, host_workers, make_plan, measuring_threads
from .pretune import retarget_cores, retime, transfer

log = logging.getLogger(__name__)


@dataclass
class TaskReport:
    name: str
    weight: int
    trials: int = 0
    first_ms: float | None = None
    best_ms: float | None = None

    @property
    def speedup(self) -> float | None:
        if self.first_ms and self.best_ms:
            return self.first_ms / self.best_ms
        return None


@dataclass
class TuneResult:
    db_dir: Path
    tasks: int
    already_tuned: int
    tuned_now: int
    trials: int
    seconds: float
    stopped_by_budget: bool
    reports: list[TaskReport] = field(default_factory=list)
    #: adapt: what re-timing the seed set gave (adapt.RetimeResult)
    retime: object | None = None
    #: from_batch_one: what timing the batch-1 schedules here gave (batch_transfer.TransferResult)
    transfer: object | None = None
    #: to_target_cores: what timing the schedules re-derived for the cores gave (cores_transfer.CoresTransferResult)
    cores: object | None = None
    #: rpc: the boards measured on and those lost mid-tune (fleet.Fleet)
    fleet: object | None = None


class _BudgetSpent(Exception):
    pass


def _progress_callback(reports: list[TaskReport], bar, deadline: float | None, stop: dict, fleet=None):
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class Progress(PyMeasureCallback):
        """Counts trials, tracks the best latency per task, and enforces the budget."""

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            rep = reports[task_id]
            costs = []
            errors = []
            for b, r in zip(builder_results, runner_results):
                if b.error_msg is None and r.error_msg is None and r.run_secs:
                    costs.append(1e3 * sum(float(s) for s in r.run_secs) / len(r.run_secs))
                else:
                    errors.append(b.error_msg or r.error_msg or "no timing")
            rep.trials += len(measure_candidates)
            if costs:
                if rep.first_ms is None:
                    rep.first_ms = costs[0]
                rep.best_ms = min(costs + ([rep.best_ms] if rep.best_ms is not None else []))
            bar.update(len(measure_candidates))
            tuned = [r for r in reports if r.best_ms is not None]
            total = sum(r.best_ms * r.weight for r in tuned)
            bar.set_postfix_str(f"best {total:.2f} ms over {len(tuned)}/{len(reports)} tasks")
            # An exception raised here crosses the FFI and comes back as a bare RuntimeError,
            # so the reason to stop is kept in ``stop`` for tune() to read.
            # several boards: a round whose only failures are boards lost (fleet.py) goes on while one is left
            lost_only = fleet is not None and fleet.note_round(errors)
            if measure_candidates and not costs and not lost_only:
                first = str(errors[-1]).strip().splitlines()  # the latest cause
                stop["error"] = TuningError(f"task {rep.name}: a round of {len(measure_candidates)} candidates "
                                            f"gave no valid measurement ({first[-1][:300] if first else 'unknown'})")
                raise stop["error"]
            if deadline is not None and time.monotonic() + _next_round_estimate(stop) > deadline:
                stop["budget"] = True
                _join_the_others(task_scheduler, task_id, len(reports), stop)
                raise _BudgetSpent()

    return Progress()


def _next_round_estimate(stop: dict) -> float:
    """Seconds the next round may take: the longest round between two callbacks so far (the first
    round, which starts the builder workers, is not counted). A round is not started when it
    would end past the deadline: stopping only after the crossing round ran a 20-minute adapt
    for 21 min 15 s on the Zen 3 (a batch-16 round of conv1 takes 1-2 minutes)."""
    now = time.monotonic()
    rounds = stop.setdefault("rounds", [])
    if "last" in stop:
        rounds.append(now - stop["last"])
    stop["last"] = now
    return max(rounds, default=0.0)


def _join_the_others(task_scheduler, task_id: int, n_tasks: int, stop: dict) -> None:
    """Before the budget ends the run: collect every other task's round still in flight, so its
    measurements reach the database. MetaSchedule joins a task's round only when it next picks
    that task, which in the first sweep over the tasks comes minutes later; stopping without
    this lost them (a 3-minute adapt over 7 tasks of the demo model kept 32 of 224 trials)."""
    if stop.get("joining"):
        return
    stop["joining"] = True
    for other in range(n_tasks):
        if other == task_id:
            continue
        try:
            task_scheduler.join_running_task(other)  # its callbacks commit the records first
        except Exception:  # nothing in flight for that task, or its own budget stop: both fine
            pass


def _tune_pending(cfg: TuneConfig, plan: Plan, result: TuneResult, t0: float) -> None:
    """Tune ``plan.pending`` into ``plan.work_dir`` and fill in ``result``; the runner's workers
    measure with the target's cores, and the per-task logs go on every exit."""
    from tvm.s_tir import meta_schedule as ms

    from alexnet_tvm.records import prune_database

    from ..int8.module import tune_contexts
    from ..int8.tensor_intrin import import_tvm_intrinsics

    spec = cfg.target
    total = min(plan.total, plan.per_task * len(plan.pending))
    _forget_unnamed_ms_handlers()
    import_tvm_intrinsics()  # what the tune contexts import: 4 s here instead of 77 s or more
    if plan.int8:  # the GEMMs in the VNNI space (int8/module.py)
        contexts, weights = tune_contexts(plan.pending, str(plan.work_dir), cfg.seed, max(plan.cores, 1))
    else:
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            plan.pending, work_dir=str(plan.work_dir), seed=cfg.seed, num_threads=host_workers(spec, plan.cores))
    if cfg.focus:  # adapt: the gradient scheduler spends trials where the most time is lost
        weights = [float(cfg.focus[t.task_name]) for t in plan.pending]
    reports = [TaskReport(t.task_name, int(t.weight)) for t in plan.pending]
    try:
        cost_model = "xgb"
        if cfg.focus is not None:
            from .adapt import warm_cost_model

            cost_model = warm_cost_model(contexts, plan.pending, plan.database, max(plan.cores, 1))
        with measuring_threads(spec, plan.cores):
            _run_tuner(cfg, spec, contexts, weights, plan.database, total, plan.per_task, plan.cores, reports,
                       result, cost_model)
    finally:
        _cleanup_logs(plan.work_dir)  # on every exit, Ctrl-C included
    result.reports = reports
    result.trials = sum(r.trials for r in reports)
    result.tuned_now = sum(1 for t in plan.pending if has_record(plan.database, t, plan.target))
    result.seconds = time.perf_counter() - t0
    if plan.fleet is not None:
        plan.fleet.settle()  # boards that left without a candidate count as lost too
    before, after = prune_database(plan.work_dir)
    log.info("kept the %d best of %d records (per workload) in %s", after, before, plan.work_dir)


def tune(cfg: TuneConfig) -> TuneResult:
    """Tune the model's tasks for ``cfg.target`` into its database. Records are committed as they
    come, so a killed run loses nothing and a re-run tunes only what still lacks a record; a
    ``fresh`` run replaces the old records for its workloads once it is done."""
    import tvm  # noqa: F401  (loaded before anything is checked, as the helpers all need it)

    plan = make_plan(cfg)
    t0 = time.perf_counter()
    result_retime = retime(cfg, plan) if cfg.seed_from is not None else None
    result_cores = retarget_cores(cfg, plan) if cfg.to_target_cores and plan.cores else None
    result_transfer = transfer(cfg, plan) if cfg.from_batch_one and cfg.batch > 1 else None
    log.info("%d tasks, %d already have records%s, %d to tune", len(plan.tasks), plan.already_tuned,
             f" in {plan.work_dir}" if cfg.fresh else "", len(plan.pending))
    result = TuneResult(plan.work_dir, len(plan.tasks), plan.already_tuned, 0, 0, 0.0, False, retime=result_retime,
                        transfer=result_transfer, cores=result_cores, fleet=plan.fleet)
    if plan.pending:
        _tune_pending(cfg, plan, result, t0)
    if cfg.fresh:
        # with nothing pending every task has a record already (and the database is not asked again)
        done = not plan.pending or all(has_record(plan.database, t, plan.target) for t in plan.tasks)
        _merge_fresh(plan.work_dir, plan.db_dir, done=done)
    result.db_dir = plan.db_dir
    return result


def _merge_fresh(work_dir: Path, db_dir: Path, done: bool) -> None:
    """Put a fresh run's records in place of the old ones for the same workloads. The scratch
    database goes once every task has a record there; until then a re-run resumes from it."""
    import shutil

    from alexnet_tvm.records import merge_tuning_records

    from .database import check_readable

    res = merge_tuning_records(work_dir, db_dir, replace=True, validate=check_readable)
    log.info("fresh records replace the old ones for their workloads in %s (%d -> %d records)",
             db_dir, res.records_before, res.records_after)
    if done:
        shutil.rmtree(work_dir, ignore_errors=True)
        for empty in (work_dir.parent, work_dir.parent.parent):  # .fresh/<target>/, then .fresh/
            try:
                empty.rmdir()
            except OSError:  # another target's or CPU's run is still there
                break


def _run_tuner(cfg: TuneConfig, spec: TargetSpec, contexts, weights, database, total: int, per_task: int,
               cores: int, reports: list[TaskReport], result: TuneResult, cost_model="xgb") -> None:
    """MetaSchedule's task loop with our warm builder, progress and budget; a spent budget is a
    normal end (the records are kept), any other failure is raised."""
    from tqdm import tqdm
    from tvm.s_tir import meta_schedule as ms

    from .rpc import builder_export_for
    from .workers import WarmBuilder

    deadline = time.monotonic() + 60 * cfg.time_budget if cfg.time_budget else None
    if cfg.deadline is not None:
        deadline = min(deadline or cfg.deadline, cfg.deadline)
    fleet = result.fleet
    runner = make_runner(spec) if fleet is None else make_runner(spec, fleet.boards)  # checks a board first
    builder = WarmBuilder(max_workers=host_workers(spec, cores), timeout_sec=cfg.builder_timeout,
                          f_export=builder_export_for(spec))
    callbacks = list(ms.measure_callback.MeasureCallback.create("default"))
    bar = tqdm(total=total, unit="trial", desc=f"tune {spec.name}", disable=None)
    stop: dict = {}
    callbacks.append(_progress_callback(reports, bar, deadline, stop, fleet))
    try:
        ms.tune.tune_tasks(tasks=contexts, task_weights=weights, work_dir=str(result.db_dir),
                           max_trials_global=total, max_trials_per_task=per_task,
                           num_trials_per_iter=cfg.trials_per_round,
                           builder=builder, runner=runner, database=database, cost_model=cost_model,
                           measure_callbacks=callbacks, task_scheduler="gradient")
    except Exception:
        if "error" in stop:
            raise stop["error"] from None
        if not stop.get("budget"):
            raise
        result.stopped_by_budget = True
        log.info("time budget spent; records so far are kept")
    finally:
        bar.close()
        builder.shutdown()


def _forget_unnamed_ms_handlers() -> None:
    """MetaSchedule rebuilds its logging config from the handlers already on its logger and
    crashes on an unnamed one, which a second tune in one process (a second batch size)
    finds there. Unnamed handlers cannot be referenced by its config anyway."""
    ms_logger = logging.getLogger("tvm.s_tir.meta_schedule")
    ms_logger.handlers = [h for h in ms_logger.handlers if h.get_name()]


def _cleanup_logs(db_dir: Path) -> None:
    """MetaSchedule writes per-task logs into its work dir; the database is the asset, not those."""
    import shutil

    shutil.rmtree(db_dir / "logs", ignore_errors=True)
