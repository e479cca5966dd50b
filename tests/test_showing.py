"""Which answers show an answer rule: declared once (``shown_by``), read by plan and judge alike.

The plan's predicted coverage and the judge's checks both come from the ``shown_by`` entries of
``rules.yaml``; these tests hold the declarations, the engine's registry and a real run to each
other.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from conformance.contract.loader import ContractError, load_contract
from conformance.contract.profiles import load_profile
from conformance.engine.checks import (
    ANSWER_CHECKS,
    ANSWER_RULES,
    ERROR_PARAM,
    IMAGE_ALPHA,
    RESPONSE_B64_JSON,
    RESPONSE_URL,
    STREAM_COMPLETED,
)
from conformance.generation.cases import Case
from conformance.generation.coverage import aimed_rules, case_spec
from conformance.generation.planned import PLANNED
from conformance.generation.planning import build_plan
from conformance.generation.showing import BASE64, URL, delivery, parse_showing, showings
from conformance.server.launcher import start_reference_server

CONTRACT = load_contract()
OPENAI = load_profile("openai")
RULES = OPENAI.rules()


def accepted(body: dict[str, Any]) -> Case:
    return Case(
        id="t",
        model=body["model"],
        kind="valid",
        rule="request.valid.accepted",
        level="MUST",
        expect="accept",
        body=body,
    )


def aimed(body: dict[str, Any]) -> set[str]:
    case = accepted(body)
    return aimed_rules(case, case_spec(case, OPENAI.models), RULES)


def gpt(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-image-1", "prompt": "a red square", **fields}


def dalle(**fields: Any) -> dict[str, Any]:
    return {"model": "dall-e-2", "prompt": "a red square", **fields}


# --- the declarations and the registries agree -----------------------------------------------


def test_the_rule_catalogue_is_parsed_once_for_the_rules_and_their_showings() -> None:
    """rules.yaml is the largest data file (about 9 ms of parsing at every start):
    the contract keeps its entries, and the showings are read from them (a fresh interpreter,
    whose caches are empty)."""
    code = """
from conformance.contract import loader
read = loader.read_data_file
seen = []
def counting(path):
    seen.append(path.name)
    return read(path)
loader.read_data_file = counting
from conformance.generation.showing import showings
assert showings()["image.alpha"].answers
print(seen.count("rules.yaml"))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_every_answer_rule_has_one_check_and_one_declaration() -> None:
    assert ANSWER_CHECKS.missing(showings()) == []
    assert [r for r in showings() if r not in ANSWER_RULES] == []
    assert list(ANSWER_RULES) == [r for r in ANSWER_RULES if r in showings()]
    for rule_id in ANSWER_RULES:
        assert ANSWER_CHECKS[rule_id].showing is showings()[rule_id]


def test_no_request_rule_is_both_planned_and_judged_from_the_answer_alone() -> None:
    # The planner's own rules are judged on the answer's status: each is an `own` answer rule.
    for rule_id in PLANNED:
        assert rule_id in CONTRACT.rules
        if rule_id in showings():
            assert [a.value for a in showings()[rule_id].answers] == ["own"]


def test_registering_an_undeclared_rule_is_refused() -> None:
    with pytest.raises(ContractError, match="not declared"):
        ANSWER_CHECKS.add("image.sparkles", ANSWER_CHECKS[IMAGE_ALPHA.id])


def test_registering_a_rule_twice_is_refused() -> None:
    with pytest.raises(ContractError, match="twice"):
        ANSWER_CHECKS.add(IMAGE_ALPHA.id, IMAGE_ALPHA)


# --- what the declarations say ------------------------------------------------------------------


def test_alpha_is_shown_only_where_a_transparent_background_is_asked_of_a_model_taking_it():
    assert IMAGE_ALPHA.id in aimed(gpt(background="transparent"))
    assert IMAGE_ALPHA.id in aimed(gpt(background="transparent", stream=True))
    assert IMAGE_ALPHA.id not in aimed(gpt(background="opaque"))
    assert IMAGE_ALPHA.id not in aimed(gpt())
    assert IMAGE_ALPHA.id not in aimed(dalle(background="transparent"))


def test_the_delivery_decides_between_url_and_base64_rules() -> None:
    spec = CONTRACT.models
    assert delivery(dalle(), spec["dall-e-2"]) == URL
    assert delivery(dalle(response_format="b64_json"), spec["dall-e-2"]) == BASE64
    assert delivery(gpt(response_format="url"), spec["gpt-image-1"]) == BASE64
    assert {RESPONSE_URL.id} <= aimed(dalle()) and RESPONSE_B64_JSON.id not in aimed(dalle())
    assert RESPONSE_B64_JSON.id in aimed(dalle(response_format="b64_json"))
    assert RESPONSE_URL.id not in aimed(dalle(response_format="b64_json"))


def test_a_stream_shows_stream_rules_and_a_json_answer_does_not() -> None:
    assert STREAM_COMPLETED.id in aimed(gpt(stream=True))
    assert STREAM_COMPLETED.id not in aimed(gpt())
    # `stream: 1` is not `stream: true`: the answer is not a stream.
    assert STREAM_COMPLETED.id not in aimed(gpt(stream=1))


def test_error_param_is_shown_only_where_the_refused_field_is_known() -> None:
    invalid = Case(
        id="t",
        model="dall-e-2",
        kind="invalid",
        rule="request.n.max",
        level="MUST",
        expect="reject",
        body=dalle(n=11),
    )
    assert ERROR_PARAM.id in aimed_rules(invalid, CONTRACT.models["dall-e-2"], RULES)
    not_json = Case(
        id="t",
        model="*",
        kind="probe",
        rule="request.body.not_json",
        level="MUST",
        expect="reject",
        raw=b"{",
    )
    assert ERROR_PARAM.id not in aimed_rules(not_json, None, RULES)


# --- malformed declarations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({}, "needs `answers`"),
        ({"answers": ["json", "carrier-pigeon"]}, "carrier-pigeon"),
        ({"answers": ["json"], "with_rule": "response.usage.absent"}, "undeclared rule"),
        ({"answers": ["json"], "delivery": "fax"}, "delivery"),
        ({"answers": ["json"], "reads": "tea-leaves"}, "reads"),
        ({"answers": ["json"], "when": "always"}, "unknown keys"),
    ],
)
def test_a_malformed_shown_by_is_an_error(raw: dict[str, Any], says: str) -> None:
    with pytest.raises(ContractError, match=says):
        parse_showing("image.size", raw, CONTRACT.rules)


# --- planned and judged agree on a real run ---------------------------------------------------


def test_the_judge_checks_what_the_plan_predicts(imgconf_run) -> None:
    """On a conformant server every case's checked rules are the ones the plan aimed at (a case
    that may be refused or served also shows the refusal's rules when refused)."""
    models = ("dall-e-3", "gpt-image-1")
    with start_reference_server() as server:
        status, report = imgconf_run("--models", ",".join(models), target=server)
    assert status == 0
    checked = {case["id"]: set(case["checked"]) for case in report["cases"]}
    plan = build_plan(OPENAI, models=models)
    assert {case.id for case in plan.cases} == set(checked)
    for case in plan.cases:
        predicted = aimed_rules(case, case_spec(case, OPENAI.models), RULES)
        if case.expect == "either":
            assert predicted <= checked[case.id], case.id
        else:
            assert predicted == checked[case.id], case.id
