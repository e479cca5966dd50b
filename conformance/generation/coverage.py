"""Which rules a case gives the judge a chance to observe: written once, read by everyone.

The plan predicts its coverage with :func:`aimed_rules`, the judge uses the same function to
mark every rule a case aimed at as held, broken or *not observed* with a reason, and the pytest
plugin makes its items from it. So a plan's predicted coverage and a run's observed coverage are
computed from one source and agree, rule for rule, on a server that behaves.

A rule is aimed at by a case when a conformant answer to that case shows it. Rules of the form
"no X happened" (``transport.*``) are aimed at by every case; conditional rules (``usage`` where
present, URL fetches, stream events) only by the cases whose conformant answer raises their
condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..contract.loader import GENERATIONS, Contract, ModelSpec, Rule, load_contract
from ..contract.oracle import request_violations, resolve_model
from . import showing
from .cases import Case
from .showing import Answer, form_aimed_rules, rule_applies, showings

__all__ = [
    "aimed_rules",
    "answering_model",
    "case_spec",
    "conformant_answers",
    "coverage_summary",
    "expected_param",
]


def expected_param(
    case: Case, rules: Mapping[str, Rule], contract: Contract | None = None
) -> str | None:
    """The field a conformant error's ``param`` names for this case's broken rule (judged by
    the profile's ``contract``: its declared models' own parameters are fields too)."""
    if case.raw is not None or not isinstance(case.body, dict):
        return None
    for violation in request_violations(case.body, contract):
        if violation.rule == case.rule:
            return violation.param
    rule = rules.get(case.rule)
    return rule.param if rule else None


def conformant_answers(case: Case, spec: ModelSpec | None) -> frozenset[Answer]:
    """The kinds of answer a conformant server gives ``case`` (its answer judged as ``spec``)."""
    body = case.body if isinstance(case.body, Mapping) else None
    return showing.conformant_answers(case, spec, body)


def aimed_rules(
    case: Case,
    spec: ModelSpec | None,
    rules: Mapping[str, Rule],
    contract: Contract | None = None,
) -> set[str]:
    """The rules a conformant answer to ``case`` shows held, for the answering model ``spec``
    (None when the case does not depend on one, or its answer is not judged as a model's).

    The case's own rule, and every answer rule whose ``shown_by`` (``rules.yaml``) the case's
    conformant answer meets, for the model's rules.
    """
    if case.endpoint != GENERATIONS:
        return form_aimed_rules(case, rules, contract)
    model = spec.name if spec is not None else None
    answers = conformant_answers(case, spec)
    body = case.body if isinstance(case.body, Mapping) else {}
    names_param = Answer.INVALID in answers and expected_param(case, rules, contract) is not None
    shown = {
        rule
        for rule, showing in showings().items()
        if showing.shown(answers, body, spec, rules, names_param=names_param)
    }
    return {case.rule} | {r for r in shown if rule_applies(rules, r, model)}


def answering_model(case: Case, models: Sequence[str], contract: Contract | None = None) -> str:
    """The model whose answer is judged: the body's model, or the one an omitted model means
    (the default of the contract; else the first model of the profile, or of the contract,
    that takes the fields only some models take)."""
    contract = contract or load_contract()
    body = case.body if isinstance(case.body, dict) else {}
    named = body.get("model")
    if isinstance(named, str) and contract.aliases.get(named, named) in contract.models:
        return contract.aliases.get(named, named)
    if case.model in contract.models:
        return case.model
    resolved = resolve_model(body, contract) if isinstance(body, dict) else None
    if resolved in contract.models:
        return resolved
    wanted = set(contract.omitted_model_fields)
    takers = [m for m in models if wanted <= contract.models[m].params]
    return takers[0] if takers else contract.model_taking(wanted)


def case_spec(
    case: Case, models: Sequence[str], contract: Contract | None = None
) -> ModelSpec | None:
    """The model a case's answer is judged as: for a case that may be accepted, the answering
    model; for one that must be refused, its own model (None for model-independent ones).
    ``contract`` is the profile's (the base contract knows no declared model)."""
    contract = contract or load_contract()
    if case.expect != "reject" and isinstance(case.body, dict):
        return contract.models[answering_model(case, models, contract)]
    return contract.models.get(case.model)


def coverage_summary(
    observed: Mapping[str, Iterable[str]], models: Sequence[str], catalogue: Mapping[str, Rule]
) -> dict[str, Any]:
    """Coverage by model (``*`` for the model-independent cases): the rules observed (or, in a
    plan, that a conformant server's answers will show) and the MUST rules in scope left out.

    The plan and the report both build theirs with this function, from :func:`aimed_rules`
    and from the judged cells, so the two can be compared rule for rule.
    """
    out: dict[str, Any] = {}
    from .cases import ANY_MODEL

    for model in (ANY_MODEL, *models):
        seen = sorted(set(observed.get(model, ())))
        if model == ANY_MODEL:
            scope = [r.id for r in catalogue.values() if not r.per_model and r.models and r.is_must]
        else:
            scope = [
                r.id
                for r in catalogue.values()
                if r.per_model and model in r.models and r.is_must_for(model)
            ]
        out[model] = {
            "rules": seen,
            "must": {
                "in_scope": len(scope),
                "observed": sum(1 for r in scope if r in seen),
                "missing": [r for r in scope if r not in seen],
            },
        }
    return out
