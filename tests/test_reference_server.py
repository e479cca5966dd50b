"""The reference server against CONTRACT.md: every MUST rule, strict and lenient, real images.

Most tests talk to the app in-process (Starlette's TestClient); the embedded server and
``imgconf serve`` are started for real at the end.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops
from starlette.testclient import TestClient

from conformance.contract.loader import load_contract, parse_wxh
from conformance.contract.oracle import request_violations
from conformance.errors import SetupError
from conformance.server.app import ServerConfig, create_app
from conformance.server.launcher import start_reference_server
from conformance.server.pictures import ImageSpec, render, spec_for_prompt

CONTRACT = load_contract()
MODELS = CONTRACT.models
PATH = "/v1/images/generations"
PROMPT = "a red fox in the snow"
GPT = [m.name for m in MODELS.values() if m.is_gpt]
DALLE = [m.name for m in MODELS.values() if not m.is_gpt]
CUSTOM = [m.name for m in MODELS.values() if m.custom_sizes is not None]
PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}


def body_for(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "prompt": PROMPT, **fields}


def long_prompt(chars: int) -> str:
    """Exactly ``chars`` characters, most of them several bytes long in UTF-8."""
    unit = "日本語 🦊 é "
    return (unit * (chars // len(unit) + 1))[:chars]


# --- requests a server MUST reject: one or more breaking bodies per rule and model ----------

Breaker = Callable[[str], list[Any]]


def _foreign_sizes(model: str) -> list[str]:
    """Another model's size (for a model without free WxH sizes) and a malformed one."""
    spec = MODELS[model]
    sizes = ["big", "1024x1024x3"]
    if spec.custom_sizes is None:
        sizes += [s for m in MODELS.values() for s in m.sizes if s not in spec.sizes][:1]
    return sizes


BREAKERS: dict[str, Breaker] = {
    "request.body.not_object": lambda m: [[body_for(m)], "a fox", 42, None],
    "request.prompt.required": lambda m: [{"model": m}],
    "request.prompt.type": lambda m: [body_for(m, prompt=p) for p in (42, ["a fox"], None)],
    "request.prompt.max_length": lambda m: [
        body_for(m, prompt=long_prompt(MODELS[m].prompt_max_chars + 1)),
        body_for(m, prompt="x" * (MODELS[m].prompt_max_chars + 1)),
    ],
    "request.n.type": lambda m: [body_for(m, n=v) for v in ("2", 1.5, True)],
    "request.n.min": lambda m: [body_for(m, n=v) for v in (0, -1)],
    "request.n.max": lambda m: [body_for(m, n=11)],
    "request.n.max.dall-e-3": lambda m: [body_for(m, n=2), body_for(m, n=10)],
    "request.size.enum": lambda m: [body_for(m, size=s) for s in (*_foreign_sizes(m), 1024)],
    "request.size.custom.divisible": lambda m: [body_for(m, size="1000x1000")],
    "request.size.custom.aspect": lambda m: [body_for(m, size="2048x512")],
    "request.size.custom.max": lambda m: [
        body_for(m, size="4096x2048"),
        body_for(m, size="3840x2400"),
    ],
    "request.quality.enum": lambda m: [body_for(m, quality="ultra")],
    "request.style.enum": lambda m: [body_for(m, style="cartoon")],
    "request.response_format.enum": lambda m: [body_for(m, response_format="png")],
    "request.output_format.enum": lambda m: [body_for(m, output_format="gif")],
    "request.background.enum": lambda m: [body_for(m, background="green")],
    "request.moderation.enum": lambda m: [body_for(m, moderation="none")],
    "request.stream.type": lambda m: [body_for(m, stream=v) for v in ("true", 1)],
    "request.output_compression.range": lambda m: [
        body_for(m, output_format="jpeg", output_compression=v) for v in (101, -1)
    ],
    "request.partial_images.range": lambda m: [
        body_for(m, stream=True, partial_images=v) for v in (4, -1)
    ],
    "request.background.transparent_jpeg": lambda m: [
        body_for(m, background="transparent", output_format="jpeg")
    ],
    "request.model.unknown": lambda m: [body_for("gpt-image-99"), body_for(42)],
    # Rules only models declared in a profile are held to (the flux-like example's model).
    "request.n.max.model": lambda m: [body_for(m, n=5), body_for(m, n=10)],
    "request.extension.invalid": lambda m: [
        *(body_for(m, steps=v) for v in (0, 51, "4", 2.5)),
        body_for(m, aspect_ratio="2:1"),
    ],
    "request.refused_param": lambda m: [
        body_for(m, quality="standard"),
        body_for(m, style="vivid"),
    ],
}
MUST_REJECT = [r for r in CONTRACT.rules.values() if r.is_must and r.kind == "reject"]
REJECT_CASES = [
    pytest.param(rule.id, body, id=f"{rule.id}-{model}-{i}")
    for rule in MUST_REJECT
    if rule.id in BREAKERS
    for model in (rule.models if rule.per_model else rule.models[:1])
    for i, body in enumerate(BREAKERS[rule.id](model))
]


