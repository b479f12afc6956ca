"""Record sets: ``tuning_logs/<target>/<cpu>/``, one MetaSchedule database per microarchitecture.

A tuning record is a schedule *and the time it took on one machine*. Records timed on
AMD Zen 4 picked the schedules that are fast there; on an Intel Xeon they built a library
0.7x as fast as ONNX Runtime (project issue 15). So records are filed under the name of what
timed them, LLVM's name for the CPU (``znver4``, ``sapphirerapids``), with a ``cpu.json``
that says which machine that was, and every reader (build, bench, tune, pack, logs
export) takes its set through :func:`choose_record_set`, this module's one rule:

1. the set of this host's own microarchitecture;
2. else the nearest one (same vendor first, then the closest generation: the table in
   :mod:`alexnet_tvm.host`; else any set), announced in exactly one warning line, since
   it builds a slower library than the user could have;
3. else, for a target with ``records_from`` (targets.yaml: targets that build the same graph
   for another ISA, e.g. ``x86-avx2-winograd`` from ``x86-avx512``), the nearest set of those, named
   ``<target>/<cpu>`` and announced the same way;
4. else none (the build warns about untuned tasks, as before).

Writers (``tune``, ``tune --fresh``) only ever write the host's own set
(:func:`own_record_set`): a resume never appends this host's timings to another CPU's
records. Targets timed elsewhere than on this CPU file their sets under what timed
them (:func:`timed_on`): an RPC board's tracker key, a GPU's architecture.

Core: standard library only (LLVM's CPU name comes through :mod:`alexnet_tvm.host`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .errors import DatabaseError, TargetError
from .fsutil import read_json, write_json
from .host import HOST_CPU_ENV, describe_cpu, host_cpu_name, local_gpu_name, microarch, usable_cores
from .records import RECORDS, WORKLOADS
from .schemas import PLAIN_NAME

if TYPE_CHECKING:
    from .targets import TargetSpec

log = logging.getLogger(__name__)

#: what each set folder says about the machine that timed it
CPU_FILE = "cpu.json"


@dataclass(frozen=True)
class RecordSet:
    """One ``<target>/<name>/`` folder that holds tuning records."""

    name: str
    folder: Path
    #: its cpu.json ({} when it has none)
    cpu: dict
    #: the target folder it lies in (for a ``records_from`` reader, another target's)
    target: str

    def label_for(self, reader: str) -> str:
        """How a reader of target ``reader`` names it: ``znver4``, or ``x86-avx512/znver4`` when it
        is another target's set."""
        return self.name if self.target == reader else f"{self.target}/{self.name}"

    @property
    def cpu_model(self) -> str:
        return str(self.cpu.get("model_name") or self.cpu.get("timed_on") or "CPU model not recorded")


@dataclass(frozen=True)
class RecordChoice:
    """Which set a reader takes for ``target`` on a machine whose own set is ``host``."""

    target: str
    host: str
    #: the set taken; None when the target has no set at all
    chosen: RecordSet | None
    #: ``<target>/<host>/``: where this machine's own records are (or would be)
    own: Path

    @property
    def fallback(self) -> bool:
        """Records timed on another CPU, or for another target's code: they build, but slower
        than records of this one would."""
        return self.chosen is not None and (self.chosen.name != self.host or self.chosen.target != self.target)

    @property
    def folder(self) -> Path:
        return self.chosen.folder if self.chosen is not None else self.own

    @property
    def name(self) -> str | None:
        return self.chosen.name if self.chosen is not None else None

    @property
    def label(self) -> str | None:
        """The set's name, with its target when it is another target's (``x86-avx512/znver4``)."""
        return None if self.chosen is None else self.chosen.label_for(self.target)

    def manifest(self) -> dict:
        """The artifact manifest's (and a pack's) account of the records a build used."""
        return {"record_set": self.label, "record_set_cpu": self.chosen.cpu_model if self.chosen else None,
                "fallback": self.fallback}

    def fallback_line(self) -> str:
        assert self.chosen is not None
        return (f"no records timed on {self.host} for {self.target}; using {self.label} "
                f"({self.chosen.cpu_model}), timed on another CPU: expect lower speed; "
                "`tune --fresh` makes a set for this CPU")


def check_set_name(name: str, what: str = "record set") -> str:
    """A set name becomes a folder name: plain names only (``$ALEXNET_TVM_HOST_CPU`` is user input)."""
    if not isinstance(name, str) or not PLAIN_NAME.match(name):
        raise TargetError(f"{what} {name!r} is not a plain name (letters, digits, '.', '_', '-', '+')")
    return name


