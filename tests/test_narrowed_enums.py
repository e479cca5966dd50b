"""A declared model that narrows a standard enum field is tested on the values it leaves out.

Azure's gpt-image deployments answer PNG or JPEG only (``output_formats: [png, jpeg]`` in the
``azure-openai`` profile): a gateway that accepts ``output_format: webp`` for them breaks the
field's enum rule as the oracle names it, and the plan must send that request to find out. The
same holds for any value of a field the contract's models take and a declared model's facts
leave out (a size outside its list, a quality it does not take).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from conformance.contract.levels import Level
from conformance.contract.oracle import request_violations
from conformance.contract.profiles import Profile, load_profile
from conformance.generation.planning import Case, build_plan
from conformance.generation.strategies import invalid_requests
from conformance.server.launcher import start_reference_server

ROOT = Path(__file__).resolve().parents[1]
FLUX = str(ROOT / "examples" / "profiles" / "flux-like.yaml")
AZURE = "azure-openai"


def left_out(profile: Profile, model: str) -> dict[str, list[Any]]:
    """For each standard enum field (and ``size``) the model takes: the values other models of
    the contract take and its facts leave out; of sizes, not the schema's default (``auto``,
    the server's choice) nor those its ``WxH`` rule takes."""
    contract = profile.contract
    spec = contract.models[model]
    out: dict[str, list[Any]] = {}
    for param in [*contract.enum_fields, "size"]:
        if not spec.takes(param):
            continue
        default = contract.request_fields[param].get("default")
        values = {
            v
            for other in contract.models.values()
            for v in other.values(param)
            if v not in spec.values(param)
            and (param in contract.enum_fields or v != default)
            and not spec.accepts_custom(param, v)
        }
        if values:
            out[param] = sorted(values, key=str)
    return out


#: Each declared model, of the built-in profiles and the example a user would write, whose
#: facts leave out values other models take.
NARROWING = [
    (name, declared.name)
    for name in [*sorted(p.stem for p in (ROOT / "schemas" / "profiles").glob("*.yaml")), FLUX]
    for declared in load_profile(name).declared
    if left_out(load_profile(name), declared.name)
]


def negative_cases(profile: Profile, model: str, param: str, value: Any) -> list[Case]:
    plan = build_plan(profile, models=[model])
    return [
        c
        for c in plan.cases
        if c.kind == "invalid" and isinstance(c.body, dict) and c.body.get(param) == value
    ]


def test_the_narrowing_models_are_found() -> None:
    found = {name for name, _ in NARROWING}
    assert {AZURE, FLUX} <= found


@pytest.mark.parametrize(("name", "model"), NARROWING)
def test_each_value_a_declared_model_leaves_out_is_a_negative_case_of_its_one_rule(
    name: str, model: str
) -> None:
    profile = load_profile(name)
    contract = profile.contract
    plan = build_plan(profile, models=[model])
    for param, values in left_out(profile, model).items():
        for value in values:
            cases = [
                c
                for c in plan.cases
                if c.kind == "invalid" and c.model == model and c.body.get(param) == value
            ]
            assert cases, f"{model}: no case sends {param}={value!r}"
            for case in cases:
                named = [v.rule for v in request_violations(case.body, contract)]
                assert named == [case.rule], (case.id, named)
                assert case.level == contract.rules[case.rule].level_for(model)
                assert case.expect == "reject"


@pytest.mark.parametrize(
    "model", ["azure-gpt-image-1", "azure-gpt-image-1-mini", "azure-gpt-image-1.5"]
)
def test_azure_gpt_image_deployments_are_sent_webp_and_must_refuse_it(model: str) -> None:
    profile = load_profile(AZURE)
    [case] = negative_cases(profile, model, "output_format", "webp")
    # Sent under the deployment's name, labelled with the one rule the oracle names.
    sent = case.body["model"]
    assert profile.contract.aliases.get(sent, sent) == model
    assert [v.rule for v in request_violations(case.body, profile.contract)] == [case.rule]
    assert case.rule == "request.output_format.enum"
    assert case.level == Level.MUST and case.origin == "must-reject"


def test_a_should_fact_gives_a_should_case() -> None:
    # Azure's page is silent on gpt-image-2's formats: its [png, jpeg] is a SHOULD fact.
    profile = load_profile(AZURE)
    [case] = negative_cases(profile, "azure-gpt-image-2", "output_format", "webp")
    assert case.rule == "request.output_format.enum"
    assert case.level == Level.SHOULD and case.origin == "should-reject"


