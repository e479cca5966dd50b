"""How a target is reached: extra headers (``env:`` values), auth styles, the query, TLS, a proxy.

The targets are on loopback: the reference server served the way a profile says (an Azure-like
deployment: ``api-key`` header, ``api-version`` query), a gateway that routes on two headers, an
HTTPS server whose certificate only a test CA vouches for, and a forward proxy that counts what
goes through it. Where it matters, the servers record what they received, so the tests assert on
what was sent, not on what imgconf says it sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jsonschema
import pytest
import uvicorn
from _passthrough_proxy import run_proxy

from conformance.cli import main_entry
from conformance.contract.loader import load_contract
from conformance.contract.profiles import ProfileError, load_profile, parse_profile
from conformance.contract.reach import AuthStyle, join_url, resolve_headers
from conformance.engine.transport import WRONG_KEY, TargetClient, TransportConfig
from conformance.errors import SetupError
from conformance.generation.cases import Case
from conformance.generation.planning import build_plan
from conformance.reports.reproducer import curl_command
from conformance.server.app import ServerConfig, create_app

pytest_plugins = ["pytester"]

KEY = "sk-reach-test-key-0123456789abcdef"
AZURE = Path(__file__).parent / "fixtures" / "profiles" / "azure-like.yaml"
API_VERSION = "2025-04-01-preview"


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as a server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


def recording(app: Any, seen: list[Seen]) -> Any:
    """The ASGI app, noting every request it receives (headers lower-cased, blank values kept)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(
                Seen(
                    scope["method"],
                    scope["path"],
                    parse_qs(scope["query_string"].decode(), keep_blank_values=True),
                    {k.decode().lower(): v.decode() for k, v in scope["headers"]},
                )
            )
        await app(scope, receive, send)

    return wrapped


