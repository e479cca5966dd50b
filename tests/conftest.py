"""Shared fixtures: the reference server in-process (ASGI) and for real (uvicorn on loopback),
and ``imgconf run`` called in-process."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from starlette.testclient import TestClient

from conformance.cli import main_entry
from conformance.contract.profiles import load_profile
from conformance.engine import image_facts
from conformance.engine.seen_images import SeenImages
from conformance.server.app import ServerConfig, create_app
from conformance.server.launcher import RunningServer, start_reference_server
from conformance.server.quirks import parse_quirks

TEST_KEY = "sk-test-reference-0123456789"

#: Makes an in-process client of the reference server:
#: ``reference_client(lenient=..., quirks=..., profile=NAME|FILE)``.
ClientFactory = Callable[..., TestClient]


@pytest.fixture(autouse=True)
def fresh_seen_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test judges images afresh: one that spies on decodes sees them whatever ran before
    it (repeats of an image are answered from the memory of :mod:`seen_images`)."""
    monkeypatch.setattr(image_facts, "_SEEN", SeenImages())


@pytest.fixture(scope="session")
def reference_api_key() -> str:
    """The key the clients of ``reference_client`` send."""
    return TEST_KEY


@pytest.fixture(scope="session")
def reference_client() -> Iterator[ClientFactory]:
    """A factory of ASGI test clients (no sockets), one per configuration, kept for the session.

    Clients send the right key unless a test passes its own headers.
    """
    clients: dict[tuple, TestClient] = {}

    def make(
        lenient: bool = False,
        quirks: tuple[str, ...] = (),
        url_ttl: float = 3600.0,
        profile: str | None = None,
    ) -> TestClient:
        key = (lenient, tuple(quirks), url_ttl, profile)
        if key not in clients:
            options = {"lenient": lenient, "quirks": parse_quirks(quirks), "url_ttl": url_ttl}
            if profile is None:
                config = ServerConfig(api_key=TEST_KEY, **options)
            else:
                # Served as the profile's models (its path and auth style are the default ones).
                contract = load_profile(profile).contract
                config = ServerConfig(api_key=TEST_KEY, contract=contract, **options)
            client = TestClient(
                create_app(config),
                base_url="http://127.0.0.1:8000",
                headers={"Authorization": f"Bearer {TEST_KEY}"},
            )
            clients[key] = client.__enter__()
        return clients[key]

    yield make
    for client in clients.values():
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def reference_server() -> Iterator[RunningServer]:
    """One real reference server (strict, child process) on a free loopback port."""
    with start_reference_server() as server:
        yield server


class Target(Protocol):
    """A server to run against: a running reference server, a proxy in front of one, ..."""

    base_url: str
    api_key: str


#: ``imgconf_run(*ARGS, target=None, report_dir=None)``: see :func:`imgconf_run`.
RunCommand = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture
def imgconf_run(tmp_path: Path) -> RunCommand:
    """``imgconf run ARGS`` in this process: its exit status and the report.json it wrote.

    ``target`` adds its ``--base-url`` and ``--api-key``; the reports go to ``report_dir``,
    else to the test's ``tmp_path``. The report is read back as the source of truth.
    """

    def run(
        *args: str, target: Target | None = None, report_dir: Path | None = None
    ) -> tuple[int, dict[str, Any]]:
        directory = tmp_path if report_dir is None else report_dir
        argv = ["run", "--report-dir", str(directory), *args]
        if "--endpoint" not in args and "--from" not in args:
            argv += ["--endpoint", "generations"]  # what these tests judge; edits say so
        if target is not None:
            argv += ["--base-url", target.base_url, "--api-key", target.api_key]
        status = main_entry(argv)
        return status, json.loads((directory / "report.json").read_text())

    return run
