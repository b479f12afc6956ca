"""Bring your own AlexNet: every file form builds from the file alone and reaches the committed records.

The forms are written by the exporters a user calls (tests/forms.py), with no sidecar.
Coverage is checked against the committed x86-avx512 records as they are in the checkout
(copied, so a tune running in the work tree cannot change what is read); agreement is
checked on the prepared Relax graphs and their parameters, which is what the build
compiles, so one structural comparison stands for compiling each form.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.forms import WRITERS, write_form
from helpers.records import committed_databases, untuned_by_set

ROOT = Path(__file__).resolve().parent.parent
TARGET = "x86-avx512"


@pytest.fixture(scope="module")
def alexnet1000():
    """torchvision's alexnet() with seeded random weights (no download), and an example input."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.alexnet().eval(), torch.randn(1, 3, 224, 224)


@pytest.fixture(scope="module")
def committed_dbs(tmp_path_factory):
    """Every committed record set of the target (one per CPU that timed them), by name."""
    return committed_databases(TARGET, tmp_path_factory.mktemp("db"))


def _spec():
    from alexnet_tvm.targets import load_targets

    return load_targets(ROOT / "targets.yaml")[TARGET]


def _prepared(path: Path, batch: int = 1):
    from alexnet_tvm.compile.frontend.importer import import_model
    from alexnet_tvm.compile.frontend.pipeline import prepare

    spec = _spec()
    imported = import_model(path, batch)
    return imported, prepare(imported.mod, spec.tvm_target(), spec.conv_layout, spec.winograd_tile)


FORMS = ["checkpoint", *WRITERS]
#: one form per importer path in the fast suite (12-22 s each on the Zen 3); make test-all runs them all
FAST_FORMS = {"checkpoint", "state_dict", "torchscript_traced", "onnx11_fixed", "onnx18_dynamo", "onnx_gemm_transb0",
              "pt2"}


def _write(form: str, model, x, folder: Path) -> Path:
    if form == "checkpoint":
        from alexnet_tvm.model.checkpoint import save_checkpoint
        from alexnet_tvm.model.describe import meta_from

        path = folder / "model.pt"  # the toolkit's own checkpoint: state_dict + sidecar
        folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(_as_variant(model), meta_from("torchvision", 1000, 224), path)
        return path
    return write_form(form, model, x, folder)


def _as_variant(model):
    from alexnet_tvm.model.variants import build_model

    ours = build_model("torchvision", 1000)
    ours.load_state_dict(model.state_dict())
    return ours.eval()


@pytest.mark.parametrize("form", [f if f in FAST_FORMS else pytest.param(f, marks=pytest.mark.slow) for f in FORMS])
def test_every_form_builds_from_the_file_alone_with_every_task_tuned(form, alexnet1000, committed_dbs, tmp_path):
    from alexnet_tvm.compile.tuning.plan import tuning_tasks
    from alexnet_tvm.model.describe import imagenet_categories

    model, x = alexnet1000
    path = _write(form, model, x, tmp_path)
    imported, prepared = _prepared(path)
    target = _spec().tvm_target()
    tasks = tuning_tasks(prepared, target)
    missing = untuned_by_set(tasks, committed_dbs, target)
    assert len(tasks) >= 12 and not any(missing.values()), f"{form}: of {len(tasks)} tasks, untuned by set: {missing}"
    m = imported.meta
    assert (m.input_size, m.num_classes, imported.input_shape) == (224, 1000, (1, 3, 224, 224))
    assert m.class_names == imagenet_categories() and m.class_names[0] == "tench"


@pytest.fixture(scope="module")
def small_forms(tmp_path_factory):
    """A torchvision-shaped AlexNet at width 1/8 with 4 classes, in every form (small: compared numerically)."""
    from alexnet_tvm.model.variants import build_model

    torch.manual_seed(1)
    model = build_model("torchvision", 4, width=0.125).eval()
    x = torch.randn(1, 3, 224, 224)
    folder = tmp_path_factory.mktemp("forms")
    return model, x, {f: write_form(f, model, x, folder / f) for f in WRITERS}


