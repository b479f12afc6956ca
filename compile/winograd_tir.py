"""The Winograd data and inverse transforms as hand-scheduled TIR (generated TVMScript).

Why hand-written: MetaSchedule's built-in CPU Winograd rules unroll the transform's
reductions innermost, so nothing is vectorized, and tuned inside one function with the
batched GEMM they left Winograd no faster than the direct convs (docs/performance.md).
Here each transform is a straight-line program per (tile, channel vector): the constant
matrices are folded into the text (zero terms dropped, +-1 as add/sub), channels are the
16-lane vector, tiles the parallel loop. Both are memory-bound and need no tuning, so they
carry ``tirx.is_scheduled`` and are left out of the tuning tasks (tune.tuning_tasks).

TVM 0.27's vectorizer mishandles scalar `Let`s inside a vectorized loop (every lane gets
the last lane's value), so intermediates live in small local buffers, one vector row each,
allocated per (tile, channel block) in an opaque block: Relax's layout passes want every
PrimFunc in block form.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

#: what marks a PrimFunc as complete: no tuning task, applied as written
SCHEDULED_ATTRS = '{"tirx.noalias": True, "op_pattern": 8, "tirx.is_scheduled": True}'


@lru_cache(maxsize=None)
def matrices(m: int, r: int = 3):
    """(A, B, G) of F(m x m, r x r) as float64 numpy arrays: TVM's own interpolation points."""
    from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points

    return _cook_toom_convolution(_interpolation_points(m + r - 1), m, r)


