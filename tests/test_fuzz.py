"""Property-based fuzzing of every reader that takes files from elsewhere: the pack reader, the
manifest loader, the tuning-database reader and the ais_bench result reader.

Random bytes and mutations of valid files must give a result or the reader's typed error
(a :class:`ToolkitError`), never another exception. The valid files are made here without
TVM (a pack's library is only checksummed, never loaded, by the reader), so the whole module
runs in well under a minute.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alexnet_tvm.errors import ToolkitError

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """``original`` with a few bytes flipped, a slice cut out or inserted, or truncated."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        else:
            del data[pos:]
    return bytes(data)


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="alexnet-tvm-fuzz-"))


# --------------------------------------------------------------------------- a valid artifact and pack, no TVM


def _manifest(files: dict[str, bytes]) -> dict:
    return {
        "format_version": 1, "model": {"name": "m"},
        "input": {"name": "input", "shape": [1, 3, 32, 32], "dtype": "float32"},
        "output": {"shape": [1, 4], "dtype": "float32"},
        "meta": {"arch": "cifar", "num_classes": 4, "input_size": 32, "resize_size": 32,
                 "class_names": ["a", "b", "c", "d"]},
        "target": {"name": "x86-avx2", "kind": "llvm", "host_features": ["avx2"], "tvm_target": "llvm"},
        "tvm_version": "0.27.0", "num_params": 1,
        "files": {n: hashlib.sha256(b).hexdigest() for n, b in files.items()},
    }


def _artifact_files() -> dict[str, bytes]:
    files = {"model.so": b"\x7fELF" + bytes(range(256)) * 4, "params.bin": b"\0" * 512}
    files["manifest.json"] = json.dumps(_manifest(files)).encode()
    return files


@pytest.fixture(scope="module")
def valid_pack(tmp_path_factory) -> bytes:
    from alexnet_tvm.distribution.archive import PACK_KIND, PACK_META, VERIFY_REPORT, write_archive

    files = _artifact_files()
    report = {"passed": True, "against": "pytorch", "images": 2, "failures": [],
              "artifact_digest": "sha256:" + hashlib.sha256(files["manifest.json"]).hexdigest(),
              "random": {"images": 2, "max_abs_error": 0.0, "top1_agreement": 1.0}}
    files[VERIFY_REPORT] = json.dumps(report).encode()
    files[PACK_META] = json.dumps({"format": 1, "kind": PACK_KIND, "created": "2024-01-01T00:00:00+00:00",
                                   "model": "m", "target": "x86-avx2", "batch": 1, "tvm_version": "0.27.0",
                                   "verify": {"passed": True, "against": "pytorch"}, "tuning": None}).encode()
    out = tmp_path_factory.mktemp("fuzz") / "p.tar.gz"
    write_archive(out, files)
    return out.read_bytes()


def _open_pack(data: bytes) -> None:
    from alexnet_tvm.distribution.pack import open_pack

    tmp = _scratch()
    try:
        (tmp / "p.tar.gz").write_bytes(data)
        try:
            open_pack(tmp / "p.tar.gz", tmp / "x")
        except ToolkitError:
            pass
    finally:
        shutil.rmtree(tmp)


def test_valid_pack_opens(valid_pack):
    from alexnet_tvm.distribution.pack import open_pack

    tmp = _scratch()
    try:
        (tmp / "p.tar.gz").write_bytes(valid_pack)
        assert open_pack(tmp / "p.tar.gz", tmp / "x").verify_report()["images"] == 2
    finally:
        shutil.rmtree(tmp)


@FUZZ
@given(data=st.data())
def test_pack_reader_mutations(valid_pack, data):
    _open_pack(data.draw(mutated(valid_pack)))


@FUZZ
@given(st.binary(max_size=2048))
def test_pack_reader_random_bytes(blob):
    _open_pack(blob)


@FUZZ
@given(data=st.data())
def test_pack_reader_mutated_members(valid_pack, data):
    """Contents mutated under a SHA256SUMS that matches them (the schema's and checksums' turn)."""
    import io
    import tarfile

    from alexnet_tvm.distribution.archive import SUMS, format_sums

    with tarfile.open(fileobj=io.BytesIO(valid_pack)) as t:
        files = {m.name: t.extractfile(m).read() for m in t if m.isreg()}
    name = data.draw(st.sampled_from(["manifest.json", "pack.json", "verify.json", "SHA256SUMS"]))
    files[name] = data.draw(mutated(files[name]))
    if name != SUMS:
        files[SUMS] = format_sums({n: hashlib.sha256(b).hexdigest() for n, b in files.items() if n != SUMS}).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as t:
        for n in [SUMS, *[k for k in files if k != SUMS]]:
            info = tarfile.TarInfo(n)
            info.size = len(files[n])
            t.addfile(info, io.BytesIO(files[n]))
    _open_pack(raw.getvalue())


# --------------------------------------------------------------------------- the manifest loader

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=4), max_leaves=20)


