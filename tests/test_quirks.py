"""Every quirk really deviates, and only a quirky server shows the deviation.

Each quirk has a probe: a few requests and assertions that describe the deviation. A probe must
pass against the quirky server and fail against the correct one, so it cannot be vacuous.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from test_reference_server import BREAKERS, PATH, PROMPT, body_for, parse_sse

from conformance.contract.loader import ContractError, load_contract
from conformance.contract.oracle import request_violations
from conformance.contract.profiles import load_profile
from conformance.errors import SetupError
from conformance.server.launcher import start_reference_server
from conformance.server.pictures import render, spec_for_prompt
from conformance.server.quirks import KINDS, QUIRKS, SERVER_QUIRKS, load_quirks, parse_quirks

CONTRACT = load_contract()
Probe = Callable[[Any], None]
PROBES: dict[str, Probe] = {}
#: The flux-like example profile: a declared model with its own parameters.
FLUX = str(Path(__file__).resolve().parent.parent / "examples" / "profiles" / "flux-like.yaml")
#: Quirks that show only on a model a profile declares: their probes talk to a server serving it.
PROFILE_OF = {"accept-bad-extensions": FLUX}
#: The generations quirks, probed here (the multipart ones are probed in
#: test_reference_server_edits.py and their verdicts checked in test_edit_judging.py).
GENERATION_QUIRKS = {name: q for name, q in QUIRKS.items() if q.endpoint == "generations"}


def probe(name: str) -> Callable[[Probe], Probe]:
    def register(function: Probe) -> Probe:
        assert name in QUIRKS, name
        PROBES[name] = function
        return function

    return register


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text[:200]
    return response.json()


def ok_stream(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text[:200]
    return response.text


def image_of(item: dict[str, Any], client: Any = None) -> Image.Image:
    data = (
        base64.b64decode(item["b64_json"])
        if "b64_json" in item
        else client.get(item["url"]).content
    )
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- accepting what must be rejected ----------------------------------------------------------


@probe("accept-n-out-of-range")
def _(client):
    assert len(ok(client.post(PATH, json=body_for("gpt-image-1", n=11)))["data"]) == 10
    assert len(ok(client.post(PATH, json=body_for("dall-e-2", n=0)))["data"]) == 1


@probe("accept-n-type")
def _(client):
    assert len(ok(client.post(PATH, json=body_for("gpt-image-1", n="2")))["data"]) == 2


@probe("dall-e-3-multi")
def _(client):
    body = body_for("dall-e-3", n=3, response_format="b64_json")
    assert len(ok(client.post(PATH, json=body))["data"]) == 3


@probe("accept-long-prompt")
def _(client):
    ok(client.post(PATH, json=body_for("dall-e-2", prompt="x" * 1001)))


@probe("accept-prompt-type")
def _(client):
    ok(client.post(PATH, json=body_for("dall-e-2", prompt=42)))
    ok(client.post(PATH, json={"model": "dall-e-2"}))


@probe("accept-any-size")
def _(client):
    body = body_for("dall-e-2", size="1792x1024", response_format="b64_json")
    assert image_of(ok(client.post(PATH, json=body))["data"][0]).size == (1792, 1024)
    ok(client.post(PATH, json=body_for("gpt-image-2", size="1000x1000")))


@probe("accept-bad-enums")
def _(client):
    answer = ok(client.post(PATH, json=body_for("gpt-image-1", output_format="gif")))
    assert answer["output_format"] == "png"
    ok(client.post(PATH, json=body_for("dall-e-3", style="cartoon")))


@probe("accept-out-of-range")
def _(client):
    ok(
        client.post(
            PATH, json=body_for("gpt-image-1", output_format="jpeg", output_compression=101)
        )
    )
    events = parse_sse(
        client.post(PATH, json=body_for("gpt-image-1", stream=True, partial_images=4)).text
    )
    assert len(events) == 4  # clamped to 3 partials, then the completed image


@probe("accept-transparent-jpeg")
def _(client):
    body = body_for("gpt-image-1", background="transparent", output_format="jpeg")
    image = image_of(ok(client.post(PATH, json=body))["data"][0])
    assert image.format == "JPEG" and "A" not in image.getbands()


@probe("accept-stream-type")
def _(client):
    response = client.post(PATH, json=body_for("gpt-image-1", stream="true"))
    assert response.headers["content-type"].startswith("text/event-stream")


@probe("unknown-model-fallback")
def _(client):
    ok(client.post(PATH, json=body_for("gpt-image-99")))


# --- rejecting what must be accepted ----------------------------------------------------------


@probe("reject-null")
def _(client):
    body = body_for("gpt-image-1", n=None, quality=None)
    assert request_violations(body) == []
    assert client.post(PATH, json=body).status_code == 400


@probe("byte-counted-prompt")
def _(client):
    body = body_for("dall-e-2", prompt="é" * CONTRACT.models["dall-e-2"].prompt_max_chars)
    assert request_violations(body) == []
    assert client.post(PATH, json=body).status_code == 400


# --- wrong answers ----------------------------------------------------------------------------


@probe("wrong-count")
def _(client):
    assert len(ok(client.post(PATH, json=body_for("dall-e-2", n=3)))["data"]) == 2


@probe("ignore-n")
def _(client):
    assert len(ok(client.post(PATH, json=body_for("dall-e-2", n=3)))["data"]) == 1


@probe("missing-created")
def _(client):
    assert "created" not in ok(client.post(PATH, json=body_for("dall-e-2")))


@probe("string-created")
def _(client):
    assert isinstance(ok(client.post(PATH, json=body_for("dall-e-2")))["created"], str)


@probe("wrong-content-type")
def _(client):
    response = client.post(PATH, json=body_for("dall-e-2"))
    assert response.headers["content-type"].startswith("text/plain")
    assert response.json()["data"]


@probe("truncated-json")
def _(client):
    response = client.post(PATH, json=body_for("dall-e-2"))
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


@probe("b64-instead-of-url")
def _(client):
    item = ok(client.post(PATH, json=body_for("dall-e-2")))["data"][0]
    assert "url" not in item and "b64_json" in item


@probe("url-instead-of-b64")
def _(client):
    item = ok(client.post(PATH, json=body_for("gpt-image-1")))["data"][0]
    assert "b64_json" not in item and "url" in item


@probe("url-needs-key")
def _(client):
    url = ok(client.post(PATH, json=body_for("dall-e-2")))["data"][0]["url"]
    assert client.get(url).status_code == 200  # with the key
    assert client.get(url, headers={"Authorization": ""}).status_code == 401


@probe("expired-urls")
def _(client):
    url = ok(client.post(PATH, json=body_for("dall-e-2")))["data"][0]["url"]
    assert client.get(url, headers={"Authorization": ""}).status_code == 404


@probe("usage-strings")
def _(client):
    usage = ok(client.post(PATH, json=body_for("gpt-image-1")))["usage"]
    assert isinstance(usage["total_tokens"], str)


# --- wrong images -----------------------------------------------------------------------------


@probe("wrong-size")
def _(client):
    item = ok(client.post(PATH, json=body_for("gpt-image-1", size="1536x1024")))["data"][0]
    assert image_of(item).size == (768, 512)


@probe("ignore-size")
def _(client):
    body = body_for("dall-e-2", size="256x256", response_format="b64_json")
    item = ok(client.post(PATH, json=body))["data"][0]
    assert image_of(item).size == (1024, 1024)


@probe("accept-bad-extensions")
def _(client):
    body = {"model": "flux-schnell", "prompt": PROMPT, "steps": 0}
    assert len(ok(client.post(PATH, json=body))["data"]) == 1


@probe("wrong-format")
def _(client):
    item = ok(client.post(PATH, json=body_for("gpt-image-1", output_format="webp")))["data"][0]
    assert image_of(item).format == "PNG"


@probe("lost-alpha")
def _(client):
    body = body_for("gpt-image-1", background="transparent")
    assert "A" not in image_of(ok(client.post(PATH, json=body))["data"][0]).getbands()


@probe("corrupt-image")
def _(client):
    item = ok(client.post(PATH, json=body_for("gpt-image-1")))["data"][0]
    with pytest.raises(Image.UnidentifiedImageError):
        image_of(item)


@probe("opaque-alpha")
def _(client):
    body = body_for("gpt-image-1", background="transparent")
    image = image_of(ok(client.post(PATH, json=body))["data"][0])
    assert image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255)


def served_and_drawn(client, output_format: str) -> tuple[bytes, bytes]:
    """The bytes the server answers for a 1024x1024 image, and the picture it draws for them."""
    body = body_for("gpt-image-1", output_format=output_format, size="1024x1024")
    served = base64.b64decode(ok(client.post(PATH, json=body))["data"][0]["b64_json"])
    drawn = render(spec_for_prompt(PROMPT, 1024, 1024, format=output_format)).data
    return served, drawn


@probe("truncated-png-iend")
def _(client):
    served, drawn = served_and_drawn(client, "png")
    iend = b"\x00\x00\x00\x00IEND\xaeB`\x82"
    assert served.endswith(iend) and drawn.startswith(served[: -len(iend)])
    assert len(served) < len(drawn)


@probe("truncated-jpeg")
def _(client):
    served, drawn = served_and_drawn(client, "jpeg")
    assert served.endswith(b"\xff\xd9") and drawn.startswith(served[:-2])
    assert len(served) < len(drawn)


@probe("truncated-webp")
def _(client):
    served, drawn = served_and_drawn(client, "webp")
    assert int.from_bytes(served[4:8], "little") == len(served) - 8
    assert drawn[8:].startswith(served[8:]) and len(served) <= len(drawn) // 2


# --- wrong errors -----------------------------------------------------------------------------


@probe("plain-text-errors")
def _(client):
    response = client.post(PATH, json=body_for("dall-e-2", n=11))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")


@probe("detail-422")
def _(client):
    response = client.post(PATH, json=body_for("dall-e-2", n=11))
    assert response.status_code == 422
    assert "error" not in response.json() and response.json()["detail"]


@probe("500-on-bad-input")
def _(client):
    assert client.post(PATH, json=body_for("dall-e-2", n=11)).status_code == 500


@probe("relay-errors-as-502")
def _(client):
    assert client.post(PATH, json=body_for("dall-e-2", n=11)).status_code == 502
    assert (
        client.post(PATH, json=body_for("dall-e-2"), headers={"authorization": ""}).status_code
        == 502
    )


@probe("throttle-invalid")
def _(client):
    answer = client.post(PATH, json=body_for("dall-e-2", n=11))
    assert answer.status_code == 429 and answer.headers["retry-after"] == "0"
    assert client.post(PATH, json=body_for("dall-e-2")).status_code == 200


# --- authentication ---------------------------------------------------------------------------


@probe("no-auth")
def _(client):
    ok(client.post(PATH, json=body_for("dall-e-2"), headers={"Authorization": ""}))
    ok(client.post(PATH, json=body_for("dall-e-2"), headers={"Authorization": "Bearer wrong"}))


@probe("any-key")
def _(client):
    ok(client.post(PATH, json=body_for("dall-e-2"), headers={"Authorization": "Bearer wrong"}))
    assert (
        client.post(PATH, json=body_for("dall-e-2"), headers={"Authorization": ""}).status_code
        == 401
    )


@probe("auth-403")
def _(client):
    response = client.post(
        PATH, json=body_for("dall-e-2"), headers={"Authorization": "Bearer wrong"}
    )
    assert response.status_code == 403


@probe("blank-bearer-accepted")
def _(client):
    ok(client.post(PATH, json=body_for("dall-e-2"), headers={"Authorization": "Bearer"}))
    response = client.post(
        PATH, json=body_for("dall-e-2"), headers={"Authorization": "Bearer wrong"}
    )
    assert response.status_code == 401


@probe("auth-skipped-for-stream")
def _(client):
    for header in ("", "Bearer wrong"):
        response = client.post(
            PATH, json=body_for("gpt-image-1", stream=True), headers={"Authorization": header}
        )
        assert parse_sse(ok_stream(response))[-1][1]["type"] == "image_generation.completed"
    unstreamed = client.post(PATH, json=body_for("gpt-image-1"), headers={"Authorization": ""})
    assert unstreamed.status_code == 401


# --- streams ----------------------------------------------------------------------------------


@probe("stream-as-json")
def _(client):
    response = client.post(PATH, json=body_for("gpt-image-1", stream=True))
    assert response.headers["content-type"] == "application/json"


@probe("broken-stream")
def _(client):
    response = client.post(PATH, json=body_for("gpt-image-1", stream=True, partial_images=2))
    types = [event["type"] for _, event in parse_sse(response.text)]
    assert types == ["image_generation.partial_image"] * 2


@probe("stream-bad-json")
def _(client):
    response = client.post(PATH, json=body_for("gpt-image-1", stream=True))
    with pytest.raises(json.JSONDecodeError):
        parse_sse(response.text)


@probe("too-many-partials")
def _(client):
    response = client.post(PATH, json=body_for("gpt-image-1", stream=True, partial_images=1, n=2))
    types = [event["type"] for _, event in parse_sse(response.text)]
    assert types.count("image_generation.partial_image") == 4


# --- transport: these need a real server (see REAL_SERVER) ------------------------------------


@probe("slow")
def _(client):
    with pytest.raises(httpx.ReadTimeout):
        client.post(PATH, json=body_for("dall-e-2"), timeout=0.5)


@probe("reset")
def _(client):
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(PATH, json=body_for("dall-e-2"))


REAL_SERVER = {"slow": ("slow:5",), "reset": ("reset",)}


@pytest.fixture
def real_client() -> Iterator[Callable[[tuple[str, ...]], httpx.Client]]:
    with_servers: list = []

    def make(quirks: tuple[str, ...]) -> httpx.Client:
        context = start_reference_server(quirks=quirks, mode="thread")
        server = context.__enter__()
        client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=10
        )
        with_servers.append((context, client))
        return client

    yield make
    for context, client in with_servers:
        client.close()
        context.__exit__(None, None, None)


# --- the tests --------------------------------------------------------------------------------


def test_every_quirk_has_a_probe() -> None:
    assert set(PROBES) == set(GENERATION_QUIRKS)
    assert len(GENERATION_QUIRKS) >= 20


@pytest.mark.parametrize("name", list(GENERATION_QUIRKS))
def test_quirk_deviates(name: str, reference_client, real_client) -> None:
    """The probe holds on the quirky server and fails on the correct one."""
    if name in REAL_SERVER:
        quirky, correct = real_client(REAL_SERVER[name]), real_client(())
    else:
        profile = PROFILE_OF.get(name)
        quirky = reference_client(quirks=(name,), profile=profile)
        correct = reference_client(profile=profile)
    PROBES[name](quirky)
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        PROBES[name](correct)


@pytest.mark.parametrize("name", [q.name for q in QUIRKS.values() if q.kind == "accept"])
def test_accept_quirks_accept_every_break_of_their_rules(name: str, reference_client) -> None:
    """An ``accept`` quirk stops enforcing exactly its rules: every break of them gets a 2xx."""
    profile = PROFILE_OF.get(name)
    client = reference_client(quirks=(name,), profile=profile)
    rules = load_profile(profile).rules() if profile else CONTRACT.rules
    for rule_id in QUIRKS[name].breaks:
        rule = rules[rule_id]
        assert rule.models, rule_id
        for model in rule.models:
            for body in BREAKERS[rule_id](model):
                response = client.post(PATH, json=body)
                assert response.status_code == 200, (rule_id, body, response.text[:200])
    # ...and still enforces the others.
    other = body_for("dall-e-2", n=11) if "request.n.max" not in QUIRKS[name].breaks else None
    if other is not None:
        assert client.post(PATH, json=other).status_code == 400


def test_registry_is_well_formed() -> None:
    for quirk in GENERATION_QUIRKS.values():
        assert quirk.kind in KINDS
        assert quirk.description and "\n" not in quirk.description
        assert all(rule in CONTRACT.rules for rule in quirk.breaks)
        if quirk.verdict == "incomplete":
            # It hides what the rules need: `imgconf run` must say INCOMPLETE, naming why.
            assert quirk.reasons and all(r in CONTRACT.reasons for r in quirk.reasons)
            continue
        assert quirk.verdict == "fail" and quirk.breaks, quirk.name
        # At least one MUST rule, so that `imgconf run` against the quirk exits 1.
        assert any(CONTRACT.rules[rule].is_must for rule in quirk.breaks), quirk.name


def test_quirks_combine(reference_client) -> None:
    client = reference_client(quirks=("wrong-count", "wrong-size", "string-created"))
    answer = ok(client.post(PATH, json=body_for("dall-e-2", n=2, response_format="b64_json")))
    assert isinstance(answer["created"], str) and len(answer["data"]) == 1
    assert image_of(answer["data"][0]).size == (512, 512)


def test_parse_quirks() -> None:
    active = parse_quirks(["slow:2.5", "wrong-count"])
    assert "slow" in active and active.value("slow") == 2.5 and active.value("wrong-count") is None
    assert active.spec() == ("slow:2.5", "wrong-count")
    assert parse_quirks(["slow"]).value("slow") == QUIRKS["slow"].default
    assert parse_quirks(["accept-long-prompt"]).tolerated_rules() == {"request.prompt.max_length"}
    assert not parse_quirks([])
    for bad in (["nope"], ["wrong-count:2"], ["slow:fast"], ["slow:-1"]):
        with pytest.raises(SetupError):
            parse_quirks(bad)


def test_list_quirks_prints_every_quirk(capsys) -> None:
    from conformance.cli import main_entry

    assert main_entry(["serve", "--list-quirks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(SERVER_QUIRKS) >= len(QUIRKS)
    for line, quirk in zip(lines, SERVER_QUIRKS.values(), strict=True):
        shows = quirk.breaks[0] if quirk.breaks else f"INCOMPLETE ({quirk.reasons[0]})"
        assert line.startswith(quirk.name) and shows in line and quirk.description in line
        assert ("not judged yet" in line) is (quirk.name not in QUIRKS)


# --- quirks.yaml ------------------------------------------------------------------------------


def write_quirks(tmp_path, entry: str):
    path = tmp_path / "quirks.yaml"
    path.write_text("quirks:\n" + entry)
    return path


def test_quirks_are_read_from_the_data_file() -> None:
    assert load_quirks() == QUIRKS
    slow = QUIRKS["slow"]
    assert (slow.parameter, slow.default) == ("SECONDS", 600.0)
    assert QUIRKS["throttle-invalid"].verdict == "incomplete"


def test_a_quirk_naming_an_undeclared_rule_is_an_error(tmp_path) -> None:
    path = write_quirks(
        tmp_path, "  - {name: typo, kind: answer, description: d, breaks: [response.shcema]}\n"
    )
    with pytest.raises(ContractError, match=r"typo.*response\.shcema"):
        load_quirks(path)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("{name: q, kind: sideways, breaks: [response.schema]}", "kind"),
        ("{name: q, kind: answer, breaks: [response.schema], verdict: maybe}", "verdict"),
        ("{name: q, kind: answer, verdict: incomplete, reasons: [bored]}", "reasons"),
        ("{kind: answer}", "without a name"),
    ],
)
def test_a_malformed_quirk_is_an_error(tmp_path, entry: str, says: str) -> None:
    with pytest.raises(ContractError, match=says):
        load_quirks(write_quirks(tmp_path, f"  - {entry}\n"))


def test_a_quirk_given_twice_is_an_error(tmp_path) -> None:
    entry = "  - {name: q, kind: answer, breaks: [response.schema]}\n"
    with pytest.raises(ContractError, match="twice"):
        load_quirks(write_quirks(tmp_path, entry * 2))