@contextmanager
def serve(app: Any, **ssl: Any) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port in a thread; yields its origin."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", lifespan="off", http="h11", **ssl)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    scheme = "https" if ssl else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def imgconf(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``imgconf ARGS`` in this process: exit status, stdout, stderr."""
    status = main_entry(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def written(directory: Path) -> bytes:
    """Every file under a directory, concatenated."""
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def azure_app(seen: list[Seen], profile: Path = AZURE, **options: Any) -> Any:
    config = ServerConfig.for_profile(load_profile(str(profile)), api_key=KEY, **options)
    return recording(create_app(config), seen)


def case(auth: str = "valid", suffix: str = "") -> Case:
    return Case(
        id="c",
        model="dall-e-3",
        kind="probe",
        rule="auth.wrong",
        level="MUST",
        expect="reject",
        body={"prompt": "x"},
        auth=auth,  # type: ignore[arg-type]
        path_suffix=suffix,
    )


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "path", "query", "url"),
    [
        (
            "https://h.example/openai/deployments/d?api-version=1",
            "/images/generations",
            {},
            "https://h.example/openai/deployments/d/images/generations?api-version=1",
        ),
        (
            "https://h.example/openai/deployments/d?api-version=1",
            "/images/generations/",
            {},
            "https://h.example/openai/deployments/d/images/generations/?api-version=1",
        ),
        (
            "https://h.example/v1/",
            "/images/generations",
            {},
            "https://h.example/v1/images/generations",
        ),
        ("http://h.example/v1", "/models", {"a": "b c"}, "http://h.example/v1/models?a=b+c"),
        ("http://h.example/v1?x=1", "/m", {"x": "2"}, "http://h.example/v1/m?x=2"),
    ],
)
def test_paths_join_on_the_urls_path_and_keep_its_query(
    base: str, path: str, query: dict[str, str], url: str
) -> None:
    assert join_url(base, path, query) == url


def test_the_query_auth_style_puts_each_cases_credential_in_the_url() -> None:
    config = TransportConfig(
        base_url="http://h.example/v1beta?alt=json",
        api_key=KEY,
        auth=AuthStyle("query", "key"),
        query={"api-version": "7"},
    )
    valid = parse_qs(config.url(config.path).split("?")[1], keep_blank_values=True)
    assert valid == {"alt": ["json"], "api-version": ["7"], "key": [KEY]}
    assert "key=" not in config.url(config.path, "missing")
    assert f"key={WRONG_KEY}" in config.url(config.path, "wrong")
    assert config.url(config.path + "/", "blank-bearer").endswith(
        "/generations/?alt=json&api-version=7&key="
    )
    assert config.endpoint == join_url(config.base_url, config.path, {**config.query, "key": KEY})


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("valid", {"api-key": KEY}),
        ("missing", {}),
        ("wrong", {"api-key": WRONG_KEY}),
        ("blank-bearer", {"api-key": ""}),
    ],
)
def test_the_header_auth_style_sends_the_key_alone_in_its_header(
    auth: str, expected: dict[str, str]
) -> None:
    config = TransportConfig(
        base_url="http://h.example", api_key=KEY, auth=AuthStyle("header", "api-key")
    )
    transport = TargetClient(config)
    try:
        headers = transport._request_headers(case(auth))
    finally:
        asyncio.run(transport.aclose())
    assert "authorization" not in headers
    assert {k: v for k, v in headers.items() if k == "api-key"} == expected


# --- profiles and flags ----------------------------------------------------------------------


def test_the_plan_probes_auth_in_the_profiles_style() -> None:
    azure = build_plan(load_profile(str(AZURE)))
    titles = {c.title for c in azure.cases if c.auth != "valid"}
    assert titles == {"no api-key header", "wrong key", "api-key header with no value"}
    assert not any(c.auth == "other-scheme" for c in azure.cases)
    openai = build_plan(load_profile("openai"), models=["dall-e-3"])
    assert {"other-scheme", "blank-bearer"} <= {c.auth for c in openai.cases}
    assert "no Authorization header" in {c.title for c in openai.cases}


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("auth", {"style": "cookie"}, "field 'auth': style must be one of"),
        ("auth", {"style": "header"}, "field 'auth': style header needs 'name'"),
        ("auth", {"style": "header", "name": "content-type"}, "cannot be a header"),
        ("auth", {"style": "bearer", "name": "api-key"}, "leave out 'name'"),
        ("auth", "bearer", "field 'auth': must be a mapping"),
        ("headers", ["x-a: b"], "field 'headers' must map"),
        ("headers", {"bad name": "v"}, "is not a header name"),
        ("headers", {"x-a": "a\r\nb"}, "holds a line break"),
        ("query", "api-version=1", "field 'query' must map"),
        ("query", {"a&b": "1"}, "is not a query parameter name"),
    ],
)
def test_a_broken_reach_field_names_it(field: str, value: Any, named: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(named)):
        parse_profile({"name": "p", "models": ["dall-e-3"], field: value}, "p.yaml")


def test_the_key_parameter_cannot_also_be_a_fixed_query_parameter() -> None:
    data = {"name": "p", "models": ["dall-e-3"], "auth": {"style": "query", "name": "key"}}
    with pytest.raises(ProfileError, match="carries the key"):
        parse_profile({**data, "query": {"key": "x"}}, "p.yaml")


def test_env_values_are_read_when_the_run_starts_and_are_secrets() -> None:
    headers, secrets = resolve_headers(
        {"x-team": "imaging", "x-token": "env:TOKEN_A"},
        ["X-Token: env:TOKEN_B", "x-route: literal"],
        AuthStyle(),
        {"TOKEN_A": "from-profile-0001", "TOKEN_B": "from-flag-000002"},
    )
    # The flag wins over the profile; a literal routing value is no secret.
    assert headers == {"x-team": "imaging", "x-token": "from-flag-000002", "x-route": "literal"}
    assert secrets == ["from-flag-000002"]


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("no-colon-here", "--header: expected 'NAME: VALUE'"),
        ("x-api-key=env:IMGCONF_REACH_NOT_SET", "with a colon as in curl -H"),
        ("content-type: text/plain", "content-type is set by imgconf itself"),
        ("x-token: env:IMGCONF_REACH_NOT_SET", "IMGCONF_REACH_NOT_SET is not set"),
        ("x-token: env:not a name", "must name an environment variable"),
        ("Authorization: Bearer sk-other", "authorization carries the key"),
        ("x-team: caf\u00e9", "a non-ASCII character at position 4"),
        ("x-team: a\u0001b", "a control character at position 2"),
    ],
)
def test_a_bad_header_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str, message: str
) -> None:
    os.environ.pop("IMGCONF_REACH_NOT_SET", None)
    status, _out, err = imgconf(capsys, "run", "--header", flag, "--report-dir", str(tmp_path))
    assert status == 2
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "report.json").exists()


# --- a gateway that routes on headers --------------------------------------------------------


ROUTE_TOKEN = "route-secret-5f3a9c1e77d0"


def test_header_flags_reach_a_gateway_that_routes_on_them_and_env_values_stay_secret(
    reference_server: Any, tmp_path: Path
) -> None:
    routing = {"x-provider": "imgconf-upstream", "x-route-token": ROUTE_TOKEN}
    env = {**os.environ, "IMGCONF_ROUTE_TOKEN": ROUTE_TOKEN}
    env.pop("OPENAI_API_KEY", None)
    with run_proxy(
        reference_server.base_url, reference_server.api_key, require_headers=routing
    ) as proxy:
        base = [
            str(Path(sys.executable).parent / "imgconf"),
            "run",
            "--base-url",
            proxy.base_url,
            "--api-key",
            proxy.api_key,
        ]
        base += ["--models", "dall-e-2", "--concurrency", "4"]
        routed = subprocess.run(
            [
                *base,
                "--header",
                "X-Provider: imgconf-upstream",
                "--header",
                "x-route-token: env:IMGCONF_ROUTE_TOKEN",
                "--report-dir",
                str(tmp_path / "routed"),
                "--record",
                str(tmp_path / "routed" / "run.har"),
            ],
            capture_output=True,
            env=env,
            timeout=120,
        )
        routed_requests = proxy.stats.requests
        unrouted = subprocess.run(
            [*base, "--report-dir", str(tmp_path / "unrouted")],
            capture_output=True,
            env=env,
            timeout=120,
        )
    assert routed.returncode == 0, routed.stderr.decode()[-2000:]
    assert routed_requests > 50 and proxy.stats.images > 0
    # Without the routing headers the gateway cannot route: the run does not pass.
    assert unrouted.returncode != 0
    # The gateway echoed the token back in a header: it is still in no output.
    har = (tmp_path / "routed" / "run.har").read_text()
    assert "x-routed-by" in har and "[REDACTED]" in har
    outputs = routed.stdout + routed.stderr + written(tmp_path / "routed")
    assert ROUTE_TOKEN.encode() not in outputs
    assert b"imgconf-upstream" in outputs  # a literal routing value is shown as it is


# --- an Azure-like deployment: api-key header, api-version query -----------------------------


def test_the_api_key_style_round_trips_and_the_key_goes_only_in_api_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: list[Seen] = []
    with serve(azure_app(seen)) as origin:
        status, out, err = imgconf(
            capsys,
            "run",
            "--profile",
            str(AZURE),
            "--base-url",
            f"{origin}/openai/deployments/my-dall-e-3",
            "--api-key",
            KEY,
            "--report-dir",
            str(tmp_path),
        )
    assert status == 0, out + err
    posts = [s for s in seen if s.method == "POST"]
    assert len(posts) > 40
    for request in posts:
        assert request.path.startswith("/openai/deployments/my-dall-e-3/images/generations")
        assert request.query.get("api-version") == [API_VERSION]
        assert KEY not in request.headers.get("authorization", "")
        assert not any(KEY in value for values in request.query.values() for value in values)
    sent = [r.headers.get("api-key") for r in posts]
    assert sent.count(KEY) > 30
    # The negative probes in this style: no header, a wrong key, an empty value.
    assert None in sent and WRONG_KEY in sent and "" in sent
    slash = [r for r in posts if r.path.endswith("/images/generations/")]
    assert len(slash) == 1 and slash[0].query == {"api-version": [API_VERSION]}
    assert KEY.encode() not in written(tmp_path)


def test_a_query_in_base_url_is_kept_on_every_request(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The same deployment described without `query:`: the api-version comes from --base-url.
    profile = tmp_path / "no-query.yaml"
    profile.write_text(
        "\n".join(line for line in AZURE.read_text().splitlines() if not line.startswith("query"))
    )
    seen: list[Seen] = []
    with serve(azure_app(seen)) as origin:
        base = f"{origin}/openai/deployments/d3"
        args = ["run", "--profile", str(profile), "--api-key", KEY, "--models", "dall-e-3"]
        kept = imgconf(capsys, *args, "--base-url", f"{base}?api-version={API_VERSION}",
                       "--report-dir", str(tmp_path / "kept"))  # fmt: skip
        missing = imgconf(capsys, *args, "--base-url", base, "--report-dir", str(tmp_path / "no"))
    assert kept[0] == 0, kept[1] + kept[2]
    assert all("?" not in s.path for s in seen)
    answered = [s for s in seen if s.query.get("api-version") == [API_VERSION]]
    assert answered and any(s.path.endswith("/generations/") for s in answered)
    # Without it the server names no resource (404): a wrong URL, found before anything is spent.
    assert missing[0] == 2
    assert "no image endpoint at" in missing[2] and "(404)" in missing[2]
    report = json.loads((tmp_path / "kept" / "report.json").read_text())
    assert report["target"].endswith(f"/openai/deployments/d3?api-version={API_VERSION}")


def test_serve_profile_checks_the_key_path_and_query_the_profiles_way(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    command = ["serve", "--profile", str(AZURE), "--api-key", KEY]
    server = subprocess.Popen(
        [sys.executable, "-c", "from conformance.cli import run; run()", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "profile azure-like, key in the api-key header" in line, line
        url = re.search(r" at (\S+)", line).group(1)  # type: ignore[union-attr]
        assert url.endswith(f"/openai/deployments/deployment?api-version={API_VERSION}")
        base = url.split("?")[0]
        endpoint = base + "/images/generations"
        body = {"model": "dall-e-3", "prompt": "a red circle", "size": "1024x1024"}
        no_query = httpx.post(endpoint, json=body, headers={"api-key": KEY}, timeout=30)
        bearer = httpx.post(url.replace("?", "/images/generations?"), json=body,
                            headers={"authorization": f"Bearer {KEY}"}, timeout=30)  # fmt: skip
        status, out, err = imgconf(
            capsys, "run", "--profile", str(AZURE), "--base-url", base, "--api-key", KEY,
            "--report-dir", str(tmp_path),
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)
    assert no_query.status_code == 404 and no_query.json()["error"]["code"] == "not_found"
    assert bearer.status_code == 401
    assert status == 0, out + err


def test_the_default_server_is_reached_as_before(reference_server: Any) -> None:
    assert reference_server.base_url.endswith("/v1")
    default = ServerConfig(api_key=KEY)
    assert default.routes == ("/v1/images/generations", "/v1/images/generations/")
    assert ServerConfig.for_profile(load_profile("openai"), api_key=KEY).routes == default.routes


def test_reproducers_send_the_key_the_profiles_way() -> None:
    url = "http://127.0.0.1:9/d/images/generations?api-version=1&key=[REDACTED]"
    header = curl_command(case(), url, auth=AuthStyle("header", "api-key"))
    assert '-H "api-key: $OPENAI_API_KEY"' in header and "Authorization" not in header
    assert "-H 'api-key;'" in curl_command(
        case("blank-bearer"), url, auth=AuthStyle("header", "api-key")
    )
    query = curl_command(case(), url, auth=AuthStyle("query", "key"))
    assert (
        "'http://127.0.0.1:9/d/images/generations?api-version=1&key='\"$OPENAI_API_KEY\"" in query
    )
    assert "[REDACTED]" not in query and "Authorization" not in query
    missing = curl_command(case("missing"), url, auth=AuthStyle("query", "key"))
    assert "key=" not in missing and "api-version=1" in missing


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA and a certificate for 127.0.0.1 that only it vouches for (openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    (d / "ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    run = lambda *args: subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=imgconf test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext")  # fmt: skip
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


def test_tls_is_verified_with_the_ca_bundle_or_not_at_all_with_insecure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tls_files: dict[str, Path]
) -> None:
    app = create_app(ServerConfig(api_key=KEY))
    tls = {"ssl_certfile": str(tls_files["cert"]), "ssl_keyfile": str(tls_files["key"])}
    with serve(app, **tls) as origin:
        args = ["run", "--base-url", f"{origin}/v1", "--api-key", KEY, "--models", "dall-e-2"]
        untrusted = imgconf(capsys, *args, "--report-dir", str(tmp_path / "u"))
        trusted = imgconf(capsys, *args, "--ca-bundle", str(tls_files["ca"]),
                          "--report-dir", str(tmp_path / "t"))  # fmt: skip
        insecure = imgconf(capsys, *args, "--insecure", "--report-dir", str(tmp_path / "i"))
    assert untrusted[0] == 2 and untrusted[2].count("\n") == 1
    assert "TLS certificate was not accepted" in untrusted[2] and "--ca-bundle" in untrusted[2]
    assert trusted[0] == 0, trusted[1] + trusted[2]
    report = json.loads((tmp_path / "t" / "report.json").read_text())
    assert report["tls"] == {"verify": True, "ca_bundle": str(tls_files["ca"])}
    # dall-e-2 answers URLs on the same HTTPS server: fetched and trusted through the CA file.
    fetched = [i for c in report["cases"] for i in c["images"] if i["source"] == "url"]
    assert fetched and all(i["ok"] for i in fetched)
    assert insecure[0] == 0, insecure[1] + insecure[2]
    assert "TLS is not verified" in insecure[2]


def test_an_http_image_url_that_redirects_to_https_is_fetched_with_tls_verified(
    tls_files: dict[str, Path],
) -> None:
    """Each hop of an image URL goes through the client of its own scheme: an http:// URL that
    redirects to https:// (a CDN's habit) is fetched, its certificate checked against the CA
    file, and an https:// hop to a certificate no one vouches for is refused."""
    import io

    from PIL import Image
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse, Response
    from starlette.routing import Route

    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(out, "PNG")
    png = out.getvalue()
    images = Starlette(
        routes=[Route("/a.png", lambda request: Response(png, 200, media_type="image/png"))]
    )
    tls = {"ssl_certfile": str(tls_files["cert"]), "ssl_keyfile": str(tls_files["key"])}
    with serve(images, **tls) as https_origin:
        hop = Starlette(
            routes=[Route("/a.png", lambda request: RedirectResponse(f"{https_origin}/a.png", 302))]
        )
        with serve(hop) as http_origin:

            async def fetch(**options: Any) -> Any:
                config = TransportConfig(f"{http_origin}/v1", api_key=KEY, **options)
                async with TargetClient(config) as client:
                    return await client.fetch(f"{http_origin}/a.png")

            trusted = asyncio.run(fetch(ca_bundle=str(tls_files["ca"])))
            untrusted = asyncio.run(fetch())
    assert trusted.error is None and trusted.status == 200 and trusted.response_body == png
    assert untrusted.error is not None and untrusted.attempts[-1]["error"] == "tls"


def test_insecure_is_noted_in_every_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err = imgconf(
        capsys, "run", "--insecure", "--models", "dall-e-2", "--report-dir", str(tmp_path)
    )
    assert status == 0, out + err
    assert "imgconf: warning: TLS is not verified" in err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["tls"] == {"verify": False, "ca_bundle": None}
    schema = json.loads((load_contract().directory / "report.schema.json").read_text())
    jsonschema.validate(report, schema)
    assert "TLS not verified" in (tmp_path / "report.md").read_text()
    assert "TLS not verified" in (tmp_path / "report.html").read_text()


def test_a_verified_run_has_no_tls_note(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = imgconf(capsys, "run", "--models", "dall-e-2", "--report-dir", str(tmp_path))
    assert status == 0, out + err
    assert json.loads((tmp_path / "report.json").read_text())["tls"]["verify"] is True
    assert "TLS not verified" not in (tmp_path / "report.md").read_text()
    assert "TLS not verified" not in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ca-bundle", "/nonexistent/ca.pem"], "--ca-bundle: no such file /nonexistent/ca.pem"),
        (["--ca-bundle", __file__], "--ca-bundle: cannot read"),
        (["--ca-bundle", __file__, "--insecure"], "contradict each other"),
        (["--proxy", "socks5://127.0.0.1:1080"], "--proxy must be an http(s) URL"),
    ],
)
def test_bad_tls_and_proxy_flags_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], message: str
) -> None:
    status, _out, err = imgconf(capsys, "run", *flags, "--report-dir", str(tmp_path))
    assert status == 2
    assert err.count("\n") == 1 and message in err, err


