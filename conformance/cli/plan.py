"""``imgconf plan``: the cases a run would send, the images and cost, and what a budget cuts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from ..contract.loader import GENERATIONS
from .common import (
    call,
    endpoints_option,
    explore_option,
    max_cost_option,
    max_images_option,
    models_option,
    profile_option,
    seed_option,
)

if TYPE_CHECKING:
    from ..generation.cases import Case
    from ..generation.planning import Plan

__all__ = ["format_plan", "plan_command", "plan_warnings", "show_plan"]


def _usd(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}"


def _clip(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _spend_line(images: int, cost: float, unknown: int) -> str:
    line = f"{images} images, {_usd(cost)}"
    if unknown:
        line += f" + {unknown} images of unknown price"
    return line


def plan_warnings(plan: Plan, *, costs: bool = True) -> list[str]:
    """What a user should know before spending on the plan (``plan`` and ``run`` print these;
    ``costs``: the prices too, which a run against the embedded server does not spend)."""
    warnings = []
    unknown_models = [m for m in plan.models if not plan.profile.price_known(m)]
    if unknown_models and costs:
        warnings.append(
            f"No price for {', '.join(unknown_models)}: their images are counted, not costed; "
            "--max-cost cannot bound them (use --max-images)."
        )
    for model, planner in plan.planners.items():
        if planner.untestable:
            warnings.append(
                f"{model}: no request breaks {', '.join(planner.untestable)} alone (every one "
                "that does breaks another rule of the model's too), so it is not tested for it."
            )
        if planner.untaken:
            warnings.append(
                f"{model}: no valid request can send {', '.join(planner.untaken)} (the model's "
                "other facts rule each out), so no valid case does."
            )
    return warnings


def _kinds(cases: list[Case]) -> list[str]:
    """One group's cases by kind: valid ones by title, the others by the rule they break."""
    lines = []
    for kind in ("valid", "invalid", "probe"):
        group = [c for c in cases if c.kind == kind]
        if not group:
            continue
        origins = ", ".join(
            f"{o} {sum(1 for c in group if c.origin == o)}"
            for o in dict.fromkeys(c.origin for c in group)
        )
        lines.append(f"  {kind} ({len(group)}: {origins})")
        if kind == "valid":
            for case in group:
                mark = "" if case.expect == "accept" else f" [expect {case.expect}]"
                lines.append(_clip(f"    {case.origin}: {case.title}{mark}"))
        else:
            for rule in dict.fromkeys(c.rule for c in group):
                titles = "; ".join(c.title for c in group if c.rule == rule)
                lines.append(_clip(f"    {rule}: {titles}"))
    return lines


def _other_endpoints(plan: Plan) -> list[str]:
    """The cases of the endpoints beside generations, by endpoint and model, counted from the
    cases themselves (spend if the server behaves)."""
    from ..generation.cases import ANY_MODEL
    from ..generation.planning import spends

    lines = []
    for endpoint in dict.fromkeys(c.endpoint for c in plan.cases if c.endpoint != GENERATIONS):
        for model in (*plan.models, ANY_MODEL):
            mine = [c for c in plan.cases if c.endpoint == endpoint and c.model == model]
            if not mine:
                continue
            spent = [c for c in mine if spends(c)]
            unknown = sum(c.images for c in spent if c.cost is None)
            label = f"{ANY_MODEL} (model-independent)" if model == ANY_MODEL else model
            lines.append(
                f"\n{endpoint} {label}: {len(mine)} requests, "
                f"{_spend_line(sum(c.images for c in spent), sum(c.cost or 0.0 for c in spent), unknown)}"
            )
            lines += _kinds(mine)
    return lines


