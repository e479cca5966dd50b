"""Honest verdicts: a PASS means judged, a ✓ means seen.

Each rule x model cell is held, broken or not observed with a reason; refusals prove request
rules only next to an accepted control; a 5xx breaks the rule under test; the run is INCOMPLETE
(exit 3) when something a PASS needs was not seen. Against the reference server, the plan's
predicted coverage equals the observed one.
"""

from __future__ import annotations

import json

import httpx
import pytest

from conformance.contract.loader import load_contract
from conformance.contract.profiles import load_profile
from conformance.engine import checks
from conformance.engine.checks import settle_controls
from conformance.engine.results import CaseResult, Outcome, PlanFacts, Reason, RunResult
from conformance.engine.verdict import build_matrix, decide
from conformance.generation.cases import CONTROL_ORIGIN, Case
from conformance.generation.planning import build_plan
from conformance.server.launcher import start_reference_server
from tests.test_checks import b64, error, gpt_answer, image_bytes, make_case, ok_json, run

OPENAI = load_profile("openai")


# --- reasons are data ------------------------------------------------------------------------


def test_every_reason_is_declared_once_in_the_schemas_with_whether_it_blocks() -> None:
    declared = load_contract().reasons
    assert set(declared) == {r.value for r in Reason}
    blocking = {name for name, reason in declared.items() if reason.blocks}
    assert blocking == set(Reason) - {Reason.BUDGET, Reason.NOT_APPLICABLE}


# --- one case --------------------------------------------------------------------------------


def test_a_5xx_where_a_refusal_was_due_breaks_the_rule_under_test() -> None:
    case = make_case(
        {"model": "dall-e-2", "prompt": "p", "n": 11},
        kind="invalid",
        rule="request.n.max",
        expect="reject",
    )
    result = run(case, httpx.Response(502, text="bad gateway"))
    assert {"request.n.max", "transport.no_5xx"} <= set(result.failed_rules)


def test_a_refused_key_proves_no_request_rule() -> None:
    case = make_case(
        {"model": "dall-e-2", "prompt": "p", "n": 11},
        kind="invalid",
        rule="request.n.max",
        expect="reject",
    )
    result = run(case, error(401, param=None))
    assert result.outcome is Outcome.NOT_OBSERVED and result.reason == Reason.AUTH_REFUSED
    assert "request.n.max" not in result.checked and not result.failed_rules


def test_error_bodies_are_shown_as_text_not_bytes_literals() -> None:
    case = make_case(
        {"model": "dall-e-2", "prompt": "p", "n": 11},
        kind="invalid",
        rule="request.n.max",
        expect="reject",
    )
    result = run(case, httpx.Response(400, text="n is too big"))
    message = next(f.message for f in result.findings if f.rule == "error.envelope")
    assert "'n is too big'" in message and "b'" not in message


def test_an_omitted_model_may_be_answered_as_any_model_of_the_profile() -> None:
    """The default model is a SHOULD: a GPT image answer to a request without `model` breaks no
    MUST rule (a dall-e-2 answer would have a URL)."""
    case = make_case({"prompt": "a red square"}, rule="request.model.default", level="SHOULD")
    result = run(case, ok_json(gpt_answer()))
    assert not result.failed_rules, result.findings
    assert [f.rule for f in result.findings] == ["request.model.default"]
    assert result.outcome is Outcome.WARN


@pytest.mark.parametrize(
    ("size", "model", "ok"),
    [
        ("1536x1024", "gpt-image-1", True),
        ("640x480", "gpt-image-1", False),
        ("1040x784", "gpt-image-2", True),  # a custom size that keeps the custom rules
        ("1000x1000", "gpt-image-2", False),  # not divisible by 16
    ],
)
def test_auto_or_no_size_gives_one_of_the_model_s_sizes(size, model, ok) -> None:
    for asked in ({"size": "auto"}, {}):
        case = make_case({"model": model, "prompt": "p", **asked})
        result = run(case, ok_json(gpt_answer(size=size)))
        assert ("image.size" not in result.failed_rules) is ok, (asked, size)
        assert "image.size" in result.checked


def test_conditional_rules_are_not_applicable_when_their_condition_never_arose() -> None:
    case = make_case(
        {"model": "dall-e-2", "prompt": "p", "response_format": "b64_json", "size": "256x256"}
    )
    answer = {"created": 1, "data": [{"b64_json": b64(image_bytes(256, 256))}]}
    result = run(case, ok_json(answer))
    assert result.outcome is Outcome.PASS
    assert "transport.no_5xx" in result.checked and "transport.timeout" in result.checked
    assert "response.usage.schema" not in result.checked
    assert "response.url.fetch" not in result.unobserved  # b64 was asked: no URL to fetch


