"""Rows fed to a fixed-batch library: padding, and the one aligned copy the server makes of a batch."""

from __future__ import annotations

import numpy as np
import pytest

from alexnet_tvm.batching import ALIGN, aligned_bytes, aligned_like, run_in_batches, stack_rows
from alexnet_tvm.runtime.artifact import zero_copy_ok


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 16, 33])
def test_aligned_like_is_aligned_writable_and_contiguous(rows: int) -> None:
    a = aligned_like((rows, 3, 5, 7))
    assert a.shape == (rows, 3, 5, 7) and a.dtype == np.float32
    assert a.ctypes.data % ALIGN == 0 and a.flags.c_contiguous and a.flags.writeable


def test_stack_rows_is_one_aligned_copy_the_library_can_borrow() -> None:
    parts = [np.full((n, 3, 4, 4), i, np.float32) for i, n in enumerate([1, 2, 1, 3])]
    parts[1] = parts[1][:, :, ::-1]  # a strided part is copied in as well
    x = stack_rows(parts)
    np.testing.assert_array_equal(x, np.concatenate(parts))
    assert zero_copy_ok(x)
    assert all(not np.shares_memory(x, p) for p in parts)
    one = np.zeros((1, 3, 4, 4), np.float32)
    assert stack_rows([one]) is one  # a lone request's rows are not copied here


@pytest.mark.parametrize("offset", [0, 1, 63, 64, 97, 200])
def test_a_body_read_into_aligned_bytes_has_its_tensor_lent_to_the_library(offset: int) -> None:
    """The server reads a body into ``aligned_bytes(size, header_length)``: the tensor after the
    JSON header is then an array the library borrows without a copy; one read from ``bytes``
    (read-only) or from a numpy allocation at that offset would not be."""
    buf = aligned_bytes(offset + 48, offset)
    assert len(buf) == offset + 48 and buf.flags.writeable and (buf.ctypes.data + offset) % ALIGN == 0
    x = np.frombuffer(memoryview(buf)[offset:], "<f4").reshape(1, 3, 2, 2)
    assert zero_copy_ok(x) and np.shares_memory(x, buf)
    assert not zero_copy_ok(np.frombuffer(bytes(buf)[offset:], "<f4"))


def test_run_in_batches_pads_the_last_chunk_and_drops_its_outputs() -> None:
    calls: list[tuple[int, bool]] = []

    def fn(chunk: np.ndarray) -> np.ndarray:
        calls.append((len(chunk), zero_copy_ok(chunk)))
        return chunk.reshape(len(chunk), -1)[:, :1] * 2

    x = np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1)
    out = run_in_batches(fn, x, 4)
    np.testing.assert_array_equal(out[:, 0], 2 * np.arange(5))
    assert [n for n, _ in calls] == [4, 4]
    assert calls[1][1]  # the padded chunk is built aligned, so the library borrows it
