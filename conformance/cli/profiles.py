"""``imgconf rules`` and ``imgconf profiles``: the contract as a profile holds it."""

from __future__ import annotations

import click

from ..contract.loader import ENDPOINTS, GENERATIONS, Rule
from ..errors import SetupError
from .common import die, profile_option

__all__ = ["profiles_command", "rules_command"]


@click.command("rules")
@profile_option
@click.option("--model", "model", default=None, help="Only the rules that apply to this model.")
@click.option("--level", type=click.Choice(["MUST", "SHOULD"]), default=None)
@click.option(
    "--endpoint",
    type=click.Choice(ENDPOINTS),
    default=GENERATIONS,
    show_default=True,
    help="The endpoint whose rules to list; edits and variations list the contract's rules, "
    "with their sources.",
)
def rules_command(profile: str, model: str | None, level: str | None, endpoint: str) -> None:
    """List the contract's rules as a profile holds them."""
    from ..contract.profiles import load_profile

    try:
        prof = load_profile(profile)
    except SetupError as exc:
        die(str(exc))
    if endpoint != GENERATIONS:
        _list_endpoint_rules(endpoint, model, level)
        return
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


def _list_endpoint_rules(name: str, model: str | None, level: str | None) -> None:
    """The table of one endpoint's rules as the contract states them: its own, then the
    generations rules its exchanges are held to as well, each with its level and source."""
    from ..contract.loader import load_contract

    endpoint = load_contract().endpoint(name)
    if model and model not in endpoint.models:
        die(f"--model: {model!r} is not a model of {name} ({', '.join(endpoint.models)})")
    for rule in endpoint.all_rules.values():
        if (model and model not in rule.models) or (level and rule.level != level):
            continue
        scope = ",".join(rule.models) if len(rule.models) < len(endpoint.models) else "*"
        click.echo(f"{rule.id:40} {rule.level:11} {scope:30} {rule.description}")
        click.echo(f"{'':40} source: {rule.source}")


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
