"""Sending and judging edits and variations: streamed multipart bodies at each endpoint's path,
the answers held to the generations rules they reuse and to the edit rules (the stamp's exact
ones, the visual tolerance without it), verdicts by model x endpoint, each multipart quirk's
declared verdict, a gateway that drops the mask and all but the first image, and the memory a
run with the largest inputs takes."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
import respx
from _passthrough_proxy import run_proxy
from PIL import Image

from conformance.contract import stamp as codec
from conformance.contract.loader import load_contract
from conformance.contract.profiles import Profile, load_profile
from conformance.engine.checks import judge, settle_controls
from conformance.engine.edit_checks import EDIT_CHECKS, VISUAL_TOLERANCE
from conformance.engine.multipart import SUMMARY_FORMAT, request_summary
from conformance.engine.results import Exchange, Outcome, PlanFacts, RunResult
from conformance.engine.runner import Budget, execute
from conformance.engine.transport import TargetClient, TransportConfig
from conformance.engine.verdict import run_matrix
from conformance.generation.cases import CONTROL_ORIGIN, Case, FormPart
from conformance.generation.inputs import DIGEST_CHARS, InputFile
from conformance.generation.planning import build_plan
from conformance.generation.showing import endpoint_rules, showings
from conformance.server.launcher import start_reference_server
from conformance.server.quirks import QUIRKS, SERVER_QUIRKS

KEY = "sk-edit-judging-0000"
OPENAI = load_profile("openai")
CONTRACT = load_contract()
EDIT_QUIRKS = sorted(name for name, q in SERVER_QUIRKS.items() if q.endpoint != "generations")

# --- hand-built cases ---------------------------------------------------------------------------


def picture(seed: int, width: int = 256, height: int = 256, **facts: Any) -> InputFile:
    return InputFile(width=width, height=height, seed=seed, **facts)


MASK = InputFile(role="mask", width=256, height=256, alpha=True, seed=7, box=(64, 64, 160, 128))


def form(model: str | None, *files: tuple[str, InputFile], **fields: Any) -> tuple[FormPart, ...]:
    """A form: ``model`` (None: left out), a prompt unless the endpoint takes none, fields as
    text (booleans as ``true``/``false``), then the files in order."""
    texts = [] if model is None else [FormPart("model", model)]
    for name, value in fields.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        texts.append(FormPart(name, text))
    return (*texts, *(FormPart(name, file=recipe) for name, recipe in files))


def edit(
    case_id: str,
    model: str,
    *files: tuple[str, InputFile],
    rule: str = "edits.valid.accepted",
    origin: str = "plan",
    kind: str = "valid",
    **fields: Any,
) -> Case:
    expect = "reject" if kind == "invalid" else "accept"
    return Case(
        id=f"edits-{case_id}",
        model=model,
        kind=kind,  # type: ignore[arg-type]
        rule=rule,
        level="MUST",
        expect=expect,  # type: ignore[arg-type]
        origin=origin,
        images=int(fields.get("n", 1)),
        endpoint="edits",
        parts=form(model, *files, prompt="a red square", **fields),
    )


def variation(
    case_id: str,
    *files: tuple[str, InputFile],
    rule: str = "variations.valid.accepted",
    origin: str = "plan",
    kind: str = "valid",
    **fields: Any,
) -> Case:
    expect = "reject" if kind == "invalid" else "accept"
    return Case(
        id=f"variations-{case_id}",
        model="dall-e-2",
        kind=kind,  # type: ignore[arg-type]
        rule=rule,
        level="MUST",
        expect=expect,  # type: ignore[arg-type]
        origin=origin,
        images=int(fields.get("n", 1)),
        endpoint="variations",
        parts=form("dall-e-2", *files, **fields),
    )


#: The controls: a plain valid form per model and endpoint (no mask, one `image` part).
CONTROLS = [
    edit("control-gpt", "gpt-image-1", ("image", picture(1)), origin=CONTROL_ORIGIN),
    edit(
        "control-d2",
        "dall-e-2",
        ("image", picture(2)),
        origin=CONTROL_ORIGIN,
        size="256x256",
        response_format="b64_json",
    ),
    variation(
        "control",
        ("image", picture(3)),
        origin=CONTROL_ORIGIN,
        size="256x256",
        n=2,
        response_format="b64_json",
    ),
]
BRACKETS = edit(
    "brackets-mask",
    "gpt-image-1",
    ("image[]", picture(4)),
    ("image[]", picture(5, format="jpeg")),
    ("mask", MASK),
    rule="edits.image.brackets",
    size="1024x1024",
)
REPEATED = edit(
    "repeated-jpeg",
    "gpt-image-1",
    ("image", picture(6)),
    ("image", picture(7, format="webp")),
    ("mask", MASK),
    rule="edits.image.repeated",
    size="1536x1024",
    output_format="jpeg",
)
STREAMED = edit(
    "stream",
    "gpt-image-1",
    ("image[]", picture(8, alpha=True)),
    ("image[]", picture(9)),
    ("mask", MASK),
    stream=True,
    partial_images=1,
    size="1024x1024",
)
TRANSPARENT = edit(
    "transparent",
    "gpt-image-1",
    ("image", picture(16)),
    ("mask", MASK),
    background="transparent",
    output_format="webp",
    size="1024x1024",
)
DALLE_URL = edit(
    "d2-url-mask",
    "dall-e-2",
    ("image", picture(10)),
    ("mask", MASK),
    size="512x512",
    response_format="url",
)
INVALID_EDITS = [
    edit("no-image", "gpt-image-1", rule="edits.image.required", kind="invalid"),
    edit(
        "not-an-image",
        "gpt-image-1",
        ("image", picture(15, format="text")),
        rule="edits.image.decodes",
        kind="invalid",
    ),
    edit(
        "d2-not-square",
        "dall-e-2",
        ("image", picture(11, 256, 128)),
        rule="edits.image.square",
        kind="invalid",
    ),
    edit(
        "mask-other-size",
        "gpt-image-1",
        ("image", picture(12, 128, 128)),
        ("mask", MASK),
        rule="edits.mask.dimensions",
        kind="invalid",
    ),
]
VARIATIONS = [
    variation("url-512", ("image", picture(13)), size="512x512", response_format="url"),
    variation(
        "not-square",
        ("image", picture(14, 256, 200)),
        rule="variations.image.square",
        kind="invalid",
    ),
]
PLAN = [
    *CONTROLS,
    BRACKETS,
    REPEATED,
    STREAMED,
    TRANSPARENT,
    DALLE_URL,
    *INVALID_EDITS,
    *VARIATIONS,
]


def judged_run(
    base_url: str,
    api_key: str,
    cases: Sequence[Case],
    *,
    profile: Profile = OPENAI,
    endpoints: Sequence[str] = ("edits", "variations"),
) -> RunResult:
    """The cases sent and judged by the engine, as ``imgconf run`` does, and the run's verdict."""
    config = TransportConfig(base_url=base_url, api_key=api_key, timeout=60.0)
    results, stopped = asyncio.run(
        execute(list(cases), profile, config, budget=Budget(), concurrency=4)
    )
    run = RunResult.begin(
        profile,
        target=base_url,
        models=["dall-e-2", "gpt-image-1"],
        seed=0,
        plan=PlanFacts(cases=len(cases)),
        endpoints=endpoints,
    )
    return run.finish(settle_controls(results), stopped=stopped)