def _load_manifest(text: bytes) -> None:
    from alexnet_tvm.runtime.artifact import check_files, read_manifest

    tmp = _scratch()
    try:
        for name, blob in _artifact_files().items():
            (tmp / name).write_bytes(blob)
        (tmp / "manifest.json").write_bytes(text)
        try:
            check_files(tmp, read_manifest(tmp))
        except ToolkitError:
            pass
    finally:
        shutil.rmtree(tmp)


@FUZZ
@given(data=st.data())
def test_manifest_loader_mutations(data):
    _load_manifest(data.draw(mutated(_artifact_files()["manifest.json"])))


@FUZZ
@given(path=st.lists(st.sampled_from(["input", "shape", "output", "meta", "target", "files", "model.so", "name",
                                      "num_classes", "input_size", "class_names", "format_version"]),
                     min_size=1, max_size=3),
       value=json_values)
def test_manifest_loader_replaced_values(path, value):
    manifest = json.loads(_artifact_files()["manifest.json"])
    node = manifest
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            break
    else:
        node[path[-1]] = value
    _load_manifest(json.dumps(manifest).encode())


# --------------------------------------------------------------------------- the tuning-database reader

_WORKLOADS = b'["abc", {"mod": 1}]\n["def", {"mod": 2}]\n'
_RECORDS = b'[0, [[["t"]], [1.5e-05], {}, null]]\n[1, [[["u"]], [2e-05], {}, null]]\n'


def _read_database(workloads: bytes, records: bytes, repair: bool) -> None:
    from alexnet_tvm.records import check_database, database_digest

    tmp = _scratch()
    try:
        (tmp / "database_workload.json").write_bytes(workloads)
        (tmp / "database_tuning_record.json").write_bytes(records)
        try:
            check_database(tmp, repair=repair)
            database_digest(tmp)
        except ToolkitError:
            pass
    finally:
        shutil.rmtree(tmp)


@FUZZ
@given(data=st.data(), repair=st.booleans())
def test_database_reader_mutations(data, repair):
    which = data.draw(st.sampled_from(["workloads", "records"]))
    w = data.draw(mutated(_WORKLOADS)) if which == "workloads" else _WORKLOADS
    r = data.draw(mutated(_RECORDS)) if which == "records" else _RECORDS
    _read_database(w, r, repair)


@FUZZ
@given(w=st.binary(max_size=512), r=st.binary(max_size=512), repair=st.booleans())
def test_database_reader_random_bytes(w, r, repair):
    _read_database(w, r, repair)


# --------------------------------------------------------------------------- the ais_bench result reader


def _results_folder(tmp: Path, fmt: str, blob: bytes | None, summary: bytes | None) -> Path:
    """ais_bench's current layout: run/<input>_0.<fmt> for two inputs, run_summary.json beside it."""
    run = tmp / "run"
    run.mkdir()
    rows = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
    for i, row in enumerate(rows):
        path = run / f"img{i}_0.{fmt}"
        if fmt == "txt":
            path.write_text(" ".join(f"{v:f}" for v in row) + " \n")
        elif fmt == "bin":
            row.tofile(path)
        else:
            np.save(path, row[None])
    if blob is not None:
        (run / f"img0_0.{fmt}").write_bytes(blob)
    if summary is not None:
        (tmp / "run_summary.json").write_bytes(summary)
    return run


def _read_results(fmt: str, blob: bytes | None, summary: bytes | None) -> None:
    from alexnet_tvm.runtime.ascend import load_results

    tmp = _scratch()
    try:
        run = _results_folder(tmp, fmt, blob, summary)
        try:
            load_results(run, 4, input_names=["img0", "img1"])
        except ToolkitError:
            pass
    finally:
        shutil.rmtree(tmp)


def test_valid_results_read():
    from alexnet_tvm.runtime.ascend import load_results

    tmp = _scratch()
    try:
        res = load_results(_results_folder(tmp, "txt", None, None), 4, input_names=["img0", "img1"])
        assert res.logits.shape == (2, 4)
    finally:
        shutil.rmtree(tmp)


@FUZZ
@given(data=st.data(), fmt=st.sampled_from(["txt", "bin", "npy"]))
def test_result_reader_mutations(data, fmt):
    tmp = _scratch()
    try:
        original = (_results_folder(tmp, fmt, None, None) / f"img0_0.{fmt}").read_bytes()
    finally:
        shutil.rmtree(tmp)
    _read_results(fmt, data.draw(mutated(original)), None)


@FUZZ
@given(blob=st.binary(max_size=256), summary=st.one_of(st.none(), st.binary(max_size=256)),
       fmt=st.sampled_from(["txt", "bin", "npy"]))
def test_result_reader_random_bytes(blob, summary, fmt):
    _read_results(fmt, blob, summary)


@FUZZ
@given(summary=json_values)
def test_result_reader_random_summary(summary):
    _read_results("txt", None, json.dumps(summary).encode())
