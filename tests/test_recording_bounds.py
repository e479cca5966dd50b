"""Recordings and reports stay bounded and writable whatever the target sends: bodies past the
recording's caps are left out and said so, a fetched body that is not an image is never kept,
closing after a signal is quick, and text no format can encode never costs a report."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import random
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from _hostile import answers_every_request, lone_surrogates, read_request, serve
from _report_fixtures import case, exchange
from PIL import Image

from conformance.cli import main_entry
from conformance.engine.results import Exchange
from conformance.reports.har import HarRecorder, read_har
from conformance.reports.replay import replay

MIB = 1024 * 1024
META = {"tool_version": "0", "target": "http://127.0.0.1:9/v1", "profile": "openai", "seed": 0}
REPORTS = ("report.json", "junit.xml", "report.md", "report.html")


def noise_png(side: int, seed: int) -> bytes:
    """A PNG that does not compress: big for its size in pixels."""
    pixels = random.Random(seed).randbytes(side * side * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(out, format="PNG", compress_level=0)
    return out.getvalue()


def big_valid_pair(case_id: str, seed: int):
    body = {"model": "dall-e-2", "prompt": "p", "size": "512x512", "response_format": "b64_json"}
    the_case = case(case_id, body=body)
    image = base64.b64encode(noise_png(512, seed)).decode()
    answer = json.dumps({"created": 1, "data": [{"b64_json": image}]}).encode()
    return the_case, exchange(the_case, 200, answer)


def _fetch(body: bytes, status: int = 200, url: str = "http://127.0.0.1:9/a.png") -> Exchange:
    return Exchange(
        method="GET",
        url=url,
        request_headers={},
        request_body=b"",
        status=status,
        response_headers={"content-type": "image/png"},
        response_body=body,
    )


def test_bodies_past_the_recording_cap_are_left_out_and_replay_does_not_judge_them(tmp_path):
    path = tmp_path / "run.har"
    recorder = HarRecorder(path, cap=3 * MIB)
    pairs = [big_valid_pair(f"c{i}", i) for i in range(5)]
    assert all(len(ex.response_body) > 900 * 1024 for _, ex in pairs)
    for pair in pairs:
        recorder.add(*pair)
    recorder.close(META)
    assert path.stat().st_size <= 3 * MIB
    har = json.loads(path.read_text())
    entries = har["log"]["entries"]
    kept = [e for e in entries if "body_elided" not in e["_imgconf"]]
    elided = [e for e in entries if "body_elided" in e["_imgconf"]]
    assert len(kept) == 2 and len(elided) == 3
    for entry in elided:
        assert entry["response"]["content"]["text"] == ""
        assert "--record-cap" in entry["comment"] and entry["response"]["content"]["comment"]
        assert entry["response"]["content"]["size"] == len(pairs[0][1].response_body)
    assert har["log"]["_imgconf"]["bodies_elided"] == 3
    meta, read = read_har(path)
    assert meta["body_elided"] == ["c2", "c3", "c4"]
    assert read[0][1].response_body == pairs[0][1].response_body
    run, info = replay(path)
    # Not observed is not broken: the recorded answers pass, the others are judged on their
    # status alone and said so.
    assert [r.outcome.value for r in run.results] == ["pass"] * 5
    assert info.not_rejudged["response.schema"] == 3 and info.not_rejudged["image.decodes"] == 3
    assert "not in the recording" in run.results[4].note
    assert "response.schema" in run.results[0].checked


def test_a_body_over_the_entry_cap_is_left_out_and_a_full_recording_drops_entries(tmp_path):
    path = tmp_path / "run.har"
    recorder = HarRecorder(path, cap=3 * MIB, entry_cap=MIB // 2)
    recorder.add(*big_valid_pair("big", 1))
    recorder.close(META)
    entry = json.loads(path.read_text())["log"]["entries"][0]
    assert "over the cap of one entry" in entry["_imgconf"]["body_elided"]

    path = tmp_path / "tiny.har"
    recorder = HarRecorder(path, cap=80 * 1024)
    the_case = case("c", raw=b"x" * 4000)
    for _ in range(40):
        recorder.add(the_case, exchange(the_case, 400, b'{"error": {"message": "no"}}'))
    recorder.close(META)
    assert path.stat().st_size <= 80 * 1024
    facts = json.loads(path.read_text())["log"]["_imgconf"]
    assert facts["entries_dropped"] > 0 and facts["cases"] + facts["entries_dropped"] == 40


def test_a_body_is_measured_as_written_escaped_before_it_is_kept(tmp_path):
    """Control characters take six bytes each once JSON-escaped: the cap counts that."""
    the_case = case("c")
    body = bytes(range(32)) * 20_000 + "é😀".encode()  # 640 KB, 3.3 MB once escaped
    for cap, kept in ((2 * MIB, False), (8 * MIB, True)):
        path = tmp_path / f"{cap}.har"
        recorder = HarRecorder(path, cap=cap)
        recorder.add(the_case, exchange(the_case, 400, body))
        recorder.close(META)
        assert path.stat().st_size <= cap
        _, read = read_har(path)
        assert (read[0][1].response_body == body) is kept


def test_a_fetched_body_is_kept_only_when_it_is_an_image(tmp_path):
    body = {"model": "dall-e-2", "prompt": "p", "size": "256x256", "response_format": "url"}
    the_case = case("u", body=body)
    answer = {"created": 1, "data": [{"url": "http://127.0.0.1:9/a"}, {"url": "http://x/b"}]}
    ex = exchange(the_case, 200, json.dumps(answer).encode())
    image = noise_png(256, 3)
    ex.fetches = [_fetch(image), _fetch(b"<html>instance credentials: hunter2</html>")]
    other = case("n", body=body)
    ex2 = exchange(other, 200, json.dumps(answer).encode())
    ex2.fetches = [_fetch(b"not found", status=404), _fetch(image)]
    path = tmp_path / "run.har"
    recorder = HarRecorder(path)
    recorder.add(the_case, ex)
    recorder.add(other, ex2)
    recorder.close(META)
    text = path.read_text()
    assert "hunter2" not in text and "not found" not in text
    assert "not an image" in json.loads(text)["log"]["entries"][2]["comment"]
    meta, read = read_har(path)
    # The first case's second image was not kept: its URL rules are not judged again. The
    # second case's 404 is judged on its status, which is all the checks read of it.
    assert meta["elided"] == ["u"]
    assert [f.response_body for f in read[0][1].fetches] == [image]
    assert [f.status for f in read[1][1].fetches] == [404, 200]
    assert read[1][1].fetches[1].response_body == image
    results = {r.case.id: r for r in replay(path)[0].results}
    assert "response.url.fetch" in results["n"].failed_rules


def test_a_lone_surrogate_in_a_url_or_a_header_does_not_cost_the_recording(tmp_path):
    the_case = case("s")
    ex = exchange(the_case, 400, b'{"error": {"message": "bad \\ud800 thing"}}')
    ex.response_headers["x-odd"] = "a\udc80b"
    ex.attempts.append({"error": "connection", "reason": "broke \ud800"})
    ex.fetches = [_fetch(noise_png(8, 1), url="http://127.0.0.1:9/\ud800.png")]
    path = tmp_path / "run.har"
    recorder = HarRecorder(path)
    recorder.add(the_case, ex)
    recorder.close({**META, "target": "http://127.0.0.1:9/\ud800"})
    har = json.loads(path.read_bytes().decode("utf-8"))
    assert har["log"]["entries"][1]["request"]["url"] == "http://127.0.0.1:9/\ufffd.png"
    assert read_har(path)[1][0][1].response_body == ex.response_body  # exact bytes


# --- end to end -----------------------------------------------------------------------------


def _answer(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def many_large_items(items: int, size: int):
    """Answers every request 200 with ``items`` base64 strings of ``size`` bytes each."""
    item = b'{"b64_json": "' + b"QUFB" * (size // 4) + b'"}'
    body = b'{"created": 1, "data": [' + b", ".join([item] * items) + b"]}"
    return answers_every_request(b"200 OK", body)


def _run(base_url: str, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--base-url",
        base_url,
        "--api-key",
        "Xk3-not-a-vendor-shaped-key-74hd93jd",
        "--models",
        "dall-e-2",
        "--endpoint",
        "generations",
        "--timeout",
        "10",
        "--report-dir",
        str(tmp_path / "reports"),
        "--record",
        str(tmp_path / "run.har"),
        *extra,
    ]


def test_recording_a_target_answering_many_large_items_stays_within_its_cap(tmp_path, capsys):
    with serve(many_large_items(items=6, size=MIB)) as base_url:
        status = main_entry(_run(base_url, tmp_path, "--record-cap", "16"))
    assert status == 1
    har = tmp_path / "run.har"
    assert har.stat().st_size <= 16 * MIB
    facts = json.loads(har.read_text())["log"]["_imgconf"]
    assert facts["cap"] == 16 * MIB and facts["bodies_elided"] > 0
    assert "Traceback" not in capsys.readouterr().err
    assert main_entry(["replay", str(har), "--report-dir", str(tmp_path / "again")]) in (0, 1)
    out = capsys.readouterr().out
    assert "not judged again" in out and "response.schema" in out


def test_a_bad_record_cap_is_a_usage_error(tmp_path, capsys):
    assert main_entry(_run("http://127.0.0.1:9/v1", tmp_path, "--record-cap", "0")) == 2
    assert "--record-cap" in capsys.readouterr().err


def answers_then_hangs(answered: int, size: int, count: list[int]):
    """Answers the first POSTs with large bodies, then never again: a run that SIGTERM ends.
    ``count`` holds how many POSTs came (a pre-flight GET is answered 404)."""
    body = b'{"created": 1, "data": [{"b64_json": "' + b"QUFB" * (size // 4) + b'"}]}'

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if not request.startswith(b"POST"):
                writer.write(_answer(b"404 Not Found", b'{"error": {"message": "no"}}'))
                await writer.drain()
                continue
            count[0] += 1
            if count[0] > answered:
                await asyncio.sleep(3600)
            writer.write(_answer(b"200 OK", body))
            await writer.drain()

    return handler


def test_sigterm_while_recording_exits_within_seconds_with_reports_and_recording(tmp_path):
    count = [0]
    with serve(answers_then_hangs(answered=12, size=6 * MIB, count=count)) as base_url:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from conformance.cli import run; run()",
                *_run(base_url, tmp_path, "--concurrency", "2", "--timeout", "120"),
                *("--record-cap", "32"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and count[0] < 14:  # both workers now wait
            time.sleep(0.1)
        time.sleep(1)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
        elapsed = time.monotonic() - started
    assert count[0] == 14
    assert elapsed < 5, elapsed
    assert process.returncode in (1, 3) and b"Traceback" not in err, err
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["verdict"]["incomplete"] is True
    # 72 MiB answered, 32 MiB recorded at most: the first answers whole, the rest said so.
    recording = tmp_path / "run.har"
    assert recording.stat().st_size <= 32 * MIB
    entries = json.loads(recording.read_text())["log"]["entries"]
    # (a pre-flight request, not a case, may be among the answered ones)
    assert len(entries) >= 11 and "body_elided" in entries[-1]["_imgconf"]
    assert "body_elided" not in entries[0]["_imgconf"]


async def _png_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        await read_request(reader)
        writer.write(_answer(b"200 OK", noise_png(8, 2)))
        await writer.drain()


def test_lone_surrogates_in_messages_and_urls_still_give_every_report(tmp_path, capsys):
    with (
        serve(_png_server) as image_base,
        serve(lone_surrogates(image_base.removesuffix("/v1"))) as base_url,
    ):
        status = main_entry(_run(base_url, tmp_path))
    assert status == 1
    assert "Traceback" not in capsys.readouterr().err
    texts = {name: (tmp_path / "reports" / name).read_bytes().decode("utf-8") for name in REPORTS}
    report = json.loads(texts["report.json"])
    assert "\ufffd" in texts["report.json"] and "\\x07" in texts["report.json"]
    # Every case was judged: none was lost to a writer that raised on the way.
    assert report["summary"]["outcomes"]["not_observed"] == 0 and report["verdict"]["failed"]
    ET.fromstring(texts["junit.xml"])
    har = json.loads((tmp_path / "run.har").read_bytes().decode("utf-8"))
    assert har["log"]["entries"]


def test_a_recording_that_cannot_be_written_is_dropped_and_said_so(tmp_path, capsys):
    path = tmp_path / "run.har"
    recorder = HarRecorder(path)
    recorder.add(*big_valid_pair("a", 1))

    def full_disk(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    recorder._put = full_disk  # the disk fills up mid-run
    recorder.add(*big_valid_pair("b", 2))  # does not raise: the run goes on
    recorder.add(*big_valid_pair("c", 3))
    recorder.close(META)
    assert list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "recording to" in err and "No space left" in err
