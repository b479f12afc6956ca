"""predict: classify image files with a built artifact (no torch), one line per image."""

from __future__ import annotations

from pathlib import Path


def predict(artifact: Path, images: list[Path], top_k: int = 5) -> list[str]:
    """``NAME: label p, label p, ...``: each image's ``top_k`` classes and probabilities."""
    from alexnet_tvm.runtime.predict import predict_files

    return [f"{name}: " + ", ".join(f"{label} {p:.4f}" for label, p in top)
            for name, top in predict_files(artifact, images, top_k)]
