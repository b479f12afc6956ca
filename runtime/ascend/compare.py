"""TVM's logits against an OM model's recorded ones: the ``verify --against ascend:DIR`` gate.

The OM's outputs are the reference; the tolerance adds what their storage loses
(TXT keeps 6 decimals), so a faithful TVM build is never failed for rounding.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from alexnet_tvm.errors import AscendError

from .metric import vision_metric_topk
from .results import AisResults

#: TXT results are ``%f``: 6 decimals, so a value is known to half a unit in the 6th place
TXT_ROUNDING = 5e-7


def om_tolerance(om: AisResults, atol: float = 1e-4) -> float:
    """The absolute difference to allow between another runtime's logits and these.

    ``atol`` is the compute tolerance (float32 runtimes: 1e-4, as the exports use);
    TXT adds its 6-decimal rounding (5e-7) and the float32 re-rounding of the parsed
    value (half an ulp at the largest magnitude).
    """
    tol = float(atol)
    if om.fmt == "txt":
        peak = float(np.max(np.abs(om.logits))) if om.logits.size else 0.0
        tol += TXT_ROUNDING + float(np.spacing(np.float32(peak))) / 2
    return tol


def compare_to_om(tvm_logits: np.ndarray, om: AisResults, labels: Mapping[str, int] | None = None, *,
                  names: Sequence[str] | None = None, atol: float = 1e-4) -> dict:
    """Per-image agreement between TVM's logits and the OM's, plus Top-1/Top-5 for both.

    ``names``: the sample of each row of ``tvm_logits`` (from :func:`load_bin_inputs`);
    None means the rows already follow ``om.names``. A top-1 disagreement where the
    OM's two candidates lie within the tolerance of each other is a tie, not a
    mismatch (TXT rounding alone can swap them).
    """
    tvm = np.asarray(tvm_logits, dtype=np.float32)
    if names is not None:
        if len(names) != len(tvm):
            raise AscendError(f"{len(names)} names for {len(tvm)} rows of TVM logits")
        om = om.align(names, "the TVM inputs")
    if tvm.shape != om.logits.shape:
        raise AscendError(f"TVM logits {tvm.shape} vs OM results {om.logits.shape} in {om.results_dir}")
    if not len(tvm):
        raise AscendError("nothing to compare")
    ref = om.logits
    n, c = ref.shape
    tol = om_tolerance(om, atol)
    diff = np.abs(tvm.astype(np.float64) - ref.astype(np.float64))
    per_image = diff.max(axis=1)
    worst = int(per_image.argmax())
    t1, o1 = tvm.argmax(axis=1), ref.argmax(axis=1)
    agree = t1 == o1
    tie = ~agree & (np.abs(ref[np.arange(n), t1].astype(np.float64) - ref[np.arange(n), o1]) <= tol)
    k = min(5, c)
    tk, ok = np.argsort(-tvm, axis=1)[:, :k], np.argsort(-ref, axis=1)[:, :k]
    overlap = np.array([len(set(a) & set(b)) / k for a, b in zip(tk.tolist(), ok.tolist())])
    mismatched = [om.names[i] for i in np.flatnonzero(~agree & ~tie)]
    report: dict[str, Any] = {
        "n_images": n,
        "n_classes": c,
        "fmt": om.fmt,
        "layout": om.layout,
        "top1_match": int(agree.sum()),
        "top1_ties": int(tie.sum()),
        "top1_match_rate": float((agree | tie).mean()),
        "top1_mismatches": mismatched[:20],
        "mean_top5_overlap": float(overlap.mean()),
        "max_abs_diff": float(per_image[worst]),
        "worst_image": om.names[worst],
        "tolerance": tol,
        "within_tolerance": bool(per_image[worst] <= tol),
        "om_perf": om.perf(),
    }
    if labels is not None:
        mine = vision_metric_topk(tvm, om.names, labels)
        theirs = vision_metric_topk(ref, om.names, labels)
        report["accuracy"] = {
            "tvm": {"top1": mine.top(1), "top5": mine.top(5)},
            "om": {"top1": theirs.top(1), "top5": theirs.top(5)},
        }
        report["warnings"] = mine.warnings
    return report
