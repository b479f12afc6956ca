"""``alexnet-tvm ascend ...``: the Ascend ModelZoo OM path, thin wrappers over runtime.ascend."""

from __future__ import annotations

import json
from pathlib import Path

import click

from alexnet_tvm.errors import AscendError
from alexnet_tvm.runtime import ascend as A

from .options import force_option, out_option


def _batches(values: tuple[str, ...]) -> list[int]:
    """``--batch 1,16 --batch 64`` -> [1, 16, 64]."""
    out: list[int] = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if not part.isdigit():
                raise AscendError(f"--batch {v!r}: {part!r} is not a positive integer")
            out.append(int(part))
    return A.check_batches(out)


def _input_names(inputs: Path | None) -> list[str] | None:
    if inputs is None:
        return None
    names, _, _ = A.list_bin_inputs(inputs)
    return names


def _fmt_stat(label: str, stat: dict | None) -> str | None:
    if not stat or "mean" not in stat:
        return None
    parts = [f"mean {stat['mean']:.3f}"]
    if "median" in stat:
        parts.append(f"median {stat['median']:.3f}")
    if "percentile(99%)" in stat:
        parts.append(f"p99 {stat['percentile(99%)']:.3f}")
    return f"{label} (ms): " + ", ".join(parts)


def _echo_perf(perf: dict | None) -> None:
    if not perf:
        click.echo("summary: none (no ais_bench summary json found)")
        return
    if "devices" in perf:
        tp = perf.get("throughput")
        click.echo(f"throughput: {tp:.2f} fps over {len(perf['devices'])} devices" if tp is not None
                   else "throughput: not reported")
        for d, p in perf["devices"].items():
            if p and p.get("throughput") is not None:
                click.echo(f"  {d}: {p['throughput']:.2f} fps")
        return
    tp, bs = perf.get("throughput"), perf.get("batchsize")
    if tp is not None:
        click.echo(f"throughput: {tp:.2f} fps" + (f" (batch {bs:g})" if bs is not None else ""))
    for label, key in (("NPU compute time", "npu_compute_time_ms"), ("H2D latency", "h2d_latency_ms"),
                       ("D2H latency", "d2h_latency_ms")):
        line = _fmt_stat(label, perf.get(key))
        if line:
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
    from alexnet_tvm.model.ascend_export import export_ascend_onnx

    from alexnet_tvm.meta import refuse_sidecar

    refuse_sidecar(out, force)
    res = export_ascend_onnx(checkpoint, out, force=force)
    click.echo(f"wrote {res.out} ({res.arch}, {res.num_classes} classes, {res.input_size}px; "
               f"max abs error vs eager {res.max_abs_error:.2e})")


@ascend.command("atc-cmd")
@click.option("--batch", "batches", multiple=True, default=[",".join(map(str, A.DEFAULT_BATCHES))],
              show_default=True, help="Batch sizes, comma-separated or repeated; one static OM each.")
@click.option("--soc", default=A.DEFAULT_SOC, show_default=True,
              help=f"--soc_version ({', '.join(A.KNOWN_SOCS)}; see 'npu-smi info').")
@click.option("--model", "model", default="./alexnet.onnx", show_default=True, help="The ONNX path on the board.")
@click.option("--output-prefix", default="./onnx_alexnet_bs", show_default=True,
              help="OM output prefix; the batch size is appended.")
@click.option("--input-size", type=int, default=None,
              help="Default: the ONNX sidecar's input size when the file is here, else 224.")
@out_option(default=Path("pth2om.sh"), help="The script to write.")
@force_option(help="Replace an existing script.")
def atc_cmd(batches: tuple[str, ...], soc: str, model: str, output_prefix: str, input_size: int | None,
            out: Path, force: bool) -> None:
    """Print the atc command line for each batch size and write them to a script."""
    if input_size is None:
        from alexnet_tvm.meta import read_sidecar, sidecar_path

        input_size = read_sidecar(Path(model)).input_size if sidecar_path(Path(model)).is_file() else A.INPUT_SIZE
    if input_size < 1:
        raise AscendError("--input-size must be positive")
    text = A.atc_script(_batches(batches), A.check_soc(soc), model, output_prefix, input_size)
    A.write_atc_script(out, text, force=force)
    for line in text.splitlines():
        if line.startswith("atc "):
            click.echo(line)
    click.echo(f"wrote {out}", err=True)


