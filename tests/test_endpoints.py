"""The contract of edits and variations as data: schemas, models, file fields, rules.

The facts are held to a hand-written table (what the spec says, read by a person), to the
request schema by validating forms that break one fact each, and to OpenAI's spec file itself
where it is present (tests skip that part cleanly when it is not).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main_entry
from conformance.contract.loader import (
    ENDPOINTS,
    GENERATIONS,
    ContractError,
    load_contract,
    parse_yaml,
    schemas_dir,
)
from conformance.generation.showing import showings
from tests.test_sources import SPEC_DIR

CONTRACT = load_contract()
EDITS = CONTRACT.endpoint("edits")
VARIATIONS = CONTRACT.endpoint("variations")
GPT = ("gpt-image-1.5", "gpt-image-2", "gpt-image-2-2026-04-21", "gpt-image-1", "gpt-image-1-mini")
MIB = 1024 * 1024


def image(
    fmt: str = "png", size: int = 1000, width: int = 256, height: int = 256, alpha: bool = True
) -> dict[str, Any]:
    """A file part as the suite reads it (the schemas' ``$defs/file``)."""
    return {"format": fmt, "bytes": size, "width": width, "height": height, "alpha": alpha}


# --- The endpoints, and generations unchanged ---------------------------------------------------


def test_the_contract_has_three_endpoints_and_generations_is_the_contract_itself() -> None:
    assert tuple(CONTRACT.endpoints) == ENDPOINTS == ("generations", "edits", "variations")
    generations = CONTRACT.endpoint(GENERATIONS)
    assert generations.rules is CONTRACT.rules and generations.models is CONTRACT.models
    assert generations.default_model == CONTRACT.default_model == "dall-e-2"
    assert generations.cross_fields == CONTRACT.cross_fields
    assert all(rule.endpoint == GENERATIONS for rule in CONTRACT.rules.values())
    assert not [r for r in CONTRACT.rules if r.split(".")[0] in ("edits", "variations")]


def test_an_unknown_endpoint_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="no endpoint 'masks'"):
        CONTRACT.endpoint("masks")


def test_every_rule_of_an_endpoint_is_named_after_it_and_says_so() -> None:
    for name in ("edits", "variations"):
        rules = CONTRACT.endpoint(name).rules
        assert rules
        for rule_id, rule in rules.items():
            assert rule_id.startswith(f"{name}.") and rule.endpoint == name
            assert set(rule.models) <= set(CONTRACT.endpoint(name).models)


def test_paths_content_types_and_default_models() -> None:
    assert (EDITS.path, EDITS.content_type) == ("/images/edits", "multipart/form-data")
    assert EDITS.answers == ("application/json", "text/event-stream")
    assert EDITS.default_model == "gpt-image-1.5"
    assert (VARIATIONS.path, VARIATIONS.answers) == ("/images/variations", ("application/json",))
    assert VARIATIONS.default_model == "dall-e-2"


# --- Models (a table written from the spec by hand) -------------------------------------------


def test_the_edit_models_and_their_facts() -> None:
    assert set(EDITS.models) == {"dall-e-2", "chatgpt-image-latest", *GPT}
    dalle = EDITS.models["dall-e-2"]
    assert (dalle.prompt_max_chars, dalle.n_max) == (1000, 10)
    assert dalle.sizes == ("256x256", "512x512", "1024x1024")
    assert dalle.takes("response_format") and not dalle.takes("input_fidelity")
    assert not {"stream", "partial_images", "background", "output_format"} & dalle.params
    for name in (*GPT, "chatgpt-image-latest"):
        spec = EDITS.models[name]
        assert spec.is_gpt and spec.prompt_max_chars == 32000, name
        assert not spec.takes("response_format") and spec.takes("stream"), name
        assert spec.takes("input_fidelity") == (name != "gpt-image-1-mini"), name
        assert spec.default_size == "1024x1024", name
        assert not spec.takes("moderation") and not spec.takes("style"), name
        assert (spec.custom_sizes is not None) == name.startswith("gpt-image-2"), name
    assert EDITS.models["gpt-image-1"].values("input_fidelity") == ("high", "low")


