"""Models a profile declares: compiled into the contract's own shape, held to the rules their
facts imply, planned, served by the reference server and judged like OpenAI's models."""

from __future__ import annotations

import base64
import dataclasses
import io
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from conformance.cli import main_entry
from conformance.contract.loader import load_contract, model_spec
from conformance.contract.oracle import request_violations
from conformance.contract.profiles import ProfileError, load_profile
from conformance.generation.planning import build_plan, pairwise_factors
from conformance.server.launcher import start_reference_server

ROOT = Path(__file__).resolve().parents[1]
FLUX = str(ROOT / "examples" / "profiles" / "flux-like.yaml")
MODEL = "flux-schnell"
PATH = "/v1/images/generations"


def write_profile(tmp_path: Path, models: list[Any], name: str = "declared") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "models": models}, sort_keys=False))
    return str(path)


def flux_entry(**changes: Any) -> dict[str, Any]:
    """The flux-like example's model, with some facts changed."""
    entry = dict(yaml.safe_load(Path(FLUX).read_text())["models"][0])
    entry.update(changes)
    return entry


# --- a broken declaration: one line naming the field ---------------------------------------------

BROKEN = [
    ({"n": {"min": 1, "max": "four"}}, "models[0].n.max must be an integer >= 1 (got 'four')"),
    ({"n": {"min": 0, "max": 4}}, "models[0].n.min must be 1, the request schema's (got 0)"),
    (
        {"sizes": ["512x512", "big"]},
        "models[0].sizes[1] must be a WxH size such as 1024x1024 (got 'big')",
    ),
    ({"prompt_max_chars": 0}, "models[0].prompt_max_chars must be an integer >= 1 (got 0)"),
    (
        {"response_formats": ["jpeg"]},
        "models[0].response_formats[0] must be one of url, b64_json (got 'jpeg')",
    ),
    (
        {"sizes": {"value": ["512x512"], "level": "COULD"}},
        "models[0].sizes.level must be MUST or SHOULD (got 'COULD')",
    ),
    ({"qualities": ["standard"]}, "models[0].refuses: quality is also taken by the model"),
    ({"refuses": ["steps"]}, "models[0].refuses[0] must be a standard field"),
    ({"extensions": {"steps": {"type": "integr"}}}, "models[0].extensions.steps is not a valid"),
    ({"extensions": {"size": {"type": "string"}}}, "models[0].extensions.size: a standard field"),
    (
        {"extensions": {"steps": {"type": "integer", "minimum": 1, "default": 0}}},
        "models[0].extensions.steps.default does not match its own schema",
    ),
    ({"colour": "red"}, "models[0].colour is not a model fact"),
    ({"like": "dall-e-9"}, "models[0].like must be a contract model"),
    ({"like": {"name": "dall-e-2"}}, "models[0].like must be a contract model"),
    ({"like": ["dall-e-2"]}, "models[0].like must be a contract model"),
    ({"name": "dall-e-2"}, "models[0].name: 'dall-e-2' is a contract model"),
    ({"price": {"per_image": -1}}, "models[0].price.per_image must be a USD amount >= 0"),
    (
        {
            "sizes": {
                "wxh": {
                    "multiple_of": 16,
                    "min_edge": 256,
                    "max_edge": 128,
                    "max_aspect": 2,
                    "max_pixels": 10**6,
                }
            }
        },
        "models[0].sizes.wxh: min_edge must be <= max_edge",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BROKEN, ids=[m for _, m in BROKEN])
def test_a_broken_declaration_is_one_line_naming_the_field(tmp_path, changes, message):
    path = write_profile(tmp_path, [flux_entry(**changes)], name="flux")
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    text = str(caught.value)
    assert text.startswith(f"profile {path}: {message}"), text
    assert "\n" not in text


def test_a_broken_declaration_exits_2_with_its_line(tmp_path, capsys):
    path = write_profile(tmp_path, [flux_entry(n={"min": 1, "max": "four"})], name="flux")
    assert main_entry(["plan", "--profile", path]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"profile {path}: models[0].n.max must be an integer >= 1 (got 'four')")
    assert len(err.splitlines()) == 1


def test_a_model_listed_twice_or_unknown_is_named(tmp_path):
    twice = write_profile(tmp_path, ["dall-e-2", "dall-e-2"], name="twice")
    with pytest.raises(ProfileError, match=r"models\[1\]: model 'dall-e-2' is listed twice"):
        load_profile(twice)
    unknown = write_profile(tmp_path, ["flux-pro"], name="unknown")
    with pytest.raises(ProfileError, match=r"models\[0\]: unknown model 'flux-pro'"):
        load_profile(unknown)


# --- the same shape as OpenAI's models ------------------------------------------------------------


def test_a_profile_without_declared_models_is_judged_by_the_contract_itself():
    # The reason `imgconf plan` is byte-identical for the openai and applerouter profiles.
    for name in ("openai", "applerouter"):
        assert load_profile(name).contract is load_contract()


def test_a_declared_model_compiles_to_the_request_schemas_model_shape():
    contract = load_profile(FLUX).contract
    request = contract.schemas["request"]
    definition = request["$defs"][f"model.{MODEL}"]
    assert definition["x-imgconf-model"]["refuses"] == ["quality", "style"]
    assert MODEL in request["properties"]["model"]["anyOf"][1]["enum"]
    # Its spec is built from that fragment by the loader's own code.
    assert model_spec(MODEL, definition, request["properties"]) == contract.models[MODEL]
    spec = contract.models[MODEL]
    assert spec.sizes == ("512x512", "1024x1024") and spec.n_max == 4
    assert spec.fixed == {"output_format": "png", "response_format": "b64_json"}
    assert set(spec.extensions) == {"steps", "aspect_ratio"}
    # The base contract is left as it was.
    assert MODEL not in load_contract().models
    assert "steps" not in load_contract().request_fields


def test_the_strict_request_schema_and_the_oracle_agree_on_declared_models():
    contract = load_profile(FLUX).contract
    validator = contract.validator("request")
    bodies = [
        ({"steps": 4, "aspect_ratio": "16:9", "n": 4, "size": "512x512"}, []),
        ({"steps": None}, []),
        ({"steps": 0}, ["request.extension.invalid"]),
        ({"aspect_ratio": "2:1"}, ["request.extension.invalid"]),
        ({"quality": "standard"}, ["request.refused_param"]),
        ({"n": 5}, ["request.n.max.model"]),
        ({"size": "256x256"}, ["request.size.enum"]),
        ({"response_format": "url"}, ["request.unsupported_param"]),
    ]
    for fields, rules in bodies:
        body = {"model": MODEL, "prompt": "a red circle", **fields}
        assert [v.rule for v in request_violations(body, contract)] == rules, fields
        assert validator.is_valid(body) == (not rules), fields
    # Another model's own parameter is not OpenAI's models' to take.
    other = {"model": "dall-e-2", "prompt": "a red circle", "steps": 4}
    assert [v.rule for v in request_violations(other, contract)] == ["request.unsupported_param"]
    assert not validator.is_valid(other)


# --- rules follow the facts declared -------------------------------------------------------------


def test_the_rules_of_a_declared_model_follow_its_facts():
    rules = load_profile(FLUX).rules()
    held = {rule.id for rule in rules.values() if MODEL in rule.models}
    assert {
        "request.size.enum",
        "request.n.max.model",
        "request.extension.invalid",
        "request.refused_param",
        "request.prompt.max_length",
        "response.b64_json",
        "response.data.count",
        "image.size",
        "image.format",
    } <= held
    assert not held & {
        "response.url",
        "request.n.max",
        "request.quality.enum",
        "request.response_format.enum",
        "stream.completed",
        "request.size.custom.max",
    }


#: A default size the vendor's page does not state either.
SOFT_DEFAULT = {"value": "1024x1024", "level": "SHOULD"}


def test_a_fact_marked_should_makes_the_rules_it_implies_should(tmp_path):
    sizes = {"value": ["512x512", "1024x1024"], "level": "SHOULD", "evidence": "sizes: 512, 1024"}
    entry = flux_entry(sizes=sizes, default_size=SOFT_DEFAULT)
    rules = load_profile(write_profile(tmp_path, [entry])).rules()
    for rule_id in ("image.size", "request.size.enum"):
        assert rules[rule_id].level == "MUST"
        assert rules[rule_id].level_for(MODEL) == "SHOULD"
        assert rules[rule_id].level_for("dall-e-2") == "MUST"
    assert rules["request.n.max.model"].level_for(MODEL) == "MUST"


def test_the_rules_command_shows_the_level_a_model_is_held_to(tmp_path, capsys):
    sizes = {"value": ["512x512", "1024x1024"], "level": "SHOULD"}
    path = write_profile(tmp_path, ["dall-e-2", flux_entry(sizes=sizes, default_size=SOFT_DEFAULT)])
    rows = {}
    for model in (MODEL, "dall-e-2", None):
        argv = ["rules", "--profile", path] + (["--model", model] if model else [])
        assert main_entry(argv) == 0
        out = capsys.readouterr().out.splitlines()
        rows[model] = {line.split()[0]: line.split()[1] for line in out}
    assert rows[MODEL]["image.size"] == "SHOULD"
    assert rows["dall-e-2"]["image.size"] == "MUST"
    assert rows[None]["image.size"] == "MUST/SHOULD"
    assert main_entry(["rules", "--profile", path, "--level", "SHOULD", "--model", MODEL]) == 0
    assert "image.size" in capsys.readouterr().out


def test_a_size_rule_is_as_firm_as_the_firmest_fact_that_implies_it(tmp_path):
    # DeepInfra's pages: "Available sizes depend on the model. Default value: "1024x1024"". The
    # list is SHOULD, the default MUST: a size it accepts must still come back as asked.
    sizes = {"value": ["1024x1024"], "level": "SHOULD"}
    hard = write_profile(tmp_path, [flux_entry(sizes=sizes, default_size="1024x1024")], "hard")
    soft = write_profile(tmp_path, [flux_entry(sizes=sizes, default_size=SOFT_DEFAULT)], "soft")
    assert load_profile(hard).rules()["image.size"].level_for(MODEL) == "MUST"
    assert load_profile(hard).rules()["request.size.enum"].level_for(MODEL) == "SHOULD"
    assert load_profile(soft).rules()["image.size"].level_for(MODEL) == "SHOULD"


def test_deepinfras_documented_default_size_holds_its_models_to_the_size_asked():
    profile = load_profile("deepinfra")
    rule = profile.rules()["image.size"]
    for model in profile.declared:
        assert model.facts["sizes"].level == "SHOULD"
        assert model.facts["default_size"].level == "MUST"
        assert rule.level_for(model.name) == "MUST", model.name


def test_a_like_model_takes_its_models_facts_with_overrides(tmp_path):
    entry = {"name": "my-dalle", "like": "dall-e-2", "sizes": ["256x256", "1024x1024"]}
    profile = load_profile(write_profile(tmp_path, [entry], name="like-dalle"))
    spec, base = profile.contract.models["my-dalle"], load_contract().models["dall-e-2"]
    assert spec.sizes == ("256x256", "1024x1024")
    for same in ("prompt_max_chars", "n_max", "qualities", "params", "fixed", "family"):
        assert getattr(spec, same) == getattr(base, same), same
    assert spec.values("response_format") == base.values("response_format")
    rules = profile.rules()
    assert "my-dalle" in rules["response.url"].models
    assert "my-dalle" in rules["request.response_format.enum"].models
    # A size of dall-e-2 that my-dalle does not take is an invalid case of its plan.
    body = {"model": "my-dalle", "prompt": "a red circle", "size": "512x512"}
    assert [v.rule for v in request_violations(body, profile.contract)] == ["request.size.enum"]
    plan = build_plan(profile)
    sizes = [c for c in plan.cases if c.rule == "request.size.enum" and c.model == "my-dalle"]
    assert any(c.body["size"] == "512x512" and c.expect == "reject" for c in sizes)


def test_a_like_model_round_trips(tmp_path, imgconf_run):
    entry = {"name": "my-dalle", "like": "dall-e-2", "sizes": ["256x256", "1024x1024"]}
    path = write_profile(tmp_path, [entry], name="like-dalle")
    with start_reference_server(profile=path) as server:
        status, report = imgconf_run("--profile", path, target=server)
    assert status == 0, report["verdict"]
    assert report["models"] == ["my-dalle"]


# --- the plan ----------------------------------------------------------------------------------


def test_the_flux_plan_prints_its_cases_and_cost(capsys):
    assert main_entry(["plan", "--profile", FLUX]) == 0
    out = capsys.readouterr().out
    assert f"{MODEL}: " in out and "$" in out
    assert "request.extension.invalid: steps=0" in out
    assert "request.refused_param: quality=" in out


def test_the_flux_plan_covers_its_extensions_pairwise_and_prices_each_image():
    profile = load_profile(FLUX)
    spec = profile.contract.models[MODEL]
    factors = pairwise_factors(spec, profile.contract)
    assert {"steps", "aspect_ratio", "n", "size"} <= set(factors)
    plan = build_plan(profile)
    covered = plan.coverage["models"][MODEL]
    assert covered["pairs"]["covered"] == covered["pairs"]["total"]
    assert covered["values"]["missing"] == []
    assert plan.cost == pytest.approx(0.003 * plan.images)
    valid = [c.body for c in plan.cases if c.kind == "valid"]
    # Nothing the model refuses is sent in a valid case.
    assert not [b for b in valid if "quality" in b or "style" in b]


def test_a_field_the_model_ignores_is_a_valid_case_answered_as_if_omitted(tmp_path, imgconf_run):
    path = write_profile(
        tmp_path, [flux_entry(ignores=["style"], refuses=["quality"])], name="ignoring"
    )
    profile = load_profile(path)
    plan = build_plan(profile)
    ignored = [c for c in plan.cases if c.kind == "valid" and "style" in c.body]
    assert ignored and all(c.expect == "accept" for c in ignored)
    assert not [c for c in plan.cases if c.rule == "request.refused_param" and "style" in c.body]
    with start_reference_server(profile=path) as server:
        status, report = imgconf_run("--profile", path, target=server)
    assert status == 0, report["verdict"]


# --- the reference server serves the profile --------------------------------------------------


@pytest.fixture
def flux_client(reference_client):
    return reference_client(profile=FLUX)


def post(client: Any, **fields: Any) -> Any:
    return client.post(PATH, json={"model": MODEL, "prompt": "a red circle", **fields})


def test_the_server_serves_a_declared_model(flux_client):
    answer = post(flux_client, n=3, size="512x512", steps=8, aspect_ratio="16:9")
    assert answer.status_code == 200, answer.text[:200]
    data = answer.json()["data"]
    assert len(data) == 3 and all("url" not in item for item in data)
    image = Image.open(io.BytesIO(base64.b64decode(data[0]["b64_json"])))
    assert image.size == (512, 512) and image.format == "PNG"
    default = Image.open(
        io.BytesIO(base64.b64decode(post(flux_client).json()["data"][0]["b64_json"]))
    )
    assert default.size == (1024, 1024)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": "4"}, "steps"),
        ({"aspect_ratio": "2:1"}, "aspect_ratio"),
        ({"quality": "standard"}, "quality"),
        ({"style": "vivid"}, "style"),
        ({"n": 5}, "n"),
        ({"size": "256x256"}, "size"),
    ],
)
def test_the_server_refuses_what_the_declaration_rules_out(flux_client, fields, param):
    answer = post(flux_client, **fields)
    assert answer.status_code == 400, answer.text[:200]
    assert answer.json()["error"]["param"] == param


