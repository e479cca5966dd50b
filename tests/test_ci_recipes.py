"""The CI recipes: the example files parse, every imgconf command in them is one imgconf accepts,
the README shows them as they are, their install lines install a working imgconf from a copy of
this repository (offline), and recipe (a) gates a real proxy when its steps are run."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
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

from conformance import __version__
from conformance.cli import main

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
EXAMPLES = ROOT / "examples" / "ci"
README = ROOT / "README.md"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yml"))
SHELL_OPERATORS = {"&", "&&", "||", "|", ";", "2>&1"}
#: How every job installs imgconf: from its repository, checked out into ./imgconf.
INSTALL_LINE = "pip install ./imgconf"


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
    pass-through proxy of these tests (with ``fault`` it is a broken release of it). The
    checkout and install steps are left out: this environment's imgconf stands for the one they
    install (``test_the_install_lines_install_a_working_imgconf`` runs those).
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
    # The steps' ``imgconf`` is the one installed beside this interpreter, activated or not.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("OPENAI_API_KEY", None)
    statuses: list[int] = []
    groups: list[int] = []
    try:
        for step in job["steps"]:
            script = step.get("run")
            if script is None or script == INSTALL_LINE:
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


@pytest.mark.slow  # the whole default plan through a proxy: half a minute
def test_recipe_a_passes_a_good_proxy_and_publishes_its_reports(tmp_path: Path) -> None:
    statuses, summary = run_gate_job(tmp_path, fault=None)
    assert statuses == [0] * len(statuses)
    assert "PASS" in summary.read_text()
    assert (tmp_path / "reports" / "junit.xml").is_file()
    assert (tmp_path / "reports" / "exchanges.har").is_file()


@pytest.mark.slow  # the whole default plan through a proxy: half a minute
def test_recipe_a_fails_a_broken_proxy_and_still_publishes(tmp_path: Path) -> None:
    statuses, summary = run_gate_job(tmp_path, fault="500-on-bad-input")
    assert statuses[-2:] == [1, 0]  # the conformance step failed; the summary step still ran
    text = summary.read_text()
    assert "FAIL" in text and "transport.no_5xx" in text
    assert "transport.no_5xx" in (tmp_path / "reports" / "junit.xml").read_text()


# --- the install lines, run for real -----------------------------------------------------

#: pip told to use nothing but what is already here: no index, no configuration files (which may
#: name one), no isolated build environment (it would download the build backend).
OFFLINE_PIP = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_NO_INDEX": "1",
    "PIP_NO_BUILD_ISOLATION": "0",  # pip reads this one inverted: "0" turns isolation off
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


def install_lines(path: Path) -> list[str]:
    """The lines of a recipe that fetch or install imgconf, in order."""
    document = yaml.safe_load(path.read_text())
    lines = (line.strip() for script in shell_scripts(document) for line in script.splitlines())
    return [line for line in lines if line.startswith(("pip ", "git clone"))]


def test_every_job_installs_imgconf_from_its_checkout() -> None:
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    assert set(workflow["env"]) == {"IMGCONF_REPOSITORY", "IMGCONF_REF"}
    for name, job in workflow["jobs"].items():
        steps = job["steps"]
        installs = [i for i, s in enumerate(steps) if s.get("run") == INSTALL_LINE]
        checkouts = [
            i
            for i, s in enumerate(steps)
            if s.get("uses", "").startswith("actions/checkout")
            and s.get("with", {}).get("path") == "imgconf"
        ]
        assert len(installs) == 1 and len(checkouts) == 1, name
        assert steps[checkouts[0]]["with"]["repository"] == "${{ env.IMGCONF_REPOSITORY }}"
        assert steps[checkouts[0]]["with"]["ref"] == "${{ env.IMGCONF_REF }}"
        # After the project's own checkout (which empties the workspace), before the install.
        assert all(
            i < checkouts[0]
            for i, s in enumerate(steps)
            if s.get("uses") == "actions/checkout@v4" and "with" not in s
        ), name
        assert checkouts[0] < installs[0], name
    assert install_lines(EXAMPLES / "gitlab-ci.yml") == [
        'git clone --quiet --depth 1 --branch "$IMGCONF_REF" "$IMGCONF_REPOSITORY" imgconf',
        INSTALL_LINE,
    ]
    assert not any("pip install imgconf" in path.read_text() for path in EXAMPLE_FILES)


def clean_copy(destination: Path) -> None:
    """This tree as a fresh clone would hold it once committed: tracked and new files, not the
    ignored ones (virtual environments, caches, reports)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
    )
    if listing.returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout")
    listed = listing.stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the tree is not copied
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