def test_every_must_reject_rule_has_breaking_bodies() -> None:
    missing = {r.id for r in MUST_REJECT} - set(BREAKERS) - {"request.body.not_json"}
    assert not missing


def assert_error_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert {"type", "param", "code"} <= set(error)
    return error


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
@pytest.mark.parametrize(("rule", "body"), REJECT_CASES)
def test_must_reject(reference_client, rule: str, body: Any, lenient: bool) -> None:
    violations = request_violations(body)
    assert violations and violations[0].rule == rule  # the row breaks its rule first
    error = assert_error_envelope(reference_client(lenient=lenient).post(PATH, json=body), 400)
    assert error["param"] == CONTRACT.rules[rule].param
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"prompt": "a fox"', "ü".encode("latin-1")])
def test_body_not_json_is_rejected(reference_client, raw: bytes, lenient: bool) -> None:
    response = reference_client(lenient=lenient).post(
        PATH, content=raw, headers={"Content-Type": "application/json"}
    )
    assert_error_envelope(response, 400)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-wrong"},
        {"Authorization": "{key}"},
        {"Authorization": "Basic {key}"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "no-scheme", "basic", "empty"],
)
def test_missing_or_wrong_key_is_401(
    reference_client, reference_api_key: str, headers: dict[str, str]
) -> None:
    headers = {k: v.replace("{key}", reference_api_key) for k, v in headers.items()}
    anonymous = TestClient(reference_client().app)  # the same app, no key by default
    response = anonymous.post(PATH, json=body_for("dall-e-2"), headers=headers)
    error = assert_error_envelope(response, 401)
    assert error["code"] == "invalid_api_key"
    assert reference_api_key not in response.text