def test_run_without_base_url_serves_the_profile_it_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main_entry(["run", "--profile", FLUX, "--report-dir", str(tmp_path / "r")]) == 0


QUIRKS = {
    "ignore-size": "image.size",
    "ignore-n": "response.data.count",
    "accept-bad-extensions": "request.extension.invalid",
    "url-instead-of-b64": "response.b64_json",
}


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_each_quirk_fails_the_flux_run_naming_its_rule(quirk, imgconf_run):
    with start_reference_server(quirks=(quirk,), profile=FLUX) as server:
        status, report = imgconf_run("--profile", FLUX, target=server)
    assert status == 1, report["verdict"]
    failed = {entry.split(" @ ")[0] for entry in report["verdict"]["failed"]}
    assert QUIRKS[quirk] in failed, failed
    assert f"{QUIRKS[quirk]} @ {MODEL}" in report["verdict"]["failed"]


def test_a_should_fact_only_warns_when_broken(tmp_path, imgconf_run):
    sizes = {"value": ["512x512", "1024x1024"], "level": "SHOULD"}
    entry = flux_entry(sizes=sizes, default_size=SOFT_DEFAULT)
    path = write_profile(tmp_path, [entry], name="soft-sizes")
    with start_reference_server(quirks=("ignore-size",), profile=path) as server:
        status, report = imgconf_run("--profile", path, target=server)
    assert status == 0, report["verdict"]
    assert f"image.size @ {MODEL}" in report["verdict"]["warned"]


