"""A rule is named once in code: in its registry entry. Model names stay in the contract.

Parses every module of the package but the contract loader and finds every string constant
that is a declared rule id: each must be the argument of a registry entry
(``REQUEST_RULES.add(...)``, ``_answer_rule(...)``, ``_planned(...)``). No string constant may
be a model's or a model family's name: behaviour follows capabilities.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import conformance
from conformance.contract.loader import load_contract

PACKAGE = Path(conformance.__file__).parent
#: Every module but the contract loader, which reads the data.
MODULES = tuple(
    str(path.relative_to(PACKAGE))
    for path in sorted(PACKAGE.rglob("*.py"))
    if path.relative_to(PACKAGE) != Path("contract/loader.py")
)
#: The calls that register a rule: the one place its id is written (a helper of a layer's
#: registry, or ``Registry.add``/``Registry.register`` itself).
REGISTERING = {"_answer_rule", "_planned", "_add", "add", "register"}
CONTRACT = load_contract()


def _registered_constants(tree: ast.AST) -> set[int]:
    """The ids of the string nodes that are a registering call's rule id."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called_name(node.func) in REGISTERING and node.args:
            out.add(id(node.args[0]))
    return out


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _strings(tree: ast.AST) -> list[ast.Constant]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


@pytest.mark.parametrize("module", MODULES)
def test_rule_ids_are_written_only_in_registry_entries(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text())
    allowed = _registered_constants(tree)
    stray = [
        f"line {node.lineno}: {node.value}"
        for node in _strings(tree)
        if node.value in CONTRACT.rules and id(node) not in allowed
    ]
    assert not stray, f"{module} names rules outside its registry entries: {stray}"


@pytest.mark.parametrize("module", MODULES)
def test_no_model_or_family_name_is_written_in_code(module: str) -> None:
    names = set(CONTRACT.models) | {spec.family for spec in CONTRACT.models.values()}
    tree = ast.parse((PACKAGE / module).read_text())
    found = [f"line {n.lineno}: {n.value}" for n in _strings(tree) if n.value in names]
    assert not found, f"{module} branches on model names: {found}"


def test_the_guard_sees_a_stray_rule_id() -> None:
    tree = ast.parse('X = _answer_rule("image.size")\nif rule == "image.size": pass\n')
    allowed = _registered_constants(tree)
    stray = [n.lineno for n in _strings(tree) if n.value in CONTRACT.rules and id(n) not in allowed]
    assert stray == [2]