def host_set_name(host: str | None = None) -> str:
    """The set this host's CPU timings go under: LLVM's name for it, or ``host`` when given."""
    return check_set_name(host or host_cpu_name() or "generic",
                          f"host CPU (${HOST_CPU_ENV} or LLVM)" if host is None else "host CPU")


def timed_on(spec: TargetSpec, host: str | None = None) -> str:
    """The set a machine's timings for ``spec`` go under. A local CPU target is timed on this
    host's CPU; an RPC target on the board its tracker key names; a CUDA target on a GPU of
    its architecture, under the GPU's own name where one is here (``host``, else the first CUDA
    GPU's), else the architecture's. A CPU's and a GPU's set can fall back to another."""
    if spec.runner == "rpc" and spec.rpc is not None:
        return check_set_name(spec.rpc.key, "RPC key")
    if not spec.is_cpu:
        gpu = host or local_gpu_name()
        if gpu:
            return check_set_name(gpu, "GPU name")
        arch = spec.target.get("arch") if isinstance(spec.target, dict) else None
        return check_set_name(str(arch or spec.kind or "gpu"), "GPU architecture")
    return host_set_name(host)


def describe_timer(spec: TargetSpec, name: str) -> dict:
    """A new set's cpu.json: this machine's CPU, or the board or GPU that times ``spec``."""
    if spec.runner == "local" and spec.is_cpu:
        cores = spec.cores
        return {**describe_cpu(name), **({"cores": cores} if cores else {})}
    where = f"RPC board {name!r} (tracker {spec.rpc.tracker})" if spec.rpc else f"GPU ({name})"
    return {"llvm_cpu": name, "timed_on": where, "date": _dt.date.today().isoformat()}


def read_cpu_file(folder: Path) -> dict:
    """A set folder's cpu.json ({} when it has none)."""
    path = folder / CPU_FILE
    if not path.is_file():
        return {}
    cpu = read_json(path, DatabaseError, "record set description")
    if not isinstance(cpu, dict):
        raise DatabaseError(f"{path}: a record set description must be a JSON object")
    return cpu


def record_sets(logs_dir: Path, target: str) -> list[RecordSet]:
    """Every set of ``target`` under ``logs_dir`` that holds records, by name. A database right in
    the target folder is the layout before record sets; nobody knows which CPU timed it, so it
    is refused with the move that fixes it rather than guessed at."""
    folder = Path(logs_dir) / target
    if (folder / RECORDS).exists() or (folder / WORKLOADS).exists():
        raise DatabaseError(f"{folder}: tuning records directly in the target folder (the layout before record "
                            "sets); move them into a folder named after the CPU that timed them, e.g. "
                            f"{folder / host_set_name()}/")
    if not folder.is_dir():
        return []
    return [RecordSet(sub.name, sub, read_cpu_file(sub), target) for sub in sorted(folder.iterdir())
            if sub.is_dir() and PLAIN_NAME.match(sub.name) and (sub / RECORDS).is_file()]


def nearest_set(host: str, names: Iterable[str], cores: dict[str, int | None] | None = None,
                host_cores: int | None = None) -> str | None:
    """The set to take on ``host``: its own; else the same vendor's closest generation, then the
    closest core count (``cores``: a set's, from its cpu.json; ``host_cores``: this host's), then the
    older of two; else another vendor's, same vector ISA first, closest cores; else any, by name."""
    names = sorted(names)
    if host in names:
        return host
    me = microarch(host)

    def core_gap(name: str) -> float:
        theirs = (cores or {}).get(name)
        if not host_cores or not theirs:
            return 0.0 if not host_cores else 99.0  # unknown counts after every known one
        return abs(math.log2(theirs / host_cores))

    def distance(name: str) -> tuple:
        other = microarch(name)
        if me is None or other is None:
            return (3, 0, core_gap(name), 0, name)
        if other.vendor == me.vendor:
            return (0, abs(other.generation - me.generation), core_gap(name), other.generation, name)
        return (1 if other.isa == me.isa else 2, 0, core_gap(name), 0, name)

    return min(names, key=distance, default=None)


def _set_cores(s: RecordSet) -> int | None:
    """The cores a set was timed with (its cpu.json's ``cores``; None for sets made before it was written)."""
    cores = s.cpu.get("cores")
    return cores if isinstance(cores, int) and not isinstance(cores, bool) and cores > 0 else None