def test_the_example_reads_as_a_user_would_write_it():
    text = Path(FLUX).read_text()
    assert "x-imgconf" not in text and "$defs" not in text
    assert textwrap.dedent(text) == text


WXH_MODEL = {
    "name": "qwen-image",
    "prompt_max_chars": 1000,
    "n": {"max": 2},
    "sizes": {
        "list": ["1024x1024"],
        "wxh": {
            "multiple_of": 16,
            "min_edge": 256,
            "max_edge": 1440,
            "max_aspect": 3,
            "max_pixels": 2073600,
        },
    },
    "output_formats": ["png", "jpeg"],
    "response_formats": ["b64_json", "url"],
    "extensions": {
        "seed": {"type": "integer", "minimum": 0},
        "negative_prompt": {"type": "string", "maxLength": 500},
    },
}


def test_a_wxh_rule_model_plans_its_custom_sizes_and_round_trips(tmp_path, imgconf_run):
    path = write_profile(tmp_path, [WXH_MODEL], name="wxh")
    profile = load_profile(path)
    spec = profile.contract.models["qwen-image"]
    assert spec.custom_sizes is not None and spec.custom_sizes.max_edge == 1440
    assert spec.default("response_format", profile.contract) == "b64_json"
    rules = profile.rules()
    for rule_id in ("request.size.custom.max", "response.url", "response.b64_json"):
        assert "qwen-image" in rules[rule_id].models, rule_id
    plan = build_plan(profile)
    assert {c.rule for c in plan.cases} >= {
        "request.size.custom.divisible",
        "request.size.custom.aspect",
        "request.size.custom.max",
        "request.extension.invalid",
    }
    with start_reference_server(profile=path) as server:
        status, report = imgconf_run("--profile", path, target=server)
    assert status == 0, report["verdict"]
    with start_reference_server(quirks=("accept-any-size",), profile=path) as server:
        status, report = imgconf_run("--profile", path, target=server)
    assert status == 1
    assert "request.size.custom.max @ qwen-image" in report["verdict"]["failed"]


