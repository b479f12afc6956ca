"""Where the shared files are: targets.yaml, tuning_logs/, and the default artifact folder.

Every command and job asks here, so the rules below have one home.

**Which targets.yaml and tuning_logs/** (the first that applies):

1. an explicit ``--targets-file`` / ``--logs-dir``;
2. ``$ALEXNET_TVM_HOME``: its targets.yaml and tuning_logs/;
3. a project folder: the current folder, when it holds a targets.yaml;
4. the source checkout the package runs from (an editable install: pyproject.toml and
   targets.yaml beside the package), so ``tune`` adds to the committed tuning_logs/;
5. the data shipped in the wheel (``alexnet_tvm/data/``, read with importlib.resources).

Cases 2-4 read and write the same folder. Case 5 is read-only, because an installed
package is no place to write (it may be shared, owned by root, or replaced by the next
``pip install``). A user of such an install expects ``tune`` to behave as in a checkout,
resuming from the shipped records, and ``build`` to use what they tuned, so:

* writes (``tune``, ``logs import``) go to ``./tuning_logs/<target>/<cpu>/`` of the current
  folder; the first write for a target starts ``./tuning_logs/<target>/`` as a copy of
  every shipped record set of that target (``logs import`` without ``--target`` names its
  target too late for that);
* reads (``build``, ``bench``, ``logs export``) take ``./tuning_logs/<target>/`` when it
  exists, else the shipped records.

These functions name the ``tuning_logs/`` folder; which ``<target>/<cpu>/`` record set in
it a command reads or writes is :mod:`alexnet_tvm.recordsets`' rule.

A zipped install (no file system under the package) has no shipped data; then, as when
nothing at all is found, targets.yaml is looked for in the current folder and the
error names it.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TARGETS_FILE = "targets.yaml"
TUNING_LOGS = "tuning_logs"
HOME_ENV = "ALEXNET_TVM_HOME"
#: the wheel's copy of targets.yaml and tuning_logs/ (pyproject.toml maps them there)
DATA_PACKAGE = "alexnet_tvm.data"
#: where ``build`` and ``pull`` put an artifact unless told (relative to the current folder)
ARTIFACTS = "artifacts"


@dataclass(frozen=True)
class DataHome:
    """The folder targets.yaml and tuning_logs/ come from, and which rule chose it."""

    root: Path
    #: "env", "cwd", "checkout", "package" or "none" (numbered 2-5 in the module docstring)
    source: str

    @property
    def read_only(self) -> bool:
        return self.source == "package"


def _checkout() -> Path | None:
    """The source checkout this package runs from, if any (an editable install)."""
    root = Path(__file__).resolve().parent.parent
    if (root / TARGETS_FILE).is_file() and (root / "pyproject.toml").is_file():
        return root
    return None


def packaged_data() -> Path | None:
    """The wheel's data folder on the file system; None in a checkout or a zipped install."""
    from importlib.resources import files

    try:
        marker = files(DATA_PACKAGE).joinpath(TARGETS_FILE)
    except ModuleNotFoundError:  # not installed from a wheel (an editable install maps no data package)
        return None
    return marker.parent if isinstance(marker, Path) and marker.is_file() else None


def data_home() -> DataHome:
    """Rules 2-5 of the module docstring, looked up afresh (the cwd and environment may change)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return DataHome(Path(env), "env")
    cwd = Path.cwd()
    if (cwd / TARGETS_FILE).is_file():
        return DataHome(cwd, "cwd")
    checkout = _checkout()
    if checkout is not None:
        return DataHome(checkout, "checkout")
    shipped = packaged_data()
    if shipped is not None:
        return DataHome(shipped, "package")
    return DataHome(cwd, "none")


def targets_file_path(explicit: Path | None = None) -> Path:
    """The targets.yaml to read."""
    return Path(explicit) if explicit is not None else data_home().root / TARGETS_FILE


def logs_dir_for_reading(explicit: Path | None = None, target: str | None = None) -> Path:
    """The tuning_logs/ folder ``build`` and ``bench`` read ``<target>/`` from."""
    if explicit is not None:
        return Path(explicit)
    home = data_home()
    if home.read_only:
        local = Path.cwd() / TUNING_LOGS
        if (local / target if target else local).is_dir():
            return local
    return home.root / TUNING_LOGS


def logs_dir_for_writing(explicit: Path | None = None, target: str | None = None) -> Path:
    """The tuning_logs/ folder ``tune`` and ``logs import`` write ``<target>/`` into."""
    if explicit is not None:
        return Path(explicit)
    home = data_home()
    if not home.read_only:
        return home.root / TUNING_LOGS
    local = Path.cwd() / TUNING_LOGS
    if target:
        _seed_from_package(home.root / TUNING_LOGS / target, local / target)
    return local


def _seed_from_package(shipped: Path, dest: Path) -> None:
    """Start ``dest`` (a target's folder) as a copy of the shipped record sets, once: later runs
    add to it, and reads then find every set, the shipped ones included, in one place."""
    from .fsutil import atomic_dir

    if dest.exists() or not shipped.is_dir():
        return
    with atomic_dir(dest) as tmp:
        for record_set in shipped.iterdir():
            if record_set.is_dir() and not record_set.name.startswith((".", "_")):
                shutil.copytree(record_set, tmp / record_set.name,
                                ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    log.info("started %s from the tuning records shipped with the package", dest)


def default_artifact_dir(model_name: str, target: str, batch: int, precision: str = "fp32") -> Path:
    """``artifacts/<model>-<target>-b<batch>[-<precision>]``: one folder per thing that changes the library."""
    suffix = "" if precision == "fp32" else f"-{precision}"
    return Path(ARTIFACTS) / f"{model_name}-{target}-b{batch}{suffix}"
