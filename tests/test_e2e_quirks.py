"""End to end against the reference server: a conformant one passes, every quirk fails.

``imgconf run`` is called in-process (the ``imgconf_run`` fixture) with the report written to a
temporary directory; the verdict is read back from report.json, the source of truth.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import main_entry
from conformance.contract.profiles import load_profile
from conformance.server.launcher import start_reference_server
from conformance.server.quirks import QUIRKS, Quirk

OPENAI_RULES = load_profile("openai").rules()
#: The flux-like example: a declared model, for quirks that show only on such models.
FLUX = str(Path(__file__).resolve().parent.parent / "examples" / "profiles" / "flux-like.yaml")
FLUX_RULES = load_profile(FLUX).rules()
#: Quirks that show only in answers carrying GPT-only features (usage, output_format, streams).
GPT_KINDS = ("answer", "image", "stream")


def failed_rules(report: dict) -> set[str]:
    return {entry.split(" @ ")[0] for entry in report["verdict"]["failed"]}


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
def test_the_reference_server_passes_the_full_plan(lenient, imgconf_run):
    with start_reference_server(lenient=lenient) as server:
        status, report = imgconf_run(target=server)
    assert status == 0, report["verdict"]
    assert report["verdict"]["status"] == "pass" and not report["verdict"]["failed"]
    outcomes = {case["outcome"] for case in report["cases"]}
    assert outcomes <= {"pass", "warn"}, outcomes


def test_the_applerouter_profile_holds_dalle_answers_to_its_usage_claim(imgconf_run):
    # The vendor documents `usage` as required in every answer: a MUST under its profile. The
    # reference server answers like OpenAI (no usage for dall-e), which that profile fails.
    with start_reference_server() as server:
        status, report = imgconf_run("--profile", "applerouter", target=server)
    assert status == 1
    assert failed_rules(report) == {"response.usage.present"}
    failing_models = {e.split(" @ ")[1] for e in report["verdict"]["failed"]}
    assert {"dall-e-2", "dall-e-3"} <= failing_models and "gpt-image-1" not in failing_models


def test_a_bare_run_tests_the_embedded_server_and_writes_four_reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main_entry(["run", "--models", "dall-e-2,gpt-image-1"]) == 0
    for name in ("report.json", "junit.xml", "report.md", "report.html"):
        assert (tmp_path / "reports" / name).stat().st_size > 0


def quirk_profile(quirk: Quirk) -> str:
    """The profile a quirk shows under: OpenAI's, unless it breaks a rule no OpenAI model is
    held to (a rule of declared models: then the flux-like example)."""
    if all(OPENAI_RULES[rule].models for rule in quirk.breaks):
        return "openai"
    return FLUX


def quirk_models(quirk: Quirk) -> list[str]:
    """The fewest models on which the quirk shows: one per broken rule."""
    prefer = "gpt-image-1" if quirk.kind in GPT_KINDS else "dall-e-2"
    rules = OPENAI_RULES if quirk_profile(quirk) == "openai" else FLUX_RULES
    models: list[str] = []
    for rule in quirk.breaks or ("request.n.max",):
        applies = rules[rule].models
        pick = prefer if prefer in applies else applies[0]
        if pick not in models:
            models.append(pick)
    return models


@pytest.mark.parametrize(
    "name", sorted(n for n, q in QUIRKS.items() if q.endpoint == "generations")
)
def test_every_quirk_fails_the_run_and_names_its_rule(name, imgconf_run):
    quirk = QUIRKS[name]
    # The slow quirk is judged against a short timeout: it must time out, not wait 10 minutes.
    timeout = "1" if quirk.parameter else "5"
    profile = quirk_profile(quirk)
    with start_reference_server(quirks=(name,), profile=profile) as server:
        status, report = imgconf_run(
            *("--profile", profile),
            *("--models", ",".join(quirk_models(quirk)), "--timeout", timeout),
            target=server,
        )
    if quirk.verdict == "incomplete":
        # It hides what the rules need: never a PASS, and the report says why.
        assert status == 3, report["verdict"]
        reasons = " ".join(report["verdict"]["incomplete_reasons"])
        assert all(f"({reason})" in reasons for reason in quirk.reasons), reasons
        return
    assert status == 1
    missing = set(quirk.breaks) - failed_rules(report)
    assert not missing, f"{name}: the report does not name {sorted(missing)}"


def test_the_reference_server_serving_applerouter_keeps_its_usage_claim(imgconf_run):
    # Served with the profile, the server reports usage for every model the profile holds to
    # `response.usage.present` (the rule's `served_by: usage`), dall-e included.
    with start_reference_server(profile="applerouter") as server:
        status, report = imgconf_run("--profile", "applerouter", target=server)
    assert status == 0, report["verdict"]
    assert failed_rules(report) == set()
