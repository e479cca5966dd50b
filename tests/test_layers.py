"""The package's folders are its layers: every import of ``conformance/`` goes down, never up.

Each module is parsed (not imported), so an import inside a function counts as much as one at
the top; only imports inside ``if TYPE_CHECKING:`` are left out (they never run). The layers,
from the bottom:

- foundation: ``conformance/__init__``, ``errors``, ``redact``, ``settings`` (imports nothing
  of the layers);
- ``contract``: the rules, profiles, request oracle;
- ``generation``: cases, strategies, planning (reads the contract);
- ``engine``: transport, checks, runner (sends and judges the generation's cases);
- ``reports``: report.json and its renderings, recordings, diffs (reads the engine's results);
- ``server``: the reference server (knows only the contract);
- the front ends, ``cli`` and ``pytest_plugin``: every command; nothing imports them.

Besides, no two modules import each other at module level, through any chain.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import conformance

PACKAGE = Path(conformance.__file__).parent

FOUNDATION = "foundation"
FRONT_ENDS = ("cli", "pytest_plugin")
#: What each layer may import (itself included).
ALLOWED = {
    FOUNDATION: {FOUNDATION},
    "contract": {FOUNDATION, "contract"},
    "generation": {FOUNDATION, "contract", "generation"},
    "engine": {FOUNDATION, "contract", "generation", "engine"},
    "reports": {FOUNDATION, "contract", "generation", "engine", "reports"},
    "server": {FOUNDATION, "contract", "server"},
    "cli": {FOUNDATION, "contract", "generation", "engine", "reports", "server", "cli"},
    "pytest_plugin": {FOUNDATION, "contract", "generation", "engine", "reports", "server"},
}
LAYERS = tuple(name for name in ALLOWED if name not in (FOUNDATION, *FRONT_ENDS))


@dataclass(frozen=True)
class Import:
    """One import of one module of the package by another."""

    importer: str
    imported: str
    #: Executed when the importer is imported (not inside a function).
    module_level: bool
    line: int


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Every module under ``root`` by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(
    node: ast.AST, in_function: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``node`` with whether it runs inside a function;
    ``if TYPE_CHECKING:`` bodies left out (their ``else`` kept)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]), in_function)
        else:
            inner = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            yield from _import_nodes(child, inner)


def _resolve(
    name: str, path: Path, node: ast.Import | ast.ImportFrom, known: Iterable[str]
) -> list[str]:
    """The package modules an import statement reaches (relative ones resolved)."""
    known = set(known)
    package = name.split(".")[0]
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        if node.level:
            base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            stem = ".".join([*base, node.module] if node.module else base)
        else:
            stem = node.module or ""
        targets = [
            f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem
            for alias in node.names
        ]
    out = []
    for target in targets:
        if target.split(".")[0] != package:
            continue
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        out.append(target)
    return out


def package_imports(root: Path, package: str) -> list[Import]:
    """Every import of one package module by another, function-level ones included."""
    modules = modules_of(root, package)
    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, in_function in _import_nodes(tree):
            for target in dict.fromkeys(_resolve(name, path, node, modules)):
                if target != name:
                    found.append(Import(name, target, not in_function, node.lineno))
    return found


def layer_of(module: str) -> str:
    """The layer of a dotted module name of the package."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("errors", "redact", "settings"):
        return FOUNDATION
    return parts[1]


def layering_violations(imports: Iterable[Import]) -> list[str]:
    """Every import that goes up a layer or into a front end, as a readable line."""
    out = []
    for item in imports:
        source, target = layer_of(item.importer), layer_of(item.imported)
        if target not in ALLOWED.get(source, set()):
            out.append(
                f"{item.importer}:{item.line} imports {item.imported} ({source} -> {target})"
            )
    return out


