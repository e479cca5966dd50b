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
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Any

from ..contract.levels import Level
from ..contract.loader import (
    GENERATIONS,
    Contract,
    ContractError,
    Endpoint,
    ModelSpec,
    Rule,
    load_contract,
)
from ..contract.profiles import Profile
from .cases import MALFORMED_AUTH, Case
from .inputs import InputFile

__all__ = [
    "BASE64",
    "URL",
    "Answer",
    "Showing",
    "asked_fields",
    "delivery",
    "endpoint_rules",
    "file_parts",
    "form_aimed_rules",
    "form_model",
    "parse_showing",
    "rule_applies",
    "sent_files",
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
    #: Only when a multipart form carries a file for each of these fields (``mask``).
    sends: tuple[str, ...] = ()

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
        sends: frozenset[str] = frozenset(),
    ) -> bool:
        """Whether an answer of these kinds to this request shows the rule held or broken
        (``sends``: the file fields a multipart form carries)."""
        if not self.answers & answers or (self.names_param and not names_param):
            return False
        if not sends.issuperset(self.sends):
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
def showings(endpoint: str = GENERATIONS) -> Mapping[str, Showing]:
    """Every answer rule's :class:`Showing` of an endpoint, by rule id, in the catalogue's
    order: its own rules', then (beside generations) those of the generations rules it reuses,
    which its answers show as generations' do."""
    contract = load_contract()
    found = {}
    known = contract.endpoint(endpoint).all_rules if endpoint != GENERATIONS else contract.rules
    for entry in contract.rule_entries:
        if "shown_by" in entry and entry.get("endpoint", GENERATIONS) == endpoint:
            found[entry["id"]] = parse_showing(entry["id"], entry["shown_by"], known)
    if endpoint != GENERATIONS:
        reused = contract.endpoint(endpoint).reused
        found.update({r: s for r, s in showings().items() if r in reused})
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
        sends=tuple(raw.get("sends") or ()),
    )


# --- multipart forms (edits, variations) ------------------------------------------------------


def endpoint_rules(profile: Profile, endpoint: str) -> dict[str, Rule]:
    """An endpoint's rules (its own, then the generations rules it reuses) as ``profile``
    holds them: its levels raised, each rule's models those of the endpoint the profile tests.
    Generations' are :meth:`Profile.rules`."""
    if endpoint == GENERATIONS:
        return profile.rules()
    key = (id(profile), endpoint)
    cached = _ENDPOINT_RULES.get(key)
    if cached is not None and cached[0] is profile:
        return dict(cached[1])
    contract = profile.contract
    known = contract.endpoint(endpoint) if endpoint in contract.endpoints else None
    known = known or load_contract().endpoint(endpoint)
    out: dict[str, Rule] = {}
    for rule in known.all_rules.values():
        override = profile.rule_overrides.get(rule.id, {})
        level = Level(override.get("level", rule.level))
        levels = {} if "level" in override else rule.levels
        models = tuple(m for m in rule.models if m in profile.models)
        out[rule.id] = replace(rule, level=level, models=models, levels=levels)
    _ENDPOINT_RULES[key] = (profile, out)
    return dict(out)


_ENDPOINT_RULES: dict[tuple[int, str], tuple[Profile, dict[str, Rule]]] = {}


def file_parts(case: Case, endpoint: Endpoint, model: str | None) -> dict[str, list[InputFile]]:
    """The files a form carries, by the field they belong to (``image[]`` parts are the
    ``image`` field's), in the order they are sent; parts of no file field are left out."""
    files = endpoint.files.get(model or "") or next(iter(endpoint.files.values()), {})
    owner = {part: name for name, spec in files.items() for part in spec.parts}
    out: dict[str, list[InputFile]] = {}
    for part in case.parts:
        if part.file is not None and part.name in owner:
            out.setdefault(owner[part.name], []).append(part.file)
    return out


def sent_files(case: Case, endpoint: Endpoint, model: str | None) -> frozenset[str]:
    """The file fields a form carries at least one file for."""
    return frozenset(file_parts(case, endpoint, model))


