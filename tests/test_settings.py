"""A run's settings are checked once, with one message whichever front end took them; the
operational bounds live in one settings module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conformance import settings
from conformance.cli import main_entry
from conformance.contract.profiles import load_profile
from conformance.engine.run_settings import (
    RunSettings,
    check_budget,
    check_settings,
    parse_limits,
)
from conformance.errors import SetupError

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


def _module_constants(path: Path) -> dict[str, ast.expr]:
    """The module-level names ``path`` assigns, with their values."""
    out: dict[str, ast.expr] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.value is not None
        ):
            out[node.target.id] = node.value
    return out


def bounds_defined_outside_settings(package: Path) -> list[str]:
    """Bounds of :mod:`conformance.settings` that another module assigns a value of its own
    (a literal, or arithmetic on literals) instead of reading it: a second place to tune."""
    names = {n for n in vars(settings) if n.isupper()}
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "settings.py":
            continue
        for name, value in _module_constants(path).items():
            plain = name.lstrip("_").removeprefix("DEFAULT_")
            literal = all(
                isinstance(
                    n, ast.Constant | ast.BinOp | ast.operator | ast.UnaryOp | ast.expr_context
                )
                for n in ast.walk(value)
            )
            if literal and (name in names or plain in names):
                found.append(f"{path.relative_to(package)}: {name}")
    return found


def test_every_bound_is_set_in_the_settings_module_alone() -> None:
    package = Path(settings.__file__).parent
    assert bounds_defined_outside_settings(package) == []


def test_a_bound_set_again_elsewhere_is_found(tmp_path: Path) -> None:
    (tmp_path / "settings.py").write_text("MAX_ITEMS = 16\n", encoding="utf-8")
    (tmp_path / "checks.py").write_text(
        "from .settings import MAX_ITEMS\n_MAX_EVENTS = 2 * 128\nOTHER = 3\n", encoding="utf-8"
    )
    assert bounds_defined_outside_settings(tmp_path) == ["checks.py: _MAX_EVENTS"]


def test_the_settings_module_imports_nothing() -> None:
    """Every layer reads it, so it can import nothing of theirs (not even lazily)."""
    tree = ast.parse(Path(settings.__file__).read_text(encoding="utf-8"))
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [getattr(n, "module", None) for n in imports] == ["__future__"]