def import_cycles(imports: Iterable[Import]) -> list[list[str]]:
    """The groups of modules that import each other at module level (Tarjan's SCCs)."""
    graph: dict[str, set[str]] = {}
    for item in imports:
        if item.module_level:
            graph.setdefault(item.importer, set()).add(item.imported)
            graph.setdefault(item.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def layer_graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    """Which layer imports which (itself left out)."""
    graph: dict[str, set[str]] = {}
    for item in imports:
        source, target = layer_of(item.importer), layer_of(item.imported)
        if source != target:
            graph.setdefault(source, set()).add(target)
    return graph


# --- the package ---------------------------------------------------------------------------

IMPORTS = package_imports(PACKAGE, "conformance")


def test_every_layer_is_a_folder_of_the_package() -> None:
    for layer in LAYERS:
        assert (PACKAGE / layer / "__init__.py").is_file(), layer
    assert {layer_of(name) for name in modules_of(PACKAGE, "conformance")} <= set(ALLOWED)


def test_no_import_goes_up_a_layer() -> None:
    assert layering_violations(IMPORTS) == []


def test_nothing_imports_a_front_end() -> None:
    into_front = [
        i for i in IMPORTS if layer_of(i.imported) in FRONT_ENDS and layer_of(i.importer) != "cli"
    ]
    assert into_front == []


def test_no_import_cycle_at_module_level() -> None:
    assert import_cycles(IMPORTS) == []


def test_the_engine_reaches_neither_reports_nor_server() -> None:
    """Function-level imports included: the commands that needed them live in the front end."""
    engine = layer_graph(IMPORTS).get("engine", set())
    assert not engine & {"reports", "server", *FRONT_ENDS}


# --- the checker itself ----------------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in {p.parent for p in (root / "pkg").rglob("*.py")}:
        (folder / "__init__.py").touch()
    return root / "pkg"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # contract reaching up into the engine, inside a function
        (
            {
                "contract/rules.py": "def f():\n    from ..engine import runner\n",
                "engine/runner.py": "",
            },
            ["pkg.contract.rules:2 imports pkg.engine.runner (contract -> engine)"],
        ),
        # the engine writing reports, by absolute name
        (
            {"engine/runner.py": "import pkg.reports.writer\n", "reports/writer.py": ""},
            ["pkg.engine.runner:1 imports pkg.reports.writer (engine -> reports)"],
        ),
        # the server importing the runner's module through `from .. import`
        (
            {"server/app.py": "from ..engine import runner\n", "engine/runner.py": ""},
            ["pkg.server.app:1 imports pkg.engine.runner (server -> engine)"],
        ),
        # a report importing the command line
        (
            {"reports/html.py": "from ..cli import run\n", "cli/run.py": ""},
            ["pkg.reports.html:1 imports pkg.cli.run (reports -> cli)"],
        ),
        # a foundation module importing a layer
        (
            {"settings.py": "from .contract import loader\n", "contract/loader.py": ""},
            ["pkg.settings:1 imports pkg.contract.loader (foundation -> contract)"],
        ),
    ],
)
def test_a_planted_upward_import_is_found(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    root = _tree(tmp_path, files)
    assert layering_violations(package_imports(root, "pkg")) == expected


def test_imports_for_type_checking_only_and_downward_ones_are_allowed(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "engine/runner.py": (
                "from typing import TYPE_CHECKING\n"
                "from ..contract import loader\n"
                "from .. import settings\n"
                "if TYPE_CHECKING:\n"
                "    from ..reports import writer\n"
            ),
            "contract/loader.py": "",
            "reports/writer.py": "",
            "settings.py": "",
        },
    )
    found = package_imports(root, "pkg")
    assert {i.imported for i in found} == {"pkg.contract.loader", "pkg.settings"}
    assert layering_violations(found) == []


def test_a_cycle_is_found_at_module_level_only(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "engine/a.py": "from . import b\n",
            "engine/b.py": "from . import c\n",
            "engine/c.py": "from . import a\n",
            "engine/d.py": "from . import e\n",
            "engine/e.py": "def later():\n    from . import d\n",
        },
    )
    assert import_cycles(package_imports(root, "pkg")) == [
        ["pkg.engine.a", "pkg.engine.b", "pkg.engine.c"]
    ]
