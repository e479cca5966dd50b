"""The request rules' code: which kind of break each rule states, and how a break is detected.

A request rule is data in ``schemas/rules.yaml`` (its field, level, error code, the example values
that break it) plus one entry here: the *kind* of break it states (a wrong type, a value below the
schema's minimum, above the model's maximum, outside the enum, a cross-field conflict the schema
states, ...). Each kind is one small :class:`Check` that reads every limit from the contract, so
the oracle, the strategies and the reference server never name a rule: they ask the registry.

The order of :data:`REQUEST_RULES` is the order the plan tries the rules' breakers (and lists a
model's invalid cases); the oracle walks the fields in the order they first appear there. Nothing
here imports Hypothesis: the strategies build theirs from the same entries, lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from .loader import OMIT, Contract, ModelSpec, Rule, has_type, load_contract, parse_wxh
from .registry import Registry

__all__ = [
    "REQUEST_RULES",
    "Check",
    "Seen",
    "body_rule",
    "extension_error",
    "field_order",
    "field_rules",
]


@dataclass(frozen=True)
class Seen:
    """What a check sees: the whole body, the model it addresses (None when unknown), the
    contract."""

    body: Mapping[str, Any]
    spec: ModelSpec | None
    contract: Contract


class Check:
    """One kind of break of one field. ``name`` keys its breakers in the strategies."""

    name: ClassVar[str]
    #: Within one field the lowest is judged first, so that the most specific break is named.
    precedence: ClassVar[int] = 50
    #: Body checks run before the fields are walked, on the whole body.
    body_level: ClassVar[bool] = False

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        """The message of a break of ``rule`` by ``value`` (OMIT when absent), or None."""
        raise NotImplementedError


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    # JSON Schema counts 1.0 as an integer; so does this, to agree with the schema.
    return _number(value) and float(value).is_integer()


#: How a message names each JSON type (a number also says what it got).
_TYPE_NAMES = {"string": "a string", "integer": "an integer (got {value})", "boolean": "a boolean"}


def _type_name(types: frozenset[str], value: Any) -> str:
    names = (_TYPE_NAMES.get(t, t) for t in sorted(types - {"null"}))
    return " or ".join(names).format(value=f"{value!r:.40}")


class Required(Check):
    name = "required"
    precedence = 0

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        return f"Missing required parameter: '{rule.param}'." if value is OMIT else None


class WrongType(Check):
    """A value of a JSON type the field's schema does not allow (null included, when the field
    is not nullable)."""

    name = "type"
    precedence = 10

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        types = seen.contract.types(str(rule.param))
        if value is OMIT or has_type(value, types):
            return None
        return f"'{rule.param}' must be {_type_name(types, value)}."


class Empty(Check):
    name = "empty"
    precedence = 20

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        return f"'{rule.param}' must not be empty." if value == "" else None


class MaxLength(Check):
    """A string longer than the model's ``maxLength``, counted in characters."""

    name = "max_length"
    precedence = 30

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        spec = seen.spec
        limit = spec.limit(str(rule.param), "maxLength") if spec else None
        if spec is None or limit is None or not isinstance(value, str) or len(value) <= limit:
            return None
        return f"'{rule.param}' is {len(value)} characters; {spec.name} takes at most {limit}."


class Minimum(Check):
    """A number below the schema's minimum."""

    name = "minimum"
    precedence = 40

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        bounds = seen.contract.bounds(str(rule.param))
        if bounds is None or not _number(value) or value >= bounds[0]:
            return None
        return f"'{rule.param}' must be at least {bounds[0]}."


class ModelMaximum(Check):
    """A number above the maximum of a model of the rule (tighter than the schema's)."""

    name = "model_maximum"
    precedence = 45

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        spec = seen.spec
        if spec is None or spec.name not in rule.models or not _number(value):
            return None
        limit = spec.limit(str(rule.param), "maximum")
        if limit is None or value <= limit:
            return None
        return f"{spec.name} supports only {rule.param}<={limit}."


class Maximum(Check):
    """A number above the schema's maximum."""

    name = "maximum"
    precedence = 50

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        bounds = seen.contract.bounds(str(rule.param))
        if bounds is None or not _number(value) or value <= bounds[1]:
            return None
        return f"'{rule.param}' must be at most {bounds[1]}."


class ModelEnum(Check):
    """A value of the field's enum that the addressed model does not take."""

    name = "model_enum"
    precedence = 60

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        param, spec = str(rule.param), seen.spec
        if spec is None or value not in seen.contract.enum_fields.get(param, ()):
            return None
        if value in spec.values(param):
            return None
        return f"'{param}={value}' is not supported with model {spec.name}."


