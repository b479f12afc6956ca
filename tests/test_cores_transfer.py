"""Schedules travel across core counts (issue 29, part 2): a trace tuned on 2 cores re-derived
for N, on paper for every committed x86 set, and timed here by tune's cores step."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
X86_SETS = sorted(p.relative_to(ROOT / "tuning_logs").as_posix()
                  for p in (ROOT / "tuning_logs").glob("x86-*/*") if (p / "database_tuning_record.json").is_file())


def _best_records(folder: Path) -> list:
    """The fastest record of each workload of a set's fp32 database."""
    from tvm.s_tir import meta_schedule as ms

    db = ms.database.JSONDatabase(str(folder / "database_workload.json"),
                                  str(folder / "database_tuning_record.json"), allow_missing=False)
    best: dict[str, tuple[float, object]] = {}
    for r in db.get_all_tuning_records():
        if r.run_secs:
            cost = sum(float(x) for x in r.run_secs) / len(r.run_secs)
            key = r.workload.mod.script()
            if key not in best or cost < best[key][0]:
                best[key] = (cost, r)
    return [r for _, r in best.values()]


def _spatial(trace_json) -> list[list[int]]:
    insts, decisions = trace_json
    dec = dict((i, d) for i, d in decisions)
    return [dec[i] for i, inst in enumerate(insts)
            if inst[0] == "SamplePerfectTile" and isinstance(dec.get(i), list) and len(dec[i]) == 4]


def _name(mod) -> str:
    script = re.sub(r"T\.int64\((\d+)\)", r"\1", mod.script())
    blocks = re.findall(r'T\.sblock\("([A-Za-z_0-9]+)"', script)
    shapes = re.findall(r"T\.Buffer\(\(([0-9, ]*)\)", script)
    return f"{'/'.join(b for b in blocks if b != 'root')} out [{shapes[-1] if shapes else '?'}]"


def _why_not(rec, cores: int, extents: list[int]) -> str | None:
    """Why a tiled kernel cannot keep ``cores`` threads busy, or None when it can (or it is a bug)."""
    from alexnet_tvm.compile.tuning.cores_transfer import cores_json

    tiles = _spatial(cores_json(rec.trace, cores))
    independent = math.prod(math.prod(t) for t in tiles) // tiles[-1][3]
    if independent < cores:
        return f"its output has {independent} independent tiles outside the vector, fewer than {cores} cores"
    if any(inst.kind.name == "SampleComputeLocation" and int(rec.trace.decisions[inst]) >= 0
           for inst in rec.trace.insts):
        return (f"a producer (the padded input) is computed inside its outer loops, so the parallel fusion "
                f"stops there at {max(extents or [0])}")
    return None


def trace_cores(trace) -> int:
    """The cores a trace's parallel annotation was written for (MetaSchedule: cores x 16 jobs)."""
    from alexnet_tvm.compile.tuning.cores_transfer import JOBS_PER_CORE, PARALLEL_KEY

    values = [int(inst.inputs[1]) for inst in trace.insts
              if inst.kind.name == "Annotate" and str(inst.attrs[0]) == PARALLEL_KEY]
    assert values, "the trace has no parallel annotation"
    return max(values) // JOBS_PER_CORE


def test_a_two_core_trace_rederived_for_64_cores():
    from alexnet_tvm.compile.tuning.cores_transfer import JOBS_PER_CORE, cores_json, for_cores

    recs = [r for r in _best_records(ROOT / "tuning_logs" / "x86-avx2-winograd" / "znver3")
            if (t := _spatial(r.trace.as_json(remove_postproc=True))) and math.prod(map(math.prod, t)) >= 1 << 16]
    rec = min(recs, key=lambda r: math.prod(t[0] for t in _spatial(r.trace.as_json(remove_postproc=True))))
    assert trace_cores(rec.trace) < 64
    js = cores_json(rec.trace, 64)
    values = [inst[1][1] for inst in js[0] if inst[0] == "Annotate" and inst[2][0] == "meta_schedule.parallel"]
    assert values and all(v == 64 * JOBS_PER_CORE for v in values)
    before, after = _spatial(rec.trace.as_json(remove_postproc=True)), _spatial(js)
    assert [math.prod(t) for t in before] == [math.prod(t) for t in after]  # the same loops, re-split
    assert math.prod(t[0] for t in after) >= 64 > math.prod(t[0] for t in before)
    assert after[-1][3] == before[-1][3]  # the vector stays
    moved = for_cores(rec.trace, rec.workload.mod, 64)
    assert moved is not None and trace_cores(moved) == 64


