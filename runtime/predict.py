"""Top-k classification of image files with an artifact, preprocessed as in training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alexnet_tvm.preprocess import eval_transform, load_image

from .artifact import load_artifact


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def predict_files(artifact: Path, images: list[Path], top_k: int = 5) -> list[tuple[str, list[tuple[str, float]]]]:
    art = load_artifact(artifact)
    m = art.meta
    x = np.stack([eval_transform(load_image(p), m.resize_size, m.input_size, m.mean, m.std) for p in images])
    probs = softmax(art.predict(x).astype(np.float64))
    out = []
    for p, row in zip(images, probs):
        idx = np.argsort(-row, kind="stable")[: min(top_k, len(row))]
        out.append((str(p), [(m.class_names[i], float(row[i])) for i in idx]))
    return out
