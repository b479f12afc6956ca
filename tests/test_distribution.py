"""Distribution: pack, publish (folder and HTTP), pull, logs export/import, and every bad input refused.

One tiny artifact is built per module (x86-avx2, batch 1); everything else is
archives and JSON, so the module stays well under two minutes on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from helpers.artifacts import MODEL, build_tiny, write_report
from helpers.cli import free_port
from helpers.models import TARGET
from helpers.packs import index_entry, pack_members, registry_listing, repack, write_tar


# --------------------------------------------------------------------------- fixtures and helpers


@dataclass
class Dist:
    root: Path
    ckpt: Path
    artifact: Path
    logs: Path
    report: Path
    pack: Path  # with report and tuning records
    images: list[Path]


def _host() -> str:
    """The record set this host's builds and tunes use (tuning_logs/<target>/<cpu>/)."""
    from alexnet_tvm.recordsets import host_set_name

    return host_set_name()


def _committed_records(dest: Path) -> Path:
    """The committed x86-avx512 database pair of its first record set, copied (a tuning run may be
    appending to the work tree's)."""
    from helpers.records import committed_record_sets, copy_committed_records

    return copy_committed_records("x86-avx512", dest, committed_record_sets("x86-avx512")[0])


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Dist:
    from PIL import Image

    from alexnet_tvm.distribution.pack import pack_artifact

    root = tmp_path_factory.mktemp("dist")
    ckpt, art, logs = build_tiny(root)
    # real MetaSchedule records (the committed ones), filed under the artifact's target after the build,
    # so the pack carries a genuine database pair
    _committed_records(logs / TARGET / _host())  # the set this host builds with (none at build time)
    report = write_report(root / "verify.json", art)
    pack = root / "model.tar.gz"
    pack_artifact(art, pack, report=report)
    rng = np.random.default_rng(0)
    images = []
    for i in range(3):
        images.append(root / f"img{i}.png")
        Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(images[-1])
    return Dist(root, ckpt, art, logs, report, pack, images)


def _predict_lines(run_cli, artifact: Path, images: list[Path]) -> list[str]:
    res = run_cli("predict", artifact, *images, "--top-k", "4")
    assert res.exit_code == 0, res.output
    return res.output.strip().splitlines()


@pytest.fixture
def http_registry(registry_server):
    """``start(folder, publish=True) -> url``: a registry server in a thread, shut down after the test."""
    return lambda folder, publish=True: registry_server(folder, allow_publish=publish).url


def _index(reg: Path) -> dict:
    from alexnet_tvm.distribution.index import Index

    text = (reg / "index.json").read_text()
    Index.parse(text, "test")  # valid
    return json.loads(text)


# --------------------------------------------------------------------------- pack


def test_pack_holds_artifact_records_report_and_sums(dist):
    files = pack_members(dist.pack)
    assert set(files) == {"SHA256SUMS", "pack.json", "model.so", "params.bin", "manifest.json", "verify.json",
                          "tuning/database_workload.json", "tuning/database_tuning_record.json"}
    sums = dict(reversed(line.split("  ", 1)) for line in files["SHA256SUMS"].decode().splitlines())
    assert set(sums) == set(files) - {"SHA256SUMS"}
    assert all(hashlib.sha256(files[n]).hexdigest() == d for n, d in sums.items())
    assert files["model.so"] == (dist.artifact / "model.so").read_bytes()
    assert files["tuning/database_tuning_record.json"] == \
        (dist.logs / TARGET / _host() / "database_tuning_record.json").read_bytes()
    meta = json.loads(files["pack.json"])
    assert meta["model"] == MODEL and meta["target"] == TARGET and meta["batch"] == 1
    assert meta["verify"]["passed"] is True and meta["verify"]["against"] == "pytorch"
    n_records = len((dist.logs / TARGET / _host() / "database_tuning_record.json").read_text().splitlines())
    assert meta["tuning"]["record_set"] == _host()
    assert meta["tuning"]["records"] == n_records and meta["tuning"]["matches_build"] is False  # added after build


