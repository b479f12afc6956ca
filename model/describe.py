"""What a model file says about itself: input size, class count and names, with no sidecar.

A user arrives with their own file (``torch.jit.trace(...).save``, ``torch.onnx.export``,
``torch.export.save``, ``torch.save(state_dict)``), not with our sidecar. The input size
comes from the graph where the file records it (ONNX dims, a torch.export placeholder);
otherwise a forward pass is tried at the sizes AlexNets take. The class count is the
output's width. User flags (:class:`ModelOverrides`) win over both, and the result is
written into the artifact's manifest, so ``predict``/``verify`` need nothing more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from alexnet_tvm.errors import CheckpointError, ModelFormatError
from alexnet_tvm.meta import IMAGENET_MEAN, IMAGENET_STD, ModelMeta, default_resize_size, read_sidecar, sidecar_path

log = logging.getLogger(__name__)

#: the input sizes a forward pass is tried at, in order (torchvision, Caffe/BVLC, CIFAR, others)
PROBE_SIZES = (224, 227, 32, 64, 96, 128, 256)
IMAGENET_CLASSES = 1000


@dataclass
class ModelOverrides:
    """What the user says on the command line (``--input-size`` ...); None: read it from the file."""

    input_size: int | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.input_size, self.num_classes, self.class_names, self.mean, self.std))


def read_class_names(path: Path) -> list[str]:
    """One class name per line (blank lines ignored), as ``--class-names FILE`` takes them."""
    path = Path(path)
    try:
        names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read class names ({type(e).__name__})") from None
    if not names:
        raise CheckpointError(f"{path}: no class names in it (one name per line)")
    return names


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k names that torchvision ships in its installed package (no download)."""
    from torchvision.models import AlexNet_Weights

    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def default_class_names(num_classes: int) -> list[str]:
    if num_classes == IMAGENET_CLASSES:
        return imagenet_categories()
    return [f"class_{i}" for i in range(num_classes)]


def probe_input_size(path: Path, forward: Callable[[int], int], sizes: tuple[int, ...] = PROBE_SIZES
                     ) -> tuple[int, int]:
    """The first size at which ``forward(size)`` (returning the class count) succeeds."""
    last = ""
    for size in sizes:
        try:
            classes = forward(size)
        except Exception as e:  # any framework error means "not this size"
            last = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:120] if str(e).strip() else ''}"
            continue
        log.info("%s: input size %d found by a forward pass", path, size)
        return size, classes
    raise ModelFormatError(
        f"{path}: no forward pass succeeded at {', '.join(map(str, sizes))} pixels (last: {last}); "
        "pass --input-size N (and --classes N)")


def meta_from(arch: str, num_classes: int, input_size: int, width: float = 1.0, source: str = "") -> ModelMeta:
    """A description for a file that came without one."""
    return ModelMeta(arch=arch, num_classes=num_classes, input_size=input_size,
                     resize_size=default_resize_size(input_size), class_names=default_class_names(num_classes),
                     width=width, extra={"described_from": source} if source else {})


def apply_overrides(meta: ModelMeta, o: ModelOverrides, source: str) -> ModelMeta:
    """The user's flags over what the file says; a flag that contradicts the graph is refused."""
    if o.num_classes is not None and o.num_classes != meta.num_classes:
        raise CheckpointError(f"{source}: --classes {o.num_classes}, but the model outputs {meta.num_classes} classes")
    names = meta.class_names
    if o.class_names is not None:
        if len(o.class_names) != meta.num_classes:
            raise CheckpointError(f"{source}: --class-names has {len(o.class_names)} names for "
                                  f"{meta.num_classes} classes")
        names = list(o.class_names)
    size = o.input_size or meta.input_size
    resize = meta.resize_size if size == meta.input_size else default_resize_size(size)
    return replace(meta, class_names=names, input_size=size, resize_size=resize,
                   mean=tuple(o.mean) if o.mean else meta.mean, std=tuple(o.std) if o.std else meta.std)


def sidecar_or(path: Path, describe: Callable[[], ModelMeta], o: ModelOverrides) -> ModelMeta:
    """The sidecar where there is one, else what ``describe`` reads from the file; then the flags."""
    meta = read_sidecar(path) if sidecar_path(path).is_file() else describe()
    return apply_overrides(meta, o, str(path))


def check_norm(values: tuple[float, ...] | None, what: str) -> None:
    if values is None:
        return
    if len(values) != 3 or (what == "--std" and any(v <= 0 for v in values)):
        raise CheckpointError(f"{what} takes three numbers (R G B){', all positive' if what == '--std' else ''}")



def onnx_io(model, path: Path) -> tuple[str, list, int | None]:
    """The single image input's name and dims, and the class count if the graph records it."""
    init = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ModelFormatError(f"{path}: expected one image input, found {len(inputs)} ({names}); "
                               "an AlexNet takes one N,3,H,W image tensor")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    out_dims = [d.dim_value if d.HasField("dim_value") else None
                for d in model.graph.output[0].type.tensor_type.shape.dim]
    classes = out_dims[-1] if out_dims and out_dims[-1] else None
    return inputs[0].name, dims, classes


def describe_onnx(model, path: Path, sizes: tuple[int, ...] = PROBE_SIZES) -> ModelMeta:
    """Size from the input's H/W dims when fixed, else an ONNX Runtime forward pass."""
    import numpy as np
    import onnxruntime as ort

    name, dims, classes = onnx_io(model, path)
    if len(dims) == 4 and dims[2] and dims[3]:
        if dims[2] != dims[3]:
            raise ModelFormatError(f"{path}: input {name!r} is {dims[2]}x{dims[3]}; only square inputs are supported")
        sizes = (dims[2],)
    if classes is not None and len(sizes) == 1:
        return meta_from("unknown", classes, sizes[0], source="onnx graph")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    batch = dims[0] if dims and dims[0] else 1

    def forward(size: int) -> int:
        return int(sess.run(None, {name: np.zeros((batch, 3, size, size), np.float32)})[0].shape[-1])

    size, classes = probe_input_size(path, forward, sizes)
    return meta_from("unknown", classes, size, source="onnx forward pass")


def describe_module(module, path: Path, sizes: tuple[int, ...] = PROBE_SIZES, batch: int = 1) -> ModelMeta:
    """A TorchScript module records no input size: a forward pass at each AlexNet size
    (``batch``: what a batch-specialised torch.export module takes)."""
    import torch

    def forward(size: int) -> int:
        with torch.no_grad():
            out = module(torch.zeros(batch, 3, size, size))
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise ModelFormatError("the output is not one N x classes tensor")
        return int(out.shape[-1])

    size, classes = probe_input_size(path, forward, sizes)
    return meta_from("unknown", classes, size, source="forward pass")


def describe_program(ep, path: Path) -> ModelMeta:
    """A torch.export program is specialised on its example input: its shapes are recorded."""
    sig = ep.graph_signature.user_inputs
    user = [n for n in ep.graph.nodes if n.op == "placeholder" and n.name in sig]
    outputs = [n for n in ep.graph.nodes if n.op == "output"][0].args[0]
    if len(user) != 1:
        raise ModelFormatError(f"{path}: expected one image input, found {len(user)}")
    shape = tuple(int(d) for d in user[0].meta["val"].shape)
    out = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3]:
        raise ModelFormatError(f"{path}: input shape {shape}; expected N,3,S,S")
    return meta_from("unknown", int(out.meta["val"].shape[-1]), shape[2], source="torch.export program")
