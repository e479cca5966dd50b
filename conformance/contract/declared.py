"""Models a profile declares: parsed, checked and compiled into the contract's own shape.

A profile's ``models:`` lists contract models by name, models ``like:`` a contract model with
overrides (``{name: my-dalle, like: dall-e-2, sizes: [...]}``), and models from scratch, each
fact (:data:`FACTS`) written as its value or as ``{value, level, evidence, observed}`` (README:
"Testing a vendor that is not OpenAI"). Each declared model is compiled into the same
``$defs/model.<name>`` fragment (with its ``x-imgconf-model`` capabilities) that the request
schema holds for OpenAI's models, and its :class:`~conformance.contract.loader.ModelSpec` is
built by the loader's own code, so everything downstream judges a declared model exactly like a
contract one.

Rules name the contract's models; which rules hold for a declared model follows from the facts it
declares (a rule's ``declared:`` in ``rules.yaml``), at the level of the fact that implies it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .levels import Level
from .loader import (
    LEVELS,
    MODEL_FACTS,
    OPTIONAL_FIELDS,
    SERVER_CHOICE,
    Contract,
    CustomSizes,
    ModelSpec,
    Rule,
    model_spec,
    parse_wxh,
)

__all__ = ["DeclarationError", "DeclaredModel", "Fact", "extend_contract", "parse_models"]

#: The facts a declaration may state, in the order they are checked.
FACTS = MODEL_FACTS
KEYS = ("name", "like", "source", "family", *FACTS)
#: The keys of a fact written with its level and evidence.
FACT_KEYS = frozenset({"value", "level", "evidence", "observed"})
#: Standard fields a declaration names in ``takes``, ``ignores`` and ``refuses``.
STANDARD = tuple(f for f in OPTIONAL_FIELDS if f != "model")
#: The fact that makes a model take each standard field (the rest: ``takes``).
TAKEN_BY = {
    "n": "n",
    "size": "sizes",
    "quality": "qualities",
    "output_format": "output_formats",
    "response_format": "response_formats",
    "output_compression": "output_compression",
    "stream": "stream",
    "partial_images": "stream",
    "background": "background",
}
#: The fields of answer formats, and the facts that list them (the first is the default).
FORMATS = (("output_format", "output_formats"), ("response_format", "response_formats"))
#: The keys of a ``WxH`` size rule (``sizes: {wxh: ...}``).
WXH_KEYS = ("multiple_of", "min_edge", "max_edge", "max_aspect", "max_pixels")
#: Where a price per image stands in a price table: any quality, any size.
ANY = "*"
WXH_PATTERN = "^[1-9][0-9]*x[1-9][0-9]*$"


class DeclarationError(ValueError):
    """A broken declaration; the message starts with the field (``models[0].n.max ...``)."""


@dataclass(frozen=True)
class Fact:
    """One declared fact: its value, its level (MUST unless marked SHOULD) and evidence."""

    value: Any
    level: Level = Level.MUST
    evidence: str | None = None
    observed: str | None = None


@dataclass(frozen=True)
class DeclaredModel:
    """A model of the profile's own: its facts, the schema fragment they compile to, its price."""

    name: str
    like: str | None
    source: str
    facts: Mapping[str, Fact]
    definition: Mapping[str, Any]
    price_per_image: float | None = None
    price_source: str = ""

    def level_of(self, condition: str | tuple[str, ...], spec: ModelSpec) -> Level | None:
        """The level of the fact behind a rule with ``declared: condition`` (a SHOULD fact makes
        a MUST rule SHOULD for the model), or None when the model's facts do not imply it.

        Of alternatives, the strongest that holds decides (MUST over SHOULD): each alternative
        is a fact that implies the rule on its own, so the rule is as firm as the firmest of
        them. ``image.size`` is implied by ``[sizes, default_size]``: a vendor that documents
        its ``size`` default (MUST) but not its full list (SHOULD) still must answer the size
        asked whenever it accepts it; a size it does not serve is another rule's matter."""
        if isinstance(condition, tuple):
            levels = [self.level_of(alternative, spec) for alternative in condition]
            held = [level for level in levels if level is not None]
            if not held:
                return None
            return Level.MUST if Level.MUST in held else Level.SHOULD
        if condition == "*":
            return Level.MUST
        name, _, value = condition.partition(".")
        if name == "takes":
            if not spec.takes(value):
                return None
            return self._level(TAKEN_BY.get(value, "takes"))
        fact = self.facts.get(name)
        if fact is None or fact.value in (None, False, [], {}):
            return None
        if value and value not in fact.value:
            return None
        return fact.level

    def _level(self, name: str) -> Level:
        fact = self.facts.get(name)
        return fact.level if fact is not None else Level.MUST


