"""One tiny built artifact (cifar, width 0.125, 4 classes, x86-avx2, batch 1) and its verify
report, for the test modules that pack, publish, pull or attack it (each builds its own copy
once per module, so they stay independent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alexnet_tvm.meta import ModelMeta

ROOT = Path(__file__).resolve().parent.parent
TARGET = "x86-avx2"  # runs on any AVX2 machine
MODEL = "model"  # the manifest's model name: the checkpoint's stem


def build_tiny(root: Path, name: str = "model.pt") -> tuple[Path, Path, Path]:
    """(checkpoint, artifact folder, logs dir) under ``root``."""
    import torch

    from alexnet_tvm.compile.build import BuildConfig, build
    from alexnet_tvm.targets import load_targets
    from alexnet_tvm.model.checkpoint import save_checkpoint
    from alexnet_tvm.model.variants import build_model

    torch.manual_seed(0)
    model = build_model("cifar", 4, width=0.125).eval()
    meta = ModelMeta(arch="cifar", num_classes=4, input_size=32, resize_size=32, width=0.125,
                     class_names=["w", "x", "y", "z"])
    ckpt = root / "m" / name
    ckpt.parent.mkdir(parents=True)
    save_checkpoint(model, meta, ckpt)
    logs = root / "logs"
    art = root / "art"
    build(BuildConfig(model=ckpt, target=load_targets(ROOT / "targets.yaml")[TARGET], out=art, logs_dir=logs))
    return ckpt, art, logs


def write_report(path: Path, artifact: Path, passed: bool = True, against: str = "pytorch") -> Path:
    """A verify report as `verify --report` writes it for ``artifact`` (8 random images)."""
    from alexnet_tvm.runtime.artifact import artifact_digest
    from alexnet_tvm.runtime.verify import Comparison, Gates, VerifyReport, write_report as write

    rep = VerifyReport(artifact=str(artifact), against=against, gates=Gates(),
                       random=Comparison(images=8, max_abs_error=1e-6, max_rel_error=1e-5, top1_agreement=1.0,
                                         abs_tolerance=1e-3),
                       failures=[] if passed else ["random inputs: top-1 agreement 0.5 < 0.999"])
    write(rep.seal(artifact_digest(artifact)), path)
    return path


def packed_tiny(root: Path, signers: dict[str, Path | None], name: str = "model.pt") -> tuple[Path, dict[str, Path]]:
    """The tiny artifact built under ``root`` and packed with a passing verify report, once per
    ``signers`` entry (pack name -> the key it is signed with, None: unsigned) as ROOT/<name>.tar.gz.
    Returns (artifact folder, {pack name: pack path})."""
    from alexnet_tvm.distribution.pack import pack_artifact

    _, art, _ = build_tiny(root, name=name)
    report = write_report(root / "verify.json", art)
    packs = {}
    for pack, sign_with in signers.items():
        packs[pack] = root / f"{pack}.tar.gz"
        pack_artifact(art, packs[pack], report=report, sign_with=sign_with)
    return art, packs


#: the upload token of the test registry servers (``publish`` reads it from $ALEXNET_TVM_TOKEN)
TOKEN = "test-upload-token"


@pytest.fixture
def registry_server(monkeypatch):
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
