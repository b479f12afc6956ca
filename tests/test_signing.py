"""Signed packs: ``keygen``, ``pack --sign``, the signer in the index, ``pull --trust`` from a folder
and over HTTP, and refusals (unsigned, another key, a rewritten digest list) before any file is
extracted. The tiny model is built from ``my model.pt``: build and pack must agree on its name.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.artifacts import packed_tiny
from helpers.models import TARGET

MODEL = "my_model"  # build's plain name for "my model.pt"


@dataclass
class Signed:
    root: Path
    artifact: Path
    key: Path
    pub: Path
    other_pub: Path
    signed: Path
    unsigned: Path
    by_other: Path


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> Signed:
    from alexnet_tvm.distribution.signing import keygen

    root = tmp_path_factory.mktemp("signing")
    key, other = root / "keys" / "me.key", root / "keys" / "other.key"
    pub, _ = keygen(key)
    other_pub, _ = keygen(other)
    art, packs = packed_tiny(root, {"signed": key, "unsigned": None, "by_other": other}, name="my model.pt")
    return Signed(root, art, key, pub, other_pub, **packs)


@pytest.fixture
def extraction_log(monkeypatch) -> list[str]:
    """Every file an archive extraction writes (to prove a refusal came first)."""
    import alexnet_tvm.distribution.archive as archive

    written: list[str] = []
    real = archive._copy_member

    def spy(tar, m, target):
        written.append(m.name)
        return real(tar, m, target)

    monkeypatch.setattr(archive, "_copy_member", spy)
    return written


@pytest.fixture
def http_registry(registry_server):
    return lambda folder: registry_server(folder).url


def _registry(folder: Path, pack: Path) -> Path:
    from alexnet_tvm.distribution.registry import FolderRegistry

    FolderRegistry(folder).publish(pack)
    return folder


def test_keygen_writes_a_private_and_a_public_key(tmp_path, run_cli, one_line_error):
    key = tmp_path / "k"
    res = run_cli("keygen", "-o", key)
    assert res.exit_code == 0 and "ed25519:" in res.output, res.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and b"PRIVATE KEY" in key.read_bytes()
    assert (tmp_path / "k.pub").read_text().startswith("alexnet-tvm-ed25519 ")
    one_line_error(run_cli("keygen", "-o", key), "already exists")


def test_signed_pack_pulls_with_trust_from_a_folder_and_over_http(signed, tmp_path, run_cli, http_registry):
    reg = _registry(tmp_path / "reg", signed.signed)
    entry = json.loads((reg / "index.json").read_text())["packs"][0]
    assert entry["signer"].startswith("ed25519:") and entry["model"] == MODEL
    res = run_cli("pull", MODEL, "--from", reg, "--trust", signed.pub, "-o", tmp_path / "a")
    assert res.exit_code == 0 and "signed by ed25519:" in res.output, res.output
    assert (tmp_path / "a" / "model.so").read_bytes() == (signed.artifact / "model.so").read_bytes()
    url = http_registry(tmp_path / "served")
    assert run_cli("publish", signed.signed, "--to", url).exit_code == 0
    res = run_cli("pull", MODEL, "--from", url, "--trust", signed.pub, "-o", tmp_path / "b")
    assert res.exit_code == 0, res.output
    res = run_cli("registry", "list", url)
    assert entry["signer"] in res.output


@pytest.mark.parametrize("via", ["folder", "http"])
@pytest.mark.parametrize("which,fragment", [("unsigned", "unsigned"), ("by_other", "not a trusted key")])
def test_untrusted_pack_refused_before_extraction(signed, tmp_path, run_cli, one_line_error, http_registry,
                                                 extraction_log, via, which, fragment):
    pack = getattr(signed, which)
    reg = _registry(tmp_path / "reg", pack)
    src = http_registry(reg) if via == "http" else reg
    extraction_log.clear()  # publishing extracted it to check it
    out = tmp_path / "out"
    one_line_error(run_cli("pull", MODEL, "--from", src, "--trust", signed.pub, "-o", out), fragment)
    assert extraction_log == [] and not out.exists()
    assert not list(tmp_path.glob(".out.*"))


def test_trusted_keys_file_holds_several_keys(signed, tmp_path, run_cli):
    keys = tmp_path / "trusted"
    keys.write_text("# team keys\n" + signed.other_pub.read_text() + signed.pub.read_text())
    reg = _registry(tmp_path / "reg", signed.signed)
    assert run_cli("pull", MODEL, "--from", reg, "--trust", keys, "-o", tmp_path / "o").exit_code == 0


def test_digest_list_rewritten_after_signing_is_refused(signed, tmp_path, run_cli, one_line_error, extraction_log):
    """Manifest and SHA256SUMS rewritten around another library, the old signature kept."""
    from alexnet_tvm.distribution.archive import SUMS, format_sums

    with tarfile.open(signed.signed, "r:gz") as t:
        files = {m.name: t.extractfile(m).read() for m in t if m.isreg()}
    files["model.so"] = files["model.so"] + b"\0evil"
    manifest = json.loads(files["manifest.json"])
    manifest["files"]["model.so"] = hashlib.sha256(files["model.so"]).hexdigest()
    files["manifest.json"] = json.dumps(manifest).encode()
    body = {n: b for n, b in files.items() if n not in (SUMS, "SHA256SUMS.sig")}
    files[SUMS] = format_sums({n: hashlib.sha256(b).hexdigest() for n, b in body.items()}).encode()
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as t:
        for name in [SUMS, "SHA256SUMS.sig", *body]:
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            t.addfile(info, io.BytesIO(files[name]))
    one_line_error(run_cli("publish", evil, "--to", tmp_path / "reg"), "signature does not match")
    assert extraction_log == [] and not (tmp_path / "reg").exists()


def test_bad_trust_file_is_one_line(signed, tmp_path, run_cli, one_line_error):
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 AAAA\n")
    reg = _registry(tmp_path / "reg", signed.signed)
    one_line_error(run_cli("pull", MODEL, "--from", reg, "--trust", bad, "-o", tmp_path / "o"), "public key")
    one_line_error(run_cli("pack", signed.artifact, "--sign", bad, "-o", tmp_path / "p.tar.gz"), "private key")


def test_unsigned_pull_without_trust_still_works(signed, tmp_path, run_cli):
    reg = _registry(tmp_path / "reg", signed.unsigned)
    res = run_cli("pull", MODEL, "--from", reg, "--target", TARGET, "-o", tmp_path / "o")
    assert res.exit_code == 0 and "signed by" not in res.output, res.output