def test_auth_comes_before_validation(reference_client) -> None:
    client = reference_client()
    response = client.post(PATH, content=b"nonsense", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


# --- requests a server MUST accept, and the answer --------------------------------------------


def _valid_bodies(model: str) -> list[dict[str, Any]]:
    spec = MODELS[model]
    bodies = [body_for(model, size=size) for size in spec.sizes]
    bodies += [body_for(model, quality=q) for q in spec.qualities]
    bodies += [body_for(model, n=spec.n_max), body_for(model, n=1)]
    bodies.append(body_for(model, prompt=long_prompt(spec.prompt_max_chars)))
    bodies.append(
        body_for(
            model, **{f: None for f in CONTRACT.request_fields if f not in ("model", "prompt")}
        )
    )
    bodies.append(body_for(model, user="user-1234"))
    for value in spec.values("response_format"):
        bodies.append(body_for(model, response_format=value))
    for value in spec.values("style"):
        bodies.append(body_for(model, style=value, response_format="b64_json"))
    if spec.is_gpt:
        for fmt in spec.values("output_format"):
            for background in spec.values("background"):
                if not (fmt == "jpeg" and background == "transparent"):
                    bodies.append(body_for(model, output_format=fmt, background=background))
            if fmt != "png":
                bodies += [
                    body_for(model, output_format=fmt, output_compression=c) for c in (0, 50, 100)
                ]
        bodies += [body_for(model, moderation=v) for v in spec.values("moderation")]
        bodies += [body_for(model, partial_images=v, stream=False) for v in range(4)]
    if spec.custom_sizes is not None:
        bodies += [
            body_for(model, size=s) for s in ("1536x864", "512x1024", "2048x1024", "768x768")
        ]
    return bodies


ACCEPT_CASES = [
    pytest.param(body, id=f"{model}-{i}")
    for model in MODELS
    for i, body in enumerate(_valid_bodies(model))
]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def fetch_images(client, answer: dict[str, Any]) -> list[Image.Image]:
    images = []
    for item in answer["data"]:
        if "b64_json" in item:
            images.append(decode(base64.b64decode(item["b64_json"], validate=True)))
        else:
            url = httpx.URL(item["url"])
            assert url.scheme == "http" and url.path.startswith("/files/")
            # The image URL needs no key: fetch it with no Authorization header at all.
            response = client.get(item["url"], headers={"Authorization": ""})
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("image/")
            images.append(decode(response.content))
    return images


def assert_valid_answer(client, body: dict[str, Any], response: httpx.Response) -> None:
    spec = MODELS[body["model"]]
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert not list(CONTRACT.validator("response").iter_errors(answer))
    assert isinstance(answer["created"], int)
    assert len(answer["data"]) == (body.get("n") or 1)
    if spec.is_gpt or body.get("response_format") == "b64_json":
        assert all("b64_json" in item and "url" not in item for item in answer["data"])
    else:
        assert all("url" in item and "b64_json" not in item for item in answer["data"])
    if spec.takes("style"):
        assert all(isinstance(item["revised_prompt"], str) for item in answer["data"])
    fmt = body.get("output_format") or "png"
    size = body.get("size") or spec.default_size
    for image in fetch_images(client, answer):
        assert PIL_FORMATS[image.format] == fmt
        if size != "auto":
            assert image.size == parse_wxh(size)
        assert ("A" in image.getbands()) == (body.get("background") == "transparent")
    if spec.is_gpt:
        usage = answer["usage"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert answer["output_format"] == fmt
        assert answer["size"] == (size if size != "auto" else answer["size"])
        assert parse_wxh(answer["size"]) is not None
        assert answer["quality"] in ("low", "medium", "high")
        if body.get("quality") not in (None, "auto"):
            assert answer["quality"] == body["quality"]
        assert answer["background"] == (body.get("background") or "opaque").replace(
            "auto", "opaque"
        )
    else:
        assert "usage" not in answer


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
@pytest.mark.parametrize("body", ACCEPT_CASES)
def test_must_accept(reference_client, body: dict[str, Any], lenient: bool) -> None:
    assert request_violations(body) == []
    client = reference_client(lenient=lenient)
    assert_valid_answer(client, body, client.post(PATH, json=body))


def test_trailing_slash_and_omitted_model(reference_client) -> None:
    client = reference_client()
    response = client.post(PATH + "/", json={"prompt": PROMPT})
    assert_valid_answer(client, body_for("dall-e-2"), response)  # omitted model: dall-e-2
    response = client.post(PATH, json={"prompt": PROMPT, "output_format": "webp"})
    assert response.status_code == 200
    assert response.json()["output_format"] == "webp" and "usage" in response.json()


def test_other_routes_answer_with_the_envelope(reference_client) -> None:
    client = reference_client()
    assert_error_envelope(client.get(PATH), 405)
    assert_error_envelope(client.post("/v1/images/nothing", json={}), 404)
    assert_error_envelope(client.get("/files/unknown.png"), 404)


def test_image_urls_expire(reference_client) -> None:
    client = reference_client(url_ttl=0.2)
    url = client.post(PATH, json=body_for("dall-e-2")).json()["data"][0]["url"]
    assert client.get(url).status_code == 200
    time.sleep(0.25)
    assert_error_envelope(client.get(url), 404)


def test_images_are_drawn_from_the_prompt(reference_client) -> None:
    client = reference_client()
    prompts = ["a red fox", "a blue whale", "a green frog", "a yellow sun"]
    pictures = {
        base64.b64decode(
            client.post(PATH, json=body_for("gpt-image-1", prompt=p)).json()["data"][0]["b64_json"]
        )
        for p in prompts
    }
    assert len(pictures) > 1  # different prompts, different pictures
    image = decode(next(iter(pictures))).convert("RGB")
    assert len(image.getcolors(maxcolors=1 << 16) or ()) >= 2  # a shape on a ground, not blank
    again = client.post(PATH, json=body_for("gpt-image-1", prompt=prompts[0], n=2)).json()["data"]
    assert again[0]["b64_json"] != again[1]["b64_json"]  # the n images of one answer differ


def test_transparent_images_have_a_transparent_background() -> None:
    image = decode(render(ImageSpec(3, 0, 256, 128, "png", transparent=True)).data)
    assert image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0 and image.getpixel((128, 64))[3] == 255


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_output_compression_changes_the_encoding(fmt: str) -> None:
    sizes = [len(render(ImageSpec(1, 0, 512, 512, fmt, compression=c)).data) for c in (5, 95)]
    assert sizes[0] < sizes[1]


# --- lenient mode: what strict refuses and lenient ignores (SHOULD rules) ---------------------

SHOULD_CASES = [
    ("request.unknown_field", body_for("gpt-image-1", colour="red")),
    ("request.unsupported_param", body_for("gpt-image-1", style="vivid")),
    ("request.unsupported_param", body_for("gpt-image-1", response_format="url")),
    ("request.unsupported_param", body_for("dall-e-2", output_format="webp")),
    ("request.unsupported_param", body_for("dall-e-3", stream=True)),
    ("request.unsupported_param", body_for("dall-e-2", style="natural")),
    ("request.prompt.empty", body_for("dall-e-3", prompt="")),
    ("request.quality.model", body_for("gpt-image-1", quality="hd")),
    ("request.quality.model", body_for("dall-e-2", quality="low")),
    ("request.output_compression.png", body_for("gpt-image-1", output_compression=50)),
    ("request.user.type", body_for("dall-e-2", user=42)),
]


def test_should_cases_cover_every_should_reject_rule() -> None:
    should = {
        r.id for r in CONTRACT.rules.values() if not r.is_must and r.kind in ("reject", "either")
    }
    assert should == {rule for rule, _ in SHOULD_CASES}


@pytest.mark.parametrize(
    ("rule", "body"), SHOULD_CASES, ids=[f"{r}-{i}" for i, (r, _) in enumerate(SHOULD_CASES)]
)
def test_strict_rejects_and_lenient_ignores(reference_client, rule: str, body: dict) -> None:
    assert [v.rule for v in request_violations(body)] == [rule]
    error = assert_error_envelope(reference_client().post(PATH, json=body), 400)
    assert error["param"] == request_violations(body)[0].param
    client = reference_client(lenient=True)
    response = client.post(PATH, json=body)
    cleaned = {k: v for k, v in body.items() if k in ("model", "prompt")}
    assert_valid_answer(client, cleaned, response)


# --- streaming --------------------------------------------------------------------------------


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (GPT[0], {"partial_images": 3, "n": 2}),
        (
            GPT[-1],
            {
                "partial_images": 0,
                "size": "1536x864",
                "output_format": "webp",
                "background": "transparent",
            },
        ),
        (
            GPT[1],
            {
                "partial_images": 1,
                "output_format": "jpeg",
                "output_compression": 40,
                "quality": "high",
            },
        ),
    ],
)
def test_stream(reference_client, model: str, fields: dict, lenient: bool) -> None:
    client = reference_client(lenient=lenient)
    response = client.post(PATH, json=body_for(model, stream=True, **fields))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    validator = CONTRACT.validator("stream_event")
    size = fields.get("size", "1024x1024")
    fmt = fields.get("output_format", "png")
    n, partials = fields.get("n", 1), fields["partial_images"]
    assert [e[1]["type"] for e in events] == (
        ["image_generation.partial_image"] * partials + ["image_generation.completed"]
    ) * n
    for name, event in events:
        assert name == event["type"]
        assert not list(validator.iter_errors(event))
        assert (event["size"], event["output_format"]) == (size, fmt)
        image = decode(base64.b64decode(event["b64_json"]))
        assert image.size == parse_wxh(size) and PIL_FORMATS[image.format] == fmt
        assert ("A" in image.getbands()) == (fields.get("background") == "transparent")
    completed = [e for _, e in events if e["type"] == "image_generation.completed"]
    usage = completed[0]["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert [e["partial_image_index"] for _, e in events[:partials]] == list(range(partials))


def different_pixels(a: Image.Image, b: Image.Image) -> int:
    histogram = ImageChops.difference(a, b).convert("L").histogram()
    return a.width * a.height - histogram[0]


def test_partial_images_get_finer(reference_client) -> None:
    events = parse_sse(
        reference_client().post(PATH, json=body_for(GPT[0], stream=True, partial_images=3)).text
    )
    images = [decode(base64.b64decode(e["b64_json"])).convert("RGB") for _, e in events]
    final = images[-1]
    wrong = [different_pixels(i, final) for i in images]
    assert wrong[0] > wrong[1] > wrong[2] > wrong[3] == 0


# --- the embedded server and imgconf serve ----------------------------------------------------


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_embedded_server_starts_serves_and_stops(mode: str) -> None:
    started = time.perf_counter()
    with start_reference_server(mode=mode) as server:
        assert time.perf_counter() - started < 1.0
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        if mode == "thread":
            assert server.pid is None  # its CPU is this process's
        else:
            assert server.pid not in (None, os.getpid())
            os.kill(server.pid, 0)  # a live process of ours
        assert server.api_key.startswith("sk-")
        response = httpx.post(
            server.base_url + "/images/generations",
            json=body_for("dall-e-3", response_format="b64_json"),
            headers={"Authorization": f"Bearer {server.api_key}"},
        )
        assert response.status_code == 200
        assert decode(base64.b64decode(response.json()["data"][0]["b64_json"])).size == (1024, 1024)
        port = server.port
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/")
    server.stop()  # stopping twice is harmless


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_kept_alive_connections_answer_without_waiting_for_an_ack(mode: str) -> None:
    """An answer's headers and body go out at once: with Nagle's algorithm on, the body waited
    for the client's delayed acknowledgement, at least 40 ms per request after the first."""
    with start_reference_server(mode=mode) as server, httpx.Client() as client:
        took = []
        for _ in range(7):
            started = time.perf_counter()
            response = client.post(
                server.base_url + "/images/generations",
                json={"model": "gpt-image-1", "prompt": "a cat", "n": 11},
                headers={"Authorization": f"Bearer {server.api_key}"},
            )
            took.append(time.perf_counter() - started)
            assert response.status_code == 400
    assert sorted(took[1:])[3] < 0.03, [f"{t * 1000:.0f} ms" for t in took]


def test_embedded_server_takes_a_key_modes_and_quirks() -> None:
    with start_reference_server(
        api_key="sk-given", lenient=True, quirks=["slow:0"], mode="thread"
    ) as server:
        assert (server.api_key, server.lenient, server.quirks) == ("sk-given", True, ("slow:0",))
        response = httpx.post(
            server.base_url + "/images/generations",
            json=body_for("gpt-image-1", colour="red"),
            headers={"Authorization": "Bearer sk-given"},
        )
        assert response.status_code == 200  # lenient: the unknown field is ignored
    with pytest.raises(SetupError, match="unknown quirk"):
        start_reference_server(quirks=["no-such-quirk"]).__enter__()


def test_embedded_server_reports_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(SetupError, match="cannot listen"):
            start_reference_server(port=busy.getsockname()[1], mode="thread").__enter__()


def test_serve_command_prints_its_url_and_serves() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from conformance.cli import run; run()",
            "serve",
            "--api-key",
            "sk-serve-123456",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "sk-serve-123456" not in line  # a given key is shown redacted
        base_url = line.split(" at ", 1)[1].split()[0]
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        response = httpx.post(
            base_url + "/images/generations/",
            json=body_for("dall-e-2", size="256x256"),
            headers={"Authorization": "Bearer sk-serve-123456"},
        )
        assert response.status_code == 200
        image = httpx.get(response.json()["data"][0]["url"])
        assert decode(image.content).size == (256, 256)
    finally:
        proc.terminate()
        # uvicorn stops cleanly, then re-raises SIGTERM so that the exit status tells it.
        assert proc.wait(timeout=10) in (0, -15)
        assert "Traceback" not in proc.stderr.read()


def test_serve_command_rejects_bad_input() -> None:
    from conformance.cli import main_entry

    assert main_entry(["serve", "--quirk", "nope"]) == 2
    assert main_entry(["serve", "--url-ttl", "-1"]) == 2
    assert main_entry(["serve", "--quirk", "wrong-count:3"]) == 2


def test_same_prompt_same_picture() -> None:
    a = spec_for_prompt("a fox", 64, 64)
    assert a == spec_for_prompt("a fox", 64, 64)
    assert spec_for_prompt("a fox", 64, 64, index=1).shape != a.shape


# --- realistic images (``serve --realistic-images``, for benchmarks) ----------------------------

REALISTIC = [
    ("1024x1024", "png", "transparent"),
    ("1536x1024", "png", "transparent"),
    ("1024x1024", "jpeg", "opaque"),
    ("1024x1536", "webp", "transparent"),
    ("1024x1024", "webp", "opaque"),
]


@pytest.fixture(scope="module")
def realistic_client() -> Iterator[TestClient]:
    config = ServerConfig(api_key="sk-realistic", realistic_images=True)
    with TestClient(create_app(config), headers={"Authorization": "Bearer sk-realistic"}) as c:
        yield c


@pytest.mark.parametrize(("size", "fmt", "background"), REALISTIC)
def test_realistic_images_are_large_and_photographic(
    realistic_client: TestClient, size: str, fmt: str, background: str
) -> None:
    body = body_for("gpt-image-1", size=size, output_format=fmt, background=background)
    b64 = realistic_client.post(PATH, json=body).json()["data"][0]["b64_json"]
    assert 1_000_000 <= len(b64) <= 4 * 1024 * 1024  # what real vendors send at 1024-class
    image = decode(base64.b64decode(b64))
    assert f"{image.width}x{image.height}" == size and image.format == fmt.upper()
    crop = image.convert("RGB").crop((0, 0, 128, 128))
    assert len(crop.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 4000  # noise, not flat
    if background == "transparent":
        alpha = image.getchannel("A")
        low, high = alpha.getextrema()
        assert low < 32 and high > 223  # clear and opaque parts, and ...
        assert len(alpha.getcolors(256) or ()) > 128  # ... every level between
    else:
        assert image.mode == "RGB"


def test_realistic_images_are_cached_per_size_format_and_background(
    realistic_client: TestClient,
) -> None:
    def picture(**fields: Any) -> str:
        body = body_for("gpt-image-1", size="1024x1024", output_format="jpeg", **fields)
        return realistic_client.post(PATH, json=body).json()["data"][0]["b64_json"]

    assert picture(prompt="a fox") == picture(prompt="a whale")  # drawn once, whatever the prompt
    server = realistic_client.app.state.server
    assert all(spec.realistic for spec in server.images._items)


def test_default_images_stay_small_and_flat(reference_client) -> None:
    body = body_for("gpt-image-1", size="1024x1024", output_format="png")
    b64 = reference_client().post(PATH, json=body).json()["data"][0]["b64_json"]
    assert len(b64) < 100_000


def test_serve_command_takes_realistic_images() -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-c", "from conformance.cli import run; run()", "serve"),
            *("--api-key", "sk-serve-123456", "--realistic-images"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "realistic images" in line
        response = httpx.post(
            line.split(" at ", 1)[1].split()[0] + "/images/generations",
            json=body_for("gpt-image-1", size="1024x1024", output_format="jpeg"),
            headers={"Authorization": "Bearer sk-serve-123456"},
            timeout=30,
        )
        assert len(response.json()["data"][0]["b64_json"]) >= 1_000_000
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) in (0, -15)
