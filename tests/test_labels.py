"""The general label-file reader (both forms) and top-k counting that ascend and evaluations share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alexnet_tvm.errors import DatasetError
from alexnet_tvm.runtime.labels import read_label_list, read_labels
from alexnet_tvm.runtime.metrics import topk_accuracy


def test_name_and_path_forms(tmp_path: Path) -> None:
    (tmp_path / "val_label.txt").write_text("x.JPEG 3\ny.png 0\n")
    assert read_labels(tmp_path / "val_label.txt").labels == {"x": 3, "y": 0}
    (tmp_path / "val_list.txt").write_text("val/b.jpg 1\n\nval/a.jpg 0\nval/b.jpg 1\n/abs/c.jpg 2\n")
    lst = read_label_list(tmp_path / "val_list.txt")
    assert lst.items == [(tmp_path / "val/b.jpg", 1), (tmp_path / "val/a.jpg", 0), (Path("/abs/c.jpg"), 2)]
    assert len(lst.warnings) == 2 and "same path" in lst.warnings[1]
    (tmp_path / "bad.txt").write_text("val/a.jpg 0\nval/a.jpg 2\n")
    with pytest.raises(DatasetError, match=r"bad.txt:2: val/a.jpg is labelled 2 here and 0 on line 1"):
        read_label_list(tmp_path / "bad.txt")
    (tmp_path / "bad.txt").write_text("val/a.jpg\n")
    with pytest.raises(DatasetError, match="expected 'PATH LABEL'"):
        read_label_list(tmp_path / "bad.txt")
    with pytest.raises(DatasetError, match="no such label file"):
        read_labels(tmp_path / "absent.txt")


def test_general_topk_has_no_background_shift() -> None:
    """Only vision_metric shifts 1001-way labels; the general count takes labels as they are."""
    logits = np.zeros((2, 1001), np.float32)
    logits[0, 5] = logits[1, 7] = 1
    top = topk_accuracy(logits, ["a", "b"], {"a": 5, "b": 6})
    assert top.top(1) == 0.5
    assert topk_accuracy(logits, ["a", "b"], {"a": 4, "b": 6}, label_offset=1).top(1) == 1.0
    with pytest.raises(DatasetError, match="b: no label in the label file"):
        topk_accuracy(logits, ["a", "b"], {"a": 5})
