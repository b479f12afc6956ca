"""``alexnet-tvm ascend ...``: the Ascend ModelZoo OM path; parse, then call alexnet_tvm.interface.ascend."""

from __future__ import annotations

from pathlib import Path

import click

from alexnet_tvm.runtime.ascend import DEFAULT_BATCHES, DEFAULT_SOC, INPUT_SIZE, KNOWN_SOCS, RESIZE_SIZE

from .options import ascend_results_options, counts_option, force_option, out_option


def _echo(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


@click.group()
def ascend() -> None:
    """The Ascend ModelZoo OM path: ONNX for ATC, .bin inputs, ais_bench results, vision_metric accuracy."""


@ascend.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@out_option(default=Path("alexnet.onnx"))
@force_option(help="Replace an existing output.")
def export_cmd(checkpoint: Path, out: Path, force: bool) -> None:
    """ONNX exactly as the ModelZoo's pth2onnx writes it (actual_input_1 -> output1, batch '-1', opset 11).

    CHECKPOINT is one of ours (with its sidecar) or a torchvision alexnet-owt-*.pth.
    """
    from alexnet_tvm.interface.ascend import export

    click.echo(export(checkpoint, out, force=force))


@ascend.command("atc-cmd")
@counts_option("--batch", "batches", multiple=True, default=[",".join(map(str, DEFAULT_BATCHES))],
               show_default=True, help="Batch sizes, comma-separated or repeated; one static OM each.")
@click.option("--soc", default=DEFAULT_SOC, show_default=True,
              help=f"--soc_version ({', '.join(KNOWN_SOCS)}; see 'npu-smi info').")
@click.option("--model", "model", default="./alexnet.onnx", show_default=True, help="The ONNX path on the board.")
@click.option("--output-prefix", default="./onnx_alexnet_bs", show_default=True,
              help="OM output prefix; the batch size is appended.")
@click.option("--input-size", type=int, default=None,
              help="Default: the ONNX sidecar's input size when the file is here, else 224.")
@out_option(default=Path("pth2om.sh"), help="The script to write.")
@force_option(help="Replace an existing script.")
def atc_cmd(batches: list[int], soc: str, model: str, output_prefix: str, input_size: int | None,
            out: Path, force: bool) -> None:
    """Print the atc command line for each batch size and write them to a script."""
    from alexnet_tvm.interface.ascend import atc_cmd as run

    lines, wrote = run(batches, soc, model, output_prefix, input_size, out, force=force)
    _echo(lines)
    click.echo(wrote, err=True)


@ascend.command("preprocess")
@click.argument("images_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--resize-size", default=RESIZE_SIZE, show_default=True, help="Shorter side after resizing.")
@click.option("--input-size", default=INPUT_SIZE, show_default=True, help="Centre crop size.")
@force_option(help="Replace an existing OUT_DIR.")
def preprocess_cmd(images_dir: Path, out_dir: Path, resize_size: int, input_size: int, force: bool) -> None:
    """One raw float32 CHW NAME.bin per image of IMAGES_DIR (flat, or an ImageFolder tree), as the ModelZoo does."""
    from alexnet_tvm.interface.ascend import preprocess

    click.echo(preprocess(images_dir, out_dir, resize_size, input_size, force=force))


@ascend.command("labels")
@click.argument("image_folder", type=click.Path(path_type=Path))
@out_option(default=Path("val_label.txt"))
@force_option(help="Replace an existing label file.")
def labels_cmd(image_folder: Path, out: Path, force: bool) -> None:
    """A vision_metric label file ('name label' lines) for an ImageFolder set; class = sorted folder index."""
    from alexnet_tvm.interface.ascend import labels

    click.echo(labels(image_folder, out, force=force))


@ascend.command("read")
@click.argument("results_dir", type=click.Path(path_type=Path))
@ascend_results_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead.")
def read_cmd(results_dir: Path, classes: int | None, inputs: Path | None, as_json: bool) -> None:
    """Load an ais_bench results folder (TXT/BIN/NPY, either layout) and report it."""
    from alexnet_tvm.interface.ascend import read

    _echo(read(results_dir, classes, inputs, as_json))


@ascend.command("metric")
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option("--labels", "label_file", type=click.Path(path_type=Path), required=True,
              help="val_label.txt: 'name label' lines.")
@out_option(help="Write result.json here.")
@ascend_results_options
@force_option(help="Replace an existing result.json.")
def metric_cmd(results_dir: Path, label_file: Path, out: Path | None, classes: int | None, inputs: Path | None,
               force: bool) -> None:
    """Top-1..Top-5 as vision_metric computes them; -o writes its result.json byte for byte."""
    from alexnet_tvm.interface.ascend import metric

    lines, wrote = metric(results_dir, label_file, out, classes, inputs, force=force)
    _echo(lines)
    if wrote is not None:
        click.echo(wrote, err=True)


COMMANDS = [ascend]
