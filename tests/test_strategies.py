"""The request strategies against the oracle: valid bodies break nothing and fit the schema,
invalid ones break exactly their labelled rule; prompts, custom sizes and features."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.contract.loader import load_contract
from conformance.contract.oracle import request_violations
from conformance.contract.profiles import load_profile
from conformance.errors import SetupError
from conformance.generation import strategies
from conformance.generation.strategies import (
    DEFAULT_PROMPT,
    body_key,
    custom_size_corners,
    custom_size_examples,
    draw_examples,
    explore_requests,
    feature_used,
    invalid_custom_sizes,
    invalid_requests,
    invalid_variants,
    param_values,
    prompt_of_length,
    valid_requests,
)

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

    @settings(max_examples=1000, deadline=None, database=None, derandomize=True)
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


def test_custom_size_examples_are_derived_from_the_zone_bounds() -> None:
    """Another zone gives other sizes with the same properties: nothing is a literal list."""
    spec = CONTRACT.models["gpt-image-2"]
    zone = spec.custom_sizes
    assert zone is not None
    other = dataclasses.replace(zone, safe_min_edge=256, safe_max_edge=1536, safe_max_aspect=1.5)
    for custom in (zone, other):
        examples = custom_size_examples(custom)
        corners = custom_size_corners(custom)
        assert examples[: len(corners)] == corners and len(set(examples)) == len(examples)
        sizes = [tuple(map(int, s.split("x"))) for s in examples]
        assert all(custom.is_safe(w, h) for w, h in sizes)
        low, high = custom.safe_min_edge, custom.safe_max_edge
        assert (low, low) in sizes and (high, high) in sizes
        assert max(w / h for w, h in sizes) == pytest.approx(custom.safe_max_aspect, rel=0.02)
        step = custom.multiple_of
        odd = [(w, h) for w, h in sizes if (w // step) % 2 and (h // step) % 2]
        assert any(w > h for w, h in odd) and any(h > w for w, h in odd)
        assert {(h, w) for w, h in sizes} == set(sizes)  # every shape wide and tall
    assert custom_size_examples(zone) != custom_size_examples(other)


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


def test_drawing_is_reproducible_for_a_seed_and_never_repeats() -> None:
    strategy = valid_requests("gpt-image-1")
    first = draw_examples(strategy, seed="7", count=20)
    again = draw_examples(strategy, seed="7", count=20)
    other = draw_examples(strategy, seed="8", count=20)
    assert first == again
    assert first != other
    assert len(first) == 20
    assert len({body_key(b) for b in first}) == 20  # Hypothesis draws repeats: none kept
    assert all(broken(body) == [] for body in first)
    skipped = {body_key(b) for b in first[:5]}
    fresh = draw_examples(strategy, seed="7", count=20, exclude=skipped)
    assert not skipped & {body_key(b) for b in fresh}
    assert draw_examples(strategy, seed="7", count=0) == []


def test_draws_are_capped_by_the_strategy() -> None:
    assert sorted(draw_examples(st.sampled_from([1, 2, 3]), seed=1, count=10)) == [1, 2, 3]


def test_long_draws_come_from_short_runs_each_seeded_and_never_repeating(monkeypatch) -> None:
    # Hypothesis holds every choice of a run until it ends: a long draw is cut into runs of
    # DRAW_RUN, so that record stays small whatever ``count`` is.
    strategy = valid_requests("gpt-image-1")
    whole_run = draw_examples(strategy, seed="7", count=9)
    monkeypatch.setattr(strategies, "DRAW_RUN", 4)
    runs = draw_examples(strategy, seed="7", count=9)
    assert runs == draw_examples(strategy, seed="7", count=9)  # reproducible
    assert len({body_key(b) for b in runs}) == 9
    assert runs[:4] == whole_run[:4]  # the first run is seeded as a whole draw is
    assert runs[4:] != whole_run[4:]  # the next ones under seeds of their own
    assert runs[4:8] == draw_examples(
        strategy, seed="7#1", count=4, exclude=map(body_key, runs[:4])
    )
    # A run that finds nothing new ends the draw; one that finds some does not.
    monkeypatch.setattr(strategies, "DRAW_RUN", 2)
    assert sorted(draw_examples(st.sampled_from([1, 2, 3, 4, 5]), seed=1, count=10)) == [
        1,
        2,
        3,
        4,
        5,
    ]


def test_explore_requests_alternate_valid_and_invalid_and_skip_planned_bodies() -> None:
    openai = load_profile("openai")
    models = ["dall-e-3", "gpt-image-2"]
    drawn = explore_requests(models, openai, seed=4, count=7)
    assert list(drawn) == models
    for model, bodies in drawn.items():
        assert len(bodies) == 7
        assert [broken(b) == [] for b in bodies] == [True, False] * 3 + [True]
        assert all(b["model"] == model for b in bodies)
        assert len({body_key(b) for b in bodies}) == 7
    planned = drawn["dall-e-3"][:3]
    again = explore_requests(["dall-e-3"], openai, seed=4, count=7, exclude=planned)
    assert not {body_key(b) for b in planned} & {body_key(b) for b in again["dall-e-3"]}
    assert len(again["dall-e-3"]) == 7


# What another process does: other modules loaded first (they change Hypothesis's pool of source
# constants, which is why the drawing runs in a fresh interpreter), then the same call.
_OTHER_PROCESS = """\
import json, sys
import conformance.engine.runner, conformance.server.app, conformance.reports.writer
from conformance.contract.profiles import load_profile
from conformance.generation.strategies import explore_requests
drawn = explore_requests(["gpt-image-1", "dall-e-2"], load_profile("openai"), seed=11, count=6)
json.dump(drawn, sys.stdout)
"""


def test_explore_requests_are_the_same_in_another_process_and_hash_seed() -> None:
    here = explore_requests(["gpt-image-1", "dall-e-2"], load_profile("openai"), seed=11, count=6)
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "4242"},
        check=True,
    )
    assert json.loads(done.stdout) == here
    assert explore_requests(["dall-e-2"], load_profile("openai"), seed=12, count=6) != {
        "dall-e-2": here["dall-e-2"]
    }


def test_explore_requests_fail_in_one_line_when_no_interpreter_can_draw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "executable", shutil.which("false") or "/bin/false")
    with pytest.raises(SetupError, match=r"^--explore: drawing the cases failed: exit status 1$"):
        explore_requests(["dall-e-2"], load_profile("openai"), seed=1, count=2)


def test_explore_bodies_come_a_line_at_a_time_numbered_on() -> None:
    from conformance.generation.strategies import EXPLORE_LINE, explore_stream

    count = EXPLORE_LINE + 7
    lines = list(explore_stream(["dall-e-2"], load_profile("openai"), seed=2, count=count))
    assert [(m, len(b), first) for m, b, first in lines] == [
        ("dall-e-2", EXPLORE_LINE, 1),
        ("dall-e-2", 7, EXPLORE_LINE + 1),
    ]
    whole = explore_requests(["dall-e-2"], load_profile("openai"), seed=2, count=count)
    assert whole == {"dall-e-2": [body for _, bodies, _ in lines for body in bodies]}


def test_explore_lines_give_the_halves_interleaved_as_drawn_whole(monkeypatch) -> None:
    import io
    from itertools import zip_longest

    monkeypatch.setattr(strategies, "EXPLORE_LINE", 4)
    openai = load_profile("openai")
    request = {"profile": "openai", "models": ["dall-e-2", "gpt-image-1"], "seed": 3}
    request |= {"count": 9, "exclude": []}
    out = io.BytesIO()
    strategies.write_explore_lines(request, out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(m, len(b), first) for m, b, first in lines] == [
        (model, size, first)
        for model in request["models"]
        for size, first in ((4, 1), (4, 5), (1, 9))
    ]
    # The same bodies, in the same order, as the two halves drawn whole and interleaved.
    seen: set[str] = set()
    for model in request["models"]:
        valid = draw_examples(
            valid_requests(model, openai),
            seed=f"imgconf-explore:3:{model}:valid",
            count=5,
            exclude=seen,
        )
        seen |= {body_key(b) for b in valid}
        invalid = draw_examples(
            invalid_requests(model, openai).map(lambda labelled: labelled[0]),
            seed=f"imgconf-explore:3:{model}:invalid",
            count=4,
            exclude=seen,
        )
        seen |= {body_key(b) for b in invalid}
        expected = [b for pair in zip_longest(valid, invalid) for b in pair if b is not None]
        assert [b for m, bodies, _ in lines if m == model for b in bodies] == expected


def test_a_model_with_nothing_drawn_still_gets_its_line() -> None:
    import io

    out = io.BytesIO()
    strategies.write_explore_lines(
        {"profile": "openai", "models": ["dall-e-2"], "seed": 1, "count": 0, "exclude": []}, out
    )
    assert json.loads(out.getvalue()) == ["dall-e-2", [], 1]


def test_drawn_lines_are_read_whole_as_the_drawing_process_writes_them(monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(strategies, "EXPLORE_READ", 3)  # lines arrive in pieces
    writer = (
        "import sys, time\n"
        "out = sys.stdout.buffer\n"
        "out.write(b'[1, '); out.flush(); time.sleep(0.2)\n"
        "out.write(b'2]\\n[3]\\n[4'); out.flush(); time.sleep(0.2)\n"
        "out.write(b']\\ncut')\n"  # a last line never ended is not a line
    )
    with tempfile.TemporaryFile() as file:
        child = subprocess.Popen([sys.executable, "-c", writer], stdout=file)
        try:
            lines = list(strategies._lines_written(file.fileno(), child))
        finally:
            child.wait()
    assert lines == [b"[1, 2]", b"[3]", b"[4]"]
