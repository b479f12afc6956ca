"""targets / tune / build as the command line asks for them: by target *name*, with the
targets file, tuning logs and artifact folder left to :mod:`alexnet_tvm.settings`.

The compile functions take resolved inputs (a :class:`TargetSpec`, a logs folder, an
output folder); turning names and defaults into those is this module's one job, so
that the CLI only parses and the rules stay in settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from alexnet_tvm.errors import FlagClashError
from alexnet_tvm.target_choice import AUTO

if TYPE_CHECKING:
    from alexnet_tvm.compile.build import BuildResult
    from alexnet_tvm.compile.tuning.tune import TuneResult


def model_overrides(input_size: int | None = None, num_classes: int | None = None,
                    class_names: Path | None = None, mean: tuple | None = None, std: tuple | None = None):
    """The command line's --input-size/--classes/--class-names/--mean/--std as ModelOverrides."""
    from alexnet_tvm.model.describe import ModelOverrides, check_norm, read_class_names

    check_norm(mean or None, "--mean")
    check_norm(std or None, "--std")
    names = read_class_names(class_names) if class_names else None
    return ModelOverrides(input_size=input_size, num_classes=num_classes, class_names=names,
                          mean=tuple(mean) if mean else None, std=tuple(std) if std else None)


def target_lines(targets_file: Path | None = None, logs_dir: Path | None = None) -> list[str]:
    """One line per entry of targets.yaml (the one ``--target auto`` picks here is starred), each
    followed by its record sets (tuning_logs/<target>/<cpu>/), the one a build here takes marked."""
    import json

    from alexnet_tvm.errors import TargetError
    from alexnet_tvm.recordsets import set_lines
    from alexnet_tvm.settings import logs_dir_for_reading, targets_file_path
    from alexnet_tvm.target_choice import pick_target
    from alexnet_tvm.targets import load_targets

    targets = load_targets(targets_file_path(targets_file))
    try:
        auto = pick_target(targets, AUTO)
    except TargetError:
        auto = None
    lines = []
    for name, t in targets.items():
        lines.append(f"{'*' if auto and name == auto.name else ' '} {name:16s} {t.runner:5s} batches "
                     f"{','.join(map(str, t.batch_sizes)):10s} {json.dumps(t.target)}  {t.description}")
        sets = set_lines(logs_dir_for_reading(logs_dir, name), t)
        lines.append(f"    record sets: {'; '.join(sets) if sets else 'none (tune makes one for this machine)'}")
    if auto is not None:
        lines.append(f"* --target auto here: {auto.name} with {json.dumps(auto.target)} "
                     f"({cores_label(auto.target.get('num-cores'))}: what this process may use; --threads N for another count)")
    return lines


def cores_label(cores: int | None) -> str:
    return f"{cores} core{'' if cores == 1 else 's'}"


def calibration(calibrate: str | None = None, calib_images: int | None = None):
    """The int8 calibration of ``--calibrate DATA --calib-images N`` (compile/frontend/load.py)."""
    from alexnet_tvm.compile.frontend.load import Calibration
    from alexnet_tvm.model.quantize import DEFAULT_CALIB_IMAGES

    return Calibration(calibrate, calib_images or DEFAULT_CALIB_IMAGES)


def tune_each_batch(model: Path, target: str = AUTO, *, batch: int | None = None, targets_file: Path | None = None,
                    logs_dir: Path | None = None, model_flags: dict | None = None, calibrate: str | None = None,
                    calib_images: int | None = None, threads: int | None = None, **options: Any) -> Iterator[tuple[str, int, TuneResult]]:
    """Tune ``model`` at ``batch`` (default: each of the target's batch sizes in turn), yielding
    (target name, batch, result) as each finishes. ``model_flags``: :func:`model_overrides`'
    arguments; ``options``: the other TuneConfig fields."""
    from alexnet_tvm.compile.tuning.plan import TuneConfig
    from alexnet_tvm.compile.tuning.tune import tune
    from alexnet_tvm.settings import logs_dir_for_writing
    from alexnet_tvm.target_choice import resolve_target

    spec = resolve_target(target, targets_file, threads)
    logs = logs_dir_for_writing(logs_dir, spec.name)
    for b in [batch] if batch else spec.batch_sizes:
        yield spec.name, b, tune(TuneConfig(model=model, target=spec, logs_dir=logs, batch=b,
                                            overrides=model_overrides(**(model_flags or {})),
                                            calibration=calibration(calibrate, calib_images), **options))


def build_artifact(model: Path, target: str = AUTO, *, batch: int = 1, out: Path | None = None,
                   precision: str = "fp32", targets_file: Path | None = None, logs_dir: Path | None = None,
                   model_flags: dict | None = None, calibrate: str | None = None, calib_images: int | None = None,
                   threads: int | None = None, **options: Any) -> BuildResult:
    """Build ``model`` for a named target into ``out`` (default: settings' artifact folder).
    ``model_flags``: :func:`model_overrides`' arguments; ``options``: the other BuildConfig
    fields (``force``, ...)."""
    from alexnet_tvm.compile.build import BuildConfig, build
    from alexnet_tvm.settings import default_artifact_dir, logs_dir_for_reading
    from alexnet_tvm.target_choice import resolve_target

    spec = resolve_target(target, targets_file, threads)
    out = out or default_artifact_dir(Path(model).name.split(".")[0], spec.name, batch, precision)
    return build(BuildConfig(model=model, target=spec, out=out, logs_dir=logs_dir_for_reading(logs_dir, spec.name),
                             batch=batch, precision=precision, overrides=model_overrides(**(model_flags or {})),
                             calibration=calibration(calibrate, calib_images), **options))


