"""The acceptance suite of hostile targets: each run, as a user would start it, ends in bounded
time and memory with a report, and the key reaches no output and no other origin.

Each target of ``_hostile.TARGETS`` is run by ``imgconf run --timeout 10`` in a subprocess at
the default concurrency, under ``/usr/bin/time`` where it is installed so the peak resident
memory of imgconf's process tree is measured, not guessed.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from _hostile import (
    RECORDED,
    TARGETS,
    answers_every_request,
    key_disguises,
    million_items,
    serve,
    start_target,
)
from _report_fixtures import gpt_answer
from PIL import Image

from conformance.contract.profiles import load_profile
from conformance.engine.results import Outcome
from conformance.engine.runner import Runner
from conformance.engine.transport import TargetClient, TransportConfig
from conformance.generation.cases import Case

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
#: A key of no vendor's shape: only the decoded-text redaction can catch it.
KEY = "Qv7_hostile-Kb2mW9xZ4pLr8TnY3cJd6FgH"
WALL_LIMIT = 60.0
RSS_LIMIT_MB = 400
#: Targets whose single run takes longer than 20 s (the retry budget is spent in waits).
SLOW = {"retry-after-flood"}
MARKS = {name: [pytest.mark.slow] for name in SLOW}
TIME = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
#: The address space a run may reserve: far above the bound measured, it only keeps a
#: regression from taking the (shared) machine down with it before the test can fail.
ADDRESS_SPACE = 2 << 30


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@dataclass
class Run:
    status: int
    wall: float
    rss_mb: float
    stdout: str
    stderr: str


def imgconf(args: list[str], report_dir: Path, *, sigterm_after: float | None = None) -> Run:
    """``imgconf run`` in a subprocess (under ``/usr/bin/time`` where present, unless it is to
    be sent SIGTERM: the signal must reach imgconf itself)."""
    rss_file = report_dir.parent / f"{report_dir.name}.rss"
    argv = [sys.executable, "-c", "from conformance.cli import run; run()", "run", *args]
    argv += ["--report-dir", str(report_dir)]
    timed = TIME is not None and sigterm_after is None
    if timed:
        argv = [TIME, "-f", "%M", "-o", str(rss_file), *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        preexec_fn=_limit_address_space,
    )
    if sigterm_after is not None:
        assert process.stdout is not None and process.stdout.readline()  # the plan is being sent
        time.sleep(sigterm_after)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=WALL_LIMIT + 5)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"still running after {WALL_LIMIT + 5:.0f} s: {err[-1000:]}")
    wall = time.monotonic() - started
    if timed:
        rss_kb = float(rss_file.read_text().split()[-1])
    else:  # the largest child so far: an upper bound for this one
        rss_kb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return Run(process.returncode, wall, rss_kb / 1024, out, err)


def _base_args(base_url: str) -> list[str]:
    # A hostile answer is read the same way whatever the endpoint asked: generations' plan
    # is enough to meet every one (edits' forms reach the same targets in test_edit_judging).
    return [
        "--base-url",
        base_url,
        "--api-key",
        KEY,
        "--timeout",
        "10",
        "--endpoint",
        "generations",
    ]


def assert_key_nowhere(directory: Path, run: Run) -> None:
    """Not verbatim, nor JSON-, percent- or HTML-escaped, nor base64 at any alignment."""
    outputs = {p.name: p.read_bytes() for p in directory.rglob("*") if p.is_file()}
    outputs["stdout"] = run.stdout.encode()
    outputs["stderr"] = run.stderr.encode()
    leaked = {name: key_disguises(data, KEY) for name, data in outputs.items()}
    assert not any(leaked.values()), leaked


def assert_nothing_reached_the_other_origin(requests: list[bytes]) -> None:
    for request in requests:
        head = request.split(b"\r\n\r\n")[0].lower()
        assert b"cookie:" not in head and b"authorization:" not in head, head
        assert KEY.encode() not in request


@pytest.mark.parametrize("name", [pytest.param(n, marks=MARKS.get(n, [])) for n in TARGETS])
def test_a_hostile_target_ends_bounded_with_a_report_and_no_key(name, tmp_path):
    reports = tmp_path / "reports"
    with start_target(name, KEY) as target:
        run = imgconf(
            [*_base_args(target.base_url), "--models", target.models]
            + (["--record", str(tmp_path / "run.har")] if name in RECORDED else []),
            reports,
        )
    assert run.status in (1, 3), (run.status, run.stderr[-2000:])
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.wall < WALL_LIMIT, run.wall
    assert run.rss_mb < RSS_LIMIT_MB, run.rss_mb
    report = json.loads((reports / "report.json").read_text())
    assert report["cases"]
    assert name not in RECORDED or (tmp_path / "run.har").is_file()
    assert_key_nowhere(tmp_path, run)
    assert_nothing_reached_the_other_origin(target.other_seen)
    if name == "cookie-key-other-port":
        assert target.other_seen, "the other-port image URL was never fetched"


# --- the budget against servers that bill what they never deliver ----------------------------


def _budget_run(fault: str, tmp_path: Path, *budget: str) -> tuple[Run, int]:
    with start_target(fault, KEY) as target:
        run = imgconf(
            [*_base_args(target.base_url), "--models", "dall-e-2", *budget],
            tmp_path / "reports",
        )
        generated = target.generated[0]
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert (tmp_path / "reports" / "report.json").is_file()
    return run, generated


def test_a_zero_cost_cap_makes_a_generate_then_502_server_generate_nothing(tmp_path):
    run, generated = _budget_run("generate-then-502", tmp_path, "--max-cost", "0")
    assert run.status in (1, 3)
    assert generated == 0


@pytest.mark.parametrize("fault", ["generate-then-502", "generate-then-reset"])
def test_an_image_cap_holds_against_a_server_that_bills_then_fails(fault, tmp_path):
    run, generated = _budget_run(fault, tmp_path, "--max-images", "5")
    assert run.status in (1, 3)
    assert generated <= 5, generated


# --- recording the million-items target --------------------------------------------------------


def _record_args(base_url: str, tmp_path: Path) -> list[str]:
    return [
        *_base_args(base_url),
        "--models",
        "dall-e-2",
        "--record",
        str(tmp_path / "run.har"),
        "--record-cap",
        "8",
    ]


def test_recording_the_million_items_target_stays_within_its_cap(tmp_path):
    with serve(million_items) as base_url:
        run = imgconf(_record_args(base_url, tmp_path), tmp_path / "reports")
    assert run.status == 1 and "Traceback" not in run.stderr
    assert (tmp_path / "run.har").stat().st_size <= 8 * MIB
    facts = json.loads((tmp_path / "run.har").read_text())["log"]["_imgconf"]
    assert facts["bodies_elided"] > 0
    assert_key_nowhere(tmp_path, run)


def test_sigterm_while_recording_the_million_items_target_exits_within_seconds(tmp_path):
    with serve(million_items) as base_url:
        run = imgconf(_record_args(base_url, tmp_path), tmp_path / "reports", sigterm_after=2)
    assert run.wall < 5, run.wall
    assert run.status in (1, 3) and "Traceback" not in run.stderr, run.stderr[-2000:]
    for name in ("report.json", "junit.xml", "report.md", "report.html"):
        assert (tmp_path / "reports" / name).is_file(), name
    assert (tmp_path / "run.har").stat().st_size <= 8 * MIB
    assert_key_nowhere(tmp_path, run)


# --- the caps bound hostile input, not honest answers ----------------------------------------

SIDE = 1024


def _noise_png(seed: int) -> bytes:
    """A 1024x1024 RGBA PNG of noise, stored: 4 MB that no compression shrinks."""
    pixels = random.Random(seed).randbytes(SIDE * SIDE * 4)
    out = io.BytesIO()
    Image.frombytes("RGBA", (SIDE, SIDE), pixels).save(out, format="PNG", compress_level=0)
    return out.getvalue()


def _ten_large_images_answer() -> tuple[bytes, list[int]]:
    images = [_noise_png(seed) for seed in range(10)]
    answer = gpt_answer(images, background="transparent")
    return json.dumps(answer).encode(), [len(image) for image in images]


def test_ten_honest_4mb_images_in_one_answer_pass(tmp_path):
    """One conformant answer of n=10 images of 4 MB each (53 MB of JSON), sent over loopback
    through the real transport and judged by the runner: every cap lets it through."""
    body, sizes = _ten_large_images_answer()
    assert min(sizes) >= 4 * 1000 * 1000
    case = Case(
        id="ten-large",
        model="gpt-image-1",
        kind="valid",
        rule="request.valid.accepted",
        level="MUST",
        expect="accept",
        body={
            "model": "gpt-image-1",
            "prompt": "noise",
            "n": 10,
            "size": "1024x1024",
            "quality": "low",
            "background": "transparent",
            "output_format": "png",
        },
        images=10,
        cost=0.11,
    )

    async def go(base_url: str):
        config = TransportConfig(base_url, api_key=KEY, timeout=30)
        async with TargetClient(config) as transport:
            return await Runner(transport, load_profile("openai")).run([case])

    with serve(answers_every_request(b"200 OK", body)) as base_url:
        [result] = asyncio.run(go(base_url))
    assert result.outcome is Outcome.PASS, [f.__dict__ for f in result.findings]


# --- the measuring tool ------------------------------------------------------------------------


def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hostile_bench", ROOT / "tools/hostile_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_bench_finds_the_key_wherever_it_is_written(tmp_path):
    bench = _bench_module()
    key = bench.KEY
    assert bench.key_found(tmp_path, b"", []) == "no"
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)  # as JSON may carry it
    (tmp_path / "report.json").write_text('{"message": "' + escaped + '"}')
    assert bench.key_found(tmp_path, key.encode(), [b"GET / HTTP/1.1\r\nCookie: a=b\r\n\r\n"]) == (
        "other-origin, report.json, stdout/stderr"
    )


def test_the_bench_tabulates_each_target(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools/hostile_bench.py"),
            "--only",
            "key-in-header-name,generate-then-502",
            "--json",
            str(tmp_path / "rows.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    rows = {r["case"]: r for r in json.loads((tmp_path / "rows.json").read_text())}
    assert rows["key-in-header-name"]["status"] == "1" and rows["key-in-header-name"]["report"]
    assert rows["key-in-header-name"]["key_found"] == "no"
    assert rows["generate-then-502"]["generated"] > 0 and rows["generate-then-502"]["rss_mb"] > 10
    assert "| key-in-header-name | 1 |" in result.stdout