def failed(run: RunResult) -> set[str]:
    return {label.split(" @ ")[0] for label in run.verdict().failed}


def result_of(run: RunResult, case: Case):
    return next(r for r in run.results if r.case.id == case.id)


# --- the strict and lenient reference servers pass ----------------------------------------------


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
def test_the_reference_server_passes_edits_and_variations(lenient):
    with start_reference_server(api_key=KEY, lenient=lenient) as server:
        run = judged_run(server.base_url, KEY, PLAN)
    verdict = run.verdict()
    assert verdict.exit_code == 0, (verdict, [(r.case.id, r.findings) for r in run.results])
    assert {r.outcome for r in run.results} == {Outcome.PASS}
    # The stamp's rules were judged, exactly, on every output that showed them.
    for case in (BRACKETS, REPEATED, STREAMED):
        checked = set(result_of(run, case).checked)
        assert {"edits.mask.honoured", "edits.images.all_used", "image.size"} <= checked
    assert {"image.alpha", "edits.mask.honoured"} <= set(result_of(run, TRANSPARENT).checked)
    assert "edits.mask.honoured" in result_of(run, DALLE_URL).checked
    assert "response.url.fetch" in result_of(run, DALLE_URL).checked
    streamed = result_of(run, STREAMED)
    assert {"edits.stream.event.schema", "edits.stream.completed"} <= set(streamed.checked)
    assert "stream.event.schema" not in streamed.checked
    assert "image.size" in result_of(run, VARIATIONS[0]).checked
    # The visual rule is for answers without a stamp: not observed here, and not blocking.
    assert result_of(run, BRACKETS).unobserved["edits.mask.honoured.visual"] == "not_applicable"
    # The matrix names the endpoint of every cell beside generations.
    cells = run_matrix(run)
    assert {c.get("endpoint") for c in cells} == {"edits", "variations"}
    held = {(c["endpoint"], c["model"], c["rule"]) for c in cells if c["status"] == "pass"}
    assert ("edits", "gpt-image-1", "edits.images.all_used") in held
    assert ("variations", "dall-e-2", "image.size") in held