def targets(targets_file: Path | None = None, logs_dir: Path | None = None) -> list[str]:
    """``targets``: :func:`target_lines`."""
    return target_lines(targets_file, logs_dir)


#: what ``tune --adapt`` chooses itself: the :func:`tune` arguments that cannot go beside it, by flag
ADAPT_CLASHES = {"fresh": "--fresh", "extend": "--extend", "only": "--only", "total_trials": "--trials",
                 "trials_per_task": "--trials-per-task", "calibrate": "--calibrate",
                 "from_batch_one": "--from-batch-1", "boards": "--boards"}


def adapt_clash(**options: Any) -> str | None:
    """``tune --adapt`` chooses its own tasks and budget: the usage error for the :func:`tune`
    ``options`` given beside it (:data:`ADAPT_CLASHES`), None when none."""
    clash = [flag for key, flag in ADAPT_CLASHES.items() if options.get(key)]
    return f"--adapt chooses its own tasks and budget; drop {', '.join(clash)}" if clash else None


def tune(model: Path, target: str = AUTO, *, adapt: bool = False, batch: int | None = None,
         time_budget: float | None = None, seed: int = 0, precision: str = "fp32",
         targets_file: Path | None = None, logs_dir: Path | None = None, model_flags: dict | None = None,
         threads: int | None = None, **options: Any) -> Iterator[str]:
    """``tune``: the lines it prints, each batch's as it finishes. ``adapt``: the nearest CPU's records
    made this CPU's, then tuning where ONNX Runtime wins (``time_budget`` default
    :data:`.adapt.BUDGET_MINUTES`), which chooses its own tasks and budget: ``options``
    (:func:`tune_each_batch`'s) given beside it raise :class:`FlagClashError` here, before anything runs."""
    if adapt:
        clash = adapt_clash(**options)
        if clash:
            raise FlagClashError(clash)
    return _tune_lines(model, target, adapt=adapt, batch=batch, time_budget=time_budget, seed=seed,
                       precision=precision, targets_file=targets_file, logs_dir=logs_dir, model_flags=model_flags,
                       threads=threads, **options)


def _tune_lines(model: Path, target: str, *, adapt: bool, batch: int | None, time_budget: float | None, seed: int,
                precision: str, targets_file: Path | None, logs_dir: Path | None, model_flags: dict | None,
                threads: int | None, **options: Any) -> Iterator[str]:
    """:func:`tune`'s lines, once its flags are checked (a generator runs nothing until asked)."""
    if adapt:
        from .adapt import BUDGET_MINUTES, adapt_each_batch, report_lines

        for name, report in adapt_each_batch(model, target, batch=batch,
                                             time_budget=time_budget or BUDGET_MINUTES,
                                             targets_file=targets_file, logs_dir=logs_dir, precision=precision,
                                             seed=seed, overrides=model_overrides(**(model_flags or {})),
                                             threads=threads):
            yield "\n".join(report_lines(name, report))
        return
    for name, b, res in tune_each_batch(model, target, batch=batch, targets_file=targets_file, logs_dir=logs_dir,
                                        time_budget=time_budget, seed=seed, precision=precision,
                                        model_flags=model_flags, threads=threads, **options):
        yield from tune_lines(name, b, res)


def tune_lines(name: str, batch: int, res: TuneResult) -> list[str]:
    """What ``tune`` prints for one batch: the batch-1 transfer, the counts, the task report, lost boards."""
    from alexnet_tvm.compile.tuning.batch_transfer import transfer_line
    from alexnet_tvm.interface.tune_report import format_report, lost_line

    lines = [transfer_line(name, res.transfer)] if res.transfer is not None else []
    lines.append(f"{name} batch {batch}: {res.tasks} tasks, {res.already_tuned} already tuned, "
                 f"{res.tuned_now} tuned now, {res.trials} trials in {res.seconds:.0f} s"
                 + (" (time budget reached)" if res.stopped_by_budget else "") + f"; records in {res.db_dir}")
    if res.reports:
        lines.append("\n".join(format_report(res)))
    if res.fleet is not None and res.fleet.lost:
        lines.append(lost_line(res.fleet))
    return lines


def build_line(res: BuildResult) -> str:
    """What ``build`` prints: the artifact, its time, cores and how many of its tasks were tuned."""
    used = res.records.name if res.records is not None else None
    return (f"wrote {res.out} in {res.seconds:.1f} s" + (f" for {cores_label(res.cores)}" if res.cores else "")
            + f" ({res.tuned}/{res.tasks} tasks tuned"
            + (f" with record set {used}" if used else "")
            + (f"; UNTUNED: {', '.join(res.untuned)}" if res.untuned else "") + ")")


def build(model: Path, target: str = AUTO, **options: Any) -> str:
    """``build``: :func:`build_artifact`, and the line saying what was built."""
    return build_line(build_artifact(model, target, **options))
