"""The transport against untrusted targets: key handling, caps, deadlines, redirects, fetches."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from conformance.cases import Case
from conformance.errors import SetupError
from conformance.redact import strip_url
from conformance.transport import (
    REDACTED,
    Transport,
    TransportConfig,
    excerpt,
    is_loopback,
    probe_target,
)

BASE = "http://target.test/v1"
ENDPOINT = BASE + "/images/generations"
KEY = "sk-transport-secret-4242424242"


def case(**extra) -> Case:
    return Case(
        id="t",
        model="gpt-image-1",
        kind="valid",
        rule="request.valid.accepted",
        level="MUST",
        expect="accept",
        body={"model": "gpt-image-1", "prompt": "x"},
        **extra,
    )


def send(response, config: dict | None = None):
    async def go():
        with respx.mock(assert_all_called=False) as mock:
            route = mock.route(method="POST", url__startswith=ENDPOINT)
            if callable(response):
                route.side_effect = response
            else:
                route.return_value = response
            async with Transport(TransportConfig(BASE, api_key=KEY, **(config or {}))) as t:
                return await t.send(case())

    return asyncio.run(go())


def test_the_key_is_redacted_from_everything_a_server_echoes():
    echoed = httpx.Response(
        400,
        json={"error": {"message": f"bad key Bearer {KEY}"}},
        headers={"x-echo": KEY},
    )
    exchange = send(echoed)
    assert exchange.request_headers["authorization"] == f"Bearer {REDACTED}"
    dump = repr(exchange)
    assert KEY not in dump
    assert REDACTED.encode() in exchange.response_body


def test_redirects_to_another_origin_are_not_followed():
    seen: list[httpx.Request] = []

    async def go():
        with respx.mock(assert_all_called=False) as mock:
            mock.post(ENDPOINT).return_value = httpx.Response(
                307, headers={"location": "http://evil.test/steal"}
            )
            mock.post("http://evil.test/steal").side_effect = lambda r: seen.append(r)
            async with Transport(TransportConfig(BASE, api_key=KEY)) as t:
                return await t.send(case())

    exchange = asyncio.run(go())
    assert exchange.status == 307 and not seen


def test_a_same_origin_307_is_followed_with_the_key():
    seen: list[httpx.Request] = []

    async def go():
        with respx.mock() as mock:
            mock.post(ENDPOINT + "/").return_value = httpx.Response(
                307, headers={"location": ENDPOINT}
            )

            def final(request):
                seen.append(request)
                return httpx.Response(200, json={"created": 1, "data": []})

            mock.post(ENDPOINT).side_effect = final
            async with Transport(TransportConfig(BASE, api_key=KEY)) as t:
                return await t.send(case(path_suffix="/"))

    exchange = asyncio.run(go())
    assert exchange.status == 200
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_fetch_never_sends_the_key_and_refuses_other_schemes():
    seen: list[httpx.Request] = []

    async def go():
        with respx.mock() as mock:
            mock.get("http://images.test/a.png").side_effect = lambda r: (
                seen.append(r) or httpx.Response(200, content=b"img")
            )
            async with Transport(TransportConfig(BASE, api_key=KEY)) as t:
                good = await t.fetch("http://images.test/a.png")
                bad = await t.fetch("file:///etc/passwd")
                return good, bad

    good, bad = asyncio.run(go())
    assert good.status == 200 and "authorization" not in seen[0].headers
    assert bad.error == "scheme" and bad.status is None


def test_an_answer_url_with_an_impossible_port_is_a_failed_fetch_not_a_crash():
    answer = httpx.Response(200, json={"data": [{"url": "http://images.test:99999/a.png"}]})

    async def go():
        with respx.mock(assert_all_called=False) as mock:
            mock.post(ENDPOINT).return_value = answer
            async with Transport(TransportConfig(BASE, api_key=KEY)) as t:
                return await t.send_case(case())

    exchange = asyncio.run(go())
    assert exchange.status == 200
    assert [f.error for f in exchange.fetches] == ["scheme"]
    assert exchange.fetches[0].url == "http://images.test:99999/a.png"


def test_a_malformed_image_url_is_a_failed_fetch_not_a_crash():
    async def go():
        async with Transport(TransportConfig(BASE, api_key=KEY)) as t:
            return [await t.fetch(u) for u in ("http://[::1/a.png", "http://images.test:-1/")]

    assert [f.error for f in asyncio.run(go())] == ["scheme", "scheme"]


def test_a_redirect_to_an_impossible_port_is_a_finding_not_a_crash():
    moved = httpx.Response(307, headers={"location": "http://target.test:99999/v1/x"})
    exchange = send(moved)
    assert exchange.status == 307 and exchange.error == "protocol"


async def _endless() -> AsyncIterator[bytes]:
    chunk = b"x" * 65536
    while True:
        yield chunk


async def _drip() -> AsyncIterator[bytes]:
    while True:
        await asyncio.sleep(0.05)
        yield b" "


def test_an_endless_body_is_cut_at_the_cap():
    exchange = send(httpx.Response(200, content=_endless()), {"body_cap": 1_000_000})
    assert exchange.error == "too_large" and exchange.truncated
    assert len(exchange.response_body) <= 1_000_000


def test_a_declared_oversize_body_is_not_read():
    big = httpx.Response(200, content=b"x" * 5000)
    exchange = send(big, {"body_cap": 1000})
    assert exchange.error == "too_large" and exchange.response_body == b""


def test_error_bodies_have_a_smaller_cap():
    exchange = send(httpx.Response(400, content=_endless()), {"error_cap": 10_000})
    assert exchange.error == "too_large"


def test_a_slow_drip_hits_the_overall_deadline():
    started = time.perf_counter()
    exchange = send(httpx.Response(200, content=_drip()), {"timeout": 0.5})
    assert exchange.error == "timeout"
    assert time.perf_counter() - started < 2


def test_excerpt_elides_base64_and_cuts():
    body = b'{"data": [{"b64_json": "' + b"A" * 100_000 + b'"}], "created": 1}'
    short = excerpt(body)
    assert b"AAAA" not in short and b"elided" in short and b'"created": 1' in short
    assert len(excerpt(b"y" * 10_000, limit=100)) < 120


def test_loopback_and_url_redaction():
    assert is_loopback("http://127.0.0.1:8000/v1")
    assert is_loopback("http://localhost/v1")
    assert is_loopback("http://[::1]:80/v1")
    assert not is_loopback("https://api.openai.com/v1")
    assert not is_loopback("http://10.0.0.1/v1")
    cleaned = strip_url("https://user:pw@host.test/v1/x?sig=abc&size=1")
    assert "pw" not in cleaned and "abc" not in cleaned and "size=1" in cleaned


def test_probe_refused_is_a_setup_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SetupError, match="nothing listening"):
        asyncio.run(probe_target(f"http://127.0.0.1:{port}/v1"))


def test_probe_accepts_a_listener_that_never_answers():
    async def go():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await probe_target(f"http://127.0.0.1:{port}/v1", timeout=2)

    asyncio.run(go())


def test_probe_rejects_a_non_http_url():
    for url in ("ftp://127.0.0.1/v1", "http://127.0.0.1:99999/v1", "http://[::1/v1"):
        with pytest.raises(SetupError, match="http"):
            asyncio.run(probe_target(url))