@pytest.mark.slow  # 15 imports and prepares (~80 s on the Xeon); every form's tasks are checked fast above
def test_every_form_gives_the_same_graph_and_weights(small_forms):
    """What the build compiles is the same for every form: the prepared graph is structurally
    equal and the parameters it receives are equal, so their artifacts compute the same."""
    import tvm

    _, _, paths = small_forms
    ref_imported, ref = _prepared(paths["state_dict"])
    ref_params = [p.numpy() for p in ref_imported.params]
    for form, path in paths.items():
        if form == "state_dict":
            continue  # the reference itself
        imported, prepared = _prepared(path)
        tvm.ir.assert_structural_equal(prepared["main"], ref["main"], map_free_vars=True)
        params = [p.numpy() for p in imported.params]
        assert [p.shape for p in params] == [p.shape for p in ref_params], form
        for got, want in zip(params, ref_params):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=form)


@pytest.fixture(scope="module")
def traced_half(tmp_path_factory):
    """The issue's case: a 5-class half-width AlexNet from a flowers tutorial, saved with plain
    ``torch.jit.trace(...).save``, no sidecar (width 1/4 here, to build quickly)."""
    from alexnet_tvm.model.variants import build_model

    torch.manual_seed(2)
    folder = tmp_path_factory.mktemp("half")
    model = build_model("half", 5, width=0.25).eval()
    path = folder / "alexnet.pt"
    torch.jit.trace(model, torch.randn(1, 3, 224, 224)).save(str(path))
    return path


def test_bare_torchscript_builds_verifies_and_predicts_with_its_inferred_meta(traced_half, run_cli, tmp_path):
    art = tmp_path / "art"
    names = tmp_path / "flowers.txt"
    names.write_text("daisy\ndandelion\nroses\nsunflowers\ntulips\n")
    res = run_cli("build", traced_half, "--target", "x86-avx2", "-o", art, "--class-names", names)
    assert res.exit_code == 0, res.output
    manifest = json.loads((art / "manifest.json").read_text())
    meta = manifest["meta"]
    assert (meta["input_size"], meta["resize_size"], meta["num_classes"]) == (224, 256, 5)
    assert meta["class_names"] == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert manifest["input"]["shape"] == [1, 3, 224, 224] and manifest["output"]["shape"] == [1, 5]
    for against in ("pytorch", "onnxruntime"):
        res = run_cli("verify", art, "--against", against, "--report", tmp_path / f"{against}.json")
        assert res.exit_code == 0, res.output
        assert json.loads((tmp_path / f"{against}.json").read_text())["passed"] is True
    img = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 280, 3), dtype=np.uint8)).save(img)
    res = run_cli("predict", art, img)
    assert res.exit_code == 0 and any(n in res.output for n in ("daisy", "tulips", "roses")), res.output


def test_model_flags_that_contradict_the_file_are_refused(traced_half, run_cli, tmp_path, one_line_error):
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    one_line_error(run_cli("build", traced_half, "--target", "x86-avx2", "-o", tmp_path / "a", "--class-names",
                           names), "3 names for 5 classes")
    one_line_error(run_cli("build", traced_half, "--target", "x86-avx2", "-o", tmp_path / "b", "--classes", "7"),
                   "--classes 7", "outputs 5 classes")
    one_line_error(run_cli("build", traced_half, "--target", "x86-avx2", "-o", tmp_path / "c", "--std", "1", "0",
                           "1"), "--std")
    assert not any((tmp_path / d).exists() for d in "abc")


def test_a_file_that_runs_at_no_probed_size_names_the_sizes_and_the_flag(tmp_path, run_cli, one_line_error):
    from alexnet_tvm.model.describe import PROBE_SIZES

    odd = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 50 * 50, 4)).eval()
    path = tmp_path / "odd.pt"
    torch.jit.trace(odd, torch.randn(1, 3, 50, 50)).save(str(path))
    line = one_line_error(run_cli("build", path, "--target", "x86-avx2", "-o", tmp_path / "art"),
                          "no forward pass succeeded", "--input-size")
    assert ", ".join(map(str, PROBE_SIZES)) in line
    res = run_cli("build", path, "--target", "x86-avx2", "-o", tmp_path / "art", "--input-size", "50")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "art" / "manifest.json").read_text())["meta"]["input_size"] == 50