def test_the_variation_model_takes_no_prompt_and_no_gpt_field() -> None:
    assert tuple(VARIATIONS.models) == ("dall-e-2",)
    spec = VARIATIONS.models["dall-e-2"]
    assert spec.prompt_max_chars is None
    assert spec.params == {"n", "response_format", "size", "user"}
    assert spec.sizes == ("256x256", "512x512", "1024x1024") and spec.default_size == "1024x1024"


def test_file_fields_per_model() -> None:
    gpt = EDITS.file("gpt-image-1", "image")
    assert gpt.parts == ("image", "image[]") and gpt.required
    assert set(gpt.formats) == {"png", "webp", "jpeg"} and gpt.max_count == 16
    assert (gpt.max_bytes, gpt.safe_max_bytes) == (50 * MIB, 50_000_000 - 1)
    assert not gpt.square
    dalle = EDITS.file("dall-e-2", "image")
    assert dalle.formats == ("png",) and dalle.max_count == 1 and dalle.square
    assert (dalle.max_bytes, dalle.safe_max_bytes) == (4 * MIB, 4_000_000 - 1)
    for model in EDITS.models:
        mask = EDITS.file(model, "mask")
        assert mask.formats == ("png",) and mask.max_bytes == 4 * MIB and not mask.required
        assert mask.same_dimensions_as == "image" and mask.needs_alpha
        assert mask.edit_area == "transparent" and mask.parts == ("mask",)
    variation = VARIATIONS.file("dall-e-2", "image")
    assert variation.parts == ("image",) and variation.formats == ("png",)
    assert variation.square and variation.max_count == 1 and variation.max_bytes == 4 * MIB
    assert set(VARIATIONS.files["dall-e-2"]) == {"image"}


# --- The request schemas, by forms that break one fact each ------------------------------------


def _valid(endpoint, form: dict[str, Any]) -> bool:
    return bool(endpoint.validator().is_valid(form))


@pytest.mark.parametrize(
    "form",
    [
        {"prompt": "x", "image": image()},
        {"prompt": "x", "image": [image(), image("webp"), image("jpeg", alpha=False)]},
        {"prompt": "x", "image": [image()] * 16, "mask": image()},
        {"prompt": "x", "image": image(size=50 * MIB - 1, width=300), "model": "gpt-image-1"},
        {"prompt": "x", "image": image(size=4 * MIB - 1), "model": "dall-e-2", "n": 10},
        {"prompt": "x", "image": image(), "model": "dall-e-2", "response_format": "b64_json"},
        {"prompt": "x", "image": image(), "input_fidelity": "high", "stream": True},
        {"prompt": "x", "image": image(), "background": "transparent", "output_format": "webp"},
        {"prompt": "x" * 32000, "image": image(), "model": "gpt-image-2", "size": "1536x864"},
    ],
)
def test_valid_edit_forms(form: dict[str, Any]) -> None:
    assert _valid(EDITS, form), form


