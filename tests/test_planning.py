"""The plan: every case means what it says, coverage is complete (rules, values, pairs checked
without covertable), it is deterministic for a seed, and the budget cuts in its stated order."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conformance.cli import main_entry
from conformance.contract.loader import load_contract
from conformance.contract.oracle import parse_body, request_violations
from conformance.contract.profiles import load_profile
from conformance.errors import SetupError
from conformance.generation.cases import ANY_MODEL, MALFORMED_AUTH
from conformance.generation.planning import (
    CUT_ORDER,
    DEFAULT,
    Plan,
    build_plan,
    pairwise_factors,
    spends,
)

CONTRACT = load_contract()
OPENAI = load_profile("openai")


@pytest.fixture(scope="module")
def plan() -> Plan:
    return build_plan(OPENAI)


def broken(body: object) -> list[str]:
    return [v.rule for v in request_violations(body)]


def valid_bodies(plan: Plan, model: str) -> list[dict]:
    return [c.body for c in plan.cases if c.model == model and c.kind == "valid"]


def test_valid_cases_break_nothing_fit_the_schema_and_are_priced(plan: Plan) -> None:
    validator = CONTRACT.validator("request")
    valid = [c for c in plan.cases if c.kind == "valid"]
    assert len(valid) > 100
    for case in valid:
        assert broken(case.body) == [], case.id
        assert validator.is_valid(case.body), case.id
        assert (case.rule, case.expect, case.level) == ("request.valid.accepted", "accept", "MUST")
        n = case.body.get("n") or 1
        assert case.images == n
        price = OPENAI.price(case.model, case.body.get("quality"), case.body.get("size"))
        assert case.cost == (None if price is None else pytest.approx(price * n))


def test_invalid_cases_break_exactly_their_rule_at_the_profile_level(plan: Plan) -> None:
    rules = OPENAI.rules()
    invalid = [c for c in plan.cases if c.kind == "invalid"]
    for case in invalid:
        assert broken(case.body) == [case.rule], case.id
        assert case.expect == "reject"
        assert case.level == rules[case.rule].level
        assert case.model in rules[case.rule].models
        assert case.origin == ("must-reject" if case.level == "MUST" else "should-reject")
    levels = {c.rule: c.level for c in invalid}
    for should in (
        "request.unknown_field",
        "request.prompt.empty",
        "request.quality.model",
        "request.output_compression.png",
    ):
        assert levels[should] == "SHOULD"


def test_every_must_reject_rule_is_broken_for_every_model_it_applies_to(plan: Plan) -> None:
    for rule in OPENAI.rules().values():
        if rule.kind != "reject" or not rule.id.startswith("request."):
            continue
        if not rule.per_model:
            assert any(c.rule == rule.id and c.model == ANY_MODEL for c in plan.cases), rule.id
            continue
        for model in rule.models:
            assert any(
                c.rule == rule.id and c.model == model and c.kind == "invalid" for c in plan.cases
            ), (rule.id, model)
    rules = OPENAI.rules()
    for model in OPENAI.models:
        # usage.schema is judged where usage is present: not on models whose answers carry none.
        usage = model in rules["response.usage.present"].models
        expected = [] if usage else ["response.usage.schema"]
        assert plan.coverage["models"][model]["must_rules"]["missing"] == expected
        assert plan.coverage["rules"][model]["must"]["missing"] == expected


def test_probes(plan: Plan) -> None:
    probes = {}
    for case in plan.cases:
        if case.kind == "probe":
            probes.setdefault(case.rule, []).append(case)
    for case in probes["request.unsupported_param"]:
        assert broken(case.body) == ["request.unsupported_param"]
        assert (case.expect, case.level) == ("either", "SHOULD")
    assert {c.model for c in probes["request.unsupported_param"]} == set(OPENAI.models)
    for case in probes["request.body.not_json"]:
        assert case.model == ANY_MODEL and case.raw is not None
        assert parse_body(case.content())[1] is not None
    for case in probes["request.body.not_object"]:
        assert not isinstance(json.loads(case.content()), dict)
    for case in probes["request.model.unknown"]:
        assert broken(case.body) == ["request.model.unknown"]
    shared = {r: [c.auth for c in probes[r] if c.model == ANY_MODEL] for r in probes}
    assert shared["auth.missing"] == ["missing"]
    assert shared["auth.wrong"] == ["wrong"]
    for rule in ("auth.missing", "auth.wrong", "request.body.not_json", "request.model.unknown"):
        assert all(c.expect == "reject" and c.level == "MUST" for c in probes[rule])
    (default,) = probes["request.model.default"]
    assert "model" not in default.body and default.expect == "accept"
    (slash,) = probes["transport.trailing_slash"]
    assert slash.path_suffix == "/" and slash.expect == "accept" and slash.level == "SHOULD"


def test_every_value_of_every_field_per_model(plan: Plan) -> None:
    """Values read here from the schema itself, not from the planner's value spaces."""
    request = CONTRACT.schemas["request"]
    for model in OPENAI.models:
        spec = CONTRACT.models[model]
        bodies = valid_bodies(plan, model)
        seen: dict[str, list] = {}
        for body in bodies:
            for key, value in body.items():
                seen.setdefault(key, []).append(value)
        for param in spec.params:
            assert None in seen.get(param, []), (model, param, "null")
        for param, values in spec.enums.items():
            for value in values:
                assert value in seen[param], (model, param, value)
        assert {1, spec.n_max} <= set(seen["n"])
        if spec.is_gpt:
            for param in ("output_compression", "partial_images"):
                bounds = request["properties"][param]["anyOf"][1]
                for value in range(bounds["minimum"], bounds["maximum"] + 1):
                    if param == "partial_images" or value in (bounds["minimum"], bounds["maximum"]):
                        assert value in seen[param], (model, param, value)
            assert True in seen["stream"] and False in seen["stream"]
        if spec.custom_sizes is not None:
            custom = [s for s in seen["size"] if s not in spec.sizes and s is not None]
            assert len(set(custom)) >= 2
            for size in custom:
                assert spec.custom_sizes.is_safe(*map(int, size.split("x")))
        prompts = [b["prompt"] for b in bodies]
        at_limit = [p for p in prompts if len(p) == spec.prompt_max_chars]
        assert at_limit and any(len(p.encode()) > len(p) for p in at_limit)
        over = [
            c.body["prompt"]
            for c in plan.cases
            if c.model == model and c.rule == "request.prompt.max_length"
        ]
        assert {len(p) for p in over} == {spec.prompt_max_chars + 1}
        assert plan.coverage["models"][model]["values"]["missing"] == []


