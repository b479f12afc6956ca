"""Record sets (tuning_logs/<target>/<cpu>/): which set a build takes on which CPU, said aloud when
it is another CPU's; tune writes the host's own; targets, bench, logs export/import name the set.

The host CPU is faked with $ALEXNET_TVM_HOST_CPU, so every case runs on any machine.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from helpers.files import snapshot_tree
from helpers.models import repo_targets, write_tiny_checkpoint
from helpers.records import committed_record_sets, copy_committed_records

FALLBACK = "timed on another CPU"


def _set(logs: Path, target: str, name: str, model_name: str = "Test CPU") -> Path:
    """A record set with made-up files (enough for choosing; MetaSchedule never reads them)."""
    folder = logs / target / name
    folder.mkdir(parents=True)
    for f in ("database_workload.json", "database_tuning_record.json"):
        (folder / f).write_text("")
    (folder / "cpu.json").write_text(json.dumps({"llvm_cpu": name, "model_name": model_name}))
    return folder


# --------------------------------------------------------------------------- the choice


@pytest.mark.parametrize("host,sets,expected", [
    ("znver4", ["znver4", "znver5", "sapphirerapids"], "znver4"),                 # own
    ("znver5", ["znver3", "znver4", "sapphirerapids"], "znver4"),                 # same vendor, closest
    ("znver4", ["znver3", "znver5"], "znver3"),                                   # a tie: the older
    ("graniterapids", ["skylake-avx512", "sapphirerapids", "znver4"], "sapphirerapids"),
    ("sapphirerapids", ["znver3", "znver4"], "znver4"),                           # other vendor: same ISA first
    ("haswell", ["znver4", "znver3"], "znver3"),
    ("generic", ["znver5", "znver4"], "znver4"),                                  # unknown CPU: any, by name
    ("znver4", [], None),                                                         # none
])
def test_nearest_set(host, sets, expected):
    from alexnet_tvm.recordsets import nearest_set

    assert nearest_set(host, sets) == expected


def test_choice_own_nearest_none_against_a_faked_host(tmp_path, fake_host, caplog):
    from alexnet_tvm.recordsets import choose_record_set

    logs = tmp_path / "logs"
    _set(logs, "x86-avx512", "znver4", "AMD EPYC 9654")
    _set(logs, "x86-avx512", "sapphirerapids", "Intel Xeon Platinum 8480+")
    caplog.set_level(logging.WARNING)

    fake_host("znver4")
    own = choose_record_set(logs, "x86-avx512")
    assert (own.name, own.fallback, own.folder) == ("znver4", False, logs / "x86-avx512" / "znver4")
    assert not caplog.records

    fake_host("znver5")
    near = choose_record_set(logs, "x86-avx512")
    assert (near.name, near.fallback, near.own) == ("znver4", True, logs / "x86-avx512" / "znver5")
    assert near.manifest() == {"record_set": "znver4", "record_set_cpu": "AMD EPYC 9654", "fallback": True}
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == ("no records timed on znver5 for x86-avx512; using znver4 (AMD EPYC 9654), timed on another "
                    "CPU: expect lower speed; `tune --fresh` makes a set for this CPU")
    assert caplog.records[0].levelno == logging.WARNING

    none = choose_record_set(logs, "x86-avx2")
    assert (none.name, none.fallback, none.folder) == (None, False, logs / "x86-avx2" / "znver5")


def test_a_target_without_sets_takes_its_records_from_targets_and_says_which(tmp_path, fake_host, caplog):
    """x86-avx2-winograd builds x86-avx512's graph: with no set of its own target it takes the nearest
    x86-avx512 set, named with its target, as a fallback; any set of its own target comes first."""
    from alexnet_tvm.recordsets import record_choice, set_lines

    logs, avx2 = tmp_path / "logs", repo_targets()["x86-avx2-winograd"]
    assert avx2.records_from == ["x86-avx512"]
    _set(logs, "x86-avx512", "znver4", "AMD EPYC 9654")
    _set(logs, "x86-avx512", "emeraldrapids", "Intel Xeon")
    fake_host("znver3")
    caplog.set_level(logging.WARNING)
    choice = record_choice(logs, avx2)
    assert (choice.label, choice.fallback, choice.own) == ("x86-avx512/znver4", True, logs / "x86-avx2-winograd" / "znver3")
    assert choice.manifest() == {"record_set": "x86-avx512/znver4", "record_set_cpu": "AMD EPYC 9654",
                                 "fallback": True}
    assert [r.getMessage() for r in caplog.records] == [
        "no records timed on znver3 for x86-avx2-winograd; using x86-avx512/znver4 (AMD EPYC 9654), timed on another CPU: "
        "expect lower speed; `tune --fresh` makes a set for this CPU"]
    assert set_lines(logs, avx2)[-1].startswith("none of its own; takes x86-avx512/znver4 (AMD EPYC 9654)")
    _set(logs, "x86-avx512", "znver3")  # the same CPU, but another ISA's code: still a fallback
    assert (record_choice(logs, avx2).label, record_choice(logs, avx2).fallback) == ("x86-avx512/znver3", True)
    _set(logs, "x86-avx2-winograd", "haswell")
    assert (record_choice(logs, avx2).label, record_choice(logs, avx2).fallback) == ("haswell", True)
    _set(logs, "x86-avx2-winograd", "znver3")
    assert (record_choice(logs, avx2).label, record_choice(logs, avx2).fallback) == ("znver3", False)


def test_old_layout_and_unsafe_host_names_are_refused(tmp_path, fake_host):
    from alexnet_tvm.errors import DatabaseError, TargetError
    from alexnet_tvm.recordsets import choose_record_set

    flat = tmp_path / "logs" / "x86-avx2"
    flat.mkdir(parents=True)
    (flat / "database_tuning_record.json").write_text("")
    with pytest.raises(DatabaseError, match="layout before record sets"):
        choose_record_set(tmp_path / "logs", "x86-avx2")
    fake_host("../elsewhere")
    with pytest.raises(TargetError, match="not a plain name"):
        choose_record_set(tmp_path / "other", "x86-avx2")


def test_auto_compiles_for_a_known_host_of_the_target_family():
    """--target auto's mcpu rule: the host's name when it is a known x86 CPU of the target's ISA."""
    from alexnet_tvm.host import GENERATIONS
    from alexnet_tvm.target_choice import for_this_host, host_mcpu

    targets = repo_targets()
    avx512, avx2, board = targets["x86-avx512"], targets["x86-avx2"], targets["rpi4-aarch64"]
    assert host_mcpu(avx512, "sapphirerapids") == "sapphirerapids"
    assert host_mcpu(avx512, "znver3") is None  # an AVX2 CPU is not of the AVX-512 family
    assert host_mcpu(avx2, "haswell") == "haswell"
    assert host_mcpu(avx2, "znver4") is None  # would put AVX-512 code in an AVX2 artifact
    assert host_mcpu(avx512, "generic") is None and host_mcpu(board, "znver4") is None
    spr = for_this_host(avx512, "sapphirerapids")
    assert spr.target["mcpu"] == "sapphirerapids" and avx512.target["mcpu"] == "znver4"
    spr.tvm_target()  # LLVM knows the name
    for names in GENERATIONS.values():  # and every name of the table
        for name in names:
            arch_target = for_this_host(avx512 if host_mcpu(avx512, name) else avx2, name)
            assert arch_target.target["mcpu"] == name
            arch_target.tvm_target()


