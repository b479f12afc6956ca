"""tune --adapt: another CPU's records re-timed here into this host's own set, then tuning where the
layer profile shows TVM losing. The host CPU is faked with $ALEXNET_TVM_HOST_CPU."""

from __future__ import annotations

import json
import logging

import pytest

from helpers.files import snapshot_tree
from helpers.models import repo_targets
from helpers.records import committed_record_sets, copy_committed_records


def test_kernel_losses_pair_layers_by_kind_and_rank():
    from alexnet_tvm.runtime.layers import kernel_losses

    tvm = [("transpose", 0.5), ("fused_conv2d_add_relu", 2.0), ("max_pool2d", 0.1), ("fused_conv2d1_add1_relu1", 3.0),
           ("fused_matmul_add_relu", 1.0), ("fused_matmul1_add1", 0.2)]
    ort = [("c1", "Conv", 2.5), ("p1", "MaxPool", 0.05), ("c2", "FusedConv", 2.0), ("f1", "Gemm", 1.5),
           ("f2", "FusedGemm", 0.1), ("t", "Transpose", 9.0)]
    lost = kernel_losses(tvm, ort)
    # conv1 wins (2.0 < 2.5), conv2 loses 1.0, the pool 0.05, fc1 wins, fc2 loses 0.1; "other" is not a layer
    assert lost == pytest.approx({"fused_conv2d1_add1_relu1": 1.0, "max_pool2d": 0.05, "fused_matmul1_add1": 0.1})


def test_a_winograd_conv_is_one_layer_whose_loss_goes_to_its_gemm():
    """Winograd's data transform, GEMM, inverse and the bias/ReLU kernel after it are one conv in
    layers.md; when it loses, the loss is charged to the GEMM, its one tuned kernel."""
    from alexnet_tvm.runtime.layers import kernel_losses, match_layers

    tvm = [("fused_conv2d_add_relu", 2.0), ("winograd_data_transform", 0.5), ("winograd_bgemm_prepacked", 2.0),
           ("winograd_inverse", 0.25), ("fused_reshape_transpose_add_relu", 0.25), ("max_pool2d", 0.1),
           ("fused_transpose_reshape", 0.2), ("fused_matmul_add", 1.0)]
    ort = [("c1", "Conv", 2.5), ("c2", "FusedConv", 2.5), ("p1", "MaxPool", 0.1), ("f1", "Gemm", 1.0)]
    rows = {r.layer: r for r in match_layers(tvm, ort)}
    assert [rows[k].tvm_ms for k in ("conv1", "conv2", "pool1", "fc1")] == [2.0, 3.0, 0.1, 1.0]
    assert "conv3" not in rows and rows["other"].tvm_ms == pytest.approx(0.2)
    assert kernel_losses(tvm, ort) == pytest.approx({"winograd_bgemm_prepacked": 0.5})


def test_the_search_time_goes_where_the_larger_part_of_a_run_is_lost():
    """The batches share adapt's search time by the fraction of their run time they lose (the Zen 3's
    profile: batch 1 lost 1.71 of 15.2 ms, batch 16 41.0 of 146.5 ms); a batch that loses nothing
    gets none, and when no batch loses they split evenly."""
    from alexnet_tvm.interface.adapt import AdaptReport, budget_shares

    def report(batch, model_ms, lost_ms):
        return AdaptReport(batch, None, None, model_ms=model_ms, lost_ms=lost_ms)

    b1, b16 = budget_shares([report(1, 15.2, 1.71), report(16, 146.5, 41.0)])
    assert b1 + b16 == pytest.approx(1.0) and b1 == pytest.approx(0.1125 / (0.1125 + 0.2799), abs=1e-3)
    assert budget_shares([report(1, 15.2, 0.0), report(16, 146.5, 41.0)]) == [0.0, 1.0]
    assert budget_shares([report(1, 15.2, 0.0), report(16, 146.5, 0.0)]) == [0.5, 0.5]


def test_adapt_refusals_are_one_line(tmp_path, run_cli, one_line_error):
    model = tmp_path / "m.pt"
    model.write_bytes(b"not read before the refusals")
    res = run_cli("tune", model, "--adapt", "--fresh", "--target", "x86-avx2")
    one_line_error(res, "--adapt chooses its own tasks and budget; drop --fresh")
    res = run_cli("tune", model, "--adapt", "--target", "x86-avx2", "--logs-dir", tmp_path / "empty")
    one_line_error(res, "x86-avx2 has no record set to start from", "tune --fresh")
    res = run_cli("tune", model, "--adapt", "--target", "cuda-sm90", "--logs-dir", tmp_path / "empty")
    one_line_error(res, "cuda-sm90 is not a CPU target")


@pytest.mark.slow
def test_adapt_makes_another_cpus_records_this_hosts(tmp_path, fake_host, run_cli, caplog):  # noqa: F811
    """On a 'znver2' host with only another CPU's committed set: every task of the demo model gets a
    record timed here, in znver3's own set; the Zen 4 set is untouched; a build no longer falls back."""
    from alexnet_tvm.compile.tuning.plan import TuneConfig, make_plan
    from alexnet_tvm.model.checkpoint import init_checkpoint

    logs = tmp_path / "logs"
    committed = committed_record_sets("x86-avx2")[0]
    copy_committed_records("x86-avx2", logs / "x86-avx2" / committed, committed)
    before = snapshot_tree(logs / "x86-avx2" / committed)
    model = tmp_path / "demo.pt"
    init_checkpoint("cifar", 10, model, input_size=32)
    fake_host("znver2")
    caplog.set_level(logging.INFO)
    res = run_cli("tune", model, "--adapt", "--target", "x86-avx2", "--batch", "1", "--time-budget", "0.2",
                  "--logs-dir", logs)
    assert res.exit_code == 0, res.output
    assert f"re-timed" in res.output and f"{committed}'s records here" in res.output
    own = logs / "x86-avx2" / "znver2"
    assert json.loads((own / "cpu.json").read_text())["llvm_cpu"] == "znver2"
    plan = make_plan(TuneConfig(model=model, target=repo_targets()["x86-avx2"], logs_dir=logs))
    assert plan.db_dir == own and plan.already_tuned == len(plan.tasks) > 0
    assert f"{len(plan.tasks)} of {len(plan.tasks)} tasks now have records timed on this CPU" in res.output
    assert snapshot_tree(logs / "x86-avx2" / committed) == before
    # the records are this host's timings: none is a copy of a seed's line
    seeds = set((logs / "x86-avx2" / committed / "database_tuning_record.json").read_text().splitlines())
    mine = (own / "database_tuning_record.json").read_text().splitlines()
    assert mine and not seeds.intersection(mine)

    res = run_cli("build", model, "--target", "x86-avx2", "--logs-dir", logs, "-o", tmp_path / "art")
    assert res.exit_code == 0, res.output
    tuning = json.loads((tmp_path / "art" / "manifest.json").read_text())["tuning"]
    assert (tuning["record_set"], tuning["fallback"]) == ("znver2", False)
    assert not tuning.get("untuned")


def test_a_prepacked_kernel_is_tuned_as_its_task():
    from alexnet_tvm.interface.adapt import task_of_kernel

    assert task_of_kernel("fused_matmul1_add4_relu41_prepacked") == "fused_matmul1_add4_relu41"
    assert task_of_kernel("fused_conv2d_add_relu") == "fused_conv2d_add_relu"
