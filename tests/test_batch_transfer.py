"""tune --from-batch-1: this host's batch-1 schedules timed at a larger batch, the batch loop
outermost (compile/tuning/batch_transfer.py), against the committed records of the demo model."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from helpers.models import repo_targets
from helpers.records import committed_record_sets, copy_committed_records


def _demo(folder):
    from alexnet_tvm.model.checkpoint import init_checkpoint

    model = folder / "demo.pt"
    init_checkpoint("cifar", 10, model, input_size=32)
    return model


def _tasks(model, batch: int, spec, folder):
    from alexnet_tvm.compile.frontend.load import load_prepared
    from alexnet_tvm.compile.tuning.plan import tuning_tasks

    target = spec.tvm_target()
    _, prepared = load_prepared(model, batch, None, "fp32", None, spec, target, folder)
    return {t.task_name: t for t in tuning_tasks(prepared, target)}


def _run(mod, target, args):
    import tvm

    lib = tvm.compile(mod, target=target)
    dev = tvm.cpu()
    tensors = [tvm.runtime.tensor(a, dev) for a in args]
    lib[lib.entry_name if hasattr(lib, "entry_name") else "main"](*tensors)
    return tensors[-1].numpy()


def test_a_batch_one_schedule_runs_image_by_image_and_computes_the_same(tmp_path):
    """Every conv of the demo model with batch-1 records gets candidates at batch 4 whose first
    split is [4, 1, ...]; the scheduled kernel computes what the unscheduled one does."""
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    from alexnet_tvm.compile.tuning.batch_transfer import transferred_records
    from alexnet_tvm.compile.tuning.database import open_database

    spec = repo_targets()["x86-avx2"]
    target = spec.tvm_target()
    name = committed_record_sets("x86-avx2")[0]
    db = open_database(copy_committed_records("x86-avx2", tmp_path / "db", name), for_tuning=False)
    model = _demo(tmp_path)
    one, four = _tasks(model, 1, spec, tmp_path), _tasks(model, 4, spec, tmp_path)
    convs = [n for n in four if "conv2d" in n and n in one]
    assert len(convs) >= 3
    rng = np.random.default_rng(0)
    for task in convs:
        recs = transferred_records(db, one[task], four[task], 4, target)
        assert recs, task
        rec = recs[0]
        split = next(i for i in rec.trace.insts if i.kind.name == "SamplePerfectTile")
        assert [int(d) for d in rec.trace.decisions[split]][0] == 4
        assert all(int(d) == 1 for d in rec.trace.decisions[split][1:])
        mod = four[task].dispatched[0]
        args = [rng.standard_normal([int(d) for d in a.shape], dtype=np.float32)
                for a in ArgInfo.from_entry_func(mod)]
        want = _run(mod, target, [a.copy() for a in args])
        got = _run(rec.as_measure_candidate().sch.mod, target, [a.copy() for a in args])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_a_split_of_a_longer_loop_is_not_moved():
    """A Winograd GEMM's first loop is its 36 transform points, not the batch: no candidate."""
    from alexnet_tvm.compile.tuning.batch_transfer import batch_outer
    from alexnet_tvm.compile.tuning.database import open_database

    from helpers.records import COMMITTED_LOGS

    name = committed_record_sets("x86-avx2-winograd")[0]
    db = open_database(COMMITTED_LOGS / "x86-avx2-winograd" / name, for_tuning=False)
    bgemm = [r for r in db.get_all_tuning_records() if "bgemm" in r.workload.mod["main"].script()[:4000]]
    assert bgemm
    assert all(batch_outer(r.trace, 16) is None for r in bgemm[:5])


@pytest.mark.slow
def test_from_batch_1_adds_timed_records_at_the_larger_batch(tmp_path, fake_host, run_cli):  # noqa: F811
    """On a host with its own set (the committed one, copied), tune --from-batch-1 at batch 16 times
    the batch-1 schedules here and appends one record per schedule that ran, each of a batch-16
    workload; a build then takes the fastest record per task."""
    from alexnet_tvm.records import RECORDS

    logs = tmp_path / "logs"
    own = copy_committed_records("x86-avx2", logs / "x86-avx2" / "znver2", committed_record_sets("x86-avx2")[0])
    before = (own / RECORDS).read_text().splitlines()
    fake_host("znver2")
    model = _demo(tmp_path)
    res = run_cli("tune", model, "--target", "x86-avx2", "--batch", "16", "--from-batch-1", "--logs-dir", logs)
    assert res.exit_code == 0, res.output
    m = re.search(r"batch 16: timed (\d+) batch-1 schedules of (\d+) tasks", res.output)
    assert m, res.output
    timed, tasks = int(m.group(1)), int(m.group(2))
    assert tasks >= 3 and timed >= tasks
    after = (own / RECORDS).read_text().splitlines()
    assert after[: len(before)] == before and len(after) == len(before) + timed
    assert "0 tuned now, 0 trials" in res.output  # every batch-16 task had records: nothing else ran
    res = run_cli("build", model, "--target", "x86-avx2", "--batch", "16", "--logs-dir", logs, "-o", tmp_path / "art")
    assert res.exit_code == 0, res.output
    tuning = json.loads((tmp_path / "art" / "manifest.json").read_text())["tuning"]
    assert tuning["record_set"] == "znver2" and not tuning.get("untuned")


def test_from_batch_1_is_not_an_adapt_option(tmp_path, run_cli, one_line_error):
    model = tmp_path / "m.pt"
    model.write_bytes(b"not read before the refusal")
    res = run_cli("tune", model, "--adapt", "--from-batch-1", "--target", "x86-avx2")
    one_line_error(res, "--adapt chooses its own tasks and budget; drop --from-batch-1")
