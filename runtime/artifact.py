"""A built artifact folder: ``model.so`` + ``params.bin`` + ``manifest.json``.

Loading checks every file's sha256 against the manifest, the TVM version, and that
this machine can run the target's code *before* the library is loaded: a shared
library is code, and loading a tampered one is running it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_tvm.artifact_format import FORMAT_VERSION, LIB, MANIFEST, PARAMS
from alexnet_tvm.errors import ArtifactError
from alexnet_tvm.fsutil import read_json, sha256_file
from alexnet_tvm.host import use_threads
from alexnet_tvm.meta import ModelMeta

from .compat import check_runnable_here

log = logging.getLogger(__name__)


def read_manifest(folder: Path) -> dict:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder}: not an artifact ({MANIFEST} is missing)")
    manifest = read_json(path, ArtifactError, "manifest")
    for key in ("format_version", "input", "output", "meta", "target", "tvm_version", "files"):
        if key not in manifest:
            raise ArtifactError(f"{path}: manifest lacks {key!r}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise ArtifactError(f"{path}: artifact format {manifest['format_version']}, this runtime reads {FORMAT_VERSION}")
    return manifest


def check_files(folder: Path, manifest: dict) -> None:
    folder = Path(folder)
    for name in (LIB, PARAMS):
        if name not in manifest["files"]:
            raise ArtifactError(f"{folder}: manifest has no checksum for {name}")
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
        """One call of the library on exactly its built batch size."""
        import tvm

        if tuple(x.shape) != self.input_shape:
            raise ArtifactError(f"input shape {tuple(x.shape)} does not match the artifact's {self.input_shape}")
        out = self.vm["main"](tvm.runtime.tensor(np.ascontiguousarray(x, dtype=np.float32), self.device),
                              *self.params)
        return out.numpy()

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


@dataclass
class RemoteBoard:
    """Where to run a cross-compiled artifact: a board registered with an RPC tracker."""

    tracker_host: str
    tracker_port: int
    key: str
    session_timeout: int = 120


def _remote_session(board: RemoteBoard):
    from tvm import rpc

    from alexnet_tvm.errors import RPCError

    try:
        tracker = rpc.connect_tracker(board.tracker_host, board.tracker_port)
        return tracker.request(board.key, priority=1, session_timeout=board.session_timeout, max_retry=3)
    except Exception as e:  # noqa: BLE001 - the FFI raises assorted types
        raise RPCError(f"cannot get a board {board.key!r} from tracker {board.tracker_host}:{board.tracker_port} "
                       f"({type(e).__name__}: {str(e).strip().splitlines()[-1][:160]})") from None


def _num_cores(manifest: dict) -> int | None:
    """The cores the library was tuned and split for (a target dict's num-cores)."""
    target = manifest["target"].get("target")
    return target.get("num-cores") if isinstance(target, dict) else None


def load_artifact(folder: Path, check_host: bool = True, board: RemoteBoard | None = None) -> Artifact:
    """Checksums first, then load the library here or on a remote board."""
    import tvm
    from tvm import relax

    folder = Path(folder)
    manifest = read_manifest(folder)
    check_files(folder, manifest)
    if board is not None:
        sess = _remote_session(board)
        sess.upload(str(folder / LIB), LIB)
        lib = sess.load_module(LIB)
        dev = sess.cuda(0) if manifest["target"].get("kind") == "cuda" else sess.cpu(0)
    else:
        if check_host:
            check_runnable_here(manifest)
        dev = tvm.cuda(0) if manifest["target"].get("kind") == "cuda" else tvm.cpu(0)
        if manifest["target"].get("kind") != "cuda":
            use_threads(_num_cores(manifest))
        lib = tvm.runtime.load_module(str(folder / LIB))
    vm = relax.VirtualMachine(lib, dev)
    loaded = tvm.runtime.load_param_dict((folder / PARAMS).read_bytes())
    if len(loaded) != manifest.get("num_params", len(loaded)):
        raise ArtifactError(f"{folder / PARAMS}: {len(loaded)} tensors, the manifest says {manifest['num_params']}")
    params = [tvm.runtime.tensor(loaded[f"p{i}"].numpy(), dev) for i in range(len(loaded))]
    return Artifact(folder, manifest, vm, params, dev)