def test_n_boundaries(plan: Plan) -> None:
    def invalid_ns(model: str) -> set:
        return {
            c.body["n"]
            for c in plan.cases
            if c.model == model and c.kind == "invalid" and c.rule.startswith("request.n.")
        }

    assert {0, 11} <= invalid_ns("gpt-image-1")
    assert {0, 2, 11} <= invalid_ns("dall-e-3")
    assert 10 in {b.get("n") for b in valid_bodies(plan, "dall-e-2")}


def _feasible_pairs(model: str) -> set[tuple]:
    """Every pair of pairwise values that some valid request holds, by brute force."""
    spec = CONTRACT.models[model]
    factors = pairwise_factors(spec)
    names = list(factors)
    pairs = set()
    for row in itertools.product(*(range(len(factors[p])) for p in names)):
        body = {"model": model, "prompt": "x"}
        for param, index in zip(names, row, strict=True):
            if index:  # 0 is the default: left out
                body[param] = factors[param][index]
        if not request_violations(body):
            pairs.update(itertools.combinations(zip(names, row, strict=True), 2))
    return pairs


def _plan_pairs(plan: Plan, model: str) -> set[tuple]:
    factors = pairwise_factors(CONTRACT.models[model])
    out = set()
    for body in valid_bodies(plan, model):
        cells = []
        for param, values in factors.items():
            value = body.get(param)
            if value is None:
                cells.append((param, 0))
                continue
            matches = [
                i
                for i, v in enumerate(values)
                if v is not DEFAULT and v == value and type(v) is type(value)
            ]
            if matches:
                cells.append((param, matches[0]))
        out.update(itertools.combinations(cells, 2))
    return out


