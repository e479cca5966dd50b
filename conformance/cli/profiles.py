"""``imgconf rules`` and ``imgconf profiles``: the contract as a profile holds it."""

from __future__ import annotations

import click

from ..errors import SetupError
from .common import die, profile_option

__all__ = ["profiles_command", "rules_command"]


@click.command("rules")
@profile_option
@click.option("--model", "model", default=None, help="Only the rules that apply to this model.")
@click.option("--level", type=click.Choice(["MUST", "SHOULD"]), default=None)
def rules_command(profile: str, model: str | None, level: str | None) -> None:
    """List the contract's rules as a profile holds them."""
    from ..contract.profiles import load_profile

    try:
        prof = load_profile(profile)
    except SetupError as exc:
        die(str(exc))
    if model and model not in prof.models:
        die(f"--model: {model!r} is not a model of profile {prof.name} ({', '.join(prof.models)})")
    for rule in prof.rules().values():
        if (
            (model and model not in rule.models)
            or (level and rule.level != level)
            or not rule.models
        ):
            continue
        scope = ",".join(rule.models) if len(rule.models) < len(prof.models) else "*"
        click.echo(f"{rule.id:40} {rule.level:6} {scope:30} {rule.description}")


@click.command("profiles")
def profiles_command() -> None:
    """List the built-in profiles."""
    from ..contract.profiles import builtin_profiles, load_profile

    for name in builtin_profiles():
        prof = load_profile(name)
        click.echo(f"{name:14} {len(prof.models)} models  {prof.title}")
