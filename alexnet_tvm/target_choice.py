"""Which target a command compiles for or pulls, and for which host: the one home of that rule.

Every ``--target`` (``tune``, ``build``, ``bench``, ``demo``, ``verify``, ``pull``,
``serve --pull-target``) is resolved here:

* a name is that entry of targets.yaml (``--threads`` sets its cores);
* ``auto`` is the first local CPU entry whose ``host_features`` this host has, compiled for
  this host's CPU (:func:`host_mcpu`: LLVM's name for it when it is of the entry's family)
  and this process's cores (:func:`~alexnet_tvm.host.usable_cores`, unless ``--threads``);
* ``pull`` and ``serve --pull`` only prefer a target (:func:`preferred_pack_target`): where
  ``auto`` finds no entry, or no yaml to read targets.yaml with, they take any pack this
  host runs.

Core, not compile/, because ``pull --target auto`` runs on a board without the compiler.
:mod:`alexnet_tvm.host` keeps the raw CPU facts this module decides with; targets.yaml's
parser is :mod:`alexnet_tvm.targets`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from .errors import TargetError
from .host import host_cpu_flags, host_cpu_name, microarch, usable_cores
from .targets import TargetSpec

log = logging.getLogger(__name__)

#: ``--target auto``: the default of every command that takes a target
AUTO = "auto"


def pick_target(targets: dict[str, TargetSpec], name: str, threads: int | None = None) -> TargetSpec:
    """A named target, or with 'auto' the first CPU entry whose features this host has, compiled
    for this host's CPU (:func:`host_mcpu`) and cores (:func:`for_this_host`). ``threads`` (the
    user's ``--threads``) sets the cores of either."""
    if name == AUTO:
        flags = host_cpu_flags()
        for spec in targets.values():
            if spec.is_cpu and spec.runner == "local" and spec.host_features and set(spec.host_features) <= flags:
                return for_this_host(spec, cores=threads)
        raise TargetError("--target auto: no local CPU entry in targets.yaml matches this host's CPU flags")
    try:
        spec = targets[name]
    except KeyError:
        raise TargetError(f"unknown target {name!r} (known: {', '.join(targets)})") from None
    return with_cores(spec, threads) if threads else spec


def resolve_target(name: str, targets_file: Path | None = None, threads: int | None = None) -> TargetSpec:
    """A target of targets.yaml by name, or with ``auto`` the first local CPU entry this host runs
    (for this process's cores); ``threads``: ``--threads``, the cores to compile for instead.
    Which targets.yaml: :func:`alexnet_tvm.settings.targets_file_path`."""
    from .settings import targets_file_path
    from .targets import load_targets

    return pick_target(load_targets(targets_file_path(targets_file)), name, threads)


def preferred_pack_target(name: str, targets_file: Path | None = None) -> str | None:
    """The target ``pull`` and ``serve --pull`` prefer: ``name``, or for ``auto`` the entry
    :func:`resolve_target` picks. Without yaml to read targets.yaml with, or when no entry fits
    this host, ``auto`` means None: "any pack this CPU runs, most specific first"."""
    if name != AUTO:
        return name
    try:
        return resolve_target(name, targets_file).name
    except ImportError:  # no yaml to read targets.yaml with
        return None
    except TargetError as e:
        log.info("--target auto: %s; taking any compatible pack", e)
        return None


def with_cores(spec: TargetSpec, cores: int) -> TargetSpec:
    """``spec`` compiled for ``cores`` (its target's ``num-cores``, which MetaSchedule splits parallel
    loops by and the runtime takes as its thread count); refused for a GPU target."""
    if not spec.is_cpu or not isinstance(spec.target, dict):
        raise TargetError(f"--threads: target {spec.name} is not a CPU target")
    if cores < 1:
        raise TargetError(f"--threads {cores}: give 1 or more")
    return spec if spec.target.get("num-cores") == cores else \
        dataclasses.replace(spec, target={**spec.target, "num-cores": int(cores)})


def isa_level(spec: TargetSpec) -> str | None:
    """The vector ISA an x86 target family assumes, by its host_features: "avx512", "avx2" or None."""
    features = set(spec.host_features)
    return "avx512" if "avx512f" in features else "avx2" if "avx2" in features else None


def host_mcpu(spec: TargetSpec, host: str | None = None) -> str | None:
    """The ``mcpu`` ``--target auto`` compiles ``spec`` with: the host's LLVM CPU name when the host
    is a known x86 microarchitecture of the target's family (an Intel Sapphire Rapids host gets
    ``sapphirerapids``, not the YAML's ``znver4``), else None (keep the YAML's).

    "Of the family" means the same widest vector ISA: an AVX-512 host under an AVX2 target would
    otherwise emit AVX-512 code into an artifact that says it needs AVX2 only."""
    if not (spec.is_cpu and spec.runner == "local" and isinstance(spec.target, dict)) or "mtriple" in spec.target:
        return None
    arch = microarch(host or host_cpu_name())
    level = isa_level(spec)
    return arch.name if arch is not None and level is not None and arch.isa == level else None


def for_this_host(spec: TargetSpec, host: str | None = None, cores: int | None = None) -> TargetSpec:
    """``spec`` with :func:`host_mcpu` applied, for ``cores`` (default: the cores this process may
    use, :func:`~alexnet_tvm.host.usable_cores`); a copy, targets.yaml's entry stays as written."""
    if not isinstance(spec.target, dict):
        return spec
    mcpu = host_mcpu(spec, host)
    if mcpu is not None and spec.target.get("mcpu") != mcpu:
        log.info("--target auto: %s compiled for this host's CPU %s (targets.yaml says %s)", spec.name, mcpu,
                 spec.target.get("mcpu", "none"))
        spec = dataclasses.replace(spec, target={**spec.target, "mcpu": mcpu})
    if not (spec.is_cpu and spec.runner == "local") or "mtriple" in spec.target:
        return spec
    return with_cores(spec, cores or usable_cores())
