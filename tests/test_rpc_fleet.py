"""RPC tuning on a board fleet: one runner worker per free board under the key, and a board lost
mid-tune fails only its own candidates. Real tracker and two `rpc server` boards on 127.0.0.1."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from helpers.cli import CLI, free_port, kill_group
from helpers.models import write_tiny_checkpoint
from helpers.records import short_tune, wait_for_records


# -- cheap: the fleet's bookkeeping and the --boards option ---------------------------------------


def _fleet(registered: int = 2):
    from alexnet_tvm.compile.tuning.fleet import Fleet
    from alexnet_tvm.targets import RPCConfig

    return Fleet(RPCConfig("127.0.0.1:9190", "pair"), boards=registered, free=registered, registered=registered)


def test_a_round_lost_to_one_board_goes_on_while_another_is_left():
    from alexnet_tvm.interface.tune_report import lost_line

    fleet = _fleet(2)
    lost = "RPCRunner: An exception occurred\nRPCError: board 10.0.0.7:9091 under key 'pair' lost: left tracker x"
    assert fleet.note_round([]) is False  # a round without failures is not "lost only"
    assert fleet.note_round([lost]) is True
    assert fleet.note_round([lost, "RPCRunner: Timeout"]) is False  # another cause: the old rule stands
    assert fleet.lost == {"10.0.0.7:9091": 2}
    other = lost.replace("10.0.0.7", "10.0.0.8")
    assert fleet.note_round([other]) is False  # both boards gone: nothing left to measure on
    assert lost_line(fleet) == ("boards lost: 2 of 2 under key 'pair': 10.0.0.7:9091 (2 candidates failed), "
                                 "10.0.0.8:9091 (1 candidate failed)")
    assert lost_line(_fleet(1)) is None


def test_first_line_counts_the_boards_and_the_cap():
    from alexnet_tvm.compile.tuning.fleet import Fleet
    from alexnet_tvm.rpc_session import board_registered, registered_boards
    from alexnet_tvm.targets import RPCConfig

    assert Fleet(RPCConfig("h:1", "k"), 2, 2, 2).first_line() == \
        "measuring on 2 boards under key 'k' at tracker h:1 (2 free of 2 registered)"
    assert Fleet(RPCConfig("h:1", "k"), 1, 3, 4, cap=1).first_line() == \
        "measuring on 1 board under key 'k' at tracker h:1 (3 free of 4 registered, capped by --boards 1)"
    summary = {"server_info": [{"key": "server:k", "addr": ["127.0.0.1", 9091]}, {"key": "server:j", "addr": ["a", 1]},
                               {"key": "server:k", "addr": ["127.0.0.1", 9092]}]}
    assert registered_boards(summary, "k") == ["127.0.0.1:9091", "127.0.0.1:9092"]
    assert board_registered(summary, "j") and not board_registered(summary, "x")


def test_a_step_past_the_board_deadline_loses_the_board(monkeypatch):
    from alexnet_tvm.compile.tuning import fleet
    from alexnet_tvm.errors import RPCError

    monkeypatch.setattr(fleet, "HANG_GRACE_S", 0.0)
    where = fleet._Where("127.0.0.1:9", "pair", "127.0.0.1", free_port(), timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(RPCError) as e:
        where.run("run", lambda: time.sleep(30))
    assert time.monotonic() - t0 < 10 and where.lost
    assert fleet.lost_board(str(e.value)) == "127.0.0.1:9" and "hung" in str(e.value)
    # a failure while the tracker cannot be asked is the candidate's, not a lost board
    where = fleet._Where("127.0.0.1:9", "pair", "127.0.0.1", free_port(), timeout=30)
    with pytest.raises(RPCError) as e:
        where.run("run", lambda: 1 / 0)
    assert fleet.lost_board(str(e.value)) is None and "ZeroDivisionError" in str(e.value) and not where.lost


def test_boards_option_is_checked(tmp_path, run_cli, one_line_error):
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    one_line_error(run_cli("tune", model, "--boards", "0", "--logs-dir", tmp_path / "l"), "--boards")
    one_line_error(run_cli("tune", model, "--target", "x86-avx2", "--boards", "2", "--logs-dir", tmp_path / "l"),
                   "--boards", "this machine")


# -- slow: two real boards on loopback --------------------------------------------------------------


def _status(tport: int) -> str:
    return subprocess.run(CLI + ["rpc", "status", "--tracker", f"127.0.0.1:{tport}"], capture_output=True,
                          text=True, timeout=60).stdout


class _Boards:
    """A tracker and two boards under one key, each board logging its sessions to a file."""

    def __init__(self, folder: Path, key: str):
        self.folder, self.key = folder, key
        self.tport = free_port()
        self.procs: list = []
        self.logs: list[Path] = []
        self.ports: list[int] = []

    def start(self) -> None:
        self.procs.append(subprocess.Popen(CLI + ["rpc", "tracker", "--port", str(self.tport)], start_new_session=True,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for i in range(2):
            log, port = self.folder / f"board{i}.log", free_port()
            with log.open("w") as out:
                self.procs.append(subprocess.Popen(
                    CLI + ["rpc", "server", "--tracker", f"127.0.0.1:{self.tport}", "--key", self.key,
                           "--port", str(port)], start_new_session=True, stdout=out, stderr=subprocess.STDOUT))
            self.logs.append(log)
            self.ports.append(port)
        deadline = time.monotonic() + 180  # the servers retry the tracker every 5 s until it is up
        status = ""
        while time.monotonic() < deadline:
            status = _status(self.tport)
            if re.search(rf"{self.key}\s+free 2", status):
                return
            time.sleep(1)
        raise AssertionError(f"two boards never came up: {status!r}")

    def sessions(self) -> list[int]:
        """Per board, the sessions it served (TVM's server logs one "connected from" each)."""
        return [log.read_text().count("connected from") for log in self.logs]

    def stop(self) -> None:
        for p in self.procs:
            kill_group(p)

    def targets(self) -> Path:
        f = self.folder / "targets.yaml"
        f.write_text(f"""targets:
  x86-pair:
    target: {{"kind": "llvm", "mcpu": "haswell", "num-cores": 2}}
    runner: rpc
    rpc: {{tracker: "127.0.0.1:{self.tport}", key: {self.key}, session_timeout: 60}}
""")
        return f


@pytest.fixture
def two_boards(tmp_path):
    boards = _Boards(tmp_path, "pair")
    try:
        boards.start()
        yield boards
    finally:
        boards.stop()


@pytest.mark.slow  # a short tune on two loopback boards, then build and verify (~4 min on 2 cores)
def test_tune_measures_on_both_boards_and_its_records_build_and_verify(two_boards, tmp_path):
    targets = two_boards.targets()
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    logs = tmp_path / "logs"
    common = ["--target", "x86-pair", "--targets-file", str(targets), "--logs-dir", str(logs)]
    r = short_tune(CLI, model, "x86-pair", targets, logs)
    assert r.returncode == 0, r.stderr[-2000:]
    first = r.stderr.strip().splitlines()[0]
    assert "measuring on 2 boards under key 'pair'" in first, first
    sessions = two_boards.sessions()
    assert all(n >= 1 for n in sessions) and sum(sessions) >= 8, sessions  # one session per trial, both boards
    assert "boards lost" not in r.stdout
    recs = (logs / "x86-pair" / "pair" / "database_tuning_record.json").read_text().splitlines()
    assert len(recs) >= 2
    art = tmp_path / "art"
    r = subprocess.run(CLI + ["build", str(model), "-o", str(art), *common], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((art / "manifest.json").read_text())["tuning"]["tuned"] >= 1
    r = subprocess.run(CLI + ["verify", str(art), "--against", "pytorch", "--target", "x86-pair", "--targets-file",
                              str(targets), "--report", str(tmp_path / "rep.json")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert rep["passed"] and rep["random"]["max_abs_error"] < 1e-4


@pytest.mark.slow  # kills one of two boards mid-tune (~4 min on 2 cores)
def test_a_board_killed_mid_tune_takes_only_its_candidates(two_boards, tmp_path):
    targets = two_boards.targets()
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    logs = tmp_path / "logs"
    db = logs / "x86-pair" / "pair" / "database_tuning_record.json"
    tune = subprocess.Popen(CLI + ["tune", str(model), "--batch", "1", "--target", "x86-pair", "--targets-file",
                                   str(targets), "--logs-dir", str(logs), "--trials", "24", "--trials-per-task", "4",
                                   "--trials-per-round", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        kept = wait_for_records(db, 2, tune)
        victim, survivor = two_boards.procs[1], two_boards.procs[2]  # boards 0 and 1 (0 is the tracker)
        kill_group(victim)
        at_kill = two_boards.sessions()[1]
        out, err = tune.communicate(timeout=900)  # bounded: the run must end by itself
    finally:
        if tune.poll() is None:
            kill_group(tune)
    assert survivor.poll() is None
    assert tune.returncode == 0, err[-3000:]
    assert two_boards.sessions()[1] > at_kill  # the other board went on measuring
    recs = db.read_text().splitlines()
    assert recs[: len(kept)] == kept and len(recs) > len(kept)  # records intact, and more after the loss
    last = out.strip().splitlines()[-1]  # the tune ends with the boards it lost
    assert re.fullmatch(rf"boards lost: 1 of 2 under key 'pair': 127\.0\.0\.1:{two_boards.ports[0]} "
                        r"\(\d+ candidates? failed\)", last), last
