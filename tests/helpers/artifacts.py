"""One tiny built artifact (cifar, width 0.125, 4 classes, x86-avx2, batch 1) and its verify
report, for the test modules that pack, publish, pull or attack it (each builds its own copy
once per module, so they stay independent). The registry server fixture is in conftest.py."""

from __future__ import annotations

from pathlib import Path

from helpers.models import TARGET, repo_targets, write_tiny_checkpoint

MODEL = "model"  # the manifest's model name: the checkpoint's stem
#: the upload token of the test registry servers (``publish`` reads it from $ALEXNET_TVM_TOKEN)
TOKEN = "test-upload-token"


def build_tiny(root: Path, name: str = "model.pt") -> tuple[Path, Path, Path]:
    """(checkpoint, artifact folder, logs dir) under ``root``: ``root/m/<name>``, ``root/art``, ``root/logs``."""
    from alexnet_tvm.compile.build import BuildConfig, build

    ckpt = write_tiny_checkpoint(root / "m", "cifar", name)
    logs = root / "logs"
    art = root / "art"
    build(BuildConfig(model=ckpt, target=repo_targets()[TARGET], out=art, logs_dir=logs))
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
