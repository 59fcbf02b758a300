"""The layering of shared/, derived from the code: every import read with `ast` (module level,
inside functions, and under `if TYPE_CHECKING:` alike: a type-only import is still a
dependency of the design), checked against the table in docs/architecture.md.

- Arrows point down: a module imports its own layer or the layers below it, never above.
- No cycles: between modules (imports that run, i.e. not under `if TYPE_CHECKING:`, which
  Python never executes), and between the units of the table (all imports).

A known violation in another piece of work in progress is listed in ALLOWED with the reason;
remove the entry when that work lands. Nothing else is exempt.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.support.processes import ROOT

# Top to bottom; a unit is a package or module prefix. The most specific prefix wins, so
# `shared.connections.models` sits in the domain layer while the rest of
# `shared.connections` is a service. The same table is in docs/architecture.md ("Layers"),
# checked below.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("composition root", ("shared.container", "shared.admin")),
    ("entry points", ("shared.http", "shared.functions")),
    (
        "services",
        (
            "shared.auth",
            "shared.connections",
            "shared.mail",
            "shared.notifications",
            "shared.lifecycle",
            "shared.health",
            "shared.portal",
            "shared.options",
            "shared.export",
        ),
    ),
    (
        "adapters",
        ("shared.graph", "shared.store", "shared.crypto", "shared.audit", "shared.identity"),
    ),
    ("domain", ("shared.connections.models", "shared.connections.schedule")),
    ("foundation", ("shared.config", "shared.errors", "shared.models", "shared.tls", "shared")),
)

# (importer, imported): why it is still there. Only for work other branches are changing.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    type_only: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((ROOT / "shared").rglob("*.py"))}


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in {
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        }:
            for statement in node.body:
                inside.update(id(n) for n in ast.walk(statement))
    return inside


def _targets(node: ast.Import | ast.ImportFrom, importer: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: resolve against the importing package
        package = importer.split(".")
        if MODULES[importer].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in MODULES else base


@cache
def imports() -> tuple[Import, ...]:
    found = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        type_only = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, name):
                    if target in MODULES and target != name:
                        found.append(Import(name, target, node.lineno, id(node) in type_only))
    return tuple(found)


def unit_of(module: str) -> tuple[int, str]:
    """(layer index, unit) of a module: the most specific prefix in LAYERS."""
    best: tuple[int, str] | None = None
    for index, (_, units) in enumerate(LAYERS):
        for unit in units:
            matches = module == unit or module.startswith(unit + ".")
            if matches and (best is None or len(unit) > len(best[1])):
                best = (index, unit)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and the docs"
    return best


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_of_shared_has_a_layer() -> None:
    for module in MODULES:
        unit_of(module)


def test_imports_point_down_the_layers() -> None:
    upward = []
    for edge in imports():
        (low_layer, _), (high_layer, _) = unit_of(edge.importer), unit_of(edge.imported)
        if high_layer < low_layer and (edge.importer, edge.imported) not in ALLOWED:
            upward.append(
                f"{edge.importer}:{edge.line} ({LAYERS[low_layer][0]}) imports "
                f"{edge.imported} ({LAYERS[high_layer][0]})"
            )
    assert upward == []


def test_the_allowed_exceptions_are_still_needed() -> None:
    present = {(edge.importer, edge.imported) for edge in imports()}
    assert [pair for pair in ALLOWED if pair not in present] == []


def test_no_module_imports_itself_back_at_run_time() -> None:
    edges: dict[str, set[str]] = {}
    for edge in imports():
        if not edge.type_only:
            edges.setdefault(edge.importer, set()).add(edge.imported)
    assert cycles(edges) == []


def test_no_unit_depends_on_itself_through_another() -> None:
    edges: dict[str, set[str]] = {}
    for edge in imports():
        if (edge.importer, edge.imported) in ALLOWED:
            continue
        importer, imported = unit_of(edge.importer)[1], unit_of(edge.imported)[1]
        if importer != imported:
            edges.setdefault(importer, set()).add(imported)
    assert cycles(edges) == []


def test_the_table_in_the_architecture_doc_is_this_one() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = doc.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    documented = tuple(
        (
            cells[0].strip(),
            tuple(u for u in re.findall(r"`([^`]+)`", cells[1]) if u.startswith("shared")),
        )
        for cells in (row.strip("|").split("|") for row in rows)
    )
    assert documented == LAYERS
