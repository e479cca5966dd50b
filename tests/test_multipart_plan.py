"""The plan's cases for ``/images/edits`` and ``/images/variations``.

Every invalid case is held to a hand-written table of what breaks each rule (written from the
spec's words, not read from the contract's data) and of the ``param`` and error code a correct
server answers it with; the strict reference server refuses each invalid case so and takes
each valid one; the generations plan is the same whether or not the multipart endpoints are
planned; planning never reads a large file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache

import pytest
from starlette.testclient import TestClient

from conformance.contract.profiles import load_profile
from conformance.errors import SetupError
from conformance.generation.cases import Case, FormPart
from conformance.generation.inputs import InputFile, LazyFile
from conformance.generation.multipart_planning import form_violations, multipart_cases
from conformance.generation.planning import build_plan
from conformance.server.app import ServerConfig, create_app

KEY = "sk-multipart-plan"
ALL = ("generations", "edits", "variations")
MIB = 1024 * 1024

# --- the models' facts, as the spec words them ---------------------------------------------------

GPT_SIZES = {"1024x1024", "1536x1024", "1024x1536", "auto"}
DALL_E_2_SIZES = {"256x256", "512x512", "1024x1024"}
GPT_QUALITIES = {"low", "medium", "high", "auto"}
DALL_E_2_QUALITIES = {"standard", "auto"}
EDIT_FIELDS = {
    "image",
    "image[]",
    "mask",
    "prompt",
    "model",
    "n",
    "size",
    "quality",
    "response_format",
    "output_format",
    "output_compression",
    "background",
    "input_fidelity",
    "stream",
    "partial_images",
    "user",
}
VARIATION_FIELDS = {"image", "model", "n", "response_format", "size", "user"}


def is_gpt(model: str) -> bool:
    return model.startswith("gpt-image")


def every(model: str) -> bool:
    """Every model (the model-independent cases, ``*``, are their own)."""
    return model != "*"


def custom(model: str) -> bool:
    return model.startswith("gpt-image-2")


@dataclass
class Form:
    """A case's parts, read back by hand."""

    model: str
    text: dict[str, str]
    images: list[FormPart]
    mask: list[FormPart]
    names: list[str]

    @classmethod
    def of(cls, case: Case) -> Form:
        text = {p.name: p.value or "" for p in case.parts if p.file is None}
        endpoint_default = "gpt-image-1.5" if case.endpoint == "edits" else "dall-e-2"
        return cls(
            model=text.get("model", endpoint_default),
            text=text,
            images=[p for p in case.parts if p.name in ("image", "image[]")],
            mask=[p for p in case.parts if p.name == "mask"],
            names=[p.name for p in case.parts],
        )

    def files(self, parts: list[FormPart]) -> list[InputFile]:
        return [p.file for p in parts if p.file is not None]

    def int_of(self, name: str) -> int | None:
        value = self.text.get(name)
        return int(value) if value is not None and re.fullmatch(r"-?\d+", value) else None

    def wxh(self) -> tuple[int, int] | None:
        match = re.fullmatch(r"(\d+)x(\d+)", self.text.get("size", ""))
        return (int(match[1]), int(match[2])) if match else None


def _size_enum(f: Form) -> bool:
    size = f.text.get("size")
    if size is None:
        return False
    listed = GPT_SIZES if is_gpt(f.model) else DALL_E_2_SIZES
    return size not in listed and not (custom(f.model) and f.wxh() is not None)


def _custom_limit(f: Form) -> str | None:
    wxh = f.wxh()
    if not custom(f.model) or wxh is None or f.text["size"] in GPT_SIZES:
        return None
    width, height = wxh
    if width % 16 or height % 16:
        return "divisible"
    if max(width, height) / min(width, height) > 3:
        return "aspect"
    if max(width, height) > 3840 or width * height > 3840 * 2160:
        return "max"
    return None


def _bytes_over(files: list[InputFile], limit: int) -> bool:
    return any(file.length is not None and file.length >= limit for file in files)


def _bad_n(f: Form) -> str | None:
    value = f.text.get("n")
    if value is None:
        return None
    number = f.int_of("n")
    if number is None:
        return "type"
    return "min" if number < 1 else "max" if number > 10 else None


