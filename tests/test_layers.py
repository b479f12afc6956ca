"""The layering rule (docs/architecture.md), read from the source with ``ast``.

Every ``import`` counts: at module level, inside functions, under ``if TYPE_CHECKING``,
and relative ones, because a lazy import is still a dependency (it fails on the
machine that lacks the other layer, only later). The torch rule is checked twice:
statically here, and by importing every runtime and distribution module with torch
blocked, which also catches what a module pulls in indirectly. TVM's compiler is checked in
the source only (``import tvm`` loads it whole on 0.27). Beside the layers: no module takes
another's private name, and no modules import each other in a circle. Each checker is also
run on planted bad code, so a checker that sees nothing fails too.
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


def parse(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))


def import_statements(module: str) -> list[tuple[int, str, str | None, str | None]]:
    """(line, absolute module, name, alias) of every import in ``module``'s file, relative ones
    resolved: ``import a.b as c`` is (line, "a.b", None, "c"), ``from .x import y`` (line, "<pkg>.x", "y", None)."""
    here = module if is_package(module) else module.rpartition(".")[0]
    found: list[tuple[int, str, str | None, str | None]] = []
    for node in ast.walk(parse(module)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None, alias.asname) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found += [(node.lineno, base, alias.name, alias.asname) for alias in node.names]
    return found


def imported_modules(module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``module``'s file."""
    found: list[tuple[int, str]] = []
    for line, base, name, _ in import_statements(module):
        sub = f"{base}.{name}"  # `from alexnet_tvm import runtime` imports the runtime layer
        found.append((line, sub if name is not None and sub in MODULES else base))
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


# --------------------------------------------------------------------------- TVM's compiler

#: TVM's compiler, by module path: core and what a board runs name none of it (docs/architecture.md);
#: tirx is 0.27's tir, driver/compile/build its build entry points, meta_schedule counts on any path.
#: Checked in the source only: on TVM 0.27 ``import tvm`` itself loads relax, s_tir, te and topi,
#: so the rule is what our code asks of TVM, which a runtime-only TVM build would still serve.
TVM_COMPILER = ("relax", "tir", "tirx", "s_tir", "script", "te", "topi", "dlight", "driver", "compile", "build",
                "meta_schedule")
COMPILER_FREE = ("core", "runtime", "distribution", "serving")
#: (module, compiler part) -> why it is still there; an entry that no longer matches must go
COMPILER_EXEMPT: dict[tuple[str, str], str] = {}


def compiler_part(name: str) -> str | None:
    """The part of a dotted TVM name that is the compiler (``tvm.relax``), or None."""
    parts = name.split(".")
    if parts[0] != "tvm" or len(parts) < 2:
        return None
    if parts[1] in TVM_COMPILER:
        return ".".join(parts[:2])
    return ".".join(parts[: parts.index("meta_schedule") + 1]) if "meta_schedule" in parts else None


def bound_names(module: str, top: str) -> dict[str, str]:
    """Local name -> the module of ``top`` (a package: ours, or tvm) it stands for in ``module``:
    ``import a.b`` binds a, ``import a.b as c`` binds c to a.b, ``from a import b`` binds b to a.b."""
    bound: dict[str, str] = {}
    for _, base, name, asname in import_statements(module):
        if base.split(".")[0] != top:
            continue
        if name is None:
            bound[asname or base.split(".")[0]] = base if asname else base.split(".")[0]
        else:
            bound[asname or name] = f"{base}.{name}"
    return bound


def _dotted(node: ast.expr) -> tuple[str, list[str]] | None:
    """(root name, attributes) of ``a.b.c`` (of ``a``: ("a", [])); None when the root is not a plain name."""
    chain = []
    while isinstance(node, ast.Attribute):
        chain.append(node.attr)
        node = node.value
    return (node.id, chain[::-1]) if isinstance(node, ast.Name) else None


def tvm_names(module: str) -> set[tuple[int, str]]:
    """(line, dotted TVM name) of every import of TVM and every ``tvm.x.y`` attribute path."""
    names = {(line, base if name is None else f"{base}.{name}") for line, base, name, _ in import_statements(module)
             if base.split(".")[0] == "tvm"}
    aliases = bound_names(module, "tvm")
    for node in ast.walk(parse(module)):
        chain = _dotted(node) if isinstance(node, ast.Attribute) else None
        if chain and chain[0] in aliases:
            names.add((node.lineno, ".".join([aliases[chain[0]], *chain[1]])))
    return names


def compiler_uses(modules) -> list[tuple[str, str, str]]:
    """(module, compiler part, file:line) of each time a module of a compiler-free layer names TVM's compiler."""
    found = set()
    for module in sorted(m for m in modules if layer_of(m) in COMPILER_FREE):
        for line, name in tvm_names(module):
            part = compiler_part(name)
            if part:
                found.add((module, part, _where(module, line)))
    return sorted(found)


def test_core_and_the_board_side_never_name_tvm_compiler() -> None:
    uses = compiler_uses(MODULES)
    broken = [f"{where}: {layer_of(m)} names {part}" for m, part, where in uses if (m, part) not in COMPILER_EXEMPT]
    assert not broken, "TVM's compiler named where only its runtime may be (docs/architecture.md):\n" + \
        "\n".join(broken)
    stale = set(COMPILER_EXEMPT) - {(m, part) for m, part, _ in uses}
    assert not stale, f"exemptions no longer needed, remove them from COMPILER_EXEMPT: {sorted(stale)}"


