"""The test suite's own shape, read from the source with ``ast``: test modules share helpers the
ordinary way (fixtures in conftest.py, plain functions in the ``helpers`` package), never by
importing one another or conftest. A test module imported by another runs its module-level code
twice under two names, and its private helpers turn into an API nobody meant to keep.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TEST_MODULES = sorted(TESTS.glob("test_*.py"))
#: modules of tests/ that no test module may import (pytest loads conftest itself)
NOT_IMPORTABLE = {p.stem for p in TEST_MODULES} | {"conftest"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in ``path``, at any depth: a lazy import is still an import."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def cross_imports(path: Path) -> list[str]:
    """``file:line imports module`` for each import of a test module or conftest (``tests.`` prefix or not)."""
    bad = []
    for line, module in imported_modules(path):
        parts = module.split(".")
        top = parts[1] if parts[0] == "tests" and len(parts) > 1 else parts[0]
        if top in NOT_IMPORTABLE:
            bad.append(f"{path.name}:{line} imports {module}")
    return bad


def test_the_check_sees_every_form_of_cross_import(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text("import test_compile\nfrom tests.test_rpc import CLI\nfrom conftest import x\n"
                     "def f():\n    from test_recordsets import fake_host\n"
                     "from helpers.models import TARGET\nimport tests.helpers\n")
    assert cross_imports(probe) == ["test_probe.py:1 imports test_compile", "test_probe.py:2 imports tests.test_rpc",
                                    "test_probe.py:3 imports conftest", "test_probe.py:5 imports test_recordsets"]


def test_no_test_module_or_helper_imports_a_test_module_or_conftest():
    assert len(TEST_MODULES) > 30  # the glob found the suite
    bad = [b for p in [*TEST_MODULES, *sorted((TESTS / "helpers").glob("*.py"))] for b in cross_imports(p)]
    assert not bad, "move what is shared to tests/helpers/ (functions) or tests/conftest.py (fixtures): " + "; ".join(bad)