def _image_format(f: Form, allowed: set[str]) -> bool:
    return any(file.format not in allowed | {"text"} for file in f.files(f.images))


def _mask_dims(f: Form) -> bool:
    masks, images = f.files(f.mask), f.files(f.images)
    return bool(masks and images) and (masks[0].width, masks[0].height) != (
        images[0].width,
        images[0].height,
    )


def _compression(f: Form) -> bool:
    number = f.int_of("output_compression")
    return "output_compression" in f.text and (number is None or not 0 <= number <= 100)


def _prompt_max(f: Form) -> bool:
    limit = 32000 if is_gpt(f.model) else 1000
    return len(f.text.get("prompt", "")) > limit


Breaks = Callable[[Form], bool]
#: rule -> (the models it holds for, the param and code a correct server answers, what breaks it).
EDIT_RULES: dict[str, tuple[Callable[[str], bool], str, str, Breaks]] = {
    "edits.image.required": (
        every,
        "image",
        "missing_required_parameter",
        lambda f: not f.images,
    ),
    "edits.image.file": (
        every,
        "image",
        "invalid_type",
        lambda f: any(p.file is None for p in f.images),
    ),
    "edits.image.decodes": (
        every,
        "image",
        "invalid_value",
        lambda f: any(file.format == "text" for file in f.files(f.images)),
    ),
    "edits.image.format": (
        every,
        "image",
        "invalid_value",
        lambda f: _image_format(f, {"png", "jpeg", "webp"} if is_gpt(f.model) else {"png"}),
    ),
    "edits.image.bytes": (
        every,
        "image",
        "invalid_value",
        lambda f: _bytes_over(f.files(f.images), 50 * MIB if is_gpt(f.model) else 4 * MIB),
    ),
    "edits.image.count": (is_gpt, "image", "invalid_value", lambda f: len(f.images) > 16),
    "edits.image.count.dall-e-2": (
        lambda m: m == "dall-e-2",
        "image",
        "invalid_value",
        lambda f: len(f.images) > 1,
    ),
    "edits.image.square": (
        lambda m: m == "dall-e-2",
        "image",
        "invalid_value",
        lambda f: any(file.width != file.height for file in f.files(f.images)),
    ),
    "edits.mask.file": (
        every,
        "mask",
        "invalid_type",
        lambda f: any(p.file is None for p in f.mask),
    ),
    "edits.mask.bytes": (
        every,
        "mask",
        "invalid_value",
        lambda f: _bytes_over(f.files(f.mask), 4 * MIB),
    ),
    "edits.mask.dimensions": (every, "mask", "invalid_value", _mask_dims),
    "edits.mask.format": (
        every,
        "mask",
        "invalid_value",
        lambda f: any(file.format != "png" for file in f.files(f.mask)),
    ),
    "edits.mask.alpha": (
        every,
        "mask",
        "invalid_value",
        lambda f: any(file.format == "png" and not file.alpha for file in f.files(f.mask)),
    ),
    "edits.prompt.required": (
        every,
        "prompt",
        "missing_required_parameter",
        lambda f: "prompt" not in f.text,
    ),
    "edits.prompt.empty": (
        every,
        "prompt",
        "empty_string",
        lambda f: f.text.get("prompt") == "",
    ),
    "edits.prompt.max_length": (every, "prompt", "string_above_max_length", _prompt_max),
    "edits.n.type": (every, "n", "invalid_type", lambda f: _bad_n(f) == "type"),
    "edits.n.min": (every, "n", "integer_below_min_value", lambda f: _bad_n(f) == "min"),
    "edits.n.max": (every, "n", "integer_above_max_value", lambda f: _bad_n(f) == "max"),
    "edits.size.enum": (every, "size", "invalid_value", _size_enum),
    "edits.size.custom.divisible": (
        custom,
        "size",
        "invalid_value",
        lambda f: _custom_limit(f) == "divisible",
    ),
    "edits.size.custom.aspect": (
        custom,
        "size",
        "invalid_value",
        lambda f: _custom_limit(f) == "aspect",
    ),
    "edits.size.custom.max": (
        custom,
        "size",
        "invalid_value",
        lambda f: _custom_limit(f) == "max",
    ),
    "edits.quality.enum": (
        every,
        "quality",
        "invalid_value",
        lambda f: (
            "quality" in f.text
            and f.text["quality"] not in (GPT_QUALITIES if is_gpt(f.model) else DALL_E_2_QUALITIES)
        ),
    ),
    "edits.response_format.enum": (
        lambda m: m == "dall-e-2",
        "response_format",
        "invalid_value",
        lambda f: f.text.get("response_format", "url") not in ("url", "b64_json"),
    ),
    "edits.output_format.enum": (
        is_gpt,
        "output_format",
        "invalid_value",
        lambda f: f.text.get("output_format", "png") not in ("png", "jpeg", "webp"),
    ),
    "edits.output_compression.range": (
        is_gpt,
        "output_compression",
        "invalid_value",
        _compression,
    ),
    "edits.output_compression.png": (
        is_gpt,
        "output_compression",
        "invalid_value",
        lambda f: (
            "output_compression" in f.text and f.text.get("output_format") not in ("jpeg", "webp")
        ),
    ),
    "edits.background.enum": (
        is_gpt,
        "background",
        "invalid_value",
        lambda f: f.text.get("background", "auto") not in ("transparent", "opaque", "auto"),
    ),
    "edits.background.transparent_jpeg": (
        is_gpt,
        "background",
        "invalid_value",
        lambda f: (
            f.text.get("background") == "transparent" and f.text.get("output_format") == "jpeg"
        ),
    ),
    "edits.input_fidelity.enum": (
        lambda m: is_gpt(m) and m != "gpt-image-1-mini",
        "input_fidelity",
        "invalid_value",
        lambda f: f.text.get("input_fidelity", "low") not in ("high", "low"),
    ),
    "edits.stream.type": (
        is_gpt,
        "stream",
        "invalid_type",
        lambda f: f.text.get("stream", "false") not in ("true", "false"),
    ),
    "edits.partial_images.range": (
        is_gpt,
        "partial_images",
        "invalid_value",
        lambda f: "partial_images" in f.text and f.int_of("partial_images") not in range(4),
    ),
    "edits.unknown_field": (
        every,
        "",  # the unknown part's own name
        "unknown_parameter",
        lambda f: any(name not in EDIT_FIELDS for name in f.names),
    ),
    "edits.model.unknown": (
        lambda m: m == "*",
        "model",
        "model_not_found",
        lambda f: f.model not in KNOWN_EDIT_MODELS,
    ),
}
KNOWN_EDIT_MODELS = {
    "gpt-image-1",
    "gpt-image-1-mini",
    "gpt-image-1.5",
    "gpt-image-2",
    "gpt-image-2-2026-04-21",
    "chatgpt-image-latest",
    "dall-e-2",
}
VARIATION_RULES: dict[str, tuple[Callable[[str], bool], str, str, Breaks]] = {
    "variations.image.required": (
        every,
        "image",
        "missing_required_parameter",
        lambda f: not f.images,
    ),
    "variations.image.file": (
        every,
        "image",
        "invalid_type",
        lambda f: any(p.file is None for p in f.images),
    ),
    "variations.image.format": (
        every,
        "image",
        "invalid_value",
        lambda f: any(file.format != "png" for file in f.files(f.images)),
    ),
    "variations.image.bytes": (
        every,
        "image",
        "invalid_value",
        lambda f: _bytes_over(f.files(f.images), 4 * MIB),
    ),
    "variations.image.square": (
        every,
        "image",
        "invalid_value",
        lambda f: any(file.width != file.height for file in f.files(f.images)),
    ),
    "variations.image.count": (
        every,
        "image",
        "invalid_value",
        lambda f: len(f.images) > 1,
    ),
    "variations.n.type": (every, "n", "invalid_type", lambda f: _bad_n(f) == "type"),
    "variations.n.min": (
        every,
        "n",
        "integer_below_min_value",
        lambda f: _bad_n(f) == "min",
    ),
    "variations.n.max": (
        every,
        "n",
        "integer_above_max_value",
        lambda f: _bad_n(f) == "max",
    ),
    "variations.size.enum": (
        every,
        "size",
        "invalid_value",
        lambda f: f.text.get("size", "1024x1024") not in DALL_E_2_SIZES,
    ),
    "variations.response_format.enum": (
        every,
        "response_format",
        "invalid_value",
        lambda f: f.text.get("response_format", "url") not in ("url", "b64_json"),
    ),
    "variations.unknown_field": (
        every,
        "",
        "unknown_parameter",
        lambda f: any(name not in VARIATION_FIELDS for name in f.names),
    ),
    "variations.model.unknown": (
        lambda m: m == "*",
        "model",
        "model_not_found",
        lambda f: f.model != "dall-e-2",
    ),
}
for _endpoint, _rules in (("edits", EDIT_RULES), ("variations", VARIATION_RULES)):
    # Refused with a 4xx, no param or code stated; what breaks them: broken_body.
    for _rule in ("body.content_type", "body.malformed"):
        _rules[f"{_endpoint}.{_rule}"] = (lambda m: m == "*", None, None, lambda f: False)
