"""Bring your own AlexNet: every file form builds from the file alone and reaches the committed records.

The forms are written by the exporters a user calls (tests/forms.py), with no sidecar.
Coverage is checked against the committed x86-avx512 records as they are in the checkout
(copied, so a tune running in the work tree cannot change what is read); agreement is
checked on the prepared Relax graphs and their parameters, which is what the build
compiles, so one structural comparison stands for compiling each form.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from forms import WRITERS, write_form

ROOT = Path(__file__).resolve().parent.parent
TARGET = "x86-avx512"


@pytest.fixture(scope="module")
def alexnet1000():
    """torchvision's alexnet() with seeded random weights (no download), and an example input."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.alexnet().eval(), torch.randn(1, 3, 224, 224)


@pytest.fixture(scope="module")
def committed_db(tmp_path_factory):
    from alexnet_tvm.records import RECORDS, WORKLOADS, open_database

    db = tmp_path_factory.mktemp("db")
    for f in (WORKLOADS, RECORDS):
        shutil.copyfile(ROOT / "tuning_logs" / TARGET / f, db / f)
    return open_database(db, for_tuning=False)


def _spec():
    from alexnet_tvm.compile.targets import load_targets

    return load_targets(ROOT / "targets.yaml")[TARGET]


def _prepared(path: Path, batch: int = 1):
    from alexnet_tvm.compile.importer import import_model
    from alexnet_tvm.compile.pipeline import prepare

    spec = _spec()
    imported = import_model(path, batch)
    return imported, prepare(imported.mod, spec.tvm_target(), spec.conv_layout, spec.winograd_tile)


FORMS = ["checkpoint", *WRITERS]


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


@pytest.mark.parametrize("form", FORMS)
def test_every_form_builds_from_the_file_alone_with_every_task_tuned(form, alexnet1000, committed_db, tmp_path):
    from alexnet_tvm.compile.tune import has_record, tuning_tasks
    from alexnet_tvm.model.describe import imagenet_categories

    model, x = alexnet1000
    path = _write(form, model, x, tmp_path)
    imported, prepared = _prepared(path)
    target = _spec().tvm_target()
    tasks = tuning_tasks(prepared, target)
    missing = [t.task_name for t in tasks if not has_record(committed_db, t, target)]
    assert len(tasks) >= 12 and not missing, f"{form}: {len(missing)}/{len(tasks)} untuned: {missing}"
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


def test_every_form_gives_the_same_graph_and_weights(small_forms):
    """What the build compiles is the same for every form: the prepared graph is structurally
    equal and the parameters it receives are equal, so their artifacts compute the same."""
    import tvm

    _, _, paths = small_forms
    ref_imported, ref = _prepared(paths["state_dict"])
    ref_params = [p.numpy() for p in ref_imported.params]
    for form, path in paths.items():
        imported, prepared = _prepared(path)
        tvm.ir.assert_structural_equal(prepared["main"], ref["main"], map_free_vars=True)
        params = [p.numpy() for p in imported.params]
        assert [p.shape for p in params] == [p.shape for p in ref_params], form
        for got, want in zip(params, ref_params):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=form)
