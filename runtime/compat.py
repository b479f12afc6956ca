"""Can this host run code built for a target? The one rule, for loading an artifact and choosing a pack.

Loading an artifact (``artifact.load_artifact``) and picking a pack from a
registry (``alexnet_tvm.distribution``) must agree, or a pull would install a
library that then refuses to load. Both ask :func:`mismatch`; each words the
answer for its own user (an artifact names its target, a registry listing the
pack it passed over).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from alexnet_tvm.errors import ArtifactError
from alexnet_tvm.host import host_cpu_flags

#: why code cannot run here, as :attr:`Mismatch.rule`
TVM, CUDA, KIND, ARCH, CPU = "tvm", "cuda", "kind", "arch", "cpu"


@dataclass
class HostInfo:
    """What decides whether built code runs here: CPU flags, architecture, TVM version, GPU."""

    flags: set[str]
    machine: str
    tvm_version: str
    #: a CUDA GPU is present; ``None``: not asked (a registry matches GPU packs by name instead)
    cuda: bool | None = None


@dataclass(frozen=True)
class Mismatch:
    """One reason built code cannot run here: ``rule`` (TVM, CUDA, KIND, ARCH, CPU) and its detail
    (this runtime's TVM version, the target kind, the missing CPU flags)."""

    rule: str
    detail: str = ""


def host_info(with_cuda: bool = False) -> HostInfo:
    """This machine; ``with_cuda`` also asks the TVM runtime for a GPU (slow to ask, so only when needed)."""
    import tvm

    cuda = bool(tvm.cuda(0).exist) if with_cuda else None
    return HostInfo(flags=host_cpu_flags(), machine=platform.machine(), tvm_version=tvm.__version__, cuda=cuda)


def _is_x86(machine: str) -> bool:
    return machine in ("x86_64", "AMD64")


def mismatch(target: dict, tvm_version: str, host: HostInfo) -> Mismatch | None:
    """Why code built for ``target`` (a manifest's target dict) with TVM ``tvm_version`` cannot run on
    ``host``; ``None`` when it can.

    CPU flags only decide on x86, where /proc/cpuinfo names them the way the targets do.
    """
    if tvm_version != host.tvm_version:
        return Mismatch(TVM, host.tvm_version)
    kind = str(target.get("kind", ""))
    if kind == "cuda":
        return None if host.cuda else Mismatch(CUDA)
    if kind not in ("llvm", ""):
        return Mismatch(KIND, kind)
    tvm_target = str(target.get("tvm_target", ""))
    if "mtriple" in tvm_target and "x86_64" not in tvm_target:
        if not (host.machine in ("aarch64", "arm64") and "aarch64" in tvm_target):
            return Mismatch(ARCH)
    if _is_x86(host.machine):
        missing = set(target.get("host_features") or []) - host.flags
        if missing:
            return Mismatch(CPU, ", ".join(sorted(missing)))
    return None


def library_machine(manifest: dict, on_board: bool) -> str | None:
    """The architecture whose code ``model.so`` must hold: this host's when it is loaded here (a
    CUDA library's host code included), a cross-compiled target's on a board (None: not known)."""
    if not on_board:
        machine = platform.machine()
        return {"AMD64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return "aarch64" if "aarch64" in str(manifest["target"].get("tvm_target", "")) else None


def check_runnable_here(manifest: dict) -> None:
    """Refuse a library this TVM or this CPU/GPU cannot run."""
    t = manifest["target"]
    m = mismatch(t, str(manifest["tvm_version"]), host_info(with_cuda=t.get("kind") == "cuda"))
    if m is None:
        return
    messages = {
        TVM: f"artifact built with TVM {manifest['tvm_version']}, this runtime has {m.detail}",
        CUDA: f"artifact targets CUDA ({t.get('name')}) and this machine has no CUDA GPU",
        KIND: f"artifact targets kind {m.detail!r}, which this runtime cannot run",
        ARCH: f"artifact is cross-compiled for {t.get('name')}; run it on that board (or over RPC)",
        CPU: f"artifact targets {t.get('name')}; this CPU lacks {m.detail}",
    }
    raise ArtifactError(messages[m.rule])
