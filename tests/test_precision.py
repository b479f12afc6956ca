"""--precision bf16: FC weights stored as bf16, fp32 math, held to the same verify gates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.models import write_tiny_checkpoint


def _fc_weight_elements(model) -> int:
    import torch

    state = torch.load(model, weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    return sum(v.numel() for k, v in state.items() if k.startswith("classifier") and k.endswith("weight"))


def test_rewrite_casts_every_fc_weight_and_only_those(tmp_path):
    from alexnet_tvm.compile.frontend.importer import import_model
    from alexnet_tvm.compile.frontend.precision import with_precision

    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    mod = import_model(model, 1).mod
    assert with_precision(mod, "fp32") is mod
    script = with_precision(mod, "bf16")["main"].script()
    casts = [ln for ln in script.splitlines() if 'R.astype(' in ln and 'dtype="bfloat16"' in ln]
    assert len(casts) == 3  # the three FC weights, no conv weight, no activation
    matmuls = [ln for ln in script.splitlines() if "R.matmul(" in ln]
    assert len(matmuls) == 3 and all('out_dtype="float32"' in ln for ln in matmuls)


def test_unknown_precision_is_refused(tmp_path, run_cli, one_line_error):
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    one_line_error(run_cli("build", model, "--target", "x86-avx2", "--precision", "int3", "-o", tmp_path / "a"),
                   "precision")
    assert not (tmp_path / "a").exists()


def test_bf16_build_halves_fc_weights_and_passes_the_gates(tmp_path, run_cli):
    model = write_tiny_checkpoint(tmp_path / "m", "cifar")
    logs = tmp_path / "logs"
    arts = {}
    for precision in ("fp32", "bf16"):
        arts[precision] = tmp_path / precision
        res = run_cli("build", model, "--target", "x86-avx2", "--precision", precision, "-o", arts[precision],
                      "--logs-dir", logs)
        assert res.exit_code == 0, res.output
    manifest = json.loads((arts["bf16"] / "manifest.json").read_text())
    assert manifest["precision"] == "bf16"
    saved = (arts["fp32"] / "params.bin").stat().st_size - (arts["bf16"] / "params.bin").stat().st_size
    assert saved == pytest.approx(2 * _fc_weight_elements(model), rel=0.01)  # 4 -> 2 bytes per FC weight

    from alexnet_tvm.runtime.artifact import load_artifact

    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32), dtype=np.float32)
    y32 = load_artifact(arts["fp32"]).run_batch(x)
    y16 = load_artifact(arts["bf16"]).run_batch(x)
    assert 0 < np.abs(y32 - y16).max() < 1e-2 * max(np.ptp(y32), 1.0)  # rounded, not broken

    report = tmp_path / "rep.json"
    res = run_cli("verify", arts["bf16"], "--against", "pytorch", "--model", model, "--report", report)
    assert res.exit_code == 0, res.output
    assert json.loads(report.read_text())["passed"] is True
    # the gate can fail: bf16 rounding is visible at a tolerance fp32 meets
    res = run_cli("verify", arts["bf16"], "--against", "pytorch", "--model", model, "--max-abs-error", "1e-7")
    assert res.exit_code == 1, res.output
