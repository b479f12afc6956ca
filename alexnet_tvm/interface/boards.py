"""An rpc target of targets.yaml as the runtime sees it: a :class:`RemoteBoard` to load an
artifact on, checked with the tracker first.

Here, in interface, because it joins the two sides: the tracker check is compile's
(``compile.rpc``, shared with the tuner) and the board handle is the runtime's; neither
of them may import the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alexnet_tvm.runtime.artifact import RemoteBoard
    from alexnet_tvm.targets import TargetSpec


def board_for(spec: TargetSpec) -> RemoteBoard | None:
    """The board an rpc target runs on (None for local targets); a one-line error when the
    tracker or the board is missing."""
    from alexnet_tvm.compile.rpc import check_board
    from alexnet_tvm.runtime.artifact import RemoteBoard

    if spec.runner != "rpc" or spec.rpc is None:
        return None
    check_board(spec)
    return RemoteBoard(spec.rpc.tracker_host, spec.rpc.tracker_port, spec.rpc.key, spec.rpc.session_timeout)


def board_for_target(name: str | None, targets_file: Path | None = None) -> RemoteBoard | None:
    """``verify --target NAME``: the named target's board; None without a name or for a local target."""
    from alexnet_tvm.target_choice import resolve_target

    return board_for(resolve_target(name, targets_file)) if name else None
