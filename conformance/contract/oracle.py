"""Which contract rules a request breaks, by rule id.

This is the executable side of the request schema: it reads every limit from the contract data
and names the rule each break violates, which a JSON Schema error cannot do. The reference server
uses it to answer, the strategies to prove that an invalid case breaks exactly its labelled rule,
and the checks to know what a correct server does with an explored case. Tests hold it and the
strict request schema to the same verdict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .loader import OMIT, Contract, ModelSpec, load_contract
from .request_rules import (
    REQUEST_RULES,
    Extension,
    NotJson,
    NotObject,
    Refused,
    Seen,
    UnknownField,
    UnknownModel,
    Unsupported,
    body_rule,
    field_order,
    field_rules,
)

__all__ = [
    "Violation",
    "as_named",
    "parse_body",
    "request_violations",
    "resolve_model",
]


@dataclass(frozen=True)
class Violation:
    """One broken rule: its id, the offending field (as an error's ``param``), a message."""

    rule: str
    param: str | None
    message: str


def parse_body(raw: bytes) -> tuple[Any, Violation | None]:
    """Decode a request body; a body that is not JSON is a violation of its own."""
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError):
        return None, _body_violation(NotJson, None, raw)


def resolve_model(body: Mapping[str, Any], contract: Contract | None = None) -> str | None:
    """The model a request addresses: its ``model``; when omitted, the schema's default unless
    fields that model does not know carry values (then another model, which one the spec leaves
    open: None)."""
    contract = contract or load_contract()
    model = body.get("model")
    if model is not None:
        return contract.aliases.get(model, model) if isinstance(model, str) else None
    if any(body.get(f) is not None for f in contract.omitted_model_fields):
        return None
    return contract.default_model


def as_named(body: dict[str, Any], contract: Contract) -> dict[str, Any]:
    """The body with an alias (a profile's name for a model) replaced by the model it stands
    for: it is judged by exactly that model's rules, those that name the model included."""
    model = body.get("model")
    if isinstance(model, str) and model in contract.aliases:
        return {**body, "model": contract.aliases[model]}
    return body


def request_violations(body: Any, contract: Contract | None = None) -> list[Violation]:
    """Every rule the decoded request body breaks, MUST and SHOULD, in a stable order: the
    model, unknown keys, then each field's most specific break (one per field)."""
    contract = contract or load_contract()
    if not isinstance(body, dict):
        return [_body_violation(NotObject, None, body, contract)]
    body = as_named(body, contract)
    out: list[Violation] = []
    unknown = _body_violation(UnknownModel, "model", body.get("model", OMIT), contract, body)
    spec: ModelSpec | None = None
    if unknown is not None:
        out.append(unknown)
    else:
        resolved = resolve_model(body, contract)
        spec = contract.models.get(resolved) if resolved else None
    seen = Seen(body, spec, contract)
    known = contract.request_fields
    for key in body:
        # A known field breaks nothing here (the unknown-field rule's own check says the same).
        found = None if key in known else _body_violation(UnknownField, key, key, contract, body)
        if found is not None:
            out.append(found)
    required = contract.required_fields
    for param in field_order(contract):
        # A field left out or null means its default, unless required: nothing to judge.
        if body.get(param) is None and param not in required:
            continue
        found = _field_violation(param, seen)
        if found is not None:
            out.append(found)
    for param in contract.extension_fields:
        found = _extension_violation(param, seen)
        if found is not None:
            out.append(found)
    return out


def _extension_violation(param: str, seen: Seen) -> Violation | None:
    """A break of a model's own parameter: sent to a model without it, or outside its schema
    (null or left out means its default, as for every optional field)."""
    if seen.body.get(param) is None:
        return None
    gate = _gate(param, seen)
    if gate is not None or seen.spec is None:
        return gate
    rule = seen.contract.rules[body_rule(Extension)]
    message = REQUEST_RULES[rule.id].broken(rule, param, seen)
    return None if message is None else Violation(rule.id, param, message)


def _gate(param: str, seen: Seen) -> Violation | None:
    """The break of a field the addressed model does not take: refused by its profile, or not
    supported (a field its profile says it ignores breaks nothing: it is dropped)."""
    if seen.spec is None or seen.spec.takes(param):
        return None
    for kind in (Refused, Unsupported):
        rule = seen.contract.rules[body_rule(kind)]
        message = REQUEST_RULES[rule.id].broken(rule, param, seen)
        if message is not None:
            return Violation(rule.id, param, message)
    return None


def _body_violation(
    kind: type,
    param: str | None,
    value: Any,
    contract: Contract | None = None,
    body: Mapping[str, Any] | None = None,
) -> Violation | None:
    """The violation of the rule registered as body check ``kind``, if ``value`` breaks it."""
    contract = contract or load_contract()
    rule = contract.rules[body_rule(kind)]
    message = REQUEST_RULES[rule.id].broken(rule, value, Seen(body or {}, None, contract))
    return None if message is None else Violation(rule.id, param, message)


def _field_violation(param: str, seen: Seen) -> Violation | None:
    """The first break of one field, its rules judged most specific first; a field left out or
    null means its default (unless required), and a field the model does not take is that
    break alone."""
    contract = seen.contract
    value = seen.body.get(param, OMIT)
    required = contract.is_required(param)
    if not required and (value is OMIT or value is None):
        return None
    if not required and seen.spec is not None and not seen.spec.takes(param):
        return _gate(param, seen)
    for rule, check in field_rules(param, contract):
        message = check.broken(rule, value, seen)
        if message is not None:
            return Violation(rule.id, param, message)
    return None
