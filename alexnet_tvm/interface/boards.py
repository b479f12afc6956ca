"""An rpc target of targets.yaml as the runtime sees it: its :class:`~alexnet_tvm.targets.RPCConfig`
to load an artifact on, checked with the tracker first.

Here, in interface, because it joins the two sides: the tracker check is compile's
(``compile.rpc``, shared with the tuner) and loading on the board is the runtime's (through
:func:`alexnet_tvm.rpc_session.open_session`); neither of them may import the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alexnet_tvm.targets import RPCConfig, TargetSpec


def board_for(spec: TargetSpec) -> RPCConfig | None:
    """The board an rpc target runs on (None for local targets); a one-line error when the
    tracker or the board is missing."""
    from alexnet_tvm.compile.tuning.rpc import check_board

    if spec.runner != "rpc" or spec.rpc is None:
        return None
    check_board(spec)
    return spec.rpc


def board_for_target(name: str | None, targets_file: Path | None = None) -> RPCConfig | None:
    """``verify --target NAME``: the named target's board; None without a name or for a local target."""
    from alexnet_tvm.target_choice import resolve_target

    return board_for(resolve_target(name, targets_file)) if name else None