TABLES = {"edits": EDIT_RULES, "variations": VARIATION_RULES}


def broken_body(case: Case) -> list[str]:
    """A body sent as bytes: of a type the endpoint does not take, or multipart that does not
    parse (it does not end with its closing boundary, or a part has no name)."""
    assert case.raw is not None
    if not case.content_type.startswith("multipart/form-data"):
        return [f"{case.endpoint}.body.content_type"]
    unclosed = not case.raw.endswith(b"--\r\n")
    nameless = b"Content-Disposition: form-data\r\n" in case.raw
    return [f"{case.endpoint}.body.malformed"] * (unclosed + nameless)


def broken(case: Case) -> list[str]:
    """The rules the table says the case breaks, for its model."""
    if case.raw is not None:
        return broken_body(case)
    form = Form.of(case)
    table = TABLES[case.endpoint]
    return [
        rule
        for rule, (holds_for, _, _, breaks) in table.items()
        if (holds_for(case.model) or (case.model == "*" and rule.endswith("model.unknown")))
        and breaks(form)
    ]


# --- the plan --------------------------------------------------------------------------------


@cache
def plan_all():
    return build_plan(load_profile("openai"), endpoints=ALL)


def multipart(kind: str | None = None) -> list[Case]:
    return [
        c
        for c in plan_all().cases
        if c.endpoint != "generations" and (kind is None or c.kind == kind)
    ]


