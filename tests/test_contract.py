"""The contract data: schemas are valid, and the request schema and the rule code agree with
CONTRACT.md on every boundary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from conformance.contract.loader import ContractError, load_contract, parse_rules
from conformance.contract.oracle import request_violations

CONTRACT = load_contract()
REQUEST = CONTRACT.validator("request")
MODELS = list(CONTRACT.models)
GPT = CONTRACT.family_models("gpt-image")
SHARED = Path(os.environ.get("IMGCONF_SHARED", Path(__file__).resolve().parents[2] / "shared"))


@pytest.mark.parametrize(
    "path", sorted(CONTRACT.directory.glob("*.schema.json")), ids=lambda p: p.name
)
def test_every_schema_passes_the_meta_schema(path: Path) -> None:
    import json

    Draft202012Validator.check_schema(json.loads(path.read_text()))


def verdict(body: object) -> tuple[bool, list[str]]:
    """(schema says valid, rule ids the code says are broken)."""
    return REQUEST.is_valid(body), [v.rule for v in request_violations(body)]


def assert_valid(body: dict) -> None:
    schema_ok, broken = verdict(body)
    assert schema_ok, list(REQUEST.iter_errors(body))
    assert broken == []


def assert_breaks(body: object, rule: str) -> None:
    schema_ok, broken = verdict(body)
    assert not schema_ok, f"schema accepted a request that breaks {rule}"
    assert broken == [rule]


# --- prompt length, counted in characters -------------------------------------------------

LIMITS = {"dall-e-2": 1000, "dall-e-3": 4000, **{m: 32000 for m in GPT}}
# Each unit is one character (one code point) however many bytes it takes in UTF-8.
UNITS = ["a", "é", "中", "😀", "ש"]


@pytest.mark.parametrize("model", MODELS)
def test_prompt_limits_are_the_contracts(model: str) -> None:
    assert CONTRACT.models[model].prompt_max_chars == LIMITS[model]


@pytest.mark.parametrize("unit", UNITS, ids=["ascii", "latin", "cjk", "emoji", "hebrew"])
@pytest.mark.parametrize("model", MODELS)
def test_prompt_at_the_limit_is_valid_and_one_more_is_not(model: str, unit: str) -> None:
    limit = LIMITS[model]
    assert_valid({"model": model, "prompt": unit * limit})
    assert_breaks({"model": model, "prompt": unit * (limit + 1)}, "request.prompt.max_length")


def test_combining_marks_count_as_characters() -> None:
    # "e" + COMBINING ACUTE is two characters for the 1000-character rule.
    assert_valid({"model": "dall-e-2", "prompt": "e\u0301" * 500})
    assert_breaks(
        {"model": "dall-e-2", "prompt": "e\u0301" * 500 + "x"}, "request.prompt.max_length"
    )


@pytest.mark.parametrize(
    ("prompt", "rule"),
    [(None, "request.prompt.type"), (5, "request.prompt.type"), (["a"], "request.prompt.type")],
)
def test_prompt_type(prompt: object, rule: str) -> None:
    assert_breaks({"model": "dall-e-2", "prompt": prompt}, rule)


def test_prompt_required_and_empty() -> None:
    assert_breaks({"model": "gpt-image-1"}, "request.prompt.required")
    assert_breaks({"model": "gpt-image-1", "prompt": ""}, "request.prompt.empty")
    assert CONTRACT.rules["request.prompt.empty"].level == "SHOULD"


# --- n ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_n_boundaries(model: str) -> None:
    top = 1 if model == "dall-e-3" else 10
    assert_valid({"model": model, "prompt": "p", "n": 1})
    assert_valid({"model": model, "prompt": "p", "n": top})
    assert_breaks({"model": model, "prompt": "p", "n": 0}, "request.n.min")
    over = "request.n.max.dall-e-3" if model == "dall-e-3" else "request.n.max"
    assert_breaks({"model": model, "prompt": "p", "n": 11}, over)


def test_dall_e_3_takes_one_image_only() -> None:
    assert_breaks({"model": "dall-e-3", "prompt": "p", "n": 2}, "request.n.max.dall-e-3")


@pytest.mark.parametrize("n", ["1", 1.5, True, False, [1]])
def test_n_must_be_an_integer(n: object) -> None:
    assert_breaks({"model": "dall-e-2", "prompt": "p", "n": n}, "request.n.type")


# --- sizes -----------------------------------------------------------------------------------

SIZES = {
    "dall-e-2": {"256x256", "512x512", "1024x1024"},
    "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
    **{m: {"1024x1024", "1536x1024", "1024x1536", "auto"} for m in GPT},
}
ALL_SIZES = set().union(*SIZES.values())
CUSTOM = [m for m in MODELS if CONTRACT.models[m].custom_sizes]


@pytest.mark.parametrize("model", MODELS)
def test_each_model_takes_its_sizes_and_not_its_neighbours(model: str) -> None:
    assert set(CONTRACT.models[model].sizes) == SIZES[model]
    for size in SIZES[model]:
        assert_valid({"model": model, "prompt": "p", "size": size})
    for size in sorted(ALL_SIZES - SIZES[model]):
        if model in CUSTOM and size != "auto":
            continue  # any WxH within the stated limits is a valid custom size for gpt-image-2
        assert_breaks({"model": model, "prompt": "p", "size": size}, "request.size.enum")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("size", ["big", "1024", "1024x", "1024*1024", "0x0", 1024])
def test_malformed_sizes(model: str, size: object) -> None:
    body = {"model": model, "prompt": "p", "size": size}
    assert not REQUEST.is_valid(body) or model in CUSTOM
    assert [v.rule for v in request_violations(body)] == ["request.size.enum"]


def test_gpt_image_2_is_the_only_family_with_custom_sizes() -> None:
    assert CUSTOM == ["gpt-image-2", "gpt-image-2-2026-04-21"]


@pytest.mark.parametrize("model", CUSTOM)
@pytest.mark.parametrize(
    ("size", "rule"),
    [
        ("1536x864", None),
        ("3840x2160", None),
        ("2160x3840", None),
        ("1536x512", None),  # exactly 3:1
        ("1000x1008", "request.size.custom.divisible"),
        ("1008x1000", "request.size.custom.divisible"),
        ("1552x512", "request.size.custom.aspect"),  # just over 3:1
        ("3856x1600", "request.size.custom.max"),  # edge over 3840
        ("3840x2176", "request.size.custom.max"),  # pixels over 3840x2160
    ],
)
def test_custom_size_rules(model: str, size: str, rule: str | None) -> None:
    body = {"model": model, "prompt": "p", "size": size}
    assert REQUEST.is_valid(body)  # the schema checks the WxH shape; the numbers are code rules
    assert [v.rule for v in request_violations(body)] == ([rule] if rule else [])


def test_custom_size_safe_zone_stays_inside_the_limits() -> None:
    custom = CONTRACT.models["gpt-image-2"].custom_sizes
    assert custom is not None
    assert custom.is_safe(1024, 512) and custom.is_safe(2048, 1024)
    assert not custom.is_safe(2048 + 16, 1024) and not custom.is_safe(1536, 512)


# --- enums and cross-field rules -----------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_every_enum_value_of_the_model_is_valid(model: str) -> None:
    spec = CONTRACT.models[model]
    for field, values in spec.enums.items():
        for value in values:
            body = {"model": model, "prompt": "p", field: value}
            if field == "background" and value == "transparent":
                body["output_format"] = "png"
            assert_valid(body)


@pytest.mark.parametrize(
    ("model", "field"),
    [("dall-e-3", "quality"), ("gpt-image-1", "quality"), ("dall-e-3", "style")]
    + [("dall-e-2", "response_format")]
    + [(m, f) for m in GPT for f in ("output_format", "background", "moderation")],
)
def test_foreign_enum_values_are_rejected(model: str, field: str) -> None:
    assert_breaks({"model": model, "prompt": "p", field: "bogus"}, f"request.{field}.enum")


@pytest.mark.parametrize(
    ("model", "quality"), [("gpt-image-1", "hd"), ("dall-e-2", "hd"), ("dall-e-3", "low")]
)
def test_a_quality_of_another_model_is_a_should_reject(model: str, quality: str) -> None:
    assert_breaks({"model": model, "prompt": "p", "quality": quality}, "request.quality.model")
    assert CONTRACT.rules["request.quality.model"].level == "SHOULD"


@pytest.mark.parametrize("model", GPT)
def test_gpt_only_numbers(model: str) -> None:
    base = {"model": model, "prompt": "p", "output_format": "jpeg"}
    assert_valid({**base, "output_compression": 0})
    assert_valid({**base, "output_compression": 100})
    assert_breaks({**base, "output_compression": 101}, "request.output_compression.range")
    assert_breaks({**base, "output_compression": -1}, "request.output_compression.range")
    assert_valid({"model": model, "prompt": "p", "stream": True, "partial_images": 3})
    assert_valid({"model": model, "prompt": "p", "stream": True, "partial_images": 0})
    assert_breaks(
        {"model": model, "prompt": "p", "partial_images": 4}, "request.partial_images.range"
    )
    assert_breaks(
        {"model": model, "prompt": "p", "partial_images": -1}, "request.partial_images.range"
    )
    assert_breaks({"model": model, "prompt": "p", "stream": "yes"}, "request.stream.type")


@pytest.mark.parametrize("model", GPT)
def test_transparent_needs_png_or_webp(model: str) -> None:
    for fmt in ("png", "webp"):
        assert_valid(
            {"model": model, "prompt": "p", "background": "transparent", "output_format": fmt}
        )
    assert_valid({"model": model, "prompt": "p", "background": "transparent"})
    assert_breaks(
        {"model": model, "prompt": "p", "background": "transparent", "output_format": "jpeg"},
        "request.background.transparent_jpeg",
    )


def test_compression_with_png_is_a_should_reject() -> None:
    assert_breaks(
        {"model": "gpt-image-1", "prompt": "p", "output_compression": 50},
        "request.output_compression.png",
    )


@pytest.mark.parametrize("model", MODELS)
def test_null_means_default_for_every_optional_field(model: str) -> None:
    fields = [f for f in CONTRACT.request_fields if f != "prompt"]
    assert_valid({"prompt": "p", **dict.fromkeys(fields), "model": model})


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [("gpt-image-1", "style", "vivid"), ("gpt-image-1", "response_format", "url")]
    + [
        ("dall-e-2", f, v)
        for f, v in [("output_format", "png"), ("background", "opaque"), ("stream", True)]
    ],
)
def test_parameters_a_model_does_not_take(model: str, field: str, value: object) -> None:
    assert_breaks({"model": model, "prompt": "p", field: value}, "request.unsupported_param")


def test_body_and_model_rules() -> None:
    for body in ([], "prompt", 3, None):
        assert_breaks(body, "request.body.not_object")
    assert_breaks({"model": "dall-e-9", "prompt": "p"}, "request.model.unknown")
    assert_breaks({"model": "dall-e-2", "prompt": "p", "colour": "red"}, "request.unknown_field")


def test_omitted_model_means_dall_e_2_unless_gpt_fields_are_used() -> None:
    assert_breaks({"prompt": "p", "size": "1536x1024"}, "request.size.enum")
    assert_valid({"prompt": "p", "size": "256x256"})
    assert_valid({"prompt": "p", "output_format": "webp"})


# --- the schema and the rule code agree on arbitrary requests ------------------------------

FIELD_VALUES = {
    "model": st.sampled_from([*MODELS, None, "nope"]),
    "n": st.sampled_from([None, 0, 1, 2, 10, 11, "2", 1.5, True]),
    "size": st.sampled_from([None, *sorted(ALL_SIZES), "1536x864", "1000x1000", "4096x1024", "x"]),
    "quality": st.sampled_from([None, *CONTRACT.enum_fields["quality"], "ultra"]),
    "response_format": st.sampled_from([None, "url", "b64_json", "png"]),
    "output_format": st.sampled_from([None, "png", "jpeg", "webp", "gif"]),
    "output_compression": st.sampled_from([None, 0, 50, 100, 101, -1]),
    "background": st.sampled_from([None, "transparent", "opaque", "auto", "clear"]),
    "moderation": st.sampled_from([None, "low", "auto", "high"]),
    "stream": st.sampled_from([None, True, False, "true"]),
    "partial_images": st.sampled_from([None, 0, 3, 4]),
    "style": st.sampled_from([None, "vivid", "natural", "bold"]),
}


@st.composite
def requests(draw: st.DrawFn) -> dict:
    body = {"prompt": draw(st.sampled_from(["p", "", "é" * 1001, 7]))}
    for name in draw(st.sets(st.sampled_from(sorted(FIELD_VALUES)), max_size=5)):
        body[name] = draw(FIELD_VALUES[name])
    return body


@settings(max_examples=600, deadline=None)
@given(requests())
@example({"prompt": "p", "model": "gpt-image-2", "size": "1000x1000"})
def test_schema_and_rule_code_agree(body: dict) -> None:
    schema_ok, broken = verdict(body)
    # The schema checks only a custom size's WxH shape; its numbers are rules of the code alone.
    schema_rules = [rule for rule in broken if not rule.startswith("request.size.custom.")]
    assert schema_ok == (schema_rules == []), (
        broken,
        [e.message for e in REQUEST.iter_errors(body)],
    )


# --- the rule catalogue ----------------------------------------------------------------------

# Every MUST statement of CONTRACT.md and the rule that carries it.
CONTRACT_MUSTS = {
    "`prompt` missing, or not a string": ["request.prompt.required", "request.prompt.type"],
    "longer than the model's limit": ["request.prompt.max_length"],
    "`n` not an integer": ["request.n.type"],
    "below 1, above 10; above 1 for dall-e-3": [
        "request.n.min",
        "request.n.max",
        "request.n.max.dall-e-3",
    ],
    "`size` not one of the model's sizes": ["request.size.enum"],
    "breaks a stated custom-size rule": [
        "request.size.custom.divisible",
        "request.size.custom.aspect",
        "request.size.custom.max",
    ],
    "Any enum field with a value outside its enum": [
        f"request.{f}.enum"
        for f in (
            "quality",
            "style",
            "response_format",
            "output_format",
            "background",
            "moderation",
        )
    ],
    "`stream` not a boolean": ["request.stream.type"],
    "`output_compression` outside 0–100": ["request.output_compression.range"],
    "`partial_images` outside 0–3": ["request.partial_images.range"],
    "`background: transparent` with `output_format: jpeg`": ["request.background.transparent_jpeg"],
    "A body that is not JSON, or not a JSON object; an unknown `model`": [
        "request.body.not_json",
        "request.body.not_object",
        "request.model.unknown",
    ],
    "No `Authorization` header, or a wrong key: **401**": ["auth.missing", "auth.wrong"],
    "MUST be refused (any 4xx; 401 is the SHOULD)": ["auth.wrong"],
    "Every combination of valid values above, per model": ["request.valid.accepted"],
    "`Content-Type: application/json`": ["response.content_type"],
    "`created` is an integer": ["response.schema"],
    "`data` is an array of exactly": ["response.data.count"],
    "every item has `b64_json`": ["response.b64_json"],
    "fetching it (without the API key) gives the image": ["response.url", "response.url.fetch"],
    "Every image decodes": ["image.decodes", "image.format", "image.size", "image.alpha"],
    "`text/event-stream`": ["stream.content_type"],
    "every event is": ["stream.event.schema"],
    "at most `partial_images` partial events per image": ["stream.partial.count"],
    "ends with a `completed` event per image": ["stream.completed"],
    "`usage`, where present, matches the spec's ImageGenUsage": ["response.usage.schema"],
    'Any error answer carries a JSON body `{"error": {"message": "..."}}`': ["error.envelope"],
    "No request the suite sends may get a 5xx": ["transport.no_5xx"],
    "a malformed body": ["transport.well_formed"],
    "a dropped connection": ["transport.connection"],
    "within the timeout": ["transport.timeout"],
}


@pytest.mark.parametrize("statement", sorted(CONTRACT_MUSTS))
def test_every_must_statement_of_the_contract_has_must_rules(statement: str) -> None:
    contract_md = SHARED / "CONTRACT.md"
    if contract_md.is_file():
        assert statement in contract_md.read_text(), "CONTRACT.md no longer says this"
    for rule_id in CONTRACT_MUSTS[statement]:
        assert CONTRACT.rules[rule_id].level == "MUST", rule_id


def test_rule_ids_are_unique_and_well_formed() -> None:
    ids = [r.id for r in CONTRACT.rules.values()]
    assert len(ids) == len(set(ids))
    for rule in CONTRACT.rules.values():
        # A rule for models declared in profiles alone names no contract model.
        assert rule.models or rule.declared not in (None, "*"), rule.id
        assert rule.description and rule.source, rule.id
        assert rule.family in {
            "request",
            "auth",
            "response",
            "image",
            "stream",
            "error",
            "transport",
        }


def test_a_duplicate_rule_id_is_refused() -> None:
    entry = {
        "id": "x.y",
        "level": "MUST",
        "kind": "reject",
        "models": "*",
        "description": "d",
        "source": "s",
    }
    with pytest.raises(ContractError, match="twice"):
        parse_rules([entry, entry], CONTRACT.models)


def test_rules_the_schema_cannot_express_are_named() -> None:
    for rule_id in (
        "request.size.custom.divisible",
        "image.alpha",
        "response.data.count",
        "image.size",
    ):
        assert rule_id in CONTRACT.rules
        assert not CONTRACT.rules[rule_id].schema


def test_schema_flagged_reject_rules_are_really_decided_by_the_schema() -> None:
    # For each rule marked schema: true, some request breaking it alone fails the schema.
    samples = {
        "request.prompt.max_length": {"model": "dall-e-2", "prompt": "a" * 1001},
        "request.n.max.dall-e-3": {"model": "dall-e-3", "prompt": "p", "n": 2},
        "request.background.transparent_jpeg": {
            "model": "gpt-image-1",
            "prompt": "p",
            "background": "transparent",
            "output_format": "jpeg",
        },
        "request.quality.model": {"model": "gpt-image-1", "prompt": "p", "quality": "hd"},
    }
    for rule_id, body in samples.items():
        assert CONTRACT.rules[rule_id].schema
        assert_breaks(body, rule_id)


def test_served_by_names_a_capability_the_server_can_serve() -> None:
    entry = {
        "id": "x.y",
        "level": "SHOULD",
        "kind": "answer",
        "models": "*",
        "description": "d",
        "source": "s",
    }
    assert parse_rules([{**entry, "served_by": "usage"}], CONTRACT.models)["x.y"].served_by
    with pytest.raises(ContractError, match="served_by must be one of usage"):
        parse_rules([{**entry, "served_by": "telepathy"}], CONTRACT.models)
