"""Hostile targets are findings, never crashes: exit 1, a report, bounded time and memory."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _hostile import (
    FakeNetwork,
    endless_body,
    free_port,
    gzip_bomb,
    huge_json,
    never_answers,
    random_bytes,
    resets,
    retry_after_flood,
    serve,
    serves_image,
    sets_cookies,
    stacked_gzip,
)
from _passthrough_proxy import run_proxy

from conformance.cli import main_entry
from conformance.server.launcher import start_reference_server
from conformance.settings import PREFLIGHT_ANSWER_TIMEOUT as ANSWER_TIMEOUT

TIMEOUT = 2.0
MIB = 1024 * 1024
KEY = "sk-hostile-test-key-000000000000"
#: What one run may hold at once: a body cap's worth per request in flight, plus the rest.
CONCURRENCY = 2
BODY_CAP = 64 * MIB


def run_against(base_url: str, report_dir: Path, *extra: str) -> int:
    return main_entry(
        [
            "run",
            "--base-url",
            base_url,
            "--api-key",
            KEY,
            "--models",
            "dall-e-2",
            "--endpoint",
            "generations",
            "--timeout",
            str(TIMEOUT),
            "--concurrency",
            str(CONCURRENCY),
            "--report-dir",
            str(report_dir),
            *extra,
        ]
    )


@pytest.mark.parametrize(
    ("handler", "rules"),
    [
        (never_answers, ("transport.timeout",)),
        (resets, ("transport.connection",)),
        # Bytes without a status line end like a hang-up: httpx cannot tell them apart.
        (random_bytes, ("transport.well_formed", "transport.connection")),
        (endless_body, ("transport.well_formed",)),
        (huge_json, ("transport.well_formed",)),
        (gzip_bomb, ("transport.well_formed",)),
        (stacked_gzip, ("transport.well_formed",)),
    ],
    ids=[
        "never-answers",
        "resets",
        "random-bytes",
        "endless-body",
        "200MB-json",
        "10GB-gzip-bomb",
        "gzip-gzip",
    ],
)
def test_hostile_target_is_a_finding(handler, rules, tmp_path, capsys):
    with serve(handler) as base_url:
        tracemalloc.start()
        started = time.perf_counter()
        try:
            status = run_against(base_url, tmp_path)
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert status == 1
    # The pre-flight waits for an answer too (a hang is left to the run), then the run's own.
    assert elapsed < min(TIMEOUT, ANSWER_TIMEOUT) + TIMEOUT + 8, elapsed
    assert peak < CONCURRENCY * BODY_CAP + 48 * MIB, peak / MIB
    report = json.loads((tmp_path / "report.json").read_text())
    assert any(f.split(" @ ")[0] in rules for f in report["verdict"]["failed"]), report["verdict"]
    for name in ("junit.xml", "report.md", "report.html"):
        assert (tmp_path / name).is_file()
    assert "Traceback" not in capsys.readouterr().err


def test_nothing_listening_is_a_setup_error(tmp_path, capsys):
    status = run_against(f"http://127.0.0.1:{free_port()}/v1", tmp_path)
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing listening" in err[0]
    assert not (tmp_path / "report.json").exists()


def test_sigterm_stops_the_run_and_writes_an_incomplete_report(tmp_path):
    with serve(never_answers) as base_url:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from conformance.cli import run; run()",
                "run",
                "--base-url",
                base_url,
                "--api-key",
                "sk-sigterm-test-key-0000000000",
                "--models",
                "dall-e-2",
                "--timeout",
                "60",
                "--report-dir",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # The first line comes once the pre-flight is done and the plan is being sent.
        assert process.stdout is not None and process.stdout.readline()
        time.sleep(2.5)
        started = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)
    assert process.returncode not in (0, 2), err
    assert time.perf_counter() - started < 10
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"]["incomplete"] is True


@pytest.mark.slow
def test_a_retry_after_flood_ends_within_a_minute(tmp_path, capsys):
    """Every request answered 429 with ``Retry-After: 29``: the run's retry budget (60 s of
    waits) is spent by the first few cases; the rest end throttled (not observed) at once."""
    with serve(retry_after_flood) as base_url:
        started = time.perf_counter()
        status = main_entry(
            [
                "run",
                "--base-url",
                base_url,
                "--api-key",
                KEY,
                "--timeout",
                "10",
                "--report-dir",
                str(tmp_path),
            ]
        )
        elapsed = time.perf_counter() - started
    assert status == 3  # INCOMPLETE: throttled, nothing observed
    assert elapsed < 60, elapsed
    report = json.loads((tmp_path / "report.json").read_text())
    outcomes = {c["outcome"] for c in report["cases"]}
    assert outcomes == {"not_observed"}, outcomes
    retried = sum(1 for c in report["cases"] if "after 0 retries" not in c["note"])
    assert 0 < retried <= 2
    assert "Traceback" not in capsys.readouterr().err


def _requests_heads(requests: list[bytes]) -> list[bytes]:
    return [r.split(b"\r\n\r\n")[0].lower() for r in requests]


def test_a_cookie_holding_the_key_never_reaches_another_origin(tmp_path, capsys):
    """The target sets cookies holding the key (host-only and Domain-scoped) and answers image
    URLs on another port of the same host: they are fetched, carrying no cookie and no key."""
    target_seen: list[bytes] = []
    image_seen: list[bytes] = []
    with serve(serves_image(image_seen)) as image_base:
        port = urlsplit(image_base).port
        urls = [f"http://127.0.0.1:{port}/a.png", f"http://localhost:{port}/b.png"]
        with serve(sets_cookies(KEY, urls, target_seen)) as base_url:
            status = run_against(base_url, tmp_path)
    assert status == 1
    assert len(image_seen) > 2 and len(target_seen) > 2
    assert not any(b"cookie:" in head for head in _requests_heads(target_seen + image_seen))
    assert not any(KEY.encode() in request for request in image_seen)
    for report in tmp_path.iterdir():
        assert KEY not in report.read_text(errors="replace"), report.name
    assert "Traceback" not in capsys.readouterr().err


def test_image_urls_on_a_private_address_need_allow_private_urls(tmp_path, monkeypatch):
    """A loopback target answers image URLs whose name resolves to 10.0.0.5 (a stub resolver;
    the pretend address is served on loopback): not fetched, unless the user allows it."""
    network = FakeNetwork().install(monkeypatch)
    image_seen: list[bytes] = []
    with serve(serves_image(image_seen)) as image_base:
        port = urlsplit(image_base).port
        network.names["lan.test"] = ["10.0.0.5"]
        network.routes["10.0.0.5"] = "127.0.0.1"
        urls = [f"http://lan.test:{port}/a.png"]
        with serve(sets_cookies(KEY, urls, [])) as base_url:
            run_against(base_url, tmp_path / "blocked")
            fetched_blocked = len(image_seen)
            run_against(base_url, tmp_path / "allowed", "--allow-private-urls")
    assert fetched_blocked == 0 and len(image_seen) > 0

    def fetch_messages(name: str) -> list[str]:
        report = json.loads((tmp_path / name / "report.json").read_text())
        return [
            f["message"]
            for c in report["cases"]
            for f in c["findings"]
            if f["rule"] == "response.url.fetch"
        ]

    blocked = fetch_messages("blocked")
    assert blocked and all("--allow-private-urls" in m for m in blocked)
    assert fetch_messages("allowed") == []


def test_a_conformant_server_that_gzips_its_answers_passes_with_a_warning(tmp_path):
    with (
        start_reference_server(mode="thread") as upstream,
        run_proxy(upstream.base_url, upstream.api_key, fault="gzip") as proxy,
    ):
        status = main_entry(
            [
                "run",
                "--base-url",
                proxy.base_url,
                "--api-key",
                proxy.api_key,
                "--models",
                "dall-e-2",
                "--report-dir",
                str(tmp_path),
            ]
        )
    report = json.loads((tmp_path / "report.json").read_text())
    assert status == 0, report["verdict"]
    assert report["verdict"]["failed"] == []
    assert any(w.startswith("transport.content_encoding") for w in report["verdict"]["warned"])
