"""Exports to TorchScript, ONNX and torch.export, each checked against eager PyTorch first."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alexnet_tvm.errors import ExportError
from alexnet_tvm.fsutil import atomic_path, refuse_existing, write_json
from alexnet_tvm.meta import ModelMeta, sidecar_path

from .checkpoint import load_any_checkpoint

log = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx", "pt2")
SUFFIX = {"torchscript": ".torchscript.pt", "onnx": ".onnx", "pt2": ".pt2"}
TOLERANCE = 1e-4


@dataclass
class ExportConfig:
    checkpoint: Path
    fmt: str
    out: Path
    batch: int = 1
    opset: int = 17
    input_name: str = "input"
    output_name: str = "logits"
    dynamic_batch: bool = False
    #: name of the dynamic batch axis in ONNX (the Ascend ModelZoo names it '-1')
    batch_axis_name: str = "batch"
    force: bool = False


def sample_input(meta: ModelMeta, batch: int, seed: int = 0) -> torch.Tensor:
    """A seeded random batch of the model's input shape: what an export is traced and checked with."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, meta.input_size, meta.input_size, generator=g)


def check_export(name: str, got: np.ndarray, want: np.ndarray) -> float:
    """The max abs error of an exported model's output against eager PyTorch's; over TOLERANCE is refused."""
    err = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")
    if not err <= TOLERANCE:
        raise ExportError(f"{name} export differs from eager PyTorch (max abs error {err:.3g} > {TOLERANCE})")
    return err


def _torchscript(model, x, tmp: Path) -> np.ndarray:
    traced = torch.jit.trace(model, x)
    traced.save(str(tmp))
    return torch.jit.load(str(tmp)).eval()(x).detach().numpy()


def _pt2(model, x, tmp: Path) -> np.ndarray:
    ep = torch.export.export(model, (x,))
    # through file objects: given a path, torch warns about (and names the archive
    # after) the temporary file's .tmp suffix
    with open(tmp, "wb") as f:
        torch.export.save(ep, f)
    with open(tmp, "rb") as f:
        loaded = torch.export.load(f)
    return loaded.module()(x).detach().numpy()


def _without_identity_pool(model, x):
    """Drop an adaptive pool that is a no-op at this input size.

    The TorchScript ONNX exporter cannot export AdaptiveAvgPool2d once it loses the
    spatial size (dynamic batch after LRN, say), even when the pool maps 6x6 to 6x6.
    """
    import copy

    pool = getattr(model, "avgpool", None)
    if not isinstance(pool, torch.nn.AdaptiveAvgPool2d) or not hasattr(model, "features"):
        return model
    with torch.no_grad():
        h, w = model.features(x[:1]).shape[-2:]
    size = pool.output_size if isinstance(pool.output_size, tuple) else (pool.output_size, pool.output_size)
    if (h, w) != tuple(size):
        return model
    model = copy.deepcopy(model)
    model.avgpool = torch.nn.Identity()
    return model


def export_onnx_file(model, x, path: Path, cfg: ExportConfig) -> None:
    """The TorchScript-based exporter: its graphs import cleanly into Relax and ATC."""
    model = _without_identity_pool(model, x)
    axes = None
    if cfg.dynamic_batch:
        axes = {cfg.input_name: {0: cfg.batch_axis_name}, cfg.output_name: {0: cfg.batch_axis_name}}
    torch.onnx.export(model, (x,), str(path), input_names=[cfg.input_name], output_names=[cfg.output_name],
                      dynamic_axes=axes, opset_version=cfg.opset, dynamo=False, do_constant_folding=True)


def _onnx(model, x, tmp: Path, cfg: ExportConfig) -> np.ndarray:
    import onnxruntime as ort

    export_onnx_file(model, x, tmp, cfg)
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    return sess.run(None, {cfg.input_name: x.numpy()})[0]


def export_model(cfg: ExportConfig) -> float:
    """Write the export and its sidecar; return the max abs error against eager."""
    if cfg.fmt not in FORMATS:
        raise ExportError(f"unknown export format {cfg.fmt!r} (choose from {', '.join(FORMATS)})")
    if cfg.batch < 1:
        raise ExportError("batch must be at least 1")
    if Path(cfg.out).resolve() == Path(cfg.checkpoint).resolve():
        raise ExportError(f"{cfg.out}: the export would overwrite its own checkpoint")
    refuse_existing(cfg.out, cfg.force)
    model, meta = load_any_checkpoint(cfg.checkpoint)
    x = sample_input(meta, cfg.batch)
    with torch.no_grad():
        want = model(x).numpy()
    with atomic_path(cfg.out) as tmp:
        with torch.no_grad():
            try:
                if cfg.fmt == "torchscript":
                    got = _torchscript(model, x, tmp)
                elif cfg.fmt == "pt2":
                    got = _pt2(model, x, tmp)
                else:
                    got = _onnx(model, x, tmp, cfg)
            except ExportError:
                raise
            except Exception as e:
                raise ExportError(f"{cfg.fmt} export failed: {type(e).__name__}: {str(e).splitlines()[0]}") from None
        err = check_export(cfg.fmt, got, want)
    side = meta.to_dict()
    side["extra"] = {**meta.extra, "export": {"format": cfg.fmt, "batch": cfg.batch, "input_name": cfg.input_name,
                                              "dynamic_batch": cfg.dynamic_batch, "opset": cfg.opset,
                                              "source": str(cfg.checkpoint), "max_abs_error": err}}
    write_json(sidecar_path(cfg.out), side)
    log.info("wrote %s (%s, max abs error vs eager %.2e)", cfg.out, cfg.fmt, err)
    return err
