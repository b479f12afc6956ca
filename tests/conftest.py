"""Shared fixtures: tiny generated datasets, a tiny trained checkpoint, CLI helpers.

Everything here is small on purpose (2 CPU cores): 32x32 images, width 0.125
models, a couple of optimizer steps. Fixtures are generic so that other test
files (compile, runtime, ...) can reuse them; prefer the session-scoped ones and
copy before modifying (see ``tiny_checkpoint_copy``).
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
from PIL import Image

#: the architecture and width of every tiny model the fixtures train
TINY_ARCH = "cifar"
TINY_WIDTH = 0.125
TINY_CLASSES = ("ant", "bee", "cat")


# --------------------------------------------------------------------------- helpers


def class_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """An HxWx3 uint8 image whose dominant colour channel is ``label % 3``: easy to learn."""
    arr = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
    arr[..., label % 3] += 150
    if label >= 3:  # more than 3 classes: tell them apart by a bright top half too
        arr[: size // 2] = np.minimum(arr[: size // 2].astype(np.int32) + 25 * (label // 3), 255).astype(np.uint8)
    return arr


def write_image_folder(root: Path, class_counts: dict[str, int], size: int = 32, seed: int = 0,
                       suffix: str = ".png") -> Path:
    """Write an ImageFolder tree ``root/<class>/<i>.png``; a count of 0 makes an empty class folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for label, (name, count) in enumerate(class_counts.items()):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(class_image(label, size, rng)).save(d / f"{name}_{i:03d}{suffix}")
    return root


def write_split_image_folder(root: Path, train_counts: dict[str, int], val_counts: dict[str, int],
                             size: int = 32, seed: int = 0) -> Path:
    """Write ``root/train/<class>/...`` and ``root/val/<class>/...`` (an explicit split)."""
    write_image_folder(Path(root) / "train", train_counts, size, seed)
    write_image_folder(Path(root) / "val", val_counts, size, seed + 1)
    return Path(root)


@dataclass
class CifarFiles:
    """What ``write_cifar10`` wrote, to compare the loader against."""

    root: Path
    train_images: np.ndarray  # N x 32 x 32 x 3 uint8, data_batch_* concatenated in order
    train_labels: list[int]
    test_images: np.ndarray
    test_labels: list[int]
    label_names: list[str]


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """NHWC -> the on-disk layout: N x 3072, all R then all G then all B (row-major)."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072).astype(np.uint8)


def _dump_batch(path: Path, images: np.ndarray, labels: list[int], name: str) -> None:
    # the real files are Python 2 pickles with bytes keys
    d = {b"batch_label": name.encode(), b"labels": list(labels), b"data": _cifar_rows(images),
         b"filenames": [f"{name}_{i}.png".encode() for i in range(len(labels))]}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def write_cifar10(root: Path, train_batches: Sequence[int] = (12, 8), n_test: int = 6,
                  label_names: Sequence[str] | None = None, seed: int = 0, meta: bool = True) -> CifarFiles:
    """Write a CIFAR-10 python folder: data_batch_1..k, test_batch and batches.meta."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    names = list(label_names or ["airplane", "automobile", "bird", "cat", "deer",
                                 "dog", "frog", "horse", "ship", "truck"])
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, list[int]]:
        labels = [int(x) for x in rng.integers(0, len(names), size=n)]
        return np.stack([class_image(lab, 32, rng) for lab in labels]), labels

    all_x, all_y = [], []
    for i, n in enumerate(train_batches, start=1):
        x, y = make(n)
        _dump_batch(root / f"data_batch_{i}", x, y, f"training batch {i} of {len(train_batches)}")
        all_x.append(x)
        all_y += y
    tx, ty = make(n_test)
    _dump_batch(root / "test_batch", tx, ty, "testing batch 1 of 1")
    if meta:
        with open(root / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": [n.encode() for n in names], b"num_cases_per_batch": max(train_batches),
                         b"num_vis": 3072}, f, protocol=2)
    return CifarFiles(root, np.concatenate(all_x), all_y, tx, ty, names)


COMMITTED_LOGS = Path(__file__).resolve().parent.parent / "tuning_logs"


def committed_record_sets(target: str) -> list[str]:
    """The record sets (``tuning_logs/<target>/<cpu>/``) committed for ``target``, by name."""
    folder = COMMITTED_LOGS / target
    return sorted(p.parent.name for p in folder.glob("*/database_tuning_record.json"))


def copy_committed_records(target: str, dest: Path, record_set: str | None = None, precision: str = "fp32") -> Path:
    """The checkout's ``tuning_logs/<target>/<record_set>/`` database pair, copied into ``dest``:
    what a test reads stays fixed while a tune in the work tree appends (no git: tests run from
    a tarball too). ``record_set`` may be left out only while the target has one set; a test
    meant for every set parametrizes over :func:`committed_record_sets`."""
    from alexnet_tvm.records import RECORDS, WORKLOADS
    from alexnet_tvm.recordsets import database_folder

    sets = committed_record_sets(target)
    if record_set is None:
        assert len(sets) == 1, f"{target} has the record sets {sets}: name one"
        record_set = sets[0]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for f in (WORKLOADS, RECORDS):
        shutil.copyfile(database_folder(COMMITTED_LOGS / target / record_set, precision) / f, dest / f)
    return dest


