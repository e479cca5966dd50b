"""The four reports: report.json against its schema, junit counts, Markdown, a self-contained HTML
page that escapes a hostile server, exact reproducers, and atomic writes."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _report_fixtures import (
    HOSTILE,
    budget_cut_run,
    case,
    failing_run,
    incomplete_run,
    passing_result,
    passing_run,
    run_of,
)
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from conformance.contract.loader import schemas_dir
from conformance.engine.results import CaseResult, Finding, Outcome
from conformance.reports import writer as reporting
from conformance.reports.document import build_report
from conformance.reports.html import GALLERY_IMAGES
from conformance.reports.junit import junit_counts
from conformance.reports.markdown import MAX_CHARS
from conformance.reports.reproducer import curl_command
from conformance.reports.writer import write_reports

RUNS = {
    "passing": passing_run,
    "failing": failing_run,
    "incomplete": incomplete_run,
    "budget-cut": budget_cut_run,
}
SCHEMA = json.loads((schemas_dir() / "report.schema.json").read_text())


@pytest.fixture(params=sorted(RUNS))
def written(request, tmp_path):
    run = RUNS[request.param]()
    return request.param, run, write_reports(run, tmp_path / "reports")


def test_the_report_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_report_json_validates_against_its_schema(written) -> None:
    _, _, paths = written
    report = json.loads(paths["json"].read_text())
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(report), key=str)
    assert not errors, errors[0]


def test_the_schema_rejects_a_report_that_breaks_it() -> None:
    report = build_report(failing_run())
    validator = Draft202012Validator(SCHEMA)
    assert validator.is_valid(report)
    broken = json.loads(json.dumps(report))
    broken["target"] = "http://user:secret@127.0.0.1/v1"
    assert not validator.is_valid(broken)
    failing_case = next(c for c in broken["cases"] if c["outcome"] == "fail")
    del failing_case["reproducer"]
    broken["target"] = report["target"]
    assert not validator.is_valid(broken)


@pytest.mark.parametrize(
    ("name", "status", "exit_code"),
    [
        ("passing", "pass", 0),
        ("failing", "fail", 1),
        ("incomplete", "incomplete", 3),
        ("budget-cut", "pass", 0),
    ],
)
def test_the_verdict(name: str, status: str, exit_code: int) -> None:
    report = build_report(RUNS[name]())
    assert report["verdict"]["status"] == status
    assert report["verdict"]["exit_code"] == exit_code
    assert report["verdict"]["headline"].startswith(status.upper())


def test_the_failing_report_names_what_broke_and_where() -> None:
    report = build_report(failing_run())
    failed = {(i["rule"], i["model"]) for i in report["matrix"] if i["status"] == "fail"}
    assert failed == {
        ("image.size", "gpt-image-1"),
        ("request.n.max", "dall-e-2"),
        ("request.body.not_json", "*"),
        ("transport.no_5xx", "*"),
    }
    warned = {(i["rule"], i["model"]) for i in report["matrix"] if i["status"] == "warn"}
    assert warned == {
        ("request.unknown_field", "gpt-image-1"),
        ("response.usage.present", "gpt-image-1"),
    }
    # n.max held on gpt-image-1 while it broke on dall-e-2: per model, not per rule.
    statuses = {(i["rule"], i["model"]): i["status"] for i in report["matrix"]}
    assert statuses[("request.n.max", "gpt-image-1")] == "pass"
    rule = next(r for r in report["rules"] if r["id"] == "request.n.max")
    assert rule["status"] == "fail" and rule["models"] == {
        "dall-e-2": "fail",
        "gpt-image-1": "pass",
    }
    assert rule["source"] and rule["description"]
    assert report["model_summary"]["gpt-image-1"]["outcomes"]["fail"] == 1
    assert report["summary"]["outcomes"] == {
        "pass": 5,
        "fail": 3,
        "warn": 1,
        "not_observed": 0,
    }


def test_long_prompts_and_base64_are_elided_and_credentials_stripped(tmp_path: Path) -> None:
    paths = write_reports(failing_run(), tmp_path)
    text = paths["json"].read_text()
    report = json.loads(text)
    assert "a" * 200 not in text
    wrong = next(c for c in report["cases"] if c["id"] == "g1-size-wrong")
    assert wrong["request"]["body"]["prompt"].endswith("[32000 characters elided]")
    assert "base64 characters>" in wrong["response"]["excerpt"]
    assert report["target"] == "http://127.0.0.1:9/v1"
    for path in paths.values():
        data = path.read_bytes()
        assert b"pa55" not in data, path
        assert b"sk-proj-AAAA" not in data, path


def test_budget_cut_and_coverage_are_reported() -> None:
    report = build_report(budget_cut_run())
    assert [c["id"] for c in report["coverage"]["not_sent"]] == [
        f"g1-pairwise-{i}" for i in range(3)
    ]
    assert report["coverage"]["by_origin"]["pairwise"] == {"sent": 0, "skipped": 3}
    assert report["coverage"]["pairwise"] == {"gpt-image-1": {"total": 40, "covered": 31}}
    assert report["budget"]["requested"] == {"max_cost": 1.0, "max_images": 20}
    assert report["budget"]["estimate"] == {"images": 6, "cost": 0.4}
    per_model = report["coverage"]["per_model"]["dall-e-2"]
    assert per_model["must"]["observed"] < per_model["must"]["in_scope"]
    assert "request.n.max" in per_model["rules"] and "image.size" in per_model["rules"]
    assert "request.n.max" not in per_model["must"]["missing"]
    assert "response.url" in per_model["must"]["missing"]
    cut = {c["id"]: c for c in report["coverage"]["not_sent"]}
    assert cut["g1-pairwise-0"]["reason"] == "budget"


def test_junit_parses_and_its_counts_match_report_json(written) -> None:
    _, _, paths = written
    report = json.loads(paths["json"].read_text())
    root = ET.parse(paths["junit"]).getroot()
    suite = root.find("testsuite")
    testcases = suite.findall("testcase")
    incomplete = report["verdict"]["status"] == "incomplete"
    assert len(testcases) == len(report["matrix"]) + incomplete == int(suite.get("tests"))
    failures = [t for t in testcases if t.find("failure") is not None]
    skipped = [t for t in testcases if t.find("skipped") is not None]
    assert (
        len(failures)
        == int(suite.get("failures"))
        == report["summary"]["matrix"]["fail"] + incomplete
    )
    assert (
        len(skipped)
        == int(suite.get("skipped"))
        == sum(report["summary"]["matrix"][s] for s in ("warn", "not_observed"))
    )
    if incomplete:
        verdict = next(t for t in testcases if t.get("name") == "verdict")
        assert verdict.find("failure").get("type") == "INCOMPLETE"
        testcases.remove(verdict)
        failures.remove(verdict)
    assert junit_counts(report) == {
        "tests": len(testcases) + incomplete,
        "failures": len(failures) + incomplete,
        "skipped": len(skipped),
    }
    names = {(t.get("classname"), t.get("name")) for t in testcases}
    assert {
        (f"imgconf.{i['model'] if i['model'] != '*' else 'any-model'}", i["rule"])
        for i in report["matrix"]
    } == names
    for testcase in failures:
        text = testcase.find("failure").text
        assert "curl -sS -X POST" in text and "$OPENAI_API_KEY" in text


def test_junit_turns_warnings_into_failures_under_fail_on_should() -> None:
    from conformance.reports.junit import render_junit

    run = failing_run()
    run.fail_on = "should"
    report = build_report(run)
    root = ET.fromstring(render_junit(report))
    failed = {t.get("name") for t in root.iter("testcase") if t.find("failure") is not None}
    assert {"request.unknown_field", "image.size"} <= failed
    warn = next(
        t
        for t in ET.fromstring(render_junit(build_report(failing_run()))).iter("testcase")
        if t.get("name") == "request.unknown_field" and t.get("classname") == "imgconf.gpt-image-1"
    )
    assert warn.find("skipped").get("message").startswith("SHOULD warning")


def test_markdown_has_the_verdict_the_table_failures_and_folded_warnings(tmp_path: Path) -> None:
    text = write_reports(failing_run(), tmp_path)["markdown"].read_text()
    assert text.startswith("## ❌ imgconf: FAIL")
    assert "| model | request |" in text and "| dall-e-2 | ❌ 1/" in text
    assert "#### ❌ `request.n.max` on `dall-e-2` (MUST)" in text
    assert '--data-binary \'{"model": "dall-e-2", "prompt": "x", "n": 11}\'' in text
    details = text.index("<details>")
    assert text.index("request.unknown_field") > details
    # A server's markup stays inert outside code blocks: no raw tag, no live image.
    outside_code = re.sub(r"```.*?```", "", text, flags=re.S)
    assert "<script" not in outside_code and "<img" not in outside_code


def test_markdown_stays_below_a_pr_comment_limit() -> None:
    results = []
    for index in range(400):
        c = case(
            f"case-{index}",
            rule="request.n.max",
            body={"model": "dall-e-2", "prompt": "p" * 3000, "n": 11},
        )
        results.append(
            CaseResult(
                case=c,
                outcome=Outcome.FAIL,
                findings=[Finding("image.size", "MUST", "x" * 500)],
                status=200,
            )
        )
    report = build_report(run_of(results, models=[f"m{i}" for i in range(3)]))
    template = next(i for i in report["matrix"] if i["status"] == "fail")
    report["matrix"] = [{**template, "rule": f"request.rule{index}"} for index in range(2000)]
    from conformance.reports.markdown import render_markdown

    text = render_markdown(report)
    assert len(text) < MAX_CHARS + 5000
    assert "more failures" in text


class _Resources(HTMLParser):
    """Every tag and resource-bearing attribute a browser would act on, and all CSS text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.urls: list[str] = []
        self.css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in (
                "src",
                "href",
                "srcset",
                "action",
                "poster",
                "data",
                "background",
                "formaction",
            ):
                self.urls.append(value or "")
            if name == "style":
                self.css.append(value or "")

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.css.append(data)


