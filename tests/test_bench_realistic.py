"""The production-like benchmark's own arithmetic: the server's CPU read apart from a client's,
and the best wall time that CPU allows on the machine's cores."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import os
import sys
import time
from pathlib import Path

import pytest
import respx

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_realistic", ROOT / "tools/bench_realistic.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_process_cpu_is_read_and_grows_with_work(bench):
    before = bench.process_cpu(os.getpid())
    assert before is not None and before > 0
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert bench.process_cpu(os.getpid()) >= before + 0.03  # clock ticks of 10 ms at worst
    assert bench.process_cpu(None) is None
    assert bench.process_cpu(2**22 + 12345) is None  # no such process


def test_the_floor_spreads_all_but_the_start_up_over_the_cores(bench, monkeypatch):
    monkeypatch.setattr(bench, "cores", lambda: 2)
    row = bench.Measured(
        "realistic", "imgconf run", 200, wall=3.0, cpu=3.4, peak_rss_mb=1, status=""
    )
    row.detail["wall"] = 2.6  # sending: 0.4 s of start-up before the first request
    assert row.floor(2) is None  # the server's CPU unknown: no bound claimed
    row.server_cpu = 0.6
    assert row.floor(2) == pytest.approx(0.4 + (3.4 - 0.4 + 0.6) / 2)
    assert row.floor(4) == pytest.approx(0.4 + 3.6 / 4)
    loop = bench.Measured(
        "realistic", "plain loop", 200, wall=1.8, cpu=1.6, peak_rss_mb=1, status=""
    )
    loop.detail["wall"] = 1.4
    note = bench.floor_note(row, loop)
    assert f"x{(0.4 + 1.8) / 1.8:.2f}" in note and "0.60 s" in note
    rate = bench.floor_note(row, loop, rate=True)
    assert f"x{(200 / 1.8) / (200 / 1.4):.2f}" in rate


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_small_client_measures_small_beside_a_large_benchmark(bench):
    """Linux carries a parent's peak RSS over fork and exec into the child's ``ru_maxrss``: a
    client measured by it would be at least as large as the measuring process."""
    held = bytearray(160 * 1024 * 1024)
    held[::4096] = b"\x01" * len(held[::4096])  # resident, not only reserved
    code = "import time; data = bytearray(20 * 2**20); data[::4096] = b'1' * 5120; time.sleep(0.2)"
    *_, rss, status, _ = bench.measure([sys.executable, "-c", code], dict(os.environ), 30)
    assert status == "exit 0"
    assert 20 < rss < 100, rss  # its own 20 MB and an interpreter, not this process's 160 MB
    del held


def _png(size: int = 16) -> bytes:
    from PIL import Image

    image = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_the_checking_loop_checks_every_image_it_reads_and_the_plain_loop_none(bench):
    """The floor of a client that checks images runs imgconf's own check on each image, those
    read from a URL included: a cut one is found broken."""
    whole = _png()
    answer = {
        "created": 1,
        "data": [
            {"b64_json": base64.b64encode(whole).decode()},
            {"b64_json": base64.b64encode(whole[: len(whole) // 2]).decode()},
            {"url": "http://127.0.0.1:9/image.png"},
        ],
    }
    cases = [bench._control("gpt-image-1")] * 3
    with respx.mock(assert_all_called=True) as mock:
        mock.post("http://target.test/v1/images/generations").respond(200, json=answer)
        mock.get("http://127.0.0.1:9/image.png").respond(200, content=whole)
        checked = asyncio.run(
            bench.plain_loop(cases, "http://target.test/v1", "sk-x", 2, check_images=True)
        )
        plain = asyncio.run(bench.plain_loop(cases, "http://target.test/v1", "sk-x", 2))
    assert checked["images"] == plain["images"] == 9
    assert checked["checked"] == 9 and checked["broken"] == 3
    assert "checked" not in plain
