"""The transport against untrusted targets: key handling, caps, deadlines, redirects, fetches."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpcore
import httpx
import pytest
import respx
from _hostile import (
    TINY_PNG,
    FakeNetwork,
    answers_every_request,
    gzip_zeros,
    serve,
    serves_image,
)
from hypothesis import given
from hypothesis import strategies as st

from conformance.engine import transport
from conformance.engine.results import Exchange
from conformance.engine.transport import (
    REDACTED,
    TargetClient,
    TransportConfig,
    address_class,
    excerpt,
    is_loopback,
    probe_target,
)
from conformance.errors import SetupError
from conformance.generation.cases import Case
from conformance.redact import strip_url

BASE = "http://target.test/v1"
ENDPOINT = BASE + "/images/generations"
KEY = "sk-transport-secret-4242424242"
MIB = 1024 * 1024


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
            async with TargetClient(TransportConfig(BASE, api_key=KEY, **(config or {}))) as t:
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
            async with TargetClient(TransportConfig(BASE, api_key=KEY)) as t:
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
            async with TargetClient(TransportConfig(BASE, api_key=KEY)) as t:
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
            async with TargetClient(TransportConfig(BASE, api_key=KEY)) as t:
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
            async with TargetClient(TransportConfig(BASE, api_key=KEY)) as t:
                return await t.send_case(case())

    exchange = asyncio.run(go())
    assert exchange.status == 200
    assert [f.error for f in exchange.fetches] == ["scheme"]
    assert exchange.fetches[0].url == "http://images.test:99999/a.png"


def test_a_malformed_image_url_is_a_failed_fetch_not_a_crash():
    async def go():
        async with TargetClient(TransportConfig(BASE, api_key=KEY)) as t:
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


# --- cookies -------------------------------------------------------------------------------


def test_cookies_the_target_sets_are_never_sent_back():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={"created": 1, "data": [{"url": "http://target.test:8080/a.png"}]},
            headers=[("set-cookie", f"k={KEY}"), ("set-cookie", f"d={KEY}; Domain=target.test")],
        )

    async def go():
        with respx.mock() as mock:
            mock.post(ENDPOINT).side_effect = answer
            mock.get("http://target.test:8080/a.png").side_effect = lambda r: (
                seen.append(r) or httpx.Response(200, content=b"img")
            )
            async with TargetClient(TransportConfig(BASE, api_key=KEY)) as t:
                await t.send_case(case())
                await t.send_case(case())

    asyncio.run(go())
    posts = [r for r in seen if r.method == "POST"]
    gets = [r for r in seen if r.method == "GET"]
    assert len(posts) == 2 and len(gets) == 2
    assert all("cookie" not in r.headers for r in seen)
    assert all(KEY not in str(r.headers) for r in gets)


def test_fetches_carry_nothing_of_the_target():
    seen: list[httpx.Request] = []

    async def go():
        with respx.mock() as mock:
            mock.get("http://images.test/a.png").side_effect = lambda r: (
                seen.append(r) or httpx.Response(200, content=b"img")
            )
            config = TransportConfig(BASE, api_key=KEY, extra_headers={"x-gateway-key": KEY})
            async with TargetClient(config) as t:
                await t.fetch("http://images.test/a.png")

    asyncio.run(go())
    assert KEY not in str(seen[0].headers) and "x-gateway-key" not in seen[0].headers


# --- content codings -----------------------------------------------------------------------

ANSWER = {"created": 1, "data": [{"b64_json": "AAAA"}]}


def _gzip_zeros(total: int) -> AsyncIterator[bytes]:
    """A lazily made gzip stream of ``total`` zero bytes in 64 KB reads, as a socket gives
    them (each read about 64 MB inflated)."""

    async def stream() -> AsyncIterator[bytes]:
        chunk = b""
        for block in gzip_zeros(total):
            chunk += block
            if len(chunk) >= 64 * 1024:
                yield chunk
                chunk = b""
        yield chunk

    return stream()


def test_identity_is_asked_for_and_a_gzip_answer_is_decoded():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = gzip.compress(json.dumps(ANSWER).encode())
        return httpx.Response(200, content=body, headers={"content-encoding": "gzip"})

    exchange = send(answer)
    assert seen[0].headers["accept-encoding"] == "identity"
    assert exchange.error is None and json.loads(exchange.response_body) == ANSWER
    assert exchange.content_encoding == "gzip"


@pytest.mark.parametrize("raw", [False, True], ids=["zlib", "raw"])
def test_deflate_is_decoded_wrapped_or_raw(raw):
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    body = compressor.compress(json.dumps(ANSWER).encode()) + compressor.flush()
    exchange = send(httpx.Response(200, content=body, headers={"content-encoding": "deflate"}))
    assert exchange.error is None and json.loads(exchange.response_body) == ANSWER


def test_a_gzip_bomb_is_cut_at_the_cap_with_bounded_memory():
    started = time.perf_counter()
    tracemalloc.start()
    try:
        exchange = send(
            httpx.Response(
                200, content=_gzip_zeros(10 << 30), headers={"content-encoding": "gzip"}
            ),
            {"body_cap": 4 * MIB},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exchange.error == "too_large" and exchange.truncated
    assert len(exchange.response_body) <= 64 * 1024
    assert peak < 4 * MIB + 4 * MIB, peak / MIB
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip, br", "br", "compress"])
def test_stacked_or_unknown_codings_are_refused_unread(encoding):
    read: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for block in gzip_zeros(1 << 30):
            read.append(len(block))
            yield block

    exchange = send(httpx.Response(200, content=body(), headers={"content-encoding": encoding}))
    assert exchange.error == "encoding"
    assert exchange.response_body == b"" and len(read) <= 1
    assert encoding.split(",")[0] in exchange.attempts[-1]["reason"]


def _streamed(data: bytes) -> AsyncIterator[bytes]:
    """A body httpx does not read (and decode) on its own when the response is made."""

    async def stream() -> AsyncIterator[bytes]:
        yield data

    return stream()


def test_a_gzip_body_that_does_not_decode_or_ends_early_is_refused():
    gzipped = {"content-encoding": "gzip"}
    broken = send(httpx.Response(200, content=_streamed(b"not gzip"), headers=gzipped))
    cut = gzip.compress(json.dumps(ANSWER).encode())[:-12]
    short = send(httpx.Response(200, content=_streamed(cut), headers=gzipped))
    assert broken.error == short.error == "encoding"


def test_an_unasked_coding_is_a_should_finding_and_stacked_a_must():
    from conformance.contract.profiles import load_profile
    from conformance.engine.checks import judge

    profile = load_profile("openai")
    exchange = send(
        httpx.Response(
            200,
            content=gzip.compress(json.dumps(ANSWER).encode()),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )
    )
    findings = judge(case(), exchange, profile).findings
    assert [(f.rule, f.level) for f in findings if f.rule.startswith("transport.")] == [
        ("transport.content_encoding", "SHOULD")
    ]
    stacked = send(httpx.Response(200, content=b"x", headers={"content-encoding": "gzip, gzip"}))
    assert [(f.rule, f.level) for f in judge(case(), stacked, profile).findings] == [
        ("transport.well_formed", "MUST")
    ]


# --- bytes in flight -------------------------------------------------------------------------


def test_an_honest_answer_of_ten_4mb_images_is_read_whole():
    item = b'{"b64_json": "' + b"A" * (4 * MIB * 4 // 3) + b'"}'

    async def body() -> AsyncIterator[bytes]:
        yield b'{"created": 1, "data": ['
        for i in range(10):
            yield item + (b"," if i < 9 else b"]}")

    exchange = send(httpx.Response(200, content=body()))
    assert exchange.error is None
    assert len(exchange.response_body) > 10 * 4 * MIB * 4 // 3


def test_reads_in_flight_stay_within_the_run_wide_cap_and_all_finish():
    """Six answers of 700 KB at once under a 2 MB cap: never more than 2 MB held, none lost."""
    held: list[int] = []

    async def slow_body() -> AsyncIterator[bytes]:
        for _ in range(70):
            await asyncio.sleep(0.002)
            yield b" " * 10_000

    async def go():
        with respx.mock() as mock:
            mock.post(ENDPOINT).side_effect = lambda r: httpx.Response(200, content=slow_body())
            config = TransportConfig(BASE, api_key=KEY, body_cap=MIB, inflight_cap=2 * MIB)
            async with TargetClient(config) as t:

                async def watch():
                    while True:
                        held.append(t.inflight.held)
                        await asyncio.sleep(0.001)

                watcher = asyncio.create_task(watch())
                try:
                    return await asyncio.gather(*(t.send_case(case()) for _ in range(6)))
                finally:
                    watcher.cancel()

    exchanges = asyncio.run(go())
    assert [e.error for e in exchanges] == [None] * 6
    assert all(len(e.response_body) == 700_000 for e in exchanges)
    assert max(held) <= 2 * MIB
    assert max(held) > MIB  # more than one read did go on at once


def test_the_leader_never_waits_so_half_read_answers_cannot_deadlock():
    from conformance.engine.transport import InFlightBudget, _BodyTooLarge

    async def go():
        budget = InFlightBudget(limit=100, lane=60)
        async with budget.lease() as first, budget.lease() as second:
            await second.acquire(40)  # the shared part is full
            waiting = asyncio.create_task(second.acquire(1))
            await asyncio.sleep(0.01)
            assert not waiting.done()
            await asyncio.wait_for(first.acquire(60), 1)  # the leader still reads
            assert budget.held == 100
            with pytest.raises(_BodyTooLarge):
                await first.acquire(1)  # past its lane: cut, not waited for
            first.release(60)
            await asyncio.sleep(0.01)
            assert not waiting.done()  # still only the shared part for a follower
            waiting.cancel()
        async with budget.lease() as third:
            await asyncio.wait_for(third.acquire(60), 1)

    asyncio.run(go())


# --- retries -------------------------------------------------------------------------------


def test_retries_share_a_budget_for_the_run():
    calls: list[float] = []

    def busy(request: httpx.Request) -> httpx.Response:
        calls.append(time.perf_counter())
        return httpx.Response(429, headers={"retry-after": "0.2"}, json={"error": {}})

    async def go():
        with respx.mock() as mock:
            mock.post(ENDPOINT).side_effect = busy
            config = TransportConfig(BASE, api_key=KEY, retry_budget=0.5)
            async with TargetClient(config) as t:
                return [await t.send(case()) for _ in range(4)]

    exchanges = asyncio.run(go())
    assert [e.retries for e in exchanges] == [2, 0, 0, 0]
    assert all(e.status == 429 for e in exchanges) and len(calls) == 6


def test_the_run_retry_count_is_bounded_too():
    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"retry-after": "0"}, json={"error": {}})

    async def go():
        with respx.mock() as mock:
            mock.post(ENDPOINT).side_effect = busy
            config = TransportConfig(BASE, api_key=KEY, retry_budget_count=3)
            async with TargetClient(config) as t:
                return [await t.send(case()) for _ in range(3)]

    assert [e.retries for e in asyncio.run(go())] == [2, 1, 0]


def test_a_case_past_its_share_of_the_cap_is_cut_not_held():
    """Three 600 KB images of one answer under a 1 MiB share: not all of them are kept."""
    urls = [f"http://images.test/{i}.png" for i in range(3)]

    async def go():
        with respx.mock() as mock:
            mock.post(ENDPOINT).return_value = httpx.Response(
                200, json={"created": 1, "data": [{"url": u} for u in urls]}
            )
            for url in urls:
                mock.get(url).return_value = httpx.Response(200, content=b"\0" * 600_000)
            config = TransportConfig(BASE, api_key=KEY, body_cap=MIB, inflight_cap=2 * MIB)
            async with TargetClient(config) as t:
                exchange = await t.send_case(case())
                return exchange, t.inflight.held

    exchange, held_after = asyncio.run(go())
    errors = sorted(str(f.error) for f in exchange.fetches)
    assert errors == ["None", "too_large", "too_large"] or errors == ["None", "None", "too_large"]
    assert all(len(f.response_body) <= 600_000 for f in exchange.fetches)
    assert held_after == 0


# --- internal addresses (a stub resolver and a pretend network: no packet leaves loopback) --

#: A global address the stub resolver gives out; nothing ever connects to it.
PUBLIC = "93.184.216.34"


@pytest.fixture
def network(monkeypatch) -> FakeNetwork:
    return FakeNetwork().install(monkeypatch)


def fetch_from(target: str, url: str, **config) -> Exchange:
    async def go():
        async with TargetClient(TransportConfig(target, api_key=KEY, **config)) as t:
            return await t.fetch(url)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.7.7", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.9", "private"),
        ("fd12::9", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("127.0.0.1", "loopback"),
        ("0.0.0.0", "loopback"),
    ],
)
def test_image_urls_reaching_internal_addresses_are_not_fetched(network, address, kind):
    network.names.update({"gateway.test": [PUBLIC], "img.test": [address]})
    exchange = fetch_from("https://gateway.test/v1", "http://img.test/a.png")
    assert exchange.error == "blocked_address" and exchange.status is None
    assert f"a {kind} address" in exchange.attempts[-1]["reason"]
    assert network.connected == []


def test_a_literal_internal_address_or_a_name_with_one_among_others_is_not_fetched(network):
    network.names.update({"gateway.test": [PUBLIC], "mixed.test": [PUBLIC, "10.0.0.5"]})
    literal = fetch_from("https://gateway.test/v1", "http://169.254.169.254/latest/meta-data/")
    mixed = fetch_from("https://gateway.test/v1", "http://mixed.test/a.png")
    assert literal.error == mixed.error == "blocked_address"
    assert network.connected == []


def test_a_loopback_target_fetches_loopback_images_but_no_other_internal_ones(network):
    seen: list[bytes] = []
    with serve(serves_image(seen)) as base:
        port = urlsplit(base).port
        network.names.update(
            {"img.test": ["127.0.0.1"], "meta.test": ["169.254.169.254"], "lan.test": ["10.9.9.9"]}
        )
        target = "http://127.0.0.1:9/v1"
        fetched = fetch_from(target, f"http://img.test:{port}/a.png")
        meta = fetch_from(target, "http://meta.test/latest/meta-data/")
        lan = fetch_from(target, f"http://lan.test:{port}/a.png")
    # img.test exists only in the stub: the fetch went to the address it resolved to.
    assert fetched.status == 200 and fetched.response_body == TINY_PNG
    assert meta.error == lan.error == "blocked_address"
    assert network.connected == ["127.0.0.1"] and len(seen) == 1


def test_allow_private_urls_fetches_internal_addresses_but_still_only_the_checked_one(network):
    seen: list[bytes] = []
    with serve(serves_image(seen)) as base:
        port = urlsplit(base).port
        network.names.update({"gateway.test": [PUBLIC], "lan.test": ["10.0.0.5"]})
        network.routes["10.0.0.5"] = "127.0.0.1"
        url = f"http://lan.test:{port}/a.png"
        refused = fetch_from("https://gateway.test/v1", url)
        allowed = fetch_from("https://gateway.test/v1", url, allow_private_urls=True)
    assert refused.error == "blocked_address"
    assert "--allow-private-urls" in refused.attempts[-1]["reason"]
    assert allowed.status == 200 and allowed.response_body == TINY_PNG
    assert network.connected == ["10.0.0.5"]


def test_every_redirect_hop_is_checked(network):
    seen: list[bytes] = []
    network.names.update({"meta.test": ["169.254.169.254"], "img.test": ["127.0.0.1"]})
    with serve(serves_image(seen)) as good:
        port = urlsplit(good).port
        with (
            serve(serves_image(seen, redirect="http://meta.test/latest/meta-data/")) as bad_hop,
            serve(serves_image(seen, redirect=f"http://img.test:{port}/b.png")) as good_hop,
        ):
            target = "http://127.0.0.1:9/v1"
            blocked = fetch_from(target, bad_hop.removesuffix("/v1") + "/a.png")
            followed = fetch_from(target, good_hop.removesuffix("/v1") + "/a.png")
    assert blocked.error == "blocked_address" and blocked.status == 302
    assert followed.status == 200 and followed.response_body == TINY_PNG
    assert "169.254.169.254" not in network.connected


def test_the_connected_peer_is_checked_not_only_the_name(network):
    """The name resolves to a global address, but the connection lands on loopback (as a
    rebinding or a NAT would have it): nothing is sent on it."""
    seen: list[bytes] = []
    with serve(serves_image(seen)) as base:
        port = urlsplit(base).port
        network.names.update({"gateway.test": [PUBLIC], "cdn.test": ["93.184.216.35"]})
        network.routes["93.184.216.35"] = "127.0.0.1"
        network.report_routes = False
        exchange = fetch_from("https://gateway.test/v1", f"http://cdn.test:{port}/a.png")
        time.sleep(0.1)
    assert exchange.error == "blocked_address"
    assert "127.0.0.1" in exchange.attempts[-1]["reason"]
    assert seen == []


def test_address_classes():
    assert address_class("8.8.8.8") is None
    assert address_class("2001:4860:4860::8888") is None
    assert address_class("100.100.100.200") == "metadata"
    assert address_class("100.64.1.1") == "private"
    assert address_class("::1") == "loopback"


def test_each_checked_address_is_tried_in_turn(network):
    """localhost resolves to ::1 and 127.0.0.1; a server on one of them is still reached."""
    seen: list[bytes] = []
    with serve(serves_image(seen)) as base:
        port = urlsplit(base).port
        network.names["img.test"] = ["127.0.0.2", "127.0.0.1"]  # nothing listens on the first
        fetched = fetch_from("http://127.0.0.1:9/v1", f"http://img.test:{port}/a.png")
    assert fetched.status == 200 and network.connected == ["127.0.0.2", "127.0.0.1"]


#: Pieces of JSON-like bodies: keys, quotes, escapes, strings short and long.
_PIECES = (b'{"error": ', b'"b64_json"', b'"partial_image_b64"', b'"message"', b'"', b"\\")
_PIECES += (b": ", b"}", b", ", b"x" * 70, b"ab" * 600)


@given(st.lists(st.sampled_from(_PIECES), max_size=12), st.sampled_from([64, 4096]))
def test_a_short_excerpt_taken_whole_is_what_the_walk_keeps(pieces, limit):
    body = b"".join(pieces)
    assert excerpt(body, limit) == transport._elided(body, limit)


def test_excerpt_work_does_not_grow_with_the_images():
    """Bounded work per answer: a few finds, no pattern scanning base64 (issue: 26-38 ms)."""
    image = b"QUFB" * 1_000_000  # 4 MB of base64
    item = b'{"b64_json": "' + image + b'", "revised_prompt": "a \\"quoted\\" word"}'
    body = b'{"created": 1, "data": [' + b",".join([item] * 8) + b"]}"
    started = time.perf_counter()
    short = excerpt(body)
    assert time.perf_counter() - started < 0.05
    assert b"QUFB" not in short and short.count(b"<base64 elided>") == 8
    assert b'"a \\"quoted\\" word"' in short
    # A hostile run of escaped quotes is bounded too.
    started = time.perf_counter()
    excerpt(b'{"m": "' + b'\\"' * 10_000_000 + b'"}')
    assert time.perf_counter() - started < 0.5


def test_no_ca_store_is_loaded_for_an_http_target_or_http_image_urls(monkeypatch):
    """http:// never speaks TLS: the target's clients and the image URLs' skip loading a CA
    store (tens of ms each)."""
    import ssl

    loaded: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def load(self, *args, **kwargs):
        loaded.append(args or kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", load)

    async def make(base_url: str, image_url: str = "http://127.0.0.1:9/a.png", **options):
        async with TargetClient(TransportConfig(base_url, api_key="k" * 10, **options)) as client:
            client._fresh_client()
            return await client.fetch(image_url)  # nothing listens: refused, after its client

    assert asyncio.run(make("http://127.0.0.1:9/v1")).error is not None
    asyncio.run(make("http://127.0.0.1:9/v1", proxy="http://127.0.0.1:8/"))
    assert not loaded
    # An https image URL is fetched with a verifying client, whatever the target's scheme.
    asyncio.run(make("http://127.0.0.1:9/v1", image_url="HTTPS://127.0.0.1:9/a.png"))
    assert loaded
    loaded.clear()
    asyncio.run(make("https://127.0.0.1:9/v1"))
    assert loaded
    loaded.clear()
    asyncio.run(make("http://127.0.0.1:9/v1", proxy="https://127.0.0.1:8/"))
    assert loaded


def test_connections_to_the_target_and_to_images_read_large_chunks(monkeypatch):
    """httpcore asks 64 KiB per read, each read costing the same Python on the event loop: the
    target's connections and the image URLs' ask READ_CHUNK (a 3 MB answer: about 12 reads)."""
    from conformance import settings

    asked: list[int] = []
    connect = httpcore.AnyIOBackend.connect_tcp

    class Recording(httpcore.AsyncNetworkStream):
        def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
            self.inner = inner

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            asked.append(max_bytes)
            return await self.inner.read(max_bytes, timeout)

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            await self.inner.write(buffer, timeout)

        async def aclose(self) -> None:
            await self.inner.aclose()

        def get_extra_info(self, info: str):
            return self.inner.get_extra_info(info)

    async def recording_connect(self, *args, **kwargs):
        return Recording(await connect(self, *args, **kwargs))

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", recording_connect)
    answer = json.dumps({"created": 1, "data": [{"b64_json": "A" * (3 * MIB)}]}).encode()

    async def go(base: str) -> tuple[Exchange, Exchange]:
        async with TargetClient(TransportConfig(base + "/v1", api_key=KEY)) as client:
            return await client.send(case()), await client.fetch(base + "/image.png")

    with serve(answers_every_request(b"200 OK", answer)) as base:
        sent, fetched = asyncio.run(go(base))
    assert sent.response_body == answer and fetched.response_body == answer
    assert asked and min(asked) == settings.READ_CHUNK > 64 * 1024


def test_a_socket_is_readable_once_data_or_its_end_is_there():
    from conformance.engine.transport import socket_readable

    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert not socket_readable(ours)
        theirs.sendall(b"x")
        assert socket_readable(ours)
        assert ours.recv(1) == b"x" and not socket_readable(ours)
        theirs.close()
        assert socket_readable(ours)  # the end a server's close leaves
    assert socket_readable(ours) and socket_readable(None)  # closed, or unknown


def test_an_idle_connection_is_asked_if_readable_of_its_socket_alone():
    """httpcore asks each idle connection of the pool whether it is readable before every
    request (readable: the server closed it). imgconf's stream answers from the socket, looked up
    once; anyio would build a dictionary of all the socket's attributes each time."""
    from conformance.engine.transport import _LargeReadStream

    asked: list[str] = []
    ours, theirs = socket.socketpair()

    class Inner(httpcore.AsyncNetworkStream):
        def get_extra_info(self, info: str):
            asked.append(info)
            return ours if info == "socket" else f"inner {info}"

    stream = _LargeReadStream(Inner())
    with ours, theirs:
        assert [stream.get_extra_info("is_readable") for _ in range(3)] == [False] * 3
        theirs.close()
        assert stream.get_extra_info("is_readable")
        assert stream.get_extra_info("ssl_object") == "inner ssl_object"
    assert asked == ["socket", "ssl_object"]


