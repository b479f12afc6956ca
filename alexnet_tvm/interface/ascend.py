"""The Ascend ModelZoo OM path as jobs: one function per ``alexnet-tvm ascend`` command (each
returns the lines it prints), and ``verify ARTIFACT --against ascend:RESULTS_DIR``.

Ascend has three homes: the ONNX export (``model/ascend_export.py``, torch), everything on
files and results (``runtime/ascend/``, numpy only) and this module with ``cli/ascend_cmds.py``.
The ModelZoo's names and opset live in ``runtime/ascend/modelzoo.py``; the export, which may
not import the runtime, gets them from :func:`modelzoo_contract`.

verify: the TVM library runs on the very .bin files the OM model ran on; the OM's recorded
outputs are the reference. The gates are the other modes' gates, with TXT's 6-decimal
rounding added to the absolute tolerance.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from alexnet_tvm.errors import AscendError, VerifyError
from alexnet_tvm.runtime import ascend
from alexnet_tvm.runtime.verify import Gates, VerifyReport, compare, gate

if TYPE_CHECKING:
    from alexnet_tvm.model.ascend_export import AscendExport, OnnxContract
    from alexnet_tvm.runtime.artifact import Artifact


#: ``verify --against ascend:RESULTS_DIR``: the OM's recorded outputs are the reference
AGAINST_PREFIX = "ascend:"


def verify_results_dir(against: str, inputs: Path | None) -> Path | None:
    """The results folder of ``verify --against ascend:DIR`` (None for another reference), refused
    without ``--inputs``: checked before the artifact is loaded."""
    if not against.startswith(AGAINST_PREFIX):
        return None
    if inputs is None:
        raise VerifyError("--against ascend: needs --inputs PRE_DATASET (the .bin folder the OM model ran on)")
    return Path(against[len(AGAINST_PREFIX):])


def modelzoo_contract() -> OnnxContract:
    """The ModelZoo's ONNX names, batch axis and opset, as the export checks them."""
    from alexnet_tvm.model.ascend_export import OnnxContract

    return OnnxContract(ascend.INPUT_NAME, ascend.OUTPUT_NAME, ascend.BATCH_AXIS_NAME, ascend.OPSET)


def export_onnx(checkpoint: Path, out: Path, force: bool = False) -> AscendExport:
    """ONNX exactly as the ModelZoo's pth2onnx writes it, checked against eager PyTorch."""
    from alexnet_tvm.meta import refuse_sidecar
    from alexnet_tvm.model.ascend_export import export_ascend_onnx

    refuse_sidecar(out, force)
    return export_ascend_onnx(checkpoint, out, modelzoo_contract(), force=force)


def export(checkpoint: Path, out: Path, force: bool = False) -> str:
    """``ascend export``: :func:`export_onnx`, and the line saying what was written."""
    res = export_onnx(checkpoint, out, force)
    return (f"wrote {res.out} ({res.arch}, {res.num_classes} classes, {res.input_size}px; "
            f"max abs error vs eager {res.max_abs_error:.2e})")


def atc_cmd(batches: Sequence[int], soc: str, model: str, output_prefix: str, input_size: int | None,
            out: Path, force: bool = False) -> tuple[list[str], str]:
    """``ascend atc-cmd``: write the atc script; its atc lines (for stdout, to paste on the board)
    and the line saying where the script went (``input_size`` default: the ONNX sidecar's when the
    file is here, else the ModelZoo's)."""
    if input_size is None:
        from alexnet_tvm.meta import read_sidecar, sidecar_path

        input_size = read_sidecar(Path(model)).input_size if sidecar_path(Path(model)).is_file() else \
            ascend.INPUT_SIZE
    if input_size < 1:
        raise AscendError("--input-size must be positive")
    text = ascend.atc_script(ascend.check_batches(batches), ascend.check_soc(soc), model, output_prefix, input_size)
    ascend.write_atc_script(out, text, force=force)
    return [line for line in text.splitlines() if line.startswith("atc ")], f"wrote {out}"


def preprocess(images_dir: Path, out_dir: Path, resize_size: int, input_size: int, force: bool = False) -> str:
    """``ascend preprocess``: one raw float32 CHW .bin per image."""
    rep = ascend.preprocess_folder(images_dir, out_dir, resize_size=resize_size, input_size=input_size, force=force)
    return f"wrote {len(rep.names)} inputs to {rep.out_dir}"


