"""``imgconf rules`` and ``imgconf profiles``: the contract as a profile holds it."""

from __future__ import annotations

import click

from ..contract.loader import Rule
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
        shown = _level_shown(rule, model)
        if (
            (model and model not in rule.models)
            or (level and level not in shown)
            or not rule.models
        ):
            continue
        scope = ",".join(rule.models) if len(rule.models) < len(prof.models) else "*"
        click.echo(f"{rule.id:40} {shown:11} {scope:30} {rule.description}")


def _level_shown(rule: Rule, model: str | None) -> str:
    """The rule's level for ``model``; for all models, each level some model holds it at
    (``MUST/SHOULD`` when a declared model's fact lowers it for that model)."""
    if model:
        return str(rule.level_for(model))
    held = {rule.level_for(m) for m in rule.models} or {rule.level}
    return "/".join(sorted(held))


@click.command("profiles")
def profiles_command() -> None:
    """List the built-in profiles."""
    from ..contract.profiles import builtin_profiles, load_profile

    for name in builtin_profiles():
        prof = load_profile(name)
        click.echo(f"{name:14} {len(prof.models)} models  {prof.title}")