# --- the real plan ---------------------------------------------------------------------------------


def real_plan(models: Sequence[str], endpoints: Sequence[str]) -> list[Case]:
    return list(build_plan(OPENAI, models=models, endpoints=endpoints).cases)


# The strict server on this plan is also what a bare `imgconf run` (test_e2e_quirks) judges
# through the CLI, so here it runs with the slow tests only.
@pytest.mark.parametrize(
    "lenient",
    [pytest.param(False, id="strict", marks=pytest.mark.slow), pytest.param(True, id="lenient")],
)
def test_the_reference_server_passes_the_real_edit_and_variation_plan(lenient):
    cases = real_plan(["dall-e-2", "gpt-image-1"], ("edits", "variations"))
    assert {c.endpoint for c in cases} == {"edits", "variations"}
    with start_reference_server(api_key=KEY, lenient=lenient) as server:
        run = judged_run(server.base_url, KEY, cases)
    verdict = run.verdict()
    assert verdict.exit_code == 0, verdict
    outcomes = {r.outcome for r in run.results}
    assert outcomes <= ({Outcome.PASS, Outcome.WARN} if lenient else {Outcome.PASS}), outcomes
    held = {c["rule"] for c in run_matrix(run) if c["status"] == "pass"}
    assert {"edits.mask.honoured", "edits.images.all_used", "edits.stream.completed"} <= held


@pytest.mark.slow
@pytest.mark.parametrize("name", EDIT_QUIRKS)
def test_each_multipart_quirk_gives_its_declared_verdict_on_the_real_plan(name):
    quirk = QUIRKS[name]
    model = "gpt-image-1" if quirk.endpoint == "edits" else "dall-e-2"
    with start_reference_server(api_key=KEY, quirks=(name,)) as server:
        run = judged_run(server.base_url, KEY, real_plan([model], (quirk.endpoint,)))
    assert run.verdict().exit_code == 1
    assert set(quirk.breaks) <= failed(run), (name, run.verdict().failed)


# --- each multipart quirk: its declared verdict, naming its rule ---------------------------------

#: The cases each quirk shows on (with their controls).
QUIRK_CASES = {
    "edits-brackets-refused": [BRACKETS],
    "edits-brackets-stringified": [BRACKETS],
    "edits-mask-ignored": [REPEATED, DALLE_URL],
    "edits-mask-counted-twice": [BRACKETS],
    "edits-first-image-only": [BRACKETS, STREAMED],
    "edits-500-with-mask": [DALLE_URL, REPEATED],
    "variations-wrong-size": [VARIATIONS[0]],
}


