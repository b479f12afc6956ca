"""Build one deployable artifact folder: library, (prepacked) parameters, manifest."""

from __future__ import annotations

import datetime as _dt
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from alexnet_tvm.errors import ToolkitError
from alexnet_tvm.fsutil import atomic_dir, refuse_existing, sha256_file, write_json
from alexnet_tvm.records import database_digest
from alexnet_tvm.recordsets import RecordChoice, database_folder, record_choice

from alexnet_tvm.artifact_format import FORMAT_VERSION, INT8_REFERENCE, LIB, MANIFEST, PARAMS
from alexnet_tvm.schemas import plain_name
from alexnet_tvm.targets import TargetSpec

from alexnet_tvm.model.describe import ModelOverrides

from .frontend.load import Calibration, load_prepared, ship_qdq
from .frontend.pipeline import apply_records, compile_module, is_gpu
from .frontend.precision import check_precision
from .tuning.database import open_database
from .tuning.plan import has_record, tuning_tasks

log = logging.getLogger(__name__)



@dataclass
class BuildConfig:
    model: Path
    target: TargetSpec
    out: Path
    logs_dir: Path
    batch: int = 1
    force: bool = False
    #: "fp32", "bf16" (FC weights stored as bf16, see precision.py), "fp16" (CUDA, fp16.py) or "int8"
    precision: str = "fp32"
    #: the user's --input-size/--classes/--class-names/--mean/--std (model/describe.py)
    overrides: ModelOverrides | None = None
    #: int8: --calibrate DATA / --calib-images N (frontend.py)
    calibration: Calibration | None = None


@dataclass
class BuildResult:
    out: Path
    tasks: int
    tuned: int
    untuned: list[str]
    seconds: float
    #: the record set the build took (see alexnet_tvm.recordsets)
    records: RecordChoice | None = None
    #: the CPU cores the library is compiled for and runs on at most (num-cores); None for a GPU
    cores: int | None = None


def _export_library(ex, path: Path, spec: TargetSpec) -> None:
    if spec.runner == "rpc" and spec.rpc and spec.rpc.cross_compiler:
        from tvm.support import cc

        ex.export_library(str(path), fcompile=cc.cross_compiler(spec.rpc.cross_compiler))
    else:
        ex.export_library(str(path))


def _prepack(ex, mod, params: list, spec: TargetSpec, target) -> tuple[list, bool]:
    """Run the lifted weight repacking once, here, so the board only runs `main`."""
    import tvm
    from tvm import relax

    if not any(gv.name_hint == "main_transform_params" for gv in mod.functions):
        return params, False
    if not spec.is_cpu or spec.runner == "rpc" or "mtriple" in str(target):
        # The library cannot run here: compile the repacking alone for this host.
        host_mod = tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv.name_hint != "main"})
        host_mod = relax.transform.DeadCodeElimination(["main_transform_params"])(host_mod)
        host = tvm.target.Target({"kind": "llvm"})
        ex = compile_module(host_mod, host)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    packed = vm["main_transform_params"](params)
    return [packed[i] for i in range(len(packed))], True


def build(cfg: BuildConfig) -> BuildResult:
    check_precision(cfg.precision)
    refuse_existing(cfg.out, cfg.force)
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-build-") as work:
        return _build(cfg, Path(work))


def _build(cfg: BuildConfig, work: Path) -> BuildResult:
    from tvm.runtime import save_param_dict

    t0 = time.perf_counter()
    spec = cfg.target
    target = spec.tvm_target()
    # this host's own record set, else the nearest CPU's (one warning line), else none
    records = record_choice(cfg.logs_dir, spec)
    imported, prepared = load_prepared(cfg.model, cfg.batch, cfg.overrides, cfg.precision, cfg.calibration, spec,
                                       target, work)
    tasks = tuning_tasks(prepared, target)
    db_folder = database_folder(records.folder, imported.precision)
    database = open_database(db_folder, for_tuning=False)
    untuned = [t.task_name for t in tasks if not has_record(database, t, target)]
    if untuned:
        fallback = "DLight default GPU schedules" if is_gpu(target) else "untuned loops (slow)"
        log.warning("%d of %d tasks have no tuning records for %s and get %s: %s",
                    len(untuned), len(tasks), spec.name, fallback, ", ".join(untuned))
    mod = apply_records(prepared, target, database)
    try:
        ex = compile_module(mod, target)
    except Exception as e:
        raise ToolkitError(f"compilation for {spec.name} failed: {type(e).__name__}: "
                           f"{str(e).strip().splitlines()[-1][:300]}") from None
    params, prepacked = _prepack(ex, mod, imported.params, spec, target)
    with atomic_dir(cfg.out, force=cfg.force) as tmp:
        _export_library(ex, tmp / LIB, spec)
        (tmp / PARAMS).write_bytes(save_param_dict({f"p{i}": p for i, p in enumerate(params)}))
        tuning = {"database": str(db_folder), "digest": database_digest(db_folder), **records.manifest(),
                  "tasks": len(tasks), "tuned": len(tasks) - len(untuned), "untuned": untuned}
        manifest = _manifest(cfg, imported, str(target), tuning, prepacked, len(params))
        manifest["build_seconds"] = round(time.perf_counter() - t0, 2)
        shipped = [LIB, PARAMS] + ([INT8_REFERENCE] if ship_qdq(imported, tmp / INT8_REFERENCE) else [])
        manifest["files"] = {name: sha256_file(tmp / name) for name in shipped}
        write_json(tmp / MANIFEST, manifest)
    return BuildResult(cfg.out, len(tasks), len(tasks) - len(untuned), untuned, time.perf_counter() - t0, records,
                       spec.cores)


def _manifest(cfg: BuildConfig, imported, tvm_target: str, tuning: dict, prepacked: bool, num_params: int) -> dict:
    """manifest.json without the build time and file checksums (which the caller adds last)."""
    import tvm

    spec = cfg.target
    return {
        "format_version": FORMAT_VERSION,
        "model": {"name": plain_name(imported.source.stem.split(".")[0]), "file": str(imported.source),
                  "format": imported.source_format, "sha256": imported.source_sha256},
        "input": {"name": imported.input_name, "shape": list(imported.input_shape), "dtype": "float32"},
        "output": {"shape": [cfg.batch, imported.meta.num_classes], "dtype": "float32"},
        "meta": imported.meta.to_dict(),
        "target": {"name": spec.name, "target": spec.target, "host": spec.host,
                   "host_features": spec.host_features, "kind": spec.kind, "runner": spec.runner,
                   "conv_layout": spec.conv_layout, "winograd_tile": spec.winograd_tile,
                   "tvm_target": tvm_target},
        "tvm_version": tvm.__version__,
        "tuning": tuning,
        "precision": imported.precision if imported.precision == "int8" else cfg.precision,
        **({"quantization": imported.quantization} if imported.quantization else {}),
        "prepacked_params": prepacked,
        "num_params": num_params,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