# --- a proxy for the target's traffic only ---------------------------------------------------


@contextmanager
def forward_proxy() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP forward proxy that notes each request's absolute URL and passes it on."""
    through: list[str] = []
    client = httpx.AsyncClient(trust_env=False, timeout=60)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = scope["query_string"].decode()
        url = scope["path"] + (f"?{query}" if query else "")
        through.append(f"{scope['method']} {url}")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [
            (k, v) for k, v in scope["headers"] if k.lower() not in (b"host", b"proxy-connection")
        ]
        answer = await client.request(scope["method"], url, headers=headers, content=body)
        out = [(k.encode(), v.encode()) for k, v in answer.headers.items()
               if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")]  # fmt: skip
        await send({"type": "http.response.start", "status": answer.status_code, "headers": out})
        await send({"type": "http.response.body", "body": answer.content})

    with serve(app) as origin:
        yield origin, through


def test_proxy_carries_the_targets_traffic_and_not_image_urls(
    capsys: pytest.CaptureFixture[str], reference_server: Any, tmp_path: Path
) -> None:
    with forward_proxy() as (proxy, through):
        status, out, err = imgconf(
            capsys, "run", "--base-url", reference_server.base_url,
            "--api-key", reference_server.api_key, "--models", "dall-e-2",
            "--endpoint", "generations",
            "--proxy", proxy, "--report-dir", str(tmp_path),
        )  # fmt: skip
    assert status == 0, out + err
    report = json.loads((tmp_path / "report.json").read_text())
    sent = [c for c in report["cases"] if c["status"] is not None]
    fetched = [i for c in report["cases"] for i in c["images"] if i["source"] == "url"]
    posts = [t for t in through if t.startswith("POST ")]
    # Every case went through the proxy (with the pre-flight's), no image URL did.
    assert len(posts) >= len(sent) > 50
    assert all(
        t.startswith(f"POST {reference_server.base_url}/images/generations") for t in through
    )
    assert fetched and all(i["ok"] for i in fetched)
    assert report["tls"]["verify"] is True


def test_through_a_proxy_nothing_listening_there_is_a_set_up_error(
    capsys: pytest.CaptureFixture[str], reference_server: Any, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status, _out, err = imgconf(
        capsys, "run", "--base-url", reference_server.base_url, "--api-key",
        reference_server.api_key, "--proxy", f"http://127.0.0.1:{port}", "--report-dir", str(tmp_path),
    )  # fmt: skip
    assert status == 2
    assert "connection refused" in err and "check --proxy" in err


def test_resolve_headers_refuses_the_auth_styles_own_header() -> None:
    with pytest.raises(SetupError, match="api-key carries the key"):
        resolve_headers({}, ["api-key: env:X"], AuthStyle("header", "api-key"), {"X": "y" * 10})


# --- the pytest plugin ----------------------------------------------------------------------


def test_the_pytest_plugin_takes_headers_and_the_profiles_auth_style(
    pytester: pytest.Pytester, reference_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGCONF_ROUTE_TOKEN", ROUTE_TOKEN)
    routing = {"x-provider": "imgconf-upstream", "x-route-token": ROUTE_TOKEN}
    pytester.makepyfile("def test_own(): pass")
    with run_proxy(
        reference_server.base_url, reference_server.api_key, require_headers=routing
    ) as proxy:
        args = ["--imgconf-base-url", proxy.base_url, "--imgconf-api-key", proxy.api_key]
        args += ["--imgconf-models", "dall-e-2", "-p", "no:randomly", "-rA"]
        routed = pytester.runpytest(
            *args,
            "--imgconf-header",
            "x-provider: imgconf-upstream",
            "--imgconf-header",
            "x-route-token: env:IMGCONF_ROUTE_TOKEN",
        )
        monkeypatch.delenv("IMGCONF_ROUTE_TOKEN")
        unset = pytester.runpytest(*args, "--imgconf-header", "x-t: env:IMGCONF_ROUTE_TOKEN")
    outcomes = routed.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["passed"] > 20, routed.stdout.str()
    assert ROUTE_TOKEN not in routed.stdout.str() + routed.stderr.str()
    assert unset.ret == pytest.ExitCode.USAGE_ERROR
    assert "--imgconf-header x-t: the environment variable" in unset.stderr.str()


def test_the_pytest_plugin_reaches_an_azure_like_deployment(
    pytester: pytest.Pytester,
) -> None:
    seen: list[Seen] = []
    pytester.makepyfile("def test_own(): pass")
    with serve(azure_app(seen)) as origin:
        result = pytester.runpytest(
            "--imgconf-base-url",
            f"{origin}/openai/deployments/d3",
            "--imgconf-api-key",
            KEY,
            "--imgconf-profile",
            str(AZURE),
            "-p",
            "no:randomly",
        )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["passed"] > 20, result.stdout.str()
    assert any(s.headers.get("api-key") == KEY for s in seen)
    assert all(s.query.get("api-version") == [API_VERSION] for s in seen if s.method == "POST")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("sk-live-0123\n", "holds a control character at position 13"),
        ("sk-caf\u00e9-0123", "holds a non-ASCII character at position 7"),
        (" sk-live-0123", "starts or ends with a space"),
        ("sk-live-0123 ", "starts or ends with a space"),
    ],
)
def test_a_key_no_request_can_carry_is_one_line_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, key: str, message: str
) -> None:
    """httpx refuses such a header only as each request is made, which read as the target's
    fault (every case failing transport.well_formed); the key itself is never printed."""
    status, out, err = imgconf(
        capsys,
        "run",
        "--base-url",
        "http://127.0.0.1:9/v1",  # nothing is sent, so nothing needs to listen
        "--api-key",
        key,
        "--report-dir",
        str(tmp_path),
    )
    assert status == 2
    assert err.count("\n") == 1 and message in err, err
    assert key.strip() not in out + err
    assert not (tmp_path / "report.json").exists()
