"""The example profiles (``examples/profiles/``): each loads, plans, and the README shows it as
it is. The CI recipes in ``examples/ci/`` are tested in ``test_ci_recipes.py``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.cli import main_entry
from conformance.contract.profiles import load_profile

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / "examples" / "profiles").glob("*.yaml"))


def test_there_are_example_profiles() -> None:
    assert PROFILES


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_an_example_profile_loads_and_plans(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = load_profile(str(path))
    assert profile.name == path.stem
    assert main_entry(["plan", "--profile", str(path)]) == 0
    out = capsys.readouterr().out
    assert all(model in out for model in profile.models)


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_the_readme_shows_each_example_profile_as_it_is(path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert path.read_text() in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    assert f"`{path.relative_to(ROOT)}`" in readme