def test_an_onnx_mlp_that_takes_an_image_builds_untuned_as_the_readme_says(tmp_path, run_cli):
    """Not AlexNet, but an image classifier: it builds and runs, every task listed as untuned in the
    output and the manifest, and the manifest says ``arch: unknown`` (README, "What is accepted")."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"w1": rng.standard_normal((3 * 32 * 32, 16)), "b1": rng.standard_normal(16),
               "w2": rng.standard_normal((16, 5)), "b2": rng.standard_normal(5)}
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w1"], ["h"]),
             helper.make_node("Add", ["h", "b1"], ["hb"]), helper.make_node("Relu", ["hb"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["o"]), helper.make_node("Add", ["o", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    path = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    res = run_cli("build", path, "--target", "x86-avx2", "-o", tmp_path / "art", "--logs-dir", tmp_path / "logs")
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["meta"]["arch"] == "unknown" and manifest["meta"]["num_classes"] == 5
    tuning = manifest["tuning"]
    assert tuning["tasks"] >= 2 and tuning["tuned"] == 0 and len(tuning["untuned"]) == tuning["tasks"]
    assert "UNTUNED: " in res.output


def test_onnx_with_two_inputs_is_one_error_line(tmp_path, run_cli, one_line_error):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 32, 32]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])])
    path = tmp_path / "two.onnx"
    import onnx

    onnx.save(helper.make_model(graph), str(path))
    one_line_error(run_cli("build", path, "--target", "x86-avx2", "-o", tmp_path / "art"),
                   "expected one image input, found 2", "a, b")


def test_bare_state_dicts_of_every_variant_are_recognised(tmp_path):
    """A state_dict's keys and shapes tell the variant, width and classes (no sidecar)."""
    from alexnet_tvm.model.checkpoint import load_any_checkpoint
    from alexnet_tvm.model.variants import VARIANTS, build_model

    for arch, spec in VARIANTS.items():
        path = tmp_path / f"{arch}.pth"
        torch.save(build_model(arch, 7, width=0.25).state_dict(), path)
        _, meta = load_any_checkpoint(path)
        assert (meta.arch, meta.num_classes, meta.width, meta.input_size) == (arch, 7, 0.25,
                                                                               spec.default_input_size), arch


@pytest.mark.slow
def test_alexnet1000_from_onnx_and_torchscript_builds_tuned_agrees_and_verifies(alexnet1000, tmp_path, run_cli):
    """The issue's two cases at full size on x86-avx512 hosts: a dynamic-batch opset-13 ONNX export and a
    traced TorchScript file build with every task tuned, pass verify, and compute the same logits."""
    from alexnet_tvm.host import host_cpu_flags
    from alexnet_tvm.runtime.artifact import load_artifact

    if set(_spec().host_features) - host_cpu_flags():
        pytest.skip(f"this CPU cannot run {TARGET}")
    model, x = alexnet1000
    logits = {}
    for form, against in (("onnx13_dynamic", "onnxruntime"), ("torchscript_traced", "pytorch")):
        path = write_form(form, model, x, tmp_path / form)
        art = tmp_path / f"art-{form}"
        res = run_cli("build", path, "--target", TARGET, "-o", art)
        assert res.exit_code == 0, res.output
        tuning = json.loads((art / "manifest.json").read_text())["tuning"]
        assert tuning["untuned"] == [] and tuning["tuned"] == tuning["tasks"], tuning
        res = run_cli("verify", art, "--against", against)
        assert res.exit_code == 0, res.output
        logits[form] = load_artifact(art).predict(x.numpy())
    a, b = logits.values()
    np.testing.assert_allclose(a, b, atol=1e-4 * max(1.0, float(np.ptp(a))), rtol=0)
