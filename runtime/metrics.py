"""Top-k classification accuracy, counted the way the Ascend ModelZoo's vision_metric counts it.

One counting rule for every accuracy the toolkit reports (``ascend metric``, the
TVM-vs-OM comparison, a labelled evaluation of a built library), so that figures
from different runtimes can be set side by side. vision_metric is the reference
because the ModelZoo's published AlexNet numbers come from it: each row is ranked
with ``np.argsort(-row)`` (ties break as there) and the result table is its
``result.json``, byte for byte.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from alexnet_tvm.errors import DatasetError

from .counted import counted_warnings

log = logging.getLogger(__name__)

#: Top-1 .. Top-5, as vision_metric reports
TOPN = 5


@dataclass
class TopKResult:
    """Top-k statistics: hits[k] = samples whose label is the (k+1)-th prediction."""

    n_images: int
    n_classes: int
    hits: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> np.ndarray:
        """Cumulative Top-1..Top-k accuracy, computed as vision_metric does (float64 cumsum / count)."""
        return np.cumsum(self.hits) / self.n_images

    def top(self, k: int) -> float:
        return float(self.accuracy[min(k, len(self.hits)) - 1])

    def table(self) -> dict:
        """The result.json object, key order and value strings exactly as vision_metric builds them."""
        value = [{"key": "Number of images", "value": str(self.n_images)},
                 {"key": "Number of classes", "value": str(self.n_classes)}]
        acc = self.accuracy
        for i in range(len(self.hits)):
            # numpy float64 rounding and str(), not Python's, to match vision_metric digit for digit
            value.append({"key": "Top" + str(i + 1) + " accuracy", "value": str(round(acc[i] * 100, 2)) + "%"})
        return {"title": "Overall statistical evaluation", "value": value}

    def to_json(self) -> str:
        """Single line, ``json.dump``'s default separators, no trailing newline: vision_metric's bytes."""
        return json.dumps(self.table())


def topk_accuracy(logits: np.ndarray, names: Sequence[str], labels: Mapping[str, int], topn: int = TOPN,
                  label_source: str = "the label file", label_offset: int = 0) -> TopKResult:
    """Top-1..Top-n over ``logits`` (N x C), row ``i`` being sample ``names[i]``.

    A result without a label is an error (vision_metric dies on it); labels outside
    the output count as misses, as there, but are counted in a warning, as are
    labelled samples without a result. ``label_offset`` is added to every label
    (1 for outputs with a leading background class).
    """
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2 or len(logits) != len(names):
        raise DatasetError(f"logits of shape {logits.shape} for {len(names)} names")
    if len(names) == 0:
        raise DatasetError("no results to score")
    n, c = logits.shape
    res_cnt = min(c, topn)
    truth = np.empty(n, dtype=np.int64)
    for i, name in enumerate(names):
        if name not in labels:
            raise DatasetError(f"{name}: no label in {label_source}")
        truth[i] = int(labels[name]) + label_offset
    order = np.argsort(-logits, axis=1)[:, :res_cnt]
    match = order == truth[:, None]
    hits = np.zeros(res_cnt)
    found = match.any(axis=1)
    np.add.at(hits, match.argmax(axis=1)[found], 1)
    out_of_range = int(((truth < 0) | (truth >= c)).sum())
    unused = len(set(labels) - set(names))
    warnings = counted_warnings(
        log,
        f"{out_of_range} labels lie outside the {c} output classes; counted as misses, as vision_metric does"
        if out_of_range else None,
        f"{unused} labelled images have no result; the accuracy covers the {n} results only" if unused else None)
    return TopKResult(n, c, hits, warnings)