# --- parsing -----------------------------------------------------------------------------------


def parse_models(
    raw: list[Any], base: Contract
) -> tuple[tuple[str, ...], tuple[DeclaredModel, ...]]:
    """The profile's model names, in order, and the models it declares (raises
    :class:`DeclarationError` naming the field of the first broken declaration)."""
    names: list[str] = []
    declared: list[DeclaredModel] = []
    for index, entry in enumerate(raw):
        where = f"models[{index}]"
        if isinstance(entry, str):
            if entry not in base.models:
                known = ", ".join(base.models)
                raise DeclarationError(
                    f"{where}: unknown model {entry!r} (known: {known}; or declare it with "
                    "name: and like: or its facts)"
                )
            model = entry
        elif isinstance(entry, Mapping):
            found = _declaration(entry, where, base)
            declared.append(found)
            model = found.name
        else:
            raise DeclarationError(f"{where} must be a model name or a mapping (got {entry!r:.60})")
        if model in names:
            raise DeclarationError(f"{where}: model {model!r} is listed twice")
        names.append(model)
    return tuple(names), tuple(declared)


def _declaration(entry: Mapping[str, Any], where: str, base: Contract) -> DeclaredModel:
    extra = [k for k in entry if k not in KEYS]
    if extra:
        raise DeclarationError(f"{where}.{extra[0]} is not a model fact (known: {', '.join(KEYS)})")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DeclarationError(f"{where}.name must be a model name (got {name!r:.60})")
    if name in base.models:
        raise DeclarationError(
            f"{where}.name: {name!r} is a contract model; list it by name, or give yours "
            "another name with like:"
        )
    like = entry.get("like")
    if like is not None and (not isinstance(like, str) or like not in base.models):
        raise DeclarationError(
            f"{where}.like must be a contract model ({', '.join(base.models)}; got {like!r:.60})"
        )
    facts = _facts_of(base.models[like], base) if like else {}
    for key in FACTS:
        if key in entry:
            facts[key] = _fact(entry[key], f"{where}.{key}")
    if not like and "sizes" not in facts and "default_size" not in facts:
        raise DeclarationError(f"{where} needs sizes (or default_size, when size is not taken)")
    checked = {
        key: dataclasses.replace(fact, value=_check(key, fact.value, where, base))
        for key, fact in facts.items()
    }
    _check_consistent(checked, where)
    meta = (
        dict(base.schemas["request"]["$defs"][f"model.{like}"]["x-imgconf-model"]) if like else {}
    )
    family = str(entry.get("family", meta.get("family", name)))
    price = checked.get("price")
    return DeclaredModel(
        name=name,
        like=like,
        source=str(entry.get("source", "")),
        facts=checked,
        definition=_definition(name, checked, family, meta, base),
        price_per_image=price.value["per_image"] if price else None,
        price_source=str(price.value.get("source", "")) if price else "",
    )