@pytest.mark.parametrize("quotes", [0, 3, 300])
def test_an_answer_mentions_url_wherever_the_key_is(quotes):
    from conformance.engine.transport import _mentions_url

    filler = b'"a": "b", ' * quotes
    assert _mentions_url(b"{" + filler + b'"url": "http://x/1.png"}')
    assert _mentions_url(b"{" + filler + b'"data": [{"b64_json": "QUJD", "url": "u"}]}')
    assert not _mentions_url(b"{" + filler + b'"data": [{"b64_json": "dXJs"}], "urls": 1}')
    assert not _mentions_url(b"")


@pytest.mark.parametrize("seed", range(5))
def test_the_bytes_in_flight_are_the_sum_of_the_open_leases(seed):
    import random

    from conformance.engine.transport import InFlightBudget

    rng = random.Random(seed)

    async def go() -> None:
        budget = InFlightBudget(limit=10_000, lane=5_000)
        leases = []
        for _ in range(300):
            move = rng.random()
            if move < 0.3 or not leases:
                leases.append(budget.open())
            elif move < 0.6:
                await rng.choice(leases[:1]).acquire(rng.randrange(50))  # the leader never waits
            elif move < 0.8:
                rng.choice(leases).release(rng.randrange(80))
            else:
                lease = leases.pop(rng.randrange(len(leases)))
                lease.close()
                lease.close()  # twice: nothing more
            assert budget.held == sum(lease.held for lease in leases)
        for lease in leases:
            lease.close()
        assert budget.held == 0

    asyncio.run(go())
