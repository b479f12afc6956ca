"""predict / verify: parse, then call alexnet_tvm.interface.predict or alexnet_tvm.interface.verify."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import force_option, seed_option, target_option, targets_file_option


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Classes listed per image.")
def predict(artifact: Path, images: tuple[Path, ...], top_k: int) -> None:
    """Classify IMAGES with a built ARTIFACT (no torch needed)."""
    from alexnet_tvm.interface.predict import predict as run_predict

    for line in run_predict(artifact, list(images), top_k):
        click.echo(line)


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--against", required=True, help="pytorch | onnxruntime | onnxruntime-int8 | ascend:RESULTS_DIR")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Reference model file. Default: the one the artifact was built from.")
@click.option("--eval-set", type=click.Path(path_type=Path), default=None,
              help="ImageFolder-style labelled images (class folders named as the model's classes).")
@click.option("--inputs", type=click.Path(path_type=Path), default=None,
              help="ascend: the preprocessed .bin folder the OM model ran on.")
@click.option("--labels", type=click.Path(path_type=Path), default=None, help="ascend: val_label.txt")
@click.option("--random", "random_count", type=click.IntRange(min=0), default=8, show_default=True,
              help="Seeded random inputs (0: only --eval-set images).")
@seed_option()
@click.option("--min-top1-agreement", type=float, default=None,
              help="Default: 0.999 (fp32, bf16, fp16), 0.99 (int8).")
@click.option("--max-abs-error", type=float, default=None,
              help="Relative to the reference logits' range. Default: 1e-3 (fp32, bf16, fp16), 0.1 (int8).")
@click.option("--max-accuracy-drop", type=float, default=None,
              help="Labelled set: most accuracy (fraction) below the reference's. Default: none (fp32), 0.005 (int8).")
@click.option("--report", type=click.Path(path_type=Path), default=None, help="JSON report.")
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="JUnit XML report.")
@force_option(help="Replace existing --report/--junit files.")
@target_option(default=None,
               help="An rpc target from targets.yaml: run the artifact on its board (the reference runs here).")
@targets_file_option()
def verify(artifact: Path, against: str, model: Path | None, eval_set: Path | None, inputs: Path | None,
           labels: Path | None, random_count: int, seed: int, min_top1_agreement: float | None,
           max_abs_error: float | None, max_accuracy_drop: float | None, report: Path | None, junit: Path | None,
           force: bool, target_name: str | None, targets_file: Path | None) -> None:
    """Check ARTIFACT against a reference; exit 0 on pass, 1 on fail."""
    from alexnet_tvm.interface.verify import verify as run_verify

    summary, passed = run_verify(target_name, targets_file, artifact=artifact, against=against, model=model,
                                 eval_set=eval_set, random_count=random_count, seed=seed, report=report, junit=junit,
                                 force=force, inputs=inputs, labels=labels,
                                 gate_flags={"min_top1_agreement": min_top1_agreement,
                                             "max_abs_error": max_abs_error, "max_accuracy_drop": max_accuracy_drop})
    click.echo(summary)
    sys.exit(0 if passed else 1)


COMMANDS = [predict, verify]

