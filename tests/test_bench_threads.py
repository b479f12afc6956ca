"""bench --threads 1,2: every runtime (OpenVINO included) at each count, a row per (batch, threads),
the headline ratio against the fastest other runtime; OpenVINO missing is one warning."""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest

from helpers.models import write_tiny_checkpoint

OTHERS = ("pytorch", "onnxruntime", "openvino")


def test_bench_thread_list_runs_every_runtime_at_each_count(tmp_path, run_cli):
    pytest.importorskip("openvino")  # the dev extra installs it
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    out = tmp_path / "bench"
    res = run_cli("bench", model, "--target", "x86-avx2", "--batch", "1,2", "--threads", "1,2", "--runs", "3",
                  "-o", out)
    assert res.exit_code == 0, res.output
    r = json.loads((out / "bench.json").read_text())
    assert (r["threads"], r["thread_counts"]) == (2, [1, 2])
    assert [(row["batch"], row["threads"]) for row in r["rows"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for b in (1, 2):  # one library per batch, built for the largest count
        manifest = json.loads((out / f"artifact-tvm-b{b}" / "manifest.json").read_text())
        assert manifest["target"]["target"]["num-cores"] == 2
    for row in r["rows"]:
        for rt in OTHERS + ("tvm",):
            t = row[rt]
            assert t["batch"] == row["batch"] and t["runs"] == 3 and 0 < t["p10_ms"] <= t["median_ms"] <= t["p90_ms"]
        # what each runtime reported back: torch's pool, the ORT session's and the OpenVINO compiled
        # model's settings, and the TVM pool of the thread the row was timed on
        assert row["threads_used"] == {rt: row["threads"] for rt in OTHERS + ("tvm",)}
        fastest = max(OTHERS, key=lambda k: row[k]["images_per_s"])
        assert row["best_other"] == fastest
        assert row["speedup_vs_best_other"] == pytest.approx(row["tvm"]["images_per_s"] / row[fastest]["images_per_s"])
        for k in OTHERS:
            assert row[f"speedup_vs_{k}"] == pytest.approx(row[k]["median_ms"] / row["tvm"]["median_ms"])
    md = (out / "bench.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert table[0].startswith("| batch | threads |") and "openvino fps" in table[0] and "TVM vs best other" in table[0]
    assert [ln.split(" | ")[:2] for ln in table[1:5]] == [["| 1", "1"], ["| 1", "2"], ["| 2", "1"], ["| 2", "2"]]
    assert "## images/s against threads" in md
    for b in (1, 2):
        rows = {row["threads"]: row for row in r["rows"] if row["batch"] == b}
        assert f"| batch {b}: runtime | 1 thread | 2 threads |" in md
        for rt in OTHERS + ("tvm",):
            assert f"| {rt} | {rows[1][rt]['images_per_s']:.0f} | {rows[2][rt]['images_per_s']:.0f} |" in md
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = r["rows"][0]
    assert (f"batch 1, 1 thread: TVM is {first['speedup_vs_best_other']:.2f}x the fastest other runtime"
            in res.output) and "x OpenVINO" in res.output


def test_bench_without_openvino_warns_once_and_leaves_the_column_out(tmp_path, run_cli, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    monkeypatch.setenv("TVM_NUM_THREADS", "7")  # the user's, for whatever runs after bench in this process
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    out = tmp_path / "bench"
    with caplog.at_level(logging.WARNING):
        res = run_cli("bench", model, "--target", "x86-avx2", "--batch", "2", "--threads", "1", "--runs", "3",
                      "-o", out)
    assert res.exit_code == 0, res.output
    assert os.environ["TVM_NUM_THREADS"] == "7"
    warned = [rec.getMessage() for rec in caplog.records
              if rec.levelno >= logging.WARNING and "openvino" in rec.getMessage().lower()]
    assert len(warned) == 1 and "not installed" in warned[0], warned
    r = json.loads((out / "bench.json").read_text())
    (row,) = r["rows"]
    assert (row["batch"], row["threads"], r["thread_counts"]) == (2, 1, [1])
    assert "openvino" not in row and "speedup_vs_openvino" not in row
    assert row["threads_used"] == {"pytorch": 1, "onnxruntime": 1, "tvm": 1}
    fastest = max(("pytorch", "onnxruntime"), key=lambda k: row[k]["images_per_s"])
    assert row["speedup_vs_best_other"] == pytest.approx(row["tvm"]["images_per_s"] / row[fastest]["images_per_s"])
    manifest = json.loads((out / "artifact-tvm-b2" / "manifest.json").read_text())
    assert manifest["target"]["target"]["num-cores"] == 1  # --threads 1, over targets.yaml's 2
    md = (out / "bench.md").read_text()
    assert "openvino" not in md.splitlines()[0].lower()
    assert md.startswith("| batch | pytorch ms") and "against threads" not in md  # one count: today's table


@pytest.mark.parametrize("flag,value", [("--threads", "0,x"), ("--threads", "1,0"), ("--threads", ""),
                                        ("--batch", "1,x")])
def test_bench_refuses_a_bad_count_list(tmp_path, run_cli, one_line_error, flag, value):
    res = run_cli("bench", tmp_path / "missing.pt", flag, value, "-o", tmp_path / "bench")
    one_line_error(res, flag, "comma-separated positive integers")


def test_one_parser_reads_batch_and_thread_lists():
    from alexnet_tvm.cli.options import parse_counts

    assert parse_counts("1,2,4", "--threads") == [1, 2, 4]
    assert parse_counts(" 16, 1,16,", "--batch") == [16, 1]  # in order, once each


def test_tvm_runs_a_parallel_loop_on_the_threads_asked(tmp_path):
    """with_tvm_threads sizes TVM's pool for real: a parallel loop's work lands on 1, then 2
    threads (CPU time per thread, from /proc), whatever pool this process's main thread has."""
    import numpy as np
    import tvm
    from tvm import te

    from alexnet_tvm.runtime.bench import tvm_pool_threads, with_tvm_threads

    n = 768
    a = te.placeholder((n, n), name="a")
    k = te.reduce_axis((0, n), "k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * a[j, k], axis=k), name="c")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, c]))
    sch.parallel(sch.get_loops(sch.get_sblock("c"))[0])
    f = tvm.compile(sch.mod, target="llvm")["main"]
    x, y = tvm.runtime.tensor(np.ones((n, n), "float32")), tvm.runtime.tensor(np.zeros((n, n), "float32"))

    def ticks() -> dict[str, int]:
        out = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[tid] = int(fields[11]) + int(fields[12])  # utime + stime
        return out

    def busy_threads() -> tuple[int, int]:
        f(x, y)  # the pool starts here
        before = ticks()
        for _ in range(4):
            f(x, y)
        after = ticks()
        spent = sorted((after[t] - before.get(t, 0) for t in after), reverse=True)
        return tvm_pool_threads(), sum(1 for s in spent if s >= max(2, spent[0] // 4))

    assert with_tvm_threads(1, busy_threads) == (1, 1)
    assert with_tvm_threads(2, busy_threads) == (2, 2)
    assert float(y.numpy()[0, 0]) == n
