"""Every check fails on a crafted bad answer and passes on a good one.

Answers are served by respx through the real transport, so each test covers the whole path a
run takes: send, read, fetch URLs, judge.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from functools import cache
from typing import Any

import httpx
import pytest
import respx
from PIL import Image

from conformance.contract.loader import load_contract
from conformance.contract.profiles import load_profile
from conformance.engine.checks import ANSWER_RULES, SSEParser, judge
from conformance.engine.results import CaseResult, Outcome
from conformance.engine.transport import TargetClient, TransportConfig
from conformance.generation.cases import Case

BASE = "http://target.test/v1"
ENDPOINT = BASE + "/images/generations"
KEY = "sk-test-checks-0123456789"
OPENAI = load_profile("openai")


@cache
def image_bytes(width: int = 64, height: int = 64, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    colour = (200, 30, 30, 0) if mode == "RGBA" else (200, 30, 30)
    Image.new(mode, (width, height), colour[: len(mode)]).save(out, format=fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def make_case(
    body: Any = None,
    *,
    model: str | None = None,
    kind: str = "valid",
    rule: str = "request.valid.accepted",
    level: str = "MUST",
    expect: str = "accept",
    **extra: Any,
) -> Case:
    body = {"prompt": "a red square"} if body is None else body
    if model is None:
        model = body.get("model", "*") if isinstance(body, dict) else "*"
    return Case(
        id=f"t-{rule}",
        model=model,
        kind=kind,
        rule=rule,
        level=level,
        expect=expect,
        body=body,
        **extra,
    )


def gpt_answer(n: int = 1, size: str = "1024x1024", **override: Any) -> dict[str, Any]:
    width, height = (int(x) for x in size.split("x"))
    answer: dict[str, Any] = {
        "created": 1700000000,
        "data": [{"b64_json": b64(image_bytes(width, height))} for _ in range(n)],
        "background": "opaque",
        "output_format": "png",
        "size": size,
        "quality": "low",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 20,
            "total_tokens": 30,
            "input_tokens_details": {"text_tokens": 10, "image_tokens": 0},
        },
    }
    answer.update(override)
    return answer


def gpt_body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-image-1", "prompt": "a red square", "size": "1024x1024", **fields}


def run(
    case: Case,
    response: httpx.Response | Exception | list[httpx.Response],
    *,
    images: dict[str, httpx.Response] | None = None,
    profile: Any = OPENAI,
    **config: Any,
) -> CaseResult:
    async def go() -> CaseResult:
        with respx.mock(assert_all_called=False, assert_all_mocked=False) as mock:
            route = mock.route(method="POST", url__startswith=ENDPOINT)
            if isinstance(response, list | Exception):
                route.side_effect = response
            else:
                route.return_value = response
            for url, answer in (images or {}).items():
                mock.get(url).return_value = answer
            settings = {"retries": 2, "default_retry_wait": 0.0, **config}
            async with TargetClient(TransportConfig(BASE, api_key=KEY, **settings)) as transport:
                exchange = await transport.send_case(case)
            return judge(case, exchange, profile)

    return asyncio.run(go())


def ok_json(answer: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=answer, headers=headers)


def error(status: int = 400, param: str | None = "n", **fields: Any) -> httpx.Response:
    body = {
        "error": {"message": "bad", "type": "invalid_request_error", "param": param, "code": None}
    }
    body["error"].update(fields)
    return httpx.Response(status, json=body)


def rules_of(result: CaseResult, level: str | None = None) -> set[str]:
    return {f.rule for f in result.findings if level is None or f.level == level}


# --- the catalogue and the judge agree ----------------------------------------------------


def test_every_answer_rule_of_the_catalogue_is_judged_by_id():
    contract = load_contract()
    about_answers = {r.id for r in contract.rules.values() if r.kind != "reject"}
    assert about_answers <= set(ANSWER_RULES)
    assert set(ANSWER_RULES) <= set(contract.rules)


# --- a good answer passes, each bad one fails its rule -----------------------------------


def test_good_gpt_answer_passes_every_rule():
    result = run(make_case(gpt_body(quality="low")), ok_json(gpt_answer()))
    assert result.outcome is Outcome.PASS, result.findings
    for rule in (
        "response.content_type",
        "response.schema",
        "response.data.count",
        "response.b64_json",
        "image.decodes",
        "image.format",
        "image.size",
        "response.usage.present",
        "response.usage.schema",
        "response.usage.total",
        "response.echo",
        "transport.no_5xx",
    ):
        assert rule in result.checked
    assert result.images[0].width == 1024 and result.images[0].format == "png"


def test_good_dalle_url_answer_is_fetched_without_the_key_and_passes():
    body = {"model": "dall-e-2", "prompt": "x", "size": "256x256"}
    answer = {"created": 1, "data": [{"url": "http://images.test/a.png"}]}
    fetched: list[httpx.Request] = []

    async def go() -> CaseResult:
        with respx.mock() as mock:
            mock.post(ENDPOINT).return_value = ok_json(answer)

            def serve(request: httpx.Request) -> httpx.Response:
                fetched.append(request)
                return httpx.Response(200, content=image_bytes(256, 256))

            mock.get("http://images.test/a.png").side_effect = serve
            async with TargetClient(TransportConfig(BASE, api_key=KEY)) as transport:
                exchange = await transport.send_case(make_case(body))
        return judge(make_case(body), exchange, OPENAI)

    result = asyncio.run(go())
    assert result.outcome is Outcome.PASS, result.findings
    assert {"response.url", "response.url.fetch", "image.size"} <= set(result.checked)
    assert fetched and "authorization" not in fetched[0].headers


@pytest.mark.parametrize(
    ("answer", "rule"),
    [
        (
            httpx.Response(
                200,
                content=json.dumps(gpt_answer()).encode(),
                headers={"content-type": "text/plain"},
            ),
            "response.content_type",
        ),
        (
            httpx.Response(200, content=b"{not json", headers={"content-type": "application/json"}),
            "transport.well_formed",
        ),
        (ok_json(gpt_answer(created="yesterday")), "response.schema"),
        (ok_json(gpt_answer(n=2)), "response.data.count"),
        (ok_json(gpt_answer(extra=[{}] * 100_001)), "response.schema"),
        (ok_json(gpt_answer(data=[{"url": "http://images.test/x.png"}])), "response.b64_json"),
        (ok_json(gpt_answer(data=[{"b64_json": "!!not base64!!"}])), "image.decodes"),
        (
            ok_json(gpt_answer(data=[{"b64_json": b64(image_bytes(1024, 1024)[:300])}])),
            "image.decodes",
        ),
        (
            ok_json(gpt_answer(data=[{"b64_json": b64(image_bytes(1024, 1024, fmt="JPEG"))}])),
            "image.format",
        ),
        (ok_json(gpt_answer(data=[{"b64_json": b64(image_bytes(512, 512))}])), "image.size"),
        (ok_json(gpt_answer(usage={"input_tokens": "10"})), "response.usage.schema"),
        (httpx.Response(500, json={"error": {"message": "boom"}}), "transport.no_5xx"),
        (httpx.Response(400, json={"error": {"message": "no"}}), "request.valid.accepted"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_answers_fail_their_must_rule(answer, rule):
    result = run(make_case(gpt_body()), answer)
    assert result.outcome is Outcome.FAIL
    assert rule in rules_of(result, "MUST"), result.findings


def test_brackets_inside_an_answers_strings_are_not_taken_for_containers():
    prompt = "[{" * 60_000
    result = run(make_case(gpt_body()), ok_json(gpt_answer(revised_prompt=prompt)))
    assert "response.schema" not in rules_of(result), result.findings


@pytest.mark.parametrize(
    ("answer", "rule"),
    [
        (gpt_answer(usage="none"), "response.usage.schema"),
        ({k: v for k, v in gpt_answer().items() if k != "usage"}, "response.usage.present"),
        ({k: v for k, v in gpt_answer().items() if k != "output_format"}, "response.echo"),
        (gpt_answer() | {"size": "1536x1024"}, "response.echo"),
        (gpt_answer(quality="auto"), "response.echo"),
        (gpt_answer(usage={**gpt_answer()["usage"], "total_tokens": 31}), "response.usage.total"),
    ],
)
def test_usage_and_echo_rules(answer, rule):
    result = run(make_case(gpt_body(quality="low")), ok_json(answer))
    assert rule in rules_of(result), result.findings
    level = OPENAI.rules()[rule].level
    assert result.outcome is (Outcome.FAIL if level == "MUST" else Outcome.WARN)


def test_the_profile_decides_the_level_usage_present_is_must_for_applerouter():
    router = load_profile("applerouter")
    answer = {k: v for k, v in gpt_answer().items() if k != "usage"}
    result = run(make_case(gpt_body(quality="low")), ok_json(answer), profile=router)
    assert result.outcome is Outcome.FAIL
    assert "response.usage.present" in rules_of(result, "MUST")


def test_a_rule_the_model_is_not_held_to_is_neither_judged_nor_broken(tmp_path):
    """A profile that holds only dall-e-3 to image.size: a dall-e-2 image of another size is
    no finding, and image.size is not counted as observed for dall-e-2."""
    path = tmp_path / "narrow.yaml"
    path.write_text(
        "name: narrow\nmodels: [dall-e-2, dall-e-3]\n"
        "rules:\n  image.size: {level: MUST, models: [dall-e-3]}\n",
        encoding="utf-8",
    )
    narrow = load_profile(str(path))
    body = {"model": "dall-e-2", "prompt": "a red square", "size": "512x512"}
    body["response_format"] = "b64_json"
    answer = {"created": 1, "data": [{"b64_json": b64(image_bytes(64, 64))}]}
    held = run(make_case(body), ok_json(answer), profile=OPENAI)
    assert "image.size" in rules_of(held, "MUST")
    result = run(make_case(body), ok_json(answer), profile=narrow)
    assert "image.size" not in rules_of(result) and "image.size" not in result.checked
    assert result.outcome is Outcome.PASS, result.findings


def test_transparent_background_needs_alpha():
    body = gpt_body(background="transparent", output_format="png")
    opaque = gpt_answer(background="transparent")
    result = run(make_case(body), ok_json(opaque))
    assert "image.alpha" in rules_of(result, "MUST")
    good = gpt_answer(
        background="transparent",
        data=[{"b64_json": b64(image_bytes(1024, 1024, mode="RGBA"))}],
    )
    result = run(make_case(body), ok_json(good))
    assert result.outcome is Outcome.PASS, result.findings
    assert result.images[0].has_alpha is True


def test_webp_asked_webp_given():
    body = gpt_body(output_format="webp")
    webp = b64(image_bytes(1024, 1024, fmt="WEBP"))
    result = run(
        make_case(body), ok_json(gpt_answer(output_format="webp", data=[{"b64_json": webp}]))
    )
    assert result.outcome is Outcome.PASS, result.findings
    result = run(make_case(body), ok_json(gpt_answer(output_format="webp")))
    assert "image.format" in rules_of(result, "MUST")


def test_dalle_url_rules():
    body = {"model": "dall-e-2", "prompt": "x", "size": "256x256"}
    as_b64 = {"created": 1, "data": [{"b64_json": b64(image_bytes(256, 256))}]}
    assert "response.url" in rules_of(run(make_case(body), ok_json(as_b64)))
    ftp = {"created": 1, "data": [{"url": "ftp://images.test/a.png"}]}
    assert "response.url" in rules_of(run(make_case(body), ok_json(ftp)))
    gone = {"created": 1, "data": [{"url": "http://images.test/gone.png"}]}
    result = run(
        make_case(body), ok_json(gone), images={"http://images.test/gone.png": httpx.Response(404)}
    )
    assert "response.url.fetch" in rules_of(result, "MUST")
    wrong = {"created": 1, "data": [{"url": "http://images.test/w.png"}]}
    result = run(
        make_case(body),
        ok_json(wrong),
        images={"http://images.test/w.png": httpx.Response(200, content=image_bytes(512, 512))},
    )
    assert "image.size" in rules_of(result, "MUST")


def test_dalle_b64_asked():
    body = {"model": "dall-e-2", "prompt": "x", "size": "256x256", "response_format": "b64_json"}
    good = {"created": 1, "data": [{"b64_json": b64(image_bytes(256, 256))}]}
    assert run(make_case(body), ok_json(good)).outcome is Outcome.PASS
    url = {"created": 1, "data": [{"url": "http://images.test/a.png"}]}
    assert "response.b64_json" in rules_of(run(make_case(body), ok_json(url)))


def test_revised_prompt_for_dalle_3():
    body = {"model": "dall-e-3", "prompt": "x", "size": "1024x1024", "response_format": "b64_json"}
    image = b64(image_bytes(1024, 1024))
    result = run(make_case(body), ok_json({"created": 1, "data": [{"b64_json": image}]}))
    assert result.outcome is Outcome.WARN and "response.revised_prompt" in rules_of(
        result, "SHOULD"
    )
    good = {"created": 1, "data": [{"b64_json": image, "revised_prompt": "a red square"}]}
    assert run(make_case(body), ok_json(good)).outcome is Outcome.PASS


# --- streams -------------------------------------------------------------------------------


def sse(*events: Any, raw: bytes = b"") -> httpx.Response:
    chunks = [f"event: {e.get('type', 'x')}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
    return httpx.Response(
        200, content=b"".join(chunks) + raw, headers={"content-type": "text/event-stream"}
    )


def stream_event(kind: str = "completed", **override: Any) -> dict[str, Any]:
    event = {
        "type": f"image_generation.{kind}",
        "b64_json": b64(image_bytes(1024, 1024)),
        "created_at": 1,
        "size": "1024x1024",
        "quality": "low",
        "background": "opaque",
        "output_format": "png",
    }
    if kind == "completed":
        event["usage"] = gpt_answer()["usage"]
    else:
        event["partial_image_index"] = override.pop("partial_image_index", 0)
    event.update(override)
    return event


def test_good_stream_passes():
    body = gpt_body(stream=True, partial_images=1)
    result = run(make_case(body), sse(stream_event("partial_image"), stream_event()))
    assert result.outcome is Outcome.PASS, result.findings
    assert {
        "stream.content_type",
        "stream.event.schema",
        "stream.partial.count",
        "stream.completed",
    } <= set(result.checked)


@pytest.mark.parametrize(
    ("response", "rule"),
    [
        (ok_json(gpt_answer()), "stream.content_type"),
        (sse(stream_event(created_at="now")), "stream.event.schema"),
        (sse(raw=b"data: {broken\n\n"), "stream.event.schema"),
        (
            sse(
                stream_event("partial_image"),
                stream_event("partial_image", partial_image_index=1),
                stream_event(),
            ),
            "stream.partial.count",
        ),
        (sse(stream_event("partial_image")), "stream.completed"),
        (sse(stream_event(), stream_event()), "stream.completed"),
        (sse(stream_event(b64_json=b64(image_bytes(512, 512)))), "image.size"),
    ],
)
def test_bad_streams_fail(response, rule):
    result = run(make_case(gpt_body(stream=True, partial_images=1)), response)
    assert rule in rules_of(result, "MUST"), result.findings


def test_sse_parser_handles_any_chunking_and_line_endings():
    stream = b": comment\r\ndata: one\r\n\r\ndata: two\ndata: lines\n\ndata: tail"
    for size in (1, 2, 3, 7, len(stream)):
        parser = SSEParser()
        events = []
        for start in range(0, len(stream), size):
            events.extend(parser.feed(stream[start : start + size]))
        events.extend(parser.close())
        assert events == ["one", "two\nlines", "tail"], size


def test_sse_parser_caps_an_endless_event():
    parser = SSEParser(cap=1000)
    with pytest.raises(ValueError):
        list(parser.feed(b"data: " + b"x" * 2000))


# --- rejections and errors -----------------------------------------------------------------


def reject_case(body: dict[str, Any], rule: str, level: str = "MUST") -> Case:
    return make_case(body, kind="invalid", rule=rule, level=level, expect="reject")


def test_reject_rules():
    case = reject_case(gpt_body(n=11), "request.n.max")
    assert run(case, error(param="n")).outcome is Outcome.PASS
    accepted = run(case, ok_json(gpt_answer(n=11)))
    assert accepted.outcome is Outcome.FAIL and "request.n.max" in rules_of(accepted, "MUST")
    redirect = run(case, httpx.Response(302, headers={"location": "http://elsewhere.test/"}))
    assert "request.n.max" in rules_of(redirect, "MUST")


def test_should_reject_rule_accepted_is_a_warning():
    case = reject_case(gpt_body(foo=1), "request.unknown_field", "SHOULD")
    result = run(case, ok_json(gpt_answer()))
    assert result.outcome is Outcome.WARN
    assert run(case, error(param="foo")).outcome is Outcome.PASS


@pytest.mark.parametrize(
    ("response", "rule", "level"),
    [
        (httpx.Response(400, content=b"bad request"), "error.envelope", "MUST"),
        (httpx.Response(400, json={"error": "bad"}), "error.envelope", "MUST"),
        (httpx.Response(400, json={"message": "bad"}), "error.envelope", "MUST"),
        (error(422), "error.status_400", "SHOULD"),
        (httpx.Response(400, json={"error": {"message": "bad"}}), "error.fields", "SHOULD"),
        (error(param="size"), "error.param", "SHOULD"),
    ],
)
def test_error_rules(response, rule, level):
    result = run(reject_case(gpt_body(n=0), "request.n.min"), response)
    assert rule in rules_of(result, level), result.findings


@pytest.mark.parametrize("auth", ["missing", "wrong"])
def test_auth_rules_need_401(auth):
    case = make_case(gpt_body(), kind="invalid", rule=f"auth.{auth}", expect="reject", auth=auth)
    assert run(case, error(401, param=None)).outcome is Outcome.PASS
    for status in (403, 400):
        assert f"auth.{auth}" in rules_of(run(case, error(status, param=None)), "MUST")
    assert f"auth.{auth}" in rules_of(run(case, ok_json(gpt_answer())), "MUST")


def test_auth_cases_send_no_key_or_a_wrong_one():
    seen: list[httpx.Request] = []

    async def go(auth: str) -> None:
        with respx.mock() as mock:
            mock.post(ENDPOINT).side_effect = lambda r: seen.append(r) or error(401, param=None)
            async with TargetClient(TransportConfig(BASE, api_key=KEY)) as transport:
                await transport.send(make_case(gpt_body(), auth=auth))

    asyncio.run(go("missing"))
    asyncio.run(go("wrong"))
    asyncio.run(go("valid"))
    assert "authorization" not in seen[0].headers
    assert KEY not in seen[1].headers["authorization"]
    assert seen[2].headers["authorization"] == f"Bearer {KEY}"


def test_unsupported_param_probe_either_way():
    body = gpt_body(style="vivid")
    case = make_case(
        body, kind="probe", rule="request.unsupported_param", level="SHOULD", expect="either"
    )
    assert run(case, error(param="style")).outcome is Outcome.PASS
    assert run(case, ok_json(gpt_answer())).outcome is Outcome.PASS
    assert "request.unsupported_param" in rules_of(run(case, error(422, param="style")), "SHOULD")
    # Ignored is fine, but the answer must still be right.
    assert "response.data.count" in rules_of(run(case, ok_json(gpt_answer(n=2))), "MUST")


def test_model_default_probe_is_judged_like_dalle_2():
    case = make_case(
        {"prompt": "x", "response_format": "b64_json"},
        model="*",
        kind="probe",
        rule="request.model.default",
        level="SHOULD",
    )
    good = {"created": 1, "data": [{"b64_json": b64(image_bytes(256, 256))}]}
    assert run(case, ok_json(good)).outcome is Outcome.PASS
    # No size asked: the image must still be one of the answering model's sizes.
    odd = {"created": 1, "data": [{"b64_json": b64(image_bytes(100, 100))}]}
    assert "image.size" in rules_of(run(case, ok_json(odd)), "MUST")
    refused = run(case, error(param="model"))
    assert refused.outcome is Outcome.WARN and "request.model.default" in rules_of(refused)


def test_trailing_slash_probe():
    case = make_case(
        gpt_body(),
        model="gpt-image-1",
        kind="probe",
        rule="transport.trailing_slash",
        level="SHOULD",
        path_suffix="/",
    )
    assert "transport.trailing_slash" in rules_of(run(case, error(404, param=None)), "SHOULD")
    assert (
        run(case, ok_json(gpt_answer(quality="low") | {"quality": "high"})).outcome is Outcome.PASS
    )


# --- transport failures and retries --------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "rule"),
    [
        (httpx.ReadTimeout("slow"), "transport.timeout"),
        (httpx.ConnectError("refused"), "transport.connection"),
        (httpx.ReadError("reset"), "transport.connection"),
        (httpx.RemoteProtocolError("garbage"), "transport.well_formed"),
    ],
)
def test_transport_failures_are_findings(failure, rule):
    result = run(make_case(gpt_body()), failure)
    assert result.outcome is Outcome.FAIL and rule in rules_of(result, "MUST")


def test_a_body_cut_by_a_cap_below_a_conformant_answer_is_not_observed_not_failed():
    """A cap lowered under what the answer may hold is the run's own bound: nothing is held
    against the target, and the run cannot PASS on it either."""
    result = run(make_case(gpt_body()), ok_json(gpt_answer()), body_cap=1000)
    assert result.outcome is Outcome.NOT_OBSERVED and result.reason == "over_limit"
    assert not result.findings
    assert "--limit body_cap (1000 bytes)" in result.note and "raise it" in result.note
    assert result.exchange is not None and len(result.exchange.response_body) <= 1000
    assert result.exchange.cut_at == ("body_cap", 1000)


def test_a_body_larger_than_any_conformant_answer_is_cut_and_fails():
    """256x256, one image in base64: a conformant answer holds about 3 MiB at the very most
    (16-bit RGBA pixels and room for metadata and JSON), so 6 MiB under a 4 MiB cap is the
    target's fault."""
    body = {"model": "dall-e-2", "prompt": "x", "size": "256x256", "response_format": "b64_json"}
    huge = httpx.Response(200, content=b'{"created": 1, "data": [' + b" " * (6 << 20) + b"]}")
    result = run(make_case(body), huge, body_cap=4 << 20)
    assert result.outcome is Outcome.FAIL
    assert "transport.well_formed" in rules_of(result, "MUST")
    message = next(f.message for f in result.findings if f.rule == "transport.well_formed")
    assert "passed --limit body_cap (4.0 MiB)" in message and "can hold" in message
    # The same answer to ten 1024x1024 images could be conformant under that cap: not judged.
    ten = {**body, "size": "1024x1024", "n": 10}
    assert run(make_case(ten), huge, body_cap=4 << 20).reason == "over_limit"