class Enum(Check):
    """A value outside the field's enum: the model's values when the model is known (a ``WxH``
    aside, on a model with custom sizes), else every model's; a field whose values only the
    models state (``size``) is then held to its type alone."""

    name = "enum"
    precedence = 70

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        param, spec, contract = str(rule.param), seen.spec, seen.contract
        if param in contract.enum_fields:
            allowed = spec.values(param) if spec else contract.enum_fields[param]
            return None if value in allowed else f"Invalid value for '{param}': {value!r:.60}."
        types = contract.types(param)
        if not has_type(value, types - {"null"}):
            return f"'{param}' must be {_type_name(types, value)}."
        if spec is None or value in spec.values(param) or spec.accepts_custom(param, value):
            return None
        return (
            f"Invalid {param} {value!r:.40} for {spec.name}; "
            f"use one of {', '.join(map(str, spec.values(param)))}."
        )


class CustomSize(Check):
    """A ``WxH`` size that breaks the custom-size limit the rule states (``limit:``)."""

    name = "custom_size"
    precedence = 80

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        spec, param = seen.spec, str(rule.param)
        if spec is None or spec.custom_sizes is None or not spec.accepts_custom(param, value):
            return None
        wxh = parse_wxh(value)
        if wxh is None or spec.custom_sizes.broken_limit(*wxh) != rule.limit:
            return None
        return f"Invalid {param} {value!r} for {spec.name}."


class Range(Check):
    """Not an integer within the schema's bounds."""

    name = "range"
    precedence = 90

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        param = str(rule.param)
        bounds = seen.contract.bounds(param)
        if bounds is None or (_is_integer(value) and bounds[0] <= value <= bounds[1]):
            return None
        return f"'{param}' must be an integer from {bounds[0]} to {bounds[1]}."


class Requires(Check):
    """A cross-field rule of the request schema (its ``x-imgconf-rule`` names this rule) that
    the body breaks, judged only between values that are valid on their own: a bad value of the
    other field is that field's own break."""

    name = "requires"
    precedence = 100

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        cross = seen.contract.cross_field(rule.id)
        for other in (*cross.when, *cross.then):
            allowed = seen.contract.enum_fields.get(other)
            got = seen.body.get(other)
            if other != rule.param and allowed and got is not None and got not in allowed:
                return None
        if cross.holds(_as_the_model_answers(seen, (*cross.when, *cross.then))):
            return None
        return cross.message


def _as_the_model_answers(seen: Seen, fields: tuple[str, ...]) -> Mapping[str, Any]:
    """The body with each of ``fields`` it leaves out (or sends null) set to the addressed
    model's own value, where a profile gives the model one other than the contract's default:
    a model that answers jpeg only, or by default, answers an omitted ``output_format`` with a
    jpeg, so ``background: transparent`` without a format asks it for a transparent jpeg. The
    request schema's rules between fields already read an omitted field as the contract's
    default ("png when omitted")."""
    spec, body = seen.spec, seen.body
    if spec is None:
        return body
    filled: dict[str, Any] | None = None
    for name in fields:
        if body.get(name) is not None:
            continue
        own = spec.fixed.get(name, spec.defaults.get(name))
        if own is None or own == seen.contract.request_fields.get(name, {}).get("default"):
            continue
        filled = filled if filled is not None else dict(body)
        filled[name] = own
    return body if filled is None else filled


class Unsupported(Check):
    """A field the addressed model does not take (``value`` is the field's name): the oracle's
    gate before a field's own checks, since a field the model ignores has no limits to break.
    A field a declared model's profile says it ignores or refuses is not this rule's."""

    name = "unsupported"
    body_level = True

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        param, spec = str(value), seen.spec
        if spec is None or spec.takes(param) or param in spec.ignores | spec.refuses:
            return None
        return f"'{param}' is not supported with model {spec.name}."


class Refused(Check):
    """A standard field the profile says the model refuses (``value`` is the field's name)."""

    name = "refused"
    body_level = True

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        param, spec = str(value), seen.spec
        if spec is None or param not in spec.refuses:
            return None
        return f"Argument not supported with model {spec.name}: {param}."


class Extension(Check):
    """A value of one of the model's own parameters that its declared JSON Schema fragment
    does not allow (``value`` is the parameter's name; the value is the body's)."""

    name = "extension"
    body_level = True

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        param, spec = str(value), seen.spec
        if spec is None or param not in spec.extensions:
            return None
        got = seen.body.get(param)
        error = extension_error(spec.extensions[param], got)
        return None if error is None else f"Invalid value for '{param}': {error}"


