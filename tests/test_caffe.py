"""The Caffe-lineage AlexNet (BVLC reference, the one ONNX model zoos carry): variant, records, ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers.records import committed_databases, untuned_by_set

TARGET = "x86-avx512"


def _plain_onnx(model, path: Path, dynamic: bool = True) -> Path:
    """Written the way a user writes it: plain torch.onnx.export, no sidecar."""
    axes = {"data_0": {0: "batch"}} if dynamic else None
    torch.onnx.export(model, (torch.randn(1, 3, 227, 227),), str(path), input_names=["data_0"], dynamo=False,
                      dynamic_axes=axes)
    return path


def test_caffe_variant_has_the_bvlc_shape():
    from alexnet_tvm.model.variants import build_model

    m = build_model("caffe", 1000).eval()
    assert sum(p.numel() for p in m.parameters()) == 60_965_224  # bvlc_alexnet's parameter count
    convs = [x for x in m.features if isinstance(x, torch.nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2] and convs[0].padding == (0, 0)
    lrn_after = [type(m.features[i - 2]).__name__ for i, x in enumerate(m.features)
                 if isinstance(x, torch.nn.LocalResponseNorm)]
    assert lrn_after == ["Conv2d", "Conv2d"]
    assert m(torch.zeros(2, 3, 227, 227)).shape == (2, 1000)


def test_plain_onnx_export_of_a_caffe_alexnet_builds_and_verifies(tmp_path, run_cli):
    from alexnet_tvm.model.variants import build_model

    torch.manual_seed(0)
    path = _plain_onnx(build_model("caffe", 10, width=0.125).eval(), tmp_path / "bvlc.onnx")
    res = run_cli("build", path, "--target", "x86-avx2", "-o", tmp_path / "art")
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "art" / "manifest.json").read_text())["meta"]
    assert (meta["input_size"], meta["num_classes"]) == (227, 10)
    res = run_cli("verify", tmp_path / "art", "--against", "onnxruntime", "--report", tmp_path / "v.json")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "v.json").read_text())["random"]["images"] >= 1


@pytest.fixture(scope="module")
def caffe1000(tmp_path_factory):
    from alexnet_tvm.model.checkpoint import save_checkpoint
    from alexnet_tvm.model.describe import meta_from
    from alexnet_tvm.model.variants import build_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("caffe")
    model = build_model("caffe", 1000).eval()
    save_checkpoint(model, meta_from("caffe", 1000, 227), folder / "caffe.pt")
    return folder / "caffe.pt", _plain_onnx(model, folder / "bvlc.onnx")


@pytest.mark.parametrize("form", ["checkpoint", "onnx"])
def test_caffe_alexnet_reaches_the_committed_records(caffe1000, form, tmp_path):
    from alexnet_tvm.compile.frontend.importer import import_model
    from alexnet_tvm.compile.frontend.pipeline import prepare
    from alexnet_tvm.compile.tuning.plan import tuning_tasks
    from alexnet_tvm.targets import load_targets

    spec = load_targets(Path(__file__).resolve().parent.parent / "targets.yaml")[TARGET]
    target = spec.tvm_target()
    imported = import_model(caffe1000[0 if form == "checkpoint" else 1], 1)
    tasks = tuning_tasks(prepare(imported.mod, target, spec.conv_layout, spec.winograd_tile), target)
    missing = untuned_by_set(tasks, committed_databases(TARGET, tmp_path / "sets"), target)
    assert len(tasks) >= 15 and missing and not any(missing.values()), f"{form}: untuned tasks by set: {missing}"


@pytest.mark.slow
def test_caffe_onnx_builds_with_every_task_tuned_and_verifies(caffe1000, tmp_path, run_cli):
    """The full-size library on the committed records, against ONNX Runtime (x86-avx512 hosts)."""
    from alexnet_tvm.host import host_cpu_flags
    from alexnet_tvm.targets import load_targets

    spec = load_targets(Path(__file__).resolve().parent.parent / "targets.yaml")[TARGET]
    if set(spec.host_features) - host_cpu_flags():
        pytest.skip(f"this CPU cannot run {TARGET}")
    res = run_cli("build", caffe1000[1], "--target", TARGET, "-o", tmp_path / "art")
    assert res.exit_code == 0, res.output
    tuning = json.loads((tmp_path / "art" / "manifest.json").read_text())["tuning"]
    assert tuning["untuned"] == [] and tuning["tuned"] == tuning["tasks"]
    res = run_cli("verify", tmp_path / "art", "--against", "onnxruntime")
    assert res.exit_code == 0, res.output
