"""Tuning on every board under one tracker key.

MetaSchedule's RPCRunner measures one candidate per worker process, and each worker asks the
tracker for a board per candidate; TVM's tracker hands the boards that share a key out in turn.
So a tune gets one runner worker per board free under the key when it starts (``--boards N``
caps it), and :class:`Fleet` says so in the tune's first line.

The worker's steps on a board (``board_*`` below, which :func:`make_rpc_runner` passes to the
RPCRunner) each run within the board's session timeout and name the board they ran on. A board that dies (the tracker drops it)
or hangs (no reply by its session timeout plus :data:`HANG_GRACE_S`; the server itself ends a
session at its timeout, so a live board has answered by then) fails the one candidate it held
with a "board HOST:PORT under key K lost: ..." message; the tune's progress callback hands each
round's failures to :meth:`Fleet.note_round`, which counts them per board and lets the tune go on
while a board is left. The others keep measuring; the tune's report names the boards lost
(:func:`alexnet_tvm.interface.tune_report.lost_line`).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

from alexnet_tvm.errors import RPCError
from alexnet_tvm.rpc_session import (call_within, free_boards, last_line, open_session, registered_boards,
                                     tracker_summary)
from alexnet_tvm.targets import RPCConfig, TargetSpec

from .rpc import check_board

log = logging.getLogger(__name__)

#: seconds past its session timeout after which a board that has not answered is taken for hung
HANG_GRACE_S = 15.0
#: seconds a failed step waits for the tracker to drop a board that died under it
DROP_WAIT_S = 3.0

_LOST = re.compile(r"board (\S+) under key '[^']*' lost: ")


def lost_board(error: str) -> str | None:
    """The board a failed measurement names as lost (died or hung), else None."""
    m = _LOST.search(str(error))
    return m.group(1) if m else None


@dataclass
class Fleet:
    """The boards a tune measures on, and those it lost."""

    #: the target's tracker and key
    rpc: RPCConfig
    #: boards measured on at once: one runner worker each
    boards: int
    free: int
    registered: int
    cap: int | None = None
    #: ``host:port`` of the boards registered when the tune started
    at_start: list[str] = field(default_factory=list)
    #: board -> candidates that failed with it
    lost: dict[str, int] = field(default_factory=dict)

    def first_line(self) -> str:
        """The tune's first line, logged when the fleet is planned (:func:`plan_fleet`)."""
        capped = f", capped by --boards {self.cap}" if self.cap is not None and self.cap < self.free else ""
        return (f"measuring on {self.boards} board{'s' if self.boards != 1 else ''} under key {self.rpc.key!r} at "
                f"tracker {self.rpc.tracker} ({self.free} free of {self.registered} registered{capped})")

    def note_round(self, errors: list[str]) -> bool:
        """Count a round's candidates that failed with their board. True when every failure of the
        round was a lost board's and a board is left: the round does not end the tune."""
        named = [lost_board(e) for e in errors]
        for board in named:
            if board:
                self.lost[board] = self.lost.get(board, 0) + 1
        return bool(named) and all(named) and len(self.lost) < self.registered

    def settle(self) -> None:
        """At the end of the tune: a board that left the tracker without holding a candidate is lost
        too (0 candidates failed). A tracker that cannot be asked leaves the count as it is."""
        try:
            summary = tracker_summary(self.rpc.tracker_host, self.rpc.tracker_port, timeout=5.0)
            left = set(registered_boards(summary, self.rpc.key))
        except RPCError as e:
            log.warning("cannot count the boards left at the end of the tune: %s", e)
            return
        for board in self.at_start:
            if board not in left:
                self.lost.setdefault(board, 0)


def plan_fleet(spec: TargetSpec, cap: int | None = None, timeout: float = 10.0) -> Fleet:
    """The boards free under the target's key now, at most ``cap``; a one-line error when none is."""
    assert spec.rpc is not None
    if cap is not None and cap < 1:
        raise RPCError(f"--boards {cap}: give at least 1")
    summary = check_board(spec, timeout)
    free = free_boards(summary, spec.rpc.key)
    boards = registered_boards(summary, spec.rpc.key)
    fleet = Fleet(spec.rpc, min(free, cap) if cap else free, free, len(boards), cap, boards)
    log.info("%s: %s", spec.name, fleet.first_line())
    return fleet


# -- the runner worker's steps (run in MetaSchedule's worker processes) -------------------------