def test_every_multipart_quirk_is_judged_and_has_cases() -> None:
    assert set(QUIRK_CASES) == set(EDIT_QUIRKS)
    assert set(EDIT_QUIRKS) <= set(QUIRKS)


@pytest.mark.parametrize("name", EDIT_QUIRKS)
def test_each_multipart_quirk_gives_its_declared_verdict(name):
    quirk = QUIRKS[name]
    with start_reference_server(api_key=KEY, quirks=(name,)) as server:
        run = judged_run(server.base_url, KEY, [*CONTROLS, *QUIRK_CASES[name]])
    verdict = run.verdict()
    assert quirk.verdict == "fail" and verdict.exit_code == 1, verdict
    assert set(quirk.breaks) <= failed(run), (name, verdict.failed)
    # The cell names its endpoint: `rule @ model (edits)`.
    assert all(label.endswith(f"({quirk.endpoint})") for label in verdict.failed), verdict.failed


# --- through a gateway that drops the mask and all images but the first -------------------------


def test_a_proxy_dropping_the_mask_and_images_fails_both_rules_as_must():
    with (
        start_reference_server(api_key=KEY) as server,
        run_proxy(server.base_url, KEY, fault="mask-and-images") as proxy,
    ):
        run = judged_run(proxy.base_url, proxy.api_key, [*CONTROLS, BRACKETS, STREAMED])
    verdict = run.verdict()
    assert verdict.exit_code == 1
    findings = {(f.rule, f.level) for f in result_of(run, BRACKETS).findings}
    assert ("edits.mask.honoured", "MUST") in findings
    assert ("edits.images.all_used", "MUST") in findings
    assert {"edits.mask.honoured", "edits.images.all_used"} <= failed(run)
    message = next(f.message for f in result_of(run, BRACKETS).findings if "all_used" in f.rule)
    assert "2 input image(s) were sent, the server used 1" in message


def test_the_same_proxy_passing_forms_on_unchanged_passes():
    with (
        start_reference_server(api_key=KEY) as server,
        run_proxy(server.base_url, KEY) as proxy,
    ):
        run = judged_run(proxy.base_url, proxy.api_key, [*CONTROLS, BRACKETS, REPEATED])
    assert run.verdict().exit_code == 0, run.verdict()


# --- the judge on hand-made answers ---------------------------------------------------------------


def _answer(*images: bytes) -> Exchange:
    body = {"created": 1, "data": [{"b64_json": base64.b64encode(i).decode()} for i in images]}
    body["usage"] = {
        "input_tokens": 1,
        "output_tokens": 1,
        "total_tokens": 2,
        "input_tokens_details": {"text_tokens": 1, "image_tokens": 0},
    }
    for name, value in (
        ("background", "opaque"),
        ("output_format", "png"),
        ("size", "1024x1024"),
        ("quality", "high"),
    ):
        body[name] = value
    return Exchange(
        method="POST",
        url="http://127.0.0.1/v1/images/edits",
        request_headers={},
        request_body=b"",
        status=200,
        response_headers={"content-type": "application/json"},
        response_body=json.dumps(body).encode(),
    )


def _png(image: Image.Image, stamp: dict[str, Any] | None = None) -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    if stamp is not None:
        info.add_text(codec.STAMP_KEY, codec.stamp_json(stamp))
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def _first_resized(recipe: InputFile, size: tuple[int, int]) -> Image.Image:
    return (
        Image.open(io.BytesIO(recipe.read())).convert("RGBA").resize(size, Image.Resampling.BICUBIC)
    )


ONE = edit("one", "gpt-image-1", ("image", picture(20)), ("mask", MASK), size="1024x1024")


def _judged(case: Case, data: bytes):
    return judge(case, _answer(data), OPENAI)