def test_every_invalid_case_breaks_exactly_its_rule_by_the_hand_written_table() -> None:
    invalid = multipart("invalid")
    assert invalid
    for case in invalid:
        assert case.rule in TABLES[case.endpoint], case.id
        assert broken(case) == [case.rule], (case.id, broken(case))
        assert case.expect == "reject"
        assert case.origin == ("must-reject" if case.level == "MUST" else "should-reject")


def test_every_valid_case_breaks_no_rule_of_the_table_or_the_schema() -> None:
    valid = multipart("valid")
    assert valid
    for case in valid:
        assert broken(case) == [], (case.id, broken(case))
        assert (
            form_violations(case.parts, load_profile("openai").contract.endpoint(case.endpoint))
            == []
        )


def test_every_rule_of_the_table_is_broken_for_every_model_it_holds_for() -> None:
    profile = load_profile("openai")
    for endpoint, table in TABLES.items():
        models = [m for m in profile.models if m in profile.contract.endpoint(endpoint).models]
        for model in [*models, "*"]:
            wanted = {rule for rule, (holds_for, *_) in table.items() if holds_for(model)}
            planned = {
                c.rule for c in multipart("invalid") if (c.endpoint, c.model) == (endpoint, model)
            }
            assert planned == wanted, (endpoint, model, wanted ^ planned)


