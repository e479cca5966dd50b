"""Azure OpenAI: a vendor's names for models (``aliases:``), deployments (``deployments:``) and
the built-in ``azure-openai`` profile, run against the reference server serving it.

The servers record what they receive, so the tests assert on what was sent (the key only in
``api-key``, the deployment in the path, the vendor's name in ``model``), not on what imgconf
says it sent.
"""

from __future__ import annotations

import json
import os
import re
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

import httpx
import pytest
import uvicorn
import yaml

from conformance.cli import main_entry
from conformance.contract.oracle import request_violations
from conformance.contract.profiles import ProfileError, load_profile, parse_profile
from conformance.generation.planning import build_plan
from conformance.server.app import ServerConfig, create_app
from conformance.server.quirks import parse_quirks

KEY = "sk-azure-test-key-0123456789abcdef"
API_VERSION = load_profile("azure-openai").query["api-version"]
#: The quirk that lets dall-e-3 answer n > 1, and the rule it breaks (schemas/quirks.yaml).
MULTI = "dall-e-3-multi"
N_MAX = "request.n.max.dall-e-3"


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


def recording(app: Any, seen: list[Seen]) -> Any:
    """The ASGI app, noting every request it receives (headers lower-cased, the body kept)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def tapped() -> Any:
            message = await receive()
            chunks.append(message.get("body", b""))
            return message

        entry = Seen(
            scope["method"],
            scope["path"],
            scope["query_string"].decode(),
            {k.decode().lower(): v.decode() for k, v in scope["headers"]},
            b"",
        )
        seen.append(entry)
        await app(scope, tapped, send)
        entry.body = b"".join(chunks)

    return wrapped


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port in a thread; yields its origin."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off", http="h11"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def azure_server(seen: list[Seen], profile: str = "azure-openai", *quirks: str) -> Any:
    """What ``imgconf serve --profile PROFILE [--quirk Q]`` serves, recording what it gets."""
    config = ServerConfig.for_profile(
        load_profile(profile), api_key=KEY, quirks=parse_quirks(quirks)
    )
    return recording(create_app(config), seen)


def imgconf(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main_entry(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def written(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def json_of(body: bytes) -> Any:
    """A request body as JSON (None: not JSON, as the malformed-body probes send)."""
    try:
        return json.loads(body)
    except ValueError:
        return None


def report_of(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "report.json").read_text())


def failed_rules(report: dict[str, Any]) -> set[str]:
    return {entry.split(" @ ")[0] for entry in report["verdict"]["failed"]}


def user_profile(tmp_path: Path, **changes: Any) -> str:
    """An Azure profile as a user writes one: their deployment names, their names for models."""
    data: dict[str, Any] = {
        "name": "my-azure",
        "base_url": "https://contoso.openai.azure.com/openai",
        "auth": {"style": "header", "name": "api-key"},
        "query": {"api-version": API_VERSION},
        "models": ["dall-e-3", "gpt-image-1"],
        "aliases": {"my-dalle3": "dall-e-3"},
        "deployments": {"my-dalle3": "dalle3-prod", "gpt-image-1": "image-east"},
    }
    data.update(changes)
    path = tmp_path / "my-azure.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


# --- acceptance: one deployment, the OpenAI SDK's base URL ----------------------------------


def test_one_deployment_passes_and_the_key_goes_only_in_api_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: list[Seen] = []
    with serve(azure_server(seen)) as origin:
        status, out, err = imgconf(
            capsys, "run", "--profile", "azure-openai",
            "--base-url", f"{origin}/openai/deployments/dall-e-3",
            "--api-key", KEY, "--models", "dall-e-3",
            "--report-dir", str(tmp_path), "--record", str(tmp_path / "run.har"),
        )  # fmt: skip
    assert status == 0, out + err
    posts = [s for s in seen if s.method == "POST"]
    assert len(posts) > 40
    for request in posts:
        assert request.path.startswith("/openai/deployments/dall-e-3/images/generations")
        assert f"api-version={API_VERSION}" in request.query
        assert "authorization" not in request.headers
        assert KEY not in request.query
    assert [r.headers.get("api-key") for r in posts].count(KEY) > 30
    slash = [r for r in posts if r.path.endswith("/generations/")]
    assert len(slash) == 1 and slash[0].query == f"api-version={API_VERSION}"
    assert (tmp_path / "run.har").is_file()
    assert KEY.encode() not in written(tmp_path)


def test_dall_e_3_answering_n_2_fails_request_n_max_dall_e_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: list[Seen] = []
    with serve(azure_server(seen, "azure-openai", MULTI)) as origin:
        status, out, err = imgconf(
            capsys, "run", "--profile", "azure-openai",
            "--base-url", f"{origin}/openai/deployments/dall-e-3",
            "--api-key", KEY, "--models", "dall-e-3", "--report-dir", str(tmp_path),
        )  # fmt: skip
    assert status == 1, out + err
    assert N_MAX in failed_rules(report_of(tmp_path))
    assert N_MAX in out + err


def test_a_base_url_naming_one_deployment_takes_one_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, _out, err = imgconf(
        capsys, "run", "--profile", "azure-openai", "--api-key", KEY,
        "--base-url", "http://127.0.0.1:9/openai/deployments/dall-e-3",
        "--report-dir", str(tmp_path),
    )  # fmt: skip
    assert status == 2
    assert "names one deployment" in err and len(err.strip().splitlines()) == 1


# --- several deployments, aliases ----------------------------------------------------------


def test_each_model_goes_to_its_deployment_asked_by_its_alias(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    profile = user_profile(tmp_path)
    seen: list[Seen] = []
    with serve(azure_server(seen, profile)) as origin:
        status, out, err = imgconf(
            capsys, "run", "--profile", profile, "--base-url", f"{origin}/openai",
            "--api-key", KEY, "--report-dir", str(tmp_path / "r"),
        )  # fmt: skip
    assert status == 0, out + err
    asked: dict[str, set[str]] = {}
    for request in seen:
        if request.method != "POST":
            continue
        assert "authorization" not in request.headers
        body = json_of(request.body)
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            asked.setdefault(request.path.split("/")[3], set()).add(body["model"])
    # The vendor's names are sent, each to its own deployment; the contract's name never is
    # (but for the one case that names an unknown model).
    assert "my-dalle3" in asked["dalle3-prod"] and "dall-e-3" not in asked["dalle3-prod"]
    assert asked["image-east"] >= {"gpt-image-1"}
    report = report_of(tmp_path / "r")
    assert report["aliases"] == {"dall-e-3": "my-dalle3"}
    # Case ids carry the contract model: two vendors' runs compare case by case.
    ids = [c["id"] for c in report["cases"]]
    assert not any("my-dalle3" in i for i in ids) and any("dall-e-3" in i for i in ids)
    assert "my-dalle3 (dall-e-3)" in (tmp_path / "r" / "report.md").read_text()
    assert "my-dalle3 (dall-e-3)" in out


def test_an_alias_is_judged_by_its_models_own_rules(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    profile = user_profile(tmp_path)
    contract = load_profile(profile).contract
    broken = [
        v.rule for v in request_violations({"model": "my-dalle3", "prompt": "x", "n": 2}, contract)
    ]
    assert broken == [N_MAX]
    seen: list[Seen] = []
    with serve(azure_server(seen, profile, MULTI)) as origin:
        status, out, err = imgconf(
            capsys, "run", "--profile", profile, "--base-url", f"{origin}/openai",
            "--api-key", KEY, "--models", "my-dalle3", "--report-dir", str(tmp_path / "r"),
        )  # fmt: skip
    assert status == 1, out + err
    assert f"{N_MAX} @ dall-e-3" in report_of(tmp_path / "r")["verdict"]["failed"]
    bodies = [json_of(s.body) for s in seen]
    n2 = [b for b in bodies if isinstance(b, dict) and b.get("n") == 2]
    assert n2 and all(b["model"] == "my-dalle3" for b in n2)


def test_a_model_without_a_deployment_is_a_set_up_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    profile = user_profile(tmp_path, deployments={"my-dalle3": "dalle3-prod"})
    status, _out, err = imgconf(
        capsys, "run", "--profile", profile, "--base-url", "http://127.0.0.1:9/openai",
        "--api-key", KEY, "--report-dir", str(tmp_path),
    )  # fmt: skip
    assert status == 2
    assert "no deployment for gpt-image-1" in err


def test_a_deployment_the_resource_lacks_is_named_before_anything_is_spent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    served = user_profile(tmp_path)
    wrong = tmp_path / "wrong.yaml"
    data = yaml.safe_load(Path(served).read_text())
    wrong.write_text(yaml.safe_dump({**data, "deployments": {"dall-e-3": "dalle3-old"}}))
    seen: list[Seen] = []
    with serve(azure_server(seen, served)) as origin:
        status, _out, err = imgconf(
            capsys, "run", "--profile", str(wrong), "--base-url", f"{origin}/openai",
            "--api-key", KEY, "--models", "dall-e-3", "--report-dir", str(tmp_path / "r"),
        )  # fmt: skip
    assert status == 2
    assert "no image endpoint at" in err
    assert "/openai/deployments/dalle3-old/images/generations" in err


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"aliases": ["x"]}, "field 'aliases' must map"),
        ({"aliases": {"x": "dall-e-2"}}, "field 'aliases.x' must name a model of the profile"),
        ({"aliases": {"dall-e-3": "gpt-image-1"}}, "field 'aliases.dall-e-3'"),
        ({"aliases": {"a": "dall-e-3", "b": "dall-e-3"}}, "already has the alias 'a'"),
        ({"deployments": {"nope": "d"}}, "field 'deployments.nope': not a model or alias"),
        ({"deployments": {"dall-e-3": "a/b"}}, "field 'deployments.dall-e-3' must be"),
        ({"deployments": {"dall-e-3": "d", "gpt-image-1": "d"}}, "one deployment serves one"),
        (
            {"base_url": "https://h.example/openai/deployments/{deployment}"},
            "base_url must end before /deployments/",
        ),
    ],
)
def test_a_broken_alias_or_deployment_names_its_field(
    tmp_path: Path, changes: dict[str, Any], named: str
) -> None:
    data = yaml.safe_load(Path(user_profile(tmp_path)).read_text())
    data.update(changes)
    with pytest.raises(ProfileError, match=re.escape(named)):
        parse_profile(data, "my-azure.yaml")


# --- the reference server serving azure-openai ----------------------------------------------


def test_the_server_knows_which_deployment_serves_which_model(tmp_path: Path) -> None:
    seen: list[Seen] = []
    with serve(azure_server(seen, user_profile(tmp_path))) as origin:

        def post(deployment: str, body: dict[str, Any], **headers: str) -> httpx.Response:
            url = f"{origin}/openai/deployments/{deployment}/images/generations"
            return httpx.post(
                url, params={"api-version": API_VERSION}, json=body, headers=headers, timeout=30
            )

        prompt = {"prompt": "a red circle", "size": "1024x1024"}
        ok = post("dalle3-prod", {"model": "my-dalle3", **prompt}, **{"api-key": KEY})
        omitted = post("dalle3-prod", {"prompt": "a red circle", "n": 2}, **{"api-key": KEY})
        other = post("dalle3-prod", {"model": "gpt-image-1", **prompt}, **{"api-key": KEY})
        unknown = post("nope", {"model": "my-dalle3", **prompt}, **{"api-key": KEY})
        bearer = post(
            "dalle3-prod", {"model": "my-dalle3", **prompt}, authorization=f"Bearer {KEY}"
        )
    assert ok.status_code == 200, ok.text
    # Without `model`, the request is the deployment's model's: n=2 breaks dall-e-3's maximum.
    assert omitted.status_code == 400 and omitted.json()["error"]["param"] == "n"
    assert other.status_code == 400 and other.json()["error"]["param"] == "model"
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "DeploymentNotFound"
    assert bearer.status_code == 401


def test_imgconf_serve_profile_azure_openai_prints_its_deployments_and_refuses_bearer() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    command = ["serve", "--profile", "azure-openai", "--api-key", KEY]
    server = subprocess.Popen(
        [sys.executable, "-c", "from conformance.cli import run; run()", *command],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = re.search(r" at (\S+)", line).group(1)  # type: ignore[union-attr]
        endpoint = url.replace("/openai?", "/openai/deployments/gpt-image-1/images/generations?")
        body = {"model": "gpt-image-1", "prompt": "a red circle", "output_format": "jpeg"}
        keyed = httpx.post(endpoint, json=body, headers={"api-key": KEY}, timeout=30)
        webp = httpx.post(endpoint, json={**body, "output_format": "webp"},
                          headers={"api-key": KEY}, timeout=30)  # fmt: skip
        bearer = httpx.post(endpoint, json=body, headers={"authorization": f"Bearer {KEY}"},
                            timeout=30)  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)
    assert "key in the api-key header" in line and "deployments dall-e-3=dall-e-3" in line
    assert "gpt-image-1=gpt-image-1 (azure-gpt-image-1)" in line
    assert url.endswith(f"/openai?api-version={API_VERSION}")
    assert keyed.status_code == 200, keyed.text
    # WEBP is not served on Azure: the declared output formats hold.
    assert webp.status_code == 400 and webp.json()["error"]["param"] == "output_format"
    assert bearer.status_code == 401


# --- the built-in profile -----------------------------------------------------------------


def test_the_azure_profile_round_trips(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = imgconf(
        capsys, "run", "--profile", "azure-openai", "--report-dir", str(tmp_path)
    )
    assert status == 0, out + err
    report = report_of(tmp_path)
    assert report["verdict"]["status"] == "pass"
    assert set(report["aliases"]) == {"azure-gpt-image-1", "azure-gpt-image-1-mini",
                                      "azure-gpt-image-1.5", "azure-gpt-image-2"}  # fmt: skip


def test_plan_prints_the_azure_cases_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = imgconf(capsys, "plan", "--profile", "azure-openai")
    assert status == 0, err
    assert re.search(r"Plan for profile azure-openai, seed 0: \d+ requests", out)
    assert "images of unknown price" in out
    assert "gpt-image-1 (azure-gpt-image-1):" in out and "\ndall-e-3:" in out
    assert "request.n.max.dall-e-3" in out


def test_every_azure_fact_cites_its_page() -> None:
    profile = load_profile("azure-openai")
    assert profile.auth.style == "header" and profile.auth.name == "api-key"
    assert "learn.microsoft.com" in profile.source
    for model in profile.declared:
        assert model.source.startswith("https://learn.microsoft.com/"), model.name
        for name, fact in model.facts.items():
            if name == "output_formats":
                assert fact.evidence and "WEBP" in fact.evidence, model.name
                assert fact.value == ["png", "jpeg"]
    webp = {"model": "gpt-image-1", "prompt": "x", "output_format": "webp"}
    assert [v.param for v in request_violations(webp, profile.contract)] == ["output_format"]
    plan = build_plan(profile, models=["gpt-image-1"])
    assert {c.body["model"] for c in plan.cases if c.model == "azure-gpt-image-1"} == {
        "gpt-image-1"
    }
    assert all(profile.price(m, None, None) is None for m in profile.models)