def test_an_ignored_size_is_judged_as_if_omitted(tmp_path, imgconf_run):
    # A model that ignores size answers its default size; a server that honours the asked
    # size instead is not answering "as if omitted".
    entry = flux_entry(sizes=None, default_size="1024x1024", ignores=["size"])
    del entry["sizes"]
    path = write_profile(tmp_path, [entry], name="sizeless")
    profile = load_profile(path)
    assert not profile.contract.models[MODEL].takes("size")
    asked = [c for c in build_plan(profile).cases if c.kind == "valid" and "size" in c.body]
    assert asked, "an ignored field is sent in a valid case"
    with start_reference_server(profile=path) as server:
        status, report = imgconf_run("--profile", path, target=server)
    assert status == 0, report["verdict"]
    assert f"image.size @ {MODEL}" not in report["verdict"]["failed"]


# --- the judge ---------------------------------------------------------------------------------


def judged(profile_path: str, body: dict[str, Any], answer: dict[str, Any]) -> set[str]:
    """The rules the judge finds broken (with their levels) in one answer under a profile."""
    from test_checks import make_case, ok_json, run

    result = run(make_case(body), ok_json(answer), profile=load_profile(profile_path))
    return {f"{f.rule}:{f.level}" for f in result.findings}


def b64_answer(*sizes: tuple[int, int]) -> dict[str, Any]:
    from test_checks import b64, image_bytes

    return {"created": 1700000000, "data": [{"b64_json": b64(image_bytes(*s))} for s in sizes]}