def external_references(page: str) -> list[str]:
    parser = _Resources()
    parser.feed(page)
    found = [
        u for u in parser.urls if not (u.startswith("#") or u.startswith("data:image/png;base64,"))
    ]
    found += [
        t
        for t in ("script", "link", "iframe", "object", "embed", "base", "meta-refresh")
        if t in parser.tags
    ]
    found += [c for c in parser.css if re.search(r"url\(|@import|https?:", c, re.I)]
    return found


def test_html_is_self_contained_and_escapes_the_server(written) -> None:
    _, _, paths = written
    page = paths["html"].read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert external_references(page) == []
    assert HOSTILE[:20] not in page
    assert "refresh" not in page.lower()


def test_the_external_reference_check_catches_them() -> None:
    assert external_references('<img src="https://example.com/x.png">')
    assert external_references('<a href="//example.com/">x</a>')
    assert external_references('<div style="background:url(x.png)">')
    assert external_references("<style>@import 'x.css';</style>")
    assert external_references("<script>1</script>")
    assert external_references('<link rel="stylesheet" href="#x">')
    assert not external_references('<img src="data:image/png;base64,AAAA"><a href="#f">x</a>')
    assert not external_references("<p>&lt;img src=https://evil.example/x.png&gt;</p>")


def test_html_has_banner_matrix_failures_reproducer_and_gallery(tmp_path: Path) -> None:
    page = write_reports(failing_run(), tmp_path)["html"].read_text()
    assert '<header class="banner fail"><div class="big">FAIL</div>' in page
    assert 'class="c s-fail"' in page and 'class="c s-pass"' in page and 'class="c s-warn"' in page
    assert 'id="f-image.size--gpt-image-1"' in page and 'href="#f-image.size--gpt-image-1"' in page
    assert "Every image has the asked size" in page  # the rule's description from the catalogue
    assert "openai-spec schema_CreateImageRequest.yaml size" in page  # and its source
    assert "Authorization: Bearer $OPENAI_API_KEY" in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    gallery = page[page.index("<h2>Gallery</h2>") :]
    assert gallery.count("<figure") == 4
    # The broken image comes first, with its problem.
    first = gallery[gallery.index("<figure") : gallery.index("</figure>")]
    assert 'class="bad"' in first and "64×64" in first and "alpha" in first
    assert "✗" in first


