"""The example profiles (``examples/profiles/``): each loads, plans, round-trips against the
reference server serving it, and the README shows it as it is (or names it, when it is too long
to show). The CI recipes in ``examples/ci/`` are tested in ``test_ci_recipes.py``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.cli import main_entry
from conformance.contract.profiles import builtin_profiles, load_profile
from conformance.server.launcher import start_reference_server

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / "examples" / "profiles").glob("*.yaml"))
#: The examples the README shows in full; the others it names by path.
SHOWN = {"flux-like.yaml", "my-azure.yaml", "my-gateway.yaml"}


def test_there_are_example_profiles() -> None:
    assert PROFILES
    assert {p.name for p in PROFILES} >= SHOWN


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_an_example_profile_loads_and_plans(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = load_profile(str(path))
    assert profile.name == path.stem
    assert main_entry(["plan", "--profile", str(path)]) == 0
    out = capsys.readouterr().out
    assert all(model in out for model in profile.models)


@pytest.mark.parametrize("path", PROFILES, ids=[p.name for p in PROFILES])
def test_an_example_profile_round_trips(path: Path, imgconf_run) -> None:
    # `imgconf serve --profile FILE` serves what the profile claims; a run of it passes.
    with start_reference_server(profile=str(path)) as server:
        status, report = imgconf_run("--profile", str(path), target=server)
    assert status == 0, report["verdict"]
    assert report["profile"] == path.stem


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_an_example_is_not_also_a_builtin(path: Path) -> None:
    assert path.stem not in builtin_profiles()


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_the_readme_shows_or_names_each_example_profile_as_it_is(path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"`{path.relative_to(ROOT)}`" in readme
    if path.name in SHOWN:
        assert path.read_text() in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
