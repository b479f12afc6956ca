"""verify ARTIFACT --against pytorch|onnxruntime|ascend:DIR."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from alexnet_tvm.preprocess import load_labelled_folder
from alexnet_tvm.errors import VerifyError
from alexnet_tvm.fsutil import refuse_outputs
from alexnet_tvm.runtime.artifact import artifact_digest, load_artifact
from alexnet_tvm.runtime.verify import (
    Gates, VerifyReport, summary_lines, verify as compare_outputs, write_junit, write_report,
)

from .references import reference_runtime, source_model

log = logging.getLogger(__name__)


@dataclass
class VerifyConfig:
    artifact: Path
    against: str
    model: Path | None = None
    eval_set: Path | None = None
    random_count: int = 8
    seed: int = 0
    #: None: the defaults of the artifact's precision (Gates.for_precision) with ``gate_flags`` on top
    gates: Gates | None = None
    gate_flags: dict = field(default_factory=dict)
    report: Path | None = None
    junit: Path | None = None
    #: replace existing report files
    force: bool = False
    #: Ascend mode: the ModelZoo-preprocessed .bin folder and optional val_label.txt
    inputs: Path | None = None
    labels: Path | None = None
    #: run the artifact on this target's RPC board instead of here
    board: object | None = None


def run_verify(cfg: VerifyConfig) -> VerifyReport:
    """Load, compare, write the reports; the report names the artifact's digest and its image count."""
    if cfg.random_count < 0:
        raise VerifyError(f"--random {cfg.random_count}: give a count of 0 or more")
    from .ascend import verify_against_ascend, verify_results_dir

    ascend_dir = verify_results_dir(cfg.against, cfg.inputs)  # None: not an ascend: reference
    if not cfg.random_count and cfg.eval_set is None and ascend_dir is None:
        raise VerifyError("--random 0 without --eval-set compares nothing; give images to verify on")
    refuse_outputs([cfg.report, cfg.junit], cfg.force)
    art = load_artifact(cfg.artifact, board=cfg.board)
    if ascend_dir is not None:
        rep = verify_against_ascend(art, ascend_dir, cfg)
    else:
        src = source_model(cfg.model, art.manifest)
        labelled = None
        if cfg.eval_set is not None:
            m = art.meta
            labelled = load_labelled_folder(cfg.eval_set, m.class_names, m.resize_size, m.input_size, m.mean, m.std)
        with reference_runtime(cfg.against, src, art) as ref:
            gates = cfg.gates or Gates.for_precision(art.manifest.get("precision", "fp32"), **cfg.gate_flags)
            rep = compare_outputs(art.predict, ref, art.input_shape, gates, str(cfg.artifact), cfg.against,
                         random_count=cfg.random_count, seed=cfg.seed, labelled=labelled)
    rep.seal(artifact_digest(cfg.artifact))
    if cfg.report:
        write_report(rep, cfg.report)
    if cfg.junit:
        write_junit(rep, cfg.junit)
    return rep


def verify(target_name: str | None = None, targets_file: Path | None = None, **fields) -> tuple[str, bool]:
    """``verify``: run on ``target_name``'s RPC board when it is an rpc target (else here); the
    summary the command prints and whether every gate passed. ``fields``: :class:`VerifyConfig`'s."""
    from .boards import board_for_target

    rep = run_verify(VerifyConfig(board=board_for_target(target_name, targets_file), **fields))
    return "\n".join(summary_lines(rep)), rep.passed
