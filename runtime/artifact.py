"""A built artifact folder: ``model.so`` + ``params.bin`` + ``manifest.json``.

Loading checks every file's sha256 against the manifest, the TVM version, and that
this machine can run the target's code *before* the library is loaded: a shared
library is code, and loading a tampered one is running it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet_tvm.batching import ALIGN
from alexnet_tvm.artifact_format import LIB, MANIFEST, PARAMS
from alexnet_tvm.errors import ArtifactError
from alexnet_tvm.fsutil import read_json, sha256_file
from alexnet_tvm.host import use_threads
from alexnet_tvm.meta import ModelMeta
from alexnet_tvm.rpc_session import open_session
from alexnet_tvm.schemas import check_manifest
from alexnet_tvm.targets import RPCConfig

from .compat import check_runnable_here, library_machine
from .libcheck import check_against_library, check_elf

log = logging.getLogger(__name__)


def read_manifest(folder: Path) -> dict:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder}: not an artifact ({MANIFEST} is missing)")
    return check_manifest(read_json(path, ArtifactError, "manifest"), str(path))


def artifact_digest(folder: Path) -> str:
    """``sha256:`` of the manifest, which lists every file's digest: the name a verify report
    gives the artifact it checked, and what ``pack`` compares it with."""
    return "sha256:" + sha256_file(Path(folder) / MANIFEST)


def check_files(folder: Path, manifest: dict) -> None:
    """Every file the (schema-checked) manifest lists matches its sha256: plain names only, so
    nothing outside ``folder`` is read."""
    folder = Path(folder)
    for name, digest in manifest["files"].items():
        p = folder / name
        if not p.is_file():
            raise ArtifactError(f"{folder}: {name} is missing")
        if sha256_file(p) != digest:
            raise ArtifactError(f"{p}: sha256 does not match the manifest (modified or corrupt); refusing to load it")


@dataclass
class Artifact:
    folder: Path
    manifest: dict
    vm: object
    params: list
    device: object = None
    #: per thread, the input tensor a misaligned batch is copied into (see :meth:`input_tensor`)
    _staging: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def meta(self) -> ModelMeta:
        return ModelMeta.from_dict(self.manifest["meta"], source=str(self.folder / MANIFEST))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["input"]["shape"])

    @property
    def batch(self) -> int:
        return self.input_shape[0]

    def run_batch(self, x: np.ndarray) -> np.ndarray:
        """One call of the library on exactly its built batch size: any array of that shape
        whose values are numbers (read-only, unaligned, strided or of another dtype)."""
        x = np.asarray(x)
        if tuple(x.shape) != self.input_shape:
            raise ArtifactError(f"input shape {tuple(x.shape)} does not match the artifact's {self.input_shape}")
        if x.dtype.kind not in "biuf":
            raise ArtifactError(f"input of type {x.dtype} is not numbers")
        return self.call(np.ascontiguousarray(x, dtype=np.float32))

    def call(self, x: np.ndarray) -> np.ndarray:
        """The library's ``main`` on a C-contiguous float32 array of the input shape."""
        return self.vm["main"](self.input_tensor(x), *self.params).numpy()

    def input_tensor(self, x: np.ndarray):
        """``x`` as the library's input without a fresh allocation. A new 9.6 MB TVM tensor per
        call (batch 16) cost 4.6 ms of page faults and copying on the Zen 4, 15 % of an int8
        inference. On this host's CPU, an array that DLPack can hand over (writable: DLPack has
        no read-only flag and refuses such arrays) and that is laid out as TVM's kernels assume
        (float32, C-contiguous, 64-byte aligned) is passed as it is; any other is copied into
        this thread's staging tensor. So a request's read-only buffer is copied wherever its
        bytes happen to land, not only when they land misaligned."""
        import tvm

        if self.device is None or self.device.dlpack_device_type() != tvm.cpu().dlpack_device_type():  # GPU, board
            return tvm.runtime.tensor(x, self.device)
        if zero_copy_ok(x):
            return tvm.runtime.from_dlpack(x)
        buf = getattr(self._staging, "tensor", None)
        if buf is None:
            buf = self._staging.tensor = tvm.runtime.empty(self.input_shape, "float32", self.device)
        buf.copyfrom(x)
        return buf

    def time_on_device(self, runs: int = 20):
        """Latency measured where the library runs (on the board for an RPC artifact, on the
        GPU for CUDA): neither the network nor host-device copies are counted."""
        import tvm

        from .bench import Timing

        x = tvm.runtime.tensor(np.zeros(self.input_shape, np.float32), self.device)
        timer = self.vm.time_evaluator("main", self.device, number=1, repeat=runs)
        return Timing.from_samples("tvm", self.batch, 1e3 * np.asarray(timer(x, *self.params).results))

    def kernel_times(self, x: np.ndarray, runs: int = 20) -> list[tuple[str, float]]:
        """(kernel, median ms) of each call inside one whole-model run (see layers.py)."""
        import tvm

        from .layers import tvm_kernel_times

        return tvm_kernel_times(self.vm, [tvm.runtime.tensor(x, self.device), *self.params], runs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Any number of images: chunked to the built batch, the last chunk padded."""
        from alexnet_tvm.batching import run_in_batches

        if not len(x):
            return np.zeros((0, self.meta.num_classes), np.float32)
        return run_in_batches(self.run_batch, x, self.batch)


def zero_copy_ok(x: np.ndarray) -> bool:
    """Whether DLPack can lend ``x`` to the library as it is (see :meth:`Artifact.input_tensor`)."""
    return (x.dtype == np.float32 and x.flags.c_contiguous and x.flags.writeable and x.flags.aligned
            and x.ctypes.data % ALIGN == 0)


def _num_cores(manifest: dict) -> int | None:
    """The cores the library was tuned and split for (a target dict's num-cores)."""
    target = manifest["target"].get("target")
    return target.get("num-cores") if isinstance(target, dict) else None


def _tvm_failure(what: Path, e: Exception) -> ArtifactError:
    """A library or parameter file TVM cannot read (checksums matched: it was built or packed wrong)."""
    last = (str(e).strip().splitlines() or [""])[-1][:200]
    return ArtifactError(f"{what}: not loadable by TVM ({type(e).__name__}: {last})")


def _load_library(folder: Path, manifest: dict, check_host: bool, board: RPCConfig | None):
    """(module, device): on the board, or here once this host can run the target's code."""
    import tvm

    cuda = manifest["target"].get("kind") == "cuda"
    check_elf(folder / LIB, library_machine(manifest, on_board=board is not None))
    if board is not None:
        sess = open_session(board.tracker_host, board.tracker_port, board.key, board.session_timeout)
        sess.upload(str(folder / LIB), LIB)
        return sess.load_module(LIB), sess.cuda(0) if cuda else sess.cpu(0)
    if check_host:
        check_runnable_here(manifest)
    if not cuda:
        use_threads(_num_cores(manifest))
    try:
        return tvm.runtime.load_module(str(folder / LIB)), tvm.cuda(0) if cuda else tvm.cpu(0)
    except Exception as e:  # noqa: BLE001 - the FFI raises assorted types for a file that is no module
        raise _tvm_failure(folder / LIB, e) from None


def _load_params(folder: Path, manifest: dict, dev) -> list:
    import tvm

    try:
        loaded = tvm.runtime.load_param_dict((folder / PARAMS).read_bytes())
        arrays = [loaded[f"p{i}"].numpy() for i in range(len(loaded))]
    except Exception as e:  # noqa: BLE001 - as above
        raise _tvm_failure(folder / PARAMS, e) from None
    if len(arrays) != manifest.get("num_params", len(arrays)):
        raise ArtifactError(f"{folder / PARAMS}: {len(arrays)} tensors, the manifest says {manifest['num_params']}")
    return [tvm.runtime.tensor(a, dev) for a in arrays]


def load_artifact(folder: Path, check_host: bool = True, board: RPCConfig | None = None) -> Artifact:
    """Schema and checksums first, then load the library here or on a remote board."""
    from tvm.runtime.vm import VirtualMachine

    folder = Path(folder)
    manifest = read_manifest(folder)
    check_files(folder, manifest)
    lib, dev = _load_library(folder, manifest, check_host, board)
    try:
        vm = VirtualMachine(lib, dev)
    except Exception as e:  # noqa: BLE001 - a TVM module, but not a Relax VM executable
        raise _tvm_failure(folder / LIB, e) from None
    art = Artifact(folder, manifest, vm, _load_params(folder, manifest, dev), dev)
    check_against_library(art)
    return art