# --------------------------------------------------------------------------- build, tune, targets


def test_a_build_that_falls_back_says_so_once_and_records_it(tmp_path, fake_host, run_cli, caplog):
    logs = tmp_path / "logs"
    znver4 = committed_record_sets("x86-avx2")[0]
    copy_committed_records("x86-avx2", logs / "x86-avx2" / znver4, znver4)
    (logs / "x86-avx2" / znver4 / "cpu.json").write_text(json.dumps({"model_name": "AMD EPYC 9R14"}))
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    fake_host("sapphirerapids")
    caplog.set_level(logging.WARNING)
    res = run_cli("build", model, "--target", "x86-avx2", "--logs-dir", logs, "-o", tmp_path / "art")
    assert res.exit_code == 0, res.output
    said = [r.getMessage() for r in caplog.records if FALLBACK in r.getMessage()]
    assert said == [f"no records timed on sapphirerapids for x86-avx2; using {znver4} (AMD EPYC 9R14), timed on "
                    "another CPU: expect lower speed; `tune --fresh` makes a set for this CPU"]
    tuning = json.loads((tmp_path / "art" / "manifest.json").read_text())["tuning"]
    assert (tuning["record_set"], tuning["record_set_cpu"], tuning["fallback"]) == (znver4, "AMD EPYC 9R14", True)
    assert tuning["database"] == str(logs / "x86-avx2" / znver4)