def test_the_judge_holds_a_declared_model_to_its_facts(tmp_path):
    body = {"model": MODEL, "prompt": "a red square", "size": "512x512", "n": 2, "steps": 4}
    assert judged(FLUX, body, b64_answer((512, 512), (512, 512))) == set()
    assert judged(FLUX, body, b64_answer((512, 512))) == {"response.data.count:MUST"}
    assert "image.size:MUST" in judged(FLUX, body, b64_answer((1024, 1024), (1024, 1024)))
    url_answer = {"created": 1700000000, "data": [{"url": "https://x.example/1.png"}] * 2}
    assert "response.b64_json:MUST" in judged(FLUX, body, url_answer)
    # A fact marked SHOULD: the rule it implies is a warning for this model.
    sizes = {"value": ["512x512", "1024x1024"], "level": "SHOULD"}
    soft = write_profile(tmp_path, [flux_entry(sizes=sizes, default_size=SOFT_DEFAULT)])
    assert "image.size:SHOULD" in judged(soft, body, b64_answer((1024, 1024), (1024, 1024)))


def test_the_judge_reads_an_ignored_size_as_omitted(tmp_path):
    entry = flux_entry(default_size="1024x1024", ignores=["size"])
    del entry["sizes"]
    path = write_profile(tmp_path, [entry], name="sizeless")
    body = {"model": MODEL, "prompt": "a red square", "size": "512x512"}
    assert judged(path, body, b64_answer((1024, 1024))) == set()
    assert "image.size:MUST" in judged(path, body, b64_answer((512, 512)))