@pytest.mark.parametrize(
    "form",
    [
        {"prompt": "x"},
        {"image": image()},
        {"prompt": "x", "image": "{'file': 'a.png'}"},
        {"prompt": "x", "image": image("none")},
        {"prompt": "x", "image": image("gif")},
        {"prompt": "x", "image": [image()] * 17},
        {"prompt": "x", "image": image(size=50 * MIB), "model": "gpt-image-1"},
        {"prompt": "x", "image": image("webp"), "model": "dall-e-2"},
        {"prompt": "x", "image": [image(), image()], "model": "dall-e-2"},
        {"prompt": "x", "image": image(size=4 * MIB), "model": "dall-e-2"},
        {"prompt": "x" * 1001, "image": image(), "model": "dall-e-2"},
        {"prompt": "x", "image": image(), "mask": image("jpeg")},
        {"prompt": "x", "image": image(), "mask": image(alpha=False)},
        {"prompt": "x", "image": image(), "mask": image(size=4 * MIB)},
        {"prompt": "x", "image": image(), "mask": "mask.png"},
        {"prompt": "x", "image": image(), "model": "gpt-image-1-mini", "input_fidelity": "low"},
        {"prompt": "x", "image": image(), "input_fidelity": "medium"},
        # An omitted model means gpt-image-1.5, which takes no response_format.
        {"prompt": "x", "image": image(), "response_format": "url"},
        {"prompt": "x", "image": image(), "model": "dall-e-2", "stream": True},
        {"prompt": "x", "image": image(), "model": "dall-e-3"},
        {"prompt": "x", "image": image(), "quality": "hd"},
        {"prompt": "x", "image": image(), "moderation": "low"},
        {"prompt": "x", "image": image(), "n": 11},
        {"prompt": "x", "image": image(), "background": "transparent", "output_format": "jpeg"},
        {"prompt": "x", "image": image(), "output_compression": 50},
    ],
)
def test_invalid_edit_forms(form: dict[str, Any]) -> None:
    assert not _valid(EDITS, form), form


def test_variation_forms() -> None:
    assert _valid(VARIATIONS, {"image": image(), "n": 2, "size": "512x512"})
    assert _valid(VARIATIONS, {"image": image(size=4 * MIB - 1), "response_format": "url"})
    for form in (
        {},
        {"image": image("webp")},
        {"image": image(size=4 * MIB)},
        {"image": [image(), image()]},
        {"image": "otter.png"},
        {"image": image(), "prompt": "x"},
        {"image": image(), "model": "gpt-image-1"},
        {"image": image(), "size": "1536x1024"},
        {"image": image(), "n": 0},
    ):
        assert not _valid(VARIATIONS, form), form


def test_the_edit_cross_field_rules_are_the_endpoints_own() -> None:
    assert [c.rule for c in EDITS.cross_fields] == [
        "edits.background.transparent_jpeg",
        "edits.output_compression.png",
    ]
    assert all(c.rule in EDITS.rules for c in EDITS.cross_fields)
    transparent = EDITS.cross_fields[0]
    assert transparent.triggers({"background": "transparent"})
    assert not transparent.holds({"background": "transparent", "output_format": "jpeg"})
    assert VARIATIONS.cross_fields == ()


# --- Rules: levels, reuse, and kept out of the generations judge --------------------------------


def test_levels_the_spec_leaves_open_are_should() -> None:
    should = {r for r, rule in EDITS.rules.items() if rule.level == "SHOULD"}
    assert {"edits.mask.alpha", "edits.mask.format", "edits.image.both_forms"} <= should
    assert {"edits.image.square", "edits.mask.dimensions", "edits.image.count"}.isdisjoint(should)
    assert VARIATIONS.rules["variations.image.square"].level == "MUST"


def test_answers_reuse_the_generations_rules_for_the_endpoints_models() -> None:
    assert {"response.schema", "image.size", "response.data.count"} <= set(EDITS.reused)
    assert EDITS.reused["response.url"].models == ("dall-e-2",)
    assert set(EDITS.reused["image.alpha"].models) == {*GPT, "chatgpt-image-latest"}
    assert EDITS.reused["image.size"].level == CONTRACT.rules["image.size"].level
    assert VARIATIONS.reused["response.url"].models == ("dall-e-2",)
    assert "stream.content_type" not in VARIATIONS.reused
    for endpoint in (EDITS, VARIATIONS):
        assert all(r in CONTRACT.rules for r in endpoint.reused)
        assert list(endpoint.all_rules) == [*endpoint.rules, *endpoint.reused]


