"""Reading a ``.npy`` whose header is believed only once the file's size agrees with it.

``np.load`` allocates what the header claims before it reads a byte of data, so a 128-byte
file whose header says shape (10**12,) is a MemoryError (3.6 TiB) instead of one error line.
"""

from __future__ import annotations

import tokenize
from pathlib import Path

import numpy as np

from alexnet_tvm.errors import AscendError


def _header(f, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        shape, _fortran, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0)
                                  else fmt.read_array_header_2_0(f))
    except (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError) as e:
        raise AscendError(f"{path}: not a readable .npy ({type(e).__name__}: {str(e)[:80]})") from None
    return shape, dtype


def load_npy(path: Path) -> np.ndarray:
    """The array of ``path``, refused in one line when the data after its header is not exactly
    what the header's shape and dtype need (nothing is allocated for a header that lies)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            shape, dtype = _header(f, path)
            data_bytes = path.stat().st_size - f.tell()
    except OSError as e:
        raise AscendError(f"{path}: not a readable .npy ({e})") from None
    if dtype.hasobject:
        raise AscendError(f"{path}: a .npy of Python objects is not an array of numbers")
    want = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if want != data_bytes:
        raise AscendError(f"{path}: the header says {dtype} {shape} ({want} bytes), the file holds {data_bytes}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise AscendError(f"{path}: not a readable .npy ({type(e).__name__}: {str(e)[:80]})") from None
