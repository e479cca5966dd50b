"""Recordings: HAR 1.2 that devtools can open, exact round trips, no key, elided images said so;
replay gives the run's verdict without calling anyone."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from _report_fixtures import case, exchange, gpt_answer, png

from conformance.cli import main_entry
from conformance.contract.profiles import load_profile
from conformance.engine.results import Exchange
from conformance.reports.har import HarError, HarRecorder, read_har
from conformance.reports.replay import replay

META = {
    "tool_version": "0.1.0",
    "target": "http://127.0.0.1:9/v1",
    "profile": "openai",
    "models": ["dall-e-2", "gpt-image-1"],
    "seed": 3,
}
KEY = "sk-live-abcdefghijklmnopqrstuvwxyz012345"


def _valid_gpt(case_id: str, size: int = 1024, transparent: bool = False):
    body = {"model": "gpt-image-1", "prompt": "a red square", "size": "1024x1024", "quality": "low"}
    if transparent:
        body["background"] = "transparent"
    the_case = case(case_id, "gpt-image-1", body=body)
    image = png(size, size, (200, 0, 0, 0), "RGBA") if transparent else png(size, size)
    answer = gpt_answer([image], background="transparent" if transparent else "opaque")
    return the_case, exchange(the_case, 200, json.dumps(answer).encode())


def _url_case(case_id: str, size: int):
    the_case = case(
        case_id,
        body={
            "model": "dall-e-2",
            "prompt": "p",
            "size": f"{size}x{size}",
            "response_format": "url",
        },
    )
    answer = {"created": 1, "data": [{"url": "http://127.0.0.1:9/files/a.png?sig=s3cret"}]}
    ex = exchange(the_case, 200, json.dumps(answer).encode())
    image = png(size, size)
    ex.fetches.append(
        Exchange(
            method="GET",
            url="http://127.0.0.1:9/files/a.png?sig=[REDACTED]",
            request_headers={},
            request_body=b"",
            status=200,
            response_headers={"content-type": "image/png"},
            response_body=image,
            elapsed=0.01,
        )
    )
    return the_case, ex


def _recorded(tmp_path: Path, keep_images: bool = True) -> tuple[Path, list]:
    pairs = [
        _valid_gpt("g-ok"),
        _valid_gpt("g-alpha", transparent=True),
        _url_case("d-url-ok", 256),
        _url_case("d-url-wrong-size", 128),  # asked 256x256? no: asked 128, see below
    ]
    # The last case asks 256x256 and gets 128x128: a MUST failure only the image shows.
    bad_case, bad_exchange = pairs[3]
    bad_case = case("d-url-wrong-size", body={**bad_case.body, "size": "256x256"})
    bad_exchange.request_body = bad_case.content()
    pairs[3] = (bad_case, bad_exchange)
    raw_case = case(
        "any-not-json",
        "*",
        kind="invalid",
        rule="request.body.not_json",
        raw=b"{not json\x00\xff",
        origin="must-reject",
    )
    raw_exchange = exchange(
        raw_case,
        400,
        b'{"error": {"message": "bad json", "type": "invalid_request_error", "param": null, "code": null}}',
    )
    raw_exchange.response_headers["x-echo"] = f"Bearer {KEY}"
    raw_exchange.request_headers["authorization"] = f"Bearer {KEY}"
    pairs.append((raw_case, raw_exchange))
    path = tmp_path / "run.har"
    recorder = HarRecorder(path, keep_images=keep_images)
    for the_case, the_exchange in pairs:
        recorder.add(the_case, the_exchange)
        assert not path.exists()  # written only when closed
    recorder.close(META)
    return path, pairs


def test_a_recording_is_har_1_2_with_cases_and_linked_fetches(tmp_path: Path) -> None:
    path, pairs = _recorded(tmp_path)
    har = json.loads(path.read_text())
    log = har["log"]
    assert log["version"] == "1.2" and log["creator"]["name"] == "imgconf"
    assert len(log["entries"]) == len(pairs) + 2  # two URL fetches
    for entry in log["entries"]:
        for key in ("startedDateTime", "time", "request", "response", "cache", "timings"):
            assert key in entry
        for key in (
            "method",
            "url",
            "httpVersion",
            "cookies",
            "headers",
            "queryString",
            "headersSize",
            "bodySize",
        ):
            assert key in entry["request"]
        for key in (
            "status",
            "statusText",
            "httpVersion",
            "cookies",
            "headers",
            "content",
            "redirectURL",
            "headersSize",
            "bodySize",
        ):
            assert key in entry["response"]
        assert "mimeType" in entry["response"]["content"] and "size" in entry["response"]["content"]
    fetch = log["entries"][3]
    assert fetch["_imgconf"]["role"] == "fetch" and fetch["_imgconf"]["parent"] == 2
    assert fetch["response"]["content"]["encoding"] == "base64"
    assert log["_imgconf"]["seed"] == 3 and log["_imgconf"]["images_kept"] is True


def test_a_recording_reads_back_exactly(tmp_path: Path) -> None:
    path, pairs = _recorded(tmp_path)
    meta, read = read_har(path)
    assert meta["profile"] == "openai" and meta["elided"] == []
    assert [c for c, _ in read] == [c for c, _ in pairs]
    for (_, got), (_, sent) in zip(read, pairs, strict=True):
        assert got.response_body == sent.response_body
        assert got.request_body == sent.request_body
        assert got.status == sent.status
        assert [f.response_body for f in got.fetches] == [f.response_body for f in sent.fetches]
    raw_case = read[-1][0]
    assert raw_case.raw == b"{not json\x00\xff"


def test_no_key_reaches_a_recording(tmp_path: Path) -> None:
    path, _ = _recorded(tmp_path)
    text = path.read_text()
    assert KEY not in text and "abcdefghijklmnop" not in text
    har = json.loads(text)
    for entry in har["log"]["entries"]:
        for header in entry["request"]["headers"]:
            if header["name"] == "authorization":
                assert header["value"] == "Bearer [REDACTED]"


def test_replay_gives_the_verdict_the_checks_give(tmp_path: Path) -> None:
    path, _ = _recorded(tmp_path)
    run, info = replay(path)
    outcomes = {r.case.id: r.outcome.value for r in run.results}
    assert (
        outcomes["g-ok"] == "pass"
        and outcomes["g-alpha"] == "pass"
        and outcomes["d-url-ok"] == "pass"
    )
    assert outcomes["d-url-wrong-size"] == "fail"
    assert "image.size" in run.results[3].failed_rules
    assert run.exit_code == 1 and info.not_rejudged == {}
    assert run.target == META["target"] and run.seed == 3


def test_a_recording_without_images_is_small_and_replay_says_what_it_could_not_judge(
    tmp_path: Path,
) -> None:
    full, _ = _recorded(tmp_path / "full")
    small, _ = _recorded(tmp_path / "small", keep_images=False)
    assert small.stat().st_size < full.stat().st_size / 2
    har = json.loads(small.read_text())
    assert har["log"]["_imgconf"]["images_kept"] is False
    assert (
        "image elided from the recording" in har["log"]["entries"][0]["response"]["content"]["text"]
    )
    run, info = replay(small)
    # The wrong size lives only in the image: not judged again, and said so; what the image
    # rules needed was not recorded, so the replay cannot PASS either.
    assert run.exit_code == 3
    assert any("(not_recorded)" in line for line in run.verdict().incomplete_reasons)
    assert {"image.decodes", "image.size", "image.format", "response.url.fetch"} <= set(
        info.not_rejudged
    )
    assert info.not_rejudged["response.url.fetch"] == 2
    wrong = next(r for r in run.results if r.case.id == "d-url-wrong-size")
    assert "image.size" not in wrong.checked and "not judged on" in wrong.note
    # What does not depend on the image bytes is still judged.
    assert "response.url" in wrong.checked and "response.schema" in wrong.checked


def test_replay_command_writes_reports_with_the_run_exit_codes(tmp_path: Path, capsys) -> None:
    path, _ = _recorded(tmp_path, keep_images=False)
    status = main_entry(["replay", str(path), "--report-dir", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert status == 3 and "imgconf replay: INCOMPLETE" in out
    assert "not judged again: " in out and "image.size (4 cases)" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["mode"] == "replay" and report["replay"]["not_rejudged"]["image.size"] >= 1
    assert "not judged again" in (tmp_path / "r" / "report.md").read_text()
    full, _ = _recorded(tmp_path / "full")
    assert main_entry(["replay", str(full), "--report-dir", str(tmp_path / "r2")]) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{", "not a readable HAR"),
        ('{"log": {"entries": []}}', "not an imgconf recording"),
        (
            '{"log": {"entries": [{"_imgconf": {"role": "case"}}], "_imgconf": {"profile": "openai"}}}',
            "malformed",
        ),
    ],
)
def test_a_bad_recording_is_one_line_and_exit_2(tmp_path: Path, capsys, content, message) -> None:
    path = tmp_path / "x.har"
    if content is not None:
        path.write_text(content)
    with pytest.raises(HarError, match=message):
        read_har(path)
    assert main_entry(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgconf: error:") and err.count("\n") == 1


def test_an_abandoned_recording_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "x.har"
    with HarRecorder(path) as recorder:
        recorder.add(*_valid_gpt("a"))
    assert list(tmp_path.iterdir()) == []


def test_replay_judges_under_today_s_profile_levels(tmp_path: Path) -> None:
    """A vendor profile raises usage to MUST: a recording without usage then fails under it."""
    the_case, the_exchange = _valid_gpt("g-no-usage")
    answer = json.loads(the_exchange.response_body)
    del answer["usage"]
    the_exchange.response_body = json.dumps(answer).encode()
    path = tmp_path / "u.har"
    recorder = HarRecorder(path)
    recorder.add(the_case, the_exchange)
    recorder.close(META)
    today = replay(path)[0]
    # The recording holds no valid request of dall-e-2, one of its models: not a PASS.
    assert today.exit_code == 3 and today.verdict().models_unjudged == ["dall-e-2"]
    assert not today.must_failures
    vendor, _ = replay(path, profile="applerouter")
    assert load_profile("applerouter").rules()["response.usage.present"].level == "MUST"
    assert vendor.exit_code == 1 and "response.usage.present" in vendor.results[0].failed_rules


def test_recorded_base64_is_the_server_s_exactly(tmp_path: Path) -> None:
    path, pairs = _recorded(tmp_path)
    _, read = read_har(path)
    sent = json.loads(pairs[0][1].response_body)["data"][0]["b64_json"]
    got = json.loads(read[0][1].response_body)["data"][0]["b64_json"]
    assert base64.b64decode(got) == base64.b64decode(sent)


def test_a_body_cut_by_the_run_is_replayed_as_cut_by_the_run(tmp_path: Path) -> None:
    """The bound a body was cut at is recorded, so a replay tells the run's own cap from an
    oversized answer as the run did."""
    path = tmp_path / "cut.har"
    status = main_entry(
        [
            "run",
            "--models",
            "gpt-image-1",  # every answer in base64: none fits 1 KiB
            "--endpoint",
            "generations",
            "--limit",
            "body_cap=1KiB",
            "--record",
            str(path),
            "--report-dir",
            str(tmp_path / "run"),
        ]
    )
    assert status == 3
    _, read = read_har(path)
    cut = [exchange.cut_at for _, exchange in read if exchange.cut_at is not None]
    assert cut and set(cut) == {("body_cap", 1024)}
    run, _ = replay(path)
    assert run.exit_code == 3
    assert not [r for r in run.results if r.outcome.value == "fail"]
    assert any(r.reason == "over_limit" for r in run.results)


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("request", "url"), 123, "request.url is int"),
        (("request", "url"), ["http://x"], "request.url is list"),
        (("response", "status"), "200", "response.status is str"),
        (("_imgconf", "attempts"), {"status": 429}, "_imgconf.attempts must be a list of objects"),
        (("_imgconf", "error"), ["timeout"], "_imgconf.error is list"),
        (("_imgconf", "case"), ["a case"], "_imgconf.case is not an object"),
    ],
)
def test_an_entry_holding_an_odd_value_is_one_line_not_a_traceback(
    tmp_path: Path, capsys, where, value, message
) -> None:
    """A recording edited by hand (or by another tool) with a value of another kind than
    imgconf writes is refused when read, before anything judges it."""
    path, _ = _recorded(tmp_path)
    har = json.loads(path.read_text())
    har["log"]["entries"][0][where[0]][where[1]] = value
    path.write_text(json.dumps(har))
    with pytest.raises(HarError, match=message):
        read_har(path)
    assert main_entry(["replay", str(path), "--report-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgconf: error:") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("endpoint", "images/x", "is not an endpoint of imgconf's"),
        ("endpoint", {"a": 1}, "_imgconf.case.endpoint is dict"),
        ("rule", ["image.size"], "_imgconf.case.rule is list"),
        ("origin", 7, "_imgconf.case.origin is int"),
    ],
)
def test_a_recorded_case_of_another_shape_is_one_line(
    tmp_path: Path, capsys, field, value, message
) -> None:
    path, _ = _recorded(tmp_path)
    har = json.loads(path.read_text())
    har["log"]["entries"][0]["_imgconf"]["case"][field] = value
    path.write_text(json.dumps(har))
    assert main_entry(["replay", str(path), "--report-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgconf: error:") and message in err and err.count("\n") == 1, err


def test_a_recording_naming_an_unknown_endpoint_is_one_line(tmp_path: Path, capsys) -> None:
    path, _ = _recorded(tmp_path)
    har = json.loads(path.read_text())
    har["log"]["_imgconf"]["endpoints"] = ["generations", []]
    path.write_text(json.dumps(har))
    assert main_entry(["replay", str(path), "--report-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "names no endpoint of imgconf's" in err and err.count("\n") == 1, err
