"""Profiles: built-ins load, vendors narrow and raise, prices are looked up or said unknown,
and a user's broken profile is one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main_entry
from conformance.contract.loader import load_contract
from conformance.contract.profiles import ProfileError, builtin_profiles, load_profile


def test_openai_profile_has_every_model_of_the_spec() -> None:
    profile = load_profile("openai")
    assert profile.models == tuple(load_contract().models)
    assert profile.path == "/images/generations"
    assert profile.rules()["response.usage.present"].level == "SHOULD"


def test_vendor_profile_narrows_models_raises_usage_and_keeps_its_slash() -> None:
    vendor = load_profile("applerouter")
    assert vendor.models == ("dall-e-2", "dall-e-3", "gpt-image-1")
    assert vendor.path.endswith("/")
    usage = vendor.rules()["response.usage.present"]
    assert usage.level == "MUST"
    assert usage.models == vendor.models
    # Rules of models the vendor does not serve apply to none of them.
    assert vendor.rules()["request.size.custom.aspect"].models == ()


def test_prices_known_auto_and_unknown() -> None:
    openai = load_profile("openai")
    assert openai.price("dall-e-3", "hd", "1792x1024") == pytest.approx(0.12)
    assert openai.price("dall-e-2", None, "256x256") == pytest.approx(0.016)
    # auto quality and auto size take the dearest known combination
    assert openai.price("gpt-image-1", "auto", "auto") == pytest.approx(0.25)
    assert openai.price("gpt-image-1", "low", None) == pytest.approx(0.016)
    assert openai.price("gpt-image-2", "low", "1024x1024") is None
    assert not openai.price_known("gpt-image-2")


def test_builtin_profiles_listed() -> None:
    assert set(builtin_profiles()) >= {"openai", "applerouter"}


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BROKEN = [
    ("models: [dall-e-2]\n", "field 'name'"),
    ("name: x\nmodels: []\n", "field 'models'"),
    ("name: x\nmodels: [dall-e-9]\n", "unknown model 'dall-e-9'"),
    ("name: x\nmodels: [dall-e-2]\ncolour: red\n", "unknown field 'colour'"),
    ("name: x\nmodels: [dall-e-2]\npath: images\n", "field 'path'"),
    (
        "name: x\nmodels: [dall-e-2]\nrules: {nope.rule: {level: MUST}}\n",
        "unknown rule id 'nope.rule'",
    ),
    ("name: x\nmodels: [dall-e-2]\nrules: {image.size: {level: MAY}}\n", "rules.image.size.level"),
    ("name: x\nmodels: [dall-e-2]\nunsupported: [teleport]\n", "unknown feature 'teleport'"),
    ("name: x\nmodels: [dall-e-2]\nprices: {dall-e-2: {hd: {256x256: 1}}}\n", "prices.dall-e-2.hd"),
    (
        "name: x\nmodels: [dall-e-2]\nprices: {dall-e-2: {standard: {256x256: cheap}}}\n",
        "USD amount",
    ),
    ("name: x\nmodels: [dall-e-2\n", "not valid YAML/JSON"),
    ("- just\n- a list\n", "must be a mapping"),
]


@pytest.mark.parametrize(("text", "message"), BROKEN, ids=[m for _, m in BROKEN])
def test_a_broken_profile_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=r"^profile .*: ") as info:
        load_profile(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_users_profile_file_is_loaded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: gw\nmodels: [dall-e-3]\nunsupported: [stream]\nrules: {response.revised_prompt: {level: MUST}}\n"
        "prices: {dall-e-3: unknown}\n",
    )
    profile = load_profile(path)
    assert profile.models == ("dall-e-3",)
    assert profile.unsupported == {"stream"}
    assert profile.rules()["response.revised_prompt"].level == "MUST"
    assert profile.price("dall-e-3", "hd", "1024x1024") is None


def test_cli_exits_2_with_one_line_for_a_broken_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "name: x\nmodels: [dall-e-9]\n")
    assert main_entry(["rules", "--profile", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("imgconf: error: profile ")
    assert "dall-e-9" in err


def test_the_installed_command_reports_a_broken_profile_without_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "name: [unclosed\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from conformance.cli import run; run()",
            "rules",
            "--profile",
            path,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    from conformance import __version__

    assert main_entry(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main_entry(["--help"]) == 0
    assert "images/generations" in capsys.readouterr().out


def test_the_command_starts_without_httpxs_own_command_line_client() -> None:
    """httpx imports its CLI (rich, pygments) when they are installed; ``imgconf`` does not
    pay for it, yet httpx works and its plain ``main`` says what it lacks."""
    code = (
        "import sys\n"
        "import conformance.cli as cli\n"
        "cli.main_entry = lambda argv=None: 0\n"
        "try:\n"
        "    cli.run()\n"
        "except SystemExit:\n"
        "    pass\n"
        "import httpx\n"
        "print(callable(httpx.main), 'pygments' in sys.modules, 'rich' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False"]


def test_rules_command_lists_a_models_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_entry(["rules", "--model", "dall-e-3", "--level", "MUST"]) == 0
    out = capsys.readouterr().out
    assert "request.n.max.dall-e-3" in out
    assert "request.output_format.enum" not in out  # a GPT-only rule
    assert "SHOULD" not in out