def test_an_image_url_cut_by_the_fetch_cap_is_judged_by_the_image_it_may_be():
    body = {"model": "dall-e-2", "prompt": "x", "size": "256x256"}
    answer = {"created": 1, "data": [{"url": "http://images.test/a.png"}]}
    big = httpx.Response(200, content=b"\x89PNG" + b"\0" * (3 << 20))
    images = {"http://images.test/a.png": big}
    low = run(make_case(body), ok_json(answer), images=images, fetch_cap=4096)
    assert not low.findings  # the answer was accepted; its image could not be seen
    assert low.unobserved["response.url.fetch"] == low.unobserved["image.size"] == "over_limit"
    assert "--limit fetch_cap (4096 bytes)" in low.note
    # 3 MiB for 256x256 pixels is more than any image of them holds (0.5 MiB and 1 MiB room).
    high = run(make_case(body), ok_json(answer), images=images, fetch_cap=2 << 20)
    assert "response.url.fetch" in rules_of(high, "MUST")


def test_429_is_retried_and_retry_after_is_judged():
    good = ok_json(gpt_answer(quality="low"))
    with_header = httpx.Response(
        429, json={"error": {"message": "slow down"}}, headers={"retry-after": "0"}
    )
    without = httpx.Response(429, json={"error": {"message": "slow down"}})
    result = run(make_case(gpt_body(quality="low")), [with_header, good])
    assert result.outcome is Outcome.PASS and result.exchange.retries == 1
    assert "transport.retry_after" in result.checked
    result = run(make_case(gpt_body(quality="low")), [without, good])
    assert result.outcome is Outcome.WARN and "transport.retry_after" in rules_of(result, "SHOULD")


