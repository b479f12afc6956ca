"""Hostile inputs, round 2 (issue 28): the runtime and the commands around it.

A manifest edited but kept self-consistent (its digests rewritten) must be checked against
the library itself before any input is run; report files are never replaced without
--force nor written under a file; images that would grow past the limit once resized, named
pipes and lying .npy headers are one error line; SIGTERM cleans up as Ctrl-C does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.artifacts import build_tiny
from helpers.models import TARGET, repo_targets

CLI = [str(Path(sys.executable).parent / "alexnet-tvm")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """The tiny artifact (batch 1), the same model built for batch 2, and a 32x32 image."""
    from alexnet_tvm.compile.build import BuildConfig, build

    root = tmp_path_factory.mktemp("hostile-runtime")
    ckpt, art, logs = build_tiny(root)
    other = root / "art-b2"
    build(BuildConfig(model=ckpt, target=repo_targets()[TARGET], out=other, logs_dir=logs,
                      batch=2))
    img = root / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(img)
    return {"root": root, "ckpt": ckpt, "art": art, "other": other, "img": img}


def _copy(tiny: dict, dest: Path) -> Path:
    shutil.copytree(tiny["art"], dest)
    return dest


def _rewrite(folder: Path, edit=None) -> None:
    """Edit the manifest and rewrite every file digest, as someone covering their tracks would."""
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    if edit:
        edit(m)
    m["files"] = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in m["files"]}
    path.write_text(json.dumps(m))


def _batch(n: int):
    def edit(m):
        m["input"]["shape"][0] = n
        m["output"]["shape"][0] = n
    return edit


def _size(s: int):
    def edit(m):
        m["input"]["shape"][2:] = [s, s]
        m["meta"]["input_size"] = m["meta"]["resize_size"] = s
    return edit


def _classes(n: int):
    def edit(m):
        m["meta"]["num_classes"] = n
        m["meta"]["class_names"] = [f"c{i}" for i in range(n)]
        m["output"]["shape"][1] = n
    return edit


@pytest.mark.parametrize("edit,fragment", [
    (_size(64), "does not take input [1, 3, 64, 64]"),
    (_batch(4), "does not take input [4, 3, 32, 32]"),
    (_batch(10 ** 12), "more than"),
    (_classes(6), "returns float32 [1, 4]"),
    (lambda m: m.update(precision="int8"), "precision 'int8' disagrees"),
    (lambda m: m.update(precision="fp64"), "precision: must be one of"),
    (lambda m: m["meta"].update(std=[0, 0, 0]), "std: must be"),
    (lambda m: m["meta"].update(mean=[0, float("nan"), 0]), "mean: must be"),
], ids=["input-64", "batch-4", "batch-1e12", "six-classes", "int8-on-fp32", "fp64", "std-zero", "mean-nan"])
def test_self_consistent_manifest_checked_against_the_library(tiny, tmp_path, run_cli, one_line_error, edit,
                                                              fragment):
    art = _copy(tiny, tmp_path / "art")
    _rewrite(art, edit)
    one_line_error(run_cli("predict", art, tiny["img"]), fragment)


def test_another_builds_library_refused_at_load(tiny, tmp_path, run_cli, one_line_error):
    art = _copy(tiny, tmp_path / "art")
    shutil.copy(tiny["other"] / "model.so", art / "model.so")
    _rewrite(art)
    one_line_error(run_cli("predict", art, tiny["img"]), "does not take input [1, 3, 32, 32]")


def test_truncated_library_is_one_line_not_a_bus_error(tiny, tmp_path):
    art = _copy(tiny, tmp_path / "art")
    (art / "model.so").write_bytes((art / "model.so").read_bytes()[:5000])
    _rewrite(art)
    res = subprocess.run([*CLI, "predict", str(art), str(tiny["img"])], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "truncated" in res.stderr


@pytest.mark.parametrize("make", [
    lambda x: np.frombuffer(x.tobytes(), np.float32).reshape(x.shape),  # read-only
    lambda x: np.asfortranarray(x),
    lambda x: x.astype(np.float64),
    lambda x: x[..., ::-1].copy()[..., ::-1],  # a negative-stride view
], ids=["frombuffer", "fortran", "float64", "reversed-view"])
def test_run_batch_takes_any_layout(tiny, make):
    from alexnet_tvm.runtime.artifact import load_artifact

    art = load_artifact(tiny["art"])
    x = np.random.default_rng(1).standard_normal(art.input_shape).astype(np.float32)
    want = art.run_batch(x.copy())
    np.testing.assert_array_equal(art.run_batch(make(x)), want)


def test_read_only_aligned_and_memory_mapped_inputs(tiny, tmp_path):
    from alexnet_tvm.runtime.artifact import load_artifact

    art = load_artifact(tiny["art"])
    x = np.random.default_rng(2).standard_normal(art.input_shape).astype(np.float32)
    want = art.run_batch(x.copy())
    raw = np.empty(x.nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    aligned = raw[start:start + x.nbytes].view(np.float32).reshape(x.shape)
    aligned[...] = x
    aligned.flags.writeable = False
    assert aligned.ctypes.data % 64 == 0
    np.testing.assert_array_equal(art.run_batch(aligned), want)
    np.save(tmp_path / "x.npy", np.concatenate([x, x]))
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_array_equal(art.predict(mapped), np.concatenate([want, want]))


def _png(path: Path, w: int, h: int) -> Path:
    Image.new("RGB", (w, h)).save(path)
    return path


def test_strip_that_would_grow_once_resized_is_refused(tiny, tmp_path, run_cli, one_line_error):
    strip = _png(tmp_path / "strip.png", 400_000, 1)
    assert strip.stat().st_size < 5_000
    one_line_error(run_cli("predict", tiny["art"], strip), "once its short side is resized", "over the limit")


def test_named_pipe_is_refused_not_waited_on(tiny, tmp_path):
    fifo = tmp_path / "img.png"
    os.mkfifo(fifo)
    res = subprocess.run([*CLI, "predict", str(tiny["art"]), str(fifo)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and "not a regular file" in res.stderr, res.stderr


def _npy_header(shape: tuple) -> bytes:
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def test_npy_header_claiming_terabytes(tmp_path, run_cli, one_line_error):
    results = tmp_path / "results"
    results.mkdir()
    (results / "img_0_0.npy").write_bytes(_npy_header((10 ** 12,)) + b"\0" * 40)
    one_line_error(run_cli("ascend", "read", results, "--classes", "10"), "header says")
    from alexnet_tvm.errors import AscendError
    from alexnet_tvm.runtime.ascend.inputs import read_bin_input

    with pytest.raises(AscendError, match="header says"):
        read_bin_input(results / "img_0_0.npy")


@pytest.mark.parametrize("cmd", ["verify", "evaluate"])
def test_reports_never_replaced_without_force_nor_written_under_a_file(tiny, tmp_path, run_cli, one_line_error,
                                                                      cmd, image_folder_writer):
    data = image_folder_writer(tmp_path / "val", {c: 1 for c in ("w", "x", "y", "z")})
    args = {"verify": ["verify", tiny["art"], "--against", "pytorch", "--random", "1"],
            "evaluate": ["evaluate", tiny["art"], data]}[cmd]
    flags = {"verify": ("--report", "--junit"), "evaluate": ("--report", "--markdown")}[cmd]
    blocker = tmp_path / "x.png"
    blocker.write_text("mine")
    for flag in flags:
        one_line_error(run_cli(*args, flag, blocker / "r.json"), "is a file")
        kept = tmp_path / f"kept{flag}"
        kept.write_text("mine")
        one_line_error(run_cli(*args, flag, kept), "already exists", "--force")
        assert kept.read_text() == "mine"
    one_line_error(run_cli(*args, flags[0], tmp_path / "same", flags[1], tmp_path / "same"), "same file")
    assert blocker.read_text() == "mine"
    res = run_cli(*args, flags[0], tmp_path / f"kept{flags[0]}", "--force")
    assert res.exit_code in (0, 1) and (tmp_path / f"kept{flags[0]}").read_text() != "mine"


def test_tracker_on_a_busy_port_is_one_line(run_cli, one_line_error):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_line_error(run_cli("rpc", "tracker", "--port", port), f"127.0.0.1:{port}", "choose another --port")


def _leftovers(tmp: Path, out: Path) -> list[str]:
    return sorted([p.name for p in tmp.iterdir()] + [p.name for p in out.parent.iterdir() if p.name.startswith(".")])


def _wait_for(pred, proc: subprocess.Popen, seconds: float = 180, poll: float = 0.05) -> bool:
    """Until ``pred()`` or ``proc`` ended (bounded): an event, so a busy machine only waits longer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if pred():
            return True
        time.sleep(poll)
    return False


