"""The text ``tune`` prints after a run: the per-task table and the boards lost.

Interface, not compile, because output formatting lives in the interface layer: compile returns
results (:class:`~alexnet_tvm.compile.tuning.tune.TuneResult`, its
:class:`~alexnet_tvm.compile.tuning.fleet.Fleet`) and the caller turns them into lines. The lines
compile itself logs while it works (the fleet's first line, the batch-1 and cores transfer lines)
stay beside their log call in compile, so their text has one home.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alexnet_tvm.compile.tuning.fleet import Fleet
    from alexnet_tvm.compile.tuning.tune import TuneResult


def format_report(res: TuneResult) -> list[str]:
    """The per-task table: weight, trials, first and best time and the speedup between them."""
    lines = [f"{'task':40s} {'weight':>6s} {'trials':>6s} {'first ms':>9s} {'best ms':>9s} {'speedup':>8s}"]
    for r in res.reports:
        f = "-" if r.first_ms is None else f"{r.first_ms:.3f}"
        b = "-" if r.best_ms is None else f"{r.best_ms:.3f}"
        s = "-" if r.speedup is None or math.isnan(r.speedup) else f"{r.speedup:.1f}x"
        lines.append(f"{r.name[:40]:40s} {r.weight:6d} {r.trials:6d} {f:>9s} {b:>9s} {s:>8s}")
    return lines


def lost_line(fleet: Fleet) -> str | None:
    """The boards a tune lost (died or hung) and how many candidates failed with each; None when none."""
    if not fleet.lost:
        return None
    each = ", ".join(f"{b} ({n} candidate{'s' if n != 1 else ''} failed)" for b, n in sorted(fleet.lost.items()))
    return f"boards lost: {len(fleet.lost)} of {fleet.registered} under key {fleet.rpc.key!r}: {each}"
