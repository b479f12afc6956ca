"""Shared fixtures: tiny generated datasets, a tiny trained checkpoint, CLI helpers, a faked host
CPU and a test registry server.

Everything here is small on purpose (2 CPU cores): 32x32 images, width 0.125
models, a couple of optimizer steps. Fixtures are generic so that other test
files (compile, runtime, ...) can reuse them; prefer the session-scoped ones and
copy before modifying (see ``tiny_checkpoint_copy``). The plain functions behind
them live in the ``helpers`` package, which tests import directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from helpers.artifacts import TOKEN
from helpers.cli import assert_one_line_error
from helpers.data import CifarFiles, write_cifar10, write_image_folder, write_split_image_folder
from helpers.files import snapshot_tree
from helpers.models import copy_checkpoint

#: the architecture and width of every tiny model the fixtures train
TINY_ARCH = "cifar"
TINY_WIDTH = 0.125
TINY_CLASSES = ("ant", "bee", "cat")


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


@pytest.fixture
def fake_host(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``fake_host(name)``: this machine's CPU is ``name`` for the rest of the test."""
    from alexnet_tvm.host import HOST_CPU_ENV

    return lambda name: monkeypatch.setenv(HOST_CPU_ENV, name)


@pytest.fixture
def registry_server(monkeypatch: pytest.MonkeyPatch):
    """``start(folder, allow_publish=True, **make_server kw) -> RegistryServer``: a registry server in a
    thread on 127.0.0.1 (uploads need TOKEN, which publish finds in the environment), stopped after."""
    from alexnet_tvm.distribution.server import TOKEN_ENV, make_server

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    servers = []

    def start(folder: Path, allow_publish: bool = True, **kw):
        folder.mkdir(parents=True, exist_ok=True)
        srv = make_server(folder, "127.0.0.1", 0, allow_publish=allow_publish,
                          token=TOKEN if allow_publish else None, **kw)
        srv.start_background()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()