def format_plan(plan: Plan) -> str:
    """The plan as text: cases by model and kind, images, estimated cost, and the cut."""
    from ..generation.cases import ANY_MODEL
    from ..generation.planning import CUT_ORDER

    lines: list[str] = []
    profile = plan.profile
    endpoints = list(dict.fromkeys(c.endpoint for c in [*plan.cases, *plan.cut]))
    sent_to = f" ({', '.join(endpoints)})" if endpoints not in ([], [GENERATIONS]) else ""
    lines.append(
        f"Plan for profile {profile.name}, seed {plan.seed}{sent_to}: {len(plan.cases)} requests; "
        f"if the server behaves: {_spend_line(plan.images, plan.cost, plan.cost_unknown_images)}"
        f" (prices: {profile.prices_source or 'the profile'})."
    )
    lines += plan_warnings(plan)
    lines.append(
        f"Worst case (a server that accepts every request, invalid ones too): "
        f"{plan.worst_images} images, {_usd(plan.worst_cost)}."
    )
    generations = [c for c in plan.cases if c.endpoint == GENERATIONS]
    for model in (*plan.models, ANY_MODEL):
        mine = [c for c in generations if c.model == model]
        if not mine:
            continue
        if model == ANY_MODEL:
            shared = plan.coverage["model_independent"]["must_rules"]
            lines.append(
                f"\n{ANY_MODEL} (model-independent): {len(mine)} requests; "
                f"MUST rules {shared['exercised']}/{shared['applicable']}"
            )
        else:
            cov = plan.coverage["models"][model]
            lines.append(
                f"\n{plan.profile.label(model)}: {cov['requests']} requests, "
                f"{_spend_line(cov['images'], cov['cost'], cov['cost_unknown_images'])}; "
                f"MUST rules {cov['must_rules']['exercised']}/{cov['must_rules']['applicable']}, "
                f"values {cov['values']['covered']}/{cov['values']['total']}, "
                f"pairs {cov['pairs']['covered']}/{cov['pairs']['total']}"
            )
        lines += _kinds(mine)
    lines += _other_endpoints(plan)
    lines.append("")
    order = ", then ".join(CUT_ORDER[1:])
    cut_rule = (
        f"Over a budget the plan cuts {order}, each group from its end. It never cuts "
        "negative cases and free probes: they are sent first (after the controls), each only "
        "if its worst case (a server that wrongly accepts it) still fits what is left, else it "
        "is not observed (budget)."
    )
    if plan.max_cost is None and plan.max_images is None:
        lines.append(f"Budget: none given (--max-cost, --max-images). {cut_rule}")
    else:
        limits = []
        if plan.max_cost is not None:
            limits.append(f"max cost {_usd(plan.max_cost)}")
        if plan.max_images is not None:
            limits.append(f"max images {plan.max_images}")
        lines.append(f"Budget: {', '.join(limits)}. {cut_rule}")
    if plan.cut:
        cut = plan.coverage["cut"]
        lines.append(
            f"Cut by the budget (not covered): {cut['cases']} cases, "
            f"{cut['images']} images, {_usd(cut['cost'])}:"
        )
        for case in plan.cut:
            lines.append(_clip(f"  {case.id}: {case.title}"))
    elif plan.max_cost is not None or plan.max_images is not None:
        lines.append("Nothing cut: the plan fits the budget.")
    return "\n".join(lines)


def show_plan(
    *,
    profile: str,
    models: Sequence[str] | None,
    seed: int,
    max_cost: float | None,
    max_images: int | None,
    explore: int,
    as_json: bool,
    endpoints: Sequence[str] | None = None,
) -> int:
    """Print the plan (text or JSON). Exit 0; bad input raises SetupError."""
    from ..contract.profiles import load_profile
    from ..engine.run_settings import RunSettings, check_settings
    from ..generation.planning import build_plan

    loaded = load_profile(profile)
    chosen = loaded.choose_endpoints(endpoints)
    asked = RunSettings(
        profile=profile,
        models=tuple(models) if models else None,
        seed=seed,
        max_cost=max_cost,
        max_images=max_images,
        explore=explore,
    )
    check_settings(asked, loaded)
    made = build_plan(
        loaded,
        endpoints=chosen,
        models=models,
        seed=seed,
        max_cost=max_cost,
        max_images=max_images,
        explore=explore,
    )
    if as_json:
        click.echo(json.dumps(made.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(format_plan(made))
    return 0


@click.command("plan")
@models_option
@endpoints_option
@profile_option
@seed_option
@max_cost_option
@max_images_option
@explore_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan_command(
    models: tuple[str, ...] | None,
    endpoints: tuple[str, ...] | None,
    profile: str,
    seed: int,
    max_cost: float | None,
    max_images: int | None,
    explore: int,
    as_json: bool,
) -> None:
    """Show the cases a run would send, the images and cost, and what the budget cuts."""
    call(
        show_plan,
        profile=profile,
        models=models,
        endpoints=endpoints,
        seed=seed,
        max_cost=max_cost,
        max_images=max_images,
        explore=explore,
        as_json=as_json,
    )