def test_the_file_variants_are_planned() -> None:
    cases = {c.id: c for c in multipart("valid")}
    gpt = [Form.of(c) for i, c in cases.items() if i.startswith("edits/gpt-image-1/")]
    formats = {f.format for form in gpt for f in form.files(form.images)}
    assert formats == {"png", "jpeg", "webp"}
    assert any(len(form.images) == 16 for form in gpt)
    assert {p.name for form in gpt if len(form.images) > 1 for p in form.images} == {
        "image",
        "image[]",
    }
    assert any(form.mask and len(form.images) == 3 for form in gpt)
    assert any(f.width != f.height for form in gpt for f in form.files(form.images))
    assert any(f.alpha for form in gpt for f in form.files(form.images))
    sizes = [f.length for form in gpt for f in form.files(form.images + form.mask) if f.length]
    assert sorted(sizes) == [3999999, 49999999]
    assert {cases[i].rule for i in cases if i.startswith("edits/gpt-image-1/")} == {
        "edits.valid.accepted",
        "edits.image.repeated",
        "edits.image.brackets",
    }
    streamed = [c for c in cases.values() if c.stream and c.model == "gpt-image-1"]
    assert any("partial_images" in Form.of(c).text for c in streamed)
    custom_sizes = {
        Form.of(c).text.get("size") for i, c in cases.items() if i.startswith("edits/gpt-image-2/")
    }
    generations = {
        c.body.get("size")
        for c in plan_all().cases
        if c.endpoint == "generations" and c.model == "gpt-image-2" and c.kind == "valid"
    }
    assert custom_sizes - {None} == generations - {None}  # custom sizes as generations picks
    dall_e = [Form.of(c) for i, c in cases.items() if i.startswith("edits/dall-e-2/")]
    assert {form.text.get("response_format") for form in dall_e} >= {"url", "b64_json"}


def test_ids_are_unique_and_name_the_endpoint_and_model() -> None:
    ids = [c.id for c in plan_all().cases]
    assert len(ids) == len(set(ids))
    for case in multipart():
        assert case.id.startswith(f"{case.endpoint}/{case.model}/")
        assert case.body is None and (case.multipart or case.raw is not None)


def test_the_generations_plan_is_the_same_with_the_multipart_endpoints() -> None:
    profile = load_profile("openai")
    alone = build_plan(profile)
    assert {c.endpoint for c in alone.cases} == {"generations"}
    together = [c for c in plan_all().cases if c.endpoint == "generations"]
    assert [c.to_dict() for c in together] == [c.to_dict() for c in alone.cases]
    assert plan_all().coverage["models"] == alone.coverage["models"]


def test_prices_count_images_as_generations_do() -> None:
    cases = {c.id: c for c in multipart()}
    control = cases["edits/gpt-image-1/control"]
    assert (control.images, control.cost) == (1, 0.011)
    n_max = next(
        c
        for c in cases.values()
        if c.id.startswith("edits/dall-e-2/valid/boundary") and c.title == "n=10"
    )
    assert (n_max.images, n_max.cost) == (10, 0.16)
    assert cases["edits/gpt-image-2/control"].cost is None


def test_the_budget_cuts_multipart_cases_by_their_images() -> None:
    profile = load_profile("openai")
    plan = build_plan(profile, endpoints=("edits", "variations"), max_images=40)
    assert plan.images <= 40 and plan.cut
    assert {c.endpoint for c in plan.cut} <= {"edits", "variations"}
    assert all(c.origin != "control" for c in plan.cut)
    kept = {c.id for c in plan.cases}
    assert "edits/gpt-image-1/control" in kept and "variations/dall-e-2/control" in kept
    # Refusals spend nothing on a conformant server: never cut.
    assert not [c for c in plan.cut if c.expect == "reject"]


def test_an_unknown_endpoint_is_a_setup_error() -> None:
    with pytest.raises(SetupError, match="--endpoint"):
        build_plan(load_profile("openai"), endpoints=("edit",))


def test_aliases_are_sent_by_the_vendors_name() -> None:
    profile = replace(load_profile("openai"), names={"gpt-image-1": "vendor-image"})
    made = multipart_cases(profile, "edits", ["gpt-image-1", "dall-e-2"], 0)
    sent = {c.id: next(p.value for p in c.parts if p.name == "model") for c in made.controls}
    assert sent == {
        "edits/gpt-image-1/control": "vendor-image",
        "edits/dall-e-2/control": "dall-e-2",
    }


