"""evaluate: Top-1/Top-5 of a built library, checked against an independent computation.

The independent side uses none of the toolkit's evaluation code: torchvision's transforms,
PyTorch's own forward pass and torch.topk, over the same generated images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.data import class_image

CLASSES = 10
N_IMAGES = 40


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 10-class model (random weights: non-trivial Top-1 and Top-5), its artifact, and a labelled
    set of 40 images of assorted sizes in all three layouts."""
    from alexnet_tvm.compile.build import BuildConfig, build
    from alexnet_tvm.model.checkpoint import init_checkpoint
    from alexnet_tvm.targets import load_targets

    root = tmp_path_factory.mktemp("evaluate")
    ckpt = root / "model.pt"
    init_checkpoint("cifar", CLASSES, ckpt, width=0.125, seed=3)
    art = root / "art"
    spec = load_targets(Path(__file__).resolve().parent.parent / "targets.yaml")["x86-avx2"]
    build(BuildConfig(model=ckpt, target=spec, out=art, logs_dir=root / "logs", batch=4))
    rng = np.random.default_rng(0)
    names = [f"class_{i}" for i in range(CLASSES)]
    flat, folder = root / "flat", root / "imagefolder"
    flat.mkdir()
    items = []
    for i in range(N_IMAGES):
        label = int(rng.integers(0, CLASSES))
        size = int(rng.integers(32, 60))
        img = Image.fromarray(class_image(label, size, rng)).resize((size, size + 7))
        (folder / names[label]).mkdir(parents=True, exist_ok=True)
        img.save(folder / names[label] / f"img_{i:03d}.png")
        img.save(flat / f"img_{i:03d}.png")
        items.append((f"img_{i:03d}", label))
    (flat / "val_label.txt").write_text("".join(f"{n} {lab}\n" for n, lab in items))
    (root / "val_list.txt").write_text("".join(f"flat/{n}.png {lab}\n" for n, lab in items))
    return ckpt, art, root, items


def _independent(ckpt: Path, root: Path, items) -> tuple[float, float]:
    """Top-1/Top-5 in percent from torchvision's transforms, eager PyTorch and torch.topk."""
    from torchvision import transforms as T

    from alexnet_tvm.model.checkpoint import load_checkpoint

    model, meta = load_checkpoint(ckpt)
    tf = T.Compose([T.Resize(meta.resize_size), T.CenterCrop(meta.input_size), T.ToTensor(),
                    T.Normalize(meta.mean, meta.std)])
    x = torch.stack([tf(Image.open(root / "flat" / f"{n}.png").convert("RGB")) for n, _ in items])
    labels = torch.tensor([lab for _, lab in items])
    with torch.no_grad():
        top5 = model(x).topk(5, dim=1).indices
    hit1 = (top5[:, 0] == labels).double().mean().item()
    hit5 = (top5 == labels[:, None]).any(dim=1).double().mean().item()
    return hit1 * 100, hit5 * 100


@pytest.mark.parametrize("layout", ["imagefolder", "flat", "val_list.txt"])
def test_evaluate_matches_an_independent_computation_in_every_layout(setup, layout, run_cli, tmp_path):
    ckpt, art, root, items = setup
    res = run_cli("evaluate", art, root / layout, "--against", "pytorch", "--report", tmp_path / "r.json",
                  "--markdown", tmp_path / "r.md")
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r.json").read_text())
    want1, want5 = _independent(ckpt, root, items)
    one_image = 100 / N_IMAGES
    assert rep["images"] == N_IMAGES and rep["classes"] == CLASSES and rep["passed"] is True
    assert 0 < want1 < 100 and want5 > want1  # the set is not trivial for this model
    assert abs(rep["reference"]["pytorch"]["top1"] - want1) < 1e-6
    assert abs(rep["reference"]["pytorch"]["top5"] - want5) < 1e-6
    assert abs(rep["library"]["top1"] - want1) <= one_image + 1e-6
    assert abs(rep["library"]["top5"] - want5) <= one_image + 1e-6
    assert rep["top1_agreement"] >= 1 - 1 / N_IMAGES
    md = (tmp_path / "r.md").read_text()
    assert f"| TVM library | {rep['library']['top1']:.2f} |" in md and "PASS" in md


