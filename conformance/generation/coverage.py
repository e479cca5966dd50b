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

from ..contract.loader import ModelSpec, Rule, load_contract
from ..contract.oracle import request_violations, resolve_model
from .cases import MALFORMED_AUTH, Case

__all__ = [
    "ABSENCE_RULES",
    "aimed_rules",
    "answering_model",
    "case_spec",
    "coverage_summary",
    "expected_param",
]

#: Rules held by every exchange that completed without the fault they name.
ABSENCE_RULES = (
    "transport.no_5xx",
    "transport.well_formed",
    "transport.connection",
    "transport.timeout",
    "transport.content_encoding",
)
#: Error-body rules every refusal shows.
_ERROR_RULES = ("error.envelope", "error.fields")
_STREAM_RULES = (
    "stream.content_type",
    "stream.event.schema",
    "stream.partial.count",
    "stream.completed",
)
_ANSWER_RULES = ("response.content_type", "response.schema", "response.data.count")
_IMAGE_RULES = ("image.decodes", "image.format", "image.size")


def expected_param(case: Case, rules: Mapping[str, Rule]) -> str | None:
    """The field a conformant error's ``param`` names for this case's broken rule."""
    if case.raw is not None or not isinstance(case.body, dict):
        return None
    for violation in request_violations(case.body):
        if violation.rule == case.rule:
            return violation.param
    rule = rules.get(case.rule)
    return rule.param if rule else None


def _applies(rules: Mapping[str, Rule], rule_id: str, model: str | None) -> bool:
    rule = rules.get(rule_id)
    if rule is None or not rule.models:
        return False
    return model is None or model in rule.models


def aimed_rules(case: Case, spec: ModelSpec | None, rules: Mapping[str, Rule]) -> set[str]:
    """The rules a conformant answer to ``case`` shows held, for the answering model ``spec``
    (None when the case does not depend on one, or its answer is not judged as a model's)."""
    model = spec.name if spec is not None else None
    out = {case.rule, *ABSENCE_RULES}
    if case.auth != "valid" or case.expect == "reject":
        out.update(_ERROR_RULES)
        if case.auth in MALFORMED_AUTH:
            out.add("auth.status_401")
        if case.auth == "valid":
            out.add("error.status_400")
            if expected_param(case, rules) is not None:
                out.add("error.param")
    elif case.expect == "accept" and spec is not None and isinstance(case.body, Mapping):
        out.update(_answer_rules(case.body, spec, rules))
    return {r for r in out if r == case.rule or _applies(rules, r, model)}


def _answer_rules(body: Mapping[str, Any], spec: ModelSpec, rules: Mapping[str, Rule]) -> set[str]:
    """What a conformant 2xx answer to ``body`` shows, for the model ``spec``."""
    model = spec.name
    out = {"response.nulls", *_IMAGE_RULES}
    if spec.takes("background") and body.get("background") == "transparent":
        out.add("image.alpha")
    usage = _applies(rules, "response.usage.present", model)
    if spec.takes("stream") and body.get("stream") is True:
        out.update(_STREAM_RULES)
        if usage:
            out.add("response.usage.total")
        return out
    out.update(_ANSWER_RULES)
    out.update(("response.revised_prompt", "response.echo"))
    if usage:
        out.update(("response.usage.present", "response.usage.schema", "response.usage.total"))
    url = spec.takes("response_format") and body.get("response_format") != "b64_json"
    out.update(("response.url", "response.url.fetch") if url else ("response.b64_json",))
    return out


def answering_model(case: Case, models: Sequence[str]) -> str:
    """The model whose answer is judged: the body's model, or the one an omitted model means
    (the default of the contract; else the profile's first GPT image model)."""
    contract = load_contract()
    body = case.body if isinstance(case.body, dict) else {}
    named = body.get("model")
    if isinstance(named, str) and named in contract.models:
        return named
    if case.model in contract.models:
        return case.model
    resolved = resolve_model(body, contract) if isinstance(body, dict) else None
    if resolved in contract.models:
        return resolved
    gpt = [m for m in models if contract.models[m].is_gpt]
    return gpt[0] if gpt else contract.family_models("gpt-image")[0]


def case_spec(case: Case, models: Sequence[str]) -> ModelSpec | None:
    """The model a case's answer is judged as: for a case that may be accepted, the answering
    model; for one that must be refused, its own model (None for model-independent ones)."""
    contract = load_contract()
    if case.expect != "reject" and isinstance(case.body, dict):
        return contract.models[answering_model(case, models)]
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
                r.id for r in catalogue.values() if r.per_model and model in r.models and r.is_must
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
