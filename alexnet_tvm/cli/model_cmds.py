"""train / export / init: parse, then call alexnet_tvm.interface.model."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import click

from .options import batch_option, force_option, out_option, seed_option


class VariantChoice(click.Choice):
    """The AlexNet variants of model/variants.py, read when a command needs them: listing them
    at import would import torch on a machine that only pulls and runs artifacts."""

    def __init__(self) -> None:
        super().__init__([])

    @property
    def choices(self):  # noqa: D401 - click reads it as an attribute
        from alexnet_tvm.model.variants import VARIANTS

        return tuple(VARIANTS)

    @choices.setter
    def choices(self, _value) -> None:
        pass

    def convert(self, value, param, ctx):
        if value not in self.choices:
            self.fail(f"unknown variant {value!r} (known: {', '.join(self.choices)})", param, ctx)
        return value


def arch_option(default: str) -> Callable:
    return click.option("--arch", type=VariantChoice(), default=default, show_default=True,
                        help="AlexNet variant.")


@click.command()
@click.argument("dataset", default="digits")
@out_option(default=Path("runs/train"), dest="out_dir",
            help="Run folder (model.pt + model.pt.json, last.ckpt, curves.png).")
@arch_option("cifar")
@click.option("--epochs", default=10, show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--lr", default=3e-4, show_default=True)
@seed_option()
@click.option("--input-size", type=int, default=None, help="Default: the variant's own.")
@click.option("--width", default=1.0, show_default=True, help="Channel/unit multiplier (tiny models).")
@click.option("--pretrained", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="A state_dict to transfer from (the head is replaced).")
@click.option("--freeze-features", is_flag=True, help="With --pretrained: train the classifier only.")
@click.option("--max-steps", type=int, default=None, help="Batches per epoch at most.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from last.ckpt.")
@force_option(help="Replace a run already in --out.")
def train(dataset: str, out_dir: Path, arch: str, epochs: int, batch_size: int, optimizer: str, lr: float, seed: int,
          input_size: int | None, width: float, pretrained: Path | None, freeze_features: bool,
          max_steps: int | None, resume: bool, force: bool) -> None:
    """Train an AlexNet variant on DATASET: 'digits' (embedded), a CIFAR-10 folder or an ImageFolder."""
    from alexnet_tvm.interface.model import train as run_train

    click.echo(run_train(dataset=dataset, out_dir=out_dir, arch=arch, epochs=epochs, batch_size=batch_size,
                         optimizer=optimizer, lr=lr, seed=seed, input_size=input_size, width=width,
                         pretrained=pretrained, freeze_features=freeze_features, resume=resume, force=force,
                         max_steps=max_steps))


@click.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript", "pt2"]), required=True)
@out_option(help="Default: beside the checkpoint, with the format's suffix.")
@batch_option(default=1)
@click.option("--opset", default=17, show_default=True)
@click.option("--input-name", default="input", show_default=True)
@click.option("--dynamic-batch", is_flag=True, help="ONNX: a symbolic batch axis.")
@force_option()
def export(checkpoint: Path, fmt: str, out: Path | None, batch: int, opset: int, input_name: str,
           dynamic_batch: bool, force: bool) -> None:
    """Export CHECKPOINT to TorchScript, ONNX or torch.export, checked against eager PyTorch."""
    from alexnet_tvm.interface.model import export as run_export

    click.echo(run_export(checkpoint, fmt, out, force=force, batch=batch, opset=opset, input_name=input_name,
                          dynamic_batch=dynamic_batch))


@click.command("init")
@arch_option("torchvision")
@click.option("--classes", "num_classes", type=click.IntRange(min=2), default=1000, show_default=True,
              help="Output classes.")
@click.option("--input-size", type=click.IntRange(min=1), default=None, help="Default: the variant's own.")
@click.option("--width", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Channel/unit multiplier (tiny models).")
@seed_option()
@out_option(required=True, help="The checkpoint; its sidecar goes beside it as OUT.json.")
@force_option(help="Replace an existing checkpoint and sidecar.")
def init(arch: str, num_classes: int, input_size: int | None, width: float, seed: int, out: Path,
         force: bool) -> None:
    """Write a randomly initialised checkpoint: tuning and benchmarks depend on shapes, not weights."""
    from alexnet_tvm.interface.model import init as run_init

    click.echo(run_init(arch, num_classes, out, input_size=input_size, width=width, seed=seed, force=force))


COMMANDS = [train, export, init]
