"""The emulated arm64 board (scripts/armboard: a bookworm arm64 chroot under qemu-user) end to end:
a real tracker here, the board registered with it, tune -> cross-compiled build -> verify through RPC.

Slow (the first setup builds a rootfs for minutes; emulated TVM is slow) and root only: run it with
`make test-arm`. Timings measured on this board are qemu's, not ARM's; this test checks correctness.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.cli import CLI, free_port, kill_group
from helpers.models import write_tiny_checkpoint

ROOT = Path(__file__).resolve().parent.parent
ARMBOARD = ROOT / "scripts" / "armboard"
TARGET = "armboard-test"

pytestmark = [pytest.mark.slow, pytest.mark.armboard]


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _targets_file(folder: Path, tracker_port: int) -> Path:
    f = folder / "targets.yaml"
    f.write_text(f"""targets:
  {TARGET}:
    description: the emulated arm64 board; timings are NOT ARM timings
    target: {{"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"], "num-cores": 2}}
    batch_sizes: [1]
    runner: rpc
    rpc: {{tracker: "127.0.0.1:{tracker_port}", key: armboard, session_timeout: 600,
          cross_compiler: aarch64-linux-gnu-g++}}
""")
    return f


@pytest.fixture(scope="module")
def armboard(tmp_path_factory):
    """A tracker on a free port with the emulated board registered under key ``armboard``."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("the emulated arm64 board needs Linux and root (debootstrap, chroot, binfmt_misc)")
    setup = subprocess.run(["bash", str(ARMBOARD), "setup"], capture_output=True, text=True, timeout=3600)
    if setup.returncode != 0:
        pytest.skip(f"scripts/armboard setup cannot run here: {_last_line(setup.stderr or setup.stdout)}")
    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("no aarch64 cross compiler (apt-get install g++-aarch64-linux-gnu)")

    folder = tmp_path_factory.mktemp("armboard")
    tport = free_port()
    tracker = subprocess.Popen(CLI + ["rpc", "tracker", "--port", str(tport)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:  # importing tvm takes a few seconds on a busy machine
            try:
                socket.create_connection(("127.0.0.1", tport), timeout=2).close()
                break
            except OSError:
                assert tracker.poll() is None, "the RPC tracker exited"
                assert time.monotonic() < deadline, "the RPC tracker did not listen within 120 s"
                time.sleep(1)
        start = subprocess.run(["bash", str(ARMBOARD), "start", "--tracker", f"127.0.0.1:{tport}"],
                               capture_output=True, text=True, timeout=400)
        assert start.returncode == 0, start.stdout + start.stderr
        assert "timings are not ARM timings" in start.stdout
        yield folder, _targets_file(folder, tport)
    finally:
        stop = subprocess.run(["bash", str(ARMBOARD), "stop"], capture_output=True, text=True, timeout=120)
        kill_group(tracker)
        assert stop.returncode == 0, stop.stdout + stop.stderr


def test_tune_build_verify_on_the_emulated_arm64_board(armboard):
    folder, targets = armboard
    model = write_tiny_checkpoint(folder / "m", "cifar")
    logs = folder / "logs"
    common = ["--target", TARGET, "--targets-file", str(targets), "--logs-dir", str(logs)]

    r = subprocess.run(CLI + ["tune", str(model), "--batch", "1", "--trials", "4", "--trials-per-task", "2",
                              "--trials-per-round", "2", *common], capture_output=True, text=True, timeout=2400)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = (logs / TARGET / "armboard" / "database_tuning_record.json").read_text().splitlines()  # set: RPC key
    assert len(recs) >= 1  # measured on the board (a qemu measurement, not an ARM one)

    art = folder / "art"
    r = subprocess.run(CLI + ["build", str(model), "-o", str(art), *common], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    elf = (art / "model.so").read_bytes()
    assert elf[:4] == b"\x7fELF" and elf[4] == 2  # 64-bit ELF
    assert int.from_bytes(elf[18:20], "little") == 183  # e_machine EM_AARCH64
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["target"]["runner"] == "rpc" and manifest["tuning"]["tuned"] >= 1

    rep_path = folder / "rep.json"
    r = subprocess.run(CLI + ["verify", str(art), "--against", "pytorch", "--target", TARGET,
                              "--targets-file", str(targets), "--random", "4", "--report", str(rep_path)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    rep = json.loads(rep_path.read_text())
    assert rep["passed"] and rep["random"]["images"] == 4
    assert rep["random"]["max_abs_error"] < 1e-4 and rep["random"]["top1_agreement"] == 1.0

    out = folder / "bench"
    r = subprocess.run(CLI + ["bench", str(model), "--batch", "1", "--runs", "3", "-o", str(out), *common],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    res = json.loads((out / "bench.json").read_text())
    assert res["where"] == "board" and res["emulated"] is True and res["rows"][0]["tvm"]["median_ms"] > 0
    assert "not ARM timings" in r.stdout
