"""Tuning: resumable after a kill, loud when nothing can be measured, records used by build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alexnet_tvm.recordsets import host_set_name

from helpers.cli import CLI
from helpers.models import TARGET, repo_targets, write_tiny_checkpoint
from helpers.records import record_lines, wait_for_records



_records = record_lines


def _record_file(db: Path) -> Path:
    return sorted(Path(db).rglob("database_tuning_record.json"))[0]


def _tune_cmd(model: Path, logs: Path, trials: int = 60) -> list[str]:
    return CLI + ["tune", str(model), "--target", TARGET, "--batch", "1", "--trials", str(trials),
                  "--trials-per-task", "2", "--trials-per-round", "2", "--logs-dir", str(logs)]


@pytest.mark.slow
def test_killed_tune_keeps_records_and_resumes(tmp_path):
    """The one subprocess tune: SIGKILL mid-run (the run and its workers), then a re-run resumes
    from the records on disk, keeps them as they were, and a third run has nothing left to do.
    Slow (make test-all, CI): each tune process spends ~80 s starting its builder and runner
    workers here before the first candidate."""
    from alexnet_tvm.compile.build import BuildConfig, build
    from alexnet_tvm.compile.tuning.plan import TuneConfig
    from alexnet_tvm.compile.tuning.tune import tune
    from alexnet_tvm.records import database_digest

    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    logs = tmp_path / "logs"
    db = logs / TARGET / host_set_name()  # this host's record set
    cmd = _tune_cmd(model, logs, trials=6) + ["--only", "max_pool"]  # 3 small tasks: quick builds
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_records(db, 2, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its builder/runner workers
        proc.wait()
    kept_lines = _record_file(db).read_text().split("\n")[:-1]  # complete lines only
    assert kept_lines

    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = [ln for ln in res.stdout.splitlines() if "already tuned" in ln][0]
    assert int(summary.split(" already tuned")[0].split(", ")[-1]) >= 1, summary
    after = _records(db)
    assert after[: len(kept_lines)] == kept_lines, "records from the killed run were lost or rewritten"
    assert len(after) > len(kept_lines)

    # Every chosen task has a record now: a third run (in-process) has nothing to do, and build uses them.
    again = tune(TuneConfig(model=model, target=repo_targets()[TARGET], logs_dir=logs, total_trials=6,
                            trials_per_task=2, only=("max_pool",)))
    assert (again.tuned_now, again.trials, again.already_tuned) == (0, 0, 3)
    r = build(BuildConfig(model=model, target=repo_targets()[TARGET], out=tmp_path / "art", logs_dir=logs))
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["tuning"]["tuned"] == 3 and not [t for t in r.untuned if t.startswith("max_pool")]
    assert manifest["tuning"]["digest"] == database_digest(_record_file(db).parent)


def test_only_that_matches_no_task_is_refused_before_tuning(tmp_path, run_cli, one_line_error):
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    one_line_error(run_cli(*_tune_cmd(model, tmp_path / "logs")[3:], "--only", "winograd"),
                   "--only winograd: no task matches")
    assert not _records(tmp_path / "logs" / TARGET / host_set_name())


@pytest.mark.slow
def test_extend_fresh_and_only_spend_trials_where_asked(tmp_path):
    """The other tune flags, in-process on one log: --extend adds trials to tuned tasks, --fresh
    replaces this model's records (records timed elsewhere must not win), --only picks tasks."""
    from alexnet_tvm.compile.tuning.plan import TuneConfig
    from alexnet_tvm.compile.tuning.tune import tune

    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    logs = tmp_path / "logs"
    db = logs / TARGET / host_set_name()  # this host's record set

    def run(**kw):
        return tune(TuneConfig(model=model, target=repo_targets()[TARGET], logs_dir=logs, trials_per_task=2,
                               trials_per_round=2, **{"total_trials": 30, **kw}))

    first = run()
    assert first.tuned_now == first.tasks and first.trials > 0
    done = _records(db)
    extended = run(total_trials=6, extend=True)
    assert extended.trials == 6 and len(_records(db)) > len(done)

    before = {json.dumps(json.loads(ln)[1]) for ln in _records(db)}
    n_workloads = len({json.loads(ln)[0] for ln in _records(db)})
    fresh = run(fresh=True)
    assert fresh.already_tuned == 0
    after = _records(db)
    assert len({json.loads(ln)[0] for ln in after}) == n_workloads
    assert not {json.dumps(json.loads(ln)[1]) for ln in after} & before, "old records survived --fresh"
    assert not (logs / ".fresh" / TARGET).exists()  # every task has a fresh record: scratch removed

    only = run(total_trials=6, extend=True, only=("matmul",))
    assert only.reports and all(r.name.startswith("fused_matmul") for r in only.reports), only.reports


