"""What a tuning run settles before it measures anything, shared by ``tune`` and ``pretune``.

:class:`TuneConfig` is what the caller asks for; :func:`make_plan` checks it and the machine,
prepares the model, extracts its tasks and opens the database, and returns the :class:`Plan`
that tune.py searches with and pretune.py's steps (re-time, re-derive for the cores, batch-1
at a larger batch) add records to first. Its own module so that both import it and neither
imports the other's internals.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alexnet_tvm.errors import TuningError
from alexnet_tvm.host import runtime_threads, tvm_threads_env, usable_cores
from alexnet_tvm.model.describe import ModelOverrides
from alexnet_tvm.targets import TargetSpec

from ..frontend.load import Calibration, load_prepared
from ..frontend.pipeline import is_gpu
from ..frontend.precision import check_precision


@dataclass
class TuneConfig:
    model: Path
    target: TargetSpec
    logs_dir: Path
    batch: int = 1
    total_trials: int | None = None
    trials_per_task: int | None = None
    #: minutes; tuning stops after the round that crosses it
    time_budget: float | None = None
    #: time.monotonic() after which no new round starts (adapt: one budget over several steps)
    deadline: float | None = None
    trials_per_round: int = 32
    seed: int = 0
    builder_timeout: float = 120.0
    #: "fp32" or "bf16" (FC weights stored as bf16, see frontend/precision.py)
    precision: str = "fp32"
    #: also tune tasks that already have records (the old records seed the cost model)
    extend: bool = False
    #: tune this model's tasks from an empty log, then replace their records in the target's
    #: database (for a new machine: records timed elsewhere would win the best-record choice)
    fresh: bool = False
    #: tune only the tasks whose name contains one of these (e.g. "matmul": the FC layers)
    only: tuple[str, ...] = ()
    #: the user's --input-size/--classes/--class-names/--mean/--std (model/describe.py)
    overrides: ModelOverrides | None = None
    #: int8: --calibrate DATA / --calib-images N (frontend/load.py)
    calibration: Calibration | None = None
    #: adapt: another CPU's record set (its database folder) whose best schedules are first
    #: re-timed here and committed to this host's own set (adapt.py)
    seed_from: Path | None = None
    #: adapt: tune exactly these tasks (records or not), each weighted by the milliseconds it
    #: loses to ONNX Runtime in the model, with a cost model warmed on this host's records;
    #: an empty dict tunes nothing (a re-time only)
    focus: dict[str, float] | None = None
    #: batch > 1: first time this host's batch-1 schedules at this batch, the batch loop
    #: outermost, as candidate records (batch_transfer.py)
    from_batch_one: bool = False
    #: first time the records' best schedules re-derived for the target's cores, where they were
    #: written for another count (cores_transfer.py; adapt does this)
    to_target_cores: bool = False
    #: rpc: measure on at most this many of the boards free under the key (fleet.py); None: all
    boards: int | None = None


def fresh_dir_for(logs_dir: Path, target: TargetSpec) -> Path:
    """Scratch database of a ``fresh`` run; it survives a kill, so a re-run resumes from it."""
    from alexnet_tvm.recordsets import timed_on

    return Path(logs_dir) / ".fresh" / target.name / timed_on(target)


def tuning_tasks(prepared, target) -> list:
    """Tasks that run per inference: weight repacking (moved to transform_params),
    reshapes (memory views at run time) and hand-scheduled kernels (``tirx.is_scheduled``,
    e.g. the Winograd transforms) are left out, they would only waste trials."""
    import tvm
    from tvm.relax import transform as T
    from tvm.s_tir import meta_schedule as ms

    mod = prepared
    if not is_gpu(target):
        with target:
            lifted = T.LiftTransformParams()(prepared)
        mod = tvm.IRModule({gv: f for gv, f in lifted.functions.items() if gv.name_hint != "main_transform_params"})
        mod = T.DeadCodeElimination(["main"])(mod)
    tasks = ms.relax_integration.extract_tasks(mod, target)
    return [t for t in tasks if not t.task_name.startswith("reshape") and not _hand_scheduled(t)]


def _hand_scheduled(task) -> bool:
    func = task.dispatched[0]["main"]
    return bool(func.attrs and func.attrs.get("tirx.is_scheduled", False))


def _select(tasks: list, only: tuple[str, ...]) -> list:
    """The tasks whose name contains one of ``only`` (all when empty); none is an error."""
    if not only:
        return tasks
    chosen = [t for t in tasks if any(s in t.task_name for s in only)]
    if not chosen:
        raise TuningError(f"--only {', '.join(only)}: no task matches (tasks: {', '.join(t.task_name for t in tasks)})")
    return chosen


def has_record(database, task, target) -> bool:
    return database.query_tuning_record(task.dispatched[0], target, task.task_name) is not None


@dataclass
class Plan:
    """What tune() settles before it measures anything, for the helpers that measure."""

    target: object  # tvm.target.Target
    cores: int
    total: int
    per_task: int
    tasks: list
    #: the tasks this run tunes: those without a record (all of them with ``extend``)
    pending: list
    already_tuned: int
    db_dir: Path
    #: where records go: db_dir, or the scratch database of a ``fresh`` run
    work_dir: Path
    database: object  # the MetaSchedule database in work_dir
    int8: bool = False
    fleet: object | None = None  # rpc: the boards measured on (fleet.Fleet)


def _check_settings(cfg: TuneConfig) -> tuple[object, int, int, int]:
    """The TVM target, its cores and the trial budget; bad values fail before anything slow."""
    spec = cfg.target
    check_precision(cfg.precision)
    target = spec.tvm_target()
    cores = (spec.cores or 0) if spec.is_cpu else 0
    if spec.is_cpu and cores < 1:
        raise TuningError(f"target {spec.name}: an LLVM target needs \"num-cores\" for tuning")
    total = cfg.total_trials if cfg.total_trials is not None else spec.total_trials
    per_task = cfg.trials_per_task if cfg.trials_per_task is not None else spec.trials_per_task
    if total < 1 or per_task < 1:
        raise TuningError("the trial budget must be positive")
    return target, cores, total, per_task


def _check_machine(spec: TargetSpec, boards: int | None = None):
    """The boards (with their cross compiler) or the GPU to measure on must be there: fail in
    seconds, before minutes of import and task extraction. Returns an rpc target's fleet."""
    import tvm

    fleet = None
    if spec.runner == "rpc":
        from .fleet import plan_fleet
        from .rpc import check_cross_compiler

        check_cross_compiler(spec)
        fleet = plan_fleet(spec, boards)  # logs the tune's first line: the boards it measures on
    elif boards is not None:
        raise TuningError(f"--boards: target {spec.name} is measured on this machine, not on RPC boards")
    if spec.kind == "cuda" and not tvm.cuda(0).exist:
        raise TuningError(f"target {spec.name} needs a CUDA GPU to measure on and this machine has none "
                          "(build works without one: it uses DLight default schedules)")
    return fleet


