"""Set-up errors end before anything is spent: one line, exit 2, a handful of requests at most.

The targets are the reference server (and a few small servers) on loopback, each behind a
counter of the HTTP requests it was sent, so a test can tell how much a diagnosis cost.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from _hostile import endless_body, never_answers, random_bytes, resets, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from conformance.cli import main_entry
from conformance.engine.preflight import (
    ENDPOINT,
    REFUSED,
    UNSURE,
    WRONG_PATH,
    AuthWatch,
    check_target,
    check_writable,
    classify,
)
from conformance.engine.results import Exchange
from conformance.engine.transport import TransportConfig
from conformance.errors import SetupError
from conformance.generation.cases import Case
from conformance.server.app import ServerConfig, create_app
from conformance.server.quirks import parse_quirks

KEY = "sk-preflight-right-key-0123456789"
WRONG = "sk-preflight-wrong-key-9876543210"
#: What the acceptance allows a set-up error to cost, in requests and seconds.
MAX_REQUESTS = 10
MAX_SECONDS = 15.0


@dataclass
class Counted:
    """A server on loopback and the requests it was sent, as (method, path)."""

    origin: str
    requests: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def counted(app) -> Iterator[Counted]:
    """Serve an ASGI app on a free loopback port in a thread, counting every HTTP request."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    served = Counted(f"http://127.0.0.1:{sock.getsockname()[1]}")

    async def counting(scope, receive, send):
        if scope["type"] == "http":
            served.requests.append((scope["method"], scope["path"]))
        await app(scope, receive, send)

    server = uvicorn.Server(uvicorn.Config(counting, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield served
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def reference() -> Iterator[Counted]:
    """The strict reference server with key ``KEY``, counted."""
    with counted(create_app(ServerConfig(api_key=KEY, quirks=parse_quirks(())))) as served:
        yield served


def run(base_url: str, report_dir: Path, *extra: str, key: str = KEY) -> tuple[int, float]:
    started = time.perf_counter()
    status = main_entry(
        [
            "run",
            "--base-url",
            base_url,
            "--api-key",
            key,
            "--models",
            "dall-e-2",
            "--endpoint",
            "generations",
            "--report-dir",
            str(report_dir),
            *extra,
        ]
    )
    return status, time.perf_counter() - started


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("imgconf: error: ")
    return err[0]


# --- the acceptance: a wrong key, a base URL without /v1, an unwritable report directory -------


def test_a_wrong_key_is_one_line_before_the_plan(reference, tmp_path, capsys):
    status, elapsed = run(f"{reference.origin}/v1", tmp_path, key=WRONG)
    line = one_line(capsys)
    assert status == 2
    assert "refused the API key (401 at" in line and "--api-key" in line
    assert WRONG not in line and KEY not in line
    assert elapsed < MAX_SECONDS
    assert 1 <= len(reference.requests) <= MAX_REQUESTS, reference.requests
    assert not (tmp_path / "report.json").exists()


def test_a_base_url_without_v1_gets_the_v1_hint(reference, tmp_path, capsys):
    status, elapsed = run(reference.origin, tmp_path)
    line = one_line(capsys)
    assert status == 2
    assert f"no image endpoint at {reference.origin}/images/generations (404)" in line
    assert line.endswith(f"did you mean --base-url {reference.origin}/v1?")
    assert elapsed < MAX_SECONDS
    assert len(reference.requests) <= MAX_REQUESTS, reference.requests


def test_the_whole_endpoint_given_as_base_url_gets_the_base_as_hint(reference, tmp_path, capsys):
    status, _ = run(f"{reference.origin}/v1/images/generations", tmp_path)
    assert status == 2
    assert one_line(capsys).endswith(f"did you mean --base-url {reference.origin}/v1?")
    assert len(reference.requests) <= MAX_REQUESTS


def test_an_unwritable_report_dir_is_one_line_and_sends_nothing(reference, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    status, elapsed = run(f"{reference.origin}/v1", blocker / "reports")
    line = one_line(capsys)
    assert status == 2
    assert "--report-dir" in line and str(blocker / "reports") in line
    assert elapsed < MAX_SECONDS
    assert reference.requests == []


def test_a_report_dir_that_is_a_file_is_one_line(reference, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    status, _ = run(f"{reference.origin}/v1", blocker)
    assert status == 2
    assert "--report-dir" in one_line(capsys)
    assert reference.requests == []


def test_an_unwritable_recording_is_one_line_and_sends_nothing(reference, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    status, _ = run(f"{reference.origin}/v1", tmp_path / "r", "--record", str(blocker / "x.har"))
    assert status == 2
    assert "--record" in one_line(capsys)
    assert reference.requests == []
    status, _ = run(f"{reference.origin}/v1", tmp_path / "r", "--record", str(tmp_path))
    assert status == 2
    line = one_line(capsys)
    assert "--record" in line and "is a directory" in line


def test_check_writable_creates_a_missing_directory_and_leaves_it_empty(tmp_path):
    target = tmp_path / "deep" / "reports"
    check_writable(target, tmp_path / "rec" / "run.har")
    assert target.is_dir() and not any(target.iterdir())
    assert (tmp_path / "rec").is_dir() and not any((tmp_path / "rec").iterdir())


# --- a conformant server: the pre-flight passes and costs one request ---------------------------


def test_a_conformant_server_passes_with_one_request_more_than_the_plan(
    reference, tmp_path, capsys
):
    """The SDK-style base URL with a trailing slash works too."""
    status, _ = run(f"{reference.origin}/v1/", tmp_path)
    assert status == 0, capsys.readouterr()
    posts = [path for method, path in reference.requests if method == "POST"]
    assert len(posts) == len(dall_e_2_plan().cases) + 1
    assert reference.requests[0] == ("POST", "/v1/images/generations")


def dall_e_2_plan():
    from conformance.contract.profiles import load_profile
    from conformance.generation.planning import build_plan

    return build_plan(load_profile("openai"), models=["dall-e-2"], seed=0)


@pytest.mark.parametrize(
    "quirk", ["plain-text-errors", "detail-422", "500-on-bad-input", "auth-403"]
)
def test_a_server_with_odd_errors_is_not_a_set_up_error(quirk):
    """How an endpoint refuses a body is the run's finding; the pre-flight only needs to know
    it is there and took the key."""
    app = create_app(ServerConfig(api_key=KEY, quirks=parse_quirks((quirk,))))
    with counted(app) as served:
        asyncio.run(check_target(TransportConfig(f"{served.origin}/v1", api_key=KEY)))
    assert len(served.requests) == 1


# --- servers that misbehave after accepting the connection: findings, not set-up errors --------


@pytest.mark.parametrize("handler", [never_answers, resets, random_bytes, endless_body])
def test_a_server_that_hangs_resets_or_babbles_lets_the_run_go_on(handler):
    with serve(handler) as base_url:
        started = time.perf_counter()
        asyncio.run(check_target(TransportConfig(base_url, api_key=KEY, timeout=2.0)))
        elapsed = time.perf_counter() - started
    assert elapsed < 3.0, elapsed


def test_a_hanging_server_is_still_a_run_with_a_report(tmp_path, capsys):
    with serve(never_answers) as base_url:
        status, elapsed = run(base_url, tmp_path, "--timeout", "1", "--concurrency", "2")
    assert status == 1
    assert (tmp_path / "report.json").is_file()
    assert elapsed < 8, elapsed
    assert "Traceback" not in capsys.readouterr().err


# --- unreachable --------------------------------------------------------------------------------


def test_nothing_listening_says_so_and_what_to_try():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SetupError) as raised:
        asyncio.run(check_target(TransportConfig(f"http://127.0.0.1:{port}/v1", api_key=KEY)))
    message = str(raised.value)
    assert "nothing listening" in message and "connection refused" in message
    assert "--base-url" in message


def test_an_unknown_host_is_unreachable(monkeypatch):
    """The name lookup is answered here: no query leaves the machine."""

    def no_such_host(*_args, **_kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    config = TransportConfig("https://no-such-host.invalid/v1", api_key=KEY)
    with pytest.raises(SetupError, match=r"unknown host.*--base-url"):
        asyncio.run(check_target(config))


# --- the classification: status, content type and envelope, never the message text ---------------

ENVELOPE = b'{"error": {"message": "Incorrect API key provided", "type": "x"}}'
PAGE = b"<!DOCTYPE html><html><body>Welcome</body></html>"


def answer(status: int | None, body: bytes = b"", content_type: str = "", error=None) -> Exchange:
    headers = {"content-type": content_type} if content_type else {}
    return Exchange(
        method="POST",
        url="http://127.0.0.1/v1/images/generations",
        request_headers={},
        request_body=b"{",
        status=status,
        response_headers=headers,
        response_body=body,
        error=error,
    )


@pytest.mark.parametrize(
    ("exchange", "verdict"),
    [
        # The message says "API key", the status says the body was read: the endpoint is there.
        (answer(400, ENVELOPE, "application/json"), ENDPOINT),
        (answer(400, b"bad request", "text/plain"), ENDPOINT),
        (answer(422, b'{"detail": [{"msg": "invalid json"}]}', "application/json"), ENDPOINT),
        (answer(401, b'{"error": {"message": "invalid JSON body"}}', "application/json"), REFUSED),
        (answer(403, PAGE, "text/html"), REFUSED),
        (answer(404, ENVELOPE, "application/json"), WRONG_PATH),
        (answer(405, b"", ""), WRONG_PATH),
        (answer(301, b"", ""), WRONG_PATH),
        (answer(200, PAGE, "text/html"), WRONG_PATH),
        (answer(200, PAGE, ""), WRONG_PATH),
        (answer(200, b"hello", "text/plain"), WRONG_PATH),
        (answer(415, b"unsupported", "text/plain"), WRONG_PATH),
        (answer(415, ENVELOPE, "application/json"), UNSURE),
        (answer(200, b'{"data": []}', "application/json"), UNSURE),
        (answer(500, PAGE, "text/html"), UNSURE),
        (answer(502, b"", ""), UNSURE),
        (answer(429, ENVELOPE, "application/json"), UNSURE),
        (answer(None, error="timeout"), UNSURE),
        (answer(None, error="connection"), UNSURE),
        (answer(None, error="protocol"), UNSURE),
    ],
)
def test_classify_reads_status_type_and_envelope(exchange, verdict):
    assert classify(exchange) == verdict


# --- wrong URLs that are not a missing /v1 -------------------------------------------------------


def test_a_web_page_at_the_url_is_a_wrong_path_without_a_guess(tmp_path, capsys):
    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE.decode())

    app = Starlette(routes=[Route("/{path:path}", page, methods=["GET", "POST"])])
    with counted(app) as served:
        status, _ = run(f"{served.origin}/v1", tmp_path)
    line = one_line(capsys)
    assert status == 2
    assert "(an HTML page (200))" in line and "check --base-url" in line
    assert len(served.requests) <= MAX_REQUESTS


@pytest.mark.parametrize("through_proxy", [False, True])
def test_a_proxy_asking_for_credentials_is_named_not_the_base_url(tmp_path, capsys, through_proxy):
    """A 407 comes from a proxy on the way (given with --proxy, or one the network puts
    there), never from an image API: the hint is the proxy's credentials."""

    async def app(scope, receive, send):  # any request line, a proxy's absolute-form too
        if scope["type"] != "http":
            return
        answer = Response(
            "Proxy auth required", 407, headers={"proxy-authenticate": 'Basic realm="x"'}
        )
        await answer(scope, receive, send)

    with counted(app) as served:
        if through_proxy:
            status, _ = run(
                "http://images.test/v1", tmp_path, "--proxy", served.origin, "--max-images", "1"
            )
        else:
            status, _ = run(f"{served.origin}/v1", tmp_path)
    line = one_line(capsys)
    assert status == 2
    assert "asks for credentials (407 Proxy Authentication Required)" in line
    assert ("--proxy's URL" if through_proxy else "pass it with --proxy") in line
    assert len(served.requests) <= MAX_REQUESTS


def test_models_listed_but_no_image_endpoint_says_so(tmp_path, capsys):
    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "some-chat-model"}]})

    app = Starlette(routes=[Route("/v1/models", models)])
    with counted(app) as served:
        status, _ = run(f"{served.origin}/v1", tmp_path)
    line = one_line(capsys)
    assert status == 2
    assert f"{served.origin}/v1/models answers" in line
    assert len(served.requests) <= MAX_REQUESTS


