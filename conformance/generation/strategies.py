"""Request bodies built from the contract data: Hypothesis strategies and the values they share.

Everything here is read from ``schemas/`` through :func:`load_contract` and a profile: the
models, their sizes and limits, the enums, the numeric bounds, the cross-field rules of the
request schema. Nothing is typed twice. Three consumers share these value spaces:

- :func:`valid_requests` and :func:`invalid_requests` are Hypothesis strategies, for property
  tests and for anyone who wants to fuzz an endpoint with their own harness. They do not consult
  :func:`conformance.contract.oracle.request_violations`: they are built from the data alone, so the
  property tests that hold them to that oracle can fail.
- The planner (:mod:`conformance.generation.planning`) takes :func:`param_values`, the prompts, the custom
  sizes and :func:`invalid_variants` to build its fixed, deterministic plan.
- :func:`explore_requests` draws the extra requests of ``--explore`` from the two strategies
  themselves, with Hypothesis's engine under a fixed seed (:func:`draw_examples`), so the same
  seed gives the same bodies. Drawing happens in an interpreter of its own, model by model
  (:func:`explore_stream`), and sending in the runner: no Hypothesis loop ever sends a request,
  so none can shrink, retry or spend beyond the plan's budget.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..contract.features import feature_used, features_used
from ..contract.loader import (
    OMIT,
    OPTIONAL_FIELDS,
    Contract,
    ContractError,
    CrossField,
    CustomSizes,
    ModelSpec,
    Rule,
    load_contract,
)
from ..contract.profiles import Profile, load_profile
from ..contract.request_rules import REQUEST_RULES, Unsupported, body_rule, extension_error
from ..errors import SetupError

if TYPE_CHECKING:
    from hypothesis import strategies as st

__all__ = [
    "DEFAULT_PROMPT",
    "OMIT",
    "UNKNOWN_FIELD",
    "Variant",
    "body_key",
    "custom_size_corners",
    "custom_size_examples",
    "draw_each",
    "draw_examples",
    "explore_requests",
    "explore_stream",
    "feature_used",
    "features_used",
    "ignored_param_values",
    "invalid_custom_sizes",
    "invalid_requests",
    "invalid_variants",
    "param_values",
    "prompt_of_length",
    "unsupported_param_variants",
    "valid_requests",
    "write_explore_lines",
]

#: The value a plan sends in a free string field.
_EXAMPLE_STRING = "imgconf-conformance"
#: A harmless prompt, short so that invalid cases stay small.
DEFAULT_PROMPT = "A small red circle centred on a plain white background"
#: A field name no version of the API knows.
UNKNOWN_FIELD = "imgconf_unknown_field"


# Text in several scripts at once: ASCII, CJK (3 bytes each in UTF-8), emoji outside the BMP
# (4 bytes, 2 UTF-16 units), a combining accent (two code points, one grapheme) and two
# right-to-left scripts. A server that counts bytes, UTF-16 units or graphemes instead of
# characters gets the boundary wrong one way or the other.
_MIXED = (
    "A calm harbour at dawn, 港の夜明けの静かな海, 🌅🚤🐟 "
    "cafe\u0301 au lait, na\u0308ive, שלום עולם, مرحبا بالعالم. "
)


def prompt_of_length(length: int, *, mixed: bool = True) -> str:
    """A prompt of exactly ``length`` characters (code points, as Python's ``len`` counts).

    It never starts or ends with whitespace, so a server that trims cannot shift the boundary.
    """
    if length <= 0:
        return ""
    pattern = _MIXED if mixed else DEFAULT_PROMPT + ". "
    text = (pattern * (length // len(pattern) + 1))[:length]
    if text[-1].isspace():
        text = text[:-1] + "."
    return text


# --- value spaces ------------------------------------------------------------------------------


def _integer_bounds(contract: Contract, param: str) -> tuple[int, int]:
    """The bounds of a field the contract gives bounds (n, output_compression, partial_images)."""
    bounds = contract.bounds(param)
    if bounds is None:
        raise ContractError(f"the request schema gives no integer bounds for {param!r}")
    return bounds


def _model_maximum(spec: ModelSpec, contract: Contract, param: str) -> int:
    """A field's maximum for one model: the model's own when it states one, else the schema's."""
    limit = spec.limit(param, "maximum")
    return int(limit) if limit is not None else _integer_bounds(contract, param)[1]


def custom_size_corners(custom: CustomSizes) -> tuple[str, ...]:
    """Valid custom sizes at the corners of the safe zone: the smallest square, and the widest
    and tallest rectangles at the longest safe edge (each side a multiple of the step)."""
    step = custom.multiple_of
    short = math.ceil(custom.safe_max_edge / custom.safe_max_aspect / step) * step
    out = [
        f"{custom.safe_min_edge}x{custom.safe_min_edge}",
        f"{custom.safe_max_edge}x{short}",
        f"{short}x{custom.safe_max_edge}",
    ]
    return tuple(s for s in dict.fromkeys(out) if custom.is_safe(*map(int, s.split("x"))))


def custom_size_examples(custom: CustomSizes) -> tuple[str, ...]:
    """Valid custom sizes across the safe zone, derived from its bounds; the corners first.

    Beyond :func:`custom_size_corners`: the largest square; a wide and a tall size in the middle
    of the zone whose sides are *odd* multiples of the step (on the stated grid, off every
    coarser one a server might assume, such as 32 or 64); and a wide and a tall size at the
    longest edge, halfway between the square and the widest shape (several megapixels, where a
    server with a lower unstated pixel cap gives way).
    """
    step = custom.multiple_of
    low = math.ceil(custom.safe_min_edge / step) * step
    high = custom.safe_max_edge // step * step
    widest = math.ceil(high / custom.safe_max_aspect / step) * step
    off_long = _odd_multiple((low + high) / 2, step)
    off_short = _odd_multiple((max(low, off_long / custom.safe_max_aspect) + off_long) / 2, step)
    large_short = round((widest + high) / 2 / step) * step
    shapes = [(high, high), (off_long, off_short), (high, large_short)]
    out = list(custom_size_corners(custom))
    for long, short in shapes:
        out.extend((f"{long}x{short}", f"{short}x{long}"))
    return tuple(s for s in dict.fromkeys(out) if custom.is_safe(*map(int, s.split("x"))))


def _odd_multiple(target: float, step: int) -> int:
    """The odd multiple of ``step`` at or just above ``target``'s multiple: divisible by the
    step and by no larger power of two times it."""
    k = int(target // step)
    return (k if k % 2 else k + 1) * step


def invalid_custom_sizes(custom: CustomSizes) -> dict[str, tuple[str, ...]]:
    """Custom sizes that break exactly one stated rule each, by rule id, computed from the limits:
    a side off the step; a ratio just beyond the maximum; an edge just over the maximum; the
    pixel count just over the maximum with both edges allowed."""
    step, edge, low = custom.multiple_of, custom.max_edge, custom.safe_min_edge
    wide = (math.floor(low * custom.max_aspect / step) + 1) * step
    over_edge = edge + step
    over_edge_short = math.ceil(over_edge / custom.max_aspect / step) * step
    pixels_short = (custom.max_pixels // edge // step + 1) * step
    candidates = [
        (low + step // 2, low + step // 2),
        (low, low + step // 2),
        (wide, low),
        (low, wide),
        (over_edge, over_edge_short),
        (edge, pixels_short),
    ]
    rules = {r.limit: r.id for r in load_contract().request_rules.values() if r.limit}
    out: dict[str, list[str]] = {}
    for width, height in candidates:
        limit = custom.broken_limit(width, height)
        if limit is not None:
            out.setdefault(rules[limit], []).append(f"{width}x{height}")
    return {rule: tuple(sizes) for rule, sizes in out.items()}


def param_values(spec: ModelSpec, contract: Contract | None = None) -> dict[str, tuple[Any, ...]]:
    """The non-null values of each optional field of a model that a plan must cover.

    Enums: every value the model takes. Integers: the bounds (the whole range when it is small);
    ``n`` runs from 1 to the model's maximum. Booleans: both. Strings: one example. Sizes: the
    enum and, for custom-size models, sizes across the safe zone. ``null`` is added by callers.
    """
    contract = contract or load_contract()
    out: dict[str, tuple[Any, ...]] = {}
    for param in OPTIONAL_FIELDS:
        if param == "model" or not spec.takes(param):
            continue
        if param == "size":
            customs = custom_size_examples(spec.custom_sizes) if spec.custom_sizes else ()
            out[param] = spec.sizes + customs
        elif spec.values(param):
            out[param] = spec.values(param)
        elif (bounds := contract.bounds(param)) is not None:
            low, high = bounds[0], _model_maximum(spec, contract, param)
            out[param] = tuple(range(low, high + 1)) if high - low <= 4 else (low, high)
        elif "boolean" in contract.types(param):
            out[param] = (False, True)
        else:
            out[param] = (_EXAMPLE_STRING,)
    for param, schema in spec.extensions.items():
        values = extension_values(schema)
        if values:
            out[param] = values
    return out


def extension_values(schema: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of a declared model's own parameter a plan covers, from its JSON Schema
    fragment: every enum value; an integer's bounds (the whole range when it is small); both
    booleans; else one value its schema allows: its ``const``, ``default``, first example, a
    bound, or a plain string (none: the plan leaves the parameter out)."""
    if "enum" in schema:
        return tuple(v for v in schema["enum"] if v is not None)
    kind = schema.get("type")
    if kind == "integer" and "minimum" in schema and "maximum" in schema:
        low, high = int(schema["minimum"]), int(schema["maximum"])
        return tuple(range(low, high + 1)) if high - low <= 4 else (low, high)
    if kind == "boolean":
        return (False, True)
    candidates = [schema[k] for k in ("const", "default") if k in schema]
    candidates += list(schema.get("examples") or ())
    if kind == "integer":
        candidates += [schema[k] for k in ("minimum", "maximum") if k in schema]
    if kind == "string":
        candidates.append(_EXAMPLE_STRING)
    valid = [v for v in candidates if extension_error(schema, v) is None]
    return tuple(valid[:1])


def invalid_extension_values(schema: Mapping[str, Any]) -> tuple[Any, ...]:
    """Values a declared model's own parameter must refuse, from its schema: just beyond each
    bound, a value next to the enum's, a value of another type; only those its schema refuses."""
    candidates: list[Any] = []
    for key, step in (("minimum", -1), ("maximum", 1)):
        if isinstance(schema.get(key), int | float) and not isinstance(schema.get(key), bool):
            candidates.append(schema[key] + step)
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in schema:
            candidates.append(schema[key])
    enum = [v for v in schema.get("enum", ()) if isinstance(v, str)]
    if enum:
        candidates.append(enum[0] + "x")
    if isinstance(schema.get("maxLength"), int):
        candidates.append("x" * (schema["maxLength"] + 1))
    candidates.extend(["1", 1.5, True])
    out: list[Any] = []
    for value in candidates:
        if extension_error(schema, value) is not None and not _listed(value, out):
            out.append(value)
    return tuple(out)


def _listed(value: Any, values: Sequence[Any]) -> bool:
    """Whether ``value`` is among ``values`` by JSON identity (``True`` is not ``1``)."""
    return any(type(v) is type(value) and v == value for v in values)


# --- cross-field rules of the schema -------------------------------------------------------


def _cross_fields_ok(body: Mapping[str, Any]) -> bool:
    """Whether ``body`` keeps every cross-field rule of the request schema."""
    return all(cross.holds(body) for cross in load_contract().cross_fields)


def _first_allowed(body: dict[str, Any], param: str, candidates: Sequence[Any]) -> Any:
    """The first candidate that keeps ``body`` within the schema's cross-field rules."""
    for value in candidates:
        if _cross_fields_ok({**body, param: value}):
            return value
    return OMIT


# --- invalid variants for the plan ----------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One request that breaks ``rule``, with a readable title."""

    rule: str
    title: str
    body: Any


def _foreign_enum_values(contract: Contract, param: str) -> list[Any]:
    """Values outside a field's enum (over all models): another field's value, wrong case."""
    own = set(contract.enum_fields[param])
    out: list[Any] = []
    for other, values in contract.enum_fields.items():
        if other == param:
            continue
        out.extend(v for v in values if v not in own and v not in out)
    foreign = out[:1]
    upper = contract.enum_fields[param][0].upper()
    if upper not in own:
        foreign.append(upper)
    return foreign


def _other_models_values(spec: ModelSpec, contract: Contract, param: str) -> list[Any]:
    """Values of a field that other models take and this one does not, the field's default
    aside (a server may take the default from any model)."""
    default = contract.request_fields[param].get("default")
    values = [
        v
        for other in contract.models.values()
        for v in other.values(param)
        if v not in spec.values(param) and v != default
    ]
    return list(dict.fromkeys(values))


def _crossings(contract: Contract, param: str) -> list[CrossField]:
    """The schema's cross-field rules whose ``then`` constrains ``param``."""
    return [cross for cross in contract.cross_fields if param in cross.then]


def _triggers(cross: CrossField, field: str, candidates: Sequence[Any]) -> list[Any]:
    """Those of ``candidates`` (OMIT: left out) for which the rule's ``if`` holds."""
    return [v for v in candidates if cross.triggers({} if v is OMIT else {field: v})]


def _valid_value(spec: ModelSpec, contract: Contract, param: str) -> Any:
    """A value of ``param`` that breaks none of its own rules: the maximum, or the model's first."""
    bounds = contract.bounds(param)
    return bounds[1] if bounds is not None else spec.values(param)[0]


@dataclass(frozen=True)
class Breaking:
    """What breakers and strategies need about one rule and one model."""

    rule: Rule
    spec: ModelSpec
    base: Mapping[str, Any]
    contract: Contract

    @property
    def param(self) -> str:
        return str(self.rule.param)

    def changes(self, context: Mapping[str, Any], value: Any) -> dict[str, Any]:
        """``context``, the values that let ``param`` be set at all (a format that takes a
        compression), ``value`` itself, then the rule's ``clear`` fields left out."""
        out = dict(context)
        probe = {
            **self.base,
            **context,
            self.param: _valid_value(self.spec, self.contract, self.param),
        }
        for cross in _crossings(self.contract, self.param):
            for field in cross.when:
                out[field] = _first_allowed(probe, field, self.spec.values(field))
        out[self.param] = value
        out.update(dict.fromkeys(self.rule.clear, OMIT))
        return out

    def title(self, changes: Mapping[str, Any]) -> str:
        """``field=value`` for each change but the cleared fields (``field omitted`` if left out)."""
        return ", ".join(
            f"{k} omitted" if v is OMIT else f"{k}={_short(v)}"
            for k, v in changes.items()
            if k not in self.rule.clear
        )

    def simple(self, values: Iterable[Any]) -> list[tuple[str, dict[str, Any]]]:
        return [(f"{self.param}={_short(v)}", {self.param: v}) for v in values]


# Deterministic breakers, by kind of break (the entry of the rule in REQUEST_RULES): each gives
# ``(title, changes)`` pairs on top of a valid body.


def _break_required(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{b.param} missing", {b.param: OMIT})]


def _break_type(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    return b.simple(_substitute(v, b.base.get(b.param)) for v in b.rule.examples)


def _break_empty(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{b.param} empty", {b.param: ""})]


def _break_max_length(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    limit = b.spec.limit(b.param, "maxLength")
    if limit is None:
        return []
    return [
        (f"{b.param} {limit + 1} chars ascii", {b.param: _ascii(limit + 1)}),
        (f"{b.param} {limit + 1} chars mixed scripts", {b.param: prompt_of_length(limit + 1)}),
    ]


def _break_minimum(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    low = _integer_bounds(b.contract, b.param)[0]
    return b.simple((low - 1, low - 2))


def _break_maximum(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    """Just above the model's maximum and the schema's (the oracle keeps those that break)."""
    high = _integer_bounds(b.contract, b.param)[1]
    return b.simple(sorted({_model_maximum(b.spec, b.contract, b.param) + 1, high + 1}))


def _break_enum(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    """Another field's value and a wrong case; for a field whose values only the models state,
    other models' values; then the rule's own examples, and the values of the field's enum
    that the model's facts leave out (:func:`_narrowed_values`)."""
    if b.param in b.contract.enum_fields:
        foreign = _foreign_enum_values(b.contract, b.param)
    else:
        foreign = _other_models_values(b.spec, b.contract, b.param)
    return b.simple([*foreign, *b.rule.examples, *_narrowed_values(b)])


def _narrowed_values(b: Breaking) -> list[Any]:
    """Values of an enum field that other models take and this model does not: a declared
    model narrowing the field (Azure's gpt-image deployments answer no webp) must refuse them,
    the schema's default too (a model listing ``[jpeg, webp]`` has its own). None when a rule
    of the model's own enum for the field (a ``model_enum`` break, judged first) is the one
    those values break."""
    if b.param not in b.contract.enum_fields or _has_model_enum_rule(b.contract, b.param):
        return []
    own = b.spec.values(b.param)
    taken = (v for other in b.contract.models.values() for v in other.values(b.param))
    return list(dict.fromkeys(v for v in taken if v not in own))


def _has_model_enum_rule(contract: Contract, param: str) -> bool:
    return any(
        check.name == "model_enum" and contract.rules[rule_id].param == param
        for rule_id, check in REQUEST_RULES.items()
    )


def _break_model_enum(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    values = b.contract.enum_fields.get(b.param, ())
    return b.simple(v for v in values if v not in b.spec.values(b.param))


def _break_custom_size(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    if b.spec.custom_sizes is None:
        return []
    return b.simple(invalid_custom_sizes(b.spec.custom_sizes).get(b.rule.id, ()))


def _break_range(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    low, high = _integer_bounds(b.contract, b.param)
    out = []
    for context in b.rule.contexts:
        for value in (low - 1, high + 1, *b.rule.examples):
            changes = b.changes(context, value)
            out.append((b.title(changes), changes))
    return out


def _break_requires(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    """Set the field the schema's ``if`` looks at so that it holds, and the field its ``then``
    constrains so that it does not, each to a value the model takes (or leaves out)."""
    cross = b.contract.cross_field(b.rule.id)
    out = []
    for changes in _requires_changes(b, cross):
        out.append((b.title(changes), changes))
    return out


def _requires_changes(b: Breaking, cross: CrossField) -> list[dict[str, Any]]:
    clear = dict.fromkeys(b.rule.clear, OMIT)
    if b.param in cross.when:
        trigger = _triggers(cross, b.param, b.spec.values(b.param))[:1]
        out = []
        for value in trigger:
            changes = {b.param: value}
            for field in cross.then:
                bad = [v for v in b.spec.values(field) if not cross.holds({**changes, field: v})]
                changes[field] = bad[0] if bad else OMIT
            if OMIT not in changes.values():
                out.append({**changes, **clear})
        return out
    value = _valid_value(b.spec, b.contract, b.param)
    out = []
    for field in cross.when:
        candidates = [*_triggers(cross, field, b.spec.values(field))[:1], OMIT]
        for trigger in _triggers(cross, field, candidates):
            out.append({field: trigger, b.param: value, **clear})
    return out


def _break_extension(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    """Each of the model's own parameters, set to values its declared schema refuses."""
    return [
        (f"{name}={_short(v)}", {name: v})
        for name, schema in b.spec.extensions.items()
        for v in invalid_extension_values(schema)
    ]


def _break_refused(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    """Each standard field the model refuses, set to a value a model that takes it takes."""
    out = []
    for param in OPTIONAL_FIELDS:
        if param in b.spec.refuses:
            value = _value_taken_elsewhere(param, b.contract)
            if value is not OMIT:
                out.append((f"{param}={_short(value)}", {param: value}))
    return out


def ignored_param_values(spec: ModelSpec, contract: Contract) -> list[tuple[str, Any]]:
    """Each standard field a declared model ignores, with a value a model that takes it takes:
    a request the model answers as if the field were left out."""
    out = []
    for param in OPTIONAL_FIELDS:
        if param in spec.ignores:
            value = _value_taken_elsewhere(param, contract)
            if value is not OMIT:
                out.append((param, value))
    return out


def _value_taken_elsewhere(param: str, contract: Contract) -> Any:
    """The last plan value of ``param`` for the first model that takes it (OMIT: none does)."""
    for other in contract.models.values():
        if other.takes(param):
            return param_values(other, contract)[param][-1]
    return OMIT


def _break_unknown_field(b: Breaking) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{UNKNOWN_FIELD}={_short(v)}", {UNKNOWN_FIELD: v}) for v in b.rule.examples]


_BREAKERS = {
    "required": _break_required,
    "type": _break_type,
    "empty": _break_empty,
    "max_length": _break_max_length,
    "minimum": _break_minimum,
    "maximum": _break_maximum,
    "model_maximum": _break_maximum,
    "enum": _break_enum,
    "model_enum": _break_model_enum,
    "custom_size": _break_custom_size,
    "range": _break_range,
    "requires": _break_requires,
    "unknown_field": _break_unknown_field,
    "extension": _break_extension,
    "refused": _break_refused,
}


def _substitute(value: Any, base: Any) -> Any:
    """An example with ``$base`` (the valid body's own value of the field) filled in."""
    if value == "$base":
        return base
    if isinstance(value, list):
        return [_substitute(v, base) for v in value]
    return value


def _breakable(rule: Rule, spec: ModelSpec, contract: Contract) -> bool:
    """A rule whose field the model takes (or that is about the body's keys, or required)."""
    param = rule.param
    return param is None or contract.is_required(param) or spec.takes(param)


def invalid_variants(
    spec: ModelSpec, base: Mapping[str, Any], rules: Sequence[str], contract: Contract | None = None
) -> list[Variant]:
    """Bodies that each break one rule of ``rules`` on top of a valid ``base`` body.

    Candidates for every request rule a body can break, in the registry's order, from the rule's
    data and the schema; the planner keeps those that break their rule and nothing else (it asks
    :func:`request_violations`). Titles are short and stable.
    """
    contract = contract or load_contract()
    wanted = set(rules)
    base = dict(base)
    out: list[Variant] = []
    for rule_id, check in REQUEST_RULES.items():
        breaker = _BREAKERS.get(check.name)
        rule = contract.rules[rule_id]
        if rule_id not in wanted or breaker is None or not _breakable(rule, spec, contract):
            continue
        for title, changes in breaker(Breaking(rule, spec, base, contract)):
            out.append(Variant(rule_id, title, _apply(base, changes)))
    return out


def _apply(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` made (a change to OMIT leaves the field out)."""
    body = {**base, **{k: v for k, v in changes.items() if v is not OMIT}}
    for key, value in changes.items():
        if value is OMIT:
            body.pop(key, None)
    return body


def unsupported_param_variants(
    spec: ModelSpec, base: Mapping[str, Any], contract: Contract | None = None
) -> list[Variant]:
    """One body per field the model does not take, with a value another model takes (a field a
    declared model refuses or ignores is not this rule's: see ``refuses`` and ``ignores``)."""
    contract = contract or load_contract()
    rule = body_rule(Unsupported)
    out = []
    for param in OPTIONAL_FIELDS:
        if param == "model" or spec.takes(param) or param in spec.refuses | spec.ignores:
            continue
        values: tuple[Any, ...] = ()
        for other in contract.models.values():
            if other.takes(param):
                values = param_values(other, contract)[param]
                break
        if values:
            value = values[-1]
            body = {**base, param: value}
            title = f"{param}={_short(value)}"
            out.append(Variant(rule, title, body))
    return out


def _ascii(length: int) -> str:
    return prompt_of_length(length, mixed=False)


def _short(value: Any) -> str:
    if isinstance(value, str):
        if value in ("true", "false", "null") or value.lstrip("-").replace(".", "", 1).isdigit():
            return f'"{value}"'  # a string that reads like a number or a literal: say so
        return value if len(value) <= 24 else value[:21] + "..."
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, list | dict):
        return "array" if isinstance(value, list) else "object"
    return repr(value)


# --- Hypothesis strategies -----------------------------------------------------------------


def _spec(model: str, profile: Profile | None) -> tuple[ModelSpec, Profile]:
    profile = profile or load_profile("openai")
    contract = profile.contract
    if model not in contract.models:
        raise ValueError(f"unknown model {model!r}")
    return contract.models[model], profile


def _custom_sizes_strategy(custom: CustomSizes) -> st.SearchStrategy[str]:
    from hypothesis import strategies as st  # imported when drawing only (--explore)

    step = custom.multiple_of
    edges = st.integers(math.ceil(custom.safe_min_edge / step), custom.safe_max_edge // step).map(
        lambda k: k * step
    )
    return (
        st.tuples(edges, edges)
        .filter(lambda wh: custom.is_safe(*wh))
        .map(lambda wh: f"{wh[0]}x{wh[1]}")
    )


def _extension_strategy(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Any valid value of a declared model's own parameter: a whole integer range, else the
    values a plan covers."""
    from hypothesis import strategies as st  # imported when drawing only (--explore)

    if schema.get("type") == "integer" and "minimum" in schema and "maximum" in schema:
        return st.integers(int(schema["minimum"]), int(schema["maximum"]))
    return st.sampled_from(extension_values(schema))


def _field_strategy(spec: ModelSpec, param: str, contract: Contract) -> st.SearchStrategy[Any]:
    """Any valid non-null value of a field for a model (whole ranges, not just the corners)."""
    from hypothesis import strategies as st  # imported when drawing only (--explore)

    if param == "size":
        enum = st.sampled_from(spec.sizes)
        return enum | _custom_sizes_strategy(spec.custom_sizes) if spec.custom_sizes else enum
    if spec.values(param):
        return st.sampled_from(spec.values(param))
    bounds = contract.bounds(param)
    if bounds is not None:
        return st.integers(bounds[0], _model_maximum(spec, contract, param))
    if "boolean" in contract.types(param):
        return st.booleans()
    return st.text(max_size=40)


def _prompts(limit: int) -> st.SearchStrategy[str]:
    from hypothesis import strategies as st  # imported when drawing only (--explore)

    return st.one_of(
        st.just(DEFAULT_PROMPT),
        st.text(min_size=1, max_size=60),
        st.integers(1, limit).map(prompt_of_length),
        st.just(prompt_of_length(limit)),
    )


def valid_requests(model: str, profile: Profile | None = None) -> st.SearchStrategy[dict]:
    """Bodies a conformant server must accept for ``model``: every field the model takes, each
    drawn from its valid values, ``null`` or left out; prompts up to exactly the model's limit
    in mixed scripts; custom sizes inside the safe zone. Fields are drawn in the spec's order
    and a value that would break a cross-field rule of the schema is left out instead."""
    from hypothesis import strategies as st  # imported when drawing only (--explore)

    spec, prof = _spec(model, profile)
    contract = prof.contract
    fields = {
        p: _field_strategy(spec, p, contract)
        for p in OPTIONAL_FIELDS
        if p != "model" and spec.takes(p)
    }
    fields.update(
        {p: _extension_strategy(s) for p, s in spec.extensions.items() if extension_values(s)}
    )

    @st.composite
    def bodies(draw: st.DrawFn) -> dict:
        limit = spec.prompt_max_chars or len(DEFAULT_PROMPT)
        body: dict[str, Any] = {"model": model, "prompt": draw(_prompts(limit))}
        for param, strategy in fields.items():
            value = draw(st.one_of(st.just(OMIT), st.none(), strategy))
            if value is not OMIT and _cross_fields_ok({**body, param: value}):
                body[param] = value
        return body

    return bodies()


def invalid_requests(
    model: str, profile: Profile | None = None
) -> st.SearchStrategy[tuple[dict, str]]:
    """``(body, rule_id)``: a valid body with one rule of the profile broken, for every request
    rule (MUST and SHOULD) that applies to the model and that a body can break alone; each
    rule's breaker is built from its kind of break, its data and the schema."""
    from hypothesis import strategies as st  # imported when drawing only (--explore)

    spec, prof = _spec(model, profile)
    contract = prof.contract
    applicable = {r.id for r in prof.rules().values() if model in r.models}
    options: list[st.SearchStrategy[tuple]] = []
    for rule_id, check in REQUEST_RULES.items():
        builder = _DRAWS.get(check.name)
        rule = contract.rules[rule_id]
        if rule_id not in applicable or builder is None or not _breakable(rule, spec, contract):
            continue
        changes = builder(Breaking(rule, spec, {}, contract))
        if changes is not None:
            options.append(st.tuples(changes, st.just(rule_id)))

    @st.composite
    def bodies(draw: st.DrawFn) -> tuple[dict, str]:
        base = draw(valid_requests(model, prof))
        changes, rule = draw(st.one_of(options))
        return _apply(base, changes), rule

    return bodies()


# Random breakers, by kind of break: each gives a strategy of changes (None: none for the model).


def _one(b: Breaking, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict]:
    return values.map(lambda v: {b.param: v})


def _draw_required(b: Breaking) -> st.SearchStrategy[dict] | None:
    from hypothesis import strategies as st

    return st.just({b.param: OMIT})


def _draw_type(b: Breaking) -> st.SearchStrategy[dict] | None:
    """Values of every JSON type the field's schema does not allow."""
    from hypothesis import strategies as st

    kinds = {
        "integer": st.integers(),
        "boolean": st.booleans(),
        "null": st.none(),
        "string": st.text(max_size=5),
        "number": st.floats(allow_nan=False, allow_infinity=False).filter(
            lambda f: not f.is_integer()
        ),
        "array": st.lists(st.text(), max_size=2),
    }
    allowed = b.contract.types(b.param)
    wrong = [strategy for kind, strategy in kinds.items() if kind not in allowed]
    return _one(b, st.one_of(wrong)) if wrong else None


def _draw_empty(b: Breaking) -> st.SearchStrategy[dict] | None:
    from hypothesis import strategies as st

    return st.just({b.param: ""})


def _draw_max_length(b: Breaking) -> st.SearchStrategy[dict] | None:
    from hypothesis import strategies as st

    limit = b.spec.limit(b.param, "maxLength")
    if limit is None:
        return None
    return _one(b, st.integers(limit + 1, limit + 64).map(prompt_of_length))


def _draw_minimum(b: Breaking) -> st.SearchStrategy[dict] | None:
    from hypothesis import strategies as st

    return _one(b, st.integers(max_value=_integer_bounds(b.contract, b.param)[0] - 1))


def _draw_maximum(b: Breaking) -> st.SearchStrategy[dict] | None:
    from hypothesis import strategies as st

    return _one(b, st.integers(min_value=_integer_bounds(b.contract, b.param)[1] + 1))


def _draw_model_maximum(b: Breaking) -> st.SearchStrategy[dict] | None:
    from hypothesis import strategies as st

    return _one(b, st.integers(min_value=_model_maximum(b.spec, b.contract, b.param) + 1))


def _draw_enum(b: Breaking) -> st.SearchStrategy[dict] | None:
    """Text outside the enum, and the enum's values the model's facts leave out; for a field
    whose values only the models state, also other models' values and numbers (never what the
    model's custom sizes would judge)."""
    from hypothesis import strategies as st

    spec, param = b.spec, b.param
    if param in b.contract.enum_fields:
        allowed = set(b.contract.enum_fields[param])
        text = st.text(max_size=12).filter(lambda v: v not in allowed)
        narrowed = _narrowed_values(b)
        return _one(b, st.one_of(st.sampled_from(narrowed), text) if narrowed else text)
    own = set(spec.values(param))
    foreign = [
        v
        for v in _other_models_values(spec, b.contract, param)
        if not spec.accepts_custom(param, v)
    ]
    text = st.text(max_size=12).filter(lambda v: v not in own and not spec.accepts_custom(param, v))
    choices = [st.sampled_from(foreign)] if foreign else []
    return _one(b, st.one_of(*choices, text, st.integers()))


def _draw_model_enum(b: Breaking) -> st.SearchStrategy[dict] | None:
    from hypothesis import strategies as st

    values = [v for _, changes in _break_model_enum(b) for v in changes.values()]
    return _one(b, st.sampled_from(values)) if values else None


def _draw_custom_size(b: Breaking) -> st.SearchStrategy[dict] | None:
    """The computed examples, and random sizes that break the rule's limit alone."""
    from hypothesis import strategies as st

    custom = b.spec.custom_sizes
    if custom is None:
        return None
    examples = invalid_custom_sizes(custom).get(b.rule.id, ())
    step = custom.multiple_of
    # A side off the step breaks the divisibility limit; the other limits need both sides on
    # the step: draw them there.
    off_step = custom.broken_limit(step + 1, step) == b.rule.limit
    unit = 1 if off_step else step
    sides = st.integers(1, custom.max_edge // unit + 4 * step // unit).map(lambda k: k * unit)
    drawn = (
        st.tuples(sides, sides)
        .filter(lambda wh: custom.broken_limit(*wh) == b.rule.limit)
        .map(lambda wh: f"{wh[0]}x{wh[1]}")
    )
    return _one(b, st.one_of(st.sampled_from(list(examples)), drawn) if examples else drawn)


def _draw_range(b: Breaking) -> st.SearchStrategy[dict] | None:
    """Out of range, with the rule's first context and what lets the field be set."""
    from hypothesis import strategies as st

    low, high = _integer_bounds(b.contract, b.param)
    outside = st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1))
    template = b.changes(b.rule.contexts[0], None)
    enablers = {}
    for cross in _crossings(b.contract, b.param):
        for field in cross.when:
            allowed = [v for v in b.spec.values(field) if cross.holds({field: v, b.param: high})]
            enablers[field] = st.sampled_from(allowed)

    def fill(drawn: tuple[Any, ...]) -> dict:
        *chosen, value = drawn
        return {**template, **dict(zip(enablers, chosen, strict=True)), b.param: value}

    return st.tuples(*enablers.values(), outside).map(fill)


def _draw_requires(b: Breaking) -> st.SearchStrategy[dict] | None:
    """The fixed breakers when the rule's field is the one the ``if`` looks at; else any
    trigger of the ``if`` (left out and null included) with any valid value of the field."""
    from hypothesis import strategies as st

    cross = b.contract.cross_field(b.rule.id)
    if b.param in cross.when:
        fixed = _requires_changes(b, cross)
        return st.sampled_from(fixed) if fixed else None
    bounds = _integer_bounds(b.contract, b.param)
    clear = dict.fromkeys(b.rule.clear, OMIT)
    parts = []
    for field in cross.when:
        values = [*b.contract.enum_fields.get(field, ()), None, OMIT]
        triggers = st.sampled_from(_triggers(cross, field, values))
        parts.append(
            st.tuples(triggers, st.integers(*bounds)).map(
                lambda tv, field=field: {field: tv[0], b.param: tv[1], **clear}
            )
        )
    return st.one_of(parts) if parts else None


def _draw_unknown_field(b: Breaking) -> st.SearchStrategy[dict] | None:
    from hypothesis import strategies as st

    known = set(b.contract.request_fields)
    return st.tuples(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in known),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    ).map(lambda kv: {kv[0]: kv[1]})


_DRAWS = {
    "required": _draw_required,
    "type": _draw_type,
    "empty": _draw_empty,
    "max_length": _draw_max_length,
    "minimum": _draw_minimum,
    "maximum": _draw_maximum,
    "model_maximum": _draw_model_maximum,
    "enum": _draw_enum,
    "model_enum": _draw_model_enum,
    "custom_size": _draw_custom_size,
    "range": _draw_range,
    "requires": _draw_requires,
    "unknown_field": _draw_unknown_field,
}


# --- exploration: drawing from the strategies, reproducibly ------------------------------------

#: Bytes read at a time from the drawing interpreter's lines, and how long to wait when it has
#: written nothing new.
EXPLORE_READ = 1 << 20
EXPLORE_POLL = 0.02

#: Examples drawn per Hypothesis run (see :func:`draw_each`): what bounds the engine's record
#: of the run, which holds every prompt drawn in it.
DRAW_RUN = 100

#: Bodies per line of the drawing interpreter's output: what a run holds of a model's drawn
#: cases at once. A prompt may be 32,000 characters (128 KB as a Python string with one
#: character beyond the BMP): a line of 200 of gpt-image-1's took 16 MB to read into cases.
EXPLORE_LINE = 50

#: What the fresh interpreter of :func:`explore_stream` runs: the request on stdin; on stdout, a
#: model's bodies as they are drawn, EXPLORE_LINE to a line (JSON, UTF-8: the model, the bodies,
#: the number of the first).
_EXPLORE_CHILD = """\
import json, sys
request = json.load(sys.stdin)
if request["package_root"] not in sys.path:
    sys.path.append(request["package_root"])
from conformance.generation.strategies import write_explore_lines
write_explore_lines(request, sys.stdout.buffer)
"""


def draw_examples(
    strategy: st.SearchStrategy[Any], *, seed: Hashable, count: int, exclude: Iterable[str] = ()
) -> list[Any]:
    """``count`` distinct examples of ``strategy``, none whose :func:`body_key` is in
    ``exclude``: the same ones for the same ``seed`` in the same interpreter state.
    Fewer come back only when the strategy runs out of new values (see :func:`draw_each`)."""
    drawn: list[Any] = []
    draw_each(strategy, drawn.append, seed=seed, count=count, exclude=exclude)
    return drawn


def draw_each(
    strategy: st.SearchStrategy[Any],
    keep: Callable[[Any], object],
    *,
    seed: Hashable,
    count: int,
    exclude: Iterable[str] = (),
) -> set[str]:
    """Hand ``keep`` the examples of :func:`draw_examples` one at a time, as they are drawn (so
    that the caller need not hold them all); the digests of those kept and of ``exclude`` come
    back.

    Hypothesis's own engine draws them, through its public API: a ``@given`` function under
    ``@seed`` that only collects what it is given, and ``assume``-s away repeats (Hypothesis
    often draws equal values through different choices; a repeat does not count as an example).
    Only the generate phase runs, with no database and no health checks, so nothing is replayed,
    shrunk or remembered between runs. ``strategy.example()`` would not do: it is random on
    purpose.

    The examples come from runs of at most :data:`DRAW_RUN`, each under a seed of its own
    (``seed`` for the first, then ``seed#1``, ``seed#2``...). Hypothesis keeps a record of
    every choice a run makes, the prompts included, until the run ends: a run of hundreds of
    32,000-character prompts holds tens of megabytes. Drawing stops at ``count``, or after a
    run that found nothing new (the strategy has run out of values).
    """
    seen = set(exclude)
    kept = 0
    run = 0
    while kept < count:
        found = _draw_run(
            strategy,
            keep,
            seed=seed if run == 0 else f"{seed}#{run}",
            count=min(DRAW_RUN, count - kept),
            seen=seen,
        )
        if not found:
            break
        kept += found
        run += 1
    return seen


def _draw_run(
    strategy: st.SearchStrategy[Any],
    keep: Callable[[Any], object],
    *,
    seed: Hashable,
    count: int,
    seen: set[str],
) -> int:
    """One Hypothesis run of :func:`draw_each`: up to ``count`` examples not in ``seen`` (which
    grows by them) handed to ``keep``; how many."""
    import hypothesis  # only when drawing: a run without --explore never imports it

    kept = 0

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=count,
        phases=[hypothesis.Phase.generate],
        database=None,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(hypothesis.HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
        print_blob=False,
    )
    @hypothesis.given(strategy)
    def collect(example: Any) -> None:
        nonlocal kept
        key = body_key(example)
        hypothesis.assume(key not in seen)
        seen.add(key)
        if kept < count:
            kept += 1
            keep(example)

    with contextlib.suppress(hypothesis.errors.Unsatisfiable):  # every value drawn was seen
        collect()
    # The engine's record of the run is held in reference cycles: freed now, not whenever the
    # collector next looks at the oldest generation.
    gc.collect()
    return kept


def explore_requests(
    models: Sequence[str],
    profile: Profile,
    *,
    seed: int,
    count: int,
    exclude: Iterable[Any] = (),
) -> dict[str, list[Any]]:
    """For each model, ``count`` bodies for ``--explore``: half (rounded up) from
    :func:`valid_requests`, the rest from :func:`invalid_requests`, alternately, valid first;
    all distinct and none equal to a body in ``exclude``. The invalid ones come without their
    label: the caller asks :func:`conformance.contract.oracle.request_violations`, as for any body.

    Hypothesis starts each half with its simplest example (a bare valid request; the bare request
    with one rule broken), whatever the seed, unless ``exclude`` has it; the rest follow the seed.
    The same seed, models, profile and ``exclude`` give the same bodies, whichever process asks:
    they are drawn in a fresh interpreter (see :func:`explore_stream`).
    """
    drawn: dict[str, list[Any]] = {}
    for model, bodies, _ in explore_stream(
        models, profile, seed=seed, count=count, exclude=exclude
    ):
        drawn.setdefault(model, []).extend(bodies)
    return drawn


def explore_stream(
    models: Sequence[str],
    profile: Profile,
    *,
    seed: int,
    count: int,
    exclude: Iterable[Any] = (),
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> Iterator[tuple[str, list[Any], int]]:
    """The bodies of :func:`explore_requests`, model by model as each is drawn, at most
    :data:`EXPLORE_LINE` at a time with the number of the first, so that a run sends the ones
    it has while the next are drawn, and never holds all of them at once.
    ``started`` is handed the drawing process (to end it from another thread).

    They are drawn in a fresh interpreter, which writes its lines of JSON to a temporary file
    as fast as it draws, and ends: it does not wait on the reader, so its memory is not added to
    the run's for the whole run, only while it draws. The lines are read from the file as they
    come (:func:`_lines_written`). Drawn in the asking process,
    they would not be the same: Hypothesis sometimes offers constants found in the source of the
    modules that process has imported, so ``imgconf run`` (which has imported the runner and the
    reference server by then) would draw other bodies than ``imgconf plan`` for the same seed.
    Closing the iterator early stops the drawing.
    """
    request = {
        "profile": str(profile.file) if profile.file else profile.name,
        "models": list(models),
        "seed": seed,
        "count": count,
        "exclude": sorted({body_key(body) for body in exclude}),
        "package_root": str(Path(__file__).resolve().parents[2]),
    }
    # Hypothesis caches its Unicode tables (a second's work) under its storage directory, by
    # default ``.hypothesis`` in the working directory: the user's cache directory keeps them
    # out of the user's tree. What is stored there does not change what is drawn.
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "HYPOTHESIS_STORAGE_DIRECTORY": str(cache / "imgconf" / "hypothesis"),
    }
    with tempfile.TemporaryFile() as errors, tempfile.TemporaryFile() as lines:
        child = subprocess.Popen(
            [sys.executable, "-P", "-c", _EXPLORE_CHILD],
            stdin=subprocess.PIPE,
            stdout=lines,
            stderr=errors,
            env=env,
        )
        if started is not None:
            started(child)
        try:
            assert child.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                child.stdin.write(json.dumps(request).encode())
                child.stdin.close()
            drawn: set[str] = set()
            for line in _lines_written(lines.fileno(), child):
                model, bodies, first = json.loads(line)
                drawn.add(model)
                yield model, bodies, first
            code = child.wait()
            if code != 0 or drawn != set(models):
                errors.seek(0)
                text = errors.read().decode("utf-8", "replace").strip()
                last = (text.splitlines() or [f"exit status {code}"])[-1]
                raise SetupError(f"--explore: drawing the cases failed: {last}")
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stdin is not None:
                child.stdin.close()


def _lines_written(fd: int, writer: subprocess.Popen[bytes]) -> Iterator[bytes]:
    """Each whole line of the file at ``fd`` as ``writer`` appends it, until ``writer`` has
    ended and all it wrote is read. The file is read at offsets of its own (``pread``), so the
    writer's offset, which it shares, is never moved."""
    offset, pending = 0, bytearray()
    while True:
        ended = writer.poll() is not None  # before reading: what it wrote by then is all
        chunk = os.pread(fd, EXPLORE_READ, offset)
        if chunk:
            offset += len(chunk)
            pending += chunk
            start = 0
            while (end := pending.find(b"\n", start)) >= 0:
                yield bytes(pending[start:end])
                start = end + 1
            del pending[:start]
        elif ended:
            return
        else:
            time.sleep(EXPLORE_POLL)


def write_explore_lines(request: Mapping[str, Any], out: BinaryIO) -> None:
    """The drawing behind :func:`explore_stream`, in this interpreter (a fresh one there): each
    model's bodies, valid and invalid alternately, written to ``out`` as lines of
    :data:`EXPLORE_LINE`.

    Each model and half has a seed of its own, so one model's draws do not depend on which
    other models are in the plan. The valid half is drawn first (the invalid half must not
    repeat it); it waits in a temporary file, encoded, and each line goes out as soon as the
    invalid bodies it needs are drawn. So this interpreter holds a line of bodies at most, not a
    model's (a prompt may be 32,000 characters: 857 of them are tens of megabytes).
    """
    profile = load_profile(request["profile"])
    seen = set(request["exclude"])
    for model in request["models"]:
        line = _ExploreLine(model, out)
        seen = _write_model(model, profile, request["seed"], request["count"], seen, line)
        line.end()


def _write_model(
    model: str, profile: Profile, seed: int, count: int, seen: set[str], line: _ExploreLine
) -> set[str]:
    """One model's half and half into ``line``; the digests seen so far come back."""
    with tempfile.TemporaryFile() as valid:
        seen = draw_each(
            valid_requests(model, profile),
            lambda body: valid.write(_encoded(body) + b"\n"),
            seed=f"imgconf-explore:{seed}:{model}:valid",
            count=(count + 1) // 2,
            exclude=seen,
        )
        valid.seek(0)

        def pair(invalid: Any) -> None:
            line.add(valid.readline().rstrip(b"\n"))  # empty once the valid half ran out
            line.add(_encoded(invalid))

        seen = draw_each(
            invalid_requests(model, profile).map(lambda labelled: labelled[0]),
            pair,
            seed=f"imgconf-explore:{seed}:{model}:invalid",
            count=count // 2,
            exclude=seen,
        )
        for rest in valid:
            line.add(rest.rstrip(b"\n"))
    return seen


def _encoded(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


class _ExploreLine:
    """One model's bodies (each already JSON), written to ``out`` as they come,
    :data:`EXPLORE_LINE` to a line: ``[model, [body, ...], number of the first]``. A model with
    none still gets one line. (The reader takes whole lines; nothing is held here.)"""

    def __init__(self, model: str, out: BinaryIO) -> None:
        self._head = b"[" + _encoded(model) + b", ["
        self._out = out
        self._first = 1
        self._in_line = 0

    def add(self, body: bytes) -> None:
        if not body:
            return
        self._out.write(b", " if self._in_line else self._head)
        self._out.write(body)
        self._in_line += 1
        if self._in_line == EXPLORE_LINE:
            self._end_line()

    def end(self) -> None:
        """End the open line; a model with nothing drawn gets its one, empty."""
        nothing = self._first == 1 and not self._in_line
        if nothing:
            self._out.write(self._head)
        if nothing or self._in_line:
            self._end_line()

    def _end_line(self) -> None:
        self._out.write(b"], " + str(self._first).encode() + b"]\n")
        self._out.flush()
        self._first += self._in_line
        self._in_line = 0


def body_key(body: Any) -> str:
    """Equal for equal bodies, and tells ``true`` from ``1`` (as JSON does): a digest of the
    body's JSON, so that what drawing remembers of the thousands of bodies it has seen is not
    their prompts."""
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