def test_nearest_set_weighs_cores_after_the_microarchitecture():
    from alexnet_tvm.recordsets import nearest_set

    cores = {"znver3": 64, "znver5": 16}
    assert nearest_set("znver4", ["znver3", "znver5"], cores, host_cores=16) == "znver5"
    assert nearest_set("znver4", ["znver3", "znver5"], cores, host_cores=64) == "znver3"
    assert nearest_set("znver4", ["znver2", "znver5"], {"znver2": 16}, host_cores=16) == "znver5"  # arch first


def test_cpu_json_of_a_new_set_names_its_cores(tmp_path):
    from alexnet_tvm.recordsets import own_record_set, read_cpu_file
    from alexnet_tvm.target_choice import with_cores
    from alexnet_tvm.target_choice import resolve_target

    folder = own_record_set(tmp_path, with_cores(resolve_target("x86-avx2"), 6))
    assert read_cpu_file(folder)["cores"] == 6
    for committed in X86_SETS:
        assert read_cpu_file(ROOT / "tuning_logs" / committed)["cores"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("record_set", X86_SETS)
def test_every_committed_kernel_scales_on_paper(record_set):
    """Every conv and GEMM kernel (multi-level tiled), re-derived for 16 and 64 cores, exposes a
    parallel loop of at least that many iterations, or the test says why it cannot."""
    from alexnet_tvm.compile.tuning.cores_transfer import exposed_parallelism

    recs = [r for r in _best_records(ROOT / "tuning_logs" / record_set)
            if _spatial(r.trace.as_json(remove_postproc=True))]
    assert len(recs) >= 10
    unexplained, explained = [], []
    for cores in (16, 64):
        for rec in recs:
            extents = exposed_parallelism(rec.trace, rec.workload.mod, cores)
            if extents and max(extents) >= cores:
                continue
            why = _why_not(rec, cores, extents)
            (explained if why else unexplained).append(f"{cores} cores: {_name(rec.workload.mod)}: "
                                                        f"parallel {extents}" + (f" ({why})" if why else ""))
    print("\n".join(explained))
    assert not unexplained, unexplained
    assert len(explained) <= 4, explained  # the demo model's 10-class FC and conv1's padding, no more


@pytest.mark.slow
def test_tune_times_schedules_rederived_for_other_cores(tmp_path):
    """Records tuned for 2 cores, then tune's cores step for 1 core: candidates are timed here and
    appended as records written for 1 core."""
    from alexnet_tvm.compile.tuning.plan import TuneConfig
    from alexnet_tvm.compile.tuning.tune import tune
    from alexnet_tvm.recordsets import host_set_name
    from alexnet_tvm.target_choice import with_cores
    from helpers.models import TARGET, repo_targets, write_tiny_checkpoint

    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    logs = tmp_path / "logs"
    two = with_cores(repo_targets()[TARGET], 2)
    tune(TuneConfig(model=model, target=two, logs_dir=logs, total_trials=8, trials_per_task=2, only=("conv2d",)))
    records = logs / TARGET / host_set_name() / "database_tuning_record.json"
    before = records.read_text().count("\n")
    assert before >= 2
    res = tune(TuneConfig(model=model, target=with_cores(two, 1), logs_dir=logs, focus={}, to_target_cores=True))
    assert res.cores is not None and res.cores.tasks >= 1 and res.cores.timed >= 1
    lines = records.read_text().splitlines()
    assert len(lines) == before + res.cores.timed
    for line in lines[before:]:
        insts = json.loads(line)[1][0][0]
        values = [i[1][1] for i in insts if i[0] == "Annotate" and i[2][0] == "meta_schedule.parallel"]
        assert values and set(values) == {16}, values  # 1 core x 16 jobs
