"""bench writes every column side by side; committed logs cover the reference workloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.models import repo_targets, write_tiny_checkpoint
from helpers.records import committed_databases, committed_record_sets, copy_committed_records, untuned_by_set

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # six untuned builds and a layer profile: 150 s on a 2-vCPU Zen 3 (make test-all)
def test_bench_json_has_every_column(tmp_path, run_cli, monkeypatch):
    from alexnet_tvm.host import HOST_CPU_ENV

    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    out = tmp_path / "bench"
    logs = tmp_path / "logs"  # this host's set and another CPU's: the tvm-other column
    committed = committed_record_sets("x86-avx2")[0]
    for name in ("znver4", "znver3"):
        copy_committed_records("x86-avx2", logs / "x86-avx2" / name, committed)
    monkeypatch.setenv(HOST_CPU_ENV, "znver4")
    res = run_cli("bench", model, "--target", "x86-avx2", "--batch", "1,2", "--runs", "3", "--untuned", "--bf16",
                  "--layers", "--logs-dir", logs, "-o", out)
    assert res.exit_code == 0, res.output
    r = json.loads((out / "bench.json").read_text())
    assert (r["record_set"], r["record_set_fallback"], r["other_record_set"]) == ("znver4", False, "znver3")
    for row in r["rows"]:
        assert row["other_records_speedup_vs_onnxruntime"] == pytest.approx(
            row["onnxruntime"]["median_ms"] / row["tvm-other"]["median_ms"])
        assert row["untuned_tasks"]["tvm-other"] == row["untuned_tasks"]["tvm"]  # the same records, another name
    for key in ("read_bandwidth_gb_s", "batch1_weight_floor_ms", "fp32_peak_gflops", "gflop_per_image", "threads"):
        assert r[key] > 0, key
    assert [row["batch"] for row in r["rows"]] == [1, 2]
    for row in r["rows"]:
        for rt in ("pytorch", "onnxruntime", "tvm", "tvm-bf16", "tvm-untuned"):
            t = row[rt]
            assert t["batch"] == row["batch"] and t["runs"] >= 3
            assert 0 < t["p10_ms"] <= t["median_ms"] <= t["p90_ms"]
            assert t["images_per_s"] == pytest.approx(1e3 * row["batch"] / t["median_ms"])
        assert row["speedup_vs_pytorch"] == pytest.approx(row["pytorch"]["median_ms"] / row["tvm"]["median_ms"])
        assert row["speedup_vs_onnxruntime"] == pytest.approx(
            row["onnxruntime"]["median_ms"] / row["tvm"]["median_ms"])
        others = ("pytorch", "onnxruntime") + (("openvino",) if _has_openvino() else ())
        assert row["threads"] == r["threads"] and set(row["threads_used"]) >= {*others, "tvm", "tvm-bf16"}
        assert set(row["threads_used"].values()) == {r["threads"]}
        best = min(others, key=lambda k: row[k]["median_ms"])
        assert row["speedup_vs_best_other"] == pytest.approx(row[best]["median_ms"] / row["tvm"]["median_ms"])
        assert 0 < row["tvm_fraction_of_fp32_peak"] < 1
        assert row["bf16_speedup_vs_onnxruntime"] == pytest.approx(
            row["onnxruntime"]["median_ms"] / row["tvm-bf16"]["median_ms"])
        assert 0 < row["bf16_max_abs_error_rel_range"] < 1e-2  # bf16 rounding shows, but small
    md = (out / "bench.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert len(table) == 3 and "TVM vs PyTorch" in table[0]  # header + one row per batch
    assert table[1].startswith("| 1 |") and table[2].startswith("| 2 |")
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "x PyTorch" in res.output and "bf16 FC weights" in res.output
    _check_layers(model, out, r)


def _check_layers(model: Path, out: Path, r: dict) -> None:
    """Every conv and FC layer of the model is timed in both runtimes, and the kernels add up
    to about the whole-model time (a missed or doubled kernel would show)."""
    import torch

    from alexnet_tvm.model.reference import load_torch_module

    module = load_torch_module(model)[0]
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in module.modules())
    fcs = sum(isinstance(m, torch.nn.Linear) for m in module.modules())
    for row in r["rows"]:
        layers = {x["layer"]: x for x in row["layers"]}
        expected = [f"conv{i + 1}" for i in range(convs)] + [f"fc{i + 1}" for i in range(fcs)]
        for name in expected:
            x = layers[name]
            assert x["tvm_ms"] > 0 and x["onnxruntime_ms"] > 0, x
            assert x["speedup_vs_onnxruntime"] == pytest.approx(x["onnxruntime_ms"] / x["tvm_ms"])
        assert f"conv{convs + 1}" not in layers and f"fc{fcs + 1}" not in layers
        total = layers["sum"]
        assert total["tvm_ms"] == pytest.approx(sum(x["tvm_ms"] or 0 for x in row["layers"] if x["layer"] != "sum"))
        assert 0.2 * row["tvm"]["median_ms"] < total["tvm_ms"] < 3 * row["tvm"]["median_ms"]
    md = (out / "layers.md").read_text()
    assert "### batch 1" in md and "### batch 2" in md and "| conv1 |" in md and f"| fc{fcs} |" in md


#: (name, arch, classes, input size, batch, target, precision): workloads whose records are committed
REFERENCE_WORKLOADS = [
    ("demo", "cifar", 10, 32, 1, "x86-avx512", "fp32"),
    ("demo", "cifar", 10, 32, 16, "x86-avx512", "fp32"),
    ("demo", "cifar", 10, 32, 1, "x86-avx2", "fp32"),
    ("demo", "cifar", 10, 32, 16, "x86-avx2", "fp32"),
    ("alexnet-1000", "torchvision", 1000, 224, 1, "x86-avx512", "fp32"),
    ("alexnet-1000", "torchvision", 1000, 224, 16, "x86-avx512", "fp32"),
    ("alexnet-1000", "torchvision", 1000, 224, 1, "x86-avx512", "bf16"),
    ("alexnet-1000", "torchvision", 1000, 224, 16, "x86-avx512", "bf16"),
    ("alexnet-1000", "torchvision", 1000, 224, 1, "x86-avx2", "fp32"),
    ("alexnet-1000", "torchvision", 1000, 224, 16, "x86-avx2", "fp32"),
    ("demo", "cifar", 10, 32, 1, "x86-avx2-winograd", "fp32"),
    ("demo", "cifar", 10, 32, 16, "x86-avx2-winograd", "fp32"),
    ("alexnet-1000", "torchvision", 1000, 224, 1, "x86-avx2-winograd", "fp32"),
    ("alexnet-1000", "torchvision", 1000, 224, 16, "x86-avx2-winograd", "fp32"),
    ("demo", "cifar", 10, 32, 1, "x86-avx512", "int8"),
    ("demo", "cifar", 10, 32, 16, "x86-avx512", "int8"),
    ("alexnet-1000", "torchvision", 1000, 224, 1, "x86-avx512", "int8"),
    ("alexnet-1000", "torchvision", 1000, 224, 16, "x86-avx512", "int8"),
]


def test_every_reference_target_has_a_committed_record_set():
    assert all(committed_record_sets(w[5]) for w in REFERENCE_WORKLOADS)


@pytest.mark.parametrize("name,arch,classes,size,batch,target,precision", REFERENCE_WORKLOADS)
def test_committed_logs_cover_reference_workloads(tmp_path, name, arch, classes, size, batch, target, precision):
    """A graph change that invalidates the committed records fails here, not silently in a slow build;
    every committed record set (one per CPU) must cover every workload of its target. The tasks are
    extracted once and checked against each set (the extraction is what takes the time)."""
    from alexnet_tvm.compile.frontend.load import Calibration, load_prepared
    from alexnet_tvm.compile.tuning.plan import tuning_tasks
    from alexnet_tvm.model.checkpoint import init_checkpoint

    model = tmp_path / "model.pt"
    init_checkpoint(arch, classes, model, input_size=size)
    spec = repo_targets()[target]
    tvm_target = spec.tvm_target()
    calib = Calibration("digits", 4) if precision == "int8" else None  # int8 records serve any calibration
    (tmp_path / "work").mkdir()
    _, prepared = load_prepared(model, batch, None, precision, calib, spec, tvm_target, tmp_path / "work")
    tasks = tuning_tasks(prepared, tvm_target)
    sets = {}  # the target's own sets, and those of the targets whose records it takes when it has none
    for t in [target, *spec.records_from]:
        sets.update({f"{t}/{k}": db for k, db in committed_databases(t, tmp_path / t, precision).items()})
    missing = untuned_by_set(tasks, sets, tvm_target)
    assert tasks and missing and not any(missing.values()), f"{name} ({target}): untuned tasks by set: {missing}"


def test_bench_times_a_bare_onnx_file_against_onnx_runtime(tmp_path, run_cli):
    """An ONNX file has no PyTorch form: ORT and TVM are timed, the PyTorch column is left out,
    and the FLOPs counted on the ONNX graph equal those counted on the PyTorch module."""
    import torch

    from alexnet_tvm.interface.bench import model_flops_and_weights
    from alexnet_tvm.model.checkpoint import load_checkpoint

    ckpt = write_tiny_checkpoint(tmp_path / "m", "cifar")
    module, _ = load_checkpoint(ckpt)
    onnx_path = tmp_path / "plain.onnx"  # written the way a user writes it: no sidecar
    torch.onnx.export(module, (torch.randn(1, 3, 32, 32),), str(onnx_path), input_names=["data"], dynamo=False,
                      dynamic_axes={"data": {0: "batch"}})
    out = tmp_path / "bench"
    res = run_cli("bench", onnx_path, "--target", "x86-avx2", "--batch", "1,2", "--runs", "3", "-o", out)
    assert res.exit_code == 0, res.output
    r = json.loads((out / "bench.json").read_text())
    flops, weight_bytes = model_flops_and_weights(module, 32)
    assert r["gflop_per_image"] == pytest.approx(flops / 1e9) and r["weight_mbytes"] == pytest.approx(weight_bytes / 1e6)
    for row in r["rows"]:
        assert "pytorch" not in row and "speedup_vs_pytorch" not in row
        assert row["speedup_vs_onnxruntime"] == pytest.approx(row["onnxruntime"]["median_ms"] / row["tvm"]["median_ms"])
        others = [k for k in ("onnxruntime", "openvino") if k in row]  # OpenVINO reads the same file
        assert others == ["onnxruntime", "openvino"] if _has_openvino() else ["onnxruntime"]
        best = min(others, key=lambda k: row[k]["median_ms"])
        assert row["best_other"] == best
        assert row["speedup_vs_best_other"] == pytest.approx(row[best]["median_ms"] / row["tvm"]["median_ms"])
    assert "PyTorch" not in (out / "bench.md").read_text().splitlines()[0]
    assert "x ONNX Runtime" in res.output


def _has_openvino() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


@pytest.mark.skipif("avx512_vnni" not in __import__("alexnet_tvm.host").host.host_cpu_flags(),
                    reason="int8 kernels run only on an AVX-512 VNNI host")
def test_bench_int8_columns_and_layers(tmp_path, run_cli):
    """--int8 adds TVM int8 and ORT int8 (the artifact's own QDQ model) to the same run, with
    their ratios, and pairs the int8 layers: a TVM conv (qconv) with an ORT QLinearConv."""
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    out = tmp_path / "bench"
    res = run_cli("bench", model, "--target", "x86-avx512", "--batch", "2", "--runs", "3", "--int8", "--layers",
                  "-o", out)
    assert res.exit_code == 0, res.output
    row = json.loads((out / "bench.json").read_text())["rows"][0]
    for rt in ("onnxruntime", "onnxruntime-int8", "tvm", "tvm-int8"):
        assert row[rt]["median_ms"] > 0 and row[rt]["batch"] == 2
    for ref in ("onnxruntime", "onnxruntime-int8"):
        assert row[f"int8_speedup_vs_{ref}"] == pytest.approx(row[ref]["median_ms"] / row["tvm-int8"]["median_ms"])
    layers = {x["layer"]: x for x in row["layers_int8"]}
    for name in ("conv1", "conv5", "fc1", "fc3", "pool1"):
        assert layers[name]["tvm_ms"] > 0 and layers[name]["onnxruntime_ms"] > 0, layers[name]
    assert "conv6" not in layers and "fc4" not in layers
    assert "TVM int8 vs ORT int8" in (out / "bench.md").read_text()
    assert "int8: TVM int8 against ONNX Runtime int8" in (out / "layers.md").read_text()
    assert "ONNX Runtime int8" in res.output



def test_rounds_spread_a_burst_of_noise_over_every_runtime(monkeypatch):
    """A burst of machine noise that lands on the first block: one block per runtime would
    charge it to whichever runtime ran first (3x its time); in rounds, with the order rotating,
    every runtime keeps its quiet median, and each gets its runs and per-block warm-ups."""
    from alexnet_tvm.runtime import bench

    clock, calls = [0.0], []
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])

    def runtime(name):
        def call(_x):
            calls.append(name)
            clock[0] += 3.0 if len(calls) <= 13 else 1.0  # the burst: the first 13 calls of the run
        return call

    fns = {"a": runtime("a"), "b": runtime("b"), "c": runtime("c")}
    got = bench.time_in_rounds(fns, [0], runs=30, rounds=3, warmup=3)
    assert {n: (t.runs, t.median_ms) for n, t in got.items()} == {n: (30, 1000.0) for n in fns}
    blocks = [calls[i] for i in range(0, len(calls), 13)]  # 3 warm-ups + 10 runs per block
    assert blocks == ["a", "b", "c", "b", "c", "a", "c", "a", "b"] and len(calls) == 9 * 13
    # one block (the old way) would have charged the burst to "a"
    calls.clear()
    clock[0] = 0.0
    assert bench.time_callable("a", fns["a"], [0], runs=10).median_ms == 3000.0
    assert [bench.rounds_for(n) for n in (3, 9, 10, 29, 30, 100)] == [1, 1, 2, 3, 3, 3]
