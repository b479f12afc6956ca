"""Every model format into one Relax IRModule with detached parameters.

Formats: ONNX, a TorchScript archive (via the TorchScript ONNX exporter), a
``torch.export`` program (.pt2) and a state_dict (ours with its sidecar, or a bare one).
None needs a sidecar: model/describe.py reads the input size and classes from the file.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alexnet_tvm.errors import ModelFormatError
from alexnet_tvm.fsutil import sha256_file
from alexnet_tvm.meta import ModelMeta
from alexnet_tvm.model.describe import (PROBE_SIZES, ModelOverrides, describe_module, describe_onnx,
                                        describe_program, onnx_io, sidecar_or)
from alexnet_tvm.model.formats import detect_format, program_batch

from .canonical import canonical_param_order

log = logging.getLogger(__name__)


@dataclass
class ImportedModel:
    mod: object  # tvm.IRModule: main(input, *params), attr num_input=1
    params: list  # list[tvm.runtime.Tensor], in main's parameter order
    input_name: str
    input_shape: tuple[int, int, int, int]
    meta: ModelMeta
    source: Path
    source_format: str
    source_sha256: str
    #: "int8" for a model lowered from QDQ ONNX (frontend.py); fp32/bf16 is the build's choice
    precision: str = "fp32"
    #: int8: where the scales came from (calibration set, digest, size, method)
    quantization: dict | None = None
    #: int8: the QDQ ONNX model, which the artifact ships as ORT's int8 reference
    qdq_onnx: Path | None = None


def _from_onnx_model(model, path: Path, batch: int, meta: ModelMeta | None, o: ModelOverrides):
    from tvm.relax.frontend import detach_params
    from tvm.relax.frontend.onnx import from_onnx

    from .onnx_canonical import canonical_fc

    name, dims, _ = onnx_io(model, path)
    if len(dims) != 4:
        raise ModelFormatError(f"{path}: input {name!r} has rank {len(dims)}; an image model needs N,C,H,W (rank 4)")
    if dims[1] not in (None, 3):
        raise ModelFormatError(f"{path}: input {name!r} has {dims[1]} channels; expected 3")
    meta = meta or sidecar_or(path, lambda: describe_onnx(model, path), o)
    shape = (batch, 3, meta.input_size, meta.input_size)
    canonical_fc(model)
    try:
        try:
            mod = from_onnx(model, shape_dict={name: list(shape)}, keep_params_in_input=True)
        except Exception as first:
            log.info("ONNX importer rejected the graph (%s); simplifying and retrying", first)
            mod = from_onnx(_simplify(model, name, shape), shape_dict={name: list(shape)}, keep_params_in_input=True)
    except ModelFormatError:
        raise
    except Exception as e:
        fixed = f" (its batch is fixed at {dims[0]}; export with a dynamic batch)" if dims[0] not in (None, batch) else ""
        raise ModelFormatError(f"{path}: TVM cannot import it at batch {batch}{fixed}: "
                               f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:200]}") from None
    mod, params = detach_params(mod)
    return mod, params.get("main", []), name, shape, meta


def _simplify(model, name: str, shape: tuple):
    """Fold constants and shape arithmetic that TVM's ONNX importer cannot take."""
    import onnxsim

    simplified, ok = onnxsim.simplify(model, overwrite_input_shapes={name: list(shape)})
    if not ok:
        raise ModelFormatError("the ONNX graph could not be simplified for import")
    return simplified


def load_onnx(path: Path):
    """The ONNX model at ``path``, or one typed error for a file onnx cannot read."""
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as e:
        raise ModelFormatError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None


def _onnx(path: Path, batch: int, o: ModelOverrides):
    return _from_onnx_model(load_onnx(path), path, batch, None, o)