@pytest.fixture(scope="module")
def imgconf_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository of this tree on the branch the recipes name, standing in for imgconf's."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repository = tmp_path_factory.mktemp("imgconf-repository")
    clean_copy(repository)
    ref = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["variables"]["IMGCONF_REF"]
    git = ["git", "-c", "user.name=imgconf", "-c", "user.email=imgconf@localhost"]
    subprocess.run([*git, "init", "-q", "-b", ref], cwd=repository, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repository, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "imgconf"], cwd=repository, check=True)
    return repository


def offline_venv(path: Path) -> Path:
    """A new virtual environment that sees this one's packages (imgconf's dependencies and its
    build backend) through a ``.pth`` line, so that installing imgconf downloads nothing."""
    pytest.importorskip("hatchling", reason="the build backend is in the test extra")
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "imgconf-test-dependencies.pth").write_text("\n".join(sitepackages()) + "\n")
    return path / "bin"


def sitepackages() -> list[str]:
    """Where this environment's packages are installed."""
    import site

    return [*site.getsitepackages(), site.getusersitepackages()]


@pytest.mark.slow  # a pytest session of its own, or a pip install: several seconds
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_the_install_lines_install_a_working_imgconf(
    path: Path, imgconf_repository: Path, tmp_path: Path
) -> None:
    """The recipe's own lines, run in order in a job's empty workspace, give a working imgconf.

    GitHub's checkout step is a clone into the step's ``path``; GitLab's clone line runs as it
    is, with ``IMGCONF_REPOSITORY`` pointing at a local copy of this tree.
    """
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    scripts = offline_venv(tmp_path / "venv")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    document = yaml.safe_load(path.read_text())
    env |= document.get("variables", {}) | document.get("env", {}) | OFFLINE_PIP
    env |= {
        "PATH": f"{scripts}{os.pathsep}{env.get('PATH', '')}",
        "VIRTUAL_ENV": str(scripts.parent),
        "IMGCONF_REPOSITORY": imgconf_repository.as_uri(),
    }
    lines = install_lines(path)
    if not any(line.startswith("git clone") for line in lines):  # GitHub: the checkout step
        checkout = ["git", "clone", "-q", "--branch", env["IMGCONF_REF"]]
        subprocess.run([*checkout, env["IMGCONF_REPOSITORY"], "imgconf"], cwd=workspace, check=True)
    for line in lines:
        completed = subprocess.run(
            ["bash", "-e", "-c", line], cwd=workspace, env=env, capture_output=True, text=True
        )
        assert completed.returncode == 0, f"{line}\n{completed.stdout}{completed.stderr}"
    version = subprocess.run(
        [scripts / "imgconf", "--version"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert version.returncode == 0 and __version__ in version.stdout, version.stderr
    installed = subprocess.run(
        [scripts / "python", "-c", "import conformance; print(conformance.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    package = Path(installed.strip()).parent
    assert package.is_relative_to(scripts.parent)  # the installed copy, not this tree
    assert (package / "_schemas" / "rules.yaml").is_file()
    assert (package / "py.typed").is_file()
    rules = subprocess.run(
        [scripts / "imgconf", "rules"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert rules.returncode == 0 and "request.prompt.required" in rules.stdout, rules.stderr
