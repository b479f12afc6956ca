"""RPC: a real tracker and a real x86 server on 127.0.0.1, tune -> build -> verify through them;
cross-compiled aarch64 and CUDA libraries built on this GPU-less machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers.cli import CLI, free_port, kill_group
from helpers.models import write_tiny_checkpoint
from helpers.records import short_tune, wait_for_records


def _targets_file(folder: Path, tracker_port: int, key: str = "local") -> Path:
    f = folder / "targets.yaml"
    f.write_text(f"""targets:
  x86-rpc:
    target: {{"kind": "llvm", "mcpu": "haswell", "num-cores": 2}}
    runner: rpc
    rpc: {{tracker: "127.0.0.1:{tracker_port}", key: {key}, session_timeout: 60}}
  nobody-home:
    target: {{"kind": "llvm", "num-cores": 2}}
    runner: rpc
    rpc: {{tracker: "127.0.0.1:{free_port()}", key: local}}
""")
    return f


@pytest.fixture(scope="module")
def rpc_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rpc")
    tport, sport = free_port(), free_port()
    procs = [subprocess.Popen(CLI + ["rpc", "tracker", "--port", str(tport)], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(2)
    procs.append(subprocess.Popen(CLI + ["rpc", "server", "--tracker", f"127.0.0.1:{tport}", "--key", "local",
                                        "--port", str(sport)], start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 120
    status = ""
    while time.monotonic() < deadline:
        r = subprocess.run(CLI + ["rpc", "status", "--tracker", f"127.0.0.1:{tport}"], capture_output=True, text=True)
        status = r.stdout
        if "local" in status and "free 1" in status:
            break
        time.sleep(2)
    assert "free 1" in status, status
    yield folder, _targets_file(folder, tport), procs
    for p in procs:
        kill_group(p)


@pytest.mark.slow
def test_tune_build_verify_through_rpc(rpc_env):
    folder, targets, _ = rpc_env
    model = write_tiny_checkpoint(folder / "m", "cifar")
    logs = folder / "logs"
    common = ["--target", "x86-rpc", "--targets-file", str(targets), "--logs-dir", str(logs)]
    r = short_tune(CLI, model, "x86-rpc", targets, logs)
    assert r.returncode == 0, r.stderr[-2000:]
    recs = (logs / "x86-rpc" / "local" / "database_tuning_record.json").read_text().splitlines()  # set: RPC key
    assert len(recs) >= 2
    art = folder / "art"
    r = subprocess.run(CLI + ["build", str(model), "-o", str(art), *common], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["target"]["runner"] == "rpc" and manifest["tuning"]["tuned"] >= 1
    r = subprocess.run(CLI + ["verify", str(art), "--against", "pytorch", "--target", "x86-rpc",
                              "--targets-file", str(targets), "--report", str(folder / "rep.json")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    rep = json.loads((folder / "rep.json").read_text())
    assert rep["passed"] and rep["random"]["max_abs_error"] < 1e-4


@pytest.mark.slow  # builds and times two batch sizes over RPC (~70 s on the Xeon)
def test_bench_times_the_library_on_the_board(rpc_env, tmp_path):
    _, targets, _ = rpc_env
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    out = tmp_path / "bench"
    r = subprocess.run(CLI + ["bench", str(model), "--target", "x86-rpc", "--targets-file", str(targets),
                              "--logs-dir", str(tmp_path / "logs"), "--batch", "1,2", "--runs", "5", "-o", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    res = json.loads((out / "bench.json").read_text())
    assert res["where"] == "board" and res["emulated"] is False
    assert [row["batch"] for row in res["rows"]] == [1, 2]
    for row in res["rows"]:
        t = row["tvm"]
        assert t["runs"] == 5 and 0 < t["p10_ms"] <= t["median_ms"] <= t["p90_ms"]
        assert "pytorch" not in row and "speedup_vs_pytorch" not in row  # no cross-machine ratio
    assert "board 'local'" in (out / "bench.md").read_text()


def test_unreachable_tracker_and_unknown_key(rpc_env, tmp_path):
    folder, targets, _ = rpc_env
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    t0 = time.monotonic()
    r = subprocess.run(CLI + ["tune", str(model), "--target", "nobody-home", "--targets-file", str(targets),
                              "--logs-dir", str(tmp_path / "logs"), "--trials", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "unreachable" in r.stderr.strip().splitlines()[-1], r.stderr
    assert time.monotonic() - t0 < 120
    text = targets.read_text().replace("key: local, session", "key: nosuchboard, session")
    other = tmp_path / "targets.yaml"
    other.write_text(text)
    r = subprocess.run(CLI + ["tune", str(model), "--target", "x86-rpc", "--targets-file", str(other),
                              "--logs-dir", str(tmp_path / "logs"), "--trials", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "nosuchboard" in r.stderr.strip().splitlines()[-1], r.stderr


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None, reason="no aarch64 cross compiler")
def test_cross_compiled_aarch64_artifact(tmp_path, run_cli):
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    res = run_cli("build", model, "--target", "rpi4-aarch64", "-o", tmp_path / "arm", "--logs-dir", tmp_path / "l")
    assert res.exit_code == 0, res.output
    elf = (tmp_path / "arm" / "model.so").read_bytes()
    assert elf[:4] == b"\x7fELF"
    assert int.from_bytes(elf[18:20], "little") == 183  # e_machine EM_AARCH64
    manifest = json.loads((tmp_path / "arm" / "manifest.json").read_text())
    assert manifest["prepacked_params"] is True  # repacked on the host, the board only runs main


def test_cuda_library_builds_without_a_gpu(tmp_path, run_cli):
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    res = run_cli("build", model, "--target", "cuda-sm90", "-o", tmp_path / "cu", "--logs-dir", tmp_path / "l")
    assert res.exit_code == 0, res.output
    lib = (tmp_path / "cu" / "model.so").read_bytes()
    assert b"cuda" in lib and b"_kernel" in lib  # device kernels embedded for the CUDA module
    manifest = json.loads((tmp_path / "cu" / "manifest.json").read_text())
    assert manifest["target"]["kind"] == "cuda"


def test_cuda_tune_without_gpu_says_so(tmp_path, run_cli, one_line_error):
    import tvm

    if tvm.cuda(0).exist:
        pytest.skip("this machine has a GPU")
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    one_line_error(run_cli("tune", model, "--target", "cuda-sm90", "--logs-dir", tmp_path / "l"), "no", "GPU")
    one_line_error(run_cli("bench", model, "--target", "cuda-sm90", "--logs-dir", tmp_path / "l",
                           "-o", tmp_path / "b"), "GPU")



@pytest.mark.slow
def test_board_killed_mid_tune_fails_clearly_and_keeps_records(rpc_env, tmp_path):
    folder, targets, _ = rpc_env
    tport = int(targets.read_text().split('tracker: "127.0.0.1:')[1].split('"')[0])
    victim = subprocess.Popen(CLI + ["rpc", "server", "--tracker", f"127.0.0.1:{tport}", "--key", "victim",
                                     "--port", str(free_port())], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    other = tmp_path / "targets.yaml"
    other.write_text(targets.read_text().replace("key: local, session_timeout: 60", "key: victim, session_timeout: 20"))
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    logs = tmp_path / "logs"
    db = logs / "x86-rpc" / "victim" / "database_tuning_record.json"  # record set: the RPC key
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = subprocess.run(CLI + ["rpc", "status", "--tracker", f"127.0.0.1:{tport}"], capture_output=True, text=True)
        if "victim" in r.stdout:
            break
        time.sleep(2)
    tune = subprocess.Popen(CLI + ["tune", str(model), "--target", "x86-rpc", "--targets-file", str(other),
                                   "--logs-dir", str(logs), "--trials", "60", "--trials-per-task", "6",
                                   "--trials-per-round", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        kept = wait_for_records(db, 2, tune, seconds=1200)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        _, err = tune.communicate(timeout=600)  # bounded: the run must end by itself
    finally:
        for p in (tune, victim):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    last = err.strip().splitlines()[-1]
    assert tune.returncode == 2 and last.startswith("error:") and "no valid measurement" in last, err[-1500:]
    assert "victim" in last and "left tracker" in last, last  # the cause is named
    assert db.read_text().splitlines()[: len(kept)] == kept  # nothing lost: a re-run resumes from here