def make_plan(cfg: TuneConfig) -> Plan:
    """Check the settings and the machine, then import and prepare the model, extract its tasks
    and open the database, whose records decide what is still to tune."""
    from .database import open_database
    from alexnet_tvm.recordsets import database_folder, own_record_set

    spec = cfg.target
    target, cores, total, per_task = _check_settings(cfg)
    fleet = _check_machine(spec, cfg.boards)
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-tune-") as work:
        imported, prepared = load_prepared(cfg.model, cfg.batch, cfg.overrides, cfg.precision, cfg.calibration, spec,
                                           target, Path(work))
    tasks = _select(tuning_tasks(prepared, target), cfg.only)
    precision = imported.precision if imported.precision == "int8" else cfg.precision
    # resumes from this host's own records only
    db_dir = database_folder(own_record_set(cfg.logs_dir, spec), precision)
    work_dir = database_folder(fresh_dir_for(cfg.logs_dir, spec), precision) if cfg.fresh else db_dir
    database = open_database(work_dir, for_tuning=True)
    missing = [t for t in tasks if not has_record(database, t, target)]
    pending = tasks if cfg.extend else missing
    if cfg.focus is not None:
        pending = [t for t in tasks if t.task_name in cfg.focus]
    return Plan(target, cores, total, per_task, tasks, pending, len(tasks) - len(missing), db_dir, work_dir,
                 database, imported.precision == "int8", fleet)


@contextmanager
def measuring_threads(spec: TargetSpec, cores: int):
    """The runner's workers measure with the cores the library will use (a local CPU target);
    the variable is restored on every exit."""
    with tvm_threads_env(runtime_threads(cores) if spec.runner == "local" and spec.is_cpu else None):
        yield


def host_workers(spec: TargetSpec, cores: int) -> int:
    """Search threads and build processes beside the measurements. A CPU target measured here
    gets only its own cores, so builds never steal time from a measurement; a GPU (or a board)
    measures elsewhere, so every core this process may use searches and compiles candidates (a CUDA
    compile takes seconds; on an H200 machine, one search thread spent 50 s on one task's first round)."""
    if spec.runner == "local" and spec.is_cpu:
        return max(cores, 1)
    return usable_cores()
