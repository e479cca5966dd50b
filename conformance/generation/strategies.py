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
  seed gives the same bodies. Drawing happens while the plan is built and sending happens later,
  in the runner: no Hypothesis loop ever sends a request, so none can shrink, retry or spend
  beyond the plan's budget.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contract.loader import (
    OPTIONAL_FIELDS,
    Contract,
    ContractError,
    CustomSizes,
    ModelSpec,
    load_contract,
)
from ..errors import SetupError

if TYPE_CHECKING:
    from hypothesis import strategies as st
from ..contract.profiles import Profile, load_profile

__all__ = [
    "DEFAULT_PROMPT",
    "OMIT",
    "UNKNOWN_FIELD",
    "Variant",
    "body_key",
    "custom_size_corners",
    "custom_size_examples",
    "draw_examples",
    "explore_here",
    "explore_requests",
    "feature_used",
    "features_used",
    "invalid_custom_sizes",
    "invalid_requests",
    "invalid_variants",
    "param_values",
    "prompt_of_length",
    "unsupported_param_variants",
    "valid_requests",
]

#: A harmless prompt, short so that invalid cases stay small.
DEFAULT_PROMPT = "A small red circle centred on a plain white background"
#: A field name no version of the API knows.
UNKNOWN_FIELD = "imgconf_unknown_field"


class _Omit:
    """Marks a field left out of the body (as opposed to sent as ``null``)."""

    _instance: _Omit | None = None

    def __new__(cls) -> _Omit:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "OMIT"


OMIT = _Omit()

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


def _bounds(contract: Contract, param: str) -> tuple[int, int] | None:
    """``(minimum, maximum)`` of an integer request field from the schema; None for the rest."""
    schema = contract.request_fields[param]
    for branch in (schema, *schema.get("anyOf", ())):
        if branch.get("type") == "integer" and "minimum" in branch and "maximum" in branch:
            return int(branch["minimum"]), int(branch["maximum"])
    return None


def _integer_bounds(contract: Contract, param: str) -> tuple[int, int]:
    """The bounds of a field the contract gives bounds (n, output_compression, partial_images)."""
    bounds = _bounds(contract, param)
    if bounds is None:
        raise ContractError(f"the request schema gives no integer bounds for {param!r}")
    return bounds


def _types(contract: Contract, param: str) -> set[str]:
    schema = contract.request_fields[param]
    out: set[str] = set()
    for branch in (schema, *schema.get("anyOf", ())):
        kind = branch.get("type")
        out.update([kind] if isinstance(kind, str) else kind or ())
    return out


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
    out: dict[str, list[str]] = {}
    for width, height in candidates:
        rule = custom.broken_rule(width, height)
        if rule is not None:
            out.setdefault(rule, []).append(f"{width}x{height}")
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
        elif (bounds := _bounds(contract, param)) is not None:
            low, high = bounds
            if param == "n":
                high = spec.n_max
            out[param] = tuple(range(low, high + 1)) if high - low <= 4 else (low, high)
        elif "boolean" in _types(contract, param):
            out[param] = (False, True)
        else:
            out[param] = ("imgconf-conformance",)
    return out


# --- cross-field rules of the schema -------------------------------------------------------


@cache
def _cross_field_validators() -> tuple[Any, ...]:
    """One validator per cross-field rule of the request schema (the top-level ``allOf`` entries
    that are plain references, e.g. transparent needs png or webp)."""
    from jsonschema import Draft202012Validator

    root = load_contract().schemas["request"]
    out = []
    for entry in root.get("allOf", ()):
        ref = entry.get("$ref") if set(entry) == {"$ref"} else None
        if ref and ref.startswith("#/$defs/"):
            out.append(Draft202012Validator(root["$defs"][ref.removeprefix("#/$defs/")]))
    return tuple(out)


def _cross_fields_ok(body: Mapping[str, Any]) -> bool:
    return all(v.is_valid(body) for v in _cross_field_validators())


def _first_allowed(body: dict[str, Any], param: str, candidates: Sequence[Any]) -> Any:
    """The first candidate that keeps ``body`` within the schema's cross-field rules."""
    for value in candidates:
        if _cross_fields_ok({**body, param: value}):
            return value
    return OMIT


