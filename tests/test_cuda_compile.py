"""CUDA, compile side only (no GPU needed): every conv and FC kernel of AlexNet gets a real DLight
GPU schedule with no tuning records, and fp16 builds compute on fp16 operands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alexnet_tvm.meta import ModelMeta

ROOT = Path(__file__).resolve().parent.parent
TARGET = "cuda-sm90"


def _spec(name: str = TARGET):
    from alexnet_tvm.targets import load_targets

    return load_targets(ROOT / "targets.yaml")[name]


@pytest.fixture(scope="module")
def alexnet1000(tmp_path_factory) -> Path:
    """torchvision AlexNet at full width with 1000 classes (random weights): AlexNet's own conv and FC shapes."""
    import torch

    from alexnet_tvm.model.checkpoint import save_checkpoint
    from alexnet_tvm.model.variants import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("alexnet1000") / "model.pt"
    meta = ModelMeta(arch="torchvision", num_classes=1000, input_size=224, resize_size=224,
                     class_names=[f"c{i}" for i in range(1000)])
    save_checkpoint(build_model("torchvision", 1000).eval(), meta, path)
    return path


def _scheduled(model: Path, batch: int, precision: str = "fp32", target_name: str = TARGET):
    """(scheduled module, {kernel: DLight rule}) as ``build`` schedules it with no records."""
    from alexnet_tvm.compile.frontend.load import load_prepared
    from alexnet_tvm.compile.frontend.gpu_rules import schedule_defaults

    spec = _spec(target_name)
    target = spec.tvm_target()
    _, prepared = load_prepared(model, batch, None, precision, None, spec, target, model.parent)
    return schedule_defaults(prepared, target)


@pytest.mark.parametrize("batch", [1, 64])
def test_every_conv_and_fc_gets_a_gemm_schedule(alexnet1000, batch):
    """The five convs go to DLight's Matmul rule (an implicit GEMM), the three FC layers to GEMV
    at batch 1 and Matmul at batch 64; none is left to the generic Fallback rule, and no weight
    transpose runs per inference (cuda_gemm.dense_fcs)."""
    from alexnet_tvm.compile.frontend.gpu_rules import heavy_fallbacks

    _, taken = _scheduled(alexnet1000, batch)
    convs = {k: v for k, v in taken.items() if "conv2d" in k}
    fcs = {k: v for k, v in taken.items() if "dense" in k}
    assert len(convs) == 5 and len(fcs) == 3, taken
    assert not heavy_fallbacks(taken), taken
    assert set(convs.values()) == {"Matmul"}, convs
    assert set(fcs.values()) == {"GEMV" if batch == 1 else "Matmul"}, fcs
    assert not any("transpose" in k or "matmul" in k for k in taken), taken


def test_fp16_kernels_read_fp16_operands(alexnet1000):
    """--precision fp16: fp16 parameters, every conv and FC kernel reads fp16 operands (accumulating
    in fp32), and the artifact's input and logits stay fp32."""
    from tvm import tirx

    from alexnet_tvm.compile.frontend.load import load_prepared

    spec = _spec()
    imported, mod = load_prepared(alexnet1000, 1, None, "fp16", None, spec, spec.tvm_target(), alexnet1000.parent)
    heavy = sorted(gv.name_hint for gv, f in mod.functions_items()
                   if isinstance(f, tirx.PrimFunc) and ("conv2d" in gv.name_hint or "dense" in gv.name_hint))
    assert len(heavy) == 8, heavy
    for name in heavy:
        dtypes = [str(p.dtype) for p in mod[name].params]
        assert dtypes.count("float16") >= 2, (name, dtypes)  # activations and weights
    main = mod["main"]
    assert all(str(p.ty.dtype) == "float16" for p in main.params[1:]), "weights stay fp32"
    assert {str(p.dtype) for p in imported.params} == {"float16"}
    assert str(main.params[0].ty.dtype) == "float32" and str(main.ret_ty.dtype) == "float32"


@pytest.mark.slow
def test_fp16_convs_run_on_tensor_cores(alexnet1000):
    """conv2-conv5 (every GEMM extent over 64 at batch 1) are tensorized (WMMA) by DLight's Matmul
    rule; conv1 (64 output channels) and the batch-1 FC layers (GEMV) are not. Slow: the first
    tensorization imports TVM's CUDA tensor intrinsics (about 30 s of TVMScript parsing)."""
    from alexnet_tvm.compile.frontend.gpu_rules import heavy_fallbacks, uses_tensor_cores

    mod, taken = _scheduled(alexnet1000, 1, "fp16")
    assert not heavy_fallbacks(taken), taken
    tensorized = sorted(k for k in taken if uses_tensor_cores(mod[k]))
    assert len(tensorized) == 4 and all("conv2d" in k for k in tensorized), tensorized


@pytest.mark.parametrize("target_name", ["x86-avx2", "rpi4-aarch64"])
def test_fp16_refused_on_cpu_targets(alexnet1000, target_name, run_cli, one_line_error, tmp_path):
    res = run_cli("build", alexnet1000, "--target", target_name, "--precision", "fp16", "-o", tmp_path / "o",
                  "--logs-dir", tmp_path / "l")
    one_line_error(res, "fp16", "CUDA")


@pytest.mark.parametrize("flag", ["--fp16", "--torch-compile"])
def test_bench_gpu_flags_refused_on_cpu_targets(alexnet1000, flag, run_cli, one_line_error, tmp_path):
    one_line_error(run_cli("bench", alexnet1000, "--target", "x86-avx2", flag, "-o", tmp_path / "b"), flag, "CUDA")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_sm90_alexnet_builds_at_batch_1_and_64(alexnet1000, tmp_path, precision):
    """The full build, nvcc included, for the visit's two batch sizes: no conv or FC kernel left
    to the Fallback rule, and the manifest says the precision."""
    from alexnet_tvm.compile.build import BuildConfig, build

    for batch in (1, 64):
        out = tmp_path / f"b{batch}"
        res = build(BuildConfig(model=alexnet1000, target=_spec(), out=out, logs_dir=tmp_path / "logs", batch=batch,
                                precision=precision))
        assert res.tuned == 0
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["precision"] == precision and manifest["target"]["name"] == TARGET
        assert b"_kernel" in (out / "model.so").read_bytes()


def test_gpu_records_go_under_the_gpus_name(monkeypatch, tmp_path):
    """tune files CUDA records under tuning_logs/cuda-sm90/<GPU name>/ where a GPU is present, under
    the architecture without one; a build without a GPU takes a GPU's set (one warning line)."""
    from alexnet_tvm import recordsets

    spec = _spec()
    monkeypatch.setattr(recordsets, "local_gpu_name", lambda: None)
    assert recordsets.timed_on(spec) == "sm_90"
    monkeypatch.setattr(recordsets, "local_gpu_name", lambda: "NVIDIA_H100_80GB_HBM3")
    folder = recordsets.own_record_set(tmp_path, spec)
    assert folder == tmp_path / TARGET / "NVIDIA_H100_80GB_HBM3"
    (folder / recordsets.RECORDS).write_text("")
    monkeypatch.setattr(recordsets, "local_gpu_name", lambda: None)
    choice = recordsets.record_choice(tmp_path, spec, announce=False)
    assert choice.folder == folder and choice.fallback
