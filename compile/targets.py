"""targets.yaml for the compile side: the parser and :class:`TargetSpec` live in core
(:mod:`alexnet_tvm.targets`) because settings resolves ``--target`` for every layer."""

from __future__ import annotations

from alexnet_tvm.targets import (
    AUTO, CONV_LAYOUTS, RUNNERS, WINOGRAD_TILES, RPCConfig, TargetSpec, load_targets, pick_target,
)

__all__ = ["AUTO", "CONV_LAYOUTS", "RUNNERS", "WINOGRAD_TILES", "RPCConfig", "TargetSpec", "load_targets",
           "pick_target"]
