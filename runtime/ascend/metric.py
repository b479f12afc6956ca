"""vision_metric's Top-1..Top-5 over ais_bench results, and its ``result.json``.

The counting itself is the toolkit's general one (:mod:`alexnet_tvm.runtime.metrics`);
what is vision_metric's own is the background class: a 1001-way output (class 0 =
background, as some ModelZoo models have) shifts every label by one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from alexnet_tvm.fsutil import refuse_existing, write_text

from ..labels import Labels, read_labels
from ..metrics import TOPN, TopKResult, topk_accuracy
from .results import AisResults, load_results

#: an output this wide has a leading background class (vision_metric's rule)
BACKGROUND_CLASSES = 1001


def vision_metric_topk(logits: np.ndarray, names: Sequence[str], labels: Mapping[str, int],
                       topn: int = TOPN, label_source: str = "the label file") -> TopKResult:
    """Top-1..Top-n as vision_metric counts them: :func:`topk_accuracy`, background class included."""
    logits = np.asarray(logits, dtype=np.float32)
    offset = 1 if logits.ndim == 2 and logits.shape[1] == BACKGROUND_CLASSES else 0
    return topk_accuracy(logits, names, labels, topn, label_source, label_offset=offset)


def write_result_json(path: Path, result: TopKResult, force: bool = False) -> None:
    """Write vision_metric's result.json (atomically; refuses an existing file without force)."""
    path = Path(path)
    refuse_existing(path, force)
    write_text(path, result.to_json())


def evaluate_results(results_dir: Path, label_file: Path, num_classes: int | None = None, *,
                     input_names: Sequence[str] | None = None) -> tuple[AisResults, Labels, TopKResult]:
    """``ascend metric`` in one call: load, validate, score."""
    res = load_results(results_dir, num_classes, input_names=input_names)
    labels = read_labels(label_file)
    return res, labels, vision_metric_topk(res.logits, res.names, labels.labels, label_source=str(label_file))