def test_429_until_the_end_is_not_observed_as_throttled():
    busy = httpx.Response(503, json={"error": {"message": "busy"}}, headers={"retry-after": "0"})
    result = run(make_case(gpt_body()), [busy, busy, busy])
    assert result.outcome is Outcome.NOT_OBSERVED and result.reason == "throttled"
    assert result.exchange.retries == 2


def test_a_retry_after_beyond_the_cap_is_not_waited_for():
    busy = httpx.Response(429, json={"error": {"message": "busy"}}, headers={"retry-after": "3600"})
    result = run(make_case(gpt_body()), [busy, busy, busy])
    assert result.outcome is Outcome.NOT_OBSERVED and result.exchange.retries == 0


def test_a_flood_of_items_or_events_is_judged_in_bounded_time():
    import time

    flood = gpt_answer(data=[{"b64_json": "AAAA"}] * 50_000)
    started = time.perf_counter()
    result = run(make_case(gpt_body()), ok_json(flood))
    assert "response.data.count" in rules_of(result, "MUST")
    assert len(result.images) <= 16
    events = [stream_event("partial_image", b64_json="AAAA")] * 2000 + [stream_event()]
    result = run(make_case(gpt_body(stream=True, partial_images=1)), sse(*events))
    assert "stream.partial.count" in rules_of(result, "MUST")
    assert time.perf_counter() - started < 5


