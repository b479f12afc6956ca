"""Does the library say what its manifest says? Checked before the library serves any input.

The manifest's checksums prove only that the files are the ones the manifest lists: anyone
who edits a manifest can rewrite the digests too. So a manifest kept self-consistent could
claim 12 classes for a 10-class library (a wrong label printed), int8 for an fp32 build
(verify's 100x looser int8 tolerances), or another build's ``model.so`` (a shape error from
deep inside TVM). Two checks close that:

* :func:`check_elf` reads the shared object's headers before it is loaded: a library cut
  short is mapped by ``dlopen`` past its end, and touching that page is a bus error (exit
  135, no message), not an exception.
* :func:`check_against_library` calls the loaded library once on zeros of the manifest's
  input shape and compares what comes back (shape, dtype) and what the parameters are
  (count, dtypes) with the manifest's claims. It runs in the load, before any user input.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from alexnet_tvm.errors import ArtifactError

#: ELF e_machine codes of the architectures a target can name
ELF_MACHINES = {62: "x86_64", 183: "aarch64", 40: "arm"}
_PT_LOAD = 1


def _fields(data: bytes, fmt: str, offset: int) -> tuple:
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error:
        raise ArtifactError("truncated ELF header") from None


def _elf_layout(data: bytes, size: int) -> tuple[int, list[tuple[int, int, int]], tuple[int, int, int]]:
    """(e_machine, [(p_type, p_offset, p_filesz)], (e_shoff, e_shentsize, e_shnum)) of a 64-bit ELF."""
    if data[:4] != b"\x7fELF":
        raise ArtifactError("not an ELF shared library")
    if data[4] != 2 or data[5] not in (1, 2):
        raise ArtifactError("not a 64-bit ELF library")
    end = "<" if data[5] == 1 else ">"
    (e_type, e_machine, _v, _entry, e_phoff, e_shoff, _flags, _ehsize, e_phentsize, e_phnum, e_shentsize,
     e_shnum, _shstrndx) = _fields(data, end + "HHIQQQIHHHHHH", 16)
    if e_type != 3:  # ET_DYN
        raise ArtifactError("not a shared library (ELF type is not DYN)")
    if e_phentsize < 56 or e_phoff + e_phnum * e_phentsize > len(data):
        raise ArtifactError("program headers lie past the end of the file")
    segments = []
    for i in range(e_phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = _fields(data, end + "IIQQQQ", e_phoff + i * e_phentsize)
        segments.append((p_type, p_offset, p_filesz))
    return e_machine, segments, (e_shoff, e_shentsize, e_shnum)


def check_elf(path: Path, machine: str | None) -> None:
    """Refuse a library whose headers or loadable segments reach past the end of the file (a
    truncated copy), or that is built for another architecture than ``machine`` (None: any)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    try:
        e_machine, segments, (shoff, shentsize, shnum) = _elf_layout(head, size)
        for p_type, offset, filesz in segments:
            if p_type == _PT_LOAD and offset + filesz > size:
                raise ArtifactError(f"a loadable segment ends at byte {offset + filesz} of a {size}-byte file "
                                    "(truncated)")
        if shoff and shoff + shentsize * shnum > size:
            raise ArtifactError(f"the section table ends past the {size}-byte file (truncated)")
    except ArtifactError as e:
        raise ArtifactError(f"{path}: not loadable by TVM ({e})") from None
    arch = ELF_MACHINES.get(e_machine, f"machine {e_machine}")
    if machine is not None and arch != machine:
        raise ArtifactError(f"{path}: the library is built for {arch}, the manifest's target runs on {machine}")


def _param_dtypes(params: list) -> set[str]:
    return {str(p.dtype) for p in params}


def _precision_problem(precision: str, dtypes: set[str]) -> str | None:
    """Why parameters of ``dtypes`` are not those of a ``precision`` build; None when they are."""
    if precision == "fp32" and dtypes - {"float32"}:
        return f"parameters of type {', '.join(sorted(dtypes - {'float32'}))} in an fp32 build"
    if precision == "bf16" and "bfloat16" not in dtypes:
        return "no bfloat16 parameters in a bf16 build"
    if precision == "fp16" and "float16" not in dtypes:
        return "no float16 parameters in an fp16 build"
    if precision == "int8" and not dtypes & {"int8", "uint8"}:
        return "no int8 parameters in an int8 build"
    return None


def check_against_library(art) -> None:
    """One call on zeros: the output's shape and dtype, and the parameters' dtypes, must be the
    manifest's (``art`` is a loaded :class:`~alexnet_tvm.runtime.artifact.Artifact`)."""
    where = art.folder / "manifest.json"
    problem = _precision_problem(art.manifest.get("precision", "fp32"), _param_dtypes(art.params))
    if problem:
        raise ArtifactError(f"{where}: precision {art.manifest.get('precision', 'fp32')!r} disagrees with "
                            f"the library ({problem})")
    try:
        out = art.call(np.zeros(art.input_shape, np.float32))
    except Exception as e:  # noqa: BLE001 - TVM raises assorted types for a shape the library was not built for
        last = (str(e).strip().splitlines() or [""])[-1][:160]
        raise ArtifactError(f"{where}: the library does not take input {list(art.input_shape)} "
                            f"({type(e).__name__}: {last})") from None
    want = tuple(art.manifest["output"]["shape"])
    if tuple(out.shape) != want or out.dtype != np.float32:
        raise ArtifactError(f"{where}: the library returns {out.dtype} {list(out.shape)}, the manifest says "
                            f"float32 {list(want)} (another build's library, or an edited manifest)")
