"""A real (non-editable) install finds targets.yaml and the tuning records from any folder.

The wheel is built from a copy of the source tree (a build in the checkout would leave
build/ behind, and setuptools copies stale files from it into the next wheel), installed
with ``pip install --target`` and run by this venv's python, so the dependencies are
reused, with PYTHONPATH pointing at it (ahead of the editable install's finder).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: what a wheel is built from: no venv, build output, runs or caches
NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "runs", "artifacts", "*.egg-info",
                                    "__pycache__", ".pytest_cache", ".fresh")


def _pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, installed into a folder of its own; returns that folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE)
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp), ".", cwd=src)
    (wheel,) = tmp.glob("alexnet_tvm-*.whl")
    _pip("install", "--no-deps", "--target", str(tmp / "site"), str(wheel), cwd=tmp)
    return tmp / "site"


@pytest.fixture
def installed(site: Path, tmp_path: Path):
    """``installed(*args)``: run the installed CLI (or ``-c CODE``) from an empty folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("ALEXNET_TVM_HOME", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), PYTHONWARNINGS="ignore")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        argv = list(args) if args[0] == "-c" else ["-m", "alexnet_tvm.cli.main", *args]
        proc = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        return proc

    run.cwd = cwd
    return run


def test_the_wheel_ships_the_data_and_is_what_runs(site: Path, installed) -> None:
    data = site / "alexnet_tvm" / "data"
    assert (data / "targets.yaml").read_bytes() == (ROOT / "targets.yaml").read_bytes()
    for target in ("x86-avx2", "x86-avx512"):  # every committed record set, with its cpu.json
        sets = sorted(p.name for p in (ROOT / "tuning_logs" / target).iterdir() if p.is_dir())
        assert sets and sorted(p.name for p in (data / "tuning_logs" / target).iterdir() if p.is_dir()) == sets
        for record_set in sets:
            for name in ("database_workload.json", "database_tuning_record.json", "cpu.json"):
                assert (data / "tuning_logs" / target / record_set / name).is_file()
    # the data package is the checkout's top folder mapped by pyproject.toml: nothing else of it ships
    assert not list(data.rglob("*.py")), "a top-level .py file would be installed as alexnet_tvm.data code"
    out = installed("-c", "import alexnet_tvm, alexnet_tvm.settings as s; "
                          "print(alexnet_tvm.__file__); print(s.data_home().source)").stdout.split()
    assert Path(out[0]).is_relative_to(site), f"the editable checkout shadows the wheel: {out[0]}"
    assert out[1] == "package"


def test_targets_lists_the_shipped_file(installed) -> None:
    out = installed("targets").stdout
    for name in ("x86-avx512", "x86-avx2", "cuda-sm90"):
        assert f" {name} " in out


@pytest.mark.slow  # a whole build in a fresh install (~60 s on the Xeon)
def test_build_finds_the_shipped_records(site: Path, installed) -> None:
    installed("init", "--arch", "cifar", "--classes", "3", "--width", "0.125", "-o", "tiny.pt")
    installed("build", "tiny.pt", "--target", "x86-avx2", "-o", "art")
    tuning = json.loads((installed.cwd / "art" / "manifest.json").read_text())["tuning"]
    assert Path(tuning["database"]).resolve().is_relative_to(site.resolve()), tuning["database"]
    assert tuning["digest"] is not None and tuning["record_set"] == Path(tuning["database"]).name


def test_tune_would_write_beside_the_user_not_into_the_package(site: Path, installed) -> None:
    """With only the shipped data, records are written to ./tuning_logs/<target>/, started
    from the shipped ones; reads then take that folder (tune itself is too slow to run here)."""
    code = ("import alexnet_tvm.settings as s; w = s.logs_dir_for_writing(None, 'x86-avx2'); "
            "print(w); print(s.logs_dir_for_reading(None, 'x86-avx2')); print(s.logs_dir_for_reading(None, 'x86-avx512'))")
    wrote, read_same, read_other = installed("-c", code).stdout.split()
    local = installed.cwd / "tuning_logs"
    assert Path(wrote) == Path(read_same) == local
    assert Path(read_other).is_relative_to(site)
    shipped = site / "alexnet_tvm" / "data" / "tuning_logs" / "x86-avx2"
    files = [f for f in shipped.rglob("*") if f.is_file() and f.suffix == ".json"]
    assert len(files) >= 3  # a record set: its database pair and cpu.json
    for f in files:
        assert (local / "x86-avx2" / f.relative_to(shipped)).read_bytes() == f.read_bytes()
