"""evaluate ARTIFACT DATA: Top-1/Top-5 of a built library on a labelled set, the CI accuracy gate.

Accuracy is what AlexNet's users quote (torchvision's: 56.5 / 79.1 on ImageNet val), so
this reports it the same way, from the same layouts (runtime/evalset.py), preprocessed
by the model's own meta (resize, centre crop, mean/std, as ``predict``). With
``--against`` the reference runtime scores the same preprocessed batches, and the top-1
agreement between the two is reported as well. ``--min-top1/--min-top5`` (percent) make
it a gate: the CLI exits 1 below the bar.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from alexnet_tvm.errors import VerifyError
from alexnet_tvm.fsutil import refuse_outputs, write_json, write_text
from alexnet_tvm.preprocess import eval_transform, load_image
from alexnet_tvm.runtime.artifact import Artifact, artifact_digest, load_artifact
from alexnet_tvm.runtime.evalset import EvalSet, open_eval_set
from alexnet_tvm.runtime.metrics import topk_accuracy

from .references import reference_runtime, source_model

log = logging.getLogger(__name__)


@dataclass
class EvaluateConfig:
    artifact: Path
    data: Path
    against: str | None = None
    model: Path | None = None
    report: Path | None = None
    markdown: Path | None = None
    #: replace existing report files
    force: bool = False
    #: percent; below it the gate fails
    min_top1: float | None = None
    min_top5: float | None = None
    progress: bool | None = None  # None: a bar on a terminal only


@dataclass
class Scores:
    """Top-1/Top-5 in percent, as AlexNet's figures are quoted."""

    top1: float
    top5: float


@dataclass
class EvaluateReport:
    artifact: str
    #: the artifact's digest, as verify reports name it (runtime.artifact.artifact_digest)
    artifact_digest: str
    data: str
    layout: str
    images: int
    classes: int
    library: Scores
    reference: dict[str, Scores] = field(default_factory=dict)
    #: fraction of images whose top-1 class is the same in the library and the reference
    top1_agreement: float | None = None
    #: images on which exactly one of the two is right at top-1
    top1_disagreeing_hits: int | None = None
    gates: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _scores(logits: np.ndarray, labels: np.ndarray) -> Scores:
    names = [str(i) for i in range(len(labels))]
    res = topk_accuracy(logits, names, dict(zip(names, (int(v) for v in labels))), topn=5,
                        label_source="the evaluation set")
    return Scores(top1=round(res.top(1) * 100, 4), top5=round(res.top(5) * 100, 4))


def _batches(art: Artifact, data: EvalSet, show: bool):
    """Preprocessed batches of the artifact's own batch size (the last one may be short)."""
    from tqdm import tqdm

    m = art.meta
    step = art.batch
    with tqdm(total=len(data), unit="img", disable=not show, desc="evaluate") as bar:
        for i in range(0, len(data), step):
            chunk = data.images[i:i + step]
            yield np.stack([eval_transform(load_image(p), m.resize_size, m.input_size, m.mean, m.std)
                            for p in chunk])
            bar.update(len(chunk))


def _run(art: Artifact, data: EvalSet, ref, show: bool) -> tuple[np.ndarray, np.ndarray | None]:
    ours, theirs = [], []
    for x in _batches(art, data, show):
        ours.append(art.predict(x))
        if ref is not None:
            theirs.append(np.asarray(ref(x), dtype=np.float32))
    return np.concatenate(ours), (np.concatenate(theirs) if ref is not None else None)


def _gate(rep: EvaluateReport, cfg: EvaluateConfig) -> None:
    for name, bar, got in (("top1", cfg.min_top1, rep.library.top1), ("top5", cfg.min_top5, rep.library.top5)):
        if bar is None:
            continue
        rep.gates[f"min_{name}"] = bar
        if got < bar:
            rep.failures.append(f"{name} {got:.2f}% is below the bar of {bar:.2f}%")


def run_evaluate(cfg: EvaluateConfig) -> EvaluateReport:
    t0 = time.perf_counter()
    for bar in (cfg.min_top1, cfg.min_top5):
        if bar is not None and not 0 <= bar <= 100:
            raise VerifyError(f"--min-top1/--min-top5 take a percentage from 0 to 100, got {bar}")
    refuse_outputs([cfg.report, cfg.markdown], cfg.force)
    art = load_artifact(cfg.artifact)
    data = open_eval_set(cfg.data, art.meta.class_names)
    show = sys.stderr.isatty() if cfg.progress is None else cfg.progress
    if cfg.against:
        src = source_model(cfg.model, art.manifest)
        with reference_runtime(cfg.against, src, art) as ref:
            ours, theirs = _run(art, data, ref, show)
    else:
        ours, theirs = _run(art, data, None, show)
    rep = EvaluateReport(artifact=str(cfg.artifact), artifact_digest=artifact_digest(cfg.artifact),
                         data=str(cfg.data), layout=data.source, images=len(data), classes=art.meta.num_classes,
                         library=_scores(ours, data.labels), warnings=list(data.warnings))
    if theirs is not None:
        rep.reference[cfg.against] = _scores(theirs, data.labels)
        a, b = ours.argmax(1), theirs.argmax(1)
        rep.top1_agreement = float(np.mean(a == b))
        rep.top1_disagreeing_hits = int(np.sum((a == data.labels) != (b == data.labels)))
    _gate(rep, cfg)
    rep.seconds = round(time.perf_counter() - t0, 2)
    _write(rep, cfg)
    return rep


def markdown(rep: EvaluateReport) -> str:
    rows = [("TVM library", rep.library)] + [(name, s) for name, s in rep.reference.items()]
    lines = [f"### evaluate: {rep.artifact}", "",
             f"{rep.images} images, {rep.classes} classes, from {rep.data} ({rep.layout})", "",
             "| runtime | Top-1 % | Top-5 % |", "|---|---:|---:|"]
    lines += [f"| {name} | {s.top1:.2f} | {s.top5:.2f} |" for name, s in rows]
    if rep.top1_agreement is not None:
        lines += ["", f"Top-1 agreement with the reference: {rep.top1_agreement * 100:.2f} % "
                      f"({rep.top1_disagreeing_hits} image(s) right in one runtime only)"]
    lines += ["", "**PASS**" if rep.passed else "**FAIL**: " + "; ".join(rep.failures)]
    return "\n".join(lines) + "\n"


def _write(rep: EvaluateReport, cfg: EvaluateConfig) -> None:
    if cfg.report:
        write_json(cfg.report, rep.to_dict())
    if cfg.markdown:
        write_text(cfg.markdown, markdown(rep))


def evaluate(cfg: EvaluateConfig) -> tuple[str, bool]:
    """``evaluate``: the markdown summary the command prints, and whether the --min-top gates passed."""
    rep = run_evaluate(cfg)
    return markdown(rep), rep.passed