def _fact(raw: Any, where: str) -> Fact:
    """A fact as written: its value alone, or ``{value, level, evidence, observed}``."""
    if not (isinstance(raw, Mapping) and "value" in raw and set(raw) <= FACT_KEYS):
        return Fact(raw)
    level = raw.get("level", Level.MUST)
    if level not in LEVELS:
        raise DeclarationError(f"{where}.level must be MUST or SHOULD (got {level!r:.40})")
    for key in ("evidence", "observed"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise DeclarationError(f"{where}.{key} must be a quote (a string)")
    return Fact(raw["value"], Level(level), raw.get("evidence"), raw.get("observed"))


def _facts_of(spec: ModelSpec, base: Contract) -> dict[str, Fact]:
    """The facts a contract model states, as a declaration would (the start of ``like:``)."""
    facts: dict[str, Any] = {
        "prompt_max_chars": spec.prompt_max_chars,
        "default_size": spec.default_size,
        "output_formats": _formats(spec, "output_format", base),
        "response_formats": _formats(spec, "response_format", base),
        "output_compression": spec.takes("output_compression"),
        "stream": spec.takes("stream"),
        "background": spec.takes("background"),
        "takes": [f for f in STANDARD if f not in TAKEN_BY and f != "prompt" and spec.takes(f)],
    }
    if spec.takes("n"):
        facts["n"] = {"min": _bounds(base, "n")[0], "max": spec.n_max}
    if spec.takes("size"):
        listed = list(spec.sizes)
        custom = spec.custom_sizes
        facts["sizes"] = listed if custom is None else {"list": listed, "wxh": _wxh_of(custom)}
    if spec.qualities:
        facts["qualities"] = list(spec.qualities)
    return {k: Fact(v) for k, v in facts.items() if v is not None}


def _formats(spec: ModelSpec, param: str, base: Contract) -> list[Any]:
    """A model's formats, its default first."""
    if not spec.takes(param):
        return [spec.fixed.get(param, base.request_fields[param].get("default"))]
    default = spec.default(param, base)
    values = list(spec.values(param))
    return sorted(values, key=lambda v: v != default)


def _wxh_of(custom: CustomSizes) -> dict[str, Any]:
    return {
        "multiple_of": custom.multiple_of,
        "min_edge": custom.safe_min_edge,
        "max_edge": custom.max_edge,
        "max_aspect": custom.max_aspect,
        "max_pixels": custom.max_pixels,
        "safe": {
            "min_edge": custom.safe_min_edge,
            "max_edge": custom.safe_max_edge,
            "max_aspect": custom.safe_max_aspect,
        },
    }


def _bounds(base: Contract, param: str) -> tuple[int, int]:
    bounds = base.bounds(param)
    assert bounds is not None, param
    return bounds


# --- checking each fact --------------------------------------------------------------------------


def _check(key: str, value: Any, where: str, base: Contract) -> Any:
    """The fact's value, checked (and normalised); a broken one names its field."""
    at = f"{where}.{key}"
    if key == "prompt_max_chars":
        return _positive(value, at) if value is not None else None
    if key == "n":
        return _n(value, at, base)
    chosen = SERVER_CHOICE
    if key == "sizes":
        return _sizes(value, at, chosen)
    if key == "default_size":
        return _size(value, at, chosen)
    if key in ("qualities", "output_formats", "response_formats"):
        return _values(key, value, at, base)
    if key in ("output_compression", "stream", "background"):
        if not isinstance(value, bool):
            raise DeclarationError(f"{at} must be true or false (got {value!r:.40})")
        return value
    if key in ("takes", "ignores", "refuses"):
        return _fields(value, at)
    if key == "extensions":
        return _extensions(value, at)
    return _price(value, at)


def _positive(value: Any, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DeclarationError(f"{at} must be an integer >= 1 (got {value!r:.40})")
    return value


def _n(value: Any, at: str, base: Contract) -> dict[str, int]:
    if not isinstance(value, Mapping) or set(value) - {"min", "max"} or "max" not in value:
        raise DeclarationError(f"{at} must be {{min: 1, max: N}} (got {value!r:.60})")
    low, high = _bounds(base, "n")
    top = _positive(value["max"], f"{at}.max")
    if top > high:
        raise DeclarationError(f"{at}.max must be at most {high}, the request schema's (got {top})")
    bottom = value.get("min", low)
    if bottom != low:
        raise DeclarationError(f"{at}.min must be {low}, the request schema's (got {bottom!r:.40})")
    return {"min": low, "max": top}


def _size(value: Any, at: str, chosen: Any) -> str:
    """A ``WxH`` size, or the value that leaves the size to the server (``auto``)."""
    if value != chosen and (not isinstance(value, str) or parse_wxh(value) is None):
        raise DeclarationError(f"{at} must be a WxH size such as 1024x1024 (got {value!r:.40})")
    return value


def _sizes(value: Any, at: str, chosen: Any) -> list[str] | dict[str, Any]:
    """A list of sizes, or ``{list: [...], wxh: {...}}`` (a ``WxH`` rule with listed extras)."""
    if isinstance(value, list):
        if not value:
            raise DeclarationError(f"{at} must list at least one size")
        return [_size(s, f"{at}[{i}]", chosen) for i, s in enumerate(value)]
    if not isinstance(value, Mapping) or "wxh" not in value or set(value) - {"list", "wxh"}:
        raise DeclarationError(f"{at} must be a list of WxH sizes or {{list: [...], wxh: {{...}}}}")
    listed = value.get("list") or []
    if not isinstance(listed, list):
        raise DeclarationError(f"{at}.list must be a list of WxH sizes")
    return {
        "list": [_size(s, f"{at}.list[{i}]", chosen) for i, s in enumerate(listed)],
        "wxh": _wxh(value["wxh"], f"{at}.wxh"),
    }


def _wxh(value: Any, at: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise DeclarationError(f"{at} must map {', '.join(WXH_KEYS)} to numbers")
    extra = [k for k in value if k not in (*WXH_KEYS, "safe")]
    if extra:
        raise DeclarationError(f"{at}.{extra[0]} is not known ({', '.join(WXH_KEYS)}, safe)")
    out: dict[str, Any] = {}
    for key in WXH_KEYS:
        number = value.get(key)
        if isinstance(number, bool) or not isinstance(number, int | float) or number <= 0:
            raise DeclarationError(f"{at}.{key} must be a number > 0 (got {number!r:.40})")
        out[key] = number
    for key in ("multiple_of", "min_edge", "max_edge", "max_pixels"):
        if not float(out[key]).is_integer():
            raise DeclarationError(f"{at}.{key} must be an integer (got {out[key]!r:.40})")
        out[key] = int(out[key])
    if out["min_edge"] > out["max_edge"] or out["max_aspect"] < 1:
        raise DeclarationError(f"{at}: min_edge must be <= max_edge and max_aspect >= 1")
    safe = value.get("safe")
    out["safe"] = dict(safe) if isinstance(safe, Mapping) else _safe_zone(out)
    return out


def _safe_zone(wxh: Mapping[str, Any]) -> dict[str, Any]:
    """Without a stated safe zone, the stated limits themselves (they are all MUST), the
    largest edge kept to what the pixel bound allows for a square."""
    step = wxh["multiple_of"]
    square = math.isqrt(wxh["max_pixels"]) // step * step
    low = math.ceil(wxh["min_edge"] / step) * step
    return {
        "min_edge": low,
        "max_edge": max(low, min(wxh["max_edge"], square)),
        "max_aspect": wxh["max_aspect"],
    }


def _values(key: str, value: Any, at: str, base: Contract) -> list[Any]:
    """Values of a standard enum field, each one the request schema knows."""
    param = {"qualities": "quality", "output_formats": "output_format"}.get(key, "response_format")
    known = base.enum_fields[param]
    if not isinstance(value, list) or not value:
        raise DeclarationError(f"{at} must list at least one of {', '.join(map(str, known))}")
    for i, item in enumerate(value):
        if item not in known:
            raise DeclarationError(
                f"{at}[{i}] must be one of {', '.join(map(str, known))} (got {item!r:.40})"
            )
    return list(value)


def _fields(value: Any, at: str) -> list[str]:
    if not isinstance(value, list):
        raise DeclarationError(f"{at} must be a list of standard fields ({', '.join(STANDARD)})")
    for i, item in enumerate(value):
        if item not in STANDARD or item == "prompt":
            raise DeclarationError(
                f"{at}[{i}] must be a standard field ({', '.join(STANDARD)}; got {item!r:.40})"
            )
    return list(value)


def _extensions(value: Any, at: str) -> dict[str, Any]:
    """The model's own parameters, each a draft 2020-12 JSON Schema fragment."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(value, Mapping):
        raise DeclarationError(f"{at} must map parameter names to JSON Schema fragments")
    out = {}
    for name, schema in value.items():
        if not isinstance(name, str) or name in (*STANDARD, "model"):
            raise DeclarationError(f"{at}.{name}: a standard field, not an extension")
        if not isinstance(schema, Mapping) or not schema:
            raise DeclarationError(f"{at}.{name} must be a JSON Schema fragment (a mapping)")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise DeclarationError(
                f"{at}.{name} is not a valid JSON Schema ({exc.message:.80})"
            ) from None
        if "default" in schema and not Draft202012Validator(schema).is_valid(schema["default"]):
            raise DeclarationError(f"{at}.{name}.default does not match its own schema")
        out[name] = dict(schema)
    return out


def _price(value: Any, at: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or set(value) - {"per_image", "source", "evidence"}:
        raise DeclarationError(f"{at} must be {{per_image: USD, source: ..., evidence: ...}}")
    usd = value.get("per_image")
    if isinstance(usd, bool) or not isinstance(usd, int | float) or usd < 0:
        raise DeclarationError(f"{at}.per_image must be a USD amount >= 0 (got {usd!r:.40})")
    return {**value, "per_image": float(usd)}


def _check_consistent(facts: Mapping[str, Fact], where: str) -> None:
    """Facts that contradict each other: a field both taken and refused, a default size the
    model does not take."""
    taken = set(_taken(facts))
    ignores = set(_value(facts, "ignores", []))
    refuses = set(_value(facts, "refuses", []))
    for name, group in (("ignores", ignores), ("refuses", refuses)):
        both = sorted(group & taken)
        if both:
            raise DeclarationError(f"{where}.{name}: {both[0]} is also taken by the model")
    if ignores & refuses:
        raise DeclarationError(f"{where}.refuses: {sorted(ignores & refuses)[0]} is also ignored")
    sizes = _value(facts, "sizes", None)
    default = _value(facts, "default_size", None)
    listed = sizes if isinstance(sizes, list) else (sizes or {}).get("list", [])
    if default is not None and listed and isinstance(sizes, list) and default not in listed:
        raise DeclarationError(f"{where}.default_size: {default} is not one of its sizes")


def _value(facts: Mapping[str, Fact], key: str, default: Any) -> Any:
    fact = facts.get(key)
    return default if fact is None else fact.value


def _taken(facts: Mapping[str, Fact]) -> list[str]:
    """The standard fields the facts make the model take."""
    out = list(_value(facts, "takes", []))
    for param, key in TAKEN_BY.items():
        value = _value(facts, key, None)
        if key in ("output_formats", "response_formats"):
            value = value is not None and len(value) > 1
        if value and param not in out:
            out.append(param)
    return out


# --- compiling -----------------------------------------------------------------------------------


def _definition(
    name: str, facts: Mapping[str, Fact], family: str, meta: Mapping[str, Any], base: Contract
) -> dict[str, Any]:
    """The ``$defs/model.<name>`` fragment of the facts: every standard field the model does
    not take only allows null, as the request schema states OpenAI's models."""
    taken = set(_taken(facts))
    props: dict[str, Any] = {}
    prompt = _value(facts, "prompt_max_chars", None)
    if prompt is not None:
        props["prompt"] = {"maxLength": prompt}
    fixed: dict[str, Any] = {}
    for param in STANDARD:
        props[param] = _field_schema(param, facts, base) if param in taken else {"type": "null"}
    for param, key in FORMATS:
        values = _value(facts, key, None)
        if not values:
            continue
        if param not in taken:
            fixed[param] = values[0]
        elif values[0] != base.request_fields[param].get("default"):
            # The first is the default; recorded where it is not the schema's own.
            props[param]["x-imgconf-default"] = values[0]
    size_default = _value(facts, "default_size", None) or _first_size(facts)
    if size_default is not None:
        props["size"]["x-imgconf-default"] = size_default
    extensions = _value(facts, "extensions", {})
    # Null means the parameter's default, as for every optional field.
    props.update(
        {k: {"anyOf": [{"type": "null"}, copy.deepcopy(v)]} for k, v in extensions.items()}
    )
    out_meta: dict[str, Any] = {
        "family": family,
        "fixed": fixed,
        "extensions": copy.deepcopy(extensions),
        "ignores": list(_value(facts, "ignores", [])),
        "refuses": list(_value(facts, "refuses", [])),
    }
    for key in ("echoes", "usage"):
        if key in meta:
            out_meta[key] = copy.deepcopy(meta[key])
    return {"title": f"{name} request rules", "x-imgconf-model": out_meta, "properties": props}


def _first_size(facts: Mapping[str, Fact]) -> str | None:
    sizes = _value(facts, "sizes", None)
    listed = sizes if isinstance(sizes, list) else (sizes or {}).get("list", [])
    return listed[0] if listed else None


def _field_schema(param: str, facts: Mapping[str, Fact], base: Contract) -> dict[str, Any]:
    """The model's schema of one standard field it takes."""
    if param == "n":
        return {"maximum": _value(facts, "n", {})["max"]}
    if param == "size":
        sizes = _value(facts, "sizes", [])
        if isinstance(sizes, list):
            return {"enum": [*sizes, None]}
        wxh = sizes["wxh"]
        return {
            "anyOf": [{"enum": [*sizes["list"], None]}, {"type": "string", "pattern": WXH_PATTERN}],
            "x-imgconf-custom-size": {k: wxh[k] for k in (*WXH_KEYS, "safe") if k != "min_edge"},
        }
    key = TAKEN_BY.get(param)
    values = _value(facts, key, None) if key else None
    if isinstance(values, list):
        return {"enum": [*values, None]}
    return {}


def declared_spec(model: DeclaredModel, base: Contract) -> ModelSpec:
    """The model's :class:`ModelSpec`, built by the loader's code from its compiled fragment."""
    return model_spec(model.name, model.definition, base.request_fields)


# --- the profile's contract ------------------------------------------------------------------------


def extend_contract(base: Contract, declared: Iterable[DeclaredModel]) -> Contract:
    """The base contract plus the declared models: their fragments in the request schema (model
    enum, ``$defs``, the ``allOf`` that applies them, their extension parameters), their specs,
    and each rule extended to the declared models its ``declared:`` condition holds for."""
    declared = tuple(declared)
    if not declared:
        return base
    schemas = {k: v for k, v in base.schemas.items()}
    request = copy.deepcopy(base.schemas["request"])
    for model in declared:
        _add_to_schema(request, model)
    schemas["request"] = request
    specs = {m.name: declared_spec(m, base) for m in declared}
    for spec in specs.values():
        if spec.custom_sizes is not None and spec.custom_sizes.safe_min_edge <= 0:
            raise DeclarationError(f"{spec.name}: the WxH rule leaves no size to ask")
    rules = {
        rule_id: _extended_rule(rule, declared, specs, base) for rule_id, rule in base.rules.items()
    }
    return dataclasses.replace(
        base,
        schemas=schemas,
        models={**base.models, **specs},
        rules=rules,
        _validators={},
    )


def _add_to_schema(request: dict[str, Any], model: DeclaredModel) -> None:
    top = request["properties"]
    _model_enum(top["model"]).append(model.name)
    request["$defs"][f"model.{model.name}"] = copy.deepcopy(model.definition)
    request["allOf"].insert(
        _last_model_entry(request) + 1,
        {
            "if": {"properties": {"model": {"const": model.name}}, "required": ["model"]},
            "then": {"$ref": f"#/$defs/model.{model.name}"},
        },
    )
    for name, schema in _value(model.facts, "extensions", {}).items():
        known = top.get(name)
        if known is None:
            branches = [{"type": "null"}, copy.deepcopy(schema)]
            top[name] = {"x-imgconf-extension": True, "anyOf": branches}
        else:
            known["anyOf"].append(copy.deepcopy(schema))
    _close_extensions(request)


def _close_extensions(request: dict[str, Any]) -> None:
    """Every model's fragment allows only null for the extension parameters it does not have,
    so the strict request schema, like the oracle, refuses another model's parameter."""
    extensions = [k for k, v in request["properties"].items() if v.get("x-imgconf-extension")]
    for key, definition in request["$defs"].items():
        if key.startswith("model."):
            props = definition.setdefault("properties", {})
            for name in extensions:
                props.setdefault(name, {"type": "null"})


def _model_enum(model_field: dict[str, Any]) -> list[Any]:
    for branch in model_field.get("anyOf", ()):
        if "enum" in branch:
            return branch["enum"]
    raise ValueError("the request schema's model field states no enum")


def _last_model_entry(request: Mapping[str, Any]) -> int:
    """The index of the last ``allOf`` entry that applies a named model's fragment (the
    declared models' come after it, before the omitted-model default)."""
    last = -1
    for index, entry in enumerate(request["allOf"]):
        if "model" in entry.get("if", {}).get("properties", {}) and "required" in entry["if"]:
            last = index
    return last


def _extended_rule(
    rule: Rule, declared: tuple[DeclaredModel, ...], specs: Mapping[str, ModelSpec], base: Contract
) -> Rule:
    """The rule, also holding for the declared models its ``declared:`` condition holds for."""
    if rule.declared is None:
        return rule
    condition = rule.declared
    if condition == "*" and rule.param in STANDARD and rule.kind in ("reject", "either"):
        # A rule about a field: at the level of the fact that makes the model take it.
        condition = f"takes.{rule.param}"
    models = list(rule.models)
    levels = dict(rule.levels)
    for model in declared:
        spec = specs[model.name]
        if not _field_taken(rule, spec, base):
            continue
        level = model.level_of(condition, spec)
        if level is None:
            continue
        models.append(model.name)
        if level == Level.SHOULD and rule.is_must:
            levels[model.name] = level
    return dataclasses.replace(rule, models=tuple(models), levels=levels)


def _field_taken(rule: Rule, spec: ModelSpec, base: Contract) -> bool:
    """A request rule about a field holds for a model that takes the field (or must send it)."""
    param = rule.param
    if rule.kind not in ("reject", "either") or param is None or param == "model":
        return True
    return base.is_required(param) or spec.takes(param)
