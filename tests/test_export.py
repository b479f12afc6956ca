"""Exports: each written file, loaded back independently, matches eager PyTorch within 1e-4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet_tvm.errors import ExportError, OutputExistsError
from alexnet_tvm.meta import read_sidecar, sidecar_path
from alexnet_tvm.model import export as export_mod
from alexnet_tvm.model.checkpoint import load_checkpoint
from alexnet_tvm.model.export import SUFFIX, TOLERANCE, ExportConfig, export_model

FORMATS = ("torchscript", "onnx", "pt2")


def _run_export_file(fmt: str, path: Path, x: np.ndarray, input_name: str = "input") -> np.ndarray:
    """Run an exported file with its own loader (not the exporter's check)."""
    if fmt == "torchscript":
        with torch.no_grad():
            return torch.jit.load(str(path)).eval()(torch.from_numpy(x)).numpy()
    if fmt == "pt2":
        with torch.no_grad():
            return torch.export.load(str(path)).module()(torch.from_numpy(x)).numpy()
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [input_name]
    return sess.run(None, {input_name: x})[0]


def _eager(checkpoint: Path, x: np.ndarray) -> np.ndarray:
    model, _ = load_checkpoint(checkpoint)
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_matches_eager(fmt: str, tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / f"model{SUFFIX[fmt]}"
    err = export_model(ExportConfig(checkpoint=tiny_checkpoint, fmt=fmt, out=out, batch=2))
    assert 0 <= err <= TOLERANCE
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
    got, want = _run_export_file(fmt, out, x), _eager(tiny_checkpoint, x)
    assert got.shape == want.shape == (2, 3)
    assert np.max(np.abs(got - want)) <= 1e-4
    assert np.abs(want).max() > 0  # not a trivially zero comparison

    side = json.loads(sidecar_path(out).read_text())
    src = json.loads(sidecar_path(tiny_checkpoint).read_text())
    for key in ("arch", "num_classes", "input_size", "resize_size", "class_names", "width", "mean", "std"):
        assert side[key] == src[key], key
    assert side["extra"]["export"]["format"] == fmt
    assert side["extra"]["export"]["batch"] == 2
    assert side["extra"]["export"]["max_abs_error"] == err
    assert read_sidecar(out).class_names == ["ant", "bee", "cat"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, out.name + ".json"])


def test_onnx_dynamic_batch(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "dyn.onnx"
    export_model(ExportConfig(checkpoint=tiny_checkpoint, fmt="onnx", out=out, dynamic_batch=True, input_name="data"))
    x = np.random.default_rng(6).standard_normal((3, 3, 32, 32)).astype(np.float32)
    got = _run_export_file("onnx", out, x, input_name="data")
    assert np.max(np.abs(got - _eager(tiny_checkpoint, x))) <= 1e-4
    assert read_sidecar(out).extra["export"]["dynamic_batch"] is True


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_refuses_existing_output(fmt: str, tmp_path: Path, tiny_checkpoint: Path, tree_snapshot) -> None:
    out = tmp_path / f"model{SUFFIX[fmt]}"
    out.write_bytes(b"previous export")
    sidecar_path(out).write_text('{"previous": true}')
    before = tree_snapshot(tmp_path)
    with pytest.raises(OutputExistsError, match="already exists"):
        export_model(ExportConfig(checkpoint=tiny_checkpoint, fmt=fmt, out=out))
    assert tree_snapshot(tmp_path) == before
    export_model(ExportConfig(checkpoint=tiny_checkpoint, fmt=fmt, out=out, force=True))
    assert out.read_bytes() != b"previous export"
    assert read_sidecar(out).extra["export"]["format"] == fmt


def test_export_refuses_to_overwrite_its_checkpoint(tiny_checkpoint_copy: Path, tree_snapshot) -> None:
    before = tree_snapshot(tiny_checkpoint_copy.parent)
    with pytest.raises(ExportError, match="overwrite its own checkpoint"):
        export_model(ExportConfig(checkpoint=tiny_checkpoint_copy, fmt="torchscript", out=tiny_checkpoint_copy,
                                  force=True))
    assert tree_snapshot(tiny_checkpoint_copy.parent) == before


def test_export_that_differs_from_eager_leaves_nothing(tmp_path: Path, tiny_checkpoint: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed numerical check raises and neither the file nor its sidecar appears."""
    real = export_mod._torchscript
    monkeypatch.setattr(export_mod, "_torchscript", lambda model, x, tmp: real(model, x, tmp) + 1e-3)
    out = tmp_path / "m.torchscript.pt"
    with pytest.raises(ExportError, match="differs from eager"):
        export_model(ExportConfig(checkpoint=tiny_checkpoint, fmt="torchscript", out=out))
    assert list(tmp_path.iterdir()) == []


def test_export_bad_arguments(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(ExportError, match="unknown export format"):
        export_model(ExportConfig(checkpoint=tiny_checkpoint, fmt="tflite", out=tmp_path / "m.tflite"))
    with pytest.raises(ExportError, match="batch must be at least 1"):
        export_model(ExportConfig(checkpoint=tiny_checkpoint, fmt="onnx", out=tmp_path / "m.onnx", batch=0))
    assert list(tmp_path.iterdir()) == []


def test_cli_export_default_output_beside_checkpoint(tiny_checkpoint_copy: Path, run_cli) -> None:
    """``export model.pt --format torchscript`` writes model.torchscript.pt, not over model.pt."""
    ckpt_bytes = tiny_checkpoint_copy.read_bytes()
    result = run_cli("export", tiny_checkpoint_copy, "--format", "torchscript")
    assert result.exit_code == 0, result.stderr
    out = tiny_checkpoint_copy.with_name("model.torchscript.pt")
    assert out.is_file() and sidecar_path(out).is_file()
    assert tiny_checkpoint_copy.read_bytes() == ckpt_bytes
    assert f"wrote {out}" in result.stdout
