"""The pytest plugin, run for real inside pytester sessions against reference servers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from _passthrough_proxy import run_proxy

from conformance.contract.profiles import load_profile
from conformance.generation.planning import build_plan
from conformance.server.launcher import RunningServer, start_reference_server

pytest_plugins = ["pytester"]

MODELS = "dall-e-2,gpt-image-1"


def imgconf_args(server: RunningServer | str, key: str | None = None, *extra: str) -> list[str]:
    url = server if isinstance(server, str) else server.base_url
    api_key = key or (server.api_key if not isinstance(server, str) else "")
    return ["--imgconf-base-url", url, "--imgconf-api-key", api_key, "-p", "no:randomly", *extra]


def outcome_names(output: str, word: str) -> set[str]:
    """The imgconf item names on the summary lines that start with ``word`` (FAILED, ...)."""
    return set(re.findall(rf"^{word} \S*(imgconf\[[^\]]+\])", output, flags=re.M))


@pytest.fixture(scope="module")
def quirky_server() -> Iterator[RunningServer]:
    quirks = ("accept-n-out-of-range", "wrong-count")
    with start_reference_server(quirks=quirks, mode="thread") as server:
        yield server


@pytest.fixture(scope="module")
def lenient_server() -> Iterator[RunningServer]:
    with start_reference_server(lenient=True, mode="thread") as server:
        yield server


def test_inert_without_a_base_url(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_own(): pass")
    result = pytester.runpytest("-p", "no:randomly", "-v")
    result.assert_outcomes(passed=1)
    assert "imgconf[" not in result.stdout.str()


def test_reference_server_passes_with_one_item_per_rule_and_model(
    pytester: pytest.Pytester, reference_server: RunningServer
) -> None:
    pytester.makepyfile("def test_own(): pass")
    result = pytester.runpytest(*imgconf_args(reference_server), "--imgconf-models", MODELS, "-v")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert outcomes["passed"] > 60
    passed = set(re.findall(r"(imgconf\[[^\]]+\]) PASSED", result.stdout.str()))
    assert {
        "imgconf[dall-e-2::request.n.max]",
        "imgconf[gpt-image-1::request.background.transparent_jpeg]",
        "imgconf[gpt-image-1::image.alpha]",
        "imgconf[dall-e-2::response.url.fetch]",
        "imgconf[*::auth.missing]",
    } <= passed
    assert "test_own PASSED" in result.stdout.str()


def test_a_quirk_fails_the_items_named_by_the_broken_rules(
    pytester: pytest.Pytester, quirky_server: RunningServer
) -> None:
    result = pytester.runpytest(*imgconf_args(quirky_server), "--imgconf-models", "dall-e-2", "-rf")
    failed = outcome_names(result.stdout.str(), "FAILED")
    assert failed == {
        "imgconf[dall-e-2::request.n.min]",
        "imgconf[dall-e-2::request.n.max]",
        "imgconf[dall-e-2::response.data.count]",
        "imgconf[*::response.data.count]",
    }, result.stdout.str()
    # The failure says which request broke it and how.
    result.stdout.fnmatch_lines(["*request.n.max on dall-e-2: 1 MUST finding*", "*n=11*"])


def test_should_findings_are_warnings_not_failures(
    pytester: pytest.Pytester, lenient_server: RunningServer
) -> None:
    result = pytester.runpytest(*imgconf_args(lenient_server), "--imgconf-models", "dall-e-2")
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*ImgconfShouldWarning: request.unknown_field on dall-e-2*"])
    strict = pytester.runpytest(
        *imgconf_args(lenient_server),
        "--imgconf-models",
        "dall-e-2",
        "-W",
        "error::conformance.pytest_plugin.ImgconfShouldWarning",
    )
    assert "imgconf[dall-e-2::request.unknown_field]" in outcome_names(
        strict.stdout.str() + "\n" + _summary(strict), "FAILED"
    )


def _summary(result: pytest.RunResult) -> str:
    return "\n".join(line for line in result.outlines if line.startswith("FAILED"))


def test_items_nothing_observed_are_skipped_with_the_reason_and_the_verdict_fails(
    pytester: pytest.Pytester, reference_server: RunningServer
) -> None:
    result = pytester.runpytest(
        *imgconf_args(reference_server),
        "--imgconf-models",
        "dall-e-2",
        "--imgconf-max-images",
        "0",
        "-rs",
    )
    outcomes = result.parseoutcomes()
    # Nothing could be observed: every rule item skips, and the verdict item says INCOMPLETE.
    assert outcomes.get("failed", 0) == 1 and outcomes.get("passed", 0) == 0
    result.stdout.fnmatch_lines(
        ["*request.n.max on dall-e-2 not observed (budget)*does not fit the remaining budget*"]
    )
    result.stdout.fnmatch_lines(["*_ imgconf[[]verdict[]] _*", "imgconf INCOMPLETE:"])
    result.stdout.fnmatch_lines(["*no valid request judged for dall-e-2*"])


def test_unreachable_target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*imgconf_args("http://127.0.0.1:9/v1", "k"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*imgconf: nothing listening at 127.0.0.1:9*"])


@pytest.mark.slow  # a pytest session of its own, or a pip install: several seconds
def test_xdist_workers_share_one_budget_and_send_each_case_once(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Two workers, a cap, and an upstream that wrongly accepts what it should reject (so every
    case may really generate images): the images generated stay within the cap in total."""
    cap = 12
    full = build_plan(load_profile("openai"), models=MODELS.split(","))
    assert sum(c.images for c in full.cases) > 4 * cap  # the cap really bites
    accepting = ("accept-n-out-of-range", "accept-bad-enums", "accept-any-size", "no-auth")
    with (
        start_reference_server(quirks=accepting, mode="thread") as upstream,
        run_proxy(upstream.base_url, upstream.api_key) as proxy,
    ):
        result = pytester.runpytest_subprocess(
            *imgconf_args(proxy.base_url, proxy.api_key),
            "--imgconf-models",
            MODELS,
            "--imgconf-max-images",
            str(cap),
            "--imgconf-report-dir",
            str(tmp_path),
            "-n",
            "2",
        )
    result.stdout.fnmatch_lines(["*2 workers*"])
    report = json.loads((tmp_path / "report.json").read_text())
    sent = [c for c in report["cases"] if c["response"] is not None]
    assert 0 < proxy.stats.images <= cap
    assert report["budget"]["spent"]["images"] <= cap
    # Every case went out once: the workers shared the results instead of re-sending.
    # Every case once, and the one pre-flight request that cannot bill.
    assert proxy.stats.requests == len(sent) + 1
    assert result.parseoutcomes()["failed"] > 0  # the upstream's faults still show