def _nearest_of(logs_dir: Path, targets: Iterable[str], host: str, exclude: str | None = None) -> RecordSet | None:
    """The nearest set to ``host`` in the first of ``targets`` that has one (``exclude``: a name not to take)."""
    for target in targets:
        sets = {s.name: s for s in record_sets(logs_dir, target) if s.name != exclude}
        name = nearest_set(host, sets, {n: _set_cores(s) for n, s in sets.items()}, usable_cores())
        if name is not None:
            return sets[name]
    return None


def choose_record_set(logs_dir: Path, target: str, host: str | None = None, announce: bool = True,
                      also: Iterable[str] = ()) -> RecordChoice:
    """The set a reader of ``target``'s records takes on a machine whose own set is ``host``
    (default: this host's CPU); when ``target`` has none, the nearest of the ``also`` targets'
    (targets.yaml's ``records_from``: the same graph, compiled for another ISA). A fallback is
    said in one warning line unless ``announce`` is off."""
    host = host_set_name(host)
    chosen = _nearest_of(logs_dir, [target, *also], host)
    choice = RecordChoice(target, host, chosen, Path(logs_dir) / target / host)
    if announce and choice.fallback:
        log.warning("%s", choice.fallback_line())
    return choice


def record_choice(logs_dir: Path, spec: TargetSpec, host: str | None = None, announce: bool = True) -> RecordChoice:
    """:func:`choose_record_set` for a target entry: the machine that times it, and its ``records_from``."""
    return choose_record_set(logs_dir, spec.name, timed_on(spec, host), announce, spec.records_from)


def other_record_set(logs_dir: Path, spec: TargetSpec, host: str | None = None) -> RecordSet | None:
    """The set this host would take if it had none of its own (the nearest other CPU's, else a
    ``records_from`` target's), for bench's "another family's records" column; None unless the
    host has its own and another exists."""
    host = timed_on(spec, host)
    if not any(s.name == host for s in record_sets(logs_dir, spec.name)):
        return None
    return _nearest_of(logs_dir, [spec.name, *spec.records_from], host, exclude=host)


def single_set_view(dest: Path, chosen: RecordSet) -> Path:
    """A logs folder under ``dest`` that holds ``chosen`` alone (a link to it, under its own
    target's folder), so that a build reading it takes that set and says it is another CPU's; a
    ``records_from`` target's set stays under that target, so the build names it as such."""
    folder = Path(dest) / chosen.target
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / chosen.name
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(chosen.folder).resolve(), target_is_directory=True)
    return Path(dest)


def ensure_cpu_file(folder: Path, cpu: dict) -> None:
    """Give a set folder its cpu.json (kept when it has one: it names who timed the first records)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    if not (Path(folder) / CPU_FILE).exists():
        write_json(Path(folder) / CPU_FILE, cpu)


#: int8 records live in their own database inside a record set: the int8 workloads (their TIR
#: serialized whole, 20-90 KB each) would double the fp32 database every build reads
INT8_DIR = "int8"


def database_folder(set_folder: Path, precision: str) -> Path:
    """The database of ``precision`` inside a record set folder (the one home of that rule)."""
    return Path(set_folder) / INT8_DIR if precision == "int8" else Path(set_folder)


def own_record_set(logs_dir: Path, spec: TargetSpec, host: str | None = None) -> Path:
    """The folder ``tune`` writes ``spec``'s records into (created, with its cpu.json): this
    machine's own set, never another CPU's."""
    name = timed_on(spec, host)
    record_sets(logs_dir, spec.name)  # refuses the layout before record sets, as a build would
    folder = Path(logs_dir) / spec.name / name
    ensure_cpu_file(folder, describe_timer(spec, name))
    return folder


def set_lines(logs_dir: Path, spec: TargetSpec) -> list[str]:
    """For ``targets``: each set of ``spec`` with its CPU, the one this host would take marked."""
    choice = record_choice(logs_dir, spec, announce=False)
    lines = []
    for s in record_sets(logs_dir, spec.name):
        mark = ""
        if s.name == choice.name:
            mark = "  <- used here" + (" (timed on another CPU)" if choice.fallback else "")
        lines.append(f"{s.name} ({s.cpu_model}{', migrated' if s.cpu.get('migrated') else ''}){mark}")
    if choice.chosen is not None and choice.chosen.target != spec.name:
        lines.append(f"none of its own; takes {choice.label} ({choice.chosen.cpu_model}) through records_from"
                     "  <- used here (timed on another CPU)")
    return lines
