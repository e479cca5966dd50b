"""Hostile targets are findings, never crashes: exit 1, a report, bounded time and memory."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from _hostile import (
    endless_body,
    free_port,
    huge_json,
    never_answers,
    random_bytes,
    resets,
    serve,
)

from conformance.cli import main_entry
from conformance.preflight import ANSWER_TIMEOUT

TIMEOUT = 2.0
MIB = 1024 * 1024
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
            "sk-hostile-test-key-000000000000",
            "--models",
            "dall-e-2",
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
    ],
    ids=["never-answers", "resets", "random-bytes", "endless-body", "200MB-json"],
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
