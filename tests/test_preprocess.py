"""The core image preprocessing: one ImageFolder scanner for training, verify --eval-set and Ascend."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alexnet_tvm.errors import DatasetError, ToolkitError
from alexnet_tvm.preprocess import eval_transform, list_images, load_image, load_labelled_folder, scan_class_folders

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _img(path: Path, value: int, size: int = 40) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size + 4), (value, 255 - value, value // 2)).save(path)


def _nested_tree(root: Path) -> Path:
    """train/ and val/ trees whose val/ holds images below the class folders, and things to skip."""
    for split in ("train", "val"):
        _img(root / split / "ant" / "a0.png", 10)
        _img(root / split / "ant" / "sub" / "a1.png", 20)
        _img(root / split / "ant" / "sub" / "deeper" / "a2.JPG", 30)
        _img(root / split / "bee" / "b0.png", 40)
        _img(root / split / "bee" / "nested" / "b1.jpeg", 50)
    val = root / "val"
    _img(val / "bee" / ".hidden.png", 60)  # hidden file
    (val / "bee" / "._b0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS companion, not an image
    _img(val / "bee" / ".ipynb_checkpoints" / "b9.png", 70)  # hidden folder
    (val / "bee" / "notes.txt").write_text("not an image")
    (val / ".cache").mkdir()  # hidden class-level folder: not a class
    return root


def test_training_and_verify_see_the_same_images_in_a_nested_folder(tmp_path: Path) -> None:
    from alexnet_tvm.model.datasets import load_dataset

    root = _nested_tree(tmp_path / "set")
    data = load_dataset(str(root), seed=0)
    val_paths = [p.relative_to(root / "val").as_posix() for p in data.val.paths]
    assert val_paths == ["ant/a0.png", "ant/sub/a1.png", "ant/sub/deeper/a2.JPG", "bee/b0.png", "bee/nested/b1.jpeg"]
    assert data.class_names == ["ant", "bee"]

    x, y = load_labelled_folder(root, data.class_names, 36, 32, MEAN, STD)  # verify --eval-set takes val/
    assert y.tolist() == data.val.labels == [0, 0, 0, 1, 1]
    want = np.stack([eval_transform(load_image(p), 36, 32, MEAN, STD) for p in data.val.paths])
    np.testing.assert_array_equal(x, want)


def test_ascend_scans_the_same_tree(tmp_path: Path) -> None:
    from alexnet_tvm.runtime import ascend as A

    root = _nested_tree(tmp_path / "set") / "val"
    images, ignored = A.collect_images(root)
    assert images == scan_class_folders(root).paths and ignored == []
    n, classes = A.write_label_file(root, tmp_path / "val_label.txt")
    assert (n, classes) == (5, ["ant", "bee"])


def test_scanner_rules(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _img(root / "b" / "x.png", 1)
    _img(root / "a" / "y.PNG", 2)
    _img(tmp_path / "elsewhere" / "z.png", 3)
    os.symlink(tmp_path / "elsewhere", root / "a" / "link")  # not followed: no image seen twice
    (root / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty: class folder has no images"):
        scan_class_folders(root)
    tree = scan_class_folders(root, allow_empty=True)
    assert tree.classes == ["a", "b", "empty"] and tree.labels == [0, 1]
    assert [p.name for p in tree.paths] == ["y.PNG", "x.png"]
    with pytest.raises(DatasetError, match="at least 4 class folders, found 3"):
        scan_class_folders(root, min_classes=4)
    with pytest.raises(DatasetError, match="no such image folder"):
        scan_class_folders(tmp_path / "absent")


def test_flat_listing_uses_the_same_file_rule(tmp_path: Path) -> None:
    _img(tmp_path / "b.png", 1)
    _img(tmp_path / "A.JPEG", 2)
    _img(tmp_path / ".hidden.png", 3)
    _img(tmp_path / "sub" / "c.png", 4)
    (tmp_path / "d.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["A.JPEG", "b.png"]


def test_eval_set_refuses_an_unknown_class(tmp_path: Path) -> None:
    root = _nested_tree(tmp_path / "set")
    with pytest.raises(ToolkitError, match="'bee' is not one of the model's classes"):
        load_labelled_folder(root, ["ant", "cat"], 36, 32, MEAN, STD)