def test_rules_of_the_other_endpoints_stay_out_of_the_generations_judge() -> None:
    assert EDITS.judged and VARIATIONS.judged
    others = {*EDITS.rules, *VARIATIONS.rules}
    assert not others & set(showings())
    assert not others & set(CONTRACT.rules)
    assert "edits.mask.honoured" in showings("edits") and "response.schema" in showings("edits")


def _contract_with(tmp_path: Path, edit: Any) -> None:
    """Load a copy of the contract data whose rules.yaml ``edit`` changed."""
    folder = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), folder)
    catalogue = yaml.safe_load((folder / "rules.yaml").read_text(encoding="utf-8"))
    edit(catalogue)
    (folder / "rules.yaml").write_text(yaml.safe_dump(catalogue), encoding="utf-8")
    load_contract(folder)


def _entry(catalogue: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(e for e in catalogue["rules"] if e["id"] == rule_id)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: _entry(c, "edits.mask.alpha").update(id="mask.alpha"), "starts with 'edits.'"),
        (lambda c: _entry(c, "edits.mask.alpha").update(endpoint="masks"), "endpoint must be"),
        (
            lambda c: _entry(c, "image.size").update(id="edits.image.size.x"),
            "names an endpoint it does not say",
        ),
        (
            lambda c: _entry(c, "variations.n.min").update(id="edits.n.minimum"),
            "starts with 'variations.'",
        ),
        (
            lambda c: c["endpoints"]["edits"].update(judged=False),
            "not judged yet",
        ),
        (
            lambda c: c["endpoints"]["variations"]["reuses"].append("image.alpha"),
            "holds for none of its models",
        ),
        (
            lambda c: c["endpoints"]["edits"]["reuses"].append("image.sparkles"),
            "is no generations rule",
        ),
        (lambda c: c["rules"].append(dict(_entry(c, "edits.n.min"))), "appears twice"),
    ],
)
def test_the_loader_refuses_inconsistent_endpoint_rules(tmp_path, edit, message) -> None:
    with pytest.raises(ContractError, match=re.escape(message)):
        _contract_with(tmp_path, edit)


# --- imgconf rules --endpoint ------------------------------------------------------------------