def labels(image_folder: Path, out: Path, force: bool = False) -> str:
    """``ascend labels``: a vision_metric label file for an ImageFolder set."""
    n, classes = ascend.write_label_file(image_folder, out, force=force)
    return f"wrote {n} labels over {len(classes)} classes to {out}"


def _input_names(inputs: Path | None) -> list[str] | None:
    if inputs is None:
        return None
    names, _, _ = ascend.list_bin_inputs(inputs)
    return names


def read(results_dir: Path, classes: int | None, inputs: Path | None, as_json: bool) -> list[str]:
    """``ascend read``: an ais_bench results folder, as a JSON report or as lines."""
    res = ascend.load_results(results_dir, classes, input_names=_input_names(inputs))
    if as_json:
        return [json.dumps({"results_dir": str(res.results_dir), "fmt": res.fmt, "layout": res.layout,
                            "n_images": len(res.names), "n_classes": res.num_classes,
                            "summary": str(res.summary_path) if res.summary_path else None,
                            "perf": res.perf(), "warnings": res.warnings}, indent=2)]
    lines = [f"{res.results_dir}: {len(res.names)} results x {res.num_classes} classes "
             f"({res.fmt.upper()}, {res.layout} layout)"]
    if res.summary_path:
        lines.append(f"summary: {res.summary_path}")
    return lines + perf_lines(res.perf())


def metric(results_dir: Path, label_file: Path, out: Path | None, classes: int | None, inputs: Path | None,
           force: bool = False) -> tuple[list[str], str | None]:
    """``ascend metric``: Top-1..Top-5 lines, as vision_metric computes them, and with ``out`` (its
    result.json written there) the line saying so (else None)."""
    if out is not None:
        from alexnet_tvm.fsutil import refuse_existing

        refuse_existing(out, force)
    _, _, top = ascend.evaluate_results(results_dir, label_file, classes, input_names=_input_names(inputs))
    if out is not None:
        ascend.write_result_json(out, top, force=force)
    return [f"{row['key']}: {row['value']}" for row in top.table()["value"]], f"wrote {out}" if out else None


def _stat_line(label: str, stat: dict | None) -> str | None:
    if not stat or "mean" not in stat:
        return None
    parts = [f"mean {stat['mean']:.3f}"]
    if "median" in stat:
        parts.append(f"median {stat['median']:.3f}")
    if "percentile(99%)" in stat:
        parts.append(f"p99 {stat['percentile(99%)']:.3f}")
    return f"{label} (ms): " + ", ".join(parts)


def perf_lines(perf: dict | None) -> list[str]:
    """The ais_bench summary's throughput and latencies, one line each."""
    if not perf:
        return ["summary: none (no ais_bench summary json found)"]
    if "devices" in perf:
        tp = perf.get("throughput")
        lines = [f"throughput: {tp:.2f} fps over {len(perf['devices'])} devices" if tp is not None
                 else "throughput: not reported"]
        return lines + [f"  {d}: {p['throughput']:.2f} fps" for d, p in perf["devices"].items()
                        if p and p.get("throughput") is not None]
    tp, bs = perf.get("throughput"), perf.get("batchsize")
    lines = []
    if tp is not None:
        lines.append(f"throughput: {tp:.2f} fps" + (f" (batch {bs:g})" if bs is not None else ""))
    for label, key in (("NPU compute time", "npu_compute_time_ms"), ("H2D latency", "h2d_latency_ms"),
                       ("D2H latency", "d2h_latency_ms")):
        line = _stat_line(label, perf.get(key))
        if line:
            lines.append(line)
    return lines


def verify_against_ascend(art: Artifact, results_dir: Path, cfg) -> VerifyReport:
    import time

    t0 = time.perf_counter()  # verify_results_dir has refused a missing --inputs before the artifact was loaded
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
    rep = VerifyReport(artifact=str(cfg.artifact), against=f"{AGAINST_PREFIX}{results_dir}", gates=gates)
    rep.labelled = compare(tvm_logits, om.logits, gates, labels=label_arr)
    rep.failures += gate(rep.labelled, gates, "ascend outputs")
    detail = ascend.compare_to_om(tvm_logits, om, labels, names=names)
    rep.extra = {"ascend": {k: detail[k] for k in ("fmt", "layout", "top1_match_rate", "mean_top5_overlap",
                                                   "top1_mismatches", "accuracy", "om_perf") if k in detail},
                 "warnings": list(om.warnings)}
    rep.seconds = time.perf_counter() - t0
    return rep