def test_pack_refuses_failed_report_and_tampered_artifact(dist, tmp_path, run_cli, one_line_error):
    bad_rep = write_report(tmp_path / "failed.json", dist.artifact, passed=False)
    one_line_error(run_cli("pack", dist.artifact, "-o", tmp_path / "a.tar.gz", "--report", bad_rep), "FAILED")
    art = tmp_path / "art"
    shutil.copytree(dist.artifact, art)
    data = bytearray((art / "model.so").read_bytes())
    data[100] ^= 1
    (art / "model.so").write_bytes(bytes(data))
    one_line_error(run_cli("pack", art, "-o", tmp_path / "b.tar.gz"), "sha256")
    one_line_error(run_cli("pack", dist.artifact, "-o", dist.pack), "already exists")
    assert not list(tmp_path.glob("*.tar.gz"))


# --------------------------------------------------------------------------- publish / pull


def test_folder_publish_pull_predict_identical(dist, tmp_path, run_cli, monkeypatch):
    from alexnet_tvm.runtime.artifact import load_artifact

    reg = tmp_path / "registry"
    res = run_cli("publish", dist.pack, "--to", reg)
    assert res.exit_code == 0, res.output
    index = _index(reg)
    (e,) = index["packs"]
    assert (e["model"], e["target"], e["batch"]) == (MODEL, TARGET, 1)
    assert e["size"] == dist.pack.stat().st_size and e["verify"]["passed"] is True
    assert (reg / e["file"]).read_bytes() == dist.pack.read_bytes()
    assert run_cli("publish", dist.pack, "--to", reg).exit_code == 0  # idempotent
    assert len(_index(reg)["packs"]) == 1

    out = tmp_path / "clean" / "pulled"
    res = run_cli("pull", MODEL, "--target", TARGET, "--from", reg, "-o", out)
    assert res.exit_code == 0, res.output
    assert "exact target" in res.output
    assert _predict_lines(run_cli, out, dist.images) == _predict_lines(run_cli, dist.artifact, dist.images)
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32), dtype=np.float32)
    assert np.array_equal(load_artifact(out).predict(x), load_artifact(dist.artifact).predict(x))
    assert (out / "tuning" / "database_tuning_record.json").is_file() and (out / "verify.json").is_file()

    # --target auto picks this host's entry; an x86-avx2 pack is compatible with any AVX2 host
    monkeypatch.chdir(tmp_path)
    res = run_cli("pull", MODEL, "--from", reg)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "artifacts" / f"{MODEL}-{TARGET}-b1" / "model.so").is_file()


def test_http_publish_and_pull(dist, tmp_path, run_cli, http_registry):
    reg = tmp_path / "served"
    url = http_registry(reg)
    res = run_cli("publish", dist.pack, "--to", url)
    assert res.exit_code == 0, res.output
    assert len(_index(reg)["packs"]) == 1
    res = run_cli("registry", "list", url)
    assert res.exit_code == 0 and TARGET in res.output and "verified" in res.output
    out = tmp_path / "pulled"
    res = run_cli("pull", MODEL, "--target", TARGET, "--from", url, "-o", out, "--batch", "1")
    assert res.exit_code == 0, res.output
    assert _predict_lines(run_cli, out, dist.images) == _predict_lines(run_cli, dist.artifact, dist.images)


def test_read_only_http_registry_refuses_uploads(dist, tmp_path, run_cli, one_line_error, http_registry,
                                                 tree_snapshot):
    reg = tmp_path / "ro"
    url = http_registry(reg, publish=False)
    one_line_error(run_cli("publish", dist.pack, "--to", url), "does not accept uploads")
    assert tree_snapshot(reg) == {}
    # nor are hidden files (the lock, uploads in progress) served
    import urllib.error
    import urllib.request

    (reg / ".index.lock").write_text("")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{url}/.index.lock", timeout=5)


