"""train / export / init: one job per command over alexnet_tvm.model, each returning the line it prints.

The defaults that are decisions (where ``export`` writes, refusing to overwrite a sidecar) are
made here, so that ``cli/model_cmds.py`` only parses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def train(**fields: Any) -> str:
    """Train an AlexNet variant (``fields``: TrainConfig's); the line with its best validation
    accuracy and checkpoint."""
    from alexnet_tvm.model.train import TrainConfig, train as run_train

    res = run_train(TrainConfig(**fields))
    return (f"best val accuracy {res.best_val_accuracy:.4f} after {res.epochs_run} epochs "
            f"({res.seconds:.1f} s); checkpoint {res.checkpoint}")


def export(checkpoint: Path, fmt: str, out: Path | None = None, force: bool = False, **options: Any) -> str:
    """Export a checkpoint to ``out`` (default: beside it, with the format's suffix), checked against
    eager PyTorch; ``options``: the other ExportConfig fields (batch, opset, ...)."""
    from alexnet_tvm.meta import refuse_sidecar
    from alexnet_tvm.model.export import SUFFIX, ExportConfig, export_model

    out = out or checkpoint.with_name(checkpoint.name.split(".")[0] + SUFFIX[fmt])
    refuse_sidecar(out, force)
    err = export_model(ExportConfig(checkpoint=checkpoint, fmt=fmt, out=out, force=force, **options))
    return f"wrote {out} (max abs error vs eager {err:.2e})"


def init(arch: str, num_classes: int, out: Path, input_size: int | None = None, width: float = 1.0,
         seed: int = 0, force: bool = False) -> str:
    """A randomly initialised checkpoint (and its sidecar)."""
    from alexnet_tvm.meta import refuse_sidecar
    from alexnet_tvm.model.checkpoint import init_checkpoint

    refuse_sidecar(out, force)
    init_checkpoint(arch, num_classes, out, input_size=input_size, width=width, seed=seed, force=force)
    return f"wrote {out}"