@pytest.mark.parametrize("model", ["dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-2"])
def test_all_feasible_pairs_are_covered(plan: Plan, model: str) -> None:
    feasible = _feasible_pairs(model)
    assert feasible
    assert feasible - _plan_pairs(plan, model) == set()
    # The array is near its lower bound (the two largest fields' product), far below all
    # combinations.
    pairwise = [c for c in plan.cases if c.model == model and c.origin == "pairwise"]
    sizes = sorted(len(v) for v in pairwise_factors(CONTRACT.models[model]).values())
    assert len(pairwise) <= 1.6 * sizes[-1] * sizes[-2]
    assert len(pairwise) * 5 < len(list(itertools.product(*map(range, sizes))))


def test_streaming_cases_for_gpt_models(plan: Plan) -> None:
    for model in OPENAI.models:
        if not CONTRACT.models[model].is_gpt:
            continue
        streams = [b for b in valid_bodies(plan, model) if b.get("stream") is True]
        assert {b.get("partial_images") for b in streams} >= {0, 1, 2, 3}


def test_cases_are_small_unless_size_or_quality_is_the_point(plan: Plan) -> None:
    for case in plan.cases:
        if case.kind == "invalid" and case.model != ANY_MODEL:
            assert case.body.get("quality") in ("low", "standard") or "quality" in case.title
    assert plan.coverage["models"]["gpt-image-1"]["must_rules"]["exercised"] > 20


def test_ids_unique_and_deterministic_for_a_seed() -> None:
    first = build_plan(OPENAI, seed=3, explore=3)
    again = build_plan(OPENAI, seed=3, explore=3)
    other = build_plan(OPENAI, seed=4, explore=3)
    assert [c.id for c in first.cases] == [c.id for c in again.cases]
    assert first.to_dict() == again.to_dict()
    assert len({c.id for c in first.cases}) == len(first.cases)
    assert [c.body for c in first.cases] != [c.body for c in other.cases]
    drawn = [[c.body for c in p.cases if c.origin == "explore"] for p in (first, again, other)]
    assert len(drawn[0]) == 3 * len(OPENAI.models)
    assert drawn[0] == drawn[1]
    # Each half starts with Hypothesis's simplest example, whatever the seed; the rest differ.
    for model in OPENAI.models:
        mine = [[b for b in bodies if b["model"] == model] for bodies in drawn]
        assert mine[0][2] != mine[2][2]


def test_fast_enough_for_every_run() -> None:
    started = time.perf_counter()
    build_plan(OPENAI, seed=12345)  # a seed no other test uses: no cached covering array
    assert time.perf_counter() - started < 1.5


def test_explore_is_labelled_by_the_oracle() -> None:
    plan = build_plan(OPENAI, models=["gpt-image-1", "dall-e-3"], seed=5, explore=12)
    rules = OPENAI.rules()
    explored = [c for c in plan.cases if c.origin == "explore"]
    assert len(explored) == 24
    assert [c.kind == "valid" for c in explored] == [True, False] * 12  # drawn alternately
    fixed = {json.dumps(c.body, sort_keys=True) for c in plan.cases if c.origin != "explore"}
    drawn = [json.dumps(c.body, sort_keys=True) for c in explored]
    assert len(set(drawn)) == len(drawn) and not fixed & set(drawn)
    for case in explored:
        rules_broken = broken(case.body)
        assert case.level == rules[case.rule].level
        if case.kind == "valid":
            assert rules_broken == [] and case.expect == "accept"
            assert case.images == (case.body.get("n") or 1)
            price = OPENAI.price(case.model, case.body.get("quality"), case.body.get("size"))
            assert case.cost == (None if price is None else pytest.approx(price * case.images))
        else:
            musts = [r for r in rules_broken if rules[r].level == "MUST"]
            assert case.rule == (musts or rules_broken)[0]
            assert case.expect == ("either" if case.kind == "probe" else "reject")
            assert "\n" not in case.title