def test_the_gallery_is_bounded() -> None:
    from conformance.reports.html import render_html

    run = passing_run()
    template = run.results[0]
    run.results = [
        CaseResult(
            case=case(f"c{i}"), outcome=Outcome.PASS, images=list(template.images), status=200
        )
        for i in range(GALLERY_IMAGES + 30)
    ]
    page = render_html(build_report(run), reporting.thumbnails_of(run))
    assert page.count("<figure") == GALLERY_IMAGES
    assert "30 more not shown" in page


def _fake_curl(directory: Path) -> Path:
    """A ``curl`` that writes what it would send (headers, body) instead of sending it."""
    script = directory / "curl"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args, headers, body = sys.argv[1:], [], None\n"
        "for i, a in enumerate(args):\n"
        "    if a == '-H': headers.append(args[i + 1])\n"
        "    if a == '--data-binary':\n"
        "        v = args[i + 1]\n"
        "        body = sys.stdin.buffer.read() if v == '@-' else os.fsencode(v)\n"
        "open(os.environ['OUT'], 'wb').write(json.dumps(headers).encode() + b'\\n' + body)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return directory


@pytest.mark.parametrize(
    ("body", "raw", "auth"),
    [
        ({"model": "dall-e-2", "prompt": 'it\'s a "cat" $HOME `x`', "n": 2}, None, "valid"),
        ({"model": "gpt-image-1", "prompt": "ab😀" * 11000 + "end", "size": "auto"}, None, "valid"),
        ({"model": "dall-e-3", "prompt": "مرحبا e\u0301 " * 900, "n": None}, None, "wrong"),
        (None, b"{not json\x00\xff'%\\n", "missing"),
    ],
)
def test_reproducers_send_the_exact_bytes(tmp_path: Path, body, raw, auth) -> None:
    the_case = case("c", body=body, raw=raw, auth=auth)
    command = curl_command(the_case, "http://127.0.0.1:9/v1/images/generations")
    out = tmp_path / "sent"
    env = {
        **os.environ,
        "PATH": f"{_fake_curl(tmp_path)}:{os.environ['PATH']}",
        "OUT": str(out),
        "OPENAI_API_KEY": "sk-test-key",
    }
    subprocess.run(["bash", "-c", command], env=env, check=True, timeout=30)
    headers, sent = out.read_bytes().split(b"\n", 1)
    assert sent == the_case.content()
    auth_headers = [h for h in json.loads(headers) if h.startswith("Authorization")]
    from conformance.generation.cases import WRONG_KEY

    # Byte for byte: the wrong key is the one the run sent.
    expected = {
        "valid": ["Authorization: Bearer sk-test-key"],
        "missing": [],
        "wrong": [f"Authorization: Bearer {WRONG_KEY}"],
    }[auth]
    assert auth_headers == expected
    assert len(command) < 1000


