"""Compare an artifact's outputs with a reference runtime and gate on the result.

The reference is any callable ``numpy batch -> logits`` (PyTorch, ONNX Runtime,
recorded Ascend outputs), so this module stays free of torch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from alexnet_tvm.fsutil import write_json, write_text

log = logging.getLogger(__name__)

Reference = Callable[[np.ndarray], np.ndarray]


@dataclass
class Gates:
    """What a verify must meet. fp32/bf16/fp16 builds are held to the reference's logits; an int8
    build computes other logits by design, so its gate is accuracy (:data:`INT8_GATES`)."""

    min_top1_agreement: float = 0.999
    #: max abs error allowed, as a fraction of the reference logits' range (min 1)
    max_abs_error: float = 1e-3
    #: extra absolute slack, e.g. for references stored as rounded text
    abs_slack: float = 0.0
    #: labelled set: the most the artifact's accuracy may fall below the reference's (0.005 = 0.5 points)
    max_accuracy_drop: float | None = None

    @classmethod
    def for_precision(cls, precision: str, **flags: float | None) -> "Gates":
        """The default gates of an artifact's precision, with the user's flags (None: default) on top."""
        base = INT8_GATES if precision == "int8" else cls()
        return cls(**{**asdict(base), **{k: v for k, v in flags.items() if v is not None}})


#: int8 against any reference (fp32 PyTorch/ORT, or ORT's int8 run of the same QDQ model):
#: top-1 agreement >= 99 %, logits within 10 % of the reference's range (u8 logits are
#: quantized to 1/255 of their range, and every layer rounds), accuracy at most 0.5 points
#: below the reference's on a labelled set. docs/int8.md gives the measured margins.
INT8_GATES = Gates(min_top1_agreement=0.99, max_abs_error=0.1, max_accuracy_drop=0.005)


@dataclass
class Comparison:
    images: int
    max_abs_error: float
    max_rel_error: float
    top1_agreement: float
    abs_tolerance: float
    accuracy_tvm: float | None = None
    accuracy_reference: float | None = None


#: the failure a report with nothing compared carries: a PASS must rest on at least one image
NO_COMPARISON = "no image was compared (--random 0 and no eval set): nothing was verified"


@dataclass
class VerifyReport:
    """What was compared, against what, and for which artifact: ``pack`` accepts it as evidence
    only when ``artifact_digest`` is that artifact's and ``images`` is at least 1."""

    artifact: str
    against: str
    gates: Gates
    random: Comparison | None = None
    labelled: Comparison | None = None
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    #: ``sha256:`` of the artifact's manifest.json (which lists the library's and params' digests)
    artifact_digest: str = ""

    @property
    def images(self) -> int:
        """Inputs compared with the reference, all modes together."""
        return sum(c.images for c in (self.random, self.labelled) if c is not None)

    @property
    def passed(self) -> bool:
        return not self.failures and self.images > 0

    def seal(self, artifact_digest: str) -> "VerifyReport":
        """Name the artifact; a report that compared nothing fails (it would otherwise read PASS)."""
        self.artifact_digest = artifact_digest
        if self.images == 0 and NO_COMPARISON not in self.failures:
            self.failures.append(NO_COMPARISON)
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        d["images"] = self.images
        return d


def compare(got: np.ndarray, want: np.ndarray, gates: Gates, labels: np.ndarray | None = None) -> Comparison:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise ValueError(f"output shapes differ: {got.shape} vs {want.shape}")
    diff = np.abs(got - want)
    span = float(want.max() - want.min()) if want.size else 0.0
    tol = gates.max_abs_error * max(1.0, span) + gates.abs_slack
    rel = diff / np.maximum(np.abs(want), 1e-6 * max(1.0, span))
    c = Comparison(
        images=len(got),
        max_abs_error=float(diff.max()) if diff.size else 0.0,
        max_rel_error=float(rel.max()) if rel.size else 0.0,
        top1_agreement=_top1_agreement(got, want, tol),
        abs_tolerance=tol,
    )
    if labels is not None:
        c.accuracy_tvm = float(np.mean(got.argmax(1) == labels))
        c.accuracy_reference = float(np.mean(want.argmax(1) == labels))
    return c


def _top1_agreement(got: np.ndarray, want: np.ndarray, tol: float) -> float:
    """Top-1 match, where a near-tie in the reference (within tol) accepts either class."""
    if not len(got):
        return 1.0
    g = got.argmax(1)
    w = want.argmax(1)
    rows = np.arange(len(got))
    tie_ok = want[rows, g] >= want[rows, w] - tol
    return float(np.mean((g == w) | tie_ok))