def _stamp(**fields: Any) -> dict[str, Any]:
    base = {
        codec.ENDPOINT_FIELD: "edits",
        codec.INPUTS_FIELD: 1,
        codec.IMAGES_FIELD: [picture(20).digest()],
        codec.MASK_FIELD: MASK.digest(),
        codec.REGION_FIELD: [256, 256, 640, 512],
        codec.SIZE_FIELD: [1024, 1024],
        codec.MARKS_FIELD: [],
        codec.RESAMPLE_FIELD: "bicubic",
    }
    return {**base, **fields}


def test_a_stamped_output_changed_outside_the_mask_breaks_the_mask_rule():
    image = _first_resized(picture(20), (1024, 1024))
    assert "edits.mask.honoured" not in {
        f.rule for f in _judged(ONE, _png(image, _stamp())).findings
    }
    image.putpixel((10, 900), (0, 0, 0, 255))  # one pixel outside the region
    result = _judged(ONE, _png(image, _stamp()))
    finding = next(f for f in result.findings if f.rule == "edits.mask.honoured")
    assert (
        finding.level == "MUST" and "outside the mask's transparent area changed" in finding.message
    )


def test_a_stamp_with_another_region_or_mask_breaks_the_mask_rule():
    image = _first_resized(picture(20), (1024, 1024))
    shifted = _judged(ONE, _png(image, _stamp(region=[0, 0, 640, 512])))
    assert "edits.mask.honoured" in {f.rule for f in shifted.findings}
    other = _judged(ONE, _png(image, _stamp(mask="0" * DIGEST_CHARS)))
    assert any("another mask" in f.message for f in other.findings)


def test_a_stamp_listing_inputs_out_of_order_breaks_all_used():
    two = edit(
        "two", "gpt-image-1", ("image[]", picture(21)), ("image[]", picture(22)), size="1024x1024"
    )
    digests = [picture(22).digest(), picture(21).digest()]
    image = Image.new("RGBA", (1024, 1024), (9, 9, 9, 255))
    result = _judged(two, _png(image, _stamp(images=digests, inputs=2, mask=None)))
    finding = next(f for f in result.findings if f.rule == "edits.images.all_used")
    assert "out of order" in finding.message


def test_without_a_stamp_the_mask_is_judged_visually_as_should():
    size = (1024, 1024)
    kept = _first_resized(picture(20), size)
    inside = Image.new("RGBA", (384, 256), (250, 10, 10, 255))
    edited = kept.copy()
    edited.paste(inside, (256, 256))
    result = _judged(ONE, _png(edited))
    assert "edits.mask.honoured.visual" in result.checked and not result.findings
    # The stamp's rules are not guessed without a stamp.
    assert result.unobserved["edits.mask.honoured"] == "not_applicable"
    assert result.unobserved["edits.images.all_used"] == "not_applicable"
    everywhere = Image.new("RGBA", size, (250, 10, 10, 255))
    broken = _judged(ONE, _png(everywhere))
    finding = next(f for f in broken.findings if f.rule == "edits.mask.honoured.visual")
    assert finding.level == "SHOULD" and f"at most {VISUAL_TOLERANCE:g}" in finding.message
    assert broken.outcome is Outcome.WARN


def test_edit_rules_are_registered_once_and_shown_only_on_their_endpoint():
    edit_answer_rules = set(showings("edits")) - set(showings())
    assert set(EDIT_CHECKS) == edit_answer_rules
    assert not set(EDIT_CHECKS) & set(showings())
    rules = endpoint_rules(OPENAI, "edits")
    assert rules["response.url"].models == ("dall-e-2",)
    assert "response.revised_prompt" not in rules


# --- transport: streamed, at the endpoint's path, recorded as a summary ---------------------------