def asked_fields(case: Case, endpoint: Endpoint) -> dict[str, Any]:
    """A form's text fields as the request asks them: each decoded as its field's JSON type
    (``n`` an integer, ``stream`` a boolean), as a multipart server reads them; a value that
    does not decode is kept as text, a field sent twice read as its last value."""
    out: dict[str, Any] = {}
    for part in case.parts:
        if part.file is not None or part.value is None:
            continue
        schema = endpoint.request_fields.get(part.name)
        out[part.name] = _decoded(part.value, schema) if schema is not None else part.value
    return out


def _json_types(schema: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    kind = schema.get("type")
    if isinstance(kind, str):
        found.add(kind)
    elif isinstance(kind, list):
        found.update(k for k in kind if isinstance(k, str))
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, ()):
            if isinstance(branch, Mapping):
                found |= _json_types(branch)
    return found


def _decoded(value: str, schema: Mapping[str, Any]) -> Any:
    types = _json_types(schema)
    if "boolean" in types and value in ("true", "false"):
        return value == "true"
    if types & {"integer", "number"}:
        try:
            return int(value)
        except ValueError:
            pass
        if "number" in types:
            try:
                return float(value)
            except ValueError:
                pass
    return value


def form_model(case: Case, endpoint: Endpoint, contract: Contract | None = None) -> str | None:
    """The model a form's answer is judged as: the ``model`` part's (a profile's alias read as
    its model), else the case's own, else, when the form names none, the endpoint's default.
    A form that must be refused is judged as its own model (None: a model-independent one)."""
    contract = contract or load_contract()
    if case.expect == "reject" or case.auth != "valid":
        return case.model if case.model in endpoint.models else None
    named = asked_fields(case, endpoint).get("model")
    if isinstance(named, str):
        named = contract.aliases.get(named, named)
        return named if named in endpoint.models else None
    if case.model in endpoint.models:
        return case.model
    return endpoint.default_model if endpoint.default_model in endpoint.models else None


def conformant_answers(
    case: Case, spec: ModelSpec | None, body: Mapping[str, Any] | None
) -> frozenset[Answer]:
    """The kinds of answer a conformant server gives ``case`` (its answer judged as ``spec``),
    whose fields are ``body`` (a JSON body, or a form's text parts; None: neither)."""
    if case.auth != "valid" or case.expect == "reject":
        kinds = {Answer.EXCHANGE, Answer.REFUSAL}
        if case.auth in MALFORMED_AUTH:
            kinds.add(Answer.MALFORMED_AUTH)
        if case.auth == "valid":
            kinds.add(Answer.INVALID)
        return frozenset(kinds)
    if case.expect == "accept" and spec is not None and body is not None:
        return frozenset((Answer.EXCHANGE, Answer.STREAM if streams(body, spec) else Answer.JSON))
    return frozenset((Answer.EXCHANGE,))


def form_aimed_rules(
    case: Case, rules: Mapping[str, Rule], contract: Contract | None = None
) -> set[str]:
    """The rules a conformant answer to a multipart case shows held: its own rule, and every
    rule of its endpoint (``rules``: :func:`endpoint_rules`) whose ``shown_by`` its answer
    meets, for the model it is judged as (:func:`form_model`)."""
    contract = contract or load_contract()
    endpoint = contract.endpoint(case.endpoint)
    model = form_model(case, endpoint, contract)
    spec = endpoint.models.get(model) if model is not None else None
    body = asked_fields(case, endpoint)
    sends = sent_files(case, endpoint, model)
    answers = conformant_answers(case, spec, body)
    own = rules.get(case.rule)
    names_param = Answer.INVALID in answers and own is not None and own.param is not None
    shown = {
        rule
        for rule, showing in showings(case.endpoint).items()
        if showing.shown(answers, body, spec, rules, names_param=names_param, sends=sends)
    }
    return {case.rule} | {r for r in shown if rule_applies(rules, r, model)}
