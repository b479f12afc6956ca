"""verify ARTIFACT --against pytorch|onnxruntime|ascend:DIR."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path


from alexnet_tvm.errors import VerifyError
from alexnet_tvm.runtime.artifact import load_artifact
from alexnet_tvm.runtime.preprocess import load_labelled_folder
from alexnet_tvm.runtime.verify import Gates, VerifyReport, verify, write_junit, write_report

log = logging.getLogger(__name__)

AGAINST = ("pytorch", "onnxruntime")


@dataclass
class VerifyConfig:
    artifact: Path
    against: str
    model: Path | None = None
    eval_set: Path | None = None
    random_count: int = 8
    seed: int = 0
    gates: Gates = field(default_factory=Gates)
    report: Path | None = None
    junit: Path | None = None
    #: Ascend mode: the ModelZoo-preprocessed .bin folder and optional val_label.txt
    inputs: Path | None = None
    labels: Path | None = None
    #: run the artifact on this target's RPC board instead of here
    board: object | None = None


def _source_model(cfg: VerifyConfig, manifest: dict) -> Path:
    path = cfg.model or Path(manifest["model"]["file"])
    if not path.is_file():
        raise VerifyError(f"{path}: the source model is not here; pass --model PATH")
    return path


def run_verify(cfg: VerifyConfig) -> VerifyReport:
    art = load_artifact(cfg.artifact, board=cfg.board)
    if cfg.against.startswith("ascend:"):
        from .ascend_verify import verify_against_ascend

        rep = verify_against_ascend(art, Path(cfg.against.split(":", 1)[1]), cfg)
    else:
        if cfg.against not in AGAINST:
            raise VerifyError(f"unknown reference {cfg.against!r} (pytorch, onnxruntime or ascend:RESULTS_DIR)")
        src = _source_model(cfg, art.manifest)
        if cfg.against == "pytorch":
            from alexnet_tvm.model.reference import torch_reference

            ref = torch_reference(src)
        else:
            from alexnet_tvm.runtime.references import OnnxRuntimeReference

            if src.suffix == ".onnx":
                onnx_path = src
            else:
                from alexnet_tvm.model.reference import onnx_file_for

                onnx_path = onnx_file_for(src, art.batch)
            ref = OnnxRuntimeReference(onnx_path)
        labelled = None
        if cfg.eval_set is not None:
            m = art.meta
            labelled = load_labelled_folder(cfg.eval_set, m.class_names, m.resize_size, m.input_size, m.mean, m.std)
        rep = verify(art.predict, ref, art.input_shape, cfg.gates, str(cfg.artifact), cfg.against,
                     random_count=cfg.random_count, seed=cfg.seed, labelled=labelled)
    if cfg.report:
        write_report(rep, cfg.report)
    if cfg.junit:
        write_junit(rep, cfg.junit)
    return rep