@ascend.command("preprocess")
@click.argument("images_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--resize-size", default=A.RESIZE_SIZE, show_default=True, help="Shorter side after resizing.")
@click.option("--input-size", default=A.INPUT_SIZE, show_default=True, help="Centre crop size.")
@force_option(help="Replace an existing OUT_DIR.")
def preprocess_cmd(images_dir: Path, out_dir: Path, resize_size: int, input_size: int, force: bool) -> None:
    """One raw float32 CHW NAME.bin per image of IMAGES_DIR (flat, or an ImageFolder tree), as the ModelZoo does."""
    rep = A.preprocess_folder(images_dir, out_dir, resize_size=resize_size, input_size=input_size, force=force)
    click.echo(f"wrote {len(rep.names)} inputs to {rep.out_dir}")


@ascend.command("labels")
@click.argument("image_folder", type=click.Path(path_type=Path))
@out_option(default=Path("val_label.txt"))
@force_option(help="Replace an existing label file.")
def labels_cmd(image_folder: Path, out: Path, force: bool) -> None:
    """A vision_metric label file ('name label' lines) for an ImageFolder set; class = sorted folder index."""
    n, classes = A.write_label_file(image_folder, out, force=force)
    click.echo(f"wrote {n} labels over {len(classes)} classes to {out}")


@ascend.command("read")
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option("--classes", type=int, default=None, help="Output size to expect (default: from the first file).")
@click.option("--inputs", type=click.Path(path_type=Path), default=None,
              help="The preprocessed input folder: every input must have a result (and names old-layout ones).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead.")
def read_cmd(results_dir: Path, classes: int | None, inputs: Path | None, as_json: bool) -> None:
    """Load an ais_bench results folder (TXT/BIN/NPY, either layout) and report it."""
    res = A.load_results(results_dir, classes, input_names=_input_names(inputs))
    if as_json:
        click.echo(json.dumps({"results_dir": str(res.results_dir), "fmt": res.fmt, "layout": res.layout,
                               "n_images": len(res.names), "n_classes": res.num_classes,
                               "summary": str(res.summary_path) if res.summary_path else None,
                               "perf": res.perf(), "warnings": res.warnings}, indent=2))
        return
    click.echo(f"{res.results_dir}: {len(res.names)} results x {res.num_classes} classes "
               f"({res.fmt.upper()}, {res.layout} layout)")
    if res.summary_path:
        click.echo(f"summary: {res.summary_path}")
    _echo_perf(res.perf())


@ascend.command("metric")
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option("--labels", "label_file", type=click.Path(path_type=Path), required=True,
              help="val_label.txt: 'name label' lines.")
@out_option(help="Write result.json here.")
@click.option("--classes", type=int, default=None, help="Output size to expect (default: from the first file).")
@click.option("--inputs", type=click.Path(path_type=Path), default=None,
              help="The preprocessed input folder: every input must have a result (and names old-layout ones).")
@force_option(help="Replace an existing result.json.")
def metric_cmd(results_dir: Path, label_file: Path, out: Path | None, classes: int | None, inputs: Path | None,
               force: bool) -> None:
    """Top-1..Top-5 as vision_metric computes them; -o writes its result.json byte for byte."""
    if out is not None:
        from alexnet_tvm.fsutil import refuse_existing

        refuse_existing(out, force)
    res, _, top = A.evaluate_results(results_dir, label_file, classes, input_names=_input_names(inputs))
    if out is not None:
        A.write_result_json(out, top, force=force)
    for row in top.table()["value"]:
        click.echo(f"{row['key']}: {row['value']}")
    if out is not None:
        click.echo(f"wrote {out}", err=True)


COMMANDS = [ascend]
