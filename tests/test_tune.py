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

from test_compile import TARGET, _targets, _tiny_checkpoint

CLI = [sys.executable, "-m", "alexnet_tvm.cli.main"]


def _records(db: Path) -> list[str]:
    p = db / "database_tuning_record.json"
    return p.read_text().splitlines() if p.exists() else []


def _tune_cmd(model: Path, logs: Path, trials: int = 60) -> list[str]:
    return CLI + ["tune", str(model), "--target", TARGET, "--batch", "1", "--trials", str(trials),
                  "--trials-per-task", "3", "--trials-per-round", "3", "--logs-dir", str(logs)]


def test_killed_tune_keeps_records_and_resumes(tmp_path):
    model = _tiny_checkpoint(tmp_path / "m", "cifar")
    logs = tmp_path / "logs"
    db = logs / TARGET
    proc = subprocess.Popen(_tune_cmd(model, logs), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 400
    try:
        while len(_records(db)) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
        assert len(_records(db)) >= 3, "no records appeared before the kill"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its builder/runner workers
        proc.wait()
    kept = (db / "database_tuning_record.json").read_text()
    kept_lines = [ln for ln in kept.split("\n")[:-1]]  # complete lines only
    assert kept_lines

    res = subprocess.run(_tune_cmd(model, logs), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = [ln for ln in res.stdout.splitlines() if "already tuned" in ln][0]
    already = int(summary.split(" already tuned")[0].split(", ")[-1])
    assert already >= 1, summary
    after = _records(db)
    assert after[: len(kept_lines)] == kept_lines, "records from the killed run were lost or rewritten"
    assert len(after) > len(kept_lines)

    # The budget covered every task: a third run has nothing to do and says so.
    res3 = subprocess.run(_tune_cmd(model, logs), capture_output=True, text=True, timeout=600)
    assert res3.returncode == 0
    assert "0 tuned now, 0 trials" in res3.stdout
    done = _records(db)

    # --extend spends more trials on tasks that already have records, and adds to the log.
    res4 = subprocess.run(_tune_cmd(model, logs, trials=6) + ["--extend"], capture_output=True, text=True,
                          timeout=600)
    assert res4.returncode == 0, res4.stderr[-2000:]
    summary = [ln for ln in res4.stdout.splitlines() if "already tuned" in ln][0]
    assert int(summary.split(" trials in ")[0].split(", ")[-1]) == 6, summary
    assert len(_records(db)) > len(done)

    # build uses the records: every task tuned, manifest says so, and the digest matches.
    from alexnet_tvm.compile.build import BuildConfig, build
    from alexnet_tvm.records import database_digest

    r = build(BuildConfig(model=model, target=_targets()[TARGET], out=tmp_path / "art", logs_dir=logs))
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert r.untuned == [] and manifest["tuning"]["tuned"] == manifest["tuning"]["tasks"] > 0
    assert manifest["tuning"]["digest"] == database_digest(db)

    # --fresh re-tunes from an empty log and the new records replace the old ones per workload
    # (records timed on another machine must not win the best-record choice).
    before = {json.dumps(json.loads(ln)[1]) for ln in _records(db)}
    n_workloads = len({json.loads(ln)[0] for ln in _records(db)})
    res5 = subprocess.run(_tune_cmd(model, logs) + ["--fresh"], capture_output=True, text=True, timeout=900)
    assert res5.returncode == 0, res5.stderr[-2000:]
    assert ", 0 already tuned," in res5.stdout, res5.stdout
    after = _records(db)
    assert len({json.loads(ln)[0] for ln in after}) == n_workloads
    assert not {json.dumps(json.loads(ln)[1]) for ln in after} & before, "old records survived --fresh"
    assert not (logs / ".fresh" / TARGET).exists()  # every task has a fresh record: scratch removed

    # --only puts the trials where the user wants them (here the FC layers), and nothing else runs.
    res6 = subprocess.run(_tune_cmd(model, logs, trials=6) + ["--extend", "--only", "matmul"], capture_output=True,
                          text=True, timeout=600)
    assert res6.returncode == 0, res6.stderr[-2000:]
    report = res6.stdout.split("speedup", 1)[1].strip().splitlines()
    assert report and all(ln.startswith("fused_matmul") for ln in report), res6.stdout
    res7 = subprocess.run(_tune_cmd(model, logs) + ["--only", "winograd"], capture_output=True, text=True,
                          timeout=600)
    assert res7.returncode == 2 and "--only winograd: no task matches" in res7.stderr, res7.stderr[-500:]


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

    from alexnet_tvm.compile.tune import TaskReport, TuningError, _progress_callback

    reports = [TaskReport("fused_conv2d", 1)]
    stop: dict = {}
    cb = _progress_callback(reports, tqdm(disable=True), None, stop)
    _round(cb, 4, valid=1, secs=2e-3)  # one valid candidate of four is fine
    assert reports[0].trials == 4 and reports[0].best_ms == pytest.approx(2.0)
    with pytest.raises(TuningError, match="fused_conv2d: a round of 3 candidates gave no valid measurement"):
        _round(cb, 3, valid=0)
    assert isinstance(stop["error"], TuningError) and "LocalRunner: timeout" in str(stop["error"])


def test_time_budget_stops_after_the_round_and_keeps_records(tmp_path):
    from alexnet_tvm.compile.tune import TuneConfig, tune

    model = _tiny_checkpoint(tmp_path / "m", "cifar")
    res = tune(TuneConfig(model=model, target=_targets()[TARGET], logs_dir=tmp_path / "logs", total_trials=40,
                          trials_per_task=4, trials_per_round=2, time_budget=0.001))
    assert res.stopped_by_budget
    assert 0 < res.trials < 40
    assert len(_records(tmp_path / "logs" / TARGET)) >= 1


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
    from alexnet_tvm.compile import tune as tune_mod

    monkeypatch.delenv("TVM_NUM_THREADS", raising=False)
    seen = {}

    def spy(spec):
        seen["threads"] = _child_tvm_threads()
        raise _Stop()

    monkeypatch.setattr(tune_mod, "_make_runner", spy)
    spec = _targets()[TARGET]
    with pytest.raises(_Stop):
        tune_mod.tune(tune_mod.TuneConfig(model=_tiny_checkpoint(tmp_path / "m", "cifar"), target=spec,
                                          logs_dir=tmp_path / "logs", total_trials=4))
    assert seen["threads"] == min(spec.target["num-cores"], os.cpu_count())
    assert "TVM_NUM_THREADS" not in os.environ


def test_cpu_candidates_are_timed_with_cold_weights():
    """In the model no layer finds its weights in cache (the FC layers stream 234 MB through
    L3), so local CPU candidates are timed one cold run at a time; remote boards and GPUs
    keep warm repeats (the flush is an x86 CPU routine)."""
    from alexnet_tvm.compile.tune import evaluator_config

    targets = _targets()
    cold = evaluator_config(targets[TARGET])
    assert cold.enable_cpu_cache_flush and cold.number == 1 and cold.repeat >= 3 and cold.min_repeat_ms == 0
    for name in ("armboard", "cuda-sm90"):
        assert not evaluator_config(targets[name]).enable_cpu_cache_flush, name