def test_the_models_listing_is_asked_with_the_runs_key_and_headers():
    seen: list[dict[str, str]] = []

    async def models(request: Request) -> Response:
        seen.append(dict(request.headers))
        return JSONResponse({"object": "list", "data": []})

    app = Starlette(routes=[Route("/v1/models", models)])
    with counted(app) as served:
        config = TransportConfig(f"{served.origin}/v1/", api_key=KEY, extra_headers={"X-Org": "o"})
        with pytest.raises(SetupError, match="/v1/models answers"):
            asyncio.run(check_target(config))
    assert len(seen) == 1
    assert seen[0]["authorization"] == f"Bearer {KEY}" and seen[0]["x-org"] == "o"
    assert "content-type" not in seen[0]


# --- the first batch of valid requests all refused ------------------------------------------------


def body_first_app() -> Starlette:
    """Reads the body before the key: a not-JSON body is a 400 whatever the key, the rest 401."""

    async def generations(request: Request) -> Response:
        try:
            json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": {"message": "not JSON"}}, status_code=400)
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": {"message": "no"}}, status_code=401)
        return JSONResponse({"error": {"message": "unused"}}, status_code=400)

    return Starlette(routes=[Route("/v1/images/generations", generations, methods=["POST"])])


def test_a_refused_first_batch_stops_the_run_as_a_set_up_error(tmp_path, capsys):
    with counted(body_first_app()) as served:
        status, elapsed = run(f"{served.origin}/v1", tmp_path, "--concurrency", "2", key=WRONG)
    err = capsys.readouterr().err.strip().splitlines()
    line = err[-1]
    assert [e for e in err if e.startswith("imgconf: error:")] == [line]
    assert status == 2
    assert "refused the API key (401 on all of the first 2 valid requests" in line
    assert WRONG not in line
    assert not (tmp_path / "report.json").exists()
    assert elapsed < MAX_SECONDS
    posts = [path for method, path in served.requests if method == "POST"]
    assert len(posts) < len(dall_e_2_plan().cases)