def committed_databases(target: str, dest: Path, precision: str = "fp32") -> dict:
    """Every committed record set of ``target``, copied under ``dest`` and opened read-only, by name."""
    from alexnet_tvm.compile.tuning.database import open_database

    return {name: open_database(copy_committed_records(target, Path(dest) / name, name, precision), for_tuning=False)
            for name in committed_record_sets(target)}


def untuned_by_set(tasks: list, databases: dict, tvm_target) -> dict[str, list[str]]:
    """set name -> the tasks it has no record for: a coverage test extracts the tasks once (the
    slow part) and checks them against every committed set."""
    from alexnet_tvm.compile.tuning.plan import has_record

    return {name: [t.task_name for t in tasks if not has_record(db, t, tvm_target)] for name, db in databases.items()}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot_tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root`` (a changed, added or removed file shows)."""
    root = Path(root)
    return {str(p.relative_to(root)): sha256_of(p) for p in sorted(root.rglob("*")) if p.is_file()}


def copy_checkpoint(src: Path, dest_dir: Path, name: str = "model.pt") -> Path:
    """Copy a checkpoint and its ``.json`` sidecar; return the copy's path."""
    from alexnet_tvm.meta import sidecar_path

    dest_dir.mkdir(parents=True, exist_ok=True)
    dst = dest_dir / name
    shutil.copyfile(src, dst)
    if sidecar_path(src).exists():
        shutil.copyfile(sidecar_path(src), sidecar_path(dst))
    return dst


def assert_one_line_error(result, *fragments: str) -> str:
    """A refused CLI run: exit status 2, exactly one stderr line ``error: ...``, no traceback.

    ``result`` is a click ``Result`` or a ``subprocess.CompletedProcess``; each of
    ``fragments`` must appear (case-insensitively) in the error line, which is returned.
    """
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    stderr = result.stderr
    assert code != 0, f"the command succeeded; stdout: {result.stdout!r}"
    assert code == 2, f"exit code {code}, stderr: {stderr!r}"
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line, got: {stderr!r}"
    assert lines[0].startswith("error: "), lines[0]
    for frag in fragments:
        assert frag.lower() in lines[0].lower(), f"{frag!r} not in {lines[0]!r}"
    return lines[0]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def image_folder_writer() -> Callable[..., Path]:
    """``write_image_folder(root, {"class": count, ...}, size=32, seed=0)``."""
    return write_image_folder


@pytest.fixture(scope="session")
def split_image_folder_writer() -> Callable[..., Path]:
    """``write_split_image_folder(root, train_counts, val_counts, size=32, seed=0)``."""
    return write_split_image_folder


@pytest.fixture(scope="session")
def cifar10_writer() -> Callable[..., CifarFiles]:
    """``write_cifar10(root, train_batches=(12, 8), n_test=6, label_names=None, seed=0)``."""
    return write_cifar10


@pytest.fixture(scope="session")
def tree_snapshot() -> Callable[[Path], dict[str, str]]:
    """``snapshot_tree(root)``: compare before/after a command that must not write."""
    return snapshot_tree


@pytest.fixture(scope="session")
def tiny_image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 10 images of 32x32 (read-only: copy before modifying)."""
    return write_image_folder(tmp_path_factory.mktemp("data") / "tiny_images", {c: 10 for c in TINY_CLASSES})


@pytest.fixture(scope="session")
def tiny_train_run(tmp_path_factory: pytest.TempPathFactory, tiny_image_folder: Path):
    """One short training run (cifar, width 0.125, 1 epoch of 2 steps); returns its TrainResult.

    Read-only: tests that modify files must use ``tiny_checkpoint_copy``.
    """
    from alexnet_tvm.model.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train(TrainConfig(dataset=str(tiny_image_folder), out_dir=out, arch=TINY_ARCH, width=TINY_WIDTH,
                             epochs=1, batch_size=8, lr=1e-3, max_steps=2, seed=0))


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_train_run) -> Path:
    """``model.pt`` (with ``model.pt.json``) of the tiny run. Read-only."""
    return tiny_train_run.checkpoint


@pytest.fixture
def tiny_checkpoint_copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny checkpoint and its sidecar, under this test's tmp_path."""
    return copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")


@pytest.fixture(scope="session")
def one_line_error() -> Callable[..., str]:
    """``one_line_error(result, *fragments)``: assert a refused run's single ``error:`` line."""
    return assert_one_line_error


@pytest.fixture(scope="session")
def checkpoint_copier() -> Callable[..., Path]:
    """``copy_checkpoint(src, dest_dir, name="model.pt")``: copy a checkpoint with its sidecar."""
    return copy_checkpoint


@pytest.fixture
def cli_runner():
    """A click CliRunner; click >= 8.2 keeps ``result.stderr`` apart from stdout."""
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture
def run_cli(cli_runner) -> Callable[..., object]:
    """``run_cli("train", "digits", ...)``: invoke the ``alexnet-tvm`` group in-process."""
    from alexnet_tvm.cli.main import cli

    def run(*args: str | Path):
        return cli_runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return run
