"""What ``bench`` is asked for, the artifacts it builds to time and the files it writes: shared by
the CPU bench (bench.py), the board's and the GPU's (bench_gpu.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alexnet_tvm.fsutil import write_json, write_text

from .bench_report import markdown_table, plot


@dataclass
class BenchConfig:
    model: Path
    target: str = "auto"
    batches: list[int] = field(default_factory=lambda: [1])
    out_dir: Path = Path("runs/bench")
    runs: int = 20
    #: every runtime at each of these thread counts, one row each (None: the cores this process may use)
    threads: list[int] | None = None
    untuned: bool = False
    #: also time a build with bf16 FC weights (see compile/frontend/precision.py)
    bf16: bool = False
    #: also break the fp32 TVM and ONNX Runtime times down per layer, inside the model (layers.md)
    layers: bool = False
    #: also time TVM int8 and ONNX Runtime int8 on one QDQ model (bench_int8.py)
    int8: bool = False
    calibrate: str = "digits"
    calib_images: int = 100
    #: CUDA: also time TVM fp16 against PyTorch autocast fp16 (bench_gpu.py)
    fp16: bool = False
    #: CUDA: also time torch.compile
    torch_compile: bool = False
    targets_file: Path | None = None
    logs_dir: Path | None = None



def write_results(cfg: BenchConfig, result: dict) -> dict:
    """bench.json, bench.md, bench.png and (with --layers) layers.md in ``cfg.out_dir``; ``result`` back."""
    from alexnet_tvm.runtime.layers import layers_markdown

    write_json(cfg.out_dir / "bench.json", result)
    layer_rows = [row for row in result["rows"] if "layers" in row]
    if layer_rows:
        write_text(cfg.out_dir / "layers.md", "# Time per layer inside the model (median ms)\n\n"
                   + "\n".join(layers_markdown(row["batch"], row["layers"]) for row in layer_rows)
                   + "".join("\n## int8: TVM int8 against ONNX Runtime int8\n\n"
                             + layers_markdown(row["batch"], row["layers_int8"])
                             for row in layer_rows if "layers_int8" in row))
    write_text(cfg.out_dir / "bench.md", markdown_table(result))
    plot(result, cfg.out_dir / "bench.png")
    return result


def build_tvm(cfg: BenchConfig, spec, batch: int, name: str = "tvm", logs_dir: Path | None = None,
               precision: str = "fp32") -> tuple[Path, list[str]]:
    """The artifact to time (rebuilt each run, so it matches the records now) and its untuned tasks."""
    from alexnet_tvm.compile.build import BuildConfig, build
    from alexnet_tvm.compile.frontend.load import Calibration
    from alexnet_tvm.settings import logs_dir_for_reading

    art_dir = cfg.out_dir / f"artifact-{name}-b{batch}"
    calib = Calibration(cfg.calibrate, cfg.calib_images) if precision == "int8" else None
    res = build(BuildConfig(model=cfg.model, target=spec, out=art_dir, batch=batch, force=True, precision=precision,
                            logs_dir=logs_dir or logs_dir_for_reading(cfg.logs_dir, spec.name), calibration=calib))
    return art_dir, res.untuned