def test_a_multipart_case_is_sent_streamed_at_its_path_and_recorded_without_its_files(
    monkeypatch,
):
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        seen["headers"] = dict(request.headers)
        seen["body"] = request.content
        return httpx.Response(400, json={"error": {"message": "no"}})

    big = picture(30, length=3_000_000)
    case = edit("big", "gpt-image-1", ("image", big), size="1024x1024")
    config = TransportConfig(
        base_url="http://127.0.0.1:9/openai",
        api_key=KEY,
        deployments={"gpt-image-1": "my-gpt"},
    )

    async def send() -> Exchange:
        with respx.mock() as mock:
            mock.post(url__regex=r".*").mock(side_effect=handler)
            async with TargetClient(config) as client:
                return await client.send(case)

    whole = Case.content
    with monkeypatch.context() as patched:
        # Sending never makes the body whole: only in pieces, as it goes out.
        patched.setattr(Case, "content", lambda self: pytest.fail("the body was held whole"))
        exchange = asyncio.run(send())
    seen["whole"] = whole(case)
    assert seen["url"] == "http://127.0.0.1:9/openai/deployments/my-gpt/images/edits"
    assert seen["headers"]["content-type"] == case.content_type
    assert int(seen["headers"]["content-length"]) == len(seen["body"]) == case.content_length()
    assert "transfer-encoding" not in seen["headers"]
    assert seen["body"] == seen["whole"]
    summary = json.loads(exchange.request_body)
    assert summary == request_summary(case) and summary["format"] == SUMMARY_FORMAT
    assert len(exchange.request_body) < 2000
    file = summary["parts"][-1]
    assert file["digest"] == big.digest() and file["bytes"] == 3_000_000
    assert InputFile.from_dict(file["recipe"]) == big


def test_generations_cases_are_sent_as_before():
    case = Case(
        id="g",
        model="dall-e-2",
        kind="valid",
        rule="request.valid.accepted",
        level="MUST",
        expect="accept",
        body={"model": "dall-e-2", "prompt": "a red square"},
    )
    config = TransportConfig(base_url="http://127.0.0.1:9/v1", api_key=KEY)
    assert config.path_of("dall-e-2") == "/images/generations"
    assert config.path_of("dall-e-2", "variations") == "/images/variations"
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["body"], seen["type"] = request.content, request.headers["content-type"]
        return httpx.Response(400, json={"error": {"message": "no"}})

    async def send() -> Exchange:
        with respx.mock() as mock:
            mock.post(url__regex=r".*").mock(side_effect=handler)
            async with TargetClient(config) as client:
                return await client.send(case)

    exchange = asyncio.run(send())
    assert seen["body"] == exchange.request_body == case.content()
    assert seen["type"] == "application/json"


# --- memory: a run with the largest inputs ---------------------------------------------------------

_MEMORY_RUN = """
import asyncio, resource, sys
sys.path.insert(0, {tests!r})
from test_edit_judging import CONTROLS, LARGEST, judged_run, real_plan
from conformance.server.launcher import start_reference_server
plan = [
    case
    for case in real_plan(["gpt-image-1"], ("edits",))
    if any(p.file is not None and p.file.size() > 10_000_000 for p in case.parts)
]
assert set(c.kind for c in plan) == set(("valid", "invalid"))
with start_reference_server(api_key="k") as server:
    run = judged_run(server.base_url, "k", [*plan, *CONTROLS, *LARGEST])
# This process's own peak. Its ru_maxrss would start at its parent's: Linux carries it over
# fork and exec, and an xdist worker that ran heavy tests before may hold 500 MB.
try:
    with open("/proc/self/status") as status:
        peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(run.verdict().exit_code, peak)
"""
#: The largest inputs the plan sends: a GPT image at the limit's stricter reading (valid), one
#: at 50 MiB and one at 50 MB + 1 byte past it (both refused), and a mask just under 4 MB.
LARGEST = [
    edit(
        "largest-valid",
        "gpt-image-1",
        ("image", picture(40, length=49_999_999)),
        (
            "mask",
            InputFile(
                role="mask",
                width=256,
                height=256,
                alpha=True,
                seed=41,
                box=(0, 0, 128, 128),
                length=3_999_999,
            ),
        ),
        size="1024x1024",
    ),
    edit(
        "largest-50mib",
        "gpt-image-1",
        ("image", picture(42, length=52_428_800)),
        rule="edits.image.bytes",
        kind="invalid",
    ),
    edit(
        "largest-over",
        "gpt-image-1",
        ("image", picture(43, length=52_428_801)),
        rule="edits.image.bytes",
        kind="invalid",
    ),
]