def test_tune_resumes_from_and_writes_to_the_hosts_own_set_only(tmp_path, fake_host):
    """The demo model's workloads are all in the committed set; a host of another CPU still has
    everything to tune, into a set of its own, and the other CPU's set is left as it was."""
    from alexnet_tvm.compile.tuning.plan import TuneConfig, make_plan
    from alexnet_tvm.model.checkpoint import init_checkpoint

    logs = tmp_path / "logs"
    committed = committed_record_sets("x86-avx2")[0]
    copy_committed_records("x86-avx2", logs / "x86-avx2" / committed, committed)
    model = tmp_path / "demo.pt"
    init_checkpoint("cifar", 10, model, input_size=32)
    cfg = TuneConfig(model=model, target=repo_targets()["x86-avx2"], logs_dir=logs)
    before = snapshot_tree(logs / "x86-avx2" / committed)

    fake_host("znver2")
    plan = make_plan(cfg)
    assert plan.db_dir == plan.work_dir == logs / "x86-avx2" / "znver2"
    assert plan.already_tuned == 0 and len(plan.pending) == len(plan.tasks) > 0
    assert json.loads((plan.db_dir / "cpu.json").read_text())["llvm_cpu"] == "znver2"
    fresh = make_plan(TuneConfig(model=model, target=cfg.target, logs_dir=logs, fresh=True))
    assert fresh.db_dir == plan.db_dir and fresh.work_dir == logs / ".fresh" / "x86-avx2" / "znver2"
    assert snapshot_tree(logs / "x86-avx2" / committed) == before

    fake_host(committed)
    own = make_plan(cfg)
    assert own.db_dir == logs / "x86-avx2" / committed and own.already_tuned == len(own.tasks)


def test_targets_lists_the_record_sets_and_marks_the_one_used_here(tmp_path, fake_host, run_cli):
    logs = tmp_path / "logs"
    _set(logs, "x86-avx2", "znver4", "AMD EPYC 9654")
    _set(logs, "x86-avx2", "znver3", "AMD EPYC 7763")
    fake_host("znver3")
    out = run_cli("targets", "--logs-dir", logs).output
    assert "record sets: znver3 (AMD EPYC 7763)  <- used here; znver4 (AMD EPYC 9654)\n" in out
    fake_host("sapphirerapids")
    out = run_cli("targets", "--logs-dir", logs).output
    assert "znver4 (AMD EPYC 9654)  <- used here (timed on another CPU)" in out
    assert "record sets: none" in out  # x86-avx512 has none in this folder


def test_the_committed_sets_say_which_cpu_timed_them():
    root = Path(__file__).resolve().parent.parent / "tuning_logs"
    for target in ("x86-avx512", "x86-avx2", "x86-avx2-winograd"):
        sets = committed_record_sets(target)
        assert sets, target
        for name in sets:
            cpu = json.loads((root / target / name / "cpu.json").read_text())
            assert cpu["llvm_cpu"] == name and cpu["model_name"] and cpu["vendor"] and cpu["date"]


# --------------------------------------------------------------------------- bench, distribution


def test_bench_probes_the_cache_the_weights_fit_in(monkeypatch):
    from alexnet_tvm import host
    from alexnet_tvm.interface import bench

    sizes = []
    monkeypatch.setattr(bench, "measure_read_bandwidth", lambda threads, mbytes=512: sizes.append(mbytes) or 100.0)
    monkeypatch.setattr(host, "l3_cache_bytes", lambda: 300 << 20)
    in_l3 = bench.bandwidth_probe(233 << 20, 2)
    assert (in_l3["read_bandwidth_level"], in_l3["read_bandwidth_buffer_mbytes"], in_l3["l3_mbytes"]) == ("L3", 233, 300)
    monkeypatch.setattr(host, "l3_cache_bytes", lambda: 32 << 20)
    in_dram = bench.bandwidth_probe(233 << 20, 2)
    assert (in_dram["read_bandwidth_level"], in_dram["read_bandwidth_buffer_mbytes"]) == ("DRAM", 512)
    assert sizes == [233, 512]


def test_bench_report_names_the_record_set_and_the_cpu():
    from alexnet_tvm.interface.bench import markdown_table

    t = {"median_ms": 10.0, "images_per_s": 100.0}
    r = {"model": "m.pt", "target": "x86-avx512", "threads": 2, "runs": 3, "read_bandwidth_gb_s": 900.0,
         "read_bandwidth_level": "L3", "read_bandwidth_buffer_mbytes": 233, "l3_mbytes": 300.0,
         "batch1_weight_floor_ms": 0.26, "weight_mbytes": 244.0, "fp32_peak_gflops": 1000.0, "fp32_peak_how": "x",
         "cpu_model": "Intel Xeon Platinum 8480+", "host_cpu": "sapphirerapids", "record_set": "znver4",
         "record_set_cpu": "AMD EPYC", "record_set_fallback": True,
         "rows": [{"batch": 1, "tvm": t, "onnxruntime": t, "speedup_vs_onnxruntime": 1.0,
                   "tvm_fraction_of_fp32_peak": 0.5}]}
    md = markdown_table(r)
    assert ("CPU: Intel Xeon Platinum 8480+ (sapphirerapids); TVM built with record set znver4 (AMD EPYC), "
            "timed on another CPU.") in md
    assert "Read bandwidth 900.0 GB/s (L3: 233 MB buffer of 300 MB L3)" in md