def test_the_rules_table_of_an_endpoint_lists_each_rule_with_level_and_source(capsys) -> None:
    assert main_entry(["rules", "--endpoint", "edits"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for rule in EDITS.all_rules.values():
        row = next(i for i, line in enumerate(lines) if line.split()[0] == rule.id)
        assert lines[row].split()[1] == rule.level
        assert lines[row + 1].strip() == f"source: {rule.source}"
    assert main_entry(["rules", "--endpoint", "variations", "--level", "SHOULD"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line[:1] != " "]
    assert "variations.image.count" in rows and "variations.image.square" not in rows


def test_the_generations_table_is_the_default(capsys) -> None:
    assert main_entry(["rules"]) == 0
    default = capsys.readouterr().out
    assert main_entry(["rules", "--endpoint", "generations"]) == 0
    assert capsys.readouterr().out == default
    assert "edits." not in default and "source:" not in default


def test_a_model_the_endpoint_does_not_serve_is_one_line_and_exit_2(capsys) -> None:
    assert main_entry(["rules", "--endpoint", "variations", "--model", "gpt-image-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a model of variations" in err


# --- Against OpenAI's spec file, where it is present ----------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    path = SPEC_DIR / "openapi.yaml"
    if not path.is_file():
        pytest.skip(f"OpenAI's spec not found in {SPEC_DIR} (set IMGCONF_OPENAI_SPEC to its path)")
    return parse_yaml(path.read_text(encoding="utf-8"))


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["components"]["schemas"][name]


def _words(text: str) -> str:
    return " ".join(text.split())


def _enum(node: dict[str, Any]) -> list[Any]:
    """An enum of a spec property, plain or inside ``anyOf``."""
    return node.get("enum") or next(b["enum"] for b in node["anyOf"] if "enum" in b)


def test_edit_facts_match_the_spec(spec) -> None:
    request = _schema(spec, "CreateImageEditRequest")
    props = request["properties"]
    assert set(EDITS.request_fields) == set(props)
    assert set(EDITS.schemas["request"]["required"]) == set(request["required"])
    assert set(EDITS.models) == set(_enum(props["model"]))
    assert EDITS.default_model == props["model"]["default"]
    assert EDITS.request_fields["size"]["default"] == props["size"]["default"]
    n = EDITS.request_fields["n"]["anyOf"][1]
    assert (n["minimum"], n["maximum"]) == (props["n"]["minimum"], props["n"]["maximum"])
    sizes = {s for spec_ in EDITS.models.values() for s in spec_.sizes}
    assert sizes == set(_enum(props["size"]))
    assert set(EDITS.request_fields["quality"]["enum"]) - {None} == set(_enum(props["quality"]))
    fidelity = _schema(spec, "InputFidelity")
    assert set(EDITS.models["gpt-image-1"].values("input_fidelity")) == set(fidelity["enum"])
    assert "unsupported for `gpt-image-1-mini`" in fidelity["description"]
    assert EDITS.request_fields["input_fidelity"]["default"] == "low"
    assert "Defaults to `low`" in _words(fidelity["description"])
    image_branch = next(b for b in props["image"]["anyOf"] if b.get("type") == "array")
    assert EDITS.file("gpt-image-1", "image").max_count == image_branch["maxItems"]
    assert props["mask"]["format"] == "binary"


def test_stated_limits_match_the_spec_prose(spec) -> None:
    edit = _schema(spec, "CreateImageEditRequest")["properties"]
    variation = _schema(spec, "CreateImageVariationRequest")["properties"]
    image_text = _words(edit["image"]["description"])
    prompt_text = _words(edit["prompt"]["description"])
    for chars, model in re.findall(r"(\d+) characters for `([^`]+)`", prompt_text):
        assert EDITS.models[model].prompt_max_chars == int(chars)
    assert "32000 characters for the GPT image models" in prompt_text
    assert all(EDITS.models[m].prompt_max_chars == 32000 for m in GPT)
    gpt_mb = int(re.search(r"`jpg` file less than (\d+)MB", image_text)[1])
    dalle_mb = int(re.search(r"square `png` file less than (\d+)MB", image_text)[1])
    mask_mb = int(re.search(r"less than (\d+)MB", edit["mask"]["description"])[1])
    variation_mb = int(re.search(r"less than (\d+)MB", variation["image"]["description"])[1])
    assert EDITS.file("gpt-image-1", "image").max_bytes == gpt_mb * MIB
    assert EDITS.file("dall-e-2", "image").max_bytes == dalle_mb * MIB
    assert EDITS.file("dall-e-2", "mask").max_bytes == mask_mb * MIB
    assert VARIATIONS.file("dall-e-2", "image").max_bytes == variation_mb * MIB
    assert "you can only provide one image" in image_text
    assert "square" in image_text and EDITS.file("dall-e-2", "image").square
    assert "PNG" in edit["mask"]["description"] and "same dimensions" in edit["mask"]["description"]
    assert "square" in variation["image"]["description"]
    assert "only supported for `dall-e-2`" in _words(edit["response_format"]["description"])
    assert [m for m in EDITS.models if EDITS.models[m].takes("response_format")] == ["dall-e-2"]


def test_variation_facts_match_the_spec(spec) -> None:
    request = _schema(spec, "CreateImageVariationRequest")
    props = request["properties"]
    assert set(VARIATIONS.request_fields) == set(props)
    assert list(VARIATIONS.schemas["request"]["required"]) == request["required"]
    assert set(VARIATIONS.models) == set(_enum(props["model"]))
    assert VARIATIONS.default_model == props["model"]["default"]
    assert VARIATIONS.models["dall-e-2"].sizes == tuple(props["size"]["enum"])
    assert VARIATIONS.request_fields["size"]["default"] == props["size"]["default"]
    assert set(VARIATIONS.models["dall-e-2"].values("response_format")) == set(
        props["response_format"]["enum"]
    )


def test_content_types_and_stream_events_match_the_spec(spec) -> None:
    for endpoint in (EDITS, VARIATIONS):
        post = spec["paths"][endpoint.path]["post"]
        assert endpoint.content_type in post["requestBody"]["content"]
        assert endpoint.answers == tuple(post["responses"]["200"]["content"])
    events = EDITS.schemas["stream_event"]["$defs"]
    for ours, theirs in (
        ("partial_image", "ImageEditPartialImageEvent"),
        ("completed", "ImageEditCompletedEvent"),
    ):
        schema = _schema(spec, theirs)
        assert events[ours]["required"] == schema["required"]
        assert [events[ours]["properties"]["type"]["const"]] == schema["properties"]["type"]["enum"]


_CITED = re.compile(r"^openai-spec openapi\.yaml (?P<path>[^\s:]+)(?:: '(?P<quote>.*)')?$")


def _at(spec: dict[str, Any], path: str) -> Any:
    node: Any = spec
    for key in path.split("."):
        assert isinstance(node, dict) and key in node, f"{path}: no {key!r}"
        node = node[key]
    return node


@pytest.mark.parametrize(
    "rule", [*EDITS.rules.values(), *VARIATIONS.rules.values()], ids=lambda r: r.id
)
def test_every_cited_schema_path_exists_and_says_what_is_quoted(spec, rule) -> None:
    cited = [m for part in rule.source.split("; ") if (m := _CITED.match(part.strip()))]
    for match in cited:
        found = _at(spec, match["path"])
        if match["quote"]:
            assert isinstance(found, str), match["path"]
            assert _words(match["quote"]) in _words(found), (rule.id, match["quote"])
    assert cited or "openai-spec" not in rule.source, rule.source


def test_the_readme_shows_the_endpoint_table_as_the_command_prints_it(capsys) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    command = "$ imgconf rules --endpoint variations --level MUST"
    shown = readme.split(command + "\n", 1)[1].split("```", 1)[0].splitlines()
    assert shown
    assert main_entry(command.split()[2:]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert all(line in printed for line in shown)


def test_a_profiles_contract_has_its_declared_models_in_its_generations_endpoint() -> None:
    from conformance.contract.profiles import load_profile

    root = Path(__file__).resolve().parents[1]
    contract = load_profile(str(root / "examples" / "profiles" / "flux-like.yaml")).contract
    declared = set(contract.models) - set(CONTRACT.models)
    assert declared
    assert contract.endpoint(GENERATIONS).models is contract.models
    assert contract.endpoint(GENERATIONS).rules is contract.rules
    assert contract.endpoint("edits") is EDITS


def test_each_endpoint_validates_its_own_schemas() -> None:
    generations = CONTRACT.endpoint(GENERATIONS).validator()
    assert generations.is_valid({"prompt": "x"}) and not generations.is_valid({})
    event = {
        "type": "image_edit.partial_image",
        "b64_json": "aGk=",
        "created_at": 1,
        "size": "1024x1024",
        "quality": "low",
        "background": "auto",
        "output_format": "png",
        "partial_image_index": 0,
    }
    events = EDITS.validator("stream_event")
    assert events.is_valid(event)
    assert not events.is_valid({**event, "type": "image_generation.partial_image"})
    assert not events.is_valid({k: v for k, v in event.items() if k != "created_at"})
    completed = {**event, "type": "image_edit.completed"}
    assert not events.is_valid(completed)  # no usage
    del completed["partial_image_index"]
    usage = {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}
    usage["input_tokens_details"] = {"text_tokens": 1, "image_tokens": 0}
    assert events.is_valid({**completed, "usage": usage})