def test_sigterm_during_build_leaves_nothing(tiny, tmp_path):
    """SIGTERM at several moments once a build is under way (its temp folder exists: import, compile,
    export): exit 143, no temp folder, no output."""
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    interrupted = 0
    for after in (0.0, 1.5, 3.0):
        (tmp_path / "tmp").mkdir(exist_ok=True)
        out = tmp_path / f"outs{after}" / "art"
        out.parent.mkdir()
        proc = subprocess.Popen([*CLI, "build", str(tiny["ckpt"]), "--target", TARGET, "-o", str(out),
                                 "--logs-dir", str(tmp_path / "logs")], env=env, stderr=subprocess.PIPE, text=True)
        started = _wait_for(lambda: any((tmp_path / "tmp").glob("alexnet-tvm-build-*")), proc)
        time.sleep(after)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:  # finished before the signal: nothing to clean
            continue
        assert started, err
        assert proc.returncode == 143 and "Traceback" not in err, err
        assert _leftovers(tmp_path / "tmp", out) == [], _leftovers(tmp_path / "tmp", out)
        assert not out.exists()
        interrupted += 1
    assert interrupted >= 1  # at least one build was stopped mid-way


def test_sigterm_during_the_export_leaves_no_hidden_folder(tiny, tmp_path):
    """The moment the export's hidden staging folder (``.art.XXXX.tmp``) appears beside the output,
    SIGTERM: exit 143, neither it nor the temp folders left, no output."""
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "outs" / "art"
    out.parent.mkdir()
    proc = subprocess.Popen([*CLI, "build", str(tiny["ckpt"]), "--target", TARGET, "-o", str(out),
                             "--logs-dir", str(tmp_path / "logs")], env=env, stderr=subprocess.PIPE, text=True)
    staged = _wait_for(lambda: any(out.parent.glob(".art.*.tmp")), proc, poll=0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert staged and proc.returncode == 143 and "Traceback" not in err, err
    assert _leftovers(tmp_path / "tmp", out) == [] and not out.exists()