def test_reports_are_written_atomically_and_one_failing_format_spares_the_others(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    paths = write_reports(passing_run(), tmp_path)
    before = {name: path.read_bytes() for name, path in paths.items()}

    def broken(*args, **kwargs):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(reporting, "render_html", broken)
    written = write_reports(failing_run(), tmp_path)
    assert sorted(written) == ["json", "junit", "markdown"]
    assert paths["html"].read_bytes() == before["html"]  # the old page, whole
    for name in written:
        assert paths[name].read_bytes() != before[name]
    err = capsys.readouterr().err
    assert "report.html not written (RuntimeError: renderer broke)" in err
    monkeypatch.undo()
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("report.md"):
            raise OSError("disk full")
        real_replace(src, dst)

    before = {name: path.read_bytes() for name, path in paths.items()}
    monkeypatch.setattr(reporting.os, "replace", failing_replace)
    written = write_reports(passing_run(), tmp_path)
    assert "markdown" not in written and paths["markdown"].read_bytes() == before["markdown"]
    assert paths["json"].read_bytes() != before["json"]  # the others were written
    assert "report.md not written (OSError: disk full)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    """The page opens in a real browser: the verdict banner is drawn in its colour at the top."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    render_report = pytest.importorskip("render_report")
    if render_report.find_browser() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    page = write_reports(failing_run(), tmp_path)["html"]
    png = tmp_path / "report.png"
    render_report.render(page, png, width=1000, height=800)
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (1000, 800)
        red, green, blue = image.convert("RGB").getpixel((10, 10))
    assert red > 150 and green < 80 and blue < 80  # the FAIL banner, #cf222e


def test_an_incomplete_report_says_why_it_is_not_a_pass(tmp_path: Path) -> None:
    paths = write_reports(incomplete_run(), tmp_path)
    text = paths["markdown"].read_text()
    assert "### Why not a PASS" in text and "(throttled)" in text
    assert "not a pass" in paths["html"].read_text()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_report_json_is_written_in_pieces_that_join_to_the_one_shot_encoding(value) -> None:
    whole = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    assert b"".join(reporting.json_pieces(value)) == whole
    assert b"".join(reporting.json_pieces(value, depth=5)) == whole


def test_report_json_is_never_one_string_of_every_case(tmp_path: Path, monkeypatch) -> None:
    """report.json of thousands of cases was one string (16-32 MB for 6,642) held beside its
    bytes: a run's peak of memory. It is written a case at a time."""
    run = run_of([passing_result(f"dall-e-2/valid/{i}") for i in range(300)])
    longest = 0
    real_dumps = json.dumps

    def measured(*args, **kwargs):
        nonlocal longest
        text = real_dumps(*args, **kwargs)
        longest = max(longest, len(text))
        return text

    monkeypatch.setattr(reporting.json, "dumps", measured)
    path = write_reports(run, tmp_path)["json"]
    size = path.stat().st_size
    assert json.loads(path.read_text())["cases"][299]["id"] == "dall-e-2/valid/299"
    assert longest < size / 50, (longest, size)
