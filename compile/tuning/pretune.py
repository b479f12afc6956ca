"""Records timed before a search (tune.py's first steps, on plan.py's Plan): another CPU's seeds
re-timed here (adapt.py), the records' schedules re-derived for the target's cores
(cores_transfer.py), and this host's batch-1 schedules at a larger batch (batch_transfer.py)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from ..frontend.load import load_prepared
from .measure import make_runner
from .plan import Plan, TuneConfig, has_record, host_workers, measuring_threads, tuning_tasks

log = logging.getLogger(__name__)


def _with_measurers(cfg: TuneConfig, plan: Plan, measure):
    """``measure(builder, runner)`` with the warm builder and the target's runner, both gone after."""
    from .workers import WarmBuilder

    with measuring_threads(cfg.target, plan.cores):
        builder = WarmBuilder(max_workers=host_workers(cfg.target, plan.cores), timeout_sec=cfg.builder_timeout)
        runner = make_runner(cfg.target)
        try:
            return measure(builder, runner)
        finally:
            builder.shutdown()
            del runner  # its worker pool goes now, not at interpreter exit (where psutil is half torn down)


def retime(cfg: TuneConfig, plan: Plan):
    """adapt: the seed set's best schedules, timed here, as this host's first records (adapt.py)."""
    from .adapt import retime_seeds, seed_database

    seed_db = seed_database(cfg.seed_from)
    res = _with_measurers(cfg, plan, lambda b, r: retime_seeds(plan.tasks, plan.target, seed_db, plan.database, b, r))
    log.info("re-timed %d seed schedules here in %.0f s: %d of %d tasks have a record timed on this CPU%s",
             res.timed, res.seconds, res.seeded, res.tasks,
             f"; no seed for {', '.join(res.unseeded)}" if res.unseeded else "")
    replan(cfg, plan)
    return res


def retarget_cores(cfg: TuneConfig, plan: Plan):
    """to_target_cores: the best schedules written for another core count, re-derived for the
    target's and timed here (cores_transfer.py)."""
    from .cores_transfer import cores_line, transfer_cores

    res = _with_measurers(cfg, plan, lambda b, r: transfer_cores(plan.tasks, plan.cores, plan.target,
                                                                 plan.database, b, r))
    log.info("%s", cores_line(cfg.target.name, res))
    _count_tuned(plan)
    return res


def _count_tuned(plan: Plan) -> None:
    plan.already_tuned = sum(1 for t in plan.tasks if has_record(plan.database, t, plan.target))


def replan(cfg: TuneConfig, plan: Plan) -> None:
    """After records were added outside a search: what is tuned already, what is still to tune."""
    _count_tuned(plan)
    if cfg.focus is None and not cfg.extend:  # what still lacks a record
        plan.pending = [t for t in plan.pending if not has_record(plan.database, t, plan.target)]


def transfer(cfg: TuneConfig, plan: Plan):
    """from_batch_one: this host's batch-1 schedules timed at cfg.batch (batch_transfer.py)."""
    from .batch_transfer import transfer_batch_one, transfer_line

    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-tune-") as work:
        _, prepared = load_prepared(cfg.model, 1, cfg.overrides, cfg.precision, cfg.calibration, cfg.target,
                                    plan.target, Path(work))
    tasks_one = tuning_tasks(prepared, plan.target)
    res = _with_measurers(cfg, plan, lambda b, r: transfer_batch_one(plan.tasks, tasks_one, cfg.batch, plan.target,
                                                                     plan.database, b, r))
    log.info("%s", transfer_line(cfg.target.name, res))
    _count_tuned(plan)  # a task with no record at this batch may have one now
    return res
