"""Bad inputs: one ``error:`` line on stderr, exit status 2, existing files byte-identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alexnet_tvm.meta import sidecar_path
from alexnet_tvm.model.variants import build_model

VENV_BIN = Path(sys.executable).parent

#: train flags for a run that would finish in a second if the inputs were good
TINY_TRAIN = ("--arch", "cifar", "--width", "0.125", "--epochs", "1", "--batch-size", "8", "--max-steps", "1")


def _edit_sidecar(checkpoint: Path, **change) -> None:
    side = json.loads(sidecar_path(checkpoint).read_text())
    side.update(change)
    sidecar_path(checkpoint).write_text(json.dumps(side))


def _existing_run(root: Path) -> Path:
    """An out dir that already holds a (fake) run which must survive untouched."""
    out = root / "run"
    out.mkdir(parents=True)
    (out / "model.pt").write_bytes(b"old weights")
    (out / "model.pt.json").write_text('{"old": true}')
    (out / "history.json").write_text("[]")
    return out


# --------------------------------------------------------------------------- train


def test_train_missing_dataset(tmp_path: Path, run_cli, one_line_error, tree_snapshot) -> None:
    before = tree_snapshot(tmp_path)
    result = run_cli("train", tmp_path / "no-such-set", "-o", tmp_path / "run", *TINY_TRAIN)
    one_line_error(result, "no such dataset")
    assert tree_snapshot(tmp_path) == before
    assert not (tmp_path / "run").exists()


def test_train_dataset_is_a_file(tmp_path: Path, run_cli, one_line_error, tree_snapshot) -> None:
    (tmp_path / "set.zip").write_bytes(b"PK\x03\x04")
    before = tree_snapshot(tmp_path)
    one_line_error(run_cli("train", tmp_path / "set.zip", "-o", tmp_path / "run", *TINY_TRAIN), "must be a folder")
    assert tree_snapshot(tmp_path) == before


@pytest.mark.parametrize("counts, fragment", [
    ({"only": 4}, "at least 2 class folders, found 1"),
    ({}, "found 0"),
    ({"a": 4, "b": 0}, "class folder has no images"),
])
def test_train_malformed_image_folder(tmp_path: Path, run_cli, one_line_error, tree_snapshot,
                                      image_folder_writer, counts: dict, fragment: str) -> None:
    data = image_folder_writer(tmp_path / "data", counts)
    out = _existing_run(tmp_path)
    before = tree_snapshot(tmp_path)
    one_line_error(run_cli("train", data, "-o", out, "--force", *TINY_TRAIN), fragment)
    assert tree_snapshot(tmp_path) == before


def test_train_unreadable_image(tmp_path: Path, run_cli, one_line_error, tree_snapshot,
                                image_folder_writer) -> None:
    """A corrupt image fails the run with one line; even with --force the old run survives."""
    data = image_folder_writer(tmp_path / "data", {"a": 4, "b": 4})
    for p in (data / "a").iterdir():
        p.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = _existing_run(tmp_path)
    before = tree_snapshot(tmp_path)
    one_line_error(run_cli("train", data, "-o", out, "--force", *TINY_TRAIN), "not a readable image")
    assert tree_snapshot(tmp_path) == before


def test_train_corrupt_cifar_batch(tmp_path: Path, run_cli, one_line_error, tree_snapshot, cifar10_writer) -> None:
    files = cifar10_writer(tmp_path / "cifar", train_batches=(4,), n_test=2)
    (files.root / "test_batch").write_bytes(b"\x80\x02}q\x00.")  # a pickled empty dict: no b'data'
    before = tree_snapshot(tmp_path)
    one_line_error(run_cli("train", files.root, "-o", tmp_path / "run", *TINY_TRAIN), "not a CIFAR-10 python batch")
    assert tree_snapshot(tmp_path) == before


def test_train_unknown_variant(tmp_path: Path, run_cli, one_line_error, tree_snapshot, tiny_image_folder) -> None:
    out = _existing_run(tmp_path)
    before = tree_snapshot(tmp_path)
    result = run_cli("train", tiny_image_folder, "-o", out, "--force", "--arch", "vgg16", "--max-steps", "1")
    one_line_error(result, "unknown variant 'vgg16'")
    assert tree_snapshot(tmp_path) == before


def test_train_out_dir_exists_without_force(tmp_path: Path, run_cli, one_line_error, tree_snapshot,
                                            tiny_image_folder) -> None:
    out = _existing_run(tmp_path)
    before = tree_snapshot(tmp_path)
    one_line_error(run_cli("train", tiny_image_folder, "-o", out, *TINY_TRAIN), "already holds a run", "--force")
    assert tree_snapshot(tmp_path) == before


def test_train_pretrained_whole_model_refused(tmp_path: Path, run_cli, one_line_error, tree_snapshot,
                                              tiny_image_folder) -> None:
    whole = tmp_path / "whole.pt"
    torch.save(build_model("cifar", 3, 0.125), whole)
    before = tree_snapshot(tmp_path)
    result = run_cli("train", tiny_image_folder, "-o", tmp_path / "run", "--pretrained", whole, *TINY_TRAIN)
    one_line_error(result, "pickled whole model is refused")
    assert tree_snapshot(tmp_path) == before


def test_train_pretrained_other_architecture(tmp_path: Path, run_cli, one_line_error, tree_snapshot,
                                             tiny_image_folder) -> None:
    other = tmp_path / "half.pt"
    torch.save(build_model("half", 3, 0.125).state_dict(), other)
    before = tree_snapshot(tmp_path)
    result = run_cli("train", tiny_image_folder, "-o", tmp_path / "run", "--pretrained", other, *TINY_TRAIN)
    one_line_error(result, "has shape")
    assert tree_snapshot(tmp_path) == before


def test_train_resume_without_a_run(tmp_path: Path, run_cli, one_line_error, tiny_image_folder) -> None:
    one_line_error(run_cli("train", tiny_image_folder, "-o", tmp_path / "run", "--resume", *TINY_TRAIN),
                   "nothing to resume")


def test_train_resume_damaged_state(tmp_path: Path, run_cli, one_line_error, tree_snapshot,
                                    tiny_image_folder) -> None:
    out = _existing_run(tmp_path)
    (out / "last.ckpt").write_bytes(b"PK\x03\x04 cut short")
    before = tree_snapshot(tmp_path)
    one_line_error(run_cli("train", tiny_image_folder, "-o", out, "--resume", *TINY_TRAIN),
                   "unreadable training state")
    assert tree_snapshot(tmp_path) == before


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("fmt, name", [("torchscript", "model.torchscript.pt"), ("onnx", "model.onnx"),
                                       ("pt2", "model.pt2")])
def test_export_output_exists_without_force(tiny_checkpoint_copy: Path, run_cli, one_line_error, tree_snapshot,
                                            fmt: str, name: str) -> None:
    folder = tiny_checkpoint_copy.parent
    (folder / name).write_bytes(b"an earlier export")
    (folder / (name + ".json")).write_text('{"earlier": true}')
    before = tree_snapshot(folder)
    one_line_error(run_cli("export", tiny_checkpoint_copy, "--format", fmt), "already exists", "--force")
    assert tree_snapshot(folder) == before


@pytest.mark.parametrize("change, fragment", [
    ({"arch": "torchvision", "input_size": 64, "resize_size": 64}, "has shape"),
    ({"arch": "paper", "input_size": 64, "resize_size": 64}, "does not fit this architecture"),
    ({"num_classes": 4, "class_names": ["a", "b", "c", "d"]}, "classifier.6.weight has shape"),
    ({"num_classes": 4}, "3 class names for 4 classes"),
    ({"arch": "alexnet9000"}, "unknown variant"),
])
def test_export_checkpoint_not_matching_sidecar(tiny_checkpoint_copy: Path, run_cli, one_line_error,
                                                tree_snapshot, change: dict, fragment: str) -> None:
    _edit_sidecar(tiny_checkpoint_copy, **change)
    before = tree_snapshot(tiny_checkpoint_copy.parent)
    one_line_error(run_cli("export", tiny_checkpoint_copy, "--format", "onnx"), fragment)
    assert tree_snapshot(tiny_checkpoint_copy.parent) == before


def test_export_pickled_whole_model_refused(tiny_checkpoint_copy: Path, run_cli, one_line_error,
                                            tree_snapshot) -> None:
    """torch.save(model) in place of the state_dict, sidecar intact: refused, never unpickled."""
    model = build_model("cifar", 3, 0.125)
    torch.save(model, tiny_checkpoint_copy)
    before = tree_snapshot(tiny_checkpoint_copy.parent)
    one_line_error(run_cli("export", tiny_checkpoint_copy, "--format", "torchscript"),
                   "pickled whole model is refused")
    assert tree_snapshot(tiny_checkpoint_copy.parent) == before


@pytest.mark.parametrize("content, fragment", [
    (None, "no such checkpoint"),
    (b"\x00" * 64, "unreadable checkpoint"),
])
def test_export_missing_or_unreadable_checkpoint(tmp_path: Path, run_cli, one_line_error, tree_snapshot,
                                                 content: bytes | None, fragment: str) -> None:
    ckpt = tmp_path / "model.pt"
    if content is not None:
        ckpt.write_bytes(content)
        sidecar_path(ckpt).write_text(json.dumps({
            "arch": "cifar", "num_classes": 2, "input_size": 32, "resize_size": 32, "class_names": ["a", "b"]}))
    before = tree_snapshot(tmp_path)
    one_line_error(run_cli("export", ckpt, "--format", "onnx"), fragment)
    assert tree_snapshot(tmp_path) == before


def test_export_malformed_sidecar(tiny_checkpoint_copy: Path, run_cli, one_line_error, tree_snapshot) -> None:
    sidecar_path(tiny_checkpoint_copy).write_text("{not json")
    before = tree_snapshot(tiny_checkpoint_copy.parent)
    one_line_error(run_cli("export", tiny_checkpoint_copy, "--format", "pt2"), "unreadable sidecar")
    assert tree_snapshot(tiny_checkpoint_copy.parent) == before


# --------------------------------------------------------------------------- the installed program


def test_installed_cli_one_line_error(tmp_path: Path, one_line_error) -> None:
    """The real entry point, in a fresh process: one line, status 2, no traceback."""
    exe = VENV_BIN / "alexnet-tvm"
    if not exe.exists():
        pytest.skip(f"{exe} is not installed")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([str(exe), "train", str(tmp_path / "missing"), "-o", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, env=env)
    one_line_error(proc, "no such dataset")
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_runtime_imports_without_torch() -> None:
    """The board runtime must not need torch: block it and import the runtime side."""
    code = (
        "import sys\n"
        "for name in ('torch', 'torchvision'):\n"
        "    sys.modules[name] = None  # any 'import torch' now raises ImportError\n"
        "import alexnet_tvm, alexnet_tvm.meta, alexnet_tvm.errors, alexnet_tvm.fsutil\n"
        "import alexnet_tvm.runtime, alexnet_tvm.preprocess as pp\n"
        "from PIL import Image\n"
        "x = pp.eval_transform(Image.new('RGB', (40, 48), (255, 0, 0)), 36, 32, (0.5,) * 3, (0.5,) * 3)\n"
        "assert x.shape == (3, 32, 32), x.shape\n"
        "meta = alexnet_tvm.meta.ModelMeta('cifar', 2, 32, 32, ['a', 'b'])\n"
        "assert alexnet_tvm.meta.ModelMeta.from_dict(meta.to_dict()) == meta\n"
        "assert sys.modules['torch'] is None\n"
        "try:\n"
        "    import torch\n"
        "except ImportError:\n"
        "    print('ok: torch blocked')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok: torch blocked"
