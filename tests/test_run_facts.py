"""A run's facts are typed, made one way, and carry what the reports need of the profile."""

from __future__ import annotations

import json

import pytest
from _report_fixtures import budget_cut_run, passing_run

from conformance.contract.profiles import load_profile
from conformance.contract.reach import AuthStyle
from conformance.engine.results import (
    BudgetFacts,
    Level,
    PlanFacts,
    RunResult,
    TransportFailure,
)
from conformance.reports.document import build_report


def test_a_run_carries_its_profiles_rules_path_and_auth() -> None:
    profile = load_profile("openai")
    run = RunResult.begin(
        profile, target="http://127.0.0.1:9/v1", models=["dall-e-2"], seed=3, plan=PlanFacts(0)
    )
    assert run.rules == profile.rules() and run.path == profile.path
    assert run.auth == profile.auth and run.profile == profile.name
    assert run.started > 0 and run.finished == 0.0
    run.finish([], budget=BudgetFacts(max_images=2), stopped="interrupted by SIGINT")
    assert run.incomplete and run.stopped == run.plan.stopped == "interrupted by SIGINT"
    assert run.finished >= run.started


def test_the_report_reads_the_profile_from_the_run_never_from_disk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = budget_cut_run()
    run.profile = "a-profile-file-that-is-gone.yaml"
    run.path = "/custom/generate"
    run.auth = AuthStyle("header", "api-key")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the report loaded a profile")

    monkeypatch.setattr("conformance.contract.profiles.load_profile", refuse)
    report = build_report(run)
    cut = [c for c in report["cases"] if c["response"] is None]
    assert cut and all(c["url"].endswith("/custom/generate") for c in cut)
    assert build_report(passing_run())["profile"] == "openai"


def test_plan_facts_write_only_what_was_said() -> None:
    assert PlanFacts(cases=2, recording="run.har").to_dict() == {
        "cases": 2,
        "recording": "run.har",
    }
    report = build_report(budget_cut_run())
    assert report["plan"]["cut"] == report["coverage"]["budget_cut"]
    assert report["budget"]["estimate"] == {"images": 6, "cost": 0.4}


def test_enums_write_as_the_strings_they_replace() -> None:
    document = {
        "level": Level.MUST,
        "error": TransportFailure.TOO_LARGE,
        "levels": list(Level),
    }
    assert json.loads(json.dumps(document)) == {
        "level": "MUST",
        "error": "too_large",
        "levels": ["MUST", "SHOULD"],
    }
    assert f"{Level.SHOULD}" == "SHOULD" and TransportFailure.TIMEOUT == "timeout"
