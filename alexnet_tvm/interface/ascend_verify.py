"""verify ARTIFACT --against ascend:RESULTS_DIR --inputs PRE_DATASET [--labels val_label.txt].

The TVM library runs on the very .bin files the OM model ran on; the OM's recorded
outputs are the reference. The gates are the other modes' gates, with TXT's
6-decimal rounding added to the absolute tolerance.
"""

from __future__ import annotations

import dataclasses

from pathlib import Path

from alexnet_tvm.errors import VerifyError
from alexnet_tvm.runtime import ascend
from alexnet_tvm.runtime.artifact import Artifact
from alexnet_tvm.runtime.verify import Gates, VerifyReport, compare, gate


def verify_against_ascend(art: Artifact, results_dir: Path, cfg) -> VerifyReport:
    import time

    t0 = time.perf_counter()  # run_verify has refused a missing --inputs before loading the artifact
    names, x = ascend.load_bin_inputs(cfg.inputs, art.input_shape[1:])
    om = ascend.load_results(results_dir, art.meta.num_classes, input_names=names).align(names)
    labels = ascend.read_labels(cfg.labels).labels if cfg.labels else None
    tvm_logits = art.predict(x)
    g = cfg.gates or Gates.for_precision(art.manifest.get("precision", "fp32"), **cfg.gate_flags)
    gates = dataclasses.replace(g, abs_slack=g.abs_slack + ascend.om_tolerance(om, atol=0.0))
    label_arr = None
    if labels is not None:
        import numpy as np

        missing = [n for n in names if n not in labels]
        if missing:
            raise VerifyError(f"{cfg.labels}: no label for {missing[0]} (and {len(missing) - 1} more)")
        label_arr = np.asarray([labels[n] for n in names])
    rep = VerifyReport(artifact=str(cfg.artifact), against=f"ascend:{results_dir}", gates=gates)
    rep.labelled = compare(tvm_logits, om.logits, gates, labels=label_arr)
    rep.failures += gate(rep.labelled, gates, "ascend outputs")
    detail = ascend.compare_to_om(tvm_logits, om, labels, names=names)
    rep.extra = {"ascend": {k: detail[k] for k in ("fmt", "layout", "top1_match_rate", "mean_top5_overlap",
                                                   "top1_mismatches", "accuracy", "om_perf") if k in detail},
                 "warnings": list(om.warnings)}
    rep.seconds = time.perf_counter() - t0
    return rep