def test_min_top1_and_top5_gate_the_exit_code(setup, run_cli, tmp_path):
    _, art, root, _ = setup
    base = run_cli("evaluate", art, root / "flat", "--report", tmp_path / "base.json")
    top1 = json.loads((tmp_path / "base.json").read_text())["library"]["top1"]
    assert run_cli("evaluate", art, root / "flat", "--min-top1", str(top1)).exit_code == 0, base.output
    failed = run_cli("evaluate", art, root / "flat", "--min-top1", str(top1 + 0.01), "--report", tmp_path / "f.json")
    assert failed.exit_code == 1
    assert json.loads((tmp_path / "f.json").read_text())["passed"] is False
    assert run_cli("evaluate", art, root / "flat", "--min-top5", "100.0").exit_code == (0 if json.loads(
        (tmp_path / "base.json").read_text())["library"]["top5"] >= 100 else 1)


def test_bad_evaluation_sets_get_one_error_line(setup, run_cli, tmp_path, one_line_error):
    _, art, root, items = setup
    missing = tmp_path / "missing"
    missing.mkdir()
    for n, _ in items[:3]:
        (missing / f"{n}.png").write_bytes((root / "flat" / f"{n}.png").read_bytes())
    (missing / "val_label.txt").write_text("".join(f"{n} {lab}\n" for n, lab in items[:5]))
    one_line_error(run_cli("evaluate", art, missing), "names 2 image(s)", "img_003")
    out_of_range = tmp_path / "range"
    out_of_range.mkdir()
    (out_of_range / "a.png").write_bytes((root / "flat" / "img_000.png").read_bytes())
    (out_of_range / "val_label.txt").write_text(f"a {CLASSES}\n")
    one_line_error(run_cli("evaluate", art, out_of_range), "out of range", "10-class")
    (tmp_path / "list.txt").write_text("nowhere.png 1\n")
    one_line_error(run_cli("evaluate", art, tmp_path / "list.txt"), "do not exist")
    one_line_error(run_cli("evaluate", art, tmp_path / "nothing"), "no such evaluation set")
    one_line_error(run_cli("evaluate", art, root / "flat", "--min-top1", "150"), "percentage")


def test_preprocessing_equals_torchvision_transforms():
    """resize 256, centre crop 224, ImageNet mean/std: the toolkit's transform against torchvision's."""
    from torchvision import transforms as T

    from alexnet_tvm.meta import IMAGENET_MEAN, IMAGENET_STD
    from alexnet_tvm.preprocess import eval_transform

    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    rng = np.random.default_rng(0)
    for w, h in [(500, 375), (375, 500), (256, 256), (300, 1000), (640, 480), (257, 311)]:
        img = Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
        ours = eval_transform(img, 256, 224, IMAGENET_MEAN, IMAGENET_STD)
        theirs = tf(img).numpy()
        assert ours.shape == theirs.shape == (3, 224, 224)
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0, err_msg=f"{w}x{h}")


def test_readme_ci_workflow_is_valid_yaml_that_pulls_verifies_and_evaluates():
    import re

    import yaml

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"```yaml\n(# \.github/workflows/.*?)```", readme, re.S)
    assert block, "the README has no CI workflow example"
    steps = yaml.safe_load(block.group(1))["jobs"]["gate"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    for command in ("alexnet-tvm pull", "alexnet-tvm verify", "alexnet-tvm evaluate"):
        assert any(r.startswith(command) for r in runs), command
    assert any("--min-top1" in r for r in runs)


def test_onnxruntime_references_leave_no_temp_files(setup, run_cli, tmp_path, monkeypatch):
    """verify/evaluate --against onnxruntime export the checkpoint to ONNX in a temp folder
    (240 MB for AlexNet-1000): it is gone afterwards, on success and on a failed gate alike."""
    import tempfile

    _, art, root, _ = setup
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert run_cli("verify", art, "--against", "onnxruntime").exit_code == 0
    assert run_cli("evaluate", art, root / "flat", "--against", "onnxruntime").exit_code == 0
    assert run_cli("evaluate", art, root / "flat", "--against", "onnxruntime", "--min-top5", "100.0",
                   "--min-top1", "100.0").exit_code == 1
    assert list(scratch.iterdir()) == []