def board_session(rpc_config):
    """Create-session step: a board from the tracker, bounded (:func:`alexnet_tvm.rpc_session.open_session`);
    the session remembers which board it is on and when that board must have answered."""
    host, port, key = rpc_config.tracker_host, rpc_config.tracker_port, rpc_config.tracker_key
    wait = float(rpc_config.session_timeout_sec or 60)
    where: list[_Where] = []

    def connect_step(board: str, connect):
        where.append(_Where(board, key, host, port, wait))
        return where[0].run("connect", connect)

    sess = open_session(host, port, key, rpc_config.session_timeout_sec, int(rpc_config.session_priority or 1),
                        step=connect_step)
    sess.alexnet_board = where[0]
    return sess


class _Where:
    """One measurement on one board: runs its steps within the board's deadline and names the board
    when it is lost."""

    def __init__(self, board: str, key: str, host: str, port: int, timeout: float):
        self.board, self.key, self.host, self.port = board, key, host, port
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout + HANG_GRACE_S
        self.lost = False

    def _lost(self, why: str) -> RPCError:
        self.lost = True
        return RPCError(f"board {self.board} under key {self.key!r} lost: {why}")

    def run(self, step: str, fn):
        done, value, err = call_within(max(self.deadline - time.monotonic(), 1.0), fn)
        if not done:
            raise self._lost(f"no answer to {step} within its {self.timeout:.0f} s session timeout (hung)")
        if err is None:
            return value
        if self._left_tracker():
            raise self._lost(f"left tracker {self.host}:{self.port} during {step} (killed or disconnected)")
        raise RPCError(f"board {self.board}: {step} failed: {last_line(err)}")

    def _left_tracker(self) -> bool:
        """The tracker no longer lists this board (it sees a board's death within moments)."""
        end = time.monotonic() + DROP_WAIT_S
        while True:
            try:
                listed = registered_boards(tracker_summary(self.host, self.port, timeout=5.0), self.key)
            except RPCError:
                return False  # the tracker's trouble, not the board's
            if self.board not in listed:
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.25)


def board_upload(session, local_path: str, remote_path: str):
    from tvm.s_tir.meta_schedule.runner.rpc_runner import default_upload_module

    return session.alexnet_board.run("upload", lambda: default_upload_module(session, local_path, remote_path))


def board_alloc(session, device, args_info, alloc_repeat: int):
    from tvm.s_tir.meta_schedule.runner.rpc_runner import default_alloc_argument

    return session.alexnet_board.run("alloc", lambda: default_alloc_argument(session, device, args_info, alloc_repeat))


def board_run(session, rt_mod, device, evaluator_config, repeated_args):
    from tvm.s_tir.meta_schedule.runner.rpc_runner import default_run_evaluator

    return session.alexnet_board.run("run", lambda: default_run_evaluator(session, rt_mod, device, evaluator_config,
                                                                          repeated_args))


def board_cleanup(session, remote_path: str | None) -> None:
    """Remove the candidate from the board; skipped on a lost board, and a failure here does not
    undo a measurement already taken."""
    from tvm.s_tir.meta_schedule.runner.rpc_runner import default_cleanup

    where = getattr(session, "alexnet_board", None)
    if session is None or remote_path is None or where is None or where.lost:
        return
    try:
        where.run("cleanup", lambda: default_cleanup(session, remote_path))
    except RPCError as e:
        log.warning("%s", e)


def make_rpc_runner(spec: TargetSpec, evaluator_config, boards: int | None = None):
    """MetaSchedule's RPC runner with one worker per board (``boards``; default: every board free
    under the key now), each step on a board bounded and naming the board (the board_* steps above)."""
    from tvm.s_tir import meta_schedule as ms

    summary = check_board(spec)
    workers = boards or free_boards(summary, spec.rpc.key)
    cfg = ms.runner.RPCConfig(tracker_host=spec.rpc.tracker_host, tracker_port=spec.rpc.tracker_port,
                              tracker_key=spec.rpc.key, session_priority=1,
                              session_timeout_sec=spec.rpc.session_timeout)
    return ms.runner.RPCRunner(rpc_config=cfg, evaluator_config=evaluator_config, max_workers=max(workers, 1),
                               f_create_session=board_session, f_upload_module=board_upload,
                               f_alloc_argument=board_alloc, f_run_evaluator=board_run,
                               f_cleanup=board_cleanup)
