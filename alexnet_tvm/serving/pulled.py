"""``serve --pull NAME --from URL``: packs fetched at start-up, checked before anything loads.

The packs go through :func:`alexnet_tvm.distribution.pull.pull`, which refuses a download
whose size or digest differs from the registry's index, an archive that fails its
SHA256SUMS, and an artifact whose manifest disagrees with the index or cannot run here.
They are installed in a temporary folder that lives as long as the server, so a container
that pulls on every start leaves nothing behind.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from alexnet_tvm.distribution.pull import PullConfig, pull
from alexnet_tvm.distribution.registry import DEFAULT_TIMEOUT


@dataclass
class PullRequest:
    models: list[str]
    registry: str
    #: a target name to prefer; None: any pack this host runs
    target: str | None = None
    #: one pack per batch size; empty: the smallest batch the registry has
    batches: list[int] = field(default_factory=list)
    timeout: float = DEFAULT_TIMEOUT
    #: the keys a pack must be signed with (``serve --trust``, as ``pull --trust``); None: unsigned accepted
    trust: object = None  # distribution.signing.Trust


@contextmanager
def pulled_artifacts(req: PullRequest) -> Iterator[list[Path]]:
    """Artifact folders of the verified packs; removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-serve-") as tmp:
        folders = []
        for name in req.models:
            for batch in req.batches or [None]:
                out = Path(tmp) / f"{name}-b{batch or 'min'}"
                res = pull(PullConfig(model=name, registry=req.registry, target=req.target, batch=batch, out=out,
                                      timeout=req.timeout, progress=False, trust=req.trust))
                folders.append(res.out)
        yield folders
