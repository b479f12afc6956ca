"""targets / tune / build: parse, then call alexnet_tvm.interface.compile_jobs."""

from __future__ import annotations

from pathlib import Path

import click

from alexnet_tvm.interface.adapt import BUDGET_MINUTES

from .options import (
    batch_option, compile_options, force_option, logs_dir_option, out_option, seed_option, target_option,
    targets_file_option,
)


@click.command("targets")
@targets_file_option()
@logs_dir_option()
def targets_cmd(targets_file: Path | None, logs_dir: Path | None) -> None:
    """List the targets in targets.yaml (the one --target auto picks is starred) and their record
    sets (tuning_logs/<target>/<cpu>/; the one a build here takes is marked)."""
    from alexnet_tvm.interface.compile_jobs import targets

    for line in targets(targets_file, logs_dir):
        click.echo(line)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@target_option()
@batch_option(help="Default: the target's batch sizes, each in turn.")
@click.option("--trials", type=int, default=None, help="Total trials (default: the target's budget).")
@click.option("--trials-per-task", type=int, default=None)
@click.option("--time-budget", type=float, default=None, help="Minutes; stop after the round that crosses it.")
@click.option("--trials-per-round", type=int, default=32, show_default=True)
@seed_option()
@click.option("--extend", is_flag=True, help="Also tune tasks that already have records (more budget on a log).")
@click.option("--fresh", is_flag=True,
              help="Tune from an empty log, then replace this model's records (records timed on another machine "
                   "are not comparable with new ones).")
@click.option("--only", multiple=True, metavar="TEXT",
              help="Tune only the tasks whose name contains TEXT (repeatable), e.g. matmul for the FC layers.")
@click.option("--from-batch-1", "from_batch_one", is_flag=True,
              help="At a batch size above 1, first time this host's batch-1 schedules with the batch loop "
                   "outermost (one image at a time) and keep them where they are the fastest (--adapt does this).")
@click.option("--adapt", is_flag=True,
              help="Make the nearest CPU's records this CPU's (re-timed here), then tune where the layer profile "
                   f"shows TVM losing to ONNX Runtime here; --time-budget (default {BUDGET_MINUTES:g}) is the whole "
                   "run's wall time.")
@click.option("--boards", type=click.IntRange(min=1), default=None,
              help="rpc targets: measure on at most N boards at once (default: every board free under the key).")
@compile_options
def tune(model: Path, target_name: str, batch: int | None, trials: int | None, trials_per_task: int | None,
         time_budget: float | None, trials_per_round: int, seed: int, extend: bool, fresh: bool, only: tuple[str, ...],
         from_batch_one: bool, adapt: bool, precision: str, calibrate: str | None, calib_images: int, threads: int | None,
         targets_file: Path | None, logs_dir: Path | None, boards: int | None, **model_flags) -> None:
    """Tune MODEL with MetaSchedule; re-running resumes where records are missing."""
    from alexnet_tvm.interface.compile_jobs import tune as run_tune

    for line in run_tune(model, target_name, adapt=adapt, batch=batch, time_budget=time_budget, seed=seed,
                         precision=precision, targets_file=targets_file, logs_dir=logs_dir, model_flags=model_flags,
                         threads=threads, total_trials=trials, trials_per_task=trials_per_task,
                         trials_per_round=trials_per_round, extend=extend, fresh=fresh, only=only,
                         from_batch_one=from_batch_one, boards=boards, calibrate=calibrate, calib_images=calib_images):
        click.echo(line)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@target_option()
@batch_option(default=1)
@out_option(help="Artifact folder. Default: artifacts/<model>-<target>-b<batch>.")
@force_option()
@compile_options
def build(model: Path, target_name: str, batch: int, out: Path | None, force: bool, precision: str,
          calibrate: str | None, calib_images: int, threads: int | None, targets_file: Path | None,
          logs_dir: Path | None, **model_flags) -> None:
    """Build a deployable artifact (library, parameters, manifest) with the tuning records.

    MODEL is a TorchScript, ONNX, .pt2 or state_dict file; no sidecar is needed (the input
    size and classes are read from the file; the model flags override them). --precision int8
    quantizes it with --calibrate DATA; a QDQ ONNX file (ORT's quantizer) builds as int8 as it is."""
    from alexnet_tvm.interface.compile_jobs import build as run_build

    click.echo(run_build(model, target_name, batch=batch, out=out, precision=precision, targets_file=targets_file,
                         logs_dir=logs_dir, force=force, model_flags=model_flags, calibrate=calibrate,
                         calib_images=calib_images, threads=threads))


COMMANDS = [targets_cmd, tune, build]