def test_a_rule_names_declared_models_by_a_known_fact():
    from conformance.contract.loader import ContractError, parse_rules

    entry = {"id": "request.x", "level": "MUST", "kind": "answer", "models": "*"}
    entry.update(description="d", source="s", declared="size")
    with pytest.raises(ContractError, match=r"rule request\.x: declared must be"):
        parse_rules([entry], load_contract().models)
    for good in ("*", "sizes", "sizes.wxh", "response_formats.url", "takes.stream"):
        parse_rules([{**entry, "declared": good}], load_contract().models)


def test_a_field_rule_takes_the_level_of_the_fact_that_makes_the_field_taken(tmp_path):
    n = {"value": {"min": 1, "max": 4}, "level": "SHOULD"}
    rules = load_profile(write_profile(tmp_path, [flux_entry(n=n)])).rules()
    for rule_id in ("request.n.type", "request.n.min", "request.n.max.model"):
        assert rules[rule_id].level_for(MODEL) == "SHOULD", rule_id
    assert rules["request.prompt.type"].level_for(MODEL) == "MUST"


@pytest.mark.parametrize("model", list(load_contract().models))
def test_a_like_model_without_overrides_compiles_to_its_models_spec(tmp_path, model):
    # The compiler and the loader agree: what a contract model states, redeclared, is the same.
    path = write_profile(tmp_path, [{"name": f"my-{model}", "like": model}])
    spec = load_profile(path).contract.models[f"my-{model}"]
    assert dataclasses.replace(spec, name=model) == load_contract().models[model]


