"""A run's settings are checked once, with one message whichever front end took them; the
operational bounds live in one settings module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conformance import settings
from conformance.cli import main_entry
from conformance.contract.profiles import load_profile
from conformance.engine import checks, image_facts, preflight
from conformance.engine.run_settings import (
    RunSettings,
    check_budget,
    check_settings,
    parse_limits,
)
from conformance.engine.transport import TransportConfig
from conformance.errors import SetupError
from conformance.reports import har

pytest_plugins = ["pytester"]

PROFILE = load_profile("openai")

#: (a bad setting, the CLI's flag for it, the plugin's flag, the message after the flag)
BAD = [
    ({"timeout": 0.0}, "--timeout 0", "--imgconf-timeout 0", "must be a positive number"),
    ({"concurrency": 0}, "--concurrency 0", "--imgconf-concurrency 0", "must be at least 1"),
    ({"max_images": -1}, "--max-images -1", "--imgconf-max-images -1", "must be >= 0"),
    ({"max_cost": -1.0}, "--max-cost -1", "--imgconf-max-cost -1", "must be a USD amount >= 0"),
    ({"models": ("nope",)}, "--models nope", "--imgconf-models nope", "'nope' is not a model"),
]


@pytest.mark.parametrize(("bad", "_cli", "_plugin", "message"), BAD)
def test_each_bad_setting_is_one_setup_error(
    bad: dict[str, object], _cli: str, _plugin: str, message: str
) -> None:
    with pytest.raises(SetupError, match=message):
        check_settings(RunSettings(**bad), PROFILE)  # type: ignore[arg-type]


def test_good_settings_pass_and_limits_parse() -> None:
    check_settings(RunSettings(rate="60,5", limits=("body_cap=2MiB",)), PROFILE)
    assert parse_limits(("fetch_cap=1KiB", "retries=0")) == {"fetch_cap": 1024, "retries": 0}
    with pytest.raises(SetupError, match="--rate"):
        check_settings(RunSettings(rate="fast"), PROFILE)
    with pytest.raises(SetupError, match="--fail-on must be"):
        check_settings(RunSettings(fail_on="may"), PROFILE)


def test_a_remote_target_needs_a_budget_and_the_refusal_says_the_plan() -> None:
    def no_plan() -> None:
        raise AssertionError("a budgeted or loopback run makes no plan to refuse it")

    check_budget(RunSettings(), "http://127.0.0.1:9/v1", no_plan)  # type: ignore[arg-type]
    check_budget(RunSettings(max_images=3), "https://api.example/v1", no_plan)  # type: ignore[arg-type]
    from conformance.generation.planning import build_plan

    with pytest.raises(SetupError, match=r"api\.example.* is not on loopback.*requests"):
        check_budget(RunSettings(), "https://api.example/v1", lambda: build_plan(PROFILE))


@pytest.mark.parametrize(("bad", "cli", "plugin", "message"), BAD[:3])
def test_the_cli_and_the_plugin_give_the_same_message(
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    bad: dict[str, object],
    cli: str,
    plugin: str,
    message: str,
) -> None:
    """The same sentence, each naming its own flag: ``--timeout`` or ``--imgconf-timeout``."""
    target = ["--base-url", "http://127.0.0.1:9/v1", "--api-key", "k"]
    assert main_entry(["run", *target, *cli.split()]) == 2
    said = capsys.readouterr().err.strip()
    assert said.startswith("imgconf: error: ") and message in said
    result = pytester.runpytest(
        "--imgconf-base-url", "http://127.0.0.1:9/v1", "--imgconf-api-key", "k", *plugin.split()
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    cli_sentence = said.removeprefix("imgconf: error: ")
    plugin_sentence = cli_sentence.replace("--", "--imgconf-", 1)
    result.stderr.fnmatch_lines([f"*imgconf: {plugin_sentence}*"])


def test_every_module_keeps_the_settings_bounds() -> None:
    """Until each module reads its bounds from :mod:`conformance.settings`, they agree with it."""
    config = TransportConfig("http://127.0.0.1:9/v1")
    assert (config.timeout, config.body_cap, config.error_cap, config.fetch_cap) == (
        settings.DEFAULT_TIMEOUT,
        settings.BODY_CAP,
        settings.ERROR_CAP,
        settings.FETCH_CAP,
    )
    assert (config.inflight_cap, config.retries, config.retry_budget_count) == (
        settings.INFLIGHT_CAP,
        settings.RETRIES,
        settings.RETRY_BUDGET_COUNT,
    )
    assert (checks.MAX_ITEMS, checks.MAX_EVENTS) == (settings.MAX_ITEMS, settings.MAX_EVENTS)
    assert checks.MAX_STREAM_EVENTS == settings.MAX_STREAM_EVENTS
    assert checks.MAX_JSON_CONTAINERS == settings.MAX_JSON_CONTAINERS
    assert checks._STREAM_EVENT_CAP == settings.STREAM_EVENT_CAP
    assert (preflight.CONNECT_TIMEOUT, preflight.ANSWER_TIMEOUT) == (
        settings.PREFLIGHT_CONNECT_TIMEOUT,
        settings.PREFLIGHT_ANSWER_TIMEOUT,
    )
    assert (image_facts.MAX_PIXELS, image_facts.MAX_CHUNKS, image_facts.MAX_JPEG_SCANS) == (
        settings.MAX_PIXELS,
        settings.MAX_CHUNKS,
        settings.MAX_JPEG_SCANS,
    )
    assert (image_facts.INFLATE_STEP, image_facts.REWRAP_LIMIT, image_facts.THUMBNAIL_SIDE) == (
        settings.INFLATE_STEP,
        settings.REWRAP_LIMIT,
        settings.THUMBNAIL_SIDE,
    )
    assert (har.DEFAULT_RECORD_CAP, har.DEFAULT_ENTRY_CAP) == (
        settings.RECORD_CAP,
        settings.RECORD_ENTRY_CAP,
    )


def test_the_settings_module_imports_nothing() -> None:
    """Every layer reads it, so it can import nothing of theirs (not even lazily)."""
    tree = ast.parse(Path(settings.__file__).read_text(encoding="utf-8"))
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [getattr(n, "module", None) for n in imports] == ["__future__"]
