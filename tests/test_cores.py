"""All of the user's cores (issue 29, first part): ``--target auto`` compiles for the cores this
process may use (affinity, cgroup quota), ``--threads N`` for another count, and a library never
runs on more threads than the host lets it have."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.models import write_tiny_checkpoint

CLI = [str(Path(sys.executable).parent / "alexnet-tvm")]


@pytest.mark.parametrize("text,cores", [("max 100000", None), ("150000 100000", 2), ("50000 100000", 1),
                                        ("400000 100000\n", 4), ("garbage", None), ("-1 100000", None)])
def test_cgroup_quota_in_whole_cores(text, cores):
    from alexnet_tvm.host import quota_cores

    assert quota_cores(text) == cores


def test_runtime_threads_never_exceed_the_usable_cores(monkeypatch):
    from alexnet_tvm import host

    monkeypatch.delenv(host.THREADS_ENV, raising=False)
    monkeypatch.setattr(host, "usable_cores", lambda: 3)
    assert host.runtime_threads(16) == 3 and host.runtime_threads(2) == 2
    monkeypatch.setenv(host.THREADS_ENV, "7")  # the user's own setting wins
    assert host.runtime_threads(16) is None


def test_auto_takes_this_process_cores_and_threads_override(monkeypatch):
    from alexnet_tvm import target_choice
    from alexnet_tvm.target_choice import resolve_target

    monkeypatch.setattr(target_choice, "usable_cores", lambda: 5)
    auto = resolve_target("auto")
    assert auto.target["num-cores"] == 5
    assert resolve_target("auto", threads=16).target["num-cores"] == 16
    assert resolve_target("x86-avx2").target["num-cores"] == 2  # a named entry keeps targets.yaml's
    assert resolve_target("x86-avx2", threads=8).target["num-cores"] == 8


def test_threads_refused_for_a_gpu_target(run_cli, one_line_error, tmp_path):
    one_line_error(run_cli("build", tmp_path / "m.pt", "--target", "cuda-sm90", "--threads", "4"),
                   "not a CPU target")
    one_line_error(run_cli("build", tmp_path / "m.pt", "--threads", "0"), "--threads")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("cores") / "m", "cifar")


def _build(ckpt: Path, out: Path, *extra: str, prefix: tuple[str, ...] = ()) -> dict:
    res = subprocess.run([*prefix, *CLI, "build", str(ckpt), "--target", "auto", "-o", str(out),
                          "--logs-dir", str(out.parent / "logs"), *extra], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    cores = manifest["target"]["target"]["num-cores"]
    assert f"for {cores} core" in res.stdout, res.stdout
    return manifest


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_build_under_taskset_compiles_for_one_core(ckpt, tmp_path):
    assert _build(ckpt, tmp_path / "a", prefix=("taskset", "-c", "0"))["target"]["target"]["num-cores"] == 1


def test_build_for_16_cores_runs_here_on_this_hosts_cores(ckpt, tmp_path, run_cli):
    here = _build(ckpt, tmp_path / "here")
    assert here["target"]["target"]["num-cores"] == len(os.sched_getaffinity(0))
    art = tmp_path / "sixteen"
    assert _build(ckpt, art, "--threads", "16")["target"]["target"]["num-cores"] == 16
    probe = ("import os, sys; from alexnet_tvm.runtime.artifact import load_artifact; "
             "load_artifact(sys.argv[1]); print(os.environ['TVM_NUM_THREADS'])")
    env = {k: v for k, v in os.environ.items() if k != "TVM_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", probe, str(art)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) == min(16, len(os.sched_getaffinity(0)))
    res = run_cli("verify", art, "--against", "pytorch", "--random", "4")
    assert res.exit_code == 0, res.stdout