def _round(callback, n: int, valid: int, secs: float = 1e-3):
    from types import SimpleNamespace as NS

    builders = [NS(error_msg=None) for _ in range(n)]
    runners = [NS(error_msg=None, run_secs=[secs]) if i < valid else NS(error_msg="LocalRunner: timeout", run_secs=None)
               for i in range(n)]
    callback._inst.apply(None, 0, [object()] * n, builders, runners)


def test_round_without_valid_measurement_fails_loudly():
    """The progress callback is where a silently failing tuner is caught (unit level: the
    integration path restarts a builder worker per timed-out candidate and takes minutes)."""
    from tqdm import tqdm

    from alexnet_tvm.compile.tuning.tune import TaskReport, TuningError, _progress_callback

    reports = [TaskReport("fused_conv2d", 1)]
    stop: dict = {}
    cb = _progress_callback(reports, tqdm(disable=True), None, stop)
    _round(cb, 4, valid=1, secs=2e-3)  # one valid candidate of four is fine
    assert reports[0].trials == 4 and reports[0].best_ms == pytest.approx(2.0)
    with pytest.raises(TuningError, match="fused_conv2d: a round of 3 candidates gave no valid measurement"):
        _round(cb, 3, valid=0)
    assert isinstance(stop["error"], TuningError) and "LocalRunner: timeout" in str(stop["error"])


def test_a_round_past_the_deadline_stops_the_run_as_a_budget_end():
    """The budget rule at unit level: the round that crosses the deadline is the last."""
    from tqdm import tqdm

    from alexnet_tvm.compile.tuning.tune import TaskReport, _BudgetSpent, _progress_callback

    reports = [TaskReport("fused_conv2d", 1)]
    stop: dict = {}
    _round(_progress_callback(reports, tqdm(disable=True), time.monotonic() + 3600, stop), 2, valid=2)
    assert reports[0].trials == 2 and "budget" not in stop  # before the deadline: goes on
    with pytest.raises(_BudgetSpent):
        _round(_progress_callback(reports, tqdm(disable=True), time.monotonic() - 1, stop), 2, valid=2)
    assert stop["budget"] is True and reports[0].trials == 4  # the crossing round still counts


def test_a_round_that_would_end_past_the_deadline_is_not_started():
    """With 0.5 s left and rounds that take 0.3 s, the run stops after the round that leaves less
    than one round's time (the first round, which starts the workers, sets no estimate)."""
    from tqdm import tqdm

    from alexnet_tvm.compile.tuning.tune import TaskReport, _BudgetSpent, _progress_callback

    reports = [TaskReport("fused_conv2d", 1)]
    stop: dict = {}
    cb = _progress_callback(reports, tqdm(disable=True), time.monotonic() + 0.5, stop)
    _round(cb, 2, valid=2)
    time.sleep(0.05)
    _round(cb, 2, valid=2)  # 0.05 s rounds: 0.45 s left is room for another
    assert not stop.get("budget")
    time.sleep(0.3)
    with pytest.raises(_BudgetSpent):
        _round(cb, 2, valid=2)  # 0.15 s left, rounds up to 0.3 s
    assert stop["budget"] is True and reports[0].trials == 6 and max(stop["rounds"]) >= 0.3


