"""Hand-built runs for the report tests: passing, failing (with a hostile server), incomplete and
budget-cut. They use only the result types, so the reports are tested without a runner."""

from __future__ import annotations

import base64
import io
import json
import time

from PIL import Image

from conformance.contract.profiles import load_profile
from conformance.engine.results import (
    BudgetFacts,
    CaseResult,
    Exchange,
    Finding,
    ImageInfo,
    Outcome,
    PlanFacts,
    Reason,
    RunResult,
)
from conformance.generation.cases import ANY_MODEL, Case

TARGET = "http://user:pa55@127.0.0.1:9/v1"
ENDPOINT = "http://127.0.0.1:9/v1/images/generations"
#: What a hostile server puts in its answers: markup, a key-like token, control characters.
HOSTILE = '<script>alert("x")</script><img src=https://evil.example/x.png> sk-proj-AAAAAAAAAAAAAAAAAAAAAAAA \x00\x1b[31m'


def png(
    width: int, height: int, colour: tuple[int, ...] = (200, 40, 40), mode: str = "RGB"
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def thumb(colour: tuple[int, ...] = (200, 40, 40), mode: str = "RGB") -> bytes:
    return png(32, 32, colour, mode)


def case(
    case_id: str,
    model: str = "dall-e-2",
    *,
    kind: str = "valid",
    rule: str = "request.valid.accepted",
    level: str = "MUST",
    body: dict | None = None,
    raw: bytes | None = None,
    auth: str = "valid",
    origin: str = "each-choice",
    title: str = "",
) -> Case:
    if body is None and raw is None:
        body = {
            "model": model,
            "prompt": "a red square",
            "size": "256x256",
            "response_format": "b64_json",
        }
    expect = {"valid": "accept", "invalid": "reject", "probe": "either"}[kind]
    return Case(
        id=case_id,
        model=model,
        kind=kind,  # type: ignore[arg-type]
        rule=rule,
        level=level,
        expect=expect,  # type: ignore[arg-type]
        body=body,
        raw=raw,
        auth=auth,  # type: ignore[arg-type]
        origin=origin,
        images=1 if kind == "valid" else 0,
        cost=0.016,
        title=title or case_id,
    )


def exchange(
    the_case: Case, status: int | None, body: bytes, content_type: str = "application/json"
) -> Exchange:
    headers = {"content-type": "application/json"}
    if the_case.auth != "missing":
        headers["authorization"] = "Bearer [REDACTED]"
    return Exchange(
        method="POST",
        url=ENDPOINT,
        request_headers=headers,
        request_body=the_case.content(),
        status=status,
        response_headers={"content-type": content_type} if status else {},
        response_body=body,
        started=time.time(),
        elapsed=0.05,
    )


def ok_body(images: list[bytes]) -> bytes:
    return json.dumps(
        {"created": 1, "data": [{"b64_json": base64.b64encode(i).decode()} for i in images]}
    ).encode()


def gpt_answer(images: list[bytes], *, background: str = "opaque") -> dict:
    """A conformant GPT image answer to a 1024x1024 low-quality PNG request."""
    return {
        **json.loads(ok_body(images)),
        "background": background,
        "output_format": "png",
        "size": "1024x1024",
        "quality": "low",
        "usage": {
            "input_tokens": 1,
            "output_tokens": 2,
            "total_tokens": 3,
            "input_tokens_details": {"text_tokens": 1, "image_tokens": 0},
        },
    }


def passing_result(case_id: str, model: str = "dall-e-2", size: int = 256) -> CaseResult:
    c = case(
        case_id,
        model,
        body={
            "model": model,
            "prompt": "a red square",
            "size": f"{size}x{size}",
            "response_format": "b64_json",
        },
    )
    image = png(size, size)
    return CaseResult(
        case=c,
        outcome=Outcome.PASS,
        checked=[
            "request.valid.accepted",
            "response.schema",
            "response.data.count",
            "image.decodes",
            "image.size",
        ],
        status=200,
        elapsed=0.05,
        images=[
            ImageInfo(
                index=0,
                source="b64",
                format="png",
                width=size,
                height=size,
                has_alpha=False,
                byte_size=len(image),
                thumbnail=thumb(),
            )
        ],
        exchange=exchange(c, 200, ok_body([image])),
    )


def rejected_result(
    case_id: str, rule: str, model: str = "dall-e-2", body: dict | None = None
) -> CaseResult:
    c = case(
        case_id,
        model,
        kind="invalid",
        rule=rule,
        body=body or {"model": model, "prompt": "x", "n": 11},
        origin="must-reject",
    )
    answer = b'{"error": {"message": "n too large", "type": "invalid_request_error", "param": "n", "code": null}}'
    return CaseResult(
        case=c,
        outcome=Outcome.PASS,
        checked=[rule, "error.envelope", "error.status_400"],
        status=400,
        elapsed=0.01,
        exchange=exchange(c, 400, answer),
    )


def run_of(results: list[CaseResult], **kwargs) -> RunResult:
    now = time.time()
    run = RunResult.begin(
        load_profile("openai"),
        target=TARGET,
        models=["dall-e-2", "gpt-image-1"],
        seed=7,
        plan=PlanFacts(
            cases=len(results),
            pairwise={"dall-e-2": {"total": 12, "covered": 12}},
            images=3,
            cost=0.048,
        ),
        started=now - 2.5,
    ).finish(
        results,
        budget=BudgetFacts(max_cost=1.0, max_images=20, images=3, cost=0.048),
    )
    run.tool_version = "0.1.0"
    run.finished = now
    for key, value in kwargs.items():
        setattr(run, key, value)
    return run


def passing_run() -> RunResult:
    return run_of(
        [
            passing_result("d2-valid-1"),
            passing_result("d2-valid-2", size=512),
            rejected_result("d2-n-max", "request.n.max"),
            rejected_result(
                "g1-n-max",
                "request.n.max",
                model="gpt-image-1",
                body={"model": "gpt-image-1", "prompt": "x", "n": 11},
            ),
            passing_result("g1-valid-1", model="gpt-image-1"),
        ]
    )


def failing_run() -> RunResult:
    """A server that answers the wrong size, accepts n=11, echoes hostile text and warns."""
    results = passing_run().results
    wrong = case(
        "g1-size-wrong",
        "gpt-image-1",
        body={
            "model": "gpt-image-1",
            "prompt": "a" * 32000,
            "size": "1024x1536",
            "background": "transparent",
        },
    )
    image = png(64, 64, (0, 0, 255, 0), "RGBA")
    results.append(
        CaseResult(
            case=wrong,
            outcome=Outcome.FAIL,
            findings=[
                Finding("image.size", "MUST", f"image 0 is 64x64, asked 1024x1536 {HOSTILE}"),
                Finding("response.usage.present", "SHOULD", "no usage in the answer"),
            ],
            checked=[
                "request.valid.accepted",
                "image.size",
                "image.decodes",
                "response.usage.present",
            ],
            status=200,
            elapsed=0.2,
            images=[
                ImageInfo(
                    index=0,
                    source="b64",
                    format="png",
                    width=64,
                    height=64,
                    has_alpha=True,
                    byte_size=len(image),
                    ok=False,
                    problems=[f"64x64, asked 1024x1536 {HOSTILE}"],
                    thumbnail=thumb((0, 0, 255, 0), "RGBA"),
                )
            ],
            exchange=exchange(
                wrong, 200, ok_body([image])[:-2] + f', "note": {json.dumps(HOSTILE)}}}'.encode()
            ),
        )
    )
    accepted = case(
        "d2-n-11",
        kind="invalid",
        rule="request.n.max",
        body={"model": "dall-e-2", "prompt": "x", "n": 11},
        origin="must-reject",
    )
    results.append(
        CaseResult(
            case=accepted,
            outcome=Outcome.FAIL,
            findings=[
                Finding("request.n.max", "MUST", "n=11 was accepted with 200; a 4xx was expected")
            ],
            checked=["request.n.max"],
            status=200,
            elapsed=0.1,
            exchange=exchange(accepted, 200, ok_body([png(8, 8)] * 11)),
        )
    )
    junk = case(
        "any-not-json",
        ANY_MODEL,
        kind="invalid",
        rule="request.body.not_json",
        raw=b"{not json\x00\xff'%",
        origin="must-reject",
    )
    results.append(
        CaseResult(
            case=junk,
            outcome=Outcome.FAIL,
            findings=[
                Finding("transport.no_5xx", "MUST", "answered 500"),
                Finding("request.body.not_json", "MUST", "answered 500, a 4xx was expected"),
            ],
            checked=["request.body.not_json", "transport.no_5xx"],
            status=500,
            elapsed=0.01,
            exchange=exchange(junk, 500, HOSTILE.encode(), "text/html"),
        )
    )
    unknown = case(
        "g1-unknown-field",
        "gpt-image-1",
        kind="invalid",
        rule="request.unknown_field",
        level="SHOULD",
        body={"model": "gpt-image-1", "prompt": "x", "colour": "red"},
        origin="should-reject",
    )
    results.append(
        CaseResult(
            case=unknown,
            outcome=Outcome.WARN,
            findings=[Finding("request.unknown_field", "SHOULD", "an unknown field was accepted")],
            checked=["request.unknown_field"],
            status=200,
            elapsed=0.3,
            exchange=exchange(unknown, 200, ok_body([png(8, 8)])),
        )
    )
    return run_of(results)


def incomplete_run() -> RunResult:
    results = passing_run().results[:3]
    limited = case("g1-valid-2", "gpt-image-1")
    results.append(
        CaseResult(
            case=limited,
            outcome=Outcome.NOT_OBSERVED,
            reason=Reason.THROTTLED,
            status=429,
            note="429 after 2 retries (Retry-After 30)",
            exchange=exchange(limited, 429, b'{"error": {"message": "slow down"}}'),
        )
    )
    results.append(
        CaseResult(
            case=case("g1-valid-3", "gpt-image-1"),
            outcome=Outcome.NOT_OBSERVED,
            reason=Reason.INTERRUPTED,
            note="interrupted",
        )
    )
    return run_of(results, incomplete=True)


def budget_cut_run() -> RunResult:
    results = passing_run().results
    for index in range(3):
        c = case(
            f"g1-pairwise-{index}",
            "gpt-image-1",
            origin="pairwise",
            body={"model": "gpt-image-1", "prompt": "p", "quality": "high", "size": "1536x1024"},
        )
        results.append(
            CaseResult(
                case=c,
                outcome=Outcome.NOT_OBSERVED,
                reason=Reason.BUDGET,
                note="cut by the budget (--max-images 3)",
            )
        )
    return run_of(
        results,
        plan=PlanFacts(
            cases=8,
            pairwise={"gpt-image-1": {"total": 40, "covered": 31}},
            cut=["gpt-image-1-pairwise-1", "gpt-image-1-pairwise-2", "gpt-image-1-pairwise-3"],
            images=6,
            cost=0.4,
        ),
    )
