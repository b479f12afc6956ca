"""demo: parse, then call alexnet_tvm.interface.demo."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import logs_dir_option, out_option, target_option, targets_file_option


@click.command()
@out_option(default=Path("runs/demo"), dest="out_dir")
@target_option()
@click.option("--epochs", default=10, show_default=True)
@click.option("--retrain", is_flag=True, help="Train again even if the demo checkpoint exists.")
@targets_file_option()
@logs_dir_option()
def demo(out_dir: Path, target_name: str, epochs: int, retrain: bool, targets_file: Path | None,
         logs_dir: Path | None) -> None:
    """Main job on the embedded digits: train, export, build with committed records, verify, time."""
    from alexnet_tvm.interface.demo import DemoConfig, demo as run_demo

    lines, passed = run_demo(DemoConfig(out_dir=out_dir, target=target_name, epochs=epochs, retrain=retrain,
                                        targets_file=targets_file, logs_dir=logs_dir))
    click.echo(lines)
    sys.exit(0 if passed else 1)


COMMANDS = [demo]