def test_a_feature_the_profile_does_not_support_is_expected_refused() -> None:
    profile = load_profile("examples/profiles/my-gateway.yaml")
    assert "stream" in profile.unsupported
    cases = multipart_cases(profile, "edits", profile.models, 0).cases
    streamed = [c for c in cases if c.kind == "valid" and c.stream]
    assert streamed
    for case in streamed:
        assert case.expect == "reject" and "unsupported:stream" in case.tags
    assert all(c.expect == "accept" for c in cases if c.kind == "valid" and not c.tags)


def test_planning_reads_no_file_and_stays_fast(monkeypatch) -> None:
    read = LazyFile.readinto

    def small_only(self, buffer):
        assert self._length < MIB, "planning read a large input file"
        return read(self, buffer)

    monkeypatch.setattr(LazyFile, "readinto", small_only)
    start = time.perf_counter()
    plan = build_plan(load_profile("openai"), endpoints=ALL, seed=5)
    elapsed = time.perf_counter() - start
    assert len(plan.cases) > 1000
    assert elapsed < 20, elapsed


# --- the strict reference server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[TestClient]:
    with TestClient(create_app(ServerConfig(api_key=KEY))) as client:
        yield client


def send(client: TestClient, case: Case):
    if case.raw is not None:
        return client.post(
            f"/v1/images/{case.endpoint}",
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": case.content_type},
            content=case.content(),
        )
    return client.post(
        f"/v1/images/{case.endpoint}",
        headers={
            "Authorization": f"Bearer {KEY}",
            "Content-Type": case.content_type,
            "Content-Length": str(case.content_length()),
        },
        content=case.iter_content(),
    )


def _big(case: Case) -> bool:
    return any(p.file is not None and (p.file.length or 0) > 8 * MIB for p in case.parts)


#: The models whose valid cases the strict server is sent (about 30 s for the four; all seven
#: take about 46 s): the others' facts are one of theirs (see the twins test).
SERVED = ["dall-e-2", "gpt-image-1-mini", "gpt-image-1", "gpt-image-2"]
TWINS = {"gpt-image-1.5": "gpt-image-1", "gpt-image-2-2026-04-21": "gpt-image-2"}


def test_the_strict_server_refuses_every_invalid_case_as_the_table_says(server) -> None:
    for case in multipart("invalid"):
        if _big(case) and case.model != "gpt-image-1":
            continue  # the same 50 MiB file as gpt-image-1's, for a model of the same facts
        response = send(server, case)
        assert response.status_code == 400, (case.id, response.text[:200])
        error = response.json()["error"]
        _, param, code, _ = TABLES[case.endpoint][case.rule]
        if param is None:
            continue  # any 4xx
        if not param:
            param = next(n for n in Form.of(case).names if n not in EDIT_FIELDS | VARIATION_FIELDS)
        assert (error["param"], error["code"]) == (param, code), case.id


@pytest.mark.parametrize(
    ("endpoint", "model"),
    [("edits", m) for m in SERVED]
    + [("edits", "*"), ("variations", "dall-e-2"), ("variations", "*")],
)
def test_the_strict_server_takes_every_valid_case_and_judges_the_probes(
    server, endpoint: str, model: str
) -> None:
    cases = [c for c in multipart() if (c.endpoint, c.model) == (endpoint, model)]
    assert cases
    for case in cases:
        if case.kind == "invalid":
            continue
        response = send(server, case)
        if case.expect == "accept":
            assert response.status_code == 200, (case.id, response.text[:200])
            wanted = "text/event-stream" if case.stream else "application/json"
            assert response.headers["content-type"].startswith(wanted), case.id
        else:
            assert case.expect == "either"
            assert response.status_code in (200, 400), case.id


def _as_model(case: Case, model: str) -> tuple:
    parts = tuple(FormPart("model", model) if p.name == "model" else p for p in case.parts)
    return (case.id.split("/", 2)[2], case.kind, case.rule, case.expect, case.title, parts)


