"""targets.yaml: named TVM targets with their batch sizes, tuning budget and runner; the parser only.

Core (not compile/) because every layer resolves ``--target`` (:mod:`alexnet_tvm.target_choice`
says which entry, and for which host), including ``pull --target auto`` on a runtime-only
machine. Importing it needs nothing outside the standard library (yaml is imported when a
file is read, tvm only in :meth:`TargetSpec.tvm_target`). The one import path of
:class:`TargetSpec`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import TargetError

if TYPE_CHECKING:
    import yaml

RUNNERS = ("local", "rpc")
#: Layouts the convolutions are tuned and built in. The model is NCHW; "NHWC" converts the
#: convs (the weights stay OIHW parameters, so MetaSchedule still chooses their packing).
CONV_LAYOUTS = ("NCHW", "NHWC")
#: targets.yaml validates winograd_tile against these (compile/winograd.py implements 2 and 4)
WINOGRAD_TILES = (0, 2, 4)


def split_host_port(text: str) -> tuple[str, int] | None:
    """``host:port`` split at its last colon; None unless there is one and the port is digits.
    The one reading of a tracker address: the parser checks it, :class:`RPCConfig` splits it."""
    host, sep, port = text.rpartition(":")
    return (host, int(port)) if sep and port.isdigit() else None


@dataclass
class RPCConfig:
    #: ``host:port``, checked by the parser (:func:`split_host_port`)
    tracker: str
    key: str
    session_timeout: int = 120
    cross_compiler: str | None = None

    @property
    def tracker_host(self) -> str:
        return self._tracker_address()[0]

    @property
    def tracker_port(self) -> int:
        return self._tracker_address()[1]

    def _tracker_address(self) -> tuple[str, int]:
        address = split_host_port(self.tracker)
        if address is None:
            raise TargetError(f"rpc tracker {self.tracker!r}: must be host:port")
        return address


@dataclass
class TargetSpec:
    name: str
    target: dict | str
    host: dict | str | None = None
    description: str = ""
    host_features: list[str] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    total_trials: int = 2000
    trials_per_task: int = 128
    runner: str = "local"
    rpc: RPCConfig | None = None
    conv_layout: str = "NCHW"
    #: Winograd F(m x m, 3x3) output tile for the 3x3 convs; 0 = direct convolution (NHWC CPU only)
    winograd_tile: int = 0
    #: targets whose record sets a build may take when this one has none: the same graph (same
    #: conv_layout and winograd_tile, so the same tuning tasks) compiled for another ISA
    records_from: list[str] = field(default_factory=list)

    def tvm_target(self):
        import tvm

        try:
            target = tvm.target.Target(self.target, self.host) if self.host else tvm.target.Target(self.target)
        except Exception as e:
            raise TargetError(f"target {self.name}: TVM rejects {json.dumps(self.target)} "
                              f"({str(e).strip().splitlines()[-1][:200]})") from None
        self._check_mcpu(target)
        return target

    def _check_mcpu(self, target) -> None:
        """LLVM only prints a warning for a CPU name it does not know and builds generic code;
        that is a typo in targets.yaml, so it is refused here, before any compiling."""
        from tvm.target import codegen

        mcpu = str(target.attrs.get("mcpu", "") or "") if target.kind.name == "llvm" else ""
        is_valid = getattr(codegen, "llvm_is_valid_cpu", None)
        if not mcpu or is_valid is None:
            return
        triple = str(target.attrs.get("mtriple", "") or "") or codegen.llvm_get_system_triple()
        if not is_valid(mcpu, triple):
            raise TargetError(f"target {self.name}: LLVM does not know the CPU {mcpu!r} for {triple}")

    @property
    def kind(self) -> str:
        if isinstance(self.target, dict):
            return str(self.target.get("kind", ""))
        return "cuda" if self.target.startswith("nvidia/") else "llvm"

    @property
    def is_cpu(self) -> bool:
        return self.kind == "llvm"

    @property
    def cores(self) -> int | None:
        """The CPU cores the library is compiled for and runs on at most (the target's
        ``num-cores``); None for a GPU or a CPU target that names none. A tag is asked of TVM."""
        if not self.is_cpu:
            return None
        if isinstance(self.target, dict):
            n = self.target.get("num-cores")
        else:
            n = self.tvm_target().attrs.get("num-cores", 0)
        return int(n) if n else None

    def as_json(self) -> dict:
        return {"name": self.name, "target": self.target, "host": self.host}


def _lines(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Line (1-based) of every mapping key, so errors can point into the file."""
    import yaml

    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            p = path + (k.value,)
            out[p] = k.start_mark.line + 1
            _lines(v, p, out)
    return out


class _Where:
    def __init__(self, file: Path, lines: dict[tuple, int]):
        self.file, self.lines = file, lines

    def err(self, path: tuple, msg: str) -> TargetError:
        line = self.lines.get(path) or self.lines.get(path[:-1]) or 0
        return TargetError(f"{self.file}:{line}: {'.'.join(map(str, path))}: {msg}")


def _check_target_value(value: Any, path: tuple, where: _Where) -> dict | str:
    if isinstance(value, dict):
        if "kind" not in value:
            raise where.err(path, 'a target dict needs "kind"')
        return value
    if isinstance(value, str):
        if value.strip().startswith("{"):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as e:
                raise where.err(path, f"not valid JSON ({e.msg})") from None
            return _check_target_value(parsed, path, where)
        if " " in value.strip() or value.strip().startswith("-"):
            raise where.err(path, "the CLI string form is not accepted; give a JSON dict or a tag")
        return value.strip()
    raise where.err(path, "must be a JSON dict or a TVM tag")