@pytest.mark.slow
def test_time_budget_stops_after_the_round_and_keeps_records(tmp_path):
    from alexnet_tvm.compile.tuning.plan import TuneConfig
    from alexnet_tvm.compile.tuning.tune import tune

    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    res = tune(TuneConfig(model=model, target=repo_targets()[TARGET], logs_dir=tmp_path / "logs", total_trials=40,
                          trials_per_task=4, trials_per_round=2, time_budget=0.001))
    assert res.stopped_by_budget
    assert 0 < res.trials < 40
    assert len(_records(tmp_path / "logs" / TARGET / host_set_name())) >= 1


def _child_tvm_threads() -> int:
    """Threads the TVM runtime uses in a process started now (as the runner's workers are)."""
    code = "import tvm; tvm.get_global_func('runtime.NumThreads')(); print(tvm.get_global_func('runtime.NumThreads')())"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              timeout=120).stdout.strip())


class _Stop(Exception):
    pass


def test_runner_workers_measure_with_the_targets_cores(tmp_path, monkeypatch):
    """TVM alone runs half the logical CPUs on x86; candidates measured that way lose their
    parallel loops. The runner's workers must see the target's num-cores, and the variable is
    put back afterwards."""
    from alexnet_tvm.compile.tuning import tune as tune_mod

    monkeypatch.delenv("TVM_NUM_THREADS", raising=False)
    seen = {}

    def spy(spec):
        seen["threads"] = _child_tvm_threads()
        raise _Stop()

    monkeypatch.setattr(tune_mod, "make_runner", spy)
    spec = repo_targets()[TARGET]
    with pytest.raises(_Stop):
        tune_mod.tune(tune_mod.TuneConfig(model=write_tiny_checkpoint(tmp_path / "m", "cifar"), target=spec,
                                          logs_dir=tmp_path / "logs", total_trials=4))
    assert seen["threads"] == min(spec.target["num-cores"], os.cpu_count())
    assert "TVM_NUM_THREADS" not in os.environ


def test_cpu_candidates_are_timed_with_cold_weights():
    """In the model no layer finds its weights in cache (the FC layers stream 234 MB through
    L3), so local CPU candidates are timed one cold run at a time; remote boards and GPUs
    keep warm repeats (the flush is an x86 CPU routine)."""
    from alexnet_tvm.compile.tuning.measure import evaluator_config

    targets = repo_targets()
    cold = evaluator_config(targets[TARGET])
    assert cold.enable_cpu_cache_flush and cold.number == 1 and cold.repeat >= 3 and cold.min_repeat_ms == 0
    for name in ("armboard", "cuda-sm90"):
        assert not evaluator_config(targets[name]).enable_cpu_cache_flush, name


def test_the_budget_stop_collects_every_other_round_in_flight():
    """MetaSchedule collects a task's round only when it picks the task again: before the budget
    ends a run, every other task's round in flight is collected (its records reach the database),
    once, even though collecting calls the same callback again."""
    from alexnet_tvm.compile.tuning.tune import _join_the_others

    joined: list[int] = []
    stop: dict = {}

    class Scheduler:
        def join_running_task(self, task_id: int) -> None:
            joined.append(task_id)
            if task_id == 2:
                raise RuntimeError("nothing in flight")  # MetaSchedule's ICHECK, as Python sees it
            _join_the_others(self, task_id, 5, stop)  # the callback again, inside the join: a no-op

    _join_the_others(Scheduler(), 1, 5, stop)
    assert joined == [0, 2, 3, 4] and stop["joining"]
    _join_the_others(Scheduler(), 3, 5, stop)
    assert joined == [0, 2, 3, 4]
