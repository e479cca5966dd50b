"""``imgconf profile draft``: a profile recovered from a live endpoint, within its image cap.

The reference server serves a known profile; the draft is compared with it fact by fact, the
images the server generated are counted by a pass-through proxy in front of it (the 2xx
answers' data items), and the draft is run against the same server.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from _passthrough_proxy import run_proxy
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance.cli import main_entry
from conformance.contract.declared import STANDARD, DeclaredModel
from conformance.contract.loader import parse_wxh
from conformance.contract.profiles import load_profile
from conformance.engine.drafting import (
    Drafter,
    draft_document,
    draft_text,
    listed_models,
    read_answer,
)
from conformance.engine.results import Exchange
from conformance.engine.runner import Budget
from conformance.engine.transport import TargetClient, TransportConfig
from conformance.server.launcher import start_reference_server

ROOT = Path(__file__).resolve().parents[1]
FLUX = str(ROOT / "examples" / "profiles" / "flux-like.yaml")
WXH_MODEL = {
    "name": "qwen-image",
    "n": {"max": 2},
    "sizes": {
        "list": ["1024x1024"],
        "wxh": {
            "multiple_of": 16,
            "min_edge": 256,
            "max_edge": 1440,
            "max_aspect": 3,
            "max_pixels": 2073600,
        },
    },
    "output_formats": ["png", "jpeg"],
    "response_formats": ["b64_json", "url"],
    "extensions": {"seed": {"type": "integer", "minimum": 0}},
}


def draft(target: Any, out: Path, *extra: str, key: str | None = None) -> int:
    return main_entry(
        [
            "profile",
            "draft",
            "--base-url",
            target.base_url,
            "--api-key",
            key or target.api_key,
            "--out",
            str(out),
            *extra,
        ]
    )


def declared(path: str | Path, model: str) -> DeclaredModel:
    return next(m for m in load_profile(str(path)).declared if m.name == model)


def value(model: DeclaredModel, fact: str, default: Any = None) -> Any:
    found = model.facts.get(fact)
    return default if found is None else found.value


def assert_all_observed(model: DeclaredModel) -> None:
    for name, fact in model.facts.items():
        assert fact.level == "SHOULD", name
        assert fact.observed and fact.evidence is None, name


@contextmanager
def counted_reference(profile: str) -> Iterator[tuple[Any, Any]]:
    """The reference server serving ``profile``, behind a proxy that counts its images."""
    with (
        start_reference_server(profile=profile) as server,
        run_proxy(server.base_url, server.api_key) as proxy,
    ):
        yield server, proxy


def test_the_flux_like_profile_is_recovered_within_the_cap(tmp_path, imgconf_run, capsys):
    cap = 20
    out = tmp_path / "flux-draft.yaml"
    with counted_reference(FLUX) as (server, proxy):
        status = draft(proxy, out, "--models", "flux-schnell", "--max-images", str(cap))
        printed = capsys.readouterr().out
        assert status == 0, printed
        assert 0 < proxy.stats.images <= cap
        assert f"draft written to {out}" in printed
        text = out.read_text()
        assert proxy.api_key not in text and server.api_key not in text
        assert "extension parameters" in text  # what probing cannot find is said
        source, found = declared(FLUX, "flux-schnell"), declared(out, "flux-schnell")
        assert_all_observed(found)
        assert set(value(found, "sizes")) == set(value(source, "sizes"))
        assert value(found, "default_size") == value(source, "default_size")
        assert value(found, "n") == value(source, "n")
        for fact in ("output_formats", "response_formats"):
            assert value(found, fact) == value(source, fact), fact
        assert set(value(source, "refuses")) <= set(value(found, "refuses"))
        assert set(value(source, "takes")) <= set(value(found, "takes"))
        assert "quality" not in found.facts  # refused, so no qualities
        # The draft is a profile the same server passes.
        status, report = imgconf_run("--profile", str(out), target=server)
    assert status == 0, report["verdict"]


def test_a_wxh_rule_is_found_within_the_cap(tmp_path, imgconf_run):
    cap = 30
    source_path = tmp_path / "wxh.yaml"
    source_path.write_text(yaml.safe_dump({"name": "wxh", "models": [WXH_MODEL]}))
    out = tmp_path / "wxh-draft.yaml"
    with counted_reference(str(source_path)) as (server, proxy):
        assert draft(proxy, out, "--models", "qwen-image", "--max-images", str(cap)) == 0
        assert 0 < proxy.stats.images <= cap
        source, found = declared(source_path, "qwen-image"), declared(out, "qwen-image")
        assert_all_observed(found)
        rule = load_profile(str(source_path)).contract.models["qwen-image"].custom_sizes
        sizes, stated = value(found, "sizes"), value(source, "sizes")["wxh"]
        for limit in ("multiple_of", "max_edge", "max_aspect", "max_pixels"):
            assert sizes["wxh"][limit] == stated[limit], limit
        # The stated min_edge bounds only the safe zone: the server takes smaller sizes.
        assert sizes["wxh"]["min_edge"] <= stated["min_edge"]
        assert set(value(source, "sizes")["list"]) <= set(sizes["list"])
        for size in sizes["list"]:
            assert rule.broken_limit(*parse_wxh(size)) is None, size
        assert value(found, "n") == value(source, "n")
        assert value(found, "response_formats") == value(source, "response_formats")
        assert value(found, "output_formats") == value(source, "output_formats")
        status, report = imgconf_run("--profile", str(out), target=server)
    assert status == 0, report["verdict"]


def test_a_small_budget_is_kept_and_what_it_left_out_is_said(tmp_path):
    out = tmp_path / "small.yaml"
    with counted_reference(FLUX) as (_server, proxy):
        assert draft(proxy, out, "--models", "flux-schnell", "--max-images", "3") == 0
        assert proxy.stats.images <= 3
    text = out.read_text()
    assert "not probed (budget)" in text
    found = declared(out, "flux-schnell")
    assert "n" not in found.facts  # n=2 did not fit: not claimed either way


# --- a server that accepts everything --------------------------------------------------------


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@contextmanager
def accepting_everything(
    names: tuple[str, ...] | list[str] = ("anything-goes",),
) -> Iterator[tuple[str, list[int]]]:
    """A server that answers every JSON request 200 with as many images as asked (any n),
    lists ``names`` as its models, and records the images each request asked for."""
    asked: list[int] = []
    picture = _png()

    async def generations(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": {"message": "not JSON"}}, status_code=400)
        n = body.get("n") if isinstance(body, dict) else None
        n = n if isinstance(n, int) and n > 0 else 1
        asked.append(n)
        return JSONResponse({"created": 1, "data": [{"b64_json": picture}] * n})

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": name} for name in names]})

    app = Starlette(
        routes=[
            Route("/v1/images/generations", generations, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", asked
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.mark.parametrize("cap", [1, 7, 30])
def test_a_server_that_accepts_everything_never_gets_more_than_the_cap(tmp_path, cap):
    out = tmp_path / "all.yaml"
    with accepting_everything() as (base_url, asked):
        status = main_entry(
            [
                "profile",
                "draft",
                "--base-url",
                base_url,
                "--api-key",
                "sk-draft-key-000",
                "--max-images",
                str(cap),
                "--out",
                str(out),
            ]
        )
    assert status == 0
    assert asked and sum(asked) <= cap
    assert declared(out, "anything-goes").name == "anything-goes"  # listed by GET /models


def test_no_model_list_and_no_models_is_one_line_and_exit_2(tmp_path, capsys):
    with start_reference_server(profile=FLUX) as server:
        status = draft(server, tmp_path / "x.yaml", "--max-images", "5")
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and "--models" in err[0], err
    assert not (tmp_path / "x.yaml").exists()


# --- reading answers -------------------------------------------------------------------------


def _exchange(status: int, body: Any, content_type: str = "application/json") -> Exchange:
    return Exchange(
        method="POST",
        url="http://127.0.0.1/v1/images/generations",
        request_headers={},
        request_body=b"",
        status=status,
        response_headers={"content-type": content_type},
        response_body=json.dumps(body).encode() if not isinstance(body, bytes) else body,
    )


def test_an_answer_is_read_as_items_of_a_format_and_size():
    answer = read_answer(_exchange(200, {"data": [{"b64_json": _png()}] * 2}))
    assert answer.accepted and len(answer.items) == 2
    assert answer.items[0].size == "8x8" and answer.items[0].format == "png"
    assert answer.items[0].carried == "b64_json"
    assert read_answer(_exchange(400, {"error": {"message": "no"}})).refused
    assert read_answer(_exchange(200, b"data: {}\n\n", "text/event-stream")).streamed


def test_a_model_list_is_read_only_from_a_list():
    assert listed_models(_exchange(200, {"data": [{"id": "a"}, {"id": "b"}, {"id": "a"}]})) == [
        "a",
        "b",
    ]
    assert listed_models(_exchange(404, {"error": {"message": "no"}})) is None
    assert listed_models(_exchange(200, {"models": []})) is None


def test_the_profile_given_says_how_to_reach_the_target_and_the_draft_keeps_it(
    tmp_path, imgconf_run
):
    # A gateway that takes the key in an `api-key` header and needs an api-version query.
    reach = {"auth": {"style": "header", "name": "api-key"}, "query": {"api-version": "2026-01"}}
    entry = yaml.safe_load(Path(FLUX).read_text())["models"][0]
    served = tmp_path / "gateway.yaml"
    served.write_text(yaml.safe_dump({"name": "gateway", **reach, "models": [entry]}))
    reach_only = tmp_path / "reach.yaml"
    reach_only.write_text(yaml.safe_dump({"name": "reach", **reach, "models": ["dall-e-2"]}))
    out = tmp_path / "gateway-draft.yaml"
    with start_reference_server(profile=str(served)) as server:
        extra = ("--models", "flux-schnell", "--max-images", "12", "--profile", str(reach_only))
        assert draft(server, out, *extra) == 0
        drafted = load_profile(str(out))
        assert drafted.auth.name == "api-key" and dict(drafted.query) == reach["query"]
        assert value(declared(out, "flux-schnell"), "n") == {"min": 1, "max": 4}
        status, report = imgconf_run("--profile", str(out), target=server)
    assert status == 0, report["verdict"]


# --- what an answer that ignores a field makes of it -----------------------------------------


@pytest.mark.parametrize(
    ("quirk", "ignored", "absent"),
    [("ignore-size", "size", "sizes"), ("ignore-n", "n", "n")],
)
def test_a_field_answered_as_if_omitted_is_drafted_as_ignored(tmp_path, quirk, ignored, absent):
    out = tmp_path / f"{quirk}.yaml"
    with start_reference_server(profile=FLUX, quirks=(quirk,)) as server:
        assert draft(server, out, "--models", "flux-schnell", "--max-images", "30") == 0
    found = declared(out, "flux-schnell")
    assert ignored in value(found, "ignores", [])
    assert absent not in found.facts
    assert value(found, "default_size") == "1024x1024"


def test_urls_answered_as_base64_make_response_format_ignored(tmp_path):
    source = tmp_path / "wxh.yaml"
    source.write_text(yaml.safe_dump({"name": "wxh", "models": [WXH_MODEL]}))
    out = tmp_path / "b64.yaml"
    with start_reference_server(profile=str(source), quirks=("b64-instead-of-url",)) as server:
        assert draft(server, out, "--models", "qwen-image", "--max-images", "30") == 0
    found = declared(out, "qwen-image")
    assert value(found, "response_formats") == ["b64_json"]
    assert "response_format" in value(found, "ignores", [])


def test_what_a_hostile_model_list_holds_stays_out_of_the_draft(tmp_path):
    key = "sk-draft-key-000"
    out = tmp_path / "hostile.yaml"
    names = [f"leak-{key}", "two\nlines: [x]", " padded "]
    with accepting_everything(names) as (base_url, asked):
        argv = ["profile", "draft", "--base-url", base_url, "--api-key", key, "--out", str(out)]
        status = main_entry([*argv, "--max-images", "4"])
    assert status == 0 and sum(asked) <= 4
    text = out.read_text()
    assert key not in text
    drafted = load_profile(str(out))  # still one profile, whatever the names held
    assert " padded " not in drafted.models
    # A name holding a line break stays inside its comment line.
    assert "lines" not in yaml.safe_load(text)
    assert any(line.startswith("# two\\nlines: [x]") for line in text.splitlines())


# --- a probe sent again after a dropped connection ---------------------------------------------


@pytest.mark.parametrize(("cap", "sent"), [(1, 2), (2, 3)])
def test_a_probe_is_sent_again_only_if_it_fits_the_budget_again(cap, sent):
    # The second probe goes out on the first one's kept-alive connection and is dropped there
    # (it may have reached the server): sending it once more must fit the budget once more.
    from test_reconnect import stale_keep_alive_server

    async def go():
        async with stale_keep_alive_server() as server:
            config = TransportConfig(server.base_url, api_key="sk-draft-key-000", timeout=5)
            budget = Budget(max_images=cap)
            async with TargetClient(config) as client:
                drafter = Drafter(client, budget, load_profile("openai").contract)
                answers = [await drafter.ask("some-model", {}) for _ in range(2)]
            return server, answers, budget

    server, answers, budget = asyncio.run(go())
    assert len(server.requests) == sent
    assert answers[0].refused
    assert budget.images == 1 and budget.in_flight == 0  # the dropped try keeps its image


def test_a_header_from_the_environment_is_sent_and_never_written(tmp_path, monkeypatch, capsys):
    secret = "route-secret-4242-abcdef"
    monkeypatch.setenv("DRAFT_ROUTE", secret)
    out = tmp_path / "headers.yaml"
    with (
        start_reference_server(profile=FLUX) as server,
        run_proxy(server.base_url, server.api_key, require_headers={"x-route": secret}) as proxy,
    ):
        extra = ("--models", "flux-schnell", "--max-images", "3")
        assert draft(proxy, out, *extra, "--header", "x-route: env:DRAFT_ROUTE") == 0
        assert proxy.stats.images >= 1  # the gateway routed it: the header was sent
    text = out.read_text()
    assert secret not in text and secret not in capsys.readouterr().out
    assert "--header values sent are not written" in text


def test_a_contract_model_is_recovered_fact_by_fact_and_listed_by_name(tmp_path):
    # The reference server serves OpenAI's models as the contract states them: what probing
    # recovers of one with every kind of fact is checked against its contract spec.
    contract = load_profile("openai").contract
    model = next(
        m.name
        for m in contract.models.values()
        if m.takes("stream") and m.takes("background") and m.custom_sizes is None
    )
    spec = contract.models[model]

    async def go(base_url: str, key: str):
        config = TransportConfig(base_url, api_key=key, timeout=30)
        budget = Budget(max_images=60)
        async with TargetClient(config) as client:
            return await Drafter(client, budget, contract).draft_model(model), budget

    with start_reference_server() as server:
        found, budget = asyncio.run(go(server.base_url, server.api_key))
    assert budget.images <= 60 and not found.skipped
    facts = {k: v for k, (v, _) in found.facts.items()}
    assert set(facts["sizes"]) == set(spec.sizes)
    assert set(facts["qualities"]) == set(spec.qualities)
    assert set(facts["output_formats"]) == set(spec.values("output_format"))
    assert facts["output_formats"][0] == spec.default("output_format", contract)
    assert facts["n"] == {"min": 1, "max": spec.n_max}
    assert facts["stream"] is facts["background"] is facts["output_compression"] is True
    untaken = {f for f in STANDARD if f != "prompt" and not spec.takes(f)}
    assert untaken and untaken <= set(found.refuses)
    doc = draft_document([found], name="d", base_url=server.base_url, contract=contract, path="/x")
    assert doc["models"] == [model]  # a contract model: listed by name
    assert f"# {model}: a contract model" in draft_text([found], doc)