@dataclass(frozen=True)
class Tiling:
    """How an NHWC map is cut into m x m output tiles of an r x r conv (P = tiles over the batch)."""

    n: int
    h: int
    w: int
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    m: int
    r: int = 3

    @property
    def alpha(self) -> int:
        return self.m + self.r - 1

    @property
    def out_hw(self) -> tuple[int, int]:
        pt, pl, pb, pr = self.pads
        return self.h + pt + pb - self.r + 1, self.w + pl + pr - self.r + 1

    @property
    def tiles_hw(self) -> tuple[int, int]:
        oh, ow = self.out_hw
        return -(-oh // self.m), -(-ow // self.m)

    @property
    def p(self) -> int:
        nh, nw = self.tiles_hw
        return self.n * nh * nw


def _vector(channels: int) -> int:
    return next(v for v in (16, 8, 4, 2, 1) if channels % v == 0)


def _lin(coefs, terms: list[str]) -> str:
    """sum(c * t) as TVMScript text, constant-folded: zero terms dropped, +-1 as add/sub."""
    parts = []
    for c, t in zip(coefs, terms):
        c = float(c)
        if c == 0:
            continue
        parts.append(f"+ {t}" if c == 1 else f"- {t}" if c == -1 else f"+ T.float32({c!r}) * {t}")
    if not parts:
        return "T.float32(0)"
    text = " ".join(parts)
    return text[2:] if text.startswith("+ ") else "T.float32(0) " + text


def _tile_origin(t: Tiling, indent: str, pt: int = 0, pl: int = 0) -> list[str]:
    nh, nw = t.tiles_hw
    return [f"{indent}b_ = p // {nh * nw}",
            f"{indent}y0 = p // {nw} % {nh} * {t.m} - {pt}",
            f"{indent}x0 = p % {nw} * {t.m} - {pl}"]


def data_transform_source(t: Tiling, channels: int) -> str:
    """x (N, H, W, C) -> (alpha^2, P, C): B^T d B per tile, padding read as zeros."""
    al, c, v = t.alpha, channels, _vector(channels)
    _, b, _ = matrices(t.m, t.r)
    loop = " " * 16 + f"for ci in T.vectorized({v}):"
    body = [
        "@T.prim_func(s_tir=True, private=True)",
        f'def winograd_data_transform(x: T.Buffer(({t.n}, {t.h}, {t.w}, {c}), "float32"), '
        f'out: T.Buffer(({al * al}, {t.p}, {c}), "float32")):',
        f"    T.func_attr({SCHEDULED_ATTRS})",
        f"    for p in T.parallel({t.p}):",
        *_tile_origin(t, " " * 8, t.pads[0], t.pads[1]),
        f"        for co in range({c // v}):",
        '            with T.sblock("winograd_data_transform"):',
        f'                d = T.sblock_alloc_buffer(({al * al}, {v}), "float32", scope="local")',
        f'                s = T.sblock_alloc_buffer(({al * al}, {v}), "float32", scope="local")',
    ]
    for i in range(al):
        for j in range(al):
            inside = f"0 <= y0 + {i} and y0 + {i} < {t.h} and 0 <= x0 + {j} and x0 + {j} < {t.w}"
            body += [loop, f"                    d[{i * al + j}, ci] = T.if_then_else({inside}, "
                           f"x[b_, y0 + {i}, x0 + {j}, co * {v} + ci], T.float32(0))"]
    for i in range(al):  # s = B^T d
        for j in range(al):
            body += [loop, f"                    s[{i * al + j}, ci] = "
                           + _lin(b[:, i], [f"d[{a * al + j}, ci]" for a in range(al)])]
    for i in range(al):  # out = s B
        for j in range(al):
            body += [loop, f"                    out[{i * al + j}, p, co * {v} + ci] = "
                           + _lin(b[:, j], [f"s[{i * al + a}, ci]" for a in range(al)])]
    return "\n".join(body)


def inverse_source(t: Tiling, channels: int, bias_rank: int = 0, relu: bool = False) -> str:
    """(alpha^2, P, K) [, bias (1, ..., 1, K)] -> NHWC (N, OH, OW, K): A^T Y A per tile, the
    ragged edge cut off; the conv's bias add and ReLU (when given) fused into the store, which
    saves a pass over the output (1 ms for conv2 at batch 16 on the Zen 4)."""
    al, k, v, m = t.alpha, channels, _vector(channels), t.m
    a, _, _ = matrices(m, t.r)
    (oh, ow), (nh, nw) = t.out_hw, t.tiles_hw
    loop = " " * 16 + f"for ki in T.vectorized({v}):"
    lead = ", ".join(["1"] * (bias_rank - 1) + [str(k)])
    bias_arg = f'bias: T.Buffer(({lead},), "float32"), ' if bias_rank else ""
    bias_at = "bias[" + "0, " * (bias_rank - 1) + f"ko * {v} + ki]"
    body = [
        "@T.prim_func(s_tir=True, private=True)",
        f'def winograd_inverse(y: T.Buffer(({al * al}, {t.p}, {k}), "float32"), {bias_arg}'
        f'out: T.Buffer(({t.n}, {oh}, {ow}, {k}), "float32")):',
        f"    T.func_attr({SCHEDULED_ATTRS})",
        f"    for p in T.parallel({t.p}):",
        *_tile_origin(t, " " * 8),
        f"        for ko in range({k // v}):",
        '            with T.sblock("winograd_inverse"):',
        f'                s = T.sblock_alloc_buffer(({m * al}, {v}), "float32", scope="local")',
    ]
    for u in range(m):  # s = A^T Y
        for j in range(al):
            body += [loop, f"                    s[{u * al + j}, ki] = "
                           + _lin(a[:, u], [f"y[{i * al + j}, p, ko * {v} + ki]" for i in range(al)])]
    for u in range(m):  # out = s A, inside the map
        for w in range(m):
            cond = ([f"y0 + {u} < {oh}"] if nh * m > oh else []) + ([f"x0 + {w} < {ow}"] if nw * m > ow else [])
            pad = "    " if cond else ""
            if cond:
                body.append(" " * 16 + "if " + " and ".join(cond) + ":")
            value = _lin(a[:, w], [f"s[{u * al + j}, ki]" for j in range(al)])
            value = f"{value} + {bias_at}" if bias_rank else value
            value = f"T.max({value}, T.float32(0))" if relu else value
            body += [pad + loop, pad + f"                    out[b_, y0 + {u}, x0 + {w}, ko * {v} + ki] = {value}"]
    return "\n".join(body)


@lru_cache(maxsize=64)
def parse(source: str):
    """The PrimFunc of a generated source (TVMScript's parser, no exec of our own). Cached by
    the text: parsing AlexNet's eight transforms took 5 s of every prepare on the Zen 3, and
    a bench or a test session prepares the same shapes many times (a PrimFunc is immutable)."""
    import tvm

    return tvm.script.from_source(source)