def gate(c: Comparison, gates: Gates, what: str) -> list[str]:
    fails = []
    if c.top1_agreement < gates.min_top1_agreement:
        fails.append(f"{what}: top-1 agreement {c.top1_agreement:.4f} < {gates.min_top1_agreement}")
    if c.max_abs_error > c.abs_tolerance:
        fails.append(f"{what}: max abs error {c.max_abs_error:.3g} > {c.abs_tolerance:.3g}")
    drop = accuracy_drop(c)
    if gates.max_accuracy_drop is not None and drop is not None and drop > gates.max_accuracy_drop + 1e-12:
        fails.append(f"{what}: accuracy {c.accuracy_tvm:.4f} is {100 * drop:.2f} points below the reference's "
                     f"{c.accuracy_reference:.4f} (allowed {100 * gates.max_accuracy_drop:.2f})")
    return fails


def accuracy_drop(c: Comparison) -> float | None:
    if c.accuracy_tvm is None or c.accuracy_reference is None:
        return None
    return c.accuracy_reference - c.accuracy_tvm


def random_inputs(shape: tuple[int, ...], count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, *shape[1:]), dtype=np.float32)


def verify(artifact_run: Reference, reference: Reference, input_shape: tuple[int, ...], gates: Gates,
           artifact_name: str, against: str, random_count: int = 8, seed: int = 0,
           labelled: tuple[np.ndarray, np.ndarray] | None = None) -> VerifyReport:
    t0 = time.perf_counter()
    rep = VerifyReport(artifact=artifact_name, against=against, gates=gates)
    if random_count:
        x = random_inputs(input_shape, random_count, seed)
        rep.random = compare(artifact_run(x), reference(x), gates)
        rep.failures += gate(rep.random, gates, "random inputs")
    if labelled is not None:
        x, y = labelled
        rep.labelled = compare(artifact_run(x), reference(x), gates, labels=y)
        rep.failures += gate(rep.labelled, gates, "labelled set")
    rep.seconds = time.perf_counter() - t0
    return rep


def summary_lines(rep: VerifyReport) -> list[str]:
    lines = [f"verify {rep.artifact} against {rep.against}"]
    for name, c in (("random", rep.random), ("labelled", rep.labelled)):
        if c is None:
            continue
        s = (f"  {name:8s} {c.images:5d} images  max abs err {c.max_abs_error:.3g} (tol {c.abs_tolerance:.3g})  "
             f"max rel err {c.max_rel_error:.3g}  top-1 agreement {c.top1_agreement:.4f}")
        if c.accuracy_tvm is not None:
            s += f"  accuracy tvm {c.accuracy_tvm:.4f} ref {c.accuracy_reference:.4f}"
        lines.append(s)
    lines += [f"  FAIL {f}" for f in rep.failures]
    lines.append("  PASS" if rep.passed else "  FAILED")
    return lines


def write_report(rep: VerifyReport, path: Path) -> None:
    write_json(Path(path), rep.to_dict())


def write_junit(rep: VerifyReport, path: Path) -> None:
    """One test case per gate, so any CI shows which gate failed."""
    cases = []
    for name, c in (("random", rep.random), ("labelled", rep.labelled)):
        if c is None:
            continue
        for gate_name, ok, msg in (
            ("top1_agreement", c.top1_agreement >= rep.gates.min_top1_agreement,
             f"top-1 agreement {c.top1_agreement:.4f} < {rep.gates.min_top1_agreement}"),
            ("max_abs_error", c.max_abs_error <= c.abs_tolerance,
             f"max abs error {c.max_abs_error:.3g} > {c.abs_tolerance:.3g}"),
        ):
            body = "" if ok else f"<failure message={quoteattr(msg)}>{escape(msg)}</failure>"
            cases.append(f'  <testcase classname={quoteattr("verify." + rep.against)} '
                         f'name={quoteattr(name + "." + gate_name)} time="0">{body}</testcase>')
    failures = sum("<failure" in c for c in cases)
    xml = ('<?xml version="1.0" encoding="utf-8"?>\n'
           f'<testsuite name={quoteattr("alexnet-tvm verify " + rep.artifact)} tests="{len(cases)}" '
           f'failures="{failures}" errors="0" time="{rep.seconds:.3f}">\n' + "\n".join(cases) + "\n</testsuite>\n")
    write_text(Path(path), xml)