def test_explore_spends_only_within_the_image_budget() -> None:
    models = ["gpt-image-1", "dall-e-2"]
    fixed = build_plan(OPENAI, models=models, seed=6)
    explored = build_plan(OPENAI, models=models, seed=6, explore=10)
    extra = explored.images - fixed.images
    assert extra > 1
    for budget, kept in ((fixed.images, 0), (fixed.images + extra // 2, extra // 2)):
        plan = build_plan(OPENAI, models=models, seed=6, explore=10, max_images=budget)
        assert plan.images <= budget
        assert {c.origin for c in plan.cut} == {"explore"}  # only draws are cut for them
        spent = sum(c.images for c in plan.cases if c.origin == "explore" and spends(c))
        assert kept - max(c.images for c in plan.cut) < spent <= kept
        # Invalid draws stay: a conformant server generates nothing for them.
        assert [c for c in plan.cases if c.origin == "explore" and not spends(c)] == [
            c for c in explored.cases if c.origin == "explore" and not spends(c)
        ]


def test_budget_cuts_in_the_stated_order() -> None:
    full = build_plan(OPENAI, explore=2)
    plan = build_plan(OPENAI, explore=2, max_cost=3.0)
    assert plan.cost <= 3.0
    assert plan.cut
    order = [CUT_ORDER.index(_group(c)) for c in plan.cut]
    assert order == sorted(order)
    assert "negative" not in {_group(c) for c in plan.cut}
    assert all(spends(c) for c in plan.cut)
    # Nothing lost or invented: kept + cut is the full plan.
    assert sorted(c.id for c in plan.cases + plan.cut) == sorted(c.id for c in full.cases)
    assert plan.coverage["cut"]["cases"] == len(plan.cut)
    assert plan.images + sum(c.images for c in plan.cut) == full.images
    # Unknown prices cannot be bounded by cost: those cases stay.
    assert all(c.cost is not None for c in plan.cut)
    assert plan.cost_unknown_images == full.cost_unknown_images
    # Explore goes first.
    assert plan.cut[0].origin == "explore"


def test_budget_in_images_and_the_free_negative_cases() -> None:
    plan = build_plan(OPENAI, max_images=0)
    assert plan.images == 0
    assert all(not spends(c) for c in plan.cases)
    negatives = [c for c in build_plan(OPENAI).cases if not spends(c)]
    assert len(plan.cases) == len(negatives)
    assert plan.worst_images > 0
    small = build_plan(OPENAI, max_images=40)
    assert small.images <= 40
    kinds = {c.origin for c in small.cases if spends(c)}
    assert "boundary" in kinds  # boundaries are the last to go


def _group(case) -> str:
    from conformance.generation.planning import _group as group

    return group(case)


def test_unsupported_features_expect_a_clean_rejection(tmp_path: Path) -> None:
    data = yaml.safe_load(OPENAI.file.read_text())
    data.update(name="no-extras", unsupported=["stream", "size=custom", "n>1"])
    path = tmp_path / "no-extras.yaml"
    path.write_text(yaml.safe_dump(data))
    plan = build_plan(load_profile(str(path)), models=["gpt-image-2"])
    refused = [c for c in plan.cases if c.kind == "valid" and c.expect == "reject"]
    assert refused
    for case in refused:
        body = case.body
        uses = {
            "stream": body.get("stream") is True,
            "size=custom": body.get("size") not in (*CONTRACT.models["gpt-image-2"].sizes, None),
            "n>1": (body.get("n") or 1) > 1,
        }
        assert {f"unsupported:{f}" for f, used in uses.items() if used} == set(case.tags)
    accepted = [c for c in plan.cases if c.kind == "valid" and c.expect == "accept"]
    assert accepted and all(not c.tags for c in accepted)


def test_vendor_profile_keeps_its_slash_and_models() -> None:
    vendor = load_profile("applerouter")
    plan = build_plan(vendor)
    assert {c.model for c in plan.cases} == {*vendor.models, ANY_MODEL}
    assert not any(c.rule == "transport.trailing_slash" for c in plan.cases)


def test_setup_errors() -> None:
    with pytest.raises(SetupError, match="not a model of profile applerouter"):
        build_plan(load_profile("applerouter"), models=["gpt-image-2"])
    with pytest.raises(SetupError):
        build_plan(OPENAI, max_cost=-1)


def test_plan_command_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_entry(["plan", "--models", "gpt-image-1,gpt-image-2", "--max-cost", "1"]) == 0
    out = capsys.readouterr().out
    assert "gpt-image-1:" in out and "gpt-image-2:" in out
    assert "images" in out and "$" in out
    assert "No price for gpt-image-2" in out
    assert "Cut by the budget" in out
    assert ", then ".join(CUT_ORDER[1:]) in out and "never cuts negative cases" in out
    assert "request.n.max: n=11" in out


def test_plan_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_entry(["plan", "--models", "dall-e-3", "--json", "--seed", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["models"] == ["dall-e-3"] and data["seed"] == 2
    assert data["requests"] == len(data["cases"])
    assert data["coverage"]["models"]["dall-e-3"]["pairs"]["covered"] > 0


def test_plan_command_bad_model_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_entry(["plan", "--models", "dall-e-9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dall-e-9" in err
    assert main_entry(["plan", "--seed", "x"]) == 2


_PLAN_EXPLORE = ["plan", "--explore", "5", "--models", "dall-e-3", "--seed", "3"]


def test_plan_command_with_explore_is_stable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_entry(_PLAN_EXPLORE) == 0
    here = capsys.readouterr().out
    assert "valid (25: control 1, boundary 2, pairwise 17, each-choice 2, explore 3)" in here
    assert "explore 2)" in here
    code = "import sys; from conformance.cli import main_entry; sys.exit(main_entry(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, *_PLAN_EXPLORE],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "99"},
        check=True,
    )
    assert done.stdout == here


# --- auth per model, the custom-size zone, foreign qualities, partial_images -----------------


def test_auth_is_probed_per_model_and_on_a_streamed_request(plan: Plan) -> None:
    rules = OPENAI.rules()
    ways = {"missing": "auth.missing", "wrong": "auth.wrong"}
    ways.update({auth: "auth.wrong" for auth in MALFORMED_AUTH})
    for model in OPENAI.models:
        spec = CONTRACT.models[model]
        mine = [c for c in plan.cases if c.model == model and c.rule.startswith("auth.")]
        got = {(c.auth, c.stream) for c in mine}
        paths = (False, True) if spec.takes("stream") else (False,)
        assert got == {(auth, stream) for auth in ways for stream in paths}, model
        assert len(mine) == len(got)
        base = next(c.body for c in mine if not c.stream)
        for case in mine:
            assert case.rule == ways[case.auth] and case.level == rules[case.rule].level
            assert (case.kind, case.expect, case.origin) == ("probe", "reject", "probe")
            assert broken(case.body) == [], case.id
            assert case.body == ({**base, "stream": True} if case.stream else base)
            # Free on a conformant server, but the worst case is reserved like any negative case.
            assert not spends(case) and case.images == 1
            price = OPENAI.price(model, case.body.get("quality"), case.body.get("size"))
            assert case.cost == (None if price is None else pytest.approx(price))
    assert plan.worst_images >= sum(c.images for c in plan.cases if c.rule.startswith("auth."))


def test_gpt_image_2_custom_sizes_span_the_safe_zone(plan: Plan) -> None:
    """Properties, not a list: the zone's extremes, sides on the step but off the 64 grid,
    wide and tall shapes, and sizes above 2 megapixels, all within the safe zone."""
    for model in ("gpt-image-2", "gpt-image-2-2026-04-21"):
        spec = CONTRACT.models[model]
        zone = spec.custom_sizes
        assert zone is not None
        sizes = {
            tuple(map(int, b["size"].split("x")))
            for b in valid_bodies(plan, model)
            if isinstance(b.get("size"), str) and b["size"] not in spec.sizes
        }
        assert all(zone.is_safe(w, h) for w, h in sizes), sizes
        low, high = zone.safe_min_edge, zone.safe_max_edge
        short = int(high / zone.safe_max_aspect)
        assert {(low, low), (high, high), (high, short), (short, high)} <= sizes
        off_grid = [(w, h) for w, h in sizes if w % 64 and h % 64]
        assert any(w > h for w, h in off_grid) and any(h > w for w, h in off_grid)
        assert all(w % zone.multiple_of == 0 and h % zone.multiple_of == 0 for w, h in sizes)
        large = [(w, h) for w, h in sizes if w * h > 2_000_000]
        assert any(w > h for w, h in large) and any(h > w for w, h in large)
        assert any(w == h for w, h in large)


def test_custom_sizes_added_later_keep_the_earlier_cases_ids(plan: Plan) -> None:
    """The zone's corners and the other fields come first among the each-choice cases, so
    their ids (which reports are compared by) did not move when more sizes were planned."""
    from conformance.generation.strategies import custom_size_corners

    spec = CONTRACT.models["gpt-image-2"]
    corners = set(custom_size_corners(spec.custom_sizes))
    each = [c for c in plan.cases if c.model == spec.name and c.origin == "each-choice"]
    assert [c.id for c in each] == [
        f"{spec.name}/valid/each-choice/{i:02d}" for i in range(1, len(each) + 1)
    ]
    inner = [
        i for i, c in enumerate(each) if c.body.get("size") not in (*spec.sizes, *corners, None)
    ]
    assert inner and inner == list(range(len(each) - len(inner), len(each)))


def test_every_quality_of_the_enum_but_not_of_the_model_is_sent_to_every_model(
    plan: Plan,
) -> None:
    enum = set(CONTRACT.enum_fields["quality"])
    for model in OPENAI.models:
        foreign = enum - set(CONTRACT.models[model].qualities)
        assert foreign, model
        sent = [c for c in plan.cases if c.model == model and c.rule == "request.quality.model"]
        assert {c.body["quality"] for c in sent} == foreign, model
        for case in sent:
            assert broken(case.body) == ["request.quality.model"]
            assert case.images == 1 and case.expect == "reject"


def test_partial_images_out_of_range_is_sent_with_and_without_stream(plan: Plan) -> None:
    request = CONTRACT.schemas["request"]["properties"]["partial_images"]["anyOf"][1]
    outside = {request["minimum"] - 1, request["maximum"] + 1}
    for model in OPENAI.models:
        if not CONTRACT.models[model].takes("partial_images"):
            continue
        sent = {
            (c.body["partial_images"], c.stream)
            for c in plan.cases
            if c.model == model and c.rule == "request.partial_images.range"
        }
        assert sent == {(v, stream) for v in outside for stream in (False, True)}, model


def test_a_plan_without_explore_never_imports_hypothesis():
    code = (
        "import sys; from conformance.generation.planning import build_plan; "
        "from conformance.contract.profiles import load_profile; build_plan(load_profile()); "
        "import conformance.engine.runner; print('hypothesis' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_explore_drawn_while_sending_completes_to_the_plan_drawn_whole() -> None:
    from conformance.generation.planning import complete_plan

    for budget in ({}, {"max_images": 40}):
        whole = build_plan(OPENAI, models=["gpt-image-1", "dall-e-2"], seed=2, explore=10, **budget)
        later = build_plan(
            OPENAI,
            models=["gpt-image-1", "dall-e-2"],
            seed=2,
            explore=10,
            explore_later=True,
            **budget,
        )
        assert later.explore is not None
        assert not any(c.origin == "explore" for c in later.cases)
        batches = list(later.explore)
        assert len(batches) == 2  # one per model, as each is drawn
        done = complete_plan(later, [c for b in batches for c in b], later.explore.cut)
        assert [c.to_dict() for c in done.cases] == [c.to_dict() for c in whole.cases]
        assert [c.id for c in done.cut] == [c.id for c in whole.cut]
        assert done.coverage == whole.coverage
    assert any(c.origin == "explore" for c in whole.cut)  # the budget cut some drawn cases


def test_explore_cases_get_what_the_budget_leaves_in_the_order_drawn() -> None:
    fixed = build_plan(OPENAI, models=["gpt-image-1"], seed=2)
    room = 6
    plan = build_plan(
        OPENAI, models=["gpt-image-1"], seed=2, explore=12, max_images=fixed.images + room
    )
    kept = [c for c in plan.cases if c.origin == "explore"]
    cut = [c for c in plan.cut if c.origin == "explore"]
    assert [c.id for c in plan.cases if c.origin != "explore"] == [c.id for c in fixed.cases]
    assert sum(c.images for c in kept if spends(c)) <= room
    # First fit: a cut case would not have fitted when its turn came.
    used = 0
    by_id = {c.id: c for c in kept + cut}
    for ident in sorted(by_id, key=lambda i: int(i.rsplit("/", 1)[1])):
        case = by_id[ident]
        if case in kept:
            used += case.images if spends(case) else 0
        else:
            assert used + case.images > room
    assert plan.images <= fixed.images + room


def test_covering_arrays_are_kept_for_the_next_run_and_a_damaged_one_is_made_again(
    tmp_path, monkeypatch
) -> None:
    from conformance.generation import planning

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    planning._cached_array.cache_clear()
    first = build_plan(OPENAI, models=["gpt-image-1", "dall-e-3"], seed=9)
    stored = sorted((tmp_path / "imgconf" / "arrays").glob("*.json"))
    assert stored
    # The next run reads them: nothing is made again.
    planning._cached_array.cache_clear()
    made = planning._make_array
    monkeypatch.setattr(planning, "_make_array", lambda *a: pytest.fail("made again"))
    again = build_plan(OPENAI, models=["gpt-image-1", "dall-e-3"], seed=9)
    assert [c.to_dict() for c in again.cases] == [c.to_dict() for c in first.cases]
    # A damaged file is made again, the same.
    stored[0].write_text('[[0, 99, "x"]]')
    planning._cached_array.cache_clear()
    monkeypatch.setattr(planning, "_make_array", made)
    mended = build_plan(OPENAI, models=["gpt-image-1", "dall-e-3"], seed=9)
    assert [c.to_dict() for c in mended.cases] == [c.to_dict() for c in first.cases]
    planning._cached_array.cache_clear()


def test_a_run_that_draws_while_it_sends_reports_the_plan_imgconf_plan_states(
    imgconf_run, capsys: pytest.CaptureFixture[str]
) -> None:
    from conformance.redact import safe_document
    from conformance.reports.document import elide

    args = ["--explore", "5", "--models", "dall-e-3", "--seed", "3", "--endpoint", "generations"]
    assert main_entry(["plan", "--json", *args]) == 0
    planned = json.loads(capsys.readouterr().out)
    status, report = imgconf_run(*args)
    assert status == 0
    sent = {c["id"]: c["request"].get("body") for c in report["cases"]}
    bodies = {c["id"]: elide(c["body"]) if c["raw"] is None else None for c in planned["cases"]}
    assert sent == safe_document(bodies)  # as every report writes text
    assert report["plan"]["by_origin"]["explore"] == 5
    assert report["plan"]["coverage"] == planned["coverage"]


def test_drawn_cases_are_numbered_on_across_lines(monkeypatch) -> None:
    from conformance.generation import planning

    def in_lines(*args, **kwargs):  # three bodies a line, as a long draw comes
        model, bodies = "dall-e-2", [{"model": "dall-e-2", "prompt": f"p{i}"} for i in range(7)]
        for start in range(0, len(bodies), 3):
            yield model, bodies[start : start + 3], start + 1

    monkeypatch.setattr(planning, "explore_stream", in_lines)
    plan = build_plan(OPENAI, models=["dall-e-2"], explore=7)
    ids = [c.id for c in plan.cases if c.origin == "explore"]
    assert ids == [f"dall-e-2/explore/{i:02d}" for i in range(1, 8)]
