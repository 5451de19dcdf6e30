"""The layout of docs/architecture.md holds in the code: no import runs back up the flow, and each
library that a single package owns is imported by that package alone."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tracker"

# Lowest first. A package or top-level module may import those of lower layers and its own modules.
LAYERS: list[set[str]] = [
    {"text", "clock", "atomic", "lazy"},
    {"store"},
    {"timelines"},
    {"links", "display", "mail", "channels", "subscribers", "accounts"},
    {"bounces"},
    {"config", "i18n", "metrics"},
    {"feeds"},
    {"emails"},
    {"delivery"},
    {"web"},
    {"runner"},
    {"cli"},
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
OWNERS = {
    "icalendar": "feeds",
    "aiosmtplib": "mail",
    "dkim": "mail",
    "authlib": "web",
    "aiosmtpd": "bounces",
    "flufl": "bounces",
    "imapclient": "bounces",
}  # the only package that may import each


def unit_of(module: str) -> str:
    """'tracker.delivery.outbox' → 'delivery'; 'tracker.runner' → 'runner'."""
    return module.split(".")[1]


def imports() -> Iterator[tuple[str, int, str]]:
    """(file, line, imported module) for every import in the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield str(path.relative_to(PACKAGE.parent)), node.lineno, node.module
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    yield str(path.relative_to(PACKAGE.parent)), node.lineno, alias.name


def test_every_package_and_module_has_its_layer() -> None:
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    units -= {"__init__", "__pycache__", "py"}
    assert units == set(RANK), "add the new package or module to LAYERS and to docs/architecture.md"


def test_no_import_runs_back_up_the_flow() -> None:
    upward = []
    for file, line, module in imports():
        if not module.startswith("tracker.") or module == "tracker":
            continue
        here, there = unit_of(file.removesuffix(".py").replace("/", ".")), unit_of(module)
        if here != there and RANK[there] >= RANK[here]:
            upward.append(f"{file}:{line}: {here} imports {module} (layer {RANK[there]} ≥ {RANK[here]})")
    assert upward == []


@pytest.mark.parametrize(("library", "owner"), sorted(OWNERS.items()))
def test_a_library_is_imported_by_its_package_alone(library: str, owner: str) -> None:
    elsewhere = [
        f"{file}:{line}: {module}"
        for file, line, module in imports()
        if module.split(".")[0] == library and unit_of(file.removesuffix(".py").replace("/", ".")) != owner
    ]
    assert elsewhere == []


def package_rows() -> dict[str, str]:
    """docs/architecture.md's table: each package's row, by package name."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `") and "/` |" in line:
            rows[line.split("`")[1].rstrip("/")] = line
    return rows


def modules_of(package: str) -> list[str]:
    return sorted(p.stem for p in (PACKAGE / package).glob("*.py") if p.stem != "__init__")


def test_architecture_md_names_every_module_of_every_package() -> None:
    rows = package_rows()
    missing = [
        f"{package}/{module}.py"
        for package in sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
        if package != "cli"  # one module per group of commands: the command list is the CLI's own help
        for module in modules_of(package)
        if f"`{module}`" not in rows.get(package, "")
    ]
    assert missing == [], "name them in their package's row of docs/architecture.md"


def test_readme_layout_names_every_package_and_module() -> None:
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    names = [f"tracker/{unit}/" if (PACKAGE / unit).is_dir() else f"{unit}.py" for unit in sorted(RANK)]
    assert [name for name in names if name not in layout] == []


DOCS = [PACKAGE.parent / "README.md", *sorted((PACKAGE.parent / "docs").glob("*.md"))]
NAMED_FILE = re.compile(r"`([^`\s]+\.py)`")


def names_a_file(name: str) -> bool:
    """Whether a `….py` a document names exists: from the repository's top or from tracker/ (a glob
    must match), or, named bare, as a module somewhere in tracker/."""
    top = PACKAGE.parent
    if "/" in name or "*" in name:
        return any(any(root.glob(name)) for root in (top, PACKAGE))
    return (top / name).exists() or any(PACKAGE.rglob(name))


def test_the_docs_name_only_modules_that_exist() -> None:
    missing = [
        f"{doc.relative_to(PACKAGE.parent)}:{number}: {name}"
        for doc in DOCS
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
        for name in NAMED_FILE.findall(line)
        if not names_a_file(name)
    ]
    assert missing == [], "a module moved or was renamed: write where it is now"
