"""The hand-scheduled Winograd transforms (compile/winograd_tir.py) against numpy.

They are generated text with constants folded in, and TVM's vectorizer had a bug that gave
every lane the last lane's value: so the numbers are checked lane by lane, on a map whose
tiles overhang its edge (13x13 in 4x4 tiles), with padding, over two images.
"""

from __future__ import annotations

import numpy as np
import pytest

TARGET = {"kind": "llvm", "mcpu": "haswell", "num-cores": 2}  # any AVX2 machine, CI included


def _run(source: str, *arrays, out_shape):
    import tvm

    from alexnet_tvm.compile.winograd_tir import parse

    lib = tvm.compile(parse(source).with_attr("global_symbol", "main"), target=tvm.target.Target(TARGET))
    out = tvm.runtime.tensor(np.full(out_shape, np.nan, "float32"))
    lib(*[tvm.runtime.tensor(a) for a in arrays], out)
    return out.numpy()


def _tiles(t):
    nh, nw = t.tiles_hw
    for p in range(t.p):
        yield p, p // (nh * nw), (p // nw) % nh * t.m, p % nw * t.m


#: (m, r, pad): F(2x2, 3x3), F(4x4, 3x3), and F(4x4, 5x5) with padding 2 as AlexNet's conv2
CASES = [(2, 3, 1), (4, 3, 1), (4, 5, 2)]


@pytest.mark.parametrize("m,r,pad", CASES)
def test_data_transform_is_bt_d_b_per_tile(m, r, pad):
    from alexnet_tvm.compile.winograd_tir import Tiling, data_transform_source, matrices

    t = Tiling(2, 13, 13, (pad,) * 4, m, r)
    al, c = t.alpha, 48
    x = np.random.default_rng(0).standard_normal((2, 13, 13, c)).astype("float32")
    got = _run(data_transform_source(t, c), x, out_shape=(al * al, t.p, c)).reshape(al, al, t.p, c)
    b = matrices(m, r)[1]
    nh, nw = t.tiles_hw
    padded = np.zeros((2, nh * m + r - 1, nw * m + r - 1, c))
    padded[:, pad:pad + 13, pad:pad + 13] = x
    want = np.empty_like(got, dtype="float64")
    for p, n, y, xx in _tiles(t):
        want[:, :, p] = np.einsum("ai,abc,bj->ijc", b, padded[n, y:y + al, xx:xx + al], b)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("m,r,pad", CASES)
def test_inverse_transform_is_at_y_a_cut_to_the_map(m, r, pad):
    from alexnet_tvm.compile.winograd_tir import Tiling, inverse_source, matrices

    t = Tiling(2, 13, 13, (pad,) * 4, m, r)
    al, k = t.alpha, 40  # 40: 8-lane vectors, not 16
    y = np.random.default_rng(1).standard_normal((al * al, t.p, k)).astype("float32")
    got = _run(inverse_source(t, k), y, out_shape=(2, 13, 13, k))
    a = matrices(m, r)[0]
    nh, nw = t.tiles_hw
    full = np.zeros((2, nh * m, nw * m, k))
    for p, n, oy, ox in _tiles(t):
        full[n, oy:oy + m, ox:ox + m] = np.einsum("iu,ijk,jv->uvk", a, y[:, p].reshape(al, al, k), a)
    np.testing.assert_allclose(got, full[:, :13, :13], rtol=1e-5, atol=1e-4)  # NaN-filled: every pixel written


def test_inverse_transform_adds_the_bias_and_applies_relu_when_fused():
    from alexnet_tvm.compile.winograd_tir import Tiling, inverse_source, matrices

    t = Tiling(1, 13, 13, (1, 1, 1, 1), 4)
    al, k = t.alpha, 32
    rng = np.random.default_rng(2)
    y = rng.standard_normal((al * al, t.p, k)).astype("float32")
    bias = rng.standard_normal((1, 1, 1, k)).astype("float32")
    got = _run(inverse_source(t, k, bias_rank=4, relu=True), y, bias, out_shape=(1, 13, 13, k))
    plain = _run(inverse_source(t, k), y, out_shape=(1, 13, 13, k))
    np.testing.assert_allclose(got, np.maximum(plain + bias, 0), rtol=1e-6, atol=1e-6)
    assert (got == 0).mean() > 0.3  # the ReLU did cut
