"""Regressions: compare two report.json documents by rule x model; the diff command's exit codes;
and end to end against the reference server: run -> record -> replay gives the same verdict,
and an injected fault shows up as a new failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _report_fixtures import failing_run, passing_run

from conformance.cli import main_entry
from conformance.errors import SetupError
from conformance.reports.diff import compare, format_diff
from conformance.reports.document import build_report


def test_a_new_failure_is_found_and_a_fixed_one_counted() -> None:
    old, new = build_report(passing_run()), build_report(failing_run())
    diff = compare(old, new)
    assert {c.key for c in diff.new_failures} == {
        "image.size @ gpt-image-1",
        "request.n.max @ dall-e-2",
        "request.body.not_json @ *",
        "transport.no_5xx @ *",
    }
    assert diff.has_new_must_failure and diff.exit_code() == 1
    size = next(c for c in diff.new_failures if c.rule == "image.size")
    assert size.old == "pass" and size.new == "fail" and "64x64" in size.message
    assert size.cases == ("g1-size-wrong",)
    assert {(c.key, c.new) for c in diff.changed_warnings} == {
        ("request.unknown_field @ gpt-image-1", "warn"),
        ("response.usage.present @ gpt-image-1", "warn"),
    }
    back = compare(new, old)
    assert not back.new_failures and back.exit_code() == 0
    assert {c.key for c in back.fixed} == {"image.size @ gpt-image-1", "request.n.max @ dall-e-2"}
    # The two "any model" failures are not exercised in the passing run: not re-checked, not fixed.
    assert {c.key for c in back.not_rechecked} >= {"transport.no_5xx @ *"}
    # Warnings of rules the passing run never exercised are not "gone": they were not re-checked.
    assert not back.changed_warnings
    assert {"request.unknown_field @ gpt-image-1"} <= {c.key for c in back.not_rechecked}
    text = format_diff(diff)
    assert "NEW FAILURE" in text and "image.size @ gpt-image-1 (was pass, now fail)" in text


def test_the_same_report_has_no_change() -> None:
    report = build_report(failing_run())
    diff = compare(report, report)
    assert not (diff.new_failures or diff.fixed or diff.changed_warnings or diff.not_rechecked)
    assert diff.exit_code("should") == 0
    assert "no change" in format_diff(diff)


def test_a_new_warning_fails_only_under_fail_on_should() -> None:
    old = build_report(passing_run())
    new = json.loads(json.dumps(old))
    entry = next(i for i in new["matrix"] if i["rule"] == "error.status_400")
    entry.update(status="warn", level="SHOULD", messages=["answered 422"])
    diff = compare(old, new)
    assert not diff.has_new_must_failure and diff.has_new_warning
    assert diff.exit_code("must") == 0 and diff.exit_code("should") == 1


def test_a_should_rule_cannot_make_a_must_regression() -> None:
    old = build_report(passing_run())
    new = json.loads(json.dumps(old))
    entry = next(i for i in new["matrix"] if i["rule"] == "error.status_400")
    entry.update(status="fail", level="SHOULD")  # a profile could make it fail only as MUST
    assert compare(old, new).new_failures and not compare(old, new).has_new_must_failure


def test_diff_command_exit_codes(tmp_path: Path, capsys) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(build_report(passing_run())))
    new.write_text(json.dumps(build_report(failing_run())))
    assert main_entry(["diff", str(old), str(new)]) == 1
    assert "NEW FAILURE" in capsys.readouterr().out
    assert main_entry(["diff", str(new), str(old)]) == 0
    assert main_entry(["diff", str(old), str(old), "--fail-on", "should"]) == 0
    assert main_entry(["diff", str(new), str(new), "--fail-on", "should"]) == 0
    capsys.readouterr()
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main_entry(["diff", str(old), str(tmp_path / "bad.json")]) == 2
    assert main_entry(["diff", str(tmp_path / "missing.json"), str(old)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("imgconf: error:") for line in err)


def test_a_report_that_is_not_one_is_a_setup_error() -> None:
    with pytest.raises(SetupError, match="not an imgconf report"):
        compare({"matrix": [{"rule": "x"}]}, {"matrix": []})


@pytest.mark.parametrize(
    "entry",
    [
        {"rule": "image.size", "model": "dall-e-2"},  # no status
        {"rule": "image.size", "model": "dall-e-2", "status": 3},
        {"rule": "image.size", "model": "dall-e-2", "status": "fail", "messages": "text"},
        {"rule": "image.size", "model": "dall-e-2", "status": "fail", "failed_cases": 7},
        "image.size",
        [1, 2],
    ],
)
def test_a_malformed_matrix_entry_is_one_line_naming_the_file(
    tmp_path: Path, capsys, entry
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(build_report(failing_run())))
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"matrix": [entry]}))
    assert main_entry(["diff", str(odd), str(good)]) == 2
    assert main_entry(["diff", str(good), str(odd)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "imgconf: error: OLD: not an imgconf report.json (a malformed matrix entry)",
        "imgconf: error: NEW: not an imgconf report.json (a malformed matrix entry)",
    ]


@pytest.mark.parametrize("text", ["[]", '{"matrix": [{"rule": "x"}]}', "not json"])
def test_a_baseline_that_is_not_a_report_stops_the_run_before_it_sends(
    tmp_path: Path, capsys, text: str
) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text(text)
    status = main_entry(
        [
            "run",
            "--base-url",
            "http://127.0.0.1:9/v1",  # nothing is sent, so nothing needs to listen
            "--api-key",
            "sk-never-used",
            "--report-dir",
            str(tmp_path / "reports"),
            "--baseline",
            str(baseline),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("imgconf: error: --baseline: ") and err.count("\n") == 1, err
    assert not (tmp_path / "reports").exists()


# --- end to end against the reference server ------------------------------------------------

MODELS = "dall-e-2,gpt-image-1"


def _run(tmp_path: Path, name: str, quirks: tuple[str, ...] = (), *extra: str) -> tuple[int, Path]:
    from conformance.server.launcher import start_reference_server

    key = "sk-e2e-0123456789abcdefghijklmnop"
    with start_reference_server(api_key=key, quirks=quirks, mode="thread") as server:
        status = main_entry(
            [
                "run",
                "--base-url",
                server.base_url,
                "--api-key",
                key,
                "--models",
                MODELS,
                "--report-dir",
                str(tmp_path / name),
                "--concurrency",
                "8",
                "--endpoint",
                "generations",
                *extra,
            ]
        )
    for path in (tmp_path / name).iterdir():
        assert key not in path.read_text(errors="replace"), path
    return status, tmp_path / name


def test_end_to_end_record_replay_and_diff(tmp_path: Path, capsys) -> None:
    har = tmp_path / "good.har"
    status, good = _run(tmp_path, "good", (), "--record", str(har))
    assert status == 0
    assert "sk-e2e-0123456789" not in har.read_text()
    assert main_entry(["replay", str(har), "--report-dir", str(tmp_path / "replayed")]) == 0
    ran = json.loads((good / "report.json").read_text())
    replayed = json.loads((tmp_path / "replayed" / "report.json").read_text())
    assert replayed["verdict"]["status"] == ran["verdict"]["status"] == "pass"
    # The same cells, not-observed ones and their reasons included.
    assert {(i["rule"], i["model"], i["status"], *i["reasons"]) for i in replayed["matrix"]} == {
        (i["rule"], i["model"], i["status"], *i["reasons"]) for i in ran["matrix"]
    }

    bad_har = tmp_path / "bad.har"
    status, bad = _run(tmp_path, "bad", ("wrong-size",), "--record", str(bad_har))
    assert status == 1
    capsys.readouterr()
    assert main_entry(["replay", str(bad_har), "--report-dir", str(tmp_path / "bad-replayed")]) == 1
    assert main_entry(["diff", str(good / "report.json"), str(bad / "report.json")]) == 1
    out = capsys.readouterr().out
    assert "NEW FAILURE    MUST   image.size @ dall-e-2" in out
    assert "NEW FAILURE    MUST   image.size @ gpt-image-1" in out
    assert (
        main_entry(
            ["diff", str(good / "report.json"), str(tmp_path / "bad-replayed" / "report.json")]
        )
        == 1
    )
    # The run's own --baseline gate gives the same answer.
    status, _ = _run(tmp_path, "gated", (), "--baseline", str(bad / "report.json"))
    assert status == 0
    assert "FIXED" in capsys.readouterr().out


def test_diff_exits_3_when_the_new_run_is_incomplete(tmp_path: Path, capsys) -> None:
    from _report_fixtures import incomplete_run, passing_run

    from conformance.reports.document import build_report

    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(build_report(passing_run())))
    new.write_text(json.dumps(build_report(incomplete_run())))
    assert main_entry(["diff", str(old), str(new)]) == 3
    assert "INCOMPLETE" in capsys.readouterr().out
    assert main_entry(["diff", str(old), str(old)]) == 0