# --- features a vendor may not offer -----------------------------------------------------------


def feature_used(feature: str, body: Any, spec: ModelSpec | None) -> bool:
    """Does a request use a feature named in ``features:`` of ``rules.yaml``?

    ``param`` alone: any value but null and ``false``; ``param=value``: that value;
    ``size=custom``: a size outside the model's enum; ``param>N``: a number above N.
    """
    if not isinstance(body, Mapping):
        return False
    if ">" in feature:
        param, limit = feature.split(">", 1)
        value = body.get(param)
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and value > float(limit)
        )
    if "=" in feature:
        param, wanted = feature.split("=", 1)
        value = body.get(param)
        if wanted == "custom":
            return isinstance(value, str) and spec is not None and value not in spec.sizes
        return value == wanted
    value = body.get(feature)
    return value is not None and value is not False


def features_used(
    body: Any, spec: ModelSpec | None, features: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The features (all of the contract's, or those given) that a request uses."""
    names = features if features is not None else tuple(load_contract().features)
    return tuple(f for f in names if feature_used(f, body, spec))


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
        if other in (param, "size"):
            continue
        out.extend(v for v in values if v not in own and v not in out)
    foreign = out[:1]
    upper = contract.enum_fields[param][0].upper()
    if upper not in own:
        foreign.append(upper)
    return foreign


def _lossy_format(spec: ModelSpec, body: dict[str, Any], compression: int) -> Any:
    """An output format that takes ``output_compression`` within the body's other fields."""
    return _first_allowed(
        {**body, "output_compression": compression},
        "output_format",
        spec.values("output_format"),
    )


def invalid_variants(
    spec: ModelSpec, base: Mapping[str, Any], rules: Sequence[str], contract: Contract | None = None
) -> list[Variant]:
    """Bodies that each break one rule of ``rules`` on top of a valid ``base`` body.

    Candidates for every request rule a body can break; the planner keeps those that break their
    rule and nothing else (it asks :func:`request_violations`). Titles are short and stable.
    """
    contract = contract or load_contract()
    wanted = set(rules)
    base = dict(base)
    out: list[Variant] = []

    def add(rule: str, title: str, **changes: Any) -> None:
        if rule not in wanted:
            return
        body = {**base, **{k: v for k, v in changes.items() if v is not OMIT}}
        for key, value in changes.items():
            if value is OMIT:
                body.pop(key, None)
        out.append(Variant(rule, title, body))

    limit = spec.prompt_max_chars
    add("request.prompt.required", "prompt missing", prompt=OMIT)
    for value in (42, [DEFAULT_PROMPT], None):
        add("request.prompt.type", f"prompt={_short(value)}", prompt=value)
    add("request.prompt.max_length", f"prompt {limit + 1} chars ascii", prompt=_ascii(limit + 1))
    add(
        "request.prompt.max_length",
        f"prompt {limit + 1} chars mixed scripts",
        prompt=prompt_of_length(limit + 1),
    )
    add("request.prompt.empty", "prompt empty", prompt="")

    n_low, n_high = _integer_bounds(contract, "n")
    for value in ("1", 1.5, True):
        add("request.n.type", f"n={_short(value)}", n=value)
    for value in (n_low - 1, n_low - 2):
        add("request.n.min", f"n={value}", n=value)
    for value in sorted({spec.n_max + 1, n_high + 1}):
        add(f"request.n.max.{spec.name}", f"n={value}", n=value)
        add("request.n.max", f"n={value}", n=value)

    foreign_sizes = [
        s for m in contract.models.values() for s in m.sizes if s not in spec.sizes and s != "auto"
    ]
    for value in [*dict.fromkeys(foreign_sizes), "1024", "1024X1024", "big", 1024]:
        add("request.size.enum", f"size={_short(value)}", size=value)
    if spec.custom_sizes is not None:
        for rule, sizes in invalid_custom_sizes(spec.custom_sizes).items():
            for size in sizes:
                add(rule, f"size={size}", size=size)

    for param in contract.enum_fields:
        if param == "size" or not spec.takes(param):
            continue
        for value in _foreign_enum_values(contract, param):
            add(f"request.{param}.enum", f"{param}={_short(value)}", **{param: value})
    foreign_quality = [q for q in contract.enum_fields["quality"] if q not in spec.qualities]
    for value in foreign_quality:
        add("request.quality.model", f"quality={value}", quality=value)

    for value in ("true", 1):
        add("request.stream.type", f"stream={_short(value)}", stream=value)
    if spec.takes("output_compression"):
        low, high = _integer_bounds(contract, "output_compression")
        fmt = _lossy_format(spec, base, high)
        for value in (low - 1, high + 1, (low + high) / 2 + 0.5):
            add(
                "request.output_compression.range",
                f"output_format={fmt}, output_compression={value}",
                output_format=fmt,
                output_compression=value,
            )
        for fmt in (*spec.values("output_format")[:1], OMIT):
            title = "output_format omitted" if fmt is OMIT else f"output_format={fmt}"
            add(
                "request.output_compression.png",
                f"{title}, output_compression={high}",
                output_format=fmt,
                output_compression=high,
            )
    if spec.takes("partial_images"):
        low, high = _integer_bounds(contract, "partial_images")
        for value in (low - 1, high + 1):
            add(
                "request.partial_images.range",
                f"stream=true, partial_images={value}",
                stream=True,
                partial_images=value,
            )
        # Without stream too: a server may check the range only on the streaming path.
        for value in (low - 1, high + 1):
            add("request.partial_images.range", f"partial_images={value}", partial_images=value)
    if spec.takes("background"):
        transparent, jpeg = "transparent", "jpeg"
        if transparent in spec.values("background") and jpeg in spec.values("output_format"):
            add(
                "request.background.transparent_jpeg",
                "background=transparent, output_format=jpeg",
                background=transparent,
                output_format=jpeg,
                output_compression=OMIT,
            )
    add("request.unknown_field", f"{UNKNOWN_FIELD}=true", **{UNKNOWN_FIELD: True})
    return out


def unsupported_param_variants(
    spec: ModelSpec, base: Mapping[str, Any], contract: Contract | None = None
) -> list[Variant]:
    """One body per field the model does not take, with a value another model takes."""
    contract = contract or load_contract()
    out = []
    for param in OPTIONAL_FIELDS:
        if param in ("model", "user") or spec.takes(param):
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
            out.append(Variant("request.unsupported_param", title, body))
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
    contract = load_contract()
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


def _field_strategy(spec: ModelSpec, param: str, contract: Contract) -> st.SearchStrategy[Any]:
    """Any valid non-null value of a field for a model (whole ranges, not just the corners)."""
    from hypothesis import strategies as st  # imported when drawing only (--explore)

    if param == "size":
        enum = st.sampled_from(spec.sizes)
        return enum | _custom_sizes_strategy(spec.custom_sizes) if spec.custom_sizes else enum
    if spec.values(param):
        return st.sampled_from(spec.values(param))
    bounds = _bounds(contract, param)
    if bounds is not None:
        return st.integers(bounds[0], spec.n_max if param == "n" else bounds[1])
    if "boolean" in _types(contract, param):
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

    spec, _ = _spec(model, profile)
    contract = load_contract()
    fields = {
        p: _field_strategy(spec, p, contract)
        for p in OPTIONAL_FIELDS
        if p != "model" and spec.takes(p)
    }

    @st.composite
    def bodies(draw: st.DrawFn) -> dict:
        body: dict[str, Any] = {"model": model, "prompt": draw(_prompts(spec.prompt_max_chars))}
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
    rule (MUST and SHOULD) that applies to the model and that a body can break alone."""
    from hypothesis import strategies as st  # imported when drawing only (--explore)

    spec, prof = _spec(model, profile)
    contract = load_contract()
    applicable = {r.id for r in prof.rules().values() if model in r.models}
    n_low, n_high = _integer_bounds(contract, "n")
    global_fields = set(contract.request_fields)

    def breaker(rule: str, changes: st.SearchStrategy[dict]) -> st.SearchStrategy[tuple]:
        return st.tuples(changes, st.just(rule))

    options: list[st.SearchStrategy[tuple]] = []

    def option(rule: str, changes: st.SearchStrategy[dict]) -> None:
        if rule in applicable:
            options.append(breaker(rule, changes))

    limit = spec.prompt_max_chars
    option("request.prompt.required", st.just({"prompt": OMIT}))
    not_text = st.one_of(st.integers(), st.booleans(), st.none(), st.lists(st.text(), max_size=2))
    option("request.prompt.type", not_text.map(lambda v: {"prompt": v}))
    option(
        "request.prompt.max_length",
        st.integers(limit + 1, limit + 64).map(lambda k: {"prompt": prompt_of_length(k)}),
    )
    option("request.prompt.empty", st.just({"prompt": ""}))
    not_integer = st.one_of(
        st.text(max_size=5),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    )
    option("request.n.type", not_integer.map(lambda v: {"n": v}))
    option("request.n.min", st.integers(max_value=n_low - 1).map(lambda v: {"n": v}))
    option("request.n.max", st.integers(min_value=n_high + 1).map(lambda v: {"n": v}))
    option(
        f"request.n.max.{model}",
        st.integers(min_value=spec.n_max + 1).map(lambda v: {"n": v}),
    )
    foreign = [s for m in contract.models.values() for s in m.sizes if s not in spec.sizes]
    bad_sizes = st.one_of(
        st.sampled_from(sorted(set(foreign) - {"auto"}) or ["big"]),
        st.text(max_size=12).filter(lambda s: s not in spec.sizes and "x" not in s),
        st.integers(),
    )
    if spec.custom_sizes is None:
        option("request.size.enum", bad_sizes.map(lambda v: {"size": v}))
    else:
        option(
            "request.size.enum",
            st.one_of(
                st.text(max_size=12).filter(lambda s: s not in spec.sizes and "x" not in s),
                st.integers(),
            ).map(lambda v: {"size": v}),
        )
        for rule, sizes in invalid_custom_sizes(spec.custom_sizes).items():
            option(rule, _broken_custom(spec.custom_sizes, rule, sizes))
    for param in contract.enum_fields:
        if param == "size" or not spec.takes(param):
            continue
        allowed = set(contract.enum_fields[param])
        option(
            f"request.{param}.enum",
            st.text(max_size=12)
            .filter(lambda v, allowed=allowed: v not in allowed)
            .map(lambda v, param=param: {param: v}),
        )
    foreign_quality = [q for q in contract.enum_fields["quality"] if q not in spec.qualities]
    if foreign_quality:
        option(
            "request.quality.model",
            st.sampled_from(foreign_quality).map(lambda v: {"quality": v}),
        )
    option(
        "request.stream.type",
        st.one_of(st.text(max_size=5), st.integers()).map(lambda v: {"stream": v}),
    )
    if spec.takes("output_compression"):
        low, high = _integer_bounds(contract, "output_compression")
        lossy = [f for f in spec.values("output_format") if f != "png"]
        out_of_range = st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1))
        option(
            "request.output_compression.range",
            st.tuples(st.sampled_from(lossy), out_of_range).map(
                lambda fv: {
                    "output_format": fv[0],
                    "output_compression": fv[1],
                    "background": OMIT,
                }
            ),
        )
        option(
            "request.output_compression.png",
            st.tuples(st.sampled_from(["png", None, OMIT]), st.integers(low, high)).map(
                lambda fv: {"output_format": fv[0], "output_compression": fv[1]}
            ),
        )
    if spec.takes("partial_images"):
        low, high = _integer_bounds(contract, "partial_images")
        option(
            "request.partial_images.range",
            st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)).map(
                lambda v: {"stream": True, "partial_images": v}
            ),
        )
    if spec.takes("background") and "transparent" in spec.values("background"):
        option(
            "request.background.transparent_jpeg",
            st.just(
                {"background": "transparent", "output_format": "jpeg", "output_compression": OMIT}
            ),
        )
    option(
        "request.unknown_field",
        st.tuples(
            st.text(min_size=1, max_size=12).filter(lambda k: k not in global_fields),
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
        ).map(lambda kv: {kv[0]: kv[1]}),
    )

    @st.composite
    def bodies(draw: st.DrawFn) -> tuple[dict, str]:
        base = draw(valid_requests(model, prof))
        changes, rule = draw(st.one_of(options))
        body = dict(base)
        for key, value in changes.items():
            if value is OMIT:
                body.pop(key, None)
            else:
                body[key] = value
        return body, rule

    return bodies()


def _broken_custom(custom: CustomSizes, rule: str, examples: Sequence[str]) -> st.SearchStrategy:
    """Custom sizes that break ``rule`` alone: the computed examples, and random ones."""
    from hypothesis import strategies as st  # imported when drawing only (--explore)

    step = custom.multiple_of
    # Aspect and maximum breaks need both sides on the step: draw them there.
    unit = 1 if rule == "request.size.custom.divisible" else step
    sides = st.integers(1, custom.max_edge // unit + 4 * step // unit).map(lambda k: k * unit)
    drawn = (
        st.tuples(sides, sides)
        .filter(lambda wh: custom.broken_rule(*wh) == rule)
        .map(lambda wh: f"{wh[0]}x{wh[1]}")
    )
    return st.one_of(st.sampled_from(list(examples)), drawn).map(lambda s: {"size": s})


# --- exploration: drawing from the strategies, reproducibly ------------------------------------

#: What the fresh interpreter of :func:`explore_requests` runs: the request on stdin, the bodies
#: on stdout (JSON both ways).
_EXPLORE_CHILD = """\
import json, sys
request = json.load(sys.stdin)
if request["package_root"] not in sys.path:
    sys.path.append(request["package_root"])
from conformance.generation.strategies import explore_here
json.dump(explore_here(request), sys.stdout)
"""


def draw_examples(
    strategy: st.SearchStrategy[Any], *, seed: Hashable, count: int, exclude: Iterable[str] = ()
) -> list[Any]:
    """``count`` distinct examples of ``strategy``, none whose :func:`body_key` is in
    ``exclude``: the same ones for the same ``seed`` in the same interpreter state.

    Hypothesis's own engine draws them, through its public API: a ``@given`` function under
    ``@seed`` that only collects what it is given, and ``assume``-s away repeats (Hypothesis
    often draws equal values through different choices; a repeat does not count as an example).
    Only the generate phase runs, with no database and no health checks, so nothing is replayed,
    shrunk or remembered between runs. ``strategy.example()`` would not do: it is random on
    purpose. Fewer come back only when the strategy runs out of new values.
    """
    import hypothesis  # only when drawing: a run without --explore never imports it

    if count <= 0:
        return []
    drawn: list[Any] = []
    seen = set(exclude)

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
        key = body_key(example)
        hypothesis.assume(key not in seen)
        seen.add(key)
        drawn.append(example)

    collect()
    return drawn[:count]


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
    they are drawn in a fresh interpreter (see :func:`explore_here`). Drawn in the asking
    process, they would not be: Hypothesis sometimes offers constants found in the source of the
    modules that process has imported, so ``imgconf run`` (which has imported the runner and the
    reference server by then) would draw other bodies than ``imgconf plan`` for the same seed.
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
    done = subprocess.run(
        [sys.executable, "-P", "-c", _EXPLORE_CHILD],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise SetupError(f"--explore: drawing the cases failed: {last}")
    return json.loads(done.stdout)


def explore_here(request: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The drawing behind :func:`explore_requests`, in this interpreter (a fresh one there).

    Each model and half has a seed of its own, so one model's draws do not depend on which
    other models are in the plan.
    """
    profile = load_profile(request["profile"])
    seed, count = request["seed"], request["count"]
    seen = set(request["exclude"])
    out: dict[str, list[Any]] = {}
    for model in request["models"]:
        valid = draw_examples(
            valid_requests(model, profile),
            seed=f"imgconf-explore:{seed}:{model}:valid",
            count=(count + 1) // 2,
            exclude=seen,
        )
        seen.update(map(body_key, valid))
        invalid = draw_examples(
            invalid_requests(model, profile).map(lambda labelled: labelled[0]),
            seed=f"imgconf-explore:{seed}:{model}:invalid",
            count=count // 2,
            exclude=seen,
        )
        seen.update(map(body_key, invalid))
        pairs = zip_longest(valid, invalid)  # bodies are objects: None only fills the shorter
        out[model] = [body for pair in pairs for body in pair if body is not None]
    return out


def body_key(body: Any) -> str:
    """Equal for equal bodies, and tells ``true`` from ``1`` (as JSON does)."""
    return json.dumps(body, sort_keys=True, ensure_ascii=False, default=repr)
