"""The CI recipes: the example files parse, every imgconf command in them is one imgconf accepts,
the README shows them as they are, and recipe (a) gates a real proxy when its steps are run."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from conformance.cli import main

TESTS = Path(__file__).resolve().parent
EXAMPLES = TESTS.parent / "examples" / "ci"
README = TESTS.parent / "README.md"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yml"))
SHELL_OPERATORS = {"&", "&&", "||", "|", ";", "2>&1"}


def shell_scripts(document: Any) -> Iterator[str]:
    """Every shell script of a workflow: GitHub's ``run`` steps, GitLab's ``script`` lines."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "run" and isinstance(value, str):
                yield value
            elif key in ("script", "before_script") and isinstance(value, list):
                yield from (line for line in value if isinstance(line, str))
            else:
                yield from shell_scripts(value)
    elif isinstance(document, list):
        for value in document:
            yield from shell_scripts(value)


def imgconf_commands(script: str) -> Iterator[list[str]]:
    """The argument lists of the ``imgconf`` commands in a script (up to a shell operator)."""
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0] != "imgconf":
            continue
        args: list[str] = []
        for word in words[1:]:
            if word in SHELL_OPERATORS or word.startswith(">"):
                break
            args.append(word)
        yield args


def parse_with_imgconf(args: list[str]) -> click.Context:
    """Parse ``imgconf ARGS`` with imgconf's own click commands, without running anything."""
    parent = click.Context(main, info_name="imgconf")
    command = main.get_command(parent, args[0])
    if command is None:
        raise click.UsageError(f"no such command {args[0]!r}")
    return command.make_context(args[0], args[1:], parent=parent)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_imgconf_command_in_the_examples_parses(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    commands = [args for script in shell_scripts(document) for args in imgconf_commands(script)]
    assert {args[0] for args in commands} == {"serve", "run", "diff"}
    for args in commands:
        context = parse_with_imgconf(args)
        if args[0] == "run":
            assert context.params["report_dir"] == Path("reports")
            assert context.params["base_url"].startswith(("http://127.0.0.1", "https://"))
            if not context.params["base_url"].startswith("http://127.0.0.1"):
                # A remote, paid target: the recipe gives it a budget.
                assert context.params["max_cost"] or context.params["max_images"]
    assert any("--baseline" in args for args in commands)


def test_the_command_check_catches_a_wrong_flag() -> None:
    with pytest.raises(click.UsageError):
        parse_with_imgconf(["run", "--base-url", "http://127.0.0.1:8080/v1", "--budget", "3"])
    with pytest.raises(click.BadParameter):
        parse_with_imgconf(["serve", "--port", "eighty"])


def test_github_workflow_publishes_the_summary_and_the_junit_results() -> None:
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    steps = workflow["jobs"]["gate-proxy"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert any('reports/report.md >> "$GITHUB_STEP_SUMMARY"' in r for r in runs)
    junit = [s for s in steps if "junit" in s.get("uses", "")]
    assert junit and junit[0]["with"]["report_paths"] == "reports/junit.xml"
    # Publishing runs even when the conformance step failed the job.
    assert all(
        s.get("if") == "always()"
        for s in steps
        if s.get("name") in ("Step summary", "Test results", "Reports")
    )


def test_gitlab_snippet_publishes_the_junit_results() -> None:
    pipeline = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    artifacts = pipeline[".imgconf"]["artifacts"]
    assert artifacts["when"] == "always"
    assert artifacts["reports"]["junit"] == "reports/junit.xml"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_the_readme_shows_each_example_as_it_is(path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    assert path.read_text() in blocks


# --- recipe (a), run for real ------------------------------------------------------------

PROXY_SCRIPT = """#!{python}
import argparse, sys
sys.path.insert(0, {tests!r})
import uvicorn
from _passthrough_proxy import ProxyStats, create_proxy

parser = argparse.ArgumentParser()
for flag in ("--port", "--upstream", "--upstream-key", "--api-key"):
    parser.add_argument(flag, required=True)
options = parser.parse_args()
app = create_proxy(options.upstream, options.upstream_key, options.api_key, ProxyStats(),
                   fault={fault!r})
uvicorn.run(app, host="127.0.0.1", port=int(options.port), log_level="error")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_gate_job(workdir: Path, fault: str | None) -> tuple[list[int], Path]:
    """Run the gate-proxy job's shell steps in order, as a runner would; statuses and summary.

    The workflow's fixed ports are swapped for free ones; ``./scripts/start-proxy`` is the
    pass-through proxy of these tests (with ``fault`` it is a broken release of it).
    """
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    job = workflow["jobs"]["gate-proxy"]
    scripts = workdir / "scripts"
    scripts.mkdir()
    proxy = scripts / "start-proxy"
    proxy.write_text(PROXY_SCRIPT.format(python=sys.executable, tests=str(TESTS), fault=fault))
    proxy.chmod(0o755)
    ports = {"8080": str(free_port()), "8081": str(free_port())}
    summary = workdir / "summary.md"
    env = {**os.environ, **job["env"], "GITHUB_STEP_SUMMARY": str(summary), "CI": "true"}
    env.pop("OPENAI_API_KEY", None)
    statuses: list[int] = []
    groups: list[int] = []
    try:
        for step in job["steps"]:
            script = step.get("run")
            if script is None or script.startswith("pip install"):
                continue
            if step.get("if") != "always()" and any(statuses):
                continue
            for old, new in ports.items():
                script = script.replace(old, new)
            process = subprocess.Popen(
                ["bash", "-e", "-c", script],
                cwd=workdir,
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            groups.append(process.pid)
            statuses.append(process.wait(timeout=120))
    finally:
        for group in groups:  # the servers the steps left running in the background
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
    return statuses, summary


def test_recipe_a_passes_a_good_proxy_and_publishes_its_reports(tmp_path: Path) -> None:
    statuses, summary = run_gate_job(tmp_path, fault=None)
    assert statuses == [0] * len(statuses)
    assert "PASS" in summary.read_text()
    assert (tmp_path / "reports" / "junit.xml").is_file()
    assert (tmp_path / "reports" / "exchanges.har").is_file()


def test_recipe_a_fails_a_broken_proxy_and_still_publishes(tmp_path: Path) -> None:
    statuses, summary = run_gate_job(tmp_path, fault="500-on-bad-input")
    assert statuses[-2:] == [1, 0]  # the conformance step failed; the summary step still ran
    text = summary.read_text()
    assert "FAIL" in text and "transport.no_5xx" in text
    assert "transport.no_5xx" in (tmp_path / "reports" / "junit.xml").read_text()