def test_a_run_with_the_largest_inputs_stays_under_400_mb():
    # A process of its own, so the peak is the run's (the server runs in another process).
    script = _MEMORY_RUN.format(tests=os.path.dirname(__file__))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    status, peak_kib = map(int, done.stdout.split()[-2:])
    assert status == 0
    assert peak_kib * 1024 < 400 * 1000 * 1000, f"peak RSS {peak_kib} KiB"
    assert resource.RUSAGE_SELF is not None  # VmHWM or ru_maxrss: KiB on Linux either way


def test_an_edit_stream_of_generation_events_breaks_the_edit_stream_rules():
    image = _first_resized(picture(20), (1024, 1024))
    b64 = base64.b64encode(_png(image)).decode()
    common = {
        "b64_json": b64,
        "created_at": 1,
        "size": "1024x1024",
        "quality": "high",
        "background": "opaque",
        "output_format": "png",
        "usage": {
            "input_tokens": 1,
            "output_tokens": 1,
            "total_tokens": 2,
            "input_tokens_details": {"text_tokens": 1, "image_tokens": 0},
        },
    }
    streamed = edit("s", "gpt-image-1", ("image", picture(20)), stream=True, size="1024x1024")

    def answer(kind: str) -> Exchange:
        event = json.dumps({"type": kind, **common})
        return Exchange(
            method="POST",
            url="http://127.0.0.1/v1/images/edits",
            request_headers={},
            request_body=b"",
            status=200,
            response_headers={"content-type": "text/event-stream"},
            response_body=f"event: {kind}\ndata: {event}\n\n".encode(),
        )

    held = judge(streamed, answer("image_edit.completed"), OPENAI)
    assert not held.findings and "edits.stream.completed" in held.checked
    broken = judge(streamed, answer("image_generation.completed"), OPENAI)
    assert {"edits.stream.event.schema", "edits.stream.completed"} <= {
        f.rule for f in broken.findings
    }


def test_a_garbled_stamp_is_judged_not_crashed_on():
    image = _first_resized(picture(20), (1024, 1024))
    garbled = _stamp(marks=[["a", 1, 2, 3], [5, 5, 1, 1], True], resample="nope", images="x")
    result = _judged(ONE, _png(image, garbled))
    assert result.reason is None and result.outcome is Outcome.FAIL
    assert {f.rule for f in result.findings} == {"edits.images.all_used"}
    assert "edits.mask.honoured" in result.checked


def test_a_model_in_scope_is_a_model_on_an_endpoint():
    generation = Case(
        id="generations-control-d2",
        model="dall-e-2",
        kind="valid",
        rule="request.valid.accepted",
        level="MUST",
        expect="accept",
        origin=CONTROL_ORIGIN,
        body={"model": "dall-e-2", "prompt": "a red square", "size": "256x256"},
        images=1,
    )
    everything = ("generations", "edits", "variations")
    with start_reference_server(api_key=KEY) as server:
        run = judged_run(server.base_url, KEY, [generation, *CONTROLS], endpoints=everything)
        edits_only = judged_run(server.base_url, KEY, CONTROLS[1:], endpoints=everything)
    # gpt-image-1 was judged on edits but not on generations; variations serve dall-e-2 only.
    verdict = run.verdict()
    assert verdict.exit_code == 3 and verdict.models_unjudged == ["gpt-image-1"], verdict
    assert edits_only.verdict().models_unjudged == [
        "dall-e-2",
        "gpt-image-1",
        "gpt-image-1 (edits)",
    ]
    # Generations cells are as they always were: no endpoint named.
    cells = run_matrix(run)
    assert all("endpoint" not in c for c in cells if c["rule"] == "request.valid.accepted")
    assert any(c.get("endpoint") == "edits" and c["rule"] == "image.size" for c in cells)
