"""predict / verify: thin wrappers over alexnet_tvm.runtime and alexnet_tvm.interface."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top-k", default=5, show_default=True)
def predict(artifact: Path, images: tuple[Path, ...], top_k: int) -> None:
    """Classify IMAGES with a built ARTIFACT (no torch needed)."""
    from alexnet_tvm.runtime.predict import predict_files

    for name, top in predict_files(artifact, list(images), top_k):
        click.echo(f"{name}: " + ", ".join(f"{label} {p:.4f}" for label, p in top))


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--against", required=True, help="pytorch | onnxruntime | ascend:RESULTS_DIR")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Reference model file. Default: the one the artifact was built from.")
@click.option("--eval-set", type=click.Path(path_type=Path), default=None,
              help="ImageFolder-style labelled images (class folders named as the model's classes).")
@click.option("--inputs", type=click.Path(path_type=Path), default=None,
              help="ascend: the preprocessed .bin folder the OM model ran on.")
@click.option("--labels", type=click.Path(path_type=Path), default=None, help="ascend: val_label.txt")
@click.option("--random", "random_count", default=8, show_default=True, help="Seeded random inputs.")
@click.option("--seed", default=0, show_default=True)
@click.option("--min-top1-agreement", default=0.999, show_default=True)
@click.option("--max-abs-error", default=1e-3, show_default=True, help="Relative to the reference logits' range.")
@click.option("--report", type=click.Path(path_type=Path), default=None, help="JSON report.")
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="JUnit XML report.")
@click.option("--target", "target_name", default=None,
              help="An rpc target from targets.yaml: run the artifact on its board (the reference runs here).")
@click.option("--targets-file", type=click.Path(path_type=Path), default=None)
def verify(artifact: Path, against: str, model: Path | None, eval_set: Path | None, inputs: Path | None,
           labels: Path | None, random_count: int, seed: int, min_top1_agreement: float, max_abs_error: float,
           report: Path | None, junit: Path | None, target_name: str | None, targets_file: Path | None) -> None:
    """Check ARTIFACT against a reference; exit 0 on pass, 1 on fail."""
    from alexnet_tvm.interface.verify import VerifyConfig, run_verify
    from alexnet_tvm.runtime.verify import Gates, summary_lines

    board = None
    if target_name:
        from alexnet_tvm.cli.compile_cmds import resolve_target
        from alexnet_tvm.compile.rpc import board_for

        board = board_for(resolve_target(target_name, targets_file))
    rep = run_verify(VerifyConfig(artifact=artifact, against=against, model=model, eval_set=eval_set, board=board,
                                  random_count=random_count, seed=seed, report=report, junit=junit,
                                  inputs=inputs, labels=labels,
                                  gates=Gates(min_top1_agreement=min_top1_agreement, max_abs_error=max_abs_error)))
    click.echo("\n".join(summary_lines(rep)))
    sys.exit(0 if rep.passed else 1)


COMMANDS = [predict, verify]


@click.command()
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True)
@click.option("--target", default="auto", show_default=True)
@click.option("--epochs", default=10, show_default=True)
@click.option("--retrain", is_flag=True, help="Train again even if the demo checkpoint exists.")
def demo(out_dir: Path, target: str, epochs: int, retrain: bool) -> None:
    """Main job on the embedded digits: train, export, build with committed records, verify, time."""
    from alexnet_tvm.interface.demo import DemoConfig, run_demo

    res = run_demo(DemoConfig(out_dir=out_dir, target=target, epochs=epochs, retrain=retrain))
    click.echo("\n".join(res.lines))
    sys.exit(0 if all(res.verify_passed.values()) else 1)


COMMANDS.append(demo)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", default="auto", show_default=True)
@click.option("--batch", "batches", default="1", show_default=True, help="Comma-separated batch sizes.")
@click.option("--runs", default=20, show_default=True, help="Timed runs per runtime (median, p10, p90).")
@click.option("--threads", type=int, default=None, help="Default: the target's num-cores.")
@click.option("--untuned", is_flag=True, help="Also time TVM without tuning records (slow).")
@click.option("--bf16", is_flag=True, help="Also time TVM with bf16 FC weights (build --precision bf16).")
@click.option("--layers", is_flag=True,
              help="Also time each layer inside the model, TVM against ONNX Runtime (layers.md).")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs/bench"),
              show_default=True)
@click.option("--targets-file", type=click.Path(path_type=Path), default=None)
@click.option("--logs-dir", type=click.Path(path_type=Path), default=None, help="Default: the project's tuning_logs/.")
def bench(model: Path, target: str, batches: str, runs: int, threads: int | None, untuned: bool, bf16: bool,
          layers: bool, out_dir: Path, targets_file: Path | None, logs_dir: Path | None) -> None:
    """Time PyTorch, ONNX Runtime and TVM side by side; write bench.json, bench.md, bench.png."""
    from alexnet_tvm.errors import ToolkitError
    from alexnet_tvm.interface.bench import BenchConfig, run_bench, summary_lines

    try:
        sizes = [int(b) for b in batches.split(",") if b.strip()]
    except ValueError:
        raise ToolkitError(f"--batch {batches!r}: give comma-separated integers") from None
    if not sizes or min(sizes) < 1 or runs < 3:
        raise ToolkitError("--batch needs positive sizes and --runs at least 3")
    res = run_bench(BenchConfig(model=model, target=target, batches=sizes, out_dir=out_dir, runs=runs,
                                threads=threads, untuned=untuned, bf16=bf16, layers=layers, targets_file=targets_file,
                                logs_dir=logs_dir))
    click.echo("\n".join(summary_lines(res)))


COMMANDS.append(bench)
