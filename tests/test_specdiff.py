"""`imgconf spec-diff`: every kind of spec change shows up, in its area, and nothing else does.

The fixture ``faithful.yaml`` states the contract's facts; each test mutates a copy and asserts
the exact differences reported. The real OpenAI spec, when present, is parsed once per session.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main_entry
from conformance.cli.spec_diff import spec_diff
from conformance.contract.loader import load_contract
from conformance.contract.specdiff import (
    Difference,
    SpecDiff,
    diff_spec,
    load_openapi,
)
from conformance.errors import SetupError

SPECS = Path(__file__).parent / "fixtures" / "specs"
FAITHFUL = SPECS / "faithful.yaml"
REPO = Path(__file__).resolve().parent.parent
REAL_SPEC = Path(
    os.environ.get("IMGCONF_OPENAI_SPEC", REPO.parent / "shared" / "openai-spec" / "openapi.yaml")
)

Spec = dict[str, Any]


@pytest.fixture(scope="module")
def faithful() -> Spec:
    return yaml.safe_load(FAITHFUL.read_text())


def request_props(spec: Spec) -> dict[str, Any]:
    return spec["components"]["schemas"]["CreateImageRequest"]["properties"]


def schemas(spec: Spec) -> dict[str, Any]:
    return spec["components"]["schemas"]


def diff(spec: Spec) -> SpecDiff:
    return diff_spec(spec, load_contract(), "fixture")


def changed(faithful: Spec, mutate: Callable[[Spec], None]) -> list[Difference]:
    spec = copy.deepcopy(faithful)
    mutate(spec)
    return diff(spec).differences


def lines(found: list[Difference]) -> list[tuple[str, str]]:
    return [(d.area, d.line()) for d in found]


# --- the faithful spec ---------------------------------------------------------------------------


def test_the_faithful_fixture_agrees_with_the_contract(faithful: Spec) -> None:
    result = diff(faithful)
    assert result.differences == []
    assert result.summary().startswith("no differences: the contract matches this spec")


def test_declared_deviations_are_reported_as_known(faithful: Spec) -> None:
    known = {d.where: d for d in diff(faithful).known_deviations}
    assert {"response.data", "response.size enum", "request.user nullable"} <= set(known)
    assert "exactly n items" in (known["response.data"].deviation or "")
    assert known["response.size enum"].area == "response"


def test_removing_a_deviation_note_makes_it_a_difference(faithful: Spec, tmp_path: Path) -> None:
    data = tmp_path / "schemas"
    shutil.copytree(load_contract().directory, data)
    response = data / "images.generations.response.schema.json"
    schema = json.loads(response.read_text())
    del schema["properties"]["size"]["x-imgconf-deviation"]
    response.write_text(json.dumps(schema))
    result = diff_spec(faithful, load_contract(data), "fixture")
    assert lines(result.differences) == [
        (
            "response",
            "response.size enum: spec: 1024x1024, 1024x1536, 1536x1024; "
            "contract: any string matching ^[1-9][0-9]*x[1-9][0-9]*$",
        )
    ]


def _nullable_as_type_list(node: Any) -> None:
    """Rewrite OpenAPI 3.0 ``nullable: true`` as 3.1 ``type: [t, "null"]`` (in place)."""
    if isinstance(node, dict):
        if node.pop("nullable", False):
            if "type" in node:
                node["type"] = [node["type"], "null"]
            else:
                node["anyOf"] = [*node.get("anyOf", []), {"type": "null"}]
        for value in node.values():
            _nullable_as_type_list(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_as_type_list(value)


def _nullable_as_any_of(node: Any) -> None:
    """Rewrite ``nullable: true`` as ``anyOf: [<the node>, {type: null}]`` (in place)."""
    if isinstance(node, dict):
        for value in node.values():
            _nullable_as_any_of(value)
        if node.pop("nullable", False):
            inner = dict(node)
            default = inner.pop("default", None)
            node.clear()
            node["anyOf"] = [inner, {"type": "null"}]
            if default is not None:
                node["default"] = default
    elif isinstance(node, list):
        for value in node:
            _nullable_as_any_of(value)


@pytest.mark.parametrize("rewrite", [_nullable_as_type_list, _nullable_as_any_of])
def test_openapi_3_0_and_3_1_nulls_read_the_same(faithful: Spec, rewrite: Callable) -> None:
    spec = copy.deepcopy(faithful)
    rewrite(spec)
    assert "nullable" not in json.dumps(spec)
    assert diff(spec).differences == []


def test_dropping_nullable_is_a_difference(faithful: Spec) -> None:
    found = changed(faithful, lambda s: request_props(s)["style"].pop("nullable"))
    assert lines(found) == [
        ("request fields", "request.style nullable: spec: not nullable; contract: nullable")
    ]


def test_a_json_spec_reads_like_yaml(faithful: Spec, tmp_path: Path) -> None:
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(faithful))
    assert load_openapi(path) == faithful


# --- one change each -----------------------------------------------------------------------------


def _add_model(spec: Spec) -> None:
    request_props(spec)["model"]["anyOf"][1]["enum"].append("gpt-image-3")


def _drop_model(spec: Spec) -> None:
    request_props(spec)["model"]["anyOf"][1]["enum"].remove("dall-e-2")


CHANGES: dict[str, tuple[Callable[[Spec], None], list[tuple[str, str]]]] = {
    "added model": (
        _add_model,
        [("models", "model gpt-image-3: spec: listed; contract: unknown to the contract")],
    ),
    "removed model": (
        _drop_model,
        [("models", "model dall-e-2: spec: no longer listed; contract: a contract model")],
    ),
    "model default": (
        lambda s: request_props(s)["model"].update(default="gpt-image-1"),
        [("models", 'request.model default: spec: "gpt-image-1"; contract: "dall-e-2"')],
    ),
    "removed enum value": (
        lambda s: request_props(s)["quality"]["enum"].remove("hd"),
        [
            (
                "enums",
                "request.quality enum: spec: standard, low, medium, high, auto; "
                "contract: standard, hd, low, medium, high, auto (not in spec: hd)",
            )
        ],
    ),
    "added enum value": (
        lambda s: request_props(s)["background"]["enum"].append("blurred"),
        [
            (
                "enums",
                "request.background enum: spec: transparent, opaque, auto, blurred "
                "(not in contract: blurred); contract: transparent, opaque, auto",
            )
        ],
    ),
    "added size": (
        lambda s: request_props(s)["size"]["anyOf"][1]["enum"].append("2048x2048"),
        [
            (
                "enums",
                "request.size enum: spec: auto, 1024x1024, 1536x1024, 1024x1536, 256x256, "
                "512x512, 1792x1024, 1024x1792, 2048x2048 (not in contract: 2048x2048); "
                "contract: 256x256, 512x512, 1024x1024, 1792x1024, 1024x1792, 1536x1024, "
                "1024x1536, auto (all models' sizes)",
            )
        ],
    ),
    "changed bound": (
        lambda s: request_props(s)["n"].update(maximum=8),
        [
            ("bounds", "request.n maximum: spec: 8; contract: 10"),
            ("prose rules", "dall-e-2 n maximum: spec: 8; contract: 10"),
            ("prose rules", "gpt-image-1 n maximum: spec: 8; contract: 10"),
            ("prose rules", "gpt-image-1-mini n maximum: spec: 8; contract: 10"),
            ("prose rules", "gpt-image-1.5 n maximum: spec: 8; contract: 10"),
            ("prose rules", "gpt-image-2 n maximum: spec: 8; contract: 10"),
            ("prose rules", "gpt-image-2-2026-04-21 n maximum: spec: 8; contract: 10"),
        ],
    ),
    "bound in an anyOf branch": (
        lambda s: schemas(s)["PartialImages"]["anyOf"][0].update(maximum=5),
        [("bounds", "request.partial_images maximum: spec: 5; contract: 3")],
    ),
    "bound stated in prose": (
        lambda s: request_props(s)["output_compression"].update(description="Level (0-90%)."),
        [
            (
                "bounds",
                "request.output_compression maximum: spec: 90 (in the description); contract: 100",
            )
        ],
    ),
    "bound stated nowhere": (
        lambda s: request_props(s)["output_compression"].update(description="Level."),
        [
            ("bounds", "request.output_compression minimum: spec: none; contract: 0"),
            ("bounds", "request.output_compression maximum: spec: none; contract: 100"),
        ],
    ),
    "changed prose limit": (
        lambda s: request_props(s)["prompt"].update(
            description=request_props(s)["prompt"]["description"].replace("4000", "4096")
        ),
        [
            (
                "prose rules",
                "dall-e-3 prompt max length: spec: 4096 characters; contract: 4000 characters",
            )
        ],
    ),
    "new request field": (
        lambda s: request_props(s).update(seed={"type": "integer"}),
        [
            (
                "request fields",
                "request.seed: spec: has the field (integer); contract: no such field",
            )
        ],
    ),
    "dropped request field": (
        lambda s: request_props(s).pop("moderation"),
        [("request fields", "request.moderation: spec: no such field; contract: has the field")],
    ),
    "type": (
        lambda s: request_props(s)["stream"].update(type="string"),
        [("request fields", "request.stream type: spec: string; contract: boolean")],
    ),
    "default": (
        lambda s: request_props(s)["style"].update(default="natural"),
        [("request fields", 'request.style default: spec: "natural"; contract: "vivid"')],
    ),
    "newly required": (
        lambda s: schemas(s)["CreateImageRequest"]["required"].append("model"),
        [("request fields", "request.model: spec: required; contract: optional")],
    ),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_each_change_is_reported_in_its_area(faithful: Spec, name: str) -> None:
    mutate, expected = CHANGES[name]
    assert lines(changed(faithful, mutate)) == expected


def _reword(field: str, old: str, new: str) -> Callable[[Spec], None]:
    def mutate(spec: Spec) -> None:
        props = request_props(spec)
        assert old in props[field]["description"], old
        props[field]["description"] = props[field]["description"].replace(old, new)

    return mutate


PROSE: dict[str, tuple[Callable[[Spec], None], list[str]]] = {
    "dall-e-3 n limit raised": (
        _reword("n", "only `n=1`", "only `n=2`"),
        ["dall-e-3 n maximum: spec: 2; contract: 1"],
    ),
    "dall-e-3 n sentence gone": (
        _reword("n", "For `dall-e-3`, only `n=1` is supported.", ""),
        [
            "request.n.description: spec: sentence not found ('For `<model>`, only `n=N` is "
            "supported'): the prose changed, check it by hand; contract: limited: dall-e-3",
            "dall-e-3 n maximum: spec: 10; contract: 1",
        ],
    ),
    "prompt sentence gone": (
        _reword("prompt", "characters", "chars"),
        [
            "request.prompt.description: spec: sentence not found ('N characters for <model>'): "
            "the prose changed, check it by hand; contract: dall-e-2 1000, dall-e-3 4000, "
            "gpt-image-1 32000, gpt-image-1-mini 32000, gpt-image-1.5 32000, gpt-image-2 32000, "
            "gpt-image-2-2026-04-21 32000"
        ],
    ),
    "custom sizes divisible by 8": (
        _reword("size", "divisible by 16", "divisible by 8"),
        [
            "gpt-image-2 custom size multiple_of: spec: 8; contract: 16",
            "gpt-image-2-2026-04-21 custom size multiple_of: spec: 8; contract: 16",
        ],
    ),
    "custom size aspect widened": (
        _reword("size", "between 1:3 and 3:1", "between 1:4 and 4:1"),
        [
            "gpt-image-2 custom size max_aspect: spec: 4; contract: 3",
            "gpt-image-2-2026-04-21 custom size max_aspect: spec: 4; contract: 3",
        ],
    ),
    "custom size maximum raised": (
        _reword("size", "`3840x2160`", "`4096x2304`"),
        [
            "gpt-image-2 custom size max_edge: spec: 4096; contract: 3840",
            "gpt-image-2-2026-04-21 custom size max_edge: spec: 4096; contract: 3840",
            "gpt-image-2 custom size max_pixels: spec: 9437184; contract: 8294400",
            "gpt-image-2-2026-04-21 custom size max_pixels: spec: 9437184; contract: 8294400",
        ],
    ),
    "custom sizes for one model only": (
        _reword("size", "For `gpt-image-2` and `gpt-image-2-2026-04-21`,", "For `gpt-image-2`,"),
        [
            "models with custom sizes: spec: gpt-image-2; contract: gpt-image-2, "
            "gpt-image-2-2026-04-21 (not in spec: gpt-image-2-2026-04-21)"
        ],
    ),
    "dall-e-2 size list": (
        _reword("size", "`256x256`, `512x512` or", "`512x512` or"),
        [
            "dall-e-2 sizes: spec: 512x512, 1024x1024; contract: 256x256, 512x512, 1024x1024 "
            "(not in spec: 256x256)"
        ],
    ),
    "qualities of dall-e-3": (
        _reword(
            "quality",
            "`standard` and `hd` are supported for `dall-e-3`",
            "`hd` is the only option for `dall-e-3`",
        ),
        [
            "dall-e-3 qualities: spec: auto, hd; contract: auto, hd, standard (not in spec: standard)"
        ],
    ),
    "style offered to another model": (
        _reword("style", "`dall-e-3`", "`dall-e-3` and `dall-e-2`"),
        [
            "models taking style: spec: dall-e-2, dall-e-3 (not in contract: dall-e-2); "
            "contract: dall-e-3"
        ],
    ),
    "GPT family grows": (
        _reword("model", "`gpt-image-1`,", "`gpt-image-1`, `gpt-image-0`,"),
        [
            "GPT image models: spec: gpt-image-1, gpt-image-0, gpt-image-1-mini, gpt-image-1.5, "
            "gpt-image-2, gpt-image-2-2026-04-21 (not in contract: gpt-image-0); contract: "
            "gpt-image-1, gpt-image-1-mini, gpt-image-1.5, gpt-image-2, gpt-image-2-2026-04-21"
        ],
    ),
}


@pytest.mark.parametrize("name", list(PROSE))
def test_prose_rules(faithful: Spec, name: str) -> None:
    mutate, expected = PROSE[name]
    found = changed(faithful, mutate)
    assert {d.area for d in found} == {"prose rules"}
    assert sorted(d.line() for d in found) == sorted(expected)


def test_answer_event_and_error_changes(faithful: Spec) -> None:
    def mutate(spec: Spec) -> None:
        schemas(spec)["ImagesResponse"]["properties"].pop("usage")
        schemas(spec)["ImageGenCompletedEvent"]["required"].remove("usage")
        schemas(spec)["ImageGenStreamEvent"]["anyOf"].append(
            {
                "type": "object",
                "properties": {"type": {"type": "string", "enum": ["image_generation.failed"]}},
            }
        )
        schemas(spec)["Error"]["properties"].pop("param")

    assert lines(changed(faithful, mutate)) == [
        ("response", "response.usage: spec: no such field; contract: has the field"),
        (
            "stream events",
            "event image_generation.failed: spec: defined; contract: unknown to the contract",
        ),
        (
            "stream events",
            "event image_generation.completed.usage: spec: optional; contract: required",
        ),
        ("error", "error.error.param: spec: no such field; contract: has the field"),
    ]
    nested = changed(
        faithful, lambda s: schemas(s)["TokenDetails"]["required"].remove("text_tokens")
    )
    assert [d.where for d in nested] == [
        "response.usage.output_tokens_details.text_tokens",
        "response.usage.input_tokens_details.text_tokens",
        "event image_generation.completed.usage.input_tokens_details.text_tokens",
    ]


def test_a_changed_type_in_the_usage_is_found(faithful: Spec) -> None:
    found = changed(
        faithful,
        lambda s: schemas(s)["ImageGenUsage"]["properties"]["input_tokens"].update(type="number"),
    )
    assert lines(found) == [
        ("response", "response.usage.input_tokens type: spec: number; contract: integer")
    ]


def test_a_spec_without_streaming_says_so(faithful: Spec) -> None:
    def mutate(spec: Spec) -> None:
        content = spec["paths"]["/images/generations"]["post"]["responses"]["200"]["content"]
        content.pop("text/event-stream")

    assert [d.where for d in changed(faithful, mutate)] == ["200 text/event-stream"]


# --- the command ---------------------------------------------------------------------------------


def test_exit_0_when_they_agree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_entry(["spec-diff", str(FAITHFUL)]) == 0
    out = capsys.readouterr().out
    assert (
        out.rstrip().splitlines()[-1].startswith("no differences: the contract matches this spec")
    )
    assert "\nmodels\n  agrees\n" in out


def test_exit_1_and_a_count_when_they_differ(
    faithful: Spec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = copy.deepcopy(faithful)
    _add_model(spec)
    _drop_model(spec)
    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main_entry(["spec-diff", str(path)]) == 1
    out = capsys.readouterr().out
    assert "  - model gpt-image-3: spec: listed; contract: unknown to the contract" in out
    assert re.search(r"^2 differences \(\d+ known deviations\)$", out, re.MULTILINE)

    assert main_entry(["spec-diff", "--json", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [d["where"] for d in report["differences"]] == ["model gpt-image-3", "model dall-e-2"]
    assert report["summary"].startswith("2 differences")
    assert all(d["deviation"] for d in report["known_deviations"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.yaml", None, "no such file"),
        ("garbage.yaml", (SPECS / "garbage.yaml").read_bytes(), "not a YAML or JSON file"),
        ("broken.json", b'{"openapi": "3.1.0", "paths": ', "not a YAML or JSON file"),
        ("binary.yaml", b"\x89PNG\r\n\x1a\n\xff\xfe", "not a YAML or JSON file"),
        ("prose.yaml", b"just some words\n", "not an OpenAPI document"),
        (
            "no-endpoint.yaml",
            (SPECS / "no-endpoint.yaml").read_bytes(),
            "no POST /images/generations",
        ),
        (
            "dangling.yaml",
            b"paths: {/images/generations: {post: {requestBody: {content: {application/json: "
            b'{schema: {$ref: "#/components/schemas/Gone"}}}}}}}',
            "points nowhere",
        ),
    ],
)
def test_unusable_files_are_exit_2_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | None,
    message: str,
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SetupError, match=message):
        spec_diff(path)
    assert main_entry(["spec-diff", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgconf: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


# --- OpenAI's real spec --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_spec_run() -> tuple[int, str, float]:
    if not REAL_SPEC.is_file():
        pytest.skip(f"OpenAI's spec not found at {REAL_SPEC} (set IMGCONF_OPENAI_SPEC to its path)")
    started = time.perf_counter()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main_entry(["spec-diff", str(REAL_SPEC)])
    return status, buffer.getvalue(), time.perf_counter() - started


def test_the_real_spec_is_compared_in_seconds(real_spec_run: tuple[int, str, float]) -> None:
    status, out, seconds = real_spec_run
    assert status in (0, 1), out
    last = out.rstrip().splitlines()[-1]
    assert re.fullmatch(
        r"(no differences: the contract matches this spec|\d+ differences?)( \(.*\))?", last
    )
    assert (status == 0) == last.startswith("no differences")
    assert seconds < 5