def _int_list(value: Any, path: tuple, where: _Where) -> list[int]:
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and v > 0 for v in value):
        raise where.err(path, "must be a non-empty list of positive integers")
    return list(value)


def _pos_int(value: Any, path: tuple, where: _Where) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise where.err(path, "must be a non-negative integer")
    return value


KNOWN_KEYS = {"description", "target", "host", "host_features", "batch_sizes", "tuning", "runner", "rpc",
              "conv_layout", "winograd_tile", "records_from"}


def _parse_entry(name: str, d: Any, where: _Where) -> TargetSpec:
    p = ("targets", name)
    if not isinstance(d, dict):
        raise where.err(p, "must be a mapping")
    unknown = set(d) - KNOWN_KEYS
    if unknown:
        raise where.err(p + (sorted(unknown)[0],), f"unknown key (known: {', '.join(sorted(KNOWN_KEYS))})")
    if "target" not in d:
        raise where.err(p, "missing key 'target'")
    spec = TargetSpec(name=name, target=_check_target_value(d["target"], p + ("target",), where))
    if d.get("host") is not None:
        spec.host = _check_target_value(d["host"], p + ("host",), where)
    spec.description = str(d.get("description", ""))
    feats = d.get("host_features", [])
    if not isinstance(feats, list) or not all(isinstance(f, str) for f in feats):
        raise where.err(p + ("host_features",), "must be a list of CPU flag names")
    spec.host_features = feats
    if "batch_sizes" in d:
        spec.batch_sizes = _int_list(d["batch_sizes"], p + ("batch_sizes",), where)
    tuning = d.get("tuning", {}) or {}
    if not isinstance(tuning, dict):
        raise where.err(p + ("tuning",), "must be a mapping with total_trials and trials_per_task")
    for k in tuning:
        if k not in ("total_trials", "trials_per_task"):
            raise where.err(p + ("tuning", k), "unknown key (total_trials, trials_per_task)")
    spec.total_trials = _pos_int(tuning.get("total_trials", spec.total_trials), p + ("tuning", "total_trials"), where)
    spec.trials_per_task = _pos_int(tuning.get("trials_per_task", spec.trials_per_task),
                                    p + ("tuning", "trials_per_task"), where)
    spec.conv_layout = d.get("conv_layout", spec.conv_layout)
    if spec.conv_layout not in CONV_LAYOUTS:
        raise where.err(p + ("conv_layout",), f"must be one of {', '.join(CONV_LAYOUTS)}")
    spec.winograd_tile = d.get("winograd_tile", 0)
    if spec.winograd_tile not in WINOGRAD_TILES:
        raise where.err(p + ("winograd_tile",), f"must be one of {', '.join(map(str, WINOGRAD_TILES))} (0 = off)")
    if spec.winograd_tile and (spec.conv_layout != "NHWC" or not spec.is_cpu):
        raise where.err(p + ("winograd_tile",), "needs conv_layout: NHWC on an llvm (CPU) target")
    spec.records_from = d.get("records_from", [])
    if not isinstance(spec.records_from, list) or not all(isinstance(t, str) for t in spec.records_from):
        raise where.err(p + ("records_from",), "must be a list of target names")
    spec.runner = d.get("runner", "local")
    if spec.runner not in RUNNERS:
        raise where.err(p + ("runner",), f"must be one of {', '.join(RUNNERS)}")
    if spec.runner == "rpc":
        r = d.get("rpc")
        if not isinstance(r, dict) or "tracker" not in r or "key" not in r:
            raise where.err(p + ("rpc",), "an rpc runner needs rpc: {tracker: host:port, key: NAME}")
        tracker = str(r["tracker"])
        if split_host_port(tracker) is None:
            raise where.err(p + ("rpc", "tracker"), "must be host:port")
        spec.rpc = RPCConfig(tracker=tracker, key=str(r["key"]),
                             session_timeout=_pos_int(r.get("session_timeout", 120), p + ("rpc", "session_timeout"), where),
                             cross_compiler=r.get("cross_compiler"))
    return spec


def load_targets(path: Path) -> dict[str, TargetSpec]:
    """Every entry of a targets.yaml, checked; errors name the file, line and key."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TargetError(f"{path}: cannot read targets file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise TargetError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise TargetError(f"{path}:{line}: malformed YAML ({getattr(e, 'problem', e)})") from None
    where = _Where(path, _lines(node) if node is not None else {})
    if not isinstance(data, dict) or not isinstance(data.get("targets"), dict) or not data["targets"]:
        raise TargetError(f"{path}:1: needs a non-empty 'targets:' mapping")
    specs = {str(name): _parse_entry(str(name), d, where) for name, d in data["targets"].items()}
    for spec in specs.values():
        _check_records_from(spec, specs, where)
    return specs


def _check_records_from(spec: TargetSpec, specs: dict[str, TargetSpec], where: _Where) -> None:
    """A target may only take the records of another CPU target that builds the same graph: other
    records would name tasks this target never has (and leave its own untuned, silently)."""
    p = ("targets", spec.name, "records_from")
    for name in spec.records_from:
        other = specs.get(name)
        if other is None or name == spec.name:
            raise where.err(p, f"{name!r} is not another target of this file")
        if not (spec.is_cpu and other.is_cpu) or (spec.conv_layout, spec.winograd_tile) != (
                other.conv_layout, other.winograd_tile):
            raise where.err(p, f"{name} builds another graph (conv_layout, winograd_tile or kind differ); "
                               "its records would not match this target's tasks")
