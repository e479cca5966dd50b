"""``--endpoint`` on the commands that build a plan, and the profiles' ``endpoints:`` key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main_entry
from conformance.cli import plan as plan_module
from conformance.cli.run import _report_endpoints
from conformance.contract.profiles import ProfileError, load_profile
from conformance.errors import SetupError


def _profile(tmp_path: Path, extra: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(f"name: gw\nmodels: [dall-e-2]\n{extra}", encoding="utf-8")
    return str(path)


def test_openai_serves_every_endpoint_and_a_vendor_generations_alone() -> None:
    assert load_profile("openai").endpoints == ("generations", "edits", "variations")
    for name in ("flexai", "together", "azure-openai"):
        assert load_profile(name).endpoints == ("generations",)


def test_a_profile_lists_its_endpoints_in_the_contract_order(tmp_path: Path) -> None:
    profile = load_profile(_profile(tmp_path, "endpoints: [variations, generations]\n"))
    assert profile.endpoints == ("generations", "variations")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[teleport]", "unknown endpoint 'teleport'"),
        ("[]", "field 'endpoints' must list"),
        ("edits", "field 'endpoints' must list"),
        ("[edits, edits]", "twice"),
    ],
)
def test_a_bad_endpoints_key_names_the_field(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ProfileError, match=r"^profile .*: ") as info:
        load_profile(_profile(tmp_path, f"endpoints: {value}\n"))
    assert message in str(info.value)


def test_chosen_endpoints_default_to_what_the_profile_serves() -> None:
    openai = load_profile("openai")
    assert openai.choose_endpoints(None) == openai.endpoints
    assert openai.choose_endpoints(["variations", "edits"]) == ("edits", "variations")
    with pytest.raises(SetupError, match="unknown endpoint 'edit'"):
        openai.choose_endpoints(["edit"])
    with pytest.raises(SetupError, match="profile together does not serve edits"):
        load_profile("together").choose_endpoints(["edits"])


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--endpoint", "bogus"],
        ["plan", "--endpoint", "generations,bogus"],
        ["plan", "--profile", "together", "--endpoint", "edits"],
        ["run", "--endpoint", "edit", "--report-dir", "unused"],
        ["run", "--profile", "together", "--endpoint", "variations", "--report-dir", "unused"],
    ],
)
def test_a_bad_endpoint_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if "unused" in argv:
        argv[argv.index("unused")] = str(tmp_path / "reports")
    assert main_entry(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("imgconf: error: --endpoint: ")
    assert not (tmp_path / "reports").exists()


def test_plan_hands_the_chosen_endpoints_to_the_planner(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The planner is asked for exactly the endpoints chosen (default: the profile's)."""
    from conformance.generation import planning

    asked: list[tuple[str, ...]] = []
    real = planning.build_plan

    def build_plan(profile: Any, *, endpoints: tuple[str, ...] = ("generations",), **kw: Any):
        asked.append(tuple(endpoints))
        return real(profile, endpoints=endpoints, **kw)

    monkeypatch.setattr(planning, "build_plan", build_plan)
    assert main_entry(["plan", "--models", "dall-e-2", "--endpoint", "edits,generations"]) == 0
    assert main_entry(["plan", "--models", "dall-e-2", "--json"]) == 0
    assert main_entry(["plan", "--profile", "together", "--json"]) == 0
    assert asked == [
        ("generations", "edits"),
        ("generations", "edits", "variations"),
        ("generations",),
    ]
    capsys.readouterr()


def test_a_generations_plan_reads_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    """Asking for generations alone names no endpoint: its text is the plan of old."""
    assert main_entry(["plan", "--models", "dall-e-2", "--endpoint", "generations"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("Plan for profile openai, seed 0: ") and "generations" not in first
    assert "\ndall-e-2: " in out


def test_the_plan_text_lists_edit_cases_by_endpoint_and_model() -> None:
    from conformance.generation.cases import Case, FormPart
    from conformance.generation.inputs import InputFile
    from conformance.generation.planning import build_plan

    plan = build_plan(load_profile("openai"), models=["dall-e-2"])
    edit = Case(
        id="edits/dall-e-2/image.square",
        model="dall-e-2",
        kind="invalid",
        rule="edits.image.square",
        level="MUST",
        expect="reject",
        title="image 256x128",
        endpoint="edits",
        parts=(
            FormPart("prompt", "a cat"),
            FormPart("image", file=InputFile(width=256, height=128)),
        ),
    )
    plan.cases.append(edit)
    text = plan_module.format_plan(plan)
    assert text.startswith("Plan for profile openai, seed 0 (generations, edits): ")
    assert "\nedits dall-e-2: 1 requests, 0 images" in text
    assert "    edits.image.square: image 256x128" in text


def test_run_from_a_report_sends_to_the_endpoints_of_its_cases() -> None:
    report = {
        "cases": [
            {"id": "a", "outcome": "fail"},
            {"id": "edits/dall-e-2/x", "endpoint": "edits", "outcome": "fail"},
        ]
    }
    assert _report_endpoints(report) == ("generations", "edits")
    assert json.dumps(_report_endpoints({"cases": []})) == "[]"
