"""Which answers show an answer rule: the ``shown_by`` declarations of ``schemas/rules.yaml``.

An answer rule holds of some answers only: ``image.alpha`` of an image asked with a transparent
background, ``error.param`` of a refusal whose field is known, ``response.url`` of images asked
as URLs. The catalogue says so beside each rule, as data; this module reads it once. The plan's
predicted coverage (:func:`~conformance.generation.coverage.aimed_rules`), the judge's checks
(:mod:`conformance.engine.checks`, whose registry holds one :class:`Showing` per rule) and the
pytest plugin's items all ask it, so they agree rule for rule and no code re-types a condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Any

from ..contract.loader import ContractError, ModelSpec, Rule, load_contract, read_data_file

__all__ = [
    "BASE64",
    "URL",
    "Answer",
    "Showing",
    "delivery",
    "parse_showing",
    "rule_applies",
    "showings",
    "streams",
]

#: The answer item fields an image comes in; they are also the values ``response_format`` takes.
BASE64, URL = "b64_json", "url"
#: The request fields that choose the answer's shape.
_RESPONSE_FORMAT, _STREAM = "response_format", "stream"
_READS = ("body", "headers", "status")


class Answer(StrEnum):
    """The answers a conformant server gives a case, as ``shown_by.answers`` names them."""

    OWN = "own"  # the case's own rule, judged on the status
    EXCHANGE = "exchange"  # every exchange that completed
    REFUSAL = "refusal"  # every refusal the case is due
    INVALID = "invalid"  # the refusal of an invalid request sent with a valid key
    MALFORMED_AUTH = "malformed_auth"  # the refusal of a malformed credential
    JSON = "json"  # a 2xx JSON answer
    STREAM = "stream"  # a 2xx event stream
    THROTTLED = "throttled"  # a 429: seen when it happens, never planned


@dataclass(frozen=True, eq=False)
class Showing:
    """When one answer rule is shown: by which answers, to which requests, for which models."""

    rule: str
    answers: frozenset[Answer]
    #: Request values the rule needs (the model must take each field).
    asks: Mapping[str, Any] = field(default_factory=dict)
    #: The answer item field the images must come in (:data:`BASE64` or :data:`URL`).
    delivery: str | None = None
    #: Only when the field a refusal names is known.
    names_param: bool = False
    #: Only for the models held to this rule as well.
    with_rule: str | None = None
    #: What of the answer the rule reads: its body, headers or status alone.
    reads: str = "body"
    #: The ``$defs`` entry of the response schema the rule is judged by, if any.
    answer_schema: str | None = None

    def asked_by(self, body: Mapping[str, Any], spec: ModelSpec) -> bool:
        """Whether a request to the model ``spec`` asks what the rule needs."""
        if not all(spec.takes(name) for name in self.asks) or not self.carries(body):
            return False
        return self.delivery is None or delivery(body, spec) == self.delivery

    def carries(self, body: Mapping[str, Any]) -> bool:
        """Whether ``body`` holds the values the rule asks, whatever model it goes to."""
        return all(_same(body.get(name), want) for name, want in self.asks.items())

    def shown(
        self,
        answers: frozenset[Answer],
        body: Mapping[str, Any],
        spec: ModelSpec | None,
        rules: Mapping[str, Rule],
        *,
        names_param: bool = False,
    ) -> bool:
        """Whether an answer of these kinds to this request shows the rule held or broken."""
        if not self.answers & answers or (self.names_param and not names_param):
            return False
        model = spec.name if spec is not None else None
        if self.with_rule is not None and not rule_applies(rules, self.with_rule, model):
            return False
        if spec is None:
            return not self.asks and self.delivery is None
        return self.asked_by(body, spec)


def _same(got: Any, want: Any) -> bool:
    """Equal and of the same type, so that ``1`` does not ask what ``true`` asks."""
    return type(got) is type(want) and got == want


def rule_applies(rules: Mapping[str, Rule], rule_id: str, model: str | None) -> bool:
    """Whether a rule holds for the model under the profile's rules (no model: for any)."""
    rule = rules.get(rule_id)
    if rule is None or not rule.models:
        return False
    return model is None or model in rule.models


def delivery(body: Mapping[str, Any], spec: ModelSpec) -> str:
    """The answer item field the images of ``body`` come in: what ``response_format`` asks (or
    the model's default, else the schema's) for a model that takes it; for the others, the one
    they always answer in (base64 unless a declared model states url)."""
    if not spec.takes(_RESPONSE_FORMAT):
        return URL if spec.fixed.get(_RESPONSE_FORMAT) == URL else BASE64
    asked = body.get(_RESPONSE_FORMAT)
    if asked is None:
        # The schema's default is the same in every profile's contract.
        asked = spec.defaults.get(_RESPONSE_FORMAT)
        asked = asked or load_contract().request_fields[_RESPONSE_FORMAT].get("default")
    return BASE64 if asked == BASE64 else URL


def streams(body: Mapping[str, Any], spec: ModelSpec) -> bool:
    """Whether the answer to ``body`` is an event stream (``stream: true`` to a model taking it)."""
    return spec.takes(_STREAM) and body.get(_STREAM) is True


@cache
def showings() -> Mapping[str, Showing]:
    """Every answer rule's :class:`Showing`, by rule id, in the catalogue's order."""
    contract = load_contract()
    catalogue = read_data_file(contract.directory / "rules.yaml")
    found = {}
    for entry in catalogue["rules"]:
        if "shown_by" in entry:
            found[entry["id"]] = parse_showing(entry["id"], entry["shown_by"], contract.rules)
    return MappingProxyType(found)


def parse_showing(rule_id: str, raw: Any, rules: Mapping[str, Rule]) -> Showing:
    """One ``shown_by`` entry; a ContractError names what is wrong in it."""
    if not isinstance(raw, Mapping) or not raw.get("answers"):
        raise ContractError(f"rule {rule_id}: shown_by needs `answers`")
    try:
        answers = frozenset(Answer(a) for a in raw["answers"])
    except ValueError as exc:
        raise ContractError(f"rule {rule_id}: shown_by: {exc}") from None
    with_rule = raw.get("with_rule")
    if with_rule is not None and with_rule not in rules:
        raise ContractError(f"rule {rule_id}: shown_by names an undeclared rule {with_rule!r}")
    if raw.get("delivery") not in (None, BASE64, URL):
        raise ContractError(f"rule {rule_id}: shown_by.delivery is {BASE64} or {URL}")
    if raw.get("reads", "body") not in _READS:
        raise ContractError(f"rule {rule_id}: shown_by.reads is one of {', '.join(_READS)}")
    unknown = set(raw) - set(Showing.__dataclass_fields__)
    if unknown:
        raise ContractError(f"rule {rule_id}: shown_by has unknown keys {sorted(unknown)}")
    return Showing(
        rule=rule_id,
        answers=answers,
        asks=MappingProxyType(dict(raw.get("asks") or {})),
        delivery=raw.get("delivery"),
        names_param=bool(raw.get("names_param", False)),
        with_rule=with_rule,
        reads=raw.get("reads", "body"),
        answer_schema=raw.get("answer_schema"),
    )
