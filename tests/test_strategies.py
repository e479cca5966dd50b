"""The request strategies against the oracle: valid bodies break nothing and fit the schema,
invalid ones break exactly their labelled rule; prompts, custom sizes and features."""

from __future__ import annotations

import random
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.contract import load_contract
from conformance.profiles import load_profile
from conformance.strategies import (
    DEFAULT_PROMPT,
    custom_size_examples,
    explore_bodies,
    feature_used,
    invalid_custom_sizes,
    invalid_requests,
    invalid_variants,
    param_values,
    prompt_of_length,
    valid_requests,
)
from conformance.validation import request_violations

CONTRACT = load_contract()
MODELS = list(CONTRACT.models)
FAST = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def broken(body: object) -> list[str]:
    return [v.rule for v in request_violations(body)]


@pytest.mark.parametrize("model", MODELS)
@FAST
@given(data=st.data())
def test_valid_requests_break_nothing_and_fit_the_schema(model: str, data: st.DataObject) -> None:
    body = data.draw(valid_requests(model))
    assert body["model"] == model
    assert broken(body) == []
    errors = list(CONTRACT.validator("request").iter_errors(body))
    assert errors == [], errors[0].message if errors else ""


@pytest.mark.parametrize("model", MODELS)
@FAST
@given(data=st.data())
def test_invalid_requests_break_exactly_their_rule(model: str, data: st.DataObject) -> None:
    body, rule = data.draw(invalid_requests(model))
    rules = load_profile("openai").rules()
    assert model in rules[rule].models
    assert broken(body) == [rule]


def test_invalid_requests_reach_every_request_rule_of_the_model() -> None:
    """Every rule a body can break alone is among the strategy's labels (found by drawing)."""
    model = "gpt-image-2"
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(invalid_requests(model))
    def collect(labelled: tuple[dict, str]) -> None:
        seen.add(labelled[1])

    collect()
    wanted = {
        r.id
        for r in load_profile("openai").rules().values()
        if r.kind == "reject" and r.id.startswith("request.") and r.per_model and model in r.models
    }
    assert wanted - seen == set()


@pytest.mark.parametrize("length", [1, 2, 57, 1000, 4000, 32000])
def test_prompts_have_exactly_the_asked_characters_in_mixed_scripts(length: int) -> None:
    text = prompt_of_length(length)
    assert len(text) == length
    assert text == text.strip()
    if length >= 200:
        assert len(text.encode()) > length  # multi-byte
        assert len(text.encode("utf-16-le")) // 2 > length  # astral emoji count twice there
        assert any(unicodedata.combining(c) for c in text)
        assert any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)
        assert any(ord(c) > 0xFFFF for c in text)


def test_custom_sizes_inside_the_safe_zone_and_breaking_one_rule_each() -> None:
    spec = CONTRACT.models["gpt-image-2"]
    custom = spec.custom_sizes
    assert custom is not None
    examples = custom_size_examples(custom)
    assert len(examples) >= 2
    for size in examples:
        width, height = map(int, size.split("x"))
        assert custom.is_safe(width, height)
        assert size not in spec.sizes
    invalid = invalid_custom_sizes(custom)
    assert set(invalid) == {
        "request.size.custom.divisible",
        "request.size.custom.aspect",
        "request.size.custom.max",
    }
    for rule, sizes in invalid.items():
        for size in sizes:
            body = {"model": "gpt-image-2", "prompt": DEFAULT_PROMPT, "size": size}
            assert broken(body) == [rule]


def test_value_spaces_come_from_the_contract() -> None:
    dalle3 = param_values(CONTRACT.models["dall-e-3"])
    assert dalle3["n"] == (1,)
    assert set(dalle3["style"]) == {"vivid", "natural"}
    assert "output_format" not in dalle3
    gpt = param_values(CONTRACT.models["gpt-image-1"])
    assert gpt["n"] == (1, 10)
    assert gpt["partial_images"] == (0, 1, 2, 3)
    assert gpt["output_compression"] == (0, 100)
    assert gpt["stream"] == (False, True)
    assert "auto" in gpt["size"]


def test_invalid_variants_label_their_break() -> None:
    spec = CONTRACT.models["dall-e-3"]
    base = {"model": "dall-e-3", "prompt": DEFAULT_PROMPT}
    variants = invalid_variants(spec, base, ["request.n.max.dall-e-3", "request.n.min"])
    assert {v.rule for v in variants} == {"request.n.max.dall-e-3", "request.n.min"}
    assert {v.body["n"] for v in variants if v.rule == "request.n.max.dall-e-3"} == {2, 11}
    for variant in variants:
        assert broken(variant.body) == [variant.rule]


def test_features_a_vendor_may_not_offer() -> None:
    gpt2 = CONTRACT.models["gpt-image-2"]
    assert feature_used("stream", {"stream": True}, gpt2)
    assert not feature_used("stream", {"stream": False}, gpt2)
    assert not feature_used("stream", {"stream": None}, gpt2)
    assert feature_used("size=custom", {"size": "512x512"}, gpt2)
    assert not feature_used("size=custom", {"size": "1024x1024"}, gpt2)
    assert feature_used("n>1", {"n": 2}, gpt2)
    assert not feature_used("n>1", {"n": 1}, gpt2)
    assert feature_used("output_format=webp", {"output_format": "webp"}, gpt2)
    assert not feature_used("output_format=webp", {"output_format": "png"}, gpt2)


def test_exploration_is_reproducible_for_a_seed() -> None:
    spec = CONTRACT.models["gpt-image-1"]
    first = explore_bodies(spec, [], random.Random("7"), 20)
    again = explore_bodies(spec, [], random.Random("7"), 20)
    other = explore_bodies(spec, [], random.Random("8"), 20)
    assert first == again
    assert first != other
    assert all(broken(body) == [] for _, body in first)  # no mutations given: all valid