# --- controls ---------------------------------------------------------------------------------


def _result(case: Case, status: int | None, *, checked=(), findings=()) -> CaseResult:
    from conformance.engine.results import Exchange

    exchange = Exchange("POST", "http://x/v1/images/generations", {}, b"", status=status)
    result = CaseResult(case=case, outcome=Outcome.PASS, status=status, exchange=exchange)
    result.checked = list(checked)
    result.findings = list(findings)
    return checks.conclude(result)


def _control(model: str = "dall-e-2") -> Case:
    return make_case({"model": model, "prompt": "p"}, origin=CONTROL_ORIGIN)


def _negative(model: str = "dall-e-2") -> Case:
    return make_case(
        {"model": model, "prompt": "p", "n": 11},
        kind="invalid",
        rule="request.n.max",
        expect="reject",
    )


def test_a_refusal_proves_its_rule_only_next_to_an_accepted_control() -> None:
    held = settle_controls(
        [
            _result(_control(), 200, checked=["request.valid.accepted"]),
            _result(_negative(), 400, checked=["request.n.max"]),
        ]
    )
    assert held[1].outcome is Outcome.PASS
    for status, reason in ((404, Reason.NOT_FOUND), (401, Reason.AUTH_REFUSED)):
        refused = settle_controls(
            [_result(_control(), status), _result(_negative(), 400, checked=["request.n.max"])]
        )
        assert refused[1].outcome is Outcome.NOT_OBSERVED and refused[1].reason == reason
    alone = settle_controls([_result(_negative(), 400, checked=["request.n.max"])])
    assert alone[0].reason == Reason.NO_CONTROL


def test_a_control_refused_for_the_key_is_not_a_broken_contract() -> None:
    from conformance.engine.results import Finding

    refused = _result(_control(), 403, findings=[Finding("request.valid.accepted", "MUST", "403")])
    (settled,) = settle_controls([refused])
    assert not settled.failed_rules and settled.reason == Reason.AUTH_REFUSED


def test_a_5xx_everywhere_is_a_server_error_not_a_broken_request_rule() -> None:
    from conformance.engine.results import Finding

    broken = [Finding("request.n.max", "MUST", "500"), Finding("transport.no_5xx", "MUST", "500")]
    results = settle_controls(
        [
            _result(_control(), 500, findings=[Finding("transport.no_5xx", "MUST", "500")]),
            _result(_negative(), 500, findings=broken),
        ]
    )
    assert results[1].failed_rules == ["transport.no_5xx"]
    assert results[1].reason == Reason.SERVER_ERROR


# --- the verdict ------------------------------------------------------------------------------


def _run_of(results: list[CaseResult], models: list[str]) -> RunResult:
    run = RunResult.begin(
        load_profile("openai"), target="http://x/v1", models=models, seed=0, plan=PlanFacts(cases=0)
    )
    return run.finish(results)


def test_a_throttled_negative_blocks_a_pass() -> None:
    control = _result(_control(), 200, checked=["request.valid.accepted"])
    throttled = _result(_negative(), 429)
    throttled.unobserved = {"request.n.max": Reason.THROTTLED}
    checks.conclude(throttled)
    verdict = decide(_run_of(settle_controls([control, throttled]), ["dall-e-2"]))
    assert verdict.status == "incomplete" and verdict.exit_code == 3
    assert any(
        "throttled" in line and "request.n.max" in line for line in verdict.incomplete_reasons
    )


def test_a_budget_cut_does_not_block_a_pass_but_is_listed() -> None:
    from conformance.engine.runner import cut_result

    control = _result(_control(), 200, checked=["request.valid.accepted"])
    matrix = build_matrix([control, cut_result(_negative())], ["dall-e-2"], OPENAI.rules())
    cell = next(i for i in matrix if i["rule"] == "request.n.max")
    assert cell["status"] == "not_observed" and cell["reasons"] == ["budget"]
    assert not cell["blocking"]


def test_an_error_while_judging_is_recorded_and_the_rest_still_judged(imgconf_run, monkeypatch):
    real = checks.judge

    def flaky(case, exchange, profile, **kw):
        if case.rule == "request.n.min":
            raise OverflowError("int too large to convert")
        return real(case, exchange, profile, **kw)

    monkeypatch.setattr("conformance.engine.runner.judge", flaky)
    status, report = imgconf_run("--models", "dall-e-2")
    assert status == 3
    broken = [c for c in report["cases"] if c["reason"] == "internal_error"]
    assert broken and all("OverflowError" in c["note"] for c in broken)
    assert sum(c["outcome"] == "pass" for c in report["cases"]) > 40


