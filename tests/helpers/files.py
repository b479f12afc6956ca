"""Digests and snapshots of a tree: a refused or read-only command must leave it as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_of(path: Path) -> str:
    """The hex sha256 of the file at ``path``."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot_tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root`` (a changed, added or removed file shows)."""
    root = Path(root)
    return {str(p.relative_to(root)): sha256_of(p) for p in sorted(root.rglob("*")) if p.is_file()}
