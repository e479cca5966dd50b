"""The front ends with edit and variation cases: reports keep each endpoint's cells apart,
recordings keep multipart bodies as form parts and recipes, reproducers send the same parts,
and the pytest plugin names edit items by their endpoint. Generations stay as they were.

Results are made by hand (as in ``_report_fixtures``), so the reports are tested on their own.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from _report_fixtures import (
    TARGET,
    failing_run,
    incomplete_run,
    ok_body,
    passing_run,
    png,
    run_of,
    thumb,
)
from jsonschema import Draft202012Validator

from conformance.contract.loader import schemas_dir
from conformance.contract.profiles import load_profile
from conformance.engine.results import CaseResult, Exchange, Finding, ImageInfo, Outcome
from conformance.generation.cases import Case, FormPart
from conformance.generation.inputs import InputFile
from conformance.generation.planning import build_plan
from conformance.pytest_plugin import item_column, plan_items, split_column
from conformance.reports import inputs_gallery
from conformance.reports.diff import compare
from conformance.reports.document import build_report, column, model_label
from conformance.reports.har import HarRecorder, read_har
from conformance.reports.html import render_html
from conformance.reports.junit import render_junit
from conformance.reports.markdown import render_markdown
from conformance.reports.replay import replay
from conformance.reports.reproducer import curl_command
from conformance.reports.writer import report_document, thumbnails_of

pytest_plugins = ["pytester"]

SCHEMA = json.loads((schemas_dir() / "report.schema.json").read_text())
EDITS_URL = "http://127.0.0.1:9/v1/images/edits"
PICTURE = InputFile(width=64, height=64, seed=1)
SECOND = InputFile(width=64, height=64, seed=2, format="webp")
MASK = InputFile(role="mask", width=64, height=64, alpha=True, box=(0, 0, 32, 32))


def edit_case(
    case_id: str,
    model: str = "gpt-image-1",
    *,
    kind: str = "valid",
    rule: str = "edits.valid.accepted",
    level: str = "MUST",
    parts: tuple[FormPart, ...] | None = None,
    endpoint: str = "edits",
) -> Case:
    if parts is None:
        parts = (
            FormPart("model", model),
            FormPart("prompt", "paint the corner red"),
            FormPart("image[]", file=PICTURE),
            FormPart("image[]", file=SECOND),
            FormPart("mask", file=MASK),
        )
    expect = {"valid": "accept", "invalid": "reject", "probe": "either"}[kind]
    return Case(
        id=f"{endpoint}/{model}/{case_id}",
        model=model,
        kind=kind,  # type: ignore[arg-type]
        rule=rule,
        level=level,
        expect=expect,  # type: ignore[arg-type]
        origin="each-choice",
        images=1 if kind == "valid" else 0,
        title=case_id,
        endpoint=endpoint,
        parts=parts,
    )


def edit_exchange(case: Case, status: int, body: bytes) -> Exchange:
    return Exchange(
        method="POST",
        url=EDITS_URL.replace("edits", case.endpoint),
        request_headers={"content-type": case.content_type, "authorization": "Bearer [REDACTED]"},
        request_body=b"",
        status=status,
        response_headers={"content-type": "application/json"},
        response_body=body,
        elapsed=0.05,
    )


def edit_result(
    case: Case,
    *,
    findings: list[Finding] | None = None,
    checked: tuple[str, ...] = ("edits.valid.accepted", "image.decodes", "image.size"),
) -> CaseResult:
    findings = findings or []
    image = png(64, 64)
    outcome = (
        Outcome.FAIL
        if any(f.level == "MUST" for f in findings)
        else (Outcome.WARN if findings else Outcome.PASS)
    )
    return CaseResult(
        case=case,
        outcome=outcome,
        findings=findings,
        checked=list(checked),
        status=200,
        elapsed=0.05,
        images=[
            ImageInfo(
                index=0,
                source="b64",
                format="png",
                width=64,
                height=64,
                has_alpha=False,
                byte_size=len(image),
                ok=not findings,
                problems=[f.message for f in findings],
                thumbnail=thumb((0, 200, 0)),
            )
        ],
        exchange=edit_exchange(case, 200, ok_body([image])),
    )


def edits_run(extra: list[CaseResult] | None = None):
    """passing_run's generations results, and edits on gpt-image-1: one held, one whose mask
    was not honoured and whose size is wrong (image.size broken on edits only)."""
    broken = edit_case("mask")
    results = [
        *passing_run().results,
        edit_result(edit_case("ok")),
        edit_result(
            broken,
            findings=[
                Finding("edits.mask.honoured", "MUST", "pixels outside the mask changed"),
                Finding("image.size", "MUST", "image 0 is 64x64, asked 1024x1024"),
            ],
            checked=("edits.valid.accepted", "edits.mask.honoured", "image.size"),
        ),
        *(extra or []),
    ]
    return run_of(results)


# --- report.json ---------------------------------------------------------------------------


def test_an_edit_cell_is_its_own_and_generations_cells_are_unchanged() -> None:
    before = build_report(passing_run())
    after = build_report(edits_run())
    generations = [i for i in after["matrix"] if "endpoint" not in i]
    assert generations == before["matrix"]
    cells = {(i["rule"], column(i)): i for i in after["matrix"]}
    assert cells[("image.size", "gpt-image-1")]["status"] == "pass"
    assert cells[("image.size", "edits/gpt-image-1")]["status"] == "fail"
    assert cells[("edits.mask.honoured", "edits/gpt-image-1")]["status"] == "fail"
    assert cells[("edits.valid.accepted", "edits/gpt-image-1")]["cases"] == 2
    # A model of the run that no edit case went to is in scope there, not observed.
    unseen = [i for i in after["matrix"] if column(i) == "edits/dall-e-2"]
    assert unseen and all(i["status"] == "not_observed" for i in unseen)


def test_the_verdict_names_the_edit_cells() -> None:
    verdict = build_report(edits_run())["verdict"]
    assert verdict["status"] == "fail"
    assert "edits.mask.honoured @ gpt-image-1 (edits)" in verdict["failed"]
    assert "image.size @ gpt-image-1 (edits)" in verdict["failed"]
    assert "image.size @ gpt-image-1" not in verdict["failed"]


def test_an_edit_report_is_valid_and_keeps_recipes_not_bytes() -> None:
    report = report_document(edits_run())
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(report), key=str)
    assert not errors, errors[0]
    entry = next(c for c in report["cases"] if c["id"] == "edits/gpt-image-1/mask")
    assert entry["endpoint"] == "edits"
    assert entry["url"] == EDITS_URL
    parts = entry["request"]["parts"]
    assert [p["name"] for p in parts] == ["model", "prompt", "image[]", "image[]", "mask"]
    assert parts[1]["value"] == "paint the corner red"
    assert parts[4] == {
        "name": "mask",
        "filename": MASK.filename,
        "content_type": "image/png",
        "bytes": MASK.size(),
        "digest": MASK.digest(),
        "recipe": MASK.to_dict(),
    }
    assert entry["request"]["bytes"] == edit_case("mask").content_length()
    text = json.dumps(report)
    assert base64.b64encode(PICTURE.read()[:48]).decode()[:40] not in text
    rule = next(r for r in report["rules"] if r["id"] == "edits.mask.honoured")
    assert rule["models"]["edits/gpt-image-1"] == "fail" and rule["description"]
    assert "edits/gpt-image-1" in report["model_summary"]
    assert report["model_summary"]["edits/gpt-image-1"]["cases"] == 2
    assert report["model_summary"]["gpt-image-1"]["cases"] == 2
    assert "edits/gpt-image-1" not in report["coverage"]["per_model"]
    edits = report["coverage"]["endpoints"]["edits"]["per_model"]["gpt-image-1"]
    assert "edits.mask.honoured" in edits["rules"] and edits["must"]["in_scope"] > 0


def test_an_edits_only_run_has_no_generations_cells() -> None:
    report = build_report(run_of([edit_result(edit_case("ok"))], endpoints=("edits",)))
    assert report["matrix"] and all(i.get("endpoint") == "edits" for i in report["matrix"])
    assert report["coverage"]["per_model"] == {}
    assert "gpt-image-1" in report["coverage"]["endpoints"]["edits"]["per_model"]


def test_a_case_without_an_answer_names_the_endpoints_path() -> None:
    cut = CaseResult(case=edit_case("cut"), outcome=Outcome.NOT_OBSERVED, reason="budget")
    report = build_report(run_of([cut]))
    assert report["cases"][0]["url"] == "http://127.0.0.1:9/v1/images/edits"
    variation = CaseResult(
        case=edit_case("v", "dall-e-2", endpoint="variations"),
        outcome=Outcome.NOT_OBSERVED,
        reason="budget",
    )
    assert build_report(run_of([variation]))["cases"][0]["url"].endswith("/v1/images/variations")


# --- junit.xml -----------------------------------------------------------------------------


def _testcases(report: dict[str, Any]) -> list[list[str]]:
    root = ET.fromstring(render_junit(report))
    return [[t.get("classname", ""), t.get("name", "")] for t in root.iter("testcase")]


def test_generations_junit_names_are_those_of_before_edits() -> None:
    """The names a generations-only run gave before edits existed (tests/fixtures, written by
    the previous release's code from the same runs): baselines still compare."""
    before = json.loads(
        (Path(__file__).parent / "fixtures/junit_generations_names.json").read_text()
    )
    assert _testcases(report_document(failing_run())) == before["failing"]
    assert _testcases(report_document(incomplete_run())) == before["incomplete"]


def test_junit_names_an_edit_test_by_its_endpoint() -> None:
    names = _testcases(report_document(edits_run()))
    alone = _testcases(report_document(passing_run()))
    assert [n for n in names if ".edits." not in n[0]] == alone
    assert ["imgconf.edits.gpt-image-1", "edits/edits.mask.honoured"] in names
    assert ["imgconf.edits.gpt-image-1", "edits/image.size"] in names
    assert ["imgconf.gpt-image-1", "image.size"] in names
    root = ET.fromstring(render_junit(report_document(edits_run())))
    failed = [
        t
        for t in root.iter("testcase")
        if t.find("failure") is not None and ".edits." in t.get("classname", "")
    ]
    text = failed[0].find("failure").text or ""
    assert "on edits/gpt-image-1" in text and "-F 'image[]=@picture-1.png;type=image/png'" in text


# --- report.md and report.html ---------------------------------------------------------------


def test_markdown_has_a_row_per_endpoint_and_model() -> None:
    text = render_markdown(report_document(edits_run()))
    assert "| gpt-image-1 (edits) |" in text and "| gpt-image-1 |" in text
    assert "`edits.mask.honoured` on `gpt-image-1 (edits)`" in text
    assert model_label("edits/*") == "any model (edits)"


def test_html_matrix_has_the_edit_columns_after_the_models() -> None:
    page = render_html(report_document(edits_run()))
    head = page.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert head.index(">gpt-image-1<") < head.index(">gpt-image-1 (edits)<")
    assert 'href="#f-edits.mask.honoured--edits_gpt-image-1"' in page
    assert 'id="f-edits.mask.honoured--edits_gpt-image-1"' in page


def _data_uris(section: str) -> list[bytes]:
    out = []
    for chunk in section.split('src="data:image/png;base64,')[1:]:
        out.append(base64.b64decode(chunk.split('"', 1)[0]))
    return out


def test_html_shows_a_failed_edits_inputs_mask_and_answer_side_by_side() -> None:
    from PIL import Image

    run = edits_run()
    page = render_html(report_document(run), thumbnails_of(run))
    assert "<h2>Edits: inputs, mask and answer</h2>" in page
    section = page.split("<h2>Edits: inputs, mask and answer</h2>", 1)[1].split("<h2>", 1)[0]
    assert "edits/gpt-image-1/mask" in section and "edits/gpt-image-1/ok" not in section
    images = _data_uris(section)
    assert len(images) == 4  # two inputs, the mask, the answer
    for data in images[:3]:
        with Image.open(io.BytesIO(data)) as image:
            assert max(image.size) <= inputs_gallery.INPUT_SIDE
    # The inputs are the recipes' pictures: the mask's transparent box shows in its thumbnail.
    with Image.open(io.BytesIO(images[2])) as mask:
        assert mask.convert("RGBA").getpixel((0, 0))[3] == 0
        assert mask.convert("RGBA").getpixel((mask.width - 1, mask.height - 1))[3] == 255
    assert images[3] == thumb((0, 200, 0))
    assert "image[]: picture-1.png" in section and "mask: mask-0.png" in section


def test_the_edit_section_is_bounded_and_never_builds_a_padded_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_bytes(self: InputFile) -> Any:
        raise AssertionError("a thumbnail is drawn from the recipe's picture, not its bytes")

    big = InputFile(width=64, height=64, length=50 * 1024 * 1024)
    many = [
        edit_result(
            edit_case(f"big-{i}", parts=(FormPart("prompt", "p"), FormPart("image", file=big))),
            findings=[Finding("image.size", "MUST", "wrong size")],
        )
        for i in range(inputs_gallery.EDIT_CASES + 5)
    ]
    report = report_document(run_of(many))  # the report states lengths without the bytes
    monkeypatch.setattr(InputFile, "open", no_bytes)
    monkeypatch.setattr(InputFile, "read", no_bytes)
    section = inputs_gallery.edit_gallery(report, [])
    assert section.count('<div class="edit">') == inputs_gallery.EDIT_CASES
    assert f"{inputs_gallery.EDIT_CASES} of {len(many)} failed or warned edits" in section
    assert len(section) < 200_000


def test_an_input_that_is_not_an_image_is_said_so() -> None:
    assert inputs_gallery.input_thumbnail(InputFile(format="text")) is None
    assert inputs_gallery.input_thumbnail(InputFile(truncate=40)) is None
    assert inputs_gallery.input_thumbnail(InputFile(format="jpeg", width=300, height=150))


# --- imgconf diff ----------------------------------------------------------------------------


def test_diff_keys_cells_by_endpoint() -> None:
    held = run_of([*passing_run().results, edit_result(edit_case("ok"))])
    broken = edits_run()
    diff = compare(build_report(held), build_report(broken))
    keys = {c.key for c in diff.new_failures}
    assert keys == {"edits.mask.honoured @ edits/gpt-image-1", "image.size @ edits/gpt-image-1"}
    assert compare(build_report(broken), build_report(broken)).new_failures == []
    fixed = compare(build_report(broken), build_report(held))
    assert {c.key for c in fixed.fixed} == {"image.size @ edits/gpt-image-1"}


def test_diff_reads_a_report_from_before_edits_as_generations() -> None:
    old = build_report(passing_run())
    for item in old["matrix"]:
        item.pop("endpoint", None)
    new = build_report(edits_run())
    diff = compare(old, new)
    assert diff.compared == len(old["matrix"]) - sum(
        i["status"] == "not_observed" for i in old["matrix"]
    )
    assert all(c.endpoint == "edits" for c in diff.new_failures)


# --- HAR recording and replay ---------------------------------------------------------------


def _record(tmp_path: Path, pairs: list[tuple[Case, Exchange]], **kwargs: Any) -> Path:
    path = tmp_path / "edits.har"
    recorder = HarRecorder(path, **kwargs)
    for case, exchange in pairs:
        recorder.add(case, exchange)
    recorder.close({"tool_version": "0.1.0", "target": TARGET, "profile": "openai", "seed": 1})
    return path


def test_a_multipart_request_is_recorded_as_form_params_with_recipes(tmp_path: Path) -> None:
    case = edit_case("mask")
    path = _record(tmp_path, [(case, edit_exchange(case, 200, ok_body([png(64, 64)])))])
    entry = json.loads(path.read_text())["log"]["entries"][0]
    request = entry["request"]
    post = request["postData"]
    assert post["mimeType"] == f"multipart/form-data; boundary={case.boundary}"
    assert isinstance(post["text"], str) and isinstance(post["params"], list)
    assert request["bodySize"] == case.content_length()
    params = post["params"]
    assert params[0] == {"name": "model", "value": "gpt-image-1"}
    assert params[1] == {"name": "prompt", "value": "paint the corner red"}
    for param, recipe in zip(params[2:], (PICTURE, SECOND, MASK), strict=True):
        assert param["fileName"] == recipe.filename
        assert param["contentType"] == recipe.media_type
        assert param["_imgconf"] == {
            "recipe": recipe.to_dict(),
            "bytes": recipe.size(),
            "digest": recipe.digest(),
        }
        assert "value" not in param
    # HAR viewers see every part; the files' bytes are a line, never the bytes.
    assert post["text"].count(f"--{case.boundary}\r\n") == 5
    assert f'name="image[]"; filename="{SECOND.filename}"' in post["text"]
    assert b"\x89PNG" not in path.read_bytes() and "IHDR" not in post["text"]


def test_a_large_input_is_not_recorded_and_the_recording_stays_small(tmp_path: Path) -> None:
    big = InputFile(width=64, height=64, length=50 * 1024 * 1024)
    case = edit_case("big", parts=(FormPart("prompt", "p"), FormPart("image", file=big)))
    path = _record(tmp_path, [(case, edit_exchange(case, 400, b'{"error": {}}'))], cap=1024 * 1024)
    assert path.stat().st_size < 16 * 1024
    entry = json.loads(path.read_text())["log"]["entries"][0]
    assert entry["request"]["bodySize"] > 50 * 1024 * 1024
    assert "body_elided" not in entry["_imgconf"]


def test_replay_rebuilds_each_edit_case_exactly_and_judges_it_as_an_edit(tmp_path: Path) -> None:
    cases = [
        edit_case("mask"),
        edit_case("v", "dall-e-2", endpoint="variations", parts=(FormPart("image", file=PICTURE),)),
        edit_case(
            "text-image",
            kind="invalid",
            rule="edits.image.file",
            parts=(FormPart("prompt", "p"), FormPart("image[]", "[object Object]")),
        ),
    ]
    pairs = [(c, edit_exchange(c, 200, ok_body([png(64, 64)]))) for c in cases]
    path = _record(tmp_path, pairs)
    _meta, read = read_har(path)
    assert [c for c, _ in read] == cases
    for (case, _), (again, _) in zip(pairs, read, strict=True):
        assert again.content() == case.content()
    run, _info = replay(path)
    assert [r.case for r in run.results] == cases
    report = build_report(run)
    assert {column(i) for i in report["matrix"]} >= {"edits/gpt-image-1", "variations/dall-e-2"}


# --- the reproducer --------------------------------------------------------------------------


class _Capture(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.seen.append((self.headers["content-type"], body))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def _parts(content_type: str, body: bytes) -> list[tuple[str, str | None, bytes]]:
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    return [
        (
            str(part.get_param("name", header="content-disposition")),
            part.get_filename(),
            part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    ]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_reproducer_sends_the_same_parts_with_curl(tmp_path: Path) -> None:
    long_prompt = "a cat, " * 300
    same_name = replace(PICTURE, width=32)  # another recipe with picture-1.png's name
    case = edit_case(
        "long",
        parts=(
            FormPart("model", "gpt-image-1"),
            FormPart("prompt", long_prompt),
            FormPart("user", "@not-a-file"),
            FormPart("image[]", file=PICTURE),
            FormPart("image[]", file=same_name),
            FormPart("mask", file=MASK),
        ),
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/images/edits"
        command = curl_command(case, url, None)
        assert "-F 'image[]=@picture-1.png;type=image/png'" in command
        assert "--form-string prompt=" not in command  # long: read from a file the line writes
        assert long_prompt not in command and "base64" not in command
        assert "IHDR" not in command
        python = sys.executable
        command = command.replace("python3 -c", f"{shlex.quote(python)} -c", 1)
        _Capture.seen = []
        subprocess.run(
            ["sh", "-c", command],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-test"},
            check=True,
            timeout=60,
            capture_output=True,
        )
    finally:
        server.shutdown()
        server.server_close()
    content_type, body = _Capture.seen[0]
    sent = _parts(content_type, body)
    wanted = _parts(case.content_type, case.content())
    assert sent == wanted


def test_a_small_multipart_reproducer_needs_no_python() -> None:
    case = edit_case(
        "text-image",
        kind="invalid",
        rule="edits.image.file",
        parts=(FormPart("prompt", "it's here"), FormPart("image[]", "[object Object]")),
    )
    command = curl_command(case, EDITS_URL, None)
    assert "python3" not in command
    assert "--form-string 'image[]=[object Object]'" in command
    assert "Content-Type" not in command  # curl writes its own, with its boundary
    assert shlex.split(command.replace("\\\n", " "))[-1] == "image[]=[object Object]"


# --- the pytest plugin -----------------------------------------------------------------------


def test_plugin_items_name_edit_cells_by_endpoint_and_keep_generations_ids() -> None:
    profile = load_profile("openai")
    plan = build_plan(profile, models=["dall-e-2", "gpt-image-1"])
    before = plan_items(plan, profile)
    plan.cases += [
        edit_case("mask"),
        edit_case(
            "square",
            "dall-e-2",
            kind="invalid",
            rule="edits.image.square",
            parts=(FormPart("image", file=InputFile(width=64, height=32)),),
        ),
    ]
    after = plan_items(plan, profile)
    assert {k: v for k, v in after.items() if "/" not in k} == before
    assert list(after)[: len(before)] == list(before)
    assert "edits.valid.accepted" in after["edits/gpt-image-1"]
    assert "edits.image.square" in after["edits/dall-e-2"]
    assert "edits/dall-e-3" not in after
    assert split_column("edits/gpt-image-1") == ("edits", "gpt-image-1")
    assert split_column("gpt-image-1.5") == ("generations", "gpt-image-1.5")
    assert item_column("generations", "dall-e-2") == "dall-e-2"
    assert item_column("variations", "dall-e-2") == "variations/dall-e-2"


def _plugin_args(server: Any, *extra: str) -> list[str]:
    return [
        "--imgconf-base-url",
        server.base_url,
        "--imgconf-api-key",
        server.api_key,
        "-p",
        "no:randomly",
        *extra,
    ]


def test_plugin_runs_edit_items_named_by_their_endpoint(
    pytester: pytest.Pytester, reference_server: Any
) -> None:
    result = pytester.runpytest(
        *_plugin_args(reference_server, "--imgconf-models", "dall-e-2"),
        "--imgconf-endpoint",
        "edits",
        "-v",
    )
    output = result.stdout.str()
    assert result.parseoutcomes().get("failed", 0) == 0, output
    names = set(re.findall(r"(imgconf\[[^\]]+\]) (?:PASSED|SKIPPED|FAILED)", output))
    assert "imgconf[edits/dall-e-2::edits.image.square]" in names
    assert "imgconf[edits/dall-e-2::image.size]" in names
    assert "imgconf[edits/*::auth.missing]" in names
    assert not [n for n in names if "::" in n and not n.startswith("imgconf[edits/")]


def test_plugin_refuses_an_endpoint_its_profile_does_not_serve(
    pytester: pytest.Pytester, reference_server: Any
) -> None:
    result = pytester.runpytest(
        *_plugin_args(
            reference_server, "--imgconf-profile", "together", "--imgconf-endpoint", "edits"
        )
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*imgconf: --imgconf-endpoint: profile together does not serve edits*"]
    )