# --- end to end -------------------------------------------------------------------------------


def test_no_budget_sends_nothing_that_could_generate_and_is_incomplete(imgconf_run) -> None:
    status, report = imgconf_run("--max-images", "0")
    assert status == 3
    assert all(c["response"] is None for c in report["cases"])
    assert report["verdict"]["models_unjudged"] == list(OPENAI.models)
    assert any("request.n.max" in line for line in report["verdict"]["not_observed"])


def test_one_image_of_budget_is_still_incomplete(imgconf_run) -> None:
    status, report = imgconf_run("--max-images", "1")
    assert status == 3
    assert len(report["verdict"]["models_unjudged"]) == len(OPENAI.models) - 1


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
def test_the_plan_predicts_the_coverage_the_run_observes(lenient, imgconf_run) -> None:
    plan = build_plan(OPENAI)
    with start_reference_server(lenient=lenient) as server:
        status, report = imgconf_run(target=server)
    assert status == 0, report["verdict"]
    observed = report["coverage"]["per_model"]
    predicted = plan.coverage["rules"]
    assert set(observed) == set(predicted)
    for model in predicted:
        assert observed[model]["rules"] == predicted[model]["rules"], model
    assert report["coverage"]["pairwise"]["gpt-image-1"]["covered"] > 0


def test_a_rerun_sends_exactly_the_unsettled_cases_again(tmp_path, imgconf_run) -> None:
    with start_reference_server(quirks=("dall-e-3-multi",)) as broken:
        status, first = imgconf_run("--seed", "4", target=broken, report_dir=tmp_path / "a")
    assert status == 1
    failed = {c["id"] for c in first["cases"] if c["outcome"] == "fail"}
    with start_reference_server() as fixed:
        status, again = imgconf_run(
            "--from", str(tmp_path / "a" / "report.json"), target=fixed, report_dir=tmp_path / "b"
        )
    assert status == 0, again["verdict"]
    sent = {c["id"] for c in again["cases"]}
    assert failed < sent and sent - failed == {"dall-e-3/control"}
    assert again["seed"] == 4 and again["models"] == ["dall-e-3"]
    bodies = {c["id"]: c["request"] for c in first["cases"]}
    assert all(bodies[c["id"]] == c["request"] for c in again["cases"])


def test_the_console_names_every_broken_rule_with_its_models(imgconf_run, capsys) -> None:
    with start_reference_server(quirks=("dall-e-3-multi", "wrong-size")) as server:
        imgconf_run(target=server)
    out = capsys.readouterr().out
    assert "FAIL request.n.max.dall-e-3 on dall-e-3" in out
    line = next(line for line in out.splitlines() if "FAIL image.size on" in line)
    assert all(model in line for model in OPENAI.models), line


def test_a_run_deadline_stops_sending_and_the_run_is_incomplete(imgconf_run) -> None:
    import time

    with start_reference_server(quirks=("slow:1",)) as server:
        started = time.monotonic()
        status, report = imgconf_run("--models", "dall-e-2", "--max-duration", "2", target=server)
    assert time.monotonic() - started < 12
    assert status == 3
    assert any("--max-duration" in line for line in report["verdict"]["incomplete_reasons"])
    assert any(c["reason"] == "interrupted" for c in report["cases"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": "4"}, "seed is str"),
        ({"models": "dall-e-2"}, "models is str"),
        ({"plan": {"by_origin": ["explore"]}}, "plan.by_origin is list"),
        ({"cases": [{"id": "x", "outcome": ["fail"]}]}, "cases[0].outcome is list"),
        ({"cases": ["dall-e-2/control"]}, "cases[0] is not an object"),
    ],
)
def test_a_from_report_holding_an_odd_value_is_one_line(tmp_path, capsys, change, message) -> None:
    """``--from`` reads a few fields of the earlier report; a value of another kind than a
    report holds is a set-up error naming it, before anything is planned or sent."""
    from conformance.cli import main_entry

    earlier = {"profile": "openai", "models": ["dall-e-2"], "seed": 0, "cases": [], **change}
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps(earlier))
    assert main_entry(["run", "--from", str(path), "--report-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err == f"imgconf: error: --from: {path} is not an imgconf report.json ({message})\n"
