"""Feeding a fixed-batch runtime any number of rows: one rule for the TVM library, ONNX
Runtime and a torch.export program (each is specialised on one batch), and the one rule for
buffers TVM may borrow without a copy (64-byte aligned, the alignment its kernels assume)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

#: the byte alignment TVM's CPU kernels assume of a tensor they are lent (DLPack, no copy)
ALIGN = 64


def aligned_bytes(nbytes: int, aligned_at: int = 0) -> np.ndarray:
    """A writable uint8 buffer of ``nbytes`` whose byte ``aligned_at`` sits on an :data:`ALIGN`
    boundary: a request body read into it with its tensor at that offset can be lent to the
    library as it is."""
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -(raw.__array_interface__["data"][0] + aligned_at) % ALIGN
    return raw[start:start + nbytes]


def aligned_like(shape: Sequence[int], dtype=np.float32) -> np.ndarray:
    """An uninitialised, C-contiguous, :data:`ALIGN`-aligned array (numpy's own allocations
    are only 16-byte aligned, and TVM copies such an array before it runs)."""
    dtype = np.dtype(dtype)
    return aligned_bytes(int(np.prod(shape)) * dtype.itemsize).view(dtype).reshape(tuple(shape))


def stack_rows(parts: Sequence[np.ndarray]) -> np.ndarray:
    """The rows of ``parts`` in one aligned float32 array: one copy, which the library then
    borrows as it is (a plain ``np.concatenate`` lands misaligned and is copied a second time)."""
    if len(parts) == 1:
        return parts[0]
    out = aligned_like((sum(len(p) for p in parts), *parts[0].shape[1:]))
    return np.concatenate(parts, out=out)


def run_in_batches(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int | None) -> np.ndarray:
    """Chunk ``x`` to ``batch`` rows, pad the last chunk with its first row, and drop the pad
    outputs (``batch`` None: one call with every row)."""
    if batch is None:
        return fn(x)
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        n = len(chunk)
        if n < batch:
            chunk = stack_rows([chunk, np.repeat(chunk[:1], batch - n, axis=0)])
        outs.append(np.asarray(fn(chunk))[:n])
    return np.concatenate(outs)