def extension_error(schema: Mapping[str, Any], value: Any) -> str | None:
    """The first error of ``value`` against an extension's schema (None: valid)."""
    from jsonschema import Draft202012Validator

    error = next(iter(Draft202012Validator(schema).iter_errors(value)), None)
    return None if error is None else f"{error.message:.120}"


class UnknownField(Check):
    """A key the request schema does not know (``value`` is the key)."""

    name = "unknown_field"
    body_level = True

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        if value in seen.contract.request_fields:
            return None
        return f"Unknown parameter: '{value:.80}'."


class UnknownModel(Check):
    name = "unknown_model"
    body_level = True

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        if (
            value is OMIT
            or value is None
            or (isinstance(value, str) and value in seen.contract.models)
        ):
            return None
        return f"Unknown model: {value!r:.80}."


class NotObject(Check):
    name = "not_object"
    body_level = True

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        return None if isinstance(value, dict) else "The body must be a JSON object."


class NotJson(Check):
    """Decided while decoding (the oracle's ``parse_body``): a body that is not JSON."""

    name = "not_json"
    body_level = True

    def broken(self, rule: Rule, value: Any, seen: Seen) -> str | None:
        return "The body is not valid JSON."


#: Every request rule's code entry, in the order the plan tries their breakers.
REQUEST_RULES: Registry[Check] = Registry("request")
_add = REQUEST_RULES.add
_add("request.body.not_json", NotJson())
_add("request.body.not_object", NotObject())
_add("request.model.unknown", UnknownModel())
_add("request.unsupported_param", Unsupported())
_add("request.prompt.required", Required())
_add("request.prompt.type", WrongType())
_add("request.prompt.max_length", MaxLength())
_add("request.prompt.empty", Empty())
_add("request.n.type", WrongType())
_add("request.n.min", Minimum())
_add("request.n.max.dall-e-3", ModelMaximum())
_add("request.n.max.model", ModelMaximum())
_add("request.n.max", Maximum())
_add("request.size.enum", Enum())
_add("request.size.custom.divisible", CustomSize())
_add("request.size.custom.aspect", CustomSize())
_add("request.size.custom.max", CustomSize())
_add("request.quality.enum", Enum())
_add("request.response_format.enum", Enum())
_add("request.output_format.enum", Enum())
_add("request.moderation.enum", Enum())
_add("request.background.enum", Enum())
_add("request.style.enum", Enum())
_add("request.quality.model", ModelEnum())
_add("request.stream.type", WrongType())
_add("request.output_compression.range", Range())
_add("request.output_compression.png", Requires())
_add("request.partial_images.range", Range())
_add("request.background.transparent_jpeg", Requires())
_add("request.unknown_field", UnknownField())
_add("request.user.type", WrongType())
_add("request.refused_param", Refused())
_add("request.extension.invalid", Extension())


@cache
def body_rule(kind: type[Check]) -> str:
    """The id of the rule whose entry is a body check of ``kind`` (one per kind; the registry
    is complete once this module is imported, so the answer is remembered)."""
    for rule_id, check in REQUEST_RULES.items():
        if type(check) is kind:
            return rule_id
    raise LookupError(f"no request rule is registered as {kind.__name__}")


def field_order(contract: Contract | None = None) -> tuple[str, ...]:
    """The fields the oracle walks, in the order they first appear among the field rules."""
    return _memo("order", contract or load_contract(), _field_order)


def field_rules(param: str, contract: Contract | None = None) -> tuple[tuple[Rule, Check], ...]:
    """The rules of one field with their checks, most specific first."""
    return _memo("rules", contract or load_contract(), _field_rules).get(param, ())


_MEMO: dict[tuple[str, int], tuple[Contract, Any]] = {}


def _memo(name: str, contract: Contract, compute: Any) -> Any:
    """``compute(contract)`` once per contract (a contract is not hashable; it is immutable)."""
    key = (name, id(contract))
    if key not in _MEMO or _MEMO[key][0] is not contract:
        _MEMO[key] = (contract, compute(contract))
    return _MEMO[key][1]


def _field_order(contract: Contract) -> tuple[str, ...]:
    out: list[str] = []
    for rule_id, check in REQUEST_RULES.items():
        param = contract.rules[rule_id].param
        if not check.body_level and param is not None and param not in out:
            out.append(param)
    return tuple(out)


def _field_rules(contract: Contract) -> dict[str, tuple[tuple[Rule, Check], ...]]:
    out: dict[str, list[tuple[Rule, Check]]] = {}
    for rule_id, check in REQUEST_RULES.items():
        rule = contract.rules[rule_id]
        if not check.body_level and rule.param is not None:
            out.setdefault(rule.param, []).append((rule, check))
    return {
        param: tuple(sorted(entries, key=lambda entry: entry[1].precedence))
        for param, entries in out.items()
    }