# --- null in optional answer fields: a SHOULD, read as absent ---------------------------------


def test_null_optional_fields_are_a_should_warning_not_a_must_failure():
    nulls = {"revised_prompt": None, "url": None}
    answer = gpt_answer(quality=None) | {
        "data": [{"b64_json": b64(image_bytes(1024, 1024))} | nulls]
    }
    result = run(make_case(gpt_body(quality="low")), ok_json(answer))
    assert not rules_of(result, "MUST"), result.findings
    assert result.outcome is Outcome.WARN
    (finding,) = [f for f in result.findings if f.rule == "response.nulls"]
    assert finding.level == "SHOULD"
    assert "data/*/revised_prompt" in finding.message and "data/*/url" in finding.message
    assert "quality" in finding.message
    # Read as absent: the echo of quality is missing, as if it had been left out.
    assert "response.echo" in rules_of(result, "SHOULD")
    clean = run(make_case(gpt_body(quality="low")), ok_json(gpt_answer()))
    assert "response.nulls" in clean.checked and clean.outcome is Outcome.PASS


def test_a_null_beside_the_url_of_a_dalle_answer_is_only_a_warning():
    """LiteLLM's dall-e answers: ``b64_json: null`` beside the url, null echo fields."""
    body = {"model": "dall-e-2", "prompt": "x", "size": "256x256"}
    item = {"url": "http://images.test/a.png", "b64_json": None, "revised_prompt": None}
    answer = {"created": 1, "data": [item], "background": None, "size": None, "usage": None}
    result = run(
        make_case(body),
        ok_json(answer),
        images={"http://images.test/a.png": httpx.Response(200, content=image_bytes(256, 256))},
    )
    assert not rules_of(result, "MUST"), result.findings
    assert rules_of(result) == {"response.nulls"}
    assert {"response.url.fetch", "image.size"} <= set(result.checked)


