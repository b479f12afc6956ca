"""Schedules tuned for C cores replayed for N: the parallel extent re-derived, as a candidate.

MetaSchedule writes the core count into every CPU trace: ``ParallelizeVectorizeUnroll``
annotates a block with ``meta_schedule.parallel = num-cores x 16`` (its max_jobs_per_core),
and the postprocessor fuses the outermost loops, the first tile level of each spatial loop,
until their product reaches that value. The committed sets were tuned on 2 vCPUs, so their
annotations say 32 and their tilings put few iterations in that first level: many kernels
keep at most 2-48 threads busy, whatever the host has. A trace is made a candidate for N
cores in two steps:

* the annotation is set to ``N x 16``, what a search on N cores would have written;
* where the first tile level of the spatial splits (``SamplePerfectTile`` with four factors,
  the ``SSRSRS`` tiling) holds fewer than N iterations, prime factors move into it from the
  levels below, outermost loop first (the postprocessor fuses from the outside in): the
  second level, then the third, then the innermost, except for the last spatial loop, whose
  innermost factor is the vector.

Like the batch transfer (batch_transfer.py), the candidate is timed on this host and kept only
where it is the fastest; ``exposed_parallelism`` says on paper what it would expose.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

from .adapt import CandidateTiming, candidates_line, time_candidates

log = logging.getLogger(__name__)

PARALLEL_KEY = "meta_schedule.parallel"
#: MetaSchedule's ParallelizeVectorizeUnroll default: parallel jobs per core
JOBS_PER_CORE = 16
_PARALLEL_LOOP = re.compile(r"T\.parallel\((?:T\.int(?:32|64)\()?(\d+)")


def _smallest_prime(n: int) -> int:
    p = 2
    while n % p:
        p += 1
    return p


def _spread(decisions: dict[int, list[int]], spatial: list[int], cores: int) -> None:
    """Move prime factors into the first tile level of ``spatial`` splits (in loop order) until
    their product is at least ``cores`` or nothing is left to move."""
    last = spatial[-1]
    for i in spatial:
        levels = [1, 2] + ([3] if i != last else [])
        for lvl in levels:
            while math.prod(decisions[j][0] for j in spatial) < cores and decisions[i][lvl] > 1:
                p = _smallest_prime(decisions[i][lvl])
                decisions[i][lvl] //= p
                decisions[i][0] *= p


def cores_json(trace, cores: int) -> list:
    """``trace`` (postprocessing removed) as TVM's trace JSON, re-derived for ``cores`` cores."""
    insts, decisions = trace.as_json(remove_postproc=True)
    for inst in insts:
        if inst[0] == "Annotate" and inst[2] and str(inst[2][0]) == PARALLEL_KEY:
            inst[1][1] = cores * JOBS_PER_CORE
    by_inst = {int(i): [int(x) for x in d] if isinstance(d, list) else d for i, d in decisions}
    spatial = [i for i, inst in enumerate(insts)
               if inst[0] == "SamplePerfectTile" and isinstance(by_inst.get(i), list) and len(by_inst[i]) == 4]
    if spatial:
        _spread(by_inst, spatial, cores)
    return [insts, [[i, by_inst[int(i)]] for i, _ in decisions]]


def for_cores(trace, mod, cores: int):
    """The trace of ``mod`` scheduled as ``trace`` re-derived for ``cores``; None when it does not
    replay (then the candidate is simply not made)."""
    import tvm

    sch = tvm.s_tir.Schedule(mod)
    try:
        tvm.s_tir.Trace.apply_json_to_schedule(cores_json(trace, cores), sch)
    except Exception as e:  # noqa: BLE001 - TVM raises assorted types for a trace that does not replay
        log.debug("a trace does not replay for %d cores: %s", cores, str(e).splitlines()[-1:])
        return None
    return sch.trace


def exposed_parallelism(trace, mod, cores: int) -> list[int]:
    """The parallel loop extents of ``mod`` once ``trace`` re-derived for ``cores`` is applied and
    MetaSchedule's parallel postprocessor has run (what the library would split among threads).
    The postprocessor reads only the trace's annotations, so it needs no tuning context (whose
    default space generator imports every tensor intrinsic: 30-50 s here)."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    sch = tvm.s_tir.Schedule(mod)
    tvm.s_tir.Trace.apply_json_to_schedule(cores_json(trace, cores), sch)
    ms.postproc.RewriteParallelVectorizeUnroll().apply(sch)
    return [int(x) for x in _PARALLEL_LOOP.findall(sch.mod.script())]


@dataclass
class CoresTransferResult(CandidateTiming):
    """What timing the schedules re-derived for the target's cores gave."""

    cores: int = 1


def transferred_records(database, task, cores: int, target, k: int = 3) -> list:
    """Unmeasured records of ``task`` made from its best ``k`` records re-derived for ``cores``,
    leaving out those that the re-derivation does not change."""
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.database import TuningRecord, Workload

    mod = task.dispatched[0]
    if not database.has_workload(mod):
        return []
    out = []
    for rec in database.get_top_k(database.commit_workload(mod), k):
        if cores_json(rec.trace, cores) == rec.trace.as_json(remove_postproc=True):
            continue  # written for this count already (or nothing in it depends on the count)
        trace = for_cores(rec.trace, mod, cores)
        if trace is not None:
            out.append(TuningRecord(trace, Workload(mod), None, target, ArgInfo.from_entry_func(mod)))
    return out


def transfer_cores(tasks: list, cores: int, target, database, builder, runner, k: int = 3) -> CoresTransferResult:
    """Time each task's best schedules re-derived for ``cores`` here and commit those that ran to
    ``database``, where they compete with the records they came from."""
    candidates = [(task, transferred_records(database, task, cores, target, k)) for task in tasks]
    return time_candidates(CoresTransferResult(cores=cores), candidates, target, database, builder, runner)


def cores_line(name: str, t: CoresTransferResult) -> str:
    """One line on what the schedules re-derived for this host's cores gave."""
    return f"{name}: " + candidates_line(t, f"schedules re-derived for {t.cores} cores")
