"""A board from a TVM RPC tracker, every step within a deadline: the one way a session is opened.

TVM's RPC client calls (``connect_tracker``, ``summary``, ``request``, ``connect``) block
without a deadline of their own, so a tracker or board that stops answering would hang the
command. Here each one runs against a clock and fails with one :class:`RPCError` line.

Core because both sides open sessions and neither may import the other: compile's tuner
(``compile.tuning.fleet``: one session per measured candidate) and the runtime (an artifact loaded
on a board, ``verify --target``). Only TVM's runtime (``tvm.rpc``) is imported, lazily.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any, Callable

from .errors import RPCError

#: a step that runs the connect itself: (``host:port`` of the board, the connect) -> the session
ConnectStep = Callable[[str, Callable[[], Any]], Any]


def call_within(timeout: float, fn: Callable[[], Any]) -> tuple[bool, Any, BaseException | None]:
    """(finished, value, exception) of ``fn()`` on a daemon thread given ``timeout`` s: TVM's RPC
    calls block without a deadline of their own, so every step runs this way."""
    out: list = []

    def call() -> None:
        try:
            out.append((True, fn(), None))
        except Exception as e:  # noqa: BLE001 - the FFI raises assorted types; the caller sorts them
            out.append((True, None, e))

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else (False, None, None)


def last_line(err: BaseException) -> str:
    """``Type: last line`` of an FFI error (TVM's messages end with the one that says what failed)."""
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[-1]}"


def within(timeout: float, fn: Callable[[], Any], late: str, failed: str) -> Any:
    """``fn()`` within ``timeout`` s, or an RPCError (``late`` when it hung, ``failed`` and the FFI's
    last line when it raised)."""
    done, value, err = call_within(timeout, fn)
    if not done:
        raise RPCError(late)
    if err is not None:
        raise RPCError(f"{failed}: {last_line(err)}")
    return value


def tracker_summary(host: str, port: int, timeout: float = 10.0) -> dict:
    """The tracker's queue and servers, or a one-line error within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise RPCError(f"RPC tracker {host}:{port} is unreachable ({e.strerror or e})") from None

    def query() -> dict:
        from tvm import rpc

        return rpc.connect_tracker(host, port).summary()

    return within(timeout, query, f"RPC tracker {host}:{port} did not answer within {timeout:.0f} s",
                  f"RPC tracker {host}:{port}")


def free_boards(summary: dict, key: str) -> int:
    q = summary.get("queue_info", {}).get(key)
    return int(q.get("free", 0)) if q else 0


def registered_boards(summary: dict, key: str) -> list[str]:
    """``host:port`` of every board the tracker lists under ``key``, busy ones included: a live board
    keeps a connection to the tracker (listed under ``server:<key>``) even while it serves a session;
    a dead one drops out, while the tracker's queue may still count it."""
    return [f"{s['addr'][0]}:{s['addr'][1]}" for s in summary.get("server_info", [])
            if s.get("key") == f"server:{key}" and s.get("addr")]


def board_registered(summary: dict, key: str) -> bool:
    """The tracker still lists a board under ``key`` (:func:`registered_boards`)."""
    return bool(registered_boards(summary, key))


def request_board(host: str, port: int, key: str, priority: int, wait: float) -> tuple[str, int, str]:
    """Ask the tracker for a board under ``key`` (address and match key), waiting at most ``wait``
    seconds; the request leaves the tracker's queue with the socket."""
    from tvm.rpc import base

    try:
        with socket.create_connection((host, port), timeout=min(wait, 10.0)) as sock:
            sock.settimeout(wait)
            sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
            if struct.unpack("<i", base.recvall(sock, 4))[0] != base.RPC_TRACKER_MAGIC:
                raise RPCError(f"{host}:{port} is not an RPC tracker")
            base.sendjson(sock, [base.TrackerCode.REQUEST, key, "", priority])
            code, value = base.recvjson(sock)
    except TimeoutError:
        raise RPCError(f"no board under key {key!r} at tracker {host}:{port} was free within {wait:.0f} s") from None
    except OSError as e:
        raise RPCError(f"RPC tracker {host}:{port} failed: {e.strerror or e}") from None
    if code != base.TrackerCode.SUCCESS:
        raise RPCError(f"RPC tracker {host}:{port} refused a board under key {key!r}: {value!r}")
    return value[0], int(value[1]), value[2]


def open_session(host: str, port: int, key: str, session_timeout: float | None, priority: int = 1,
                 step: ConnectStep | None = None) -> Any:
    """A session on a board under ``key``: the tracker still lists one, hands one out, and the board
    answers the connect, each within ``session_timeout`` (default 60 s). ``step`` runs the connect
    (the tuner's names the board when it is lost); by default it is bounded by the same deadline."""
    from tvm import rpc

    wait = float(session_timeout or 60)
    if not board_registered(tracker_summary(host, port, timeout=min(wait, 10.0)), key):
        raise RPCError(f"every board under key {key!r} left tracker {host}:{port} (killed or disconnected)")
    url, board_port, matchkey = request_board(host, port, key, priority, wait)
    board = f"{url}:{board_port}"

    def connect() -> Any:
        return rpc.connect(url, board_port, matchkey, session_timeout or 0)

    if step is not None:
        return step(board, connect)
    return within(wait, connect, f"board {board} under key {key!r}: no answer to connect within {wait:.0f} s",
                  f"board {board} under key {key!r}: connect failed")