def test_a_null_usage_is_an_absent_usage():
    answer = gpt_answer(usage=None)
    result = run(make_case(gpt_body(quality="low")), ok_json(answer))
    assert not rules_of(result, "MUST"), result.findings
    assert {"response.nulls", "response.usage.present"} <= rules_of(result, "SHOULD")
    assert "response.usage.schema" not in result.checked


@pytest.mark.parametrize(
    ("override", "rule"),
    [
        ({"created": None}, "response.schema"),
        ({"data": None}, "response.schema"),
        # b64 was asked: a null one is no image at all.
        ({"data": [{"b64_json": None}]}, "response.b64_json"),
        # Inside usage, the token counts are required: null is not a count.
        ({"usage": {**gpt_answer()["usage"], "input_tokens": None}}, "response.usage.schema"),
    ],
    ids=["created", "data", "b64_json-asked", "usage-count"],
)
def test_a_null_where_a_value_is_required_is_still_a_must_failure(override, rule):
    result = run(make_case(gpt_body(quality="low")), ok_json(gpt_answer(**override)))
    assert rule in rules_of(result, "MUST"), result.findings


def test_stream_events_keep_their_required_nulls_and_no_other_null_is_invented():
    body = gpt_body(stream=True, partial_images=1)
    # Every field of the spec's events is required: a null one breaks the event's schema.
    broken = run(make_case(body), sse(stream_event(size=None)))
    assert "stream.event.schema" in rules_of(broken, "MUST")
    assert "response.nulls" not in rules_of(broken)
    # A null in a field the spec does not declare is nobody's business.
    extra = run(make_case(body), sse(stream_event(vendor_field=None)))
    assert extra.outcome is Outcome.PASS and "response.nulls" in extra.checked


