"""Request rules are data plus one registry entry each: the oracle, the strategies and the
reference server read them (and the request schema) and never name a rule or a contract value."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

import conformance
from conformance.contract.loader import load_contract
from conformance.contract.oracle import request_violations
from conformance.contract.request_rules import REQUEST_RULES
from conformance.server.app import ServerConfig, create_app

CONTRACT = load_contract()
PACKAGE = Path(conformance.__file__).parent
#: The modules that must hold no rule id and no contract value of their own.
RULE_FREE = (
    PACKAGE / "contract" / "oracle.py",
    PACKAGE / "generation" / "strategies.py",
    PACKAGE / "server" / "app.py",
)
#: Names whose values are exempt (the reference server's own choices now live in
#: schemas/reference-server.yaml, so none are).
SERVER_DATA: set[str] = set()
#: Modules held to no enum value either (the server still draws and answers with some: its
#: answer's keys, its quirks' damage by format).
ENUM_FREE = RULE_FREE[:2]


def test_every_request_rule_has_one_registry_entry_and_no_other_rule_has_one() -> None:
    request = [r.id for r in CONTRACT.rules.values() if r.kind in ("reject", "either")]
    assert REQUEST_RULES.missing(request) == []
    assert set(REQUEST_RULES) == set(request)


def test_every_request_rule_states_its_error_code() -> None:
    raw = yaml.safe_load((CONTRACT.directory / "rules.yaml").read_text(encoding="utf-8"))
    request = [e for e in raw["rules"] if e["kind"] in ("reject", "either")]
    assert request and all("error_code" in e for e in request), [
        e["id"] for e in request if "error_code" not in e
    ]


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """Every string literal of a module, outside the server's own-choice tables."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id in SERVER_DATA for t in targets):
            skipped.update(id(sub) for sub in ast.walk(node))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skipped
        and not _is_docstring(node, tree)
    ]


def _is_docstring(node: ast.Constant, tree: ast.Module) -> bool:
    for owner in ast.walk(tree):
        body = getattr(owner, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and first.value is node:
            return True
    return False


@pytest.mark.parametrize("path", RULE_FREE, ids=lambda p: p.name)
def test_no_rule_id_model_or_enum_value_is_typed_in_the_rule_free_modules(path: Path) -> None:
    literals = _string_constants(path)
    rule_ids = set(CONTRACT.rules)
    contract_values = set(CONTRACT.models) | {m.family for m in CONTRACT.models.values()}
    contract_values |= {s for m in CONTRACT.models.values() for s in m.sizes}
    if path in ENUM_FREE:
        contract_values |= {v for values in CONTRACT.enum_fields.values() for v in values}
    found = [
        (line, text)
        for line, text in literals
        if text in rule_ids
        or text.startswith("request.")
        or text in contract_values
        or "gpt-image" in text
        or "dall-e" in text
    ]
    assert found == []


def test_importing_the_oracle_and_the_registry_does_not_import_hypothesis() -> None:
    code = (
        "import sys; import conformance.contract.oracle, conformance.contract.request_rules; "
        "print('hypothesis' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _edited_contract(tmp_path: Path, edit) -> object:
    """A copy of the contract data with the request schema edited."""
    copy = tmp_path / "schemas"
    shutil.copytree(CONTRACT.directory, copy)
    path = copy / "images.generations.request.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    edit(schema)
    path.write_text(json.dumps(schema), encoding="utf-8")
    return load_contract.__wrapped__(copy)


def test_cross_field_rules_are_read_from_the_schema(tmp_path: Path) -> None:
    body = {"model": "gpt-image-1", "prompt": "p", "background": "transparent"}
    jpeg = {**body, "output_format": "jpeg"}
    assert [v.rule for v in request_violations(jpeg)] == ["request.background.transparent_jpeg"]

    def allow_jpeg(schema: dict) -> None:
        then = schema["$defs"]["gpt.transparent-needs-alpha-format"]["then"]
        then["properties"]["output_format"]["enum"].append("jpeg")

    assert request_violations(jpeg, _edited_contract(tmp_path, allow_jpeg)) == []


def test_model_limits_are_read_from_the_schema(tmp_path: Path) -> None:
    body = {"model": "dall-e-3", "prompt": "p", "n": 2}
    assert [v.rule for v in request_violations(body)] == ["request.n.max.dall-e-3"]

    def two_images(schema: dict) -> None:
        schema["$defs"]["model.dall-e-3"]["properties"]["n"]["maximum"] = 2

    contract = _edited_contract(tmp_path, two_images)
    assert request_violations(body, contract) == []
    assert [v.rule for v in request_violations({**body, "n": 3}, contract)] == [
        "request.n.max.dall-e-3"
    ]


def test_an_omitted_model_means_what_the_schema_says(tmp_path: Path) -> None:
    from conformance.contract.oracle import resolve_model

    assert resolve_model({"prompt": "p"}) == CONTRACT.default_model
    assert resolve_model({"prompt": "p", "background": "opaque"}) is None

    def background_is_fine(schema: dict) -> None:
        del schema["$defs"]["gpt-only-fields-absent"]["properties"]["background"]

    contract = _edited_contract(tmp_path, background_is_fine)
    assert resolve_model({"prompt": "p", "background": "opaque"}, contract) == "dall-e-2"


@pytest.fixture
def client() -> TestClient:
    app = create_app(ServerConfig(api_key="sk-test"))
    return TestClient(app, headers={"Authorization": "Bearer sk-test"})


def test_the_server_answers_each_break_with_the_rules_error_code(client: TestClient) -> None:
    """Every plan case that breaks a request rule gets that rule's ``error_code``."""
    from conformance.contract.profiles import load_profile
    from conformance.generation.planning import build_plan

    plan = build_plan(load_profile("openai"), seed=0)
    checked = set()
    for case in plan.cases:
        rule = CONTRACT.rules.get(case.rule)
        if case.raw is not None or rule is None or rule.kind not in ("reject", "either"):
            continue
        if case.auth != "valid":
            continue
        response = client.post("/v1/images/generations", json=case.body)
        if rule.kind == "either" and response.status_code == 200:
            continue
        assert response.status_code == 400, (case.id, response.text)
        assert response.json()["error"]["code"] == rule.error_code, case.id
        checked.add(rule.id)
    assert len(checked) >= 20
