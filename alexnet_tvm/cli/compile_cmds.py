"""targets / tune / build: thin wrappers over alexnet_tvm.compile."""

from __future__ import annotations

from pathlib import Path

import click

from alexnet_tvm.meta import PRECISIONS
from alexnet_tvm.paths import default_targets_file, default_tuning_logs

targets_option = click.option("--targets-file", type=click.Path(path_type=Path), default=None,
                              help="Default: targets.yaml of the project.")
precision_option = click.option("--precision", type=click.Choice(PRECISIONS), default="fp32",
                                 show_default=True,
                                 help="bf16: store the FC weights as bf16 (half the weight traffic; fp32 math).")
logs_option = click.option("--logs-dir", type=click.Path(path_type=Path), default=None,
                           help="Tuning databases, one folder per target. Default: the project's tuning_logs/.")


def resolve_target(name: str, targets_file: Path | None):
    from alexnet_tvm.compile.targets import load_targets, pick_target

    return pick_target(load_targets(targets_file or default_targets_file()), name)


@click.command("targets")
@targets_option
def targets_cmd(targets_file: Path | None) -> None:
    """List the targets in targets.yaml (the one --target auto picks is starred)."""
    from alexnet_tvm.compile.targets import AUTO, load_targets, pick_target
    from alexnet_tvm.errors import TargetError

    targets = load_targets(targets_file or default_targets_file())
    try:
        auto = pick_target(targets, AUTO).name
    except TargetError:
        auto = None
    import json

    for name, t in targets.items():
        star = "*" if name == auto else " "
        click.echo(f"{star} {name:16s} {t.runner:5s} batches {','.join(map(str, t.batch_sizes)):10s} "
                   f"{json.dumps(t.target)}  {t.description}")


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", "target_name", default="auto", show_default=True)
@click.option("--batch", type=int, default=None, help="Default: the target's batch sizes, each in turn.")
@click.option("--trials", type=int, default=None, help="Total trials (default: the target's budget).")
@click.option("--trials-per-task", type=int, default=None)
@click.option("--time-budget", type=float, default=None, help="Minutes; stop after the round that crosses it.")
@click.option("--trials-per-round", type=int, default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--extend", is_flag=True, help="Also tune tasks that already have records (more budget on a log).")
@click.option("--fresh", is_flag=True,
              help="Tune from an empty log, then replace this model's records (records timed on another machine "
                   "are not comparable with new ones).")
@click.option("--only", multiple=True, metavar="TEXT",
              help="Tune only the tasks whose name contains TEXT (repeatable), e.g. matmul for the FC layers.")
@precision_option
@targets_option
@logs_option
def tune(model: Path, target_name: str, batch: int | None, trials: int | None, trials_per_task: int | None,
         time_budget: float | None, trials_per_round: int, seed: int, extend: bool, fresh: bool, only: tuple[str, ...], precision: str,
         targets_file: Path | None, logs_dir: Path | None) -> None:
    """Tune MODEL with MetaSchedule; re-running resumes where records are missing."""
    from alexnet_tvm.compile.tune import TuneConfig, format_report, tune as run_tune

    spec = resolve_target(target_name, targets_file)
    for b in [batch] if batch else spec.batch_sizes:
        res = run_tune(TuneConfig(model=model, target=spec, logs_dir=logs_dir or default_tuning_logs(), batch=b,
                                  total_trials=trials, trials_per_task=trials_per_task, time_budget=time_budget,
                                  trials_per_round=trials_per_round, seed=seed,
                                  precision=precision, extend=extend, fresh=fresh, only=only))
        click.echo(f"{spec.name} batch {b}: {res.tasks} tasks, {res.already_tuned} already tuned, "
                   f"{res.tuned_now} tuned now, {res.trials} trials in {res.seconds:.0f} s"
                   + (" (time budget reached)" if res.stopped_by_budget else "") + f"; records in {res.db_dir}")
        if res.reports:
            click.echo("\n".join(format_report(res)))


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", "target_name", default="auto", show_default=True)
@click.option("--batch", type=int, default=1, show_default=True)
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Artifact folder. Default: artifacts/<model>-<target>-b<batch>.")
@click.option("--force", is_flag=True)
@precision_option
@targets_option
@logs_option
def build(model: Path, target_name: str, batch: int, out: Path | None, force: bool, precision: str,
          targets_file: Path | None, logs_dir: Path | None) -> None:
    """Build a deployable artifact (library, parameters, manifest) with the tuning records."""
    from alexnet_tvm.compile.build import BuildConfig, build as run_build

    spec = resolve_target(target_name, targets_file)
    suffix = "" if precision == "fp32" else f"-{precision}"
    out = out or Path("artifacts") / f"{model.name.split('.')[0]}-{spec.name}-b{batch}{suffix}"
    res = run_build(BuildConfig(model=model, target=spec, out=out, logs_dir=logs_dir or default_tuning_logs(),
                                batch=batch, force=force, precision=precision))
    click.echo(f"wrote {res.out} in {res.seconds:.1f} s ({res.tuned}/{res.tasks} tasks tuned"
               + (f"; UNTUNED: {', '.join(res.untuned)}" if res.untuned else "") + ")")


COMMANDS = [targets_cmd, tune, build]