def test_optional_nulls_are_told_from_required_ones_through_refs_and_branches():
    from conformance.engine.checks import _drop_optional_nulls

    schema = {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"type": "string"}, "items": {"items": {"$ref": "#/$defs/Item"}}},
        "oneOf": [
            {"required": ["a"], "properties": {"a": {"type": "string"}}},
            {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
        ],
        "$defs": {"Item": {"required": ["id"], "properties": {"id": {}, "note": {}}}},
    }
    instance = {
        "kind": None,
        "a": None,
        "b": None,
        "undeclared": None,
        "items": [{"id": None, "note": None}, {"id": 1, "note": None}],
    }
    found: list[str] = []
    out = _drop_optional_nulls(instance, schema, schema, "", found)
    assert out == {
        "kind": None,
        "a": None,
        "undeclared": None,
        "items": [{"id": None}, {"id": 1}],
    }
    assert found == ["b", "items/*/note"]


def test_a_million_items_or_events_never_become_a_million_objects():
    import time
    import tracemalloc

    items = b'{"created": 1, "data": [' + b",".join([b'{"b64_json": "AAAA"}'] * 1_000_000) + b"]}"
    event = b'data: {"type": "image_generation.partial_image", "b64_json": "AAAA"}\n\n'
    tracemalloc.start()
    started = time.perf_counter()
    result = run(
        make_case(gpt_body()),
        httpx.Response(200, content=items, headers={"content-type": "application/json"}),
    )
    assert "response.schema" in rules_of(result, "MUST")
    streamed = run(
        make_case(gpt_body(stream=True)),
        httpx.Response(200, content=event * 500_000, headers={"content-type": "text/event-stream"}),
    )
    assert "stream.event.schema" in rules_of(streamed, "MUST")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.perf_counter() - started < 10
    # Beyond the bodies themselves (20 MB and 36 MB), judging holds little.
    assert peak < 400 * 2**20, peak
