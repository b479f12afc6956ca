"""evaluate: Top-1/Top-5 of a built library on a labelled set (alexnet_tvm.interface.evaluate)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import force_option


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--against", type=click.Choice(["pytorch", "onnxruntime", "onnxruntime-int8"]), default=None,
              help="Also score the source model on the same images, and report the agreement.")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="The source model for --against (default: the file the artifact was built from).")
@click.option("--report", type=click.Path(path_type=Path), default=None, help="Write the results as JSON.")
@click.option("--markdown", type=click.Path(path_type=Path), default=None, help="Write a markdown summary.")
@click.option("--min-top1", type=float, default=None, metavar="PERCENT", help="Exit 1 when Top-1 is below it.")
@click.option("--min-top5", type=float, default=None, metavar="PERCENT", help="Exit 1 when Top-5 is below it.")
@force_option(help="Replace existing --report/--markdown files.")
def evaluate(artifact: Path, data: Path, against: str | None, model: Path | None, report: Path | None,
             markdown: Path | None, min_top1: float | None, min_top5: float | None, force: bool) -> None:
    """Top-1/Top-5 of ARTIFACT on DATA: an ImageFolder, a flat folder with val_label.txt
    (NAME LABEL lines) or a val_list.txt (PATH LABEL lines); labels are 0-based class indices."""
    from alexnet_tvm.interface.evaluate import EvaluateConfig, evaluate as run_evaluate

    summary, passed = run_evaluate(EvaluateConfig(artifact=artifact, data=data, against=against, model=model,
                                                  report=report, markdown=markdown, min_top1=min_top1,
                                                  min_top5=min_top5, force=force))
    click.echo(summary, nl=False)
    if not passed:
        sys.exit(1)


COMMANDS = [evaluate]
