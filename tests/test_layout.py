"""The tests' own layout: shared helpers live in tests/support/ or as fixtures in conftest.py.

A test module imported by another one ties two files together that read as independent (and pytest
may collect its tests twice over); conftest.py is pytest's to load, never a module to import.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def imported_names(node: ast.AST, package: str) -> list[str]:
    """Return the dotted names *node* imports: for `from x import y` both x and x.y, relative ones resolved."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    parent = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
    base = ".".join(part for part in (parent, node.module or "") if part)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def is_test_module_or_conftest(name: str) -> bool:
    """Tell whether *name* is tests.test_x or tests.conftest (or their bare forms test_x, conftest)."""
    parts = name.removeprefix("tests.").split(".")
    return parts[0].startswith("test_") or parts[0] == "conftest"


def forbidden_imports(source: str, where: str, package: str = "tests") -> list[str]:
    """Return 'where:line imports name' for each import of a test module or of conftest in *source*."""
    found = []
    for node in ast.walk(ast.parse(source, filename=where)):
        names = [name for name in imported_names(node, package) if is_test_module_or_conftest(name)]
        if names:
            found.append((node.lineno, f"{where}:{node.lineno} imports {names[0]}"))  # type: ignore[attr-defined]
    return [line for _, line in sorted(found)]


def test_no_test_module_helper_or_benchmark_imports_a_test_module_or_conftest() -> None:
    paths = sorted((REPO / "tests").rglob("*.py")) + sorted((REPO / "bench").glob("*.py"))
    found = []
    for path in paths:
        where = str(path.relative_to(REPO))
        package = ".".join(path.relative_to(REPO).parent.parts)
        found += forbidden_imports(path.read_text(encoding="utf-8"), where, package)

    assert len([path for path in paths if path.name.startswith("test_")]) > 30  # the whole suite, not a stray folder
    assert found == [], "move the helper to tests/support/, or make it a fixture in conftest.py:\n" + "\n".join(found)


def test_the_check_names_the_file_and_line_of_every_form_of_such_an_import() -> None:
    source = """\
import os
from tests.support.web import serving
from tests.test_web import sync
from tests import conftest, factories
from . import test_cli


def late() -> None:
    import tests.test_delivery
from .conftest import NOW
"""
    found = forbidden_imports(source, "tests/test_probe.py")

    assert found == [
        "tests/test_probe.py:3 imports tests.test_web",
        "tests/test_probe.py:4 imports tests.conftest",
        "tests/test_probe.py:5 imports tests.test_cli",
        "tests/test_probe.py:9 imports tests.test_delivery",
        "tests/test_probe.py:10 imports tests.conftest",
    ]