def test_logs_export_and_import_carry_the_set(tmp_path, fake_host, run_cli, one_line_error):
    from alexnet_tvm.distribution.logs import _destination_set

    src = tmp_path / "src"
    name = committed_record_sets("x86-avx2")[0]
    copy_committed_records("x86-avx2", src / "x86-avx2" / name, name)
    (src / "x86-avx2" / name / "cpu.json").write_text(json.dumps({"llvm_cpu": name, "model_name": "AMD EPYC"}))
    _set(src, "x86-avx2", "zz-other")  # a second set: export takes the one named, or the host's
    fake_host(name)
    archive = tmp_path / "logs.tar.gz"
    res = run_cli("logs", "export", "x86-avx2", "-o", archive, "--logs-dir", src)
    assert res.exit_code == 0 and f"(set {name})" in res.output, res.output
    dst = tmp_path / "dst"
    fake_host("znver2")  # another CPU imports: the records go into the set the archive names
    assert run_cli("logs", "import", archive, "--logs-dir", dst).exit_code == 0
    assert sorted(p.name for p in (dst / "x86-avx2").iterdir()) == [name]
    assert json.loads((dst / "x86-avx2" / name / "cpu.json").read_text())["model_name"] == "AMD EPYC"
    assert run_cli("logs", "import", archive, "--logs-dir", dst, "--this-cpu").exit_code == 0
    assert json.loads((dst / "x86-avx2" / "znver2" / "cpu.json").read_text())["llvm_cpu"] == "znver2"
    one_line_error(run_cli("logs", "import", archive, "--logs-dir", dst, "--this-cpu", "--set", "x"), "not both")
    one_line_error(run_cli("logs", "export", "x86-avx2", "-o", tmp_path / "n.tar.gz", "--logs-dir", src,
                           "--set", "nope"), "no tuning records")
    from alexnet_tvm.errors import RegistryError

    with pytest.raises(RegistryError, match="does not say which CPU"):
        _destination_set(archive, {"kind": "alexnet-tvm-logs"}, None, False)


def test_bench_other_records_are_the_nearest_other_cpus_and_only_beside_the_hosts_own(tmp_path, fake_host):
    """bench's "another family's records" column: the set a build would fall back to without the
    host's own; a view with that set alone makes a build take it (and say it is another CPU's)."""
    from alexnet_tvm.recordsets import choose_record_set, other_record_set, record_choice, single_set_view

    logs, avx512, avx2 = tmp_path / "logs", repo_targets()["x86-avx512"], repo_targets()["x86-avx2-winograd"]
    for name in ("znver4", "znver5", "sapphirerapids"):
        _set(logs, "x86-avx512", name, f"CPU {name}")
    assert other_record_set(logs, avx512, "znver5").name == "znver4"
    assert other_record_set(logs, avx512, "graniterapids") is None  # no own set: the build falls back itself
    (logs / "x86-avx512" / "sapphirerapids" / "database_tuning_record.json").unlink()
    _set(logs, "x86-avx2-winograd", "znver3")
    # no other set of x86-avx2-winograd: its records_from target's nearest
    assert other_record_set(logs, avx2, "znver3").label_for(avx2.name) == "x86-avx512/znver4"
    view = single_set_view(tmp_path / "view", other_record_set(logs, avx512, "znver5"))
    single_set_view(tmp_path / "view", other_record_set(logs, avx512, "znver5"))  # again: fine
    fake_host("znver5")
    choice = choose_record_set(view, "x86-avx512", announce=False)
    assert (choice.name, choice.fallback, choice.chosen.cpu_model) == ("znver4", True, "CPU znver4")
    assert choice.folder.resolve() == (logs / "x86-avx512" / "znver4").resolve()
    # another target's set: the view keeps its target, so an x86-avx2 build names it as such
    view2 = single_set_view(tmp_path / "view2", other_record_set(logs, avx2, "znver3"))
    fake_host("znver3")
    assert (record_choice(view2, avx2, announce=False).label, record_choice(view2, avx2).fallback) == (
        "x86-avx512/znver4", True)


def test_the_read_probe_measures_a_plausible_rate_and_leaves_torch_threads_alone():
    """A real read of an 8 MB buffer: GB/s in the range any CPU gives (the numpy probe it
    replaced read ~half of what ORT streamed on a Xeon), and PyTorch's pool size is restored."""
    import torch

    from alexnet_tvm.interface.bench import measure_read_bandwidth

    before = torch.get_num_threads()
    gbs = measure_read_bandwidth(1, mbytes=8, repeats=2)
    assert 1.0 < gbs < 5000.0
    assert torch.get_num_threads() == before