def test_openais_own_models_gain_no_case_for_values_they_take() -> None:
    # gpt-image-1 takes webp: nothing in OpenAI's plan sends it as invalid.
    assert not negative_cases(load_profile("openai"), "gpt-image-1", "output_format", "webp")


def test_the_schemas_default_is_sent_to_a_model_that_leaves_it_out(tmp_path: Path) -> None:
    # A model answering jpeg by default and webp on request: png, OpenAI's default, is not its.
    entry = {"name": "jpeg-first", "like": "gpt-image-1", "output_formats": ["jpeg", "webp"]}
    path = tmp_path / "jpeg-first.yaml"
    path.write_text(yaml.safe_dump({"name": "jpeg-first", "models": [entry]}))
    profile = load_profile(str(path))
    [case] = negative_cases(profile, "jpeg-first", "output_format", "png")
    assert [v.rule for v in request_violations(case.body, profile.contract)] == [case.rule]
    assert case.rule == "request.output_format.enum"


def test_the_flux_plan_sends_the_sizes_its_list_leaves_out() -> None:
    profile = load_profile(FLUX)
    excluded = left_out(profile, "flux-schnell")
    assert "1536x1024" in excluded["size"]
    for size in excluded["size"]:
        [case] = negative_cases(profile, "flux-schnell", "size", size)
        assert case.rule == "request.size.enum"


# --- drawn for --explore ----------------------------------------------------------------------

QUICK = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize(("name", "model"), NARROWING)
@QUICK
@given(data=st.data())
def test_drawn_invalid_requests_of_a_narrowing_model_break_exactly_their_rule(
    name: str, model: str, data: st.DataObject
) -> None:
    profile = load_profile(name)
    body, rule = data.draw(invalid_requests(model, profile))
    assert [v.rule for v in request_violations(body, profile.contract)] == [rule]


def test_explore_draws_the_value_a_declared_model_leaves_out() -> None:
    profile = load_profile(AZURE)
    _body, rule = find(
        invalid_requests("azure-gpt-image-1", profile),
        lambda labelled: labelled[0].get("output_format") == "webp",
        settings=settings(max_examples=2000, database=None, deadline=None),
    )
    assert rule == "request.output_format.enum"


# --- runs ----------------------------------------------------------------------------------


def failed(report: dict[str, Any]) -> set[str]:
    return set(report["verdict"]["failed"])


def webp_cases(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for c in report["cases"]
        if c["kind"] == "invalid" and c["request"]["body"].get("output_format") == "webp"
    ]


def test_the_reference_server_serving_azure_refuses_webp(imgconf_run) -> None:
    status, report = imgconf_run("--profile", AZURE, "--models", "gpt-image-1")
    assert status == 0, report["verdict"]
    [case] = webp_cases(report)
    assert case["outcome"] == "pass" and case["status"] == 400


def test_a_server_answering_webp_on_azure_fails_the_output_format_rule(
    tmp_path: Path, imgconf_run
) -> None:
    """A server like Azure in every way but that it serves webp on its gpt-image deployments:
    that one case fails, and nothing else."""
    data = yaml.safe_load((ROOT / "schemas" / "profiles" / f"{AZURE}.yaml").read_text())
    for entry in data["models"]:
        if isinstance(entry, dict):
            entry.pop("output_formats", None)
    wider = tmp_path / "webp-azure.yaml"
    wider.write_text(yaml.safe_dump(data, sort_keys=False))
    with start_reference_server(profile=str(wider)) as server:
        status, report = imgconf_run(
            "--profile", AZURE, "--models", "gpt-image-1", target=server,
            report_dir=tmp_path / "r",
        )  # fmt: skip
    assert status == 1, report["verdict"]
    assert failed(report) == {"request.output_format.enum @ azure-gpt-image-1"}
    [case] = webp_cases(report)
    assert case["outcome"] == "fail"


def test_the_bad_enum_quirk_fails_azure_naming_the_rule_on_webp(imgconf_run) -> None:
    with start_reference_server(profile=AZURE, quirks=("accept-bad-enums",)) as server:
        status, report = imgconf_run("--profile", AZURE, "--models", "gpt-image-1", target=server)
    assert status == 1, report["verdict"]
    assert "request.output_format.enum @ azure-gpt-image-1" in failed(report)
    [case] = webp_cases(report)
    assert case["outcome"] == "fail" and case["rule"] == "request.output_format.enum"
