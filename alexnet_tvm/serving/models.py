"""Artifacts of one model served under one name, and running any number of rows on them.

A library is specialised on one batch size. Serving several builds of the same model
(batch 1 and batch 16, say) lets a lone request run on the small one and a crowd on the
big one: each chunk of rows goes to the smallest artifact whose batch holds it, is padded
up to that batch, and the padding rows are cut off before anything is returned.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_tvm.batching import run_in_batches
from alexnet_tvm.errors import ServeError
from alexnet_tvm.meta import ModelMeta
from alexnet_tvm.runtime.artifact import Artifact, load_artifact

log = logging.getLogger(__name__)

#: the OIP name of the one output: the manifest names the input but not the output
OUTPUT_NAME = "logits"
DATATYPE = "FP32"


@dataclass
class ServedModel:
    """One model name: its artifacts in ascending batch order (all of one input shape and class list)."""

    name: str
    artifacts: list[Artifact]
    version: str = "1"

    @property
    def meta(self) -> ModelMeta:
        return self.artifacts[0].meta

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one image: the input shape without its batch dimension."""
        return self.artifacts[0].input_shape[1:]

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    @property
    def input_name(self) -> str:
        return str(self.artifacts[0].manifest["input"].get("name") or "input")

    @property
    def batches(self) -> list[int]:
        return [a.batch for a in self.artifacts]

    @property
    def max_batch(self) -> int:
        return self.artifacts[-1].batch

    @property
    def target(self) -> str:
        return str(self.artifacts[0].manifest["target"].get("name"))

    def pick(self, rows: int) -> Artifact:
        """The smallest artifact whose batch holds ``rows``; the largest when none does."""
        return next((a for a in self.artifacts if a.batch >= rows), self.artifacts[-1])

    def run_rows(self, x: np.ndarray) -> np.ndarray:
        """Logits for every row of ``x`` (any count): full chunks on the largest artifact, the rest
        on the smallest that fits, padded; only the real rows come back."""
        outs = []
        i = 0
        while i < len(x):
            art = self.pick(len(x) - i)
            chunk = x[i:i + art.batch]
            outs.append(run_in_batches(art.run_batch, chunk, art.batch))
            i += len(chunk)
        return np.concatenate(outs) if outs else np.zeros((0, self.num_classes), np.float32)


def model_name_of(art: Artifact) -> str:
    """The name the manifest gives the model (the source file's stem, as packs use it)."""
    return str(art.manifest.get("model", {}).get("name") or art.folder.name)


def _check_same_model(name: str, arts: list[Artifact]) -> None:
    """Artifacts served as one model must take the same images and name the same classes."""
    first = arts[0]
    for a in arts[1:]:
        if a.input_shape[1:] != first.input_shape[1:]:
            raise ServeError(f"model {name!r}: {a.folder} takes images of {a.input_shape[1:]}, "
                             f"{first.folder} of {first.input_shape[1:]}; serve them under different --name")
        if a.meta.class_names != first.meta.class_names:
            raise ServeError(f"model {name!r}: {a.folder} and {first.folder} name different classes")
        if a.batch == first.batch:
            raise ServeError(f"model {name!r}: {a.folder} and {first.folder} are both batch {a.batch}")


def group_models(arts: list[Artifact], name: str | None = None) -> dict[str, ServedModel]:
    """Artifacts -> served models, by ``name`` if given, else by the manifests' model names."""
    groups: dict[str, list[Artifact]] = {}
    for a in arts:
        groups.setdefault(name or model_name_of(a), []).append(a)
    models = {}
    for n, group in groups.items():
        group.sort(key=lambda a: a.batch)
        _check_same_model(n, group)
        models[n] = ServedModel(n, group)
        log.info("model %s: batches %s on %s", n, models[n].batches, models[n].target)
    return models


#: TVM's pool workers spin after each parallel region before they sleep. In a server they then hold
#: a core the event loop and the clients want between inferences: on the 2-vCPU Zen 3, three
#: serve-bench runs each way (docs/performance.md) gave p50 - bare +2.45 ms and 84.0 % of bare
#: throughput at 32 clients with TVM's default spin, +1.90 ms and 88.6 % with none.
SPIN_ENV = "TVM_THREAD_POOL_SPIN_COUNT"
#: TVM pins its pool workers to cores. In a server the event loop then lands on a pinned worker's
#: core and the worker waits for it, while the other core may sit idle at a barrier; unpinned,
#: the scheduler moves it. On the 2-vCPU Zen 4, ten paired rounds (docs/performance.md) gave a
#: median 85.9 % of bare at 32 clients unpinned against 81.2 % pinned, the bare speed unchanged.
BIND_ENV = "TVM_BIND_THREADS"
#: what a served library's thread pool runs with unless the user set these variables
SERVED_POOL = {SPIN_ENV: "0", BIND_ENV: "0"}


def quiet_thread_pool() -> None:
    """No spinning and no pinning in TVM's thread pool unless the user set them (before the pool
    starts: the first load of an artifact runs it)."""
    for name, value in SERVED_POOL.items():
        os.environ.setdefault(name, value)


def load_models(folders: list[Path], name: str | None = None) -> dict[str, ServedModel]:
    """Load (checksums first, as ``load_artifact`` does) and group the artifact folders."""
    quiet_thread_pool()
    if not folders:
        raise ServeError("no artifact to serve: give artifact folders or --pull NAME --from URL")
    return group_models([load_artifact(Path(f)) for f in folders], name)