def valid(index: int) -> Case:
    return Case(
        id=f"v{index}", model="dall-e-2", kind="valid", rule="r", level="MUST", expect="accept"
    )


def test_auth_watch_needs_the_whole_first_batch_refused():
    watch = AuthWatch(batch=2, endpoint="http://127.0.0.1/v1/images/generations")
    invalid = Case(
        id="i", model="dall-e-2", kind="invalid", rule="r", level="MUST", expect="reject"
    )
    assert watch.observe(invalid, answer(401)) is None  # only valid requests count
    assert watch.observe(valid(0), answer(None, error="timeout")) is None  # nor unanswered ones
    assert watch.observe(valid(1), answer(403)) is None
    message = watch.observe(valid(2), answer(401))
    assert message is not None and "401/403 on all of the first 2 valid requests" in message
    assert watch.message == message
    assert watch.observe(valid(3), answer(401)) is None  # said once


def test_auth_watch_ends_at_the_first_accepted_request():
    watch = AuthWatch(batch=2, endpoint="e")
    assert watch.observe(valid(0), answer(401)) is None
    assert watch.observe(valid(1), answer(200)) is None
    assert watch.observe(valid(2), answer(401)) is None
    assert watch.message is None


def test_auth_watch_batch_is_at_most_the_plans_valid_requests():
    cases = [
        valid(0),
        Case(id="p", model="*", kind="probe", rule="r", level="MUST", expect="either"),
    ]
    assert AuthWatch.for_plan(cases, concurrency=8, endpoint="e").batch == 1
    assert (
        AuthWatch.for_plan([], concurrency=8, endpoint="e").observe(valid(0), answer(401)) is None
    )
