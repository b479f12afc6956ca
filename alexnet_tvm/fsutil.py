"""Writes that never leave a half-written file or folder behind.

Every output goes to a temporary sibling first and is renamed into place, so an
interrupted or failed command leaves the previous content byte-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import OutputExistsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def refuse_existing(path: Path, force: bool) -> None:
    """Raise unless ``path`` is absent or the user passed --force, and unless it can be created at
    all: an existing regular file among its parents is refused here, before any work is done."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists (use --force to replace it)")
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputExistsError(f"{path}: {parent} is a file, not a folder; choose another output path")
            break


def refuse_outputs(paths: list[Path | None], force: bool) -> None:
    """:func:`refuse_existing` for each report file a command will write (None: not asked for), before
    the command's work: a folder in the way is refused even with --force, and so are two outputs
    that name one file (the second would silently replace the first)."""
    given = [Path(p) for p in paths if p is not None]
    for p in given:
        if p.is_dir():
            raise OutputExistsError(f"{p} is a folder; give a file name for the report")
        refuse_existing(p, force)
    resolved = [p.resolve() for p in given]
    if len(set(resolved)) != len(resolved):
        raise OutputExistsError(f"two outputs name the same file ({', '.join(map(str, given))})")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; swap it in for ``path`` on success."""
    path = Path(path)
    refuse_existing(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "content")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: Path, error: type[Exception], what: str) -> Any:
    """The parsed file, or ``error`` with one line naming the file and what it should be."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path}: unreadable {what} ({e})") from None


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