def _torchscript(path: Path, batch: int, o: ModelOverrides):
    import onnx
    import torch

    try:
        scripted = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:
        raise ModelFormatError(f"{path}: not a loadable TorchScript archive ({type(e).__name__})") from None
    sizes = (o.input_size,) if o.input_size else PROBE_SIZES
    meta = sidecar_or(path, lambda: describe_module(scripted, path, sizes), o)
    x = torch.zeros(batch, 3, meta.input_size, meta.input_size)
    with tempfile.TemporaryDirectory() as d:
        onnx_path = Path(d) / "model.onnx"
        try:
            torch.onnx.export(scripted, (x,), str(onnx_path), input_names=["input"], output_names=["logits"],
                              opset_version=17, dynamo=False)
        except Exception as e:
            # The ONNX exporter loses shapes on some graphs (LRN before an adaptive pool);
            # convert the TorchScript graph to a torch.export program instead.
            log.info("TorchScript ONNX export failed (%s); converting via TS2EPConverter", str(e).splitlines()[0])
            from torch._export.converter import TS2EPConverter

            try:
                ep = TS2EPConverter(scripted, (x,)).convert()
            except Exception as e2:
                raise ModelFormatError(f"{path}: neither ONNX export nor torch.export conversion works "
                                       f"({type(e2).__name__})") from None
            return _from_program(ep, path, batch, meta)
        model = onnx.load(str(onnx_path))
    return _from_onnx_model(model, path, batch, meta, o)


def _from_program(ep, path: Path, batch: int, meta: ModelMeta):
    from tvm.relax.frontend import detach_params
    from tvm.relax.frontend.torch import from_exported_program

    try:
        mod = from_exported_program(ep, keep_params_as_input=True, unwrap_unit_return_tuple=True)
    except Exception as e:
        raise ModelFormatError(f"{path}: TVM cannot import this program ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200]})") from None
    mod, params = detach_params(mod)
    shape = (batch, 3, meta.input_size, meta.input_size)
    mod = _static_input(mod, shape)
    name = str(mod["main"].params[0].name)
    return mod, params.get("main", []), name, shape, meta


def _static_input(mod, shape: tuple[int, ...]):
    """Bind a program's symbolic input dims to the build's shape. TorchScript converted through
    torch.export (the ONNX exporter's fallback) arrives with symbolic N/H/W, and a symbolic
    graph reaches none of the static kernels the records hold."""
    import tvm
    from tvm import relax, tirx

    func = mod["main"]
    dims = getattr(getattr(func.params[0].ty, "shape", None), "values", None) or []
    binding = {d: tvm.tirx.IntImm("int64", v) for d, v in zip(dims, shape) if isinstance(d, tirx.Var)}
    if not binding:
        return mod
    out = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)
    out["main"] = func.bind_symbolic_vars(binding)
    return relax.transform.Normalize()(out)


def _pt2(path: Path, batch: int, o: ModelOverrides):
    import torch

    try:
        ep = torch.export.load(str(path))
    except Exception as e:
        raise ModelFormatError(f"{path}: not a loadable torch.export program ({type(e).__name__})") from None
    meta = sidecar_or(path, lambda: describe_program(ep, path), o)
    exported_batch = program_batch(ep)
    if exported_batch != batch:
        raise ModelFormatError(f"{path}: the program was exported at batch {exported_batch} and is specialised "
                               f"on it; export it again with --batch {batch} (or build from the checkpoint)")
    return _from_program(ep, path, batch, meta)


def _checkpoint(path: Path, batch: int, o: ModelOverrides):
    import torch

    from alexnet_tvm.model.checkpoint import load_any_checkpoint

    model, meta = load_any_checkpoint(path, o)
    x = torch.zeros(batch, 3, meta.input_size, meta.input_size)
    with torch.no_grad():
        ep = torch.export.export(model, (x,))
    return _from_program(ep, path, batch, meta)


_IMPORTERS = {"onnx": _onnx, "torchscript": _torchscript, "pt2": _pt2, "checkpoint": _checkpoint}


def import_model(path: Path, batch: int = 1, overrides: ModelOverrides | None = None) -> ImportedModel:
    """``overrides``: the user's --input-size/--classes/--class-names/--mean/--std, over what
    the file (or its sidecar) says."""
    path = Path(path)
    fmt = detect_format(path)
    if batch < 1:
        raise ModelFormatError("batch must be at least 1")
    mod, params, name, shape, meta = _IMPORTERS[fmt](path, batch, overrides or ModelOverrides())
    mod, params = canonical_param_order(mod, list(params))
    log.info("imported %s (%s) as Relax: input %s %s, %d parameter tensors", path, fmt, name, shape, len(params))
    return ImportedModel(mod, list(params), name, tuple(shape), meta, path, fmt, sha256_file(path))

