"""The layering rule (docs/architecture.md), read from the source with ``ast``.

Every ``import`` counts: at module level, inside functions, under ``if TYPE_CHECKING``,
and relative ones, because a lazy import is still a dependency (it fails on the
machine that lacks the other layer, only later). The torch rule is checked twice:
statically here, and by importing every runtime and distribution module with torch
blocked, which also catches what a module pulls in indirectly.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "alexnet_tvm"
#: the layers under alexnet_tvm; every other module directly in alexnet_tvm/ is core
LAYERS = ("model", "compile", "runtime", "distribution", "serving", "interface", "cli")
#: layer -> the layers its modules may import (the table in docs/architecture.md)
ALLOWED = {
    "core": {"core"},
    "model": {"core", "model"},
    "compile": {"core", "model", "compile"},
    "runtime": {"core", "runtime"},
    "distribution": {"core", "runtime", "distribution"},
    "serving": {"core", "runtime", "distribution", "serving"},
    "interface": {"core", "model", "compile", "runtime", "distribution", "serving", "interface"},
    "cli": {"core", *LAYERS},
}
TORCH = ("torch", "torchvision")
#: a board runs runtime, distribution and serving, and they may import all of core: none of it may need torch
TORCH_FREE = ("core", "runtime", "distribution", "serving")


def source_modules() -> dict[str, Path]:
    """module name -> file, for every .py the wheel installs (pyproject's package-dir mapping)."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules: dict[str, Path] = {}
    for pkg, folder in sorted(mapping.items()):
        root = ROOT / folder
        if folder in (".", "") or not (root / "__init__.py").is_file():
            continue  # data packages (targets.yaml, tuning_logs/) hold no code
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            modules[".".join([pkg, *parts])] = path
    return modules


MODULES = source_modules()


def layer_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == PACKAGE, module
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def imported_modules(module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``module``'s file."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    here = module if is_package(module) else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from alexnet_tvm import runtime` imports the runtime layer
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES else base))
    return found


def test_the_source_tree_is_found() -> None:
    assert {"alexnet_tvm.settings", "alexnet_tvm.cli.main", "alexnet_tvm.runtime.artifact",
            "alexnet_tvm.compile.build", "alexnet_tvm.model"} <= set(MODULES)


def _where(module: str, line: int) -> str:
    path = MODULES[module]
    return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}"


def layering_violations(modules) -> list[str]:
    """One line per import that the rule table forbids, naming file, line and both layers."""
    broken = []
    for module in sorted(modules):
        layer = layer_of(module)
        for line, target in sorted(set(imported_modules(module))):
            if target.split(".")[0] == PACKAGE and layer_of(target) not in ALLOWED[layer]:
                broken.append(f"{_where(module, line)}: {layer} imports {target} ({layer_of(target)}); "
                              f"{layer} may import {', '.join(sorted(ALLOWED[layer]))}")
    return broken


def test_imports_follow_the_layering_rule() -> None:
    broken = layering_violations(MODULES)
    assert not broken, "layering broken (docs/architecture.md):\n" + "\n".join(broken)


def test_compile_never_imports_runtime() -> None:
    """The rule's most tempting break, named on its own: compile and runtime agree through core."""
    hits = [f"{m}: {t}" for m in MODULES if layer_of(m) == "compile"
            for _, t in imported_modules(m) if t.startswith(f"{PACKAGE}.runtime")]
    assert not hits


def test_board_side_modules_never_import_torch() -> None:
    hits = [f"{MODULES[m].relative_to(ROOT)}:{line}: {t}" for m in sorted(MODULES) if layer_of(m) in TORCH_FREE
            for line, t in imported_modules(m) if t.split(".")[0] in TORCH]
    assert not hits, "torch imported where a board must run without it:\n" + "\n".join(hits)


BLOCKED_IMPORT = textwrap.dedent('''
    import importlib, importlib.util, pkgutil, sys

    BLOCKED = {blocked!r}

    class BlockTorch:
        """A board without torch: any import of it fails, whoever asks."""

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked (a board has no torch)")
            return None

    sys.meta_path.insert(0, BlockTorch())

    def fail(name):
        raise ImportError(f"cannot walk {{name}}")

    imported = []
    for pkg in {packages!r}:
        if importlib.util.find_spec(pkg) is None:
            print("absent:", pkg)  # the distribution package is created by another change
            continue
        mod = importlib.import_module(pkg)
        names = [pkg] + [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".", onerror=fail)]
        for name in names:
            importlib.import_module(name)
            imported.append(name)
    assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED]
    print("imported", len(imported))
''')


def test_every_runtime_and_distribution_module_imports_without_torch() -> None:
    packages = [f"{PACKAGE}.runtime", f"{PACKAGE}.distribution", f"{PACKAGE}.serving"]
    code = BLOCKED_IMPORT.format(blocked=set(TORCH), packages=packages)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    count = int(proc.stdout.split("imported")[-1])
    expected = [m for m in MODULES if layer_of(m) in ("runtime", "distribution", "serving")]
    assert count == len(expected), (proc.stdout, expected)


@pytest.mark.parametrize("text,fragment", [
    ("from alexnet_tvm.runtime.artifact import LIB\n", "compile imports alexnet_tvm.runtime.artifact"),
    ("def f():\n    from ..runtime import host\n", "compile imports alexnet_tvm.runtime (runtime)"),
    ("from alexnet_tvm import runtime\n", "compile imports alexnet_tvm.runtime (runtime)"),
    ("from .. import settings, cli\n", "compile imports alexnet_tvm.cli (cli)"),
])
def test_the_checker_sees_lazy_relative_and_package_imports(monkeypatch, tmp_path, text, fragment) -> None:
    """The checker itself: a planted import of each kind is reported (and only that one)."""
    bad = tmp_path / "bad.py"
    bad.write_text(text)
    monkeypatch.setitem(MODULES, "alexnet_tvm.compile.bad", bad)
    broken = layering_violations(["alexnet_tvm.compile.bad"])
    assert len(broken) == 1 and fragment in broken[0], broken


#: the folders whose code ships in the wheel (pyproject's package-dir), relative to the checkout
LIBRARY_FOLDERS = ("alexnet_tvm", "compile", "model", "runtime")
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 500


def test_no_library_function_over_60_lines_and_no_file_over_500() -> None:
    """Size limits of the project style: a function longer than a screen hides its steps, and a
    long module mixes concerns. Every def counts, methods and nested functions included."""
    root = Path(__file__).resolve().parent.parent
    offenders: list[tuple[str, int, str]] = []  # (file, line, what)
    for folder in LIBRARY_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            rel = path.relative_to(root).as_posix()
            n_lines = len(text.splitlines())
            if n_lines > MAX_FILE_LINES:
                offenders.append((rel, 1, f"file has {n_lines} lines (limit {MAX_FILE_LINES})"))
            for node in ast.walk(ast.parse(text, filename=str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        offenders.append((rel, node.lineno, f"{node.name}() has {length} lines "
                                                            f"(limit {MAX_FUNCTION_LINES})"))
    report = [f"{rel}:{line} {what}" for rel, line, what in sorted(offenders)]
    assert not report, f"{len(report)} over the size limits:\n" + "\n".join(report)