def test_registry_serve_cli_subprocess(dist, tmp_path, run_cli):
    from alexnet_tvm.distribution.registry import FolderRegistry

    reg = tmp_path / "reg"
    FolderRegistry(reg).publish(dist.pack)
    port = free_port()
    exe = Path(sys.executable).parent / "alexnet-tvm"
    proc = subprocess.Popen([str(exe), "registry", "serve", str(reg), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line
        res = run_cli("registry", "list", f"http://127.0.0.1:{port}")
        assert res.exit_code == 0 and MODEL in res.output, res.output
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_pull_without_torch_or_compile_package(dist, tmp_path):
    """A deployment machine: runtime/ only. pull, then predict, through the CLI."""
    from alexnet_tvm.distribution.registry import FolderRegistry

    reg = tmp_path / "reg"
    FolderRegistry(reg).publish(dist.pack)
    out = tmp_path / "deployed"
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None
        sys.modules["alexnet_tvm.compile"] = None
        from click.testing import CliRunner
        from alexnet_tvm.cli.main import cli
        r = CliRunner()
        res = r.invoke(cli, ["pull", {MODEL!r}, "--from", {str(reg)!r}, "-o", {str(out)!r}],
                       catch_exceptions=False)
        assert res.exit_code == 0, res.output
        res = r.invoke(cli, ["predict", {str(out)!r}, {str(dist.images[0])!r}], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        loaded = [m.split(".")[0] for m in sys.modules if sys.modules[m] is not None]
        assert "torch" not in loaded, "torch imported"
        assert not [m for m in sys.modules if m.startswith("alexnet_tvm.compile") and sys.modules[m]]
        print(res.output.strip())
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().startswith(str(dist.images[0]) + ": ")


def test_distribution_package_imports_no_compiler_side():
    """Every distribution module (publish, serve, logs included) loads on a runtime-only machine."""
    code = textwrap.dedent("""
        import sys
        import alexnet_tvm.distribution.logs, alexnet_tvm.distribution.pull, alexnet_tvm.distribution.server
        bad = [m for m in sys.modules if m.split(".")[0] == "torch"
               or m.startswith(("alexnet_tvm.compile", "alexnet_tvm.model"))]
        assert not bad, bad
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]


def test_select_pack_prefers_exact_then_specific_compatible():
    from alexnet_tvm.distribution.index import Index, PackEntry, select_pack
    from alexnet_tvm.runtime.compat import HostInfo

    def e(target, feats, batch=1, tvm="0.27", kind="llvm", created="2025-01-01"):
        return PackEntry(model="m", target=target, batch=batch, tvm_version=tvm, digest="sha256:" + "0" * 64,
                         size=1, created=created, file=f"packs/{target}-{batch}.tar.gz", kind=kind,
                         host_features=feats)

    avx2, avx512 = e("x86-avx2", ["avx2", "fma"]), e("x86-avx512", ["avx2", "fma", "avx512f"])
    cuda, old = e("cuda-sm90", [], kind="cuda"), e("x86-old", ["avx2"], tvm="0.19")
    index = Index([avx2, avx512, cuda, old])
    big = HostInfo({"avx2", "fma", "avx512f"}, "x86_64", "0.27")
    small = HostInfo({"avx2", "fma"}, "x86_64", "0.27")
    assert select_pack(index, "m", "x86-avx2", None, big).entry is avx2  # exact first
    sel = select_pack(index, "m", "x86-avx512", None, small)  # exact one needs AVX-512: compatible avx2
    assert sel.entry is avx2 and not sel.exact
    assert any("lacks avx512f" in r for r in sel.refused) and any("TVM 0.19" in r for r in sel.refused)
    assert select_pack(index, "m", None, None, big).entry is avx512  # most specific compatible
    assert select_pack(index, "m", "cuda-sm90", None, big).entry is cuda  # GPU packs by name only
    from alexnet_tvm.errors import RegistryError

    with pytest.raises(RegistryError, match="no pack of m .* runs here"):
        select_pack(Index([avx512, old]), "m", None, None, small)
    with pytest.raises(RegistryError, match="at batch 16"):
        select_pack(index, "m", None, 16, big)
    with pytest.raises(RegistryError, match="no pack of model 'x'"):
        select_pack(index, "x", None, None, big)


# --------------------------------------------------------------------------- bad input


def _tamper_so(files):
    data = bytearray(files["model.so"])
    data[len(data) // 2] ^= 0xFF
    files["model.so"] = bytes(data)


def _tamper_manifest(files):
    files["manifest.json"] = files["manifest.json"].replace(b'"num_params"', b'"num_params" ', 1)


@pytest.mark.parametrize("tamper,resign,fragment", [
    (_tamper_so, False, "model.so does not match"),
    (_tamper_manifest, False, "manifest.json does not match"),
    (_tamper_so, True, "sha256 does not match the manifest"),  # SHA256SUMS re-made, manifest still knows
])
def test_tampered_pack_refused_by_publish_and_pull(dist, tmp_path, run_cli, one_line_error, tree_snapshot,
                                                   http_registry, tamper, resign, fragment):
    files = pack_members(dist.pack)
    tamper(files)
    bad = (repack if resign else write_tar)(tmp_path / "bad.tar.gz", files)
    reg = tmp_path / "reg"
    one_line_error(run_cli("publish", bad, "--to", reg), fragment)
    assert not reg.exists()
    served = tmp_path / "served"
    one_line_error(run_cli("publish", bad, "--to", http_registry(served)), "refused the pack", fragment)
    assert tree_snapshot(served) == {}
    # a registry that serves it anyway (index digest made to match): pull still refuses
    evil = registry_listing(tmp_path / "evil", bad, index_entry(dist.pack))
    snap = tree_snapshot(evil)
    out = tmp_path / "out"
    one_line_error(run_cli("pull", MODEL, "--from", evil, "-o", out), fragment)
    assert not out.exists() and tree_snapshot(evil) == snap
    assert not list(tmp_path.glob(".out.*"))  # no half-installed temp folder either


def test_wrong_digest_in_index_refused(dist, tmp_path, run_cli, one_line_error, tree_snapshot):
    from alexnet_tvm.distribution.registry import FolderRegistry

    reg = tmp_path / "reg"
    FolderRegistry(reg).publish(dist.pack)
    index = json.loads((reg / "index.json").read_text())
    index["packs"][0]["digest"] = "sha256:" + "ab" * 32
    (reg / "index.json").write_text(json.dumps(index))
    snap = tree_snapshot(reg)
    out = tmp_path / "out"
    one_line_error(run_cli("pull", MODEL, "--from", reg, "-o", out), "digest", "does not match the index")
    assert not out.exists() and tree_snapshot(reg) == snap


def _link(name: str, kind: bytes, to: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, to
    return info


def _reg_file(name: str, size: int = 5) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


@pytest.mark.parametrize("make,fragment", [
    (lambda d: [_reg_file("../evil.txt")], "leaves the folder"),
    (lambda d: [_reg_file("tuning/../../evil.txt")], "leaves the folder"),
    (lambda d: [_reg_file(str(d / "abs-evil.txt"))], "absolute"),
    (lambda d: [_link("tuning/link", tarfile.SYMTYPE, str(d / "evil.txt"))], "is a link"),
    (lambda d: [_link("hard", tarfile.LNKTYPE, "../evil.txt")], "is a link"),
    (lambda d: [_link("fifo", tarfile.FIFOTYPE, "")], "not a regular file"),
])
def test_hostile_tar_entries_refused(dist, tmp_path, run_cli, one_line_error, tree_snapshot, make, fragment):
    files = pack_members(dist.pack)
    bad = write_tar(tmp_path / "bad.tar.gz", files, extra=make(tmp_path))
    before = sorted(p.name for p in tmp_path.iterdir())
    one_line_error(run_cli("publish", bad, "--to", tmp_path / "reg"), fragment)
    evil = registry_listing(tmp_path / "evil", bad, index_entry(dist.pack))
    snap = tree_snapshot(evil)
    one_line_error(run_cli("pull", MODEL, "--from", evil, "-o", tmp_path / "out"), fragment)
    one_line_error(run_cli("logs", "import", bad, "--logs-dir", tmp_path / "logs"), fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["evil"])
    assert tree_snapshot(evil) == snap
    assert not (tmp_path.parent / "evil.txt").exists() and not (tmp_path / "abs-evil.txt").exists()


@pytest.mark.parametrize("via", ["folder", "http"])
def test_truncated_download_refused(dist, tmp_path, run_cli, one_line_error, tree_snapshot, http_registry, via):
    from alexnet_tvm.distribution.registry import FolderRegistry

    reg = tmp_path / "reg"
    entry = FolderRegistry(reg).publish(dist.pack)
    data = (reg / entry.file).read_bytes()
    (reg / entry.file).write_bytes(data[: len(data) // 2])  # an upload cut short, index unchanged
    snap = tree_snapshot(reg)
    src = http_registry(reg, publish=False) if via == "http" else reg
    out = tmp_path / "out"
    one_line_error(run_cli("pull", MODEL, "--from", src, "-o", out), "truncated")
    assert not out.exists() and tree_snapshot(reg) == snap


@pytest.mark.parametrize("damage", [lambda b: b[:-200], lambda b: b[:4000] + bytes([b[4000] ^ 0x10]) + b[4001:]],
                         ids=["cut", "flipped"])
def test_damaged_archive_with_matching_digest_refused(dist, tmp_path, run_cli, one_line_error, damage):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(damage(dist.pack.read_bytes()))
    evil = registry_listing(tmp_path / "evil", cut, index_entry(dist.pack))
    one_line_error(run_cli("pull", MODEL, "--from", evil, "-o", tmp_path / "out"), "corrupt")
    one_line_error(run_cli("publish", cut, "--to", tmp_path / "reg"), "corrupt")
    assert not (tmp_path / "out").exists() and not (tmp_path / "reg").exists()


def test_unreachable_registry_refused_within_timeout(dist, tmp_path, run_cli, one_line_error):
    port = free_port()  # nothing listens there
    one_line_error(run_cli("pull", MODEL, "--from", f"http://127.0.0.1:{port}", "-o", tmp_path / "o"),
                   "unreachable")
    with socket.socket() as s:  # accepts connections, never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        t0 = time.monotonic()
        one_line_error(run_cli("pull", MODEL, "--from", url, "--timeout", "1", "-o", tmp_path / "o"),
                       "unreachable", "within 1 s")
        one_line_error(run_cli("publish", dist.pack, "--to", url, "--timeout", "1"), "unreachable")
        assert time.monotonic() - t0 < 20
    assert not (tmp_path / "o").exists()


def test_incompatible_tvm_or_target_refused(dist, tmp_path, run_cli, one_line_error):
    from alexnet_tvm.distribution.registry import FolderRegistry

    for i, (edit, fragment, hidden_fragment) in enumerate([
        (lambda m: m.update(tvm_version="0.19.0"), "TVM 0.19.0", "manifest '0.19.0'"),
        (lambda m: m["target"].update(host_features=["avx2", "avx512_nonexistent"]), "lacks avx512_nonexistent",
         "lacks avx512_nonexistent"),
    ]):
        files = pack_members(dist.pack)
        manifest = json.loads(files["manifest.json"])
        edit(manifest)
        files["manifest.json"] = json.dumps(manifest).encode()
        del files["verify.json"]  # it vouches for the unedited manifest only
        other = repack(tmp_path / f"other{i}.tar.gz", files)
        reg = tmp_path / f"reg{i}"
        FolderRegistry(reg).publish(other)  # a registry may hold packs for other machines
        one_line_error(run_cli("pull", MODEL, "--from", reg, "-o", tmp_path / "out"), "runs here", fragment)
        # and an index that hides it (claims this TVM / no features): the pack's own manifest decides
        evil = registry_listing(tmp_path / f"evil{i}", other, index_entry(dist.pack))
        one_line_error(run_cli("pull", MODEL, "--from", evil, "-o", tmp_path / "out"), hidden_fragment)
    assert not (tmp_path / "out").exists()


def test_existing_output_and_corrupt_index_refused(dist, tmp_path, run_cli, one_line_error, tree_snapshot):
    from alexnet_tvm.distribution.registry import FolderRegistry

    reg = tmp_path / "reg"
    FolderRegistry(reg).publish(dist.pack)
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    one_line_error(run_cli("pull", MODEL, "--from", reg, "-o", out), "already exists")
    assert tree_snapshot(out) == {"keep.txt": hashlib.sha256(b"mine").hexdigest()}
    assert run_cli("pull", MODEL, "--from", reg, "-o", out, "--force").exit_code == 0
    assert not (out / "keep.txt").exists() and (out / "model.so").is_file()

    (reg / "index.json").write_text('{"format": 1, "packs": [{"model": "m"')
    snap = tree_snapshot(reg)
    one_line_error(run_cli("pull", MODEL, "--from", reg, "-o", tmp_path / "o2"), "corrupt index")
    one_line_error(run_cli("publish", dist.pack, "--to", reg), "corrupt index")
    assert tree_snapshot(reg) == snap
    (reg / "index.json").write_text(json.dumps({"packs": [dict(index_entry(dist.pack), file="../../etc/passwd")]}))
    one_line_error(run_cli("pull", MODEL, "--from", reg, "-o", tmp_path / "o2"), "unsafe path")


def test_concurrent_publishers_all_land_in_a_valid_index(dist, tmp_path):
    from alexnet_tvm.distribution.pack import pack_artifact
    from alexnet_tvm.distribution.registry import FolderRegistry

    packs = []
    for i in range(4):  # four distinct packs: their reports differ
        rep = write_report(tmp_path / f"rep{i}.json", dist.artifact, against=f"ref{i}")
        packs.append(pack_artifact(dist.artifact, tmp_path / f"p{i}.tar.gz", report=rep).out)
    reg = tmp_path / "reg"
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def publish(p: Path) -> None:
        try:
            barrier.wait()
            FolderRegistry(reg).publish(p)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=publish, args=(p,)) for p in packs[:2]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # and two processes at once
    exe = Path(sys.executable).parent / "alexnet-tvm"
    procs = [subprocess.Popen([str(exe), "publish", str(p), "--to", str(reg)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for p in packs[2:]]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    index = _index(reg)
    assert len(index["packs"]) == 4
    assert {e["verify"]["against"] for e in index["packs"]} == {"ref0", "ref1", "ref2", "ref3"}
    assert all((reg / e["file"]).is_file() for e in index["packs"])
    assert not [p for p in reg.rglob("*.tmp")]


def test_publisher_blocked_by_held_lock_is_refused(dist, tmp_path, run_cli, one_line_error, tree_snapshot):
    from alexnet_tvm.distribution.pack import pack_artifact
    from alexnet_tvm.distribution.registry import FolderRegistry

    reg = tmp_path / "reg"
    FolderRegistry(reg).publish(dist.pack)
    other = tmp_path / "other.tar.gz"
    pack_artifact(dist.artifact, other)
    snap = tree_snapshot(reg)
    with FolderRegistry(reg).lock():
        one_line_error(run_cli("publish", other, "--to", reg, "--lock-timeout", "0.3"), "busy", "try again")
    assert tree_snapshot(reg) == snap
    assert run_cli("publish", other, "--to", reg).exit_code == 0
    assert len(_index(reg)["packs"]) == 2


# --------------------------------------------------------------------------- tuning logs


def _db(folder: Path, workloads: list[str], records: list[tuple[int, str, list[float]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "database_workload.json").write_text("".join(f'["{w}",{{"m":"{w}"}}]\n' for w in workloads))
    (folder / "database_tuning_record.json").write_text(
        "".join(f'[{i},[["{trace}"],{json.dumps(secs)},{{"kind":"llvm"}},null]]\n' for i, trace, secs in records))
    return folder


def _read_db(folder: Path) -> tuple[list[str], list[tuple[str, str, float]]]:
    """(workload names, [(workload name, trace, mean secs)]): index-free, to compare merges."""
    wl = [json.loads(line)[0] for line in (folder / "database_workload.json").read_text().splitlines()]
    recs = []
    for line in (folder / "database_tuning_record.json").read_text().splitlines():
        i, r = json.loads(line)
        recs.append((wl[i], r[0][0], sum(r[1]) / len(r[1])))
    return wl, recs


def test_merge_reindexes_workloads_dedups_and_keeps_best(tmp_path):
    from alexnet_tvm.records import merge_tuning_records

    dest = _db(tmp_path / "dest", ["A", "B"], [(0, "a1", [2.0]), (1, "b1", [1.0])])
    src = _db(tmp_path / "src", ["C", "A"], [(0, "c1", [3.0]), (1, "a1", [2.0]), (1, "a0", [0.5]),
                                            (1, "a9", [9.0])])
    r = merge_tuning_records(src, dest, keep=2, validate=False)  # made-up records
    assert (r.workloads_added, r.records_added, r.records_after) == (1, 2, 4)
    wl, recs = _read_db(dest)
    assert wl == ["A", "B", "C"]  # existing indices kept, C appended
    assert sorted(recs) == sorted([("A", "a1", 2.0), ("B", "b1", 1.0), ("C", "c1", 3.0), ("A", "a0", 0.5)])
    before = {n: (dest / n).read_bytes() for n in ("database_workload.json", "database_tuning_record.json")}
    merge_tuning_records(src, dest, keep=2, validate=False)  # idempotent
    assert {n: (dest / n).read_bytes() for n in before} == before
    merge_tuning_records(src, dest, keep=1, validate=False)
    assert sorted(_read_db(dest)[1]) == [("A", "a0", 0.5), ("B", "b1", 1.0), ("C", "c1", 3.0)]


def test_merge_with_replace_drops_the_old_records_of_incoming_workloads(tmp_path):
    from alexnet_tvm.records import merge_tuning_records

    # old records (timed on a faster machine) look better, yet the incoming ones must win
    dest = _db(tmp_path / "dest", ["A", "B"], [(0, "a1", [0.1]), (0, "a2", [0.2]), (1, "b1", [1.0])])
    src = _db(tmp_path / "src", ["A", "C"], [(0, "a7", [0.7]), (1, "c1", [3.0])])
    r = merge_tuning_records(src, dest, validate=False, replace=True)
    assert (r.records_before, r.records_after, r.records_added) == (3, 3, 2)
    wl, recs = _read_db(dest)
    assert wl == ["A", "B", "C"]
    assert sorted(recs) == [("A", "a7", 0.7), ("B", "b1", 1.0), ("C", "c1", 3.0)]


def test_duplicate_workload_lines_are_folded_and_merges_match_by_hash(tmp_path):
    """Two lines of one workload (same structural hash, other parameter names) make MetaSchedule
    file new records one line too early; they are folded, records re-pointed, and a merge maps
    an incoming copy onto the existing line instead of appending a duplicate."""
    from alexnet_tvm.records import dedupe_workloads, merge_tuning_records

    dest = _db(tmp_path / "dest", ["A", "B"], [(0, "a1", [1.0]), (1, "b1", [2.0])])
    wl = dest / "database_workload.json"
    wl.write_text(wl.read_text() + '["A",{"m":"A, other names"}]\n["C",{"m":"C"}]\n')
    rec = dest / "database_tuning_record.json"
    rec.write_text(rec.read_text() + '[2,[["a2"],[0.5],{"kind":"llvm"},null]]\n[3,[["c1"],[3.0],{"kind":"llvm"},null]]\n')
    assert dedupe_workloads(dest) == 1
    names, recs = _read_db(dest)
    assert names == ["A", "B", "C"]
    assert sorted(recs) == [("A", "a1", 1.0), ("A", "a2", 0.5), ("B", "b1", 2.0), ("C", "c1", 3.0)]
    assert dedupe_workloads(dest) == 0

    src = tmp_path / "src"
    src.mkdir()
    (src / "database_workload.json").write_text('["B",{"m":"B, renamed"}]\n')
    (src / "database_tuning_record.json").write_text('[0,[["b9"],[0.1],{"kind":"llvm"},null]]\n')
    r = merge_tuning_records(src, dest, validate=False, replace=True)
    assert r.workloads_added == 0
    assert sorted(_read_db(dest)[1]) == [("A", "a1", 1.0), ("A", "a2", 0.5), ("B", "b9", 0.1), ("C", "c1", 3.0)]


def test_logs_export_import_roundtrip_with_real_records(dist, tmp_path, run_cli, one_line_error, tree_snapshot):
    from alexnet_tvm.records import check_database

    src_logs = tmp_path / "a"
    _committed_records(src_logs / "x86-avx512" / _host())
    archive = tmp_path / "logs.tar.gz"
    res = run_cli("logs", "export", "x86-avx512", "-o", archive, "--logs-dir", src_logs)
    assert res.exit_code == 0, res.output
    dst_logs = tmp_path / "b"
    res = run_cli("logs", "import", archive, "--logs-dir", dst_logs, "--keep", "100000")
    assert res.exit_code == 0, res.output
    for name in ("database_workload.json", "database_tuning_record.json"):
        assert (dst_logs / "x86-avx512" / _host() / name).read_bytes() == \
            (src_logs / "x86-avx512" / _host() / name).read_bytes()
    snap = tree_snapshot(dst_logs)
    assert run_cli("logs", "import", archive, "--logs-dir", dst_logs, "--keep", "100000").exit_code == 0  # no-op
    assert tree_snapshot(dst_logs) == snap
    # a pack's records, into another target's folder
    res = run_cli("logs", "import", dist.pack, "--logs-dir", dst_logs, "--target", "x86-copy")
    assert res.exit_code == 0, res.output
    expected = check_database(src_logs / "x86-avx512" / _host())  # the pack carries the same committed records
    assert check_database(dst_logs / "x86-copy" / _host())[0] == expected[0]
    assert check_database(dst_logs / "x86-copy" / _host())[1] <= expected[1]  # at most 8 per workload

    # tampered or truncated archive, unsafe target: refused, the databases untouched
    snap = tree_snapshot(dst_logs)
    files = pack_members(archive)
    files["tuning/database_tuning_record.json"] = files["tuning/database_tuning_record.json"][:-10]
    bad = write_tar(tmp_path / "bad.tar.gz", files)
    one_line_error(run_cli("logs", "import", bad, "--logs-dir", dst_logs), "does not match")
    repack(bad, files)
    one_line_error(run_cli("logs", "import", bad, "--logs-dir", dst_logs), "truncated")
    one_line_error(run_cli("logs", "import", archive, "--logs-dir", dst_logs, "--target", "../x"), "not a plain name")
    one_line_error(run_cli("logs", "export", "nope", "-o", tmp_path / "n.tar.gz", "--logs-dir", src_logs),
                   "no tuning records")
    fake = _db(tmp_path / "fake" / "x86-avx512" / _host(), ["F"], [(0, "f1", [1.0])])  # not MetaSchedule's
    assert run_cli("logs", "export", "x86-avx512", "-o", tmp_path / "fake.tar.gz", "--logs-dir",
                   fake.parent.parent).exit_code == 0
    one_line_error(run_cli("logs", "import", tmp_path / "fake.tar.gz", "--logs-dir", dst_logs),
                   "MetaSchedule cannot read", "nothing was merged")
    assert tree_snapshot(dst_logs) == snap


def test_dropped_workloads_take_their_records_and_the_rest_are_repointed(tmp_path):
    """A kernel whose definition changed leaves dead workloads behind; dropping them keeps every
    other workload's records, re-pointed to the workload's new line."""
    from alexnet_tvm.records import drop_workloads

    db = _db(tmp_path / "db", ["A", "B", "C"], [(0, "a1", [1.0]), (1, "b1", [2.0]), (2, "c1", [3.0]), (1, "b2", [4.0])])
    assert drop_workloads(db, lambda key: key != "B") == 1
    assert _read_db(db) == (["A", "C"], [("A", "a1", 1.0), ("C", "c1", 3.0)])
    assert drop_workloads(db, lambda key: True) == 0
