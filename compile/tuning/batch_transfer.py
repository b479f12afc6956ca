"""This host's batch-1 schedules as candidates for a larger batch: the batch loop outermost.

A batch-16 kernel can run the batch-1 schedule once per image, the images shared out among the
cores. On the Zen 3, conv1 (11x11, stride 4, 3 input channels) shows why this is worth
timing: in one probe run (cold weights) the batch-16 search's best schedule took 26.6 ms and a
batch-1 record run this way 13.9 ms. The batch-1 search had found a tiling of one
image that the batch-16 search, with a far larger space of outer tilings, had not
(docs/performance.md). ONNX Runtime's conv runs image by image too.

For a FC layer the same candidate streams the weights once per image and loses; it is timed
all the same and kept only if it wins, as every record is: a build takes the fastest.

How: MetaSchedule's multi-level tiling splits every loop with ``SamplePerfectTile``, the batch
loop first. In a batch-1 trace that first split is ``[1, 1, ...]``; setting it to
``[batch, 1, ...]`` and replaying the trace on the batch-N workload puts the batch outermost,
where the parallel loop fusion takes it. A trace whose first split is not of a size-1 loop
(a Winograd GEMM's, whose first loop is the transform's 36 points) is left out, and one that
does not replay on the batch-N workload is skipped when it is timed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .adapt import CandidateTiming, candidates_line, time_candidates

log = logging.getLogger(__name__)

#: batch-1 schedules tried per task (its best few)
SCHEDULES_PER_TASK = 3


@dataclass
class TransferResult(CandidateTiming):
    """What timing the batch-1 schedules at a larger batch gave."""

    batch: int = 1


def batch_outer(trace, batch: int):
    """``trace`` with its first tile split (the batch loop's) set to ``[batch, 1, ...]``, or None
    when that split is not of a size-1 loop."""
    splits = [inst for inst in trace.insts if inst.kind.name == "SamplePerfectTile"]
    if not splits:
        return None
    first = splits[0]
    decision = [int(d) for d in trace.decisions[first]]
    if any(d != 1 for d in decision):
        return None
    return trace.with_decision(first, [batch] + [1] * (len(decision) - 1), remove_postproc=False)


def transferred_records(database, task_one, task, batch: int, target, k: int = SCHEDULES_PER_TASK) -> list:
    """Unmeasured records of ``task`` (batch ``batch``) made from ``task_one``'s (batch 1) best
    ``k`` records in ``database``."""
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.database import TuningRecord, Workload

    mod_one = task_one.dispatched[0]
    if not database.has_workload(mod_one):
        return []
    mod = task.dispatched[0]
    out = []
    for rec in database.get_top_k(database.commit_workload(mod_one), k):
        trace = batch_outer(rec.trace, batch)
        if trace is not None:
            out.append(TuningRecord(trace, Workload(mod), None, target, ArgInfo.from_entry_func(mod)))
    return out


def transfer_batch_one(tasks: list, tasks_one: list, batch: int, target, database, builder, runner,
                       k: int = SCHEDULES_PER_TASK) -> TransferResult:
    """Time each task's batch-1 schedules (``tasks_one``, paired by task name) at ``batch`` here
    and commit those that ran to ``database``, where they compete with its records."""
    one = {t.task_name: t for t in tasks_one}
    candidates = [(task, transferred_records(database, one[task.task_name], task, batch, target, k))
                  for task in tasks if task.task_name in one]
    return time_candidates(TransferResult(batch=batch), candidates, target, database, builder, runner)


def transfer_line(name: str, t: TransferResult) -> str:
    """One line on what the batch-1 schedules gave at a larger batch."""
    return f"{name} batch {t.batch}: " + candidates_line(t, "batch-1 schedules")