@pytest.mark.parametrize(("twin", "model"), sorted(TWINS.items()))
def test_a_twin_models_cases_are_its_models(twin: str, model: str) -> None:
    """A model whose edit facts are another's gets the same forms, so the server test above
    stands for it."""
    edits = load_profile("openai").contract.endpoint("edits")
    assert edits.models[twin] == replace(
        edits.models[model], name=twin, family=edits.models[twin].family
    )
    mine = [_as_model(c, model) for c in multipart() if c.model == twin]
    theirs = [_as_model(c, model) for c in multipart() if c.model == model]
    assert mine and mine == theirs


def test_a_raw_bodys_type_round_trips_and_json_cases_stay_as_they_were() -> None:
    raw = next(c for c in multipart("invalid") if c.raw is not None)
    assert Case.from_dict(raw.to_dict()) == raw
    assert raw.to_dict()["raw_type"] == raw.content_type != "application/json"
    generations = next(c for c in plan_all().cases if c.endpoint == "generations")
    assert "raw_type" not in generations.to_dict()
    assert generations.content_type == "application/json"


def test_the_coverage_names_every_must_rule_of_each_endpoint_as_aimed_at() -> None:
    coverage = plan_all().coverage["endpoints"]
    assert set(coverage) == {"edits", "variations"}
    assert set(coverage["variations"]["models"]) == {"dall-e-2", "*"}
    for endpoint in coverage.values():
        for model, entry in endpoint["models"].items():
            assert entry["must_rules"]["missing"] == [], model
            assert entry["must_rules"]["applicable"] > 0, model
    star = coverage["edits"]["models"]["*"]["must_rules"]
    assert star["exercised"] == 3  # body.content_type, body.malformed, model.unknown
    assert "endpoints" not in build_plan(load_profile("openai")).coverage


# --- Hypothesis strategies -----------------------------------------------------------------------

#: Drawn forms for models of each kind of facts (gpt-image-1 and 1.5 are gpt-image-2's but the
#: custom sizes): about 15 s for the valid ones, most of it the server's pictures.
STRATEGY_MODELS = [("edits", "gpt-image-2"), ("edits", "gpt-image-1-mini")]
STRATEGY_MODELS += [("edits", "dall-e-2"), ("variations", "dall-e-2")]
DRAWN = {"deadline": None, "database": None, "derandomize": True}


@pytest.mark.parametrize(("endpoint", "model"), STRATEGY_MODELS)
def test_drawn_valid_forms_are_valid_and_accepted(server, endpoint: str, model: str) -> None:
    from hypothesis import HealthCheck, given, settings

    from conformance.generation.multipart_strategies import valid_forms

    contract = load_profile("openai").contract.endpoint(endpoint)

    @settings(max_examples=6, suppress_health_check=list(HealthCheck), **DRAWN)
    @given(valid_forms(endpoint, model))
    def check(parts) -> None:
        case = Case(
            id="drawn", model=model, kind="valid", rule="", level="MUST", expect="accept",
            endpoint=endpoint, parts=parts,
        )  # fmt: skip
        assert broken(case) == [] and form_violations(parts, contract) == []
        response = send(server, case)
        assert response.status_code == 200, response.text[:200]

    check()


@pytest.mark.parametrize(("endpoint", "model"), STRATEGY_MODELS)
def test_drawn_invalid_forms_break_their_rule_alone(server, endpoint: str, model: str) -> None:
    from hypothesis import HealthCheck, given, settings

    from conformance.generation.multipart_strategies import invalid_forms

    @settings(max_examples=25, suppress_health_check=list(HealthCheck), **DRAWN)
    @given(invalid_forms(endpoint, model))
    def check(drawn) -> None:
        parts, rule = drawn
        case = Case(
            id="drawn", model=model, kind="invalid", rule=rule, level="MUST", expect="reject",
            endpoint=endpoint, parts=parts,
        )  # fmt: skip
        assert broken(case) == [rule]
        if _big(case):
            return
        response = send(server, case)
        assert response.status_code == 400, (rule, response.text[:200])
        _, param, code, _ = TABLES[endpoint][rule]
        if param:
            assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (
                param,
                code,
            )

    check()