def test_a_like_model_of_a_streaming_custom_size_model_round_trips(tmp_path, imgconf_run):
    model = load_contract().spec_gpt_image_models[-1]
    path = write_profile(tmp_path, [{"name": "my-gpt", "like": model}], name="like-gpt")
    rules = load_profile(path).rules()
    assert "my-gpt" in rules["stream.completed"].models
    assert "my-gpt" in rules["request.size.custom.aspect"].models
    with start_reference_server(profile=path) as server:
        status, report = imgconf_run("--profile", path, target=server)
    assert status == 0, report["verdict"]


def test_a_contract_model_next_to_a_declared_one_keeps_its_cases(tmp_path):
    model = "dall-e-3"
    path = write_profile(tmp_path, [model, flux_entry()], name="mixed")

    def cases(profile: Any, **options: Any) -> list[tuple[Any, ...]]:
        plan = build_plan(profile, **options)
        return [(c.id, c.body, c.level, c.expect) for c in plan.cases if c.model == model]

    assert cases(load_profile(path)) == cases(load_profile("openai"), models=[model])


URL_ONLY = {
    "name": "sd-url",
    "n": {"max": 1},
    "sizes": ["768x768"],
    "output_formats": ["jpeg"],
    "response_formats": ["url"],
    "ignores": ["style"],
}


@pytest.mark.parametrize(
    ("quirk", "rule"),
    [(None, None), ("b64-instead-of-url", "response.url"), ("wrong-format", "image.format")],
)
def test_a_url_only_jpeg_only_model_is_served_and_judged_so(tmp_path, imgconf_run, quirk, rule):
    path = write_profile(tmp_path, [URL_ONLY], name="url-only")
    quirks = (quirk,) if quirk else ()
    with start_reference_server(quirks=quirks, profile=path) as server:
        status, report = imgconf_run("--profile", path, target=server)
    if rule is None:
        assert status == 0, report["verdict"]
    else:
        assert status == 1 and f"{rule} @ sd-url" in report["verdict"]["failed"], report["verdict"]


# --- a model whose formats leave rules and values out ---------------------------------------------


@pytest.mark.parametrize(
    ("formats", "untestable", "untaken"),
    [
        (["png"], "request.background.transparent_jpeg", "output_compression=0"),
        (["jpeg"], "request.background.transparent_jpeg", "background='transparent'"),
        (["jpeg", "png"], None, None),
    ],
)
def test_a_model_with_fewer_formats_is_planned_served_and_judged_without_a_false_alarm(
    tmp_path, imgconf_run, capsys, formats, untestable, untaken
):
    """A like model that answers png only cannot be sent a transparent jpeg that breaks only
    the transparent-jpeg rule (the format is refused first): the plan says so and tests what
    it can. One that answers jpeg only (or first) answers an omitted format with a jpeg, so a
    transparent background without a format is refused, and never sent as a valid case."""
    entry = {"name": "few-formats", "like": "gpt-image-1", "output_formats": formats}
    path = write_profile(tmp_path, [entry], name="few-formats")
    status, report = imgconf_run("--profile", path)
    assert status == 0, report["verdict"]
    said = "".join(capsys.readouterr())
    if untestable is None:
        assert "alone" not in said and "no valid request" not in said
    else:
        assert f"few-formats: no request breaks {untestable}" in said
        assert f"few-formats: no valid request can send {untaken}" in said
    body = {"model": "few-formats", "prompt": "a red circle", "background": "transparent"}
    broken = [v.rule for v in request_violations(body, load_profile(path).contract)]
    if formats[0] == "jpeg":
        assert "request.background.transparent_jpeg" in broken
    else:
        assert broken == []
