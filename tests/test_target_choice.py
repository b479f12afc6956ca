"""One home for choosing a target (alexnet_tvm.target_choice) and for opening an RPC session
(alexnet_tvm.rpc_session): the defaults agree everywhere, and a silent tracker is refused in time."""

from __future__ import annotations

import socket
import time

import pytest

from alexnet_tvm.errors import RPCError


def _default(command, name: str):
    return next(p.default for p in command.params if p.name == name)


def test_pull_and_serve_prefer_the_same_target_by_default():
    from alexnet_tvm.cli.dist_cmds import pull
    from alexnet_tvm.cli.serve_cmds import serve
    from alexnet_tvm.target_choice import AUTO

    assert _default(pull, "target_name") == _default(serve, "pull_target") == AUTO


def test_a_pack_target_is_preferred_by_name_or_auto_else_none(tmp_path):
    from alexnet_tvm.target_choice import preferred_pack_target, resolve_target

    assert preferred_pack_target("x86-avx2") == "x86-avx2"
    assert preferred_pack_target("auto", tmp_path / "missing.yaml") is None  # no targets.yaml: any pack
    try:
        auto = resolve_target("auto").name
    except Exception:  # noqa: BLE001 - a host no entry fits
        auto = None
    assert preferred_pack_target("auto") == auto


def test_a_silent_tracker_is_refused_within_the_session_deadline():
    """A socket that accepts and never answers: TVM's client would wait forever."""
    from alexnet_tvm.rpc_session import open_session

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        t0 = time.monotonic()
        with pytest.raises(RPCError, match="did not answer within 2 s"):
            open_session("127.0.0.1", srv.getsockname()[1], "nobody", session_timeout=2)
        assert time.monotonic() - t0 < 15
