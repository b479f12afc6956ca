"""Feeding a fixed-batch runtime any number of rows: one rule for the TVM library, ONNX
Runtime and a torch.export program (each is specialised on one batch)."""

from __future__ import annotations

from typing import Callable

import numpy as np


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
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch - n, axis=0)])
        outs.append(np.asarray(fn(chunk))[:n])
    return np.concatenate(outs)