@pytest.mark.parametrize("text,part", [
    ("from tvm import relax\n", "tvm.relax"),
    ("def f():\n    import tvm.s_tir.meta_schedule as ms\n", "tvm.s_tir"),
    ("from tvm.s_tir.meta_schedule.database import JSONDatabase\n", "tvm.s_tir"),
    ("import tvm\n\ndef f(lib, dev):\n    return tvm.relax.VirtualMachine(lib, dev)\n", "tvm.relax"),
    ("from tvm import script as S\n", "tvm.script"),
    ("import tvm\ntvm.compile(None)\n", "tvm.compile"),
    ("import tvm\nfrom tvm.target import codegen\ntvm.runtime.load_module('x')\ntvm.target.Target('llvm')\n", None),
])
def test_the_compiler_check_sees_imports_and_attribute_paths(monkeypatch, tmp_path, text, part) -> None:
    """The checker itself: a planted use of the compiler in a core module is reported; the runtime,
    tvm.target and the FFI are not the compiler."""
    bad = tmp_path / "bad.py"
    bad.write_text(text)
    monkeypatch.setitem(MODULES, "alexnet_tvm.bad", bad)
    parts = {p for _, p, _ in compiler_uses(["alexnet_tvm.bad"])}
    assert parts == ({part} if part else set()), parts


# --------------------------------------------------------------------------- private names


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(modules) -> list[str]:
    """One line per private name (``_x``) a module takes from another of the package: ``from m import _x``,
    or ``m._x`` on an imported module. A package's ``__init__`` taking its own submodules' names is its own."""
    broken = []
    for module in sorted(modules):
        for line, base, name, _ in import_statements(module):
            if (base.split(".")[0] == PACKAGE and name is not None and is_private(name)
                    and f"{base}.{name}" not in MODULES and not (is_package(module) and base.startswith(module + "."))):
                broken.append(f"{_where(module, line)}: imports {name} from {base}")
        aliases = bound_names(module, PACKAGE)
        for node in ast.walk(parse(module)):
            chain = _dotted(node.value) if isinstance(node, ast.Attribute) and is_private(node.attr) else None
            if chain and chain[0] in aliases:
                owner = ".".join([aliases[chain[0]], *chain[1]])
                if owner in MODULES and owner != module:
                    broken.append(f"{_where(module, node.lineno)}: uses {owner}.{node.attr}")
    return broken


def test_no_module_takes_a_private_name_from_another() -> None:
    """A leading underscore says "only this module relies on it": a name another module needs is
    made public in its home, so a change to it is seen as a change to an interface."""
    broken = private_imports(MODULES)
    assert not broken, "private names used across modules:\n" + "\n".join(broken)


@pytest.mark.parametrize("text,found", [
    ("from alexnet_tvm.records import _check_file\n", "imports _check_file from alexnet_tvm.records"),
    ("def f():\n    from ..tuning.tune import _Plan\n", "imports _Plan from alexnet_tvm.compile.tuning.tune"),
    ("from alexnet_tvm import records\nrecords._lines\n", "uses alexnet_tvm.records._lines"),
    ("import alexnet_tvm.records\nalexnet_tvm.records._lines\n", "uses alexnet_tvm.records._lines"),
    ("from ..tuning import tune as T\nT._Plan\n", "uses alexnet_tvm.compile.tuning.tune._Plan"),
    ("from alexnet_tvm.records import RECORDS as _R\nfrom alexnet_tvm import __version__\n", None),
])
def test_the_private_name_check_sees_imports_and_attributes(monkeypatch, tmp_path, text, found) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(text)
    monkeypatch.setitem(MODULES, "alexnet_tvm.compile.int8.bad", bad)
    broken = private_imports(["alexnet_tvm.compile.int8.bad"])
    assert (len(broken) == 1 and found in broken[0]) if found else not broken, broken


# --------------------------------------------------------------------------- import circles


def import_cycles(modules) -> list[list[str]]:
    """The import circles among ``modules`` (Tarjan's strongly connected components), each as
    ``a -> b (file:line)`` edges. Every import counts, lazy ones too: a circle broken only by
    importing inside a function still ties the two modules into one."""
    modules = set(modules)
    edges: dict[str, dict[str, int]] = {m: {} for m in modules}
    for m in modules:
        for line, target in imported_modules(m):
            if target in modules and target != m:
                edges[m].setdefault(target, line)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(part) > 1:
                circles.append([f"{a} -> {b} ({_where(a, line)})" for a in sorted(part)
                                for b, line in sorted(edges[a].items()) if b in part])

    for v in sorted(modules):
        if v not in index:
            visit(v)
    return circles


def test_no_import_circle() -> None:
    circles = import_cycles(MODULES)
    assert not circles, "import circles:\n" + "\n\n".join("\n".join(c) for c in circles)


@pytest.mark.parametrize("a,b,circle", [
    ("from . import bad_b\n", "def f():\n    from .bad_a import x\n", True),
    ("from .bad_b import y\n", "from .bad_c import z\n", True),  # through a third module
    ("from .bad_b import y\n", "import json\n", False),
])
def test_the_circle_check_sees_lazy_and_longer_circles(monkeypatch, tmp_path, a, b, circle) -> None:
    files = {"bad_a": a, "bad_b": b, "bad_c": "from .bad_a import w\n" if "bad_c" in b else ""}
    names = []
    for stem, text in files.items():
        (tmp_path / f"{stem}.py").write_text(text)
        monkeypatch.setitem(MODULES, f"alexnet_tvm.compile.{stem}", tmp_path / f"{stem}.py")
        names.append(f"alexnet_tvm.compile.{stem}")
    circles = import_cycles(names)
    assert bool(circles) == circle, circles


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
