"""Datasets (ImageFolder, CIFAR-10 batches, digits) and training (train(), --resume, transfer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet_tvm.errors import CheckpointError, DatasetError, OutputExistsError
from alexnet_tvm.meta import read_sidecar
from alexnet_tvm.model.checkpoint import load_checkpoint, load_weights
from alexnet_tvm.model.datasets import (ArrayImages, FileImages, TransformedImages, load_dataset,
                                        load_digits, split_by_class)
from alexnet_tvm.model.train import TrainConfig, train


def _tiny_cfg(dataset: Path | str, out: Path, **kw) -> TrainConfig:
    """The smallest useful run: cifar at width 0.125, 2 batches an epoch."""
    base = dict(arch="cifar", width=0.125, epochs=1, batch_size=8, lr=1e-3, max_steps=2, seed=0)
    base.update(kw)
    return TrainConfig(dataset=str(dataset), out_dir=out, **base)


# --------------------------------------------------------------------------- datasets


def test_image_folder_classes_counts_and_labels(tmp_path: Path, image_folder_writer) -> None:
    root = image_folder_writer(tmp_path / "flowers", {"tulip": 20, "daisy": 10, "rose": 11})
    data = load_dataset(str(root), seed=0)
    assert data.class_names == ["daisy", "rose", "tulip"]  # sorted folder names
    assert data.allow_flip
    assert isinstance(data.train, FileImages) and isinstance(data.val, FileImages)
    assert len(data.train) + len(data.val) == 41
    # stratified 9:1: round(10%) per class, at least one each side
    val_counts = np.bincount(data.val.labels, minlength=3).tolist()
    assert val_counts == [1, 1, 2]
    assert np.bincount(data.train.labels, minlength=3).tolist() == [9, 10, 18]
    for src in (data.train, data.val):
        for path, label in zip(src.paths, src.labels):
            assert path.parent.name == data.class_names[label]
    assert not set(data.train.paths) & set(data.val.paths)
    img = data.train.image(0)
    assert img.mode == "RGB" and img.size == (32, 32)


def test_image_folder_split_is_reproducible_by_seed(tmp_path: Path, image_folder_writer) -> None:
    root = image_folder_writer(tmp_path / "set", {"a": 20, "b": 20})
    first, again, other = (load_dataset(str(root), seed=s) for s in (7, 7, 8))
    assert first.val.paths == again.val.paths and first.train.paths == again.train.paths
    assert first.fingerprint == again.fingerprint
    assert set(first.val.paths) != set(other.val.paths)
    assert first.fingerprint != other.fingerprint
    assert len(first.val) == 4 and len(first.train) == 36


def test_split_by_class_rules() -> None:
    labels = [0] * 30 + [1] * 2 + [2]
    train_idx, val_idx = split_by_class(labels, seed=0)
    assert sorted(train_idx + val_idx) == list(range(len(labels)))
    assert [labels[i] for i in val_idx].count(0) == 3
    assert [labels[i] for i in val_idx].count(1) == 1  # a pair still gives one to val
    assert 32 in train_idx and 32 not in val_idx  # a single image stays in train
    assert split_by_class(labels, seed=0) == (train_idx, val_idx)


def test_image_folder_train_val_layout(tmp_path: Path, split_image_folder_writer) -> None:
    root = split_image_folder_writer(tmp_path / "tv", {"x": 5, "y": 4}, {"x": 2, "y": 3})
    data = load_dataset(str(root), seed=0)
    assert data.class_names == ["x", "y"]
    assert data.train.labels == [0] * 5 + [1] * 4
    assert data.val.labels == [0] * 2 + [1] * 3
    assert all(p.parts[-3] == "train" for p in data.train.paths)
    assert all(p.parts[-3] == "val" for p in data.val.paths)


def test_image_folder_train_val_class_mismatch(tmp_path: Path, split_image_folder_writer) -> None:
    root = split_image_folder_writer(tmp_path / "tv", {"x": 2, "y": 2}, {"x": 2, "z": 2})
    with pytest.raises(DatasetError, match="different class folders"):
        load_dataset(str(root), seed=0)


@pytest.mark.parametrize("counts, match", [
    ({"only": 3}, "at least 2 class folders, found 1"),
    ({"a": 3, "empty": 0}, "class folder has no images"),
])
def test_image_folder_malformed(tmp_path: Path, image_folder_writer, counts: dict, match: str) -> None:
    root = image_folder_writer(tmp_path / "bad", counts)
    with pytest.raises(DatasetError, match=match):
        load_dataset(str(root), seed=0)


def test_missing_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset(str(tmp_path / "absent"), seed=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="must be a folder"):
        load_dataset(str(tmp_path / "file"), seed=0)


def test_cifar10_batches_load(tmp_path: Path, cifar10_writer) -> None:
    files = cifar10_writer(tmp_path / "cifar-10-batches-py", train_batches=(12, 8), n_test=6)
    data = load_dataset(str(files.root), seed=0)
    assert data.class_names == files.label_names
    assert isinstance(data.train, ArrayImages)
    assert len(data.train) == 20 and len(data.val) == 6
    assert data.train.labels == files.train_labels
    assert data.val.labels == files.test_labels
    np.testing.assert_array_equal(data.train.arrays, files.train_images)  # NCHW rows -> NHWC
    np.testing.assert_array_equal(data.val.arrays, files.test_images)
    np.testing.assert_array_equal(np.asarray(data.train.image(3)), files.train_images[3])


def test_cifar10_without_meta_and_corrupt(tmp_path: Path, cifar10_writer) -> None:
    files = cifar10_writer(tmp_path / "c", label_names=[f"n{i}" for i in range(10)], meta=False)
    assert load_dataset(str(files.root), seed=0).class_names == [f"class_{i}" for i in range(10)]
    (files.root / "data_batch_2").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DatasetError, match="not a CIFAR-10 python batch"):
        load_dataset(str(files.root), seed=0)


def test_digits_embedded() -> None:
    data = load_digits(seed=0)
    assert data.class_names == [str(i) for i in range(10)]
    assert len(data.train) + len(data.val) == 1797
    assert 170 <= len(data.val) <= 190
    assert not data.allow_flip  # a mirrored digit is not the same digit
    assert data.train.image(0).mode == "RGB"


def test_transformed_images_shape(tiny_image_folder: Path) -> None:
    data = load_dataset(str(tiny_image_folder), seed=0)
    ds = TransformedImages(data.val, 36, 32, (0.5,) * 3, (0.25,) * 3, train=False, allow_flip=False, seed=0)
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    assert y == data.val.labels[0]


# --------------------------------------------------------------------------- training


def test_train_writes_a_complete_run(tiny_train_run, tiny_image_folder: Path) -> None:
    out = tiny_train_run.checkpoint.parent
    assert {"model.pt", "model.pt.json", "last.ckpt", "history.json", "curves.png"} <= {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    meta = read_sidecar(tiny_train_run.checkpoint)
    assert (meta.arch, meta.num_classes, meta.input_size, meta.width) == ("cifar", 3, 32, 0.125)
    assert meta.class_names == ["ant", "bee", "cat"]
    assert meta.epoch == 1 and meta.val_accuracy == tiny_train_run.best_val_accuracy
    assert meta.dataset_fingerprint == load_dataset(str(tiny_image_folder), 0).fingerprint
    history = json.loads((out / "history.json").read_text())
    assert history == tiny_train_run.history and len(history) == 1
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc"}
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model, _ = load_checkpoint(tiny_train_run.checkpoint)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_train_loss_goes_down(tmp_path: Path, tiny_image_folder: Path) -> None:
    """End to end on an ImageFolder: the training loss falls over a few short epochs."""
    res = train(_tiny_cfg(tiny_image_folder, tmp_path / "run", epochs=4, max_steps=3, lr=2e-3))
    losses = [h["train_loss"] for h in res.history]
    assert len(losses) == 4
    assert losses[-1] < losses[0] - 0.05, losses


def test_train_on_cifar_batches(tmp_path: Path, cifar10_writer) -> None:
    files = cifar10_writer(tmp_path / "cifar", train_batches=(8, 8), n_test=4,
                           label_names=["a", "b", "c", "d"])
    res = train(_tiny_cfg(files.root, tmp_path / "run", max_steps=1))
    meta = read_sidecar(res.checkpoint)
    assert meta.class_names == ["a", "b", "c", "d"] and meta.num_classes == 4


def test_train_refuses_a_non_empty_out_dir(tmp_path: Path, tiny_image_folder: Path, tree_snapshot) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    before = tree_snapshot(tmp_path)
    with pytest.raises(OutputExistsError, match="already holds a run"):
        train(_tiny_cfg(tiny_image_folder, out))
    assert tree_snapshot(tmp_path) == before
    res = train(_tiny_cfg(tiny_image_folder, out, force=True))
    assert res.checkpoint.is_file()


def test_resume_continues_to_more_epochs(tmp_path: Path, tiny_image_folder: Path) -> None:
    """1 epoch, then --resume to 2: two history entries, the same as an uninterrupted 2-epoch run."""
    out = tmp_path / "resumed"
    first = train(_tiny_cfg(tiny_image_folder, out, epochs=1))
    after_one = load_weights(out / "last.ckpt")
    res = train(_tiny_cfg(tiny_image_folder, out, epochs=2, resume=True))
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0] == first.history[0]
    assert res.epochs_run == 2 and res.history == history
    after_two = load_weights(out / "last.ckpt")
    # the resumed epoch really trained (its learning rate is not the finished run's 0)
    assert any(not torch.equal(after_one[k], after_two[k]) for k in after_one)
    straight = train(_tiny_cfg(tiny_image_folder, tmp_path / "straight", epochs=2))
    assert straight.history == history
    ref = load_weights(tmp_path / "straight" / "last.ckpt")
    for k in ref:
        torch.testing.assert_close(after_two[k], ref[k], rtol=0, atol=1e-6)


def test_resume_refuses_other_settings_and_missing_state(tmp_path: Path, tiny_image_folder: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(_tiny_cfg(tiny_image_folder, out, resume=True))
    train(_tiny_cfg(tiny_image_folder, out))
    with pytest.raises(CheckpointError, match="other settings"):
        train(_tiny_cfg(tiny_image_folder, out, epochs=2, resume=True, width=0.25))


def test_pretrained_transfer_with_frozen_features(tmp_path: Path, tiny_checkpoint: Path,
                                                  image_folder_writer) -> None:
    """A 3-class checkpoint into a 2-class run: features kept as loaded, new head trained."""
    data = image_folder_writer(tmp_path / "two", {"left": 6, "right": 6})
    src = load_weights(tiny_checkpoint)
    res = train(_tiny_cfg(data, tmp_path / "run", pretrained=tiny_checkpoint, freeze_features=True,
                          epochs=2, max_steps=1, lr=1e-2))
    for path in (res.checkpoint, tmp_path / "run" / "last.ckpt"):
        got = load_weights(path)
        assert got["classifier.6.weight"].shape[0] == 2
        for k in src:
            if k.startswith("features."):
                assert torch.equal(got[k], src[k]), k
        # the unfrozen hidden layers did train
        assert not torch.equal(got["classifier.1.weight"], src["classifier.1.weight"])


def test_pretrained_transfer_loads_the_body(tmp_path: Path, tiny_checkpoint: Path, image_folder_writer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Without freezing, training starts from the pretrained body (checked at step 0)."""
    import alexnet_tvm.model.train as train_mod

    seen: dict = {}
    real = train_mod.transfer_from

    def spy(model, state, source, freeze_features):
        real(model, state, source, freeze_features)
        seen.update({k: v.clone() for k, v in model.state_dict().items()})

    monkeypatch.setattr(train_mod, "transfer_from", spy)
    data = image_folder_writer(tmp_path / "five", {f"k{i}": 3 for i in range(5)})
    train(_tiny_cfg(data, tmp_path / "run", pretrained=tiny_checkpoint, max_steps=1))
    src = load_weights(tiny_checkpoint)
    assert seen["classifier.6.weight"].shape[0] == 5
    for k, v in src.items():
        if not k.startswith("classifier.6."):
            assert torch.equal(seen[k], v), k
