"""bench: parse, then call alexnet_tvm.interface.bench."""

from __future__ import annotations

from pathlib import Path

import click

from .options import (
    calibrate_option, counts_option, logs_dir_option, out_option, target_option, targets_file_option,
)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@target_option()
@counts_option("--batch", "batches", default="1", show_default=True, help="Comma-separated batch sizes.")
@click.option("--runs", default=20, show_default=True, help="Timed runs per runtime (median, p10, p90).")
@counts_option("--threads", default=None, metavar="N[,N...]",
               help="Comma-separated thread counts: every runtime runs at each (a row each); TVM is built for the "
                    "largest. Default: the cores this process may use (affinity, cgroup quota).")
@click.option("--untuned", is_flag=True, help="Also time TVM without tuning records (slow).")
@click.option("--bf16", is_flag=True, help="Also time TVM with bf16 FC weights (build --precision bf16).")
@click.option("--int8", is_flag=True,
              help="Also time TVM int8 and ONNX Runtime int8 on one QDQ model (build --precision int8).")
@calibrate_option(default="digits", help="--int8: calibration images (scales only; speed does not depend on them).")
@click.option("--fp16", is_flag=True,
              help="CUDA: also time TVM fp16 (build --precision fp16) against PyTorch under autocast fp16.")
@click.option("--torch-compile", is_flag=True, help="CUDA: also time torch.compile (and with --fp16, under autocast).")
@click.option("--layers", is_flag=True,
              help="Also time each layer inside the model, TVM against ONNX Runtime (layers.md).")
@out_option(default=Path("runs/bench"), dest="out_dir")
@targets_file_option()
@logs_dir_option()
def bench(model: Path, target_name: str, batches: list[int], runs: int, threads: list[int] | None, untuned: bool,
          bf16: bool, int8: bool, calibrate: str, fp16: bool, torch_compile: bool, layers: bool, out_dir: Path,
          targets_file: Path | None, logs_dir: Path | None) -> None:
    """Time PyTorch, ONNX Runtime, OpenVINO and TVM side by side; write bench.json, bench.md, bench.png."""
    from alexnet_tvm.interface.bench import BenchConfig, bench as run_bench

    click.echo(run_bench(BenchConfig(model=model, target=target_name, batches=batches,
                                     out_dir=out_dir, runs=runs, threads=threads, untuned=untuned, bf16=bf16,
                                     layers=layers, int8=int8, calibrate=calibrate, fp16=fp16,
                                     torch_compile=torch_compile, targets_file=targets_file, logs_dir=logs_dir)))


COMMANDS = [bench]
