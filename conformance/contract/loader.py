"""The contract as data: schemas, models and rules, loaded once from ``schemas/``.

Everything the suite knows about the endpoint lives in the data files next to the package
(``schemas/`` in a source checkout, ``conformance/_schemas`` in an installed wheel). This module
is the single way to read them: strategies, checks and the reference server all ask it, so no
size list or limit is typed twice in code.

Per-model facts are read from the request schema itself (``$defs/model.<name>``), which keeps
the schema and the code from drifting apart: the schema *is* the model table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import yaml

from .levels import Level

__all__ = [
    "GPT_FAMILY",
    "OMIT",
    "SERVER_CHOICE",
    "Contract",
    "ContractError",
    "CrossField",
    "CustomSizes",
    "ModelSpec",
    "NotObservedReason",
    "Rule",
    "load_contract",
    "schemas_dir",
]

SCHEMA_FILES = {
    "request": "images.generations.request.schema.json",
    "response": "images.generations.response.schema.json",
    "stream_event": "images.stream-event.schema.json",
    "error": "error.schema.json",
}

#: Optional request fields, in the order the spec lists them.
OPTIONAL_FIELDS = (
    "model",
    "n",
    "quality",
    "response_format",
    "output_format",
    "output_compression",
    "stream",
    "partial_images",
    "size",
    "moderation",
    "background",
    "style",
    "user",
)

LEVELS = tuple(Level)
#: The enum value by which a request leaves a choice to the server (``size``, ``quality``,
#: ``background``: the spec's ``auto``). An answer to it may be any of the model's values.
SERVER_CHOICE = "auto"
#: The facts a profile may declare of a model of its own (``conformance.contract.declared``);
#: a rule's ``declared:`` names one of them (or ``takes.FIELD``) to hold such models to it.
MODEL_FACTS = (
    "prompt_max_chars",
    "n",
    "sizes",
    "default_size",
    "qualities",
    "output_formats",
    "output_compression",
    "response_formats",
    "stream",
    "background",
    "takes",
    "ignores",
    "refuses",
    "extensions",
    "price",
)
#: The model family (``x-imgconf-model.family``) with the GPT image models' own fields and
#: answers; the code names it wherever those differ from the dall-e models.
GPT_FAMILY = "gpt-image"


class _Omit:
    """Marks a field left out of a body (as opposed to sent as ``null``)."""

    _instance: _Omit | None = None

    def __new__(cls) -> _Omit:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "OMIT"


#: A field left out of a body: what breakers and cross-field triggers use for "absent".
OMIT = _Omit()


class ContractError(Exception):
    """The contract data is missing or inconsistent (a packaging or editing mistake)."""


def schemas_dir() -> Path:
    """Where the data lives: the installed copy first, else the source checkout's ``schemas/``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_schemas", here.parent / "schemas"):
        if (candidate / SCHEMA_FILES["request"]).is_file():
            return candidate
    raise ContractError(
        f"contract data not found next to {here} (looked for _schemas/ and ../schemas/)"
    )


def read_data_file(path: Path) -> Any:
    """Read a JSON or YAML data file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return parse_yaml(text)


def parse_yaml(text: str) -> Any:
    """Parse YAML safely, with the C loader when available: it is several times faster, which
    counts for an OpenAPI file of megabytes."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


@dataclass(frozen=True)
class CustomSizes:
    """The free ``WxH`` sizes a model takes beyond its enum (gpt-image-2), and the safe zone.

    The stated limits decide what a server MUST reject; the safe zone (well inside them) is what
    valid cases use, because the model's unstated "pixel and edge limits" are a grey area.
    """

    multiple_of: int
    max_aspect: float
    max_edge: int
    max_pixels: int
    safe_min_edge: int
    safe_max_edge: int
    safe_max_aspect: float

    def broken_limit(self, width: int, height: int) -> str | None:
        """Which stated limit ``width x height`` breaks (``divisible``, ``aspect`` or ``max``,
        the ``limit:`` of a custom-size rule in ``rules.yaml``), or None when it is valid."""
        if width <= 0 or height <= 0 or width % self.multiple_of or height % self.multiple_of:
            return "divisible"
        if max(width, height) / min(width, height) > self.max_aspect:
            return "aspect"
        if max(width, height) > self.max_edge or width * height > self.max_pixels:
            return "max"
        return None

    def is_safe(self, width: int, height: int) -> bool:
        """True for sizes that every conformant server must accept."""
        return (
            self.broken_limit(width, height) is None
            and self.safe_min_edge <= min(width, height)
            and max(width, height) <= self.safe_max_edge
            and max(width, height) / min(width, height) <= self.safe_max_aspect
        )


@dataclass(frozen=True)
class ModelSpec:
    """What one model takes, read from ``$defs/model.<name>`` of the request schema."""

    name: str
    family: str
    #: None for a declared model that states no prompt limit.
    prompt_max_chars: int | None
    n_max: int
    sizes: tuple[str, ...]
    default_size: str
    qualities: tuple[str, ...]
    #: Allowed non-null values of every enum field the model takes (size and quality included).
    enums: Mapping[str, tuple[Any, ...]]
    #: Optional fields the model takes (a field whose model schema only allows null is not here).
    params: frozenset[str]
    custom_sizes: CustomSizes | None = None
    #: The model's own limits, by field: ``maximum`` and ``maxLength`` of its schema.
    limits: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Values the model always uses for fields it does not take (``x-imgconf-model.fixed``):
    #: what its answers are, whatever the request says.
    fixed: Mapping[str, Any] = field(default_factory=dict)
    #: Fields its answers state as resolved (``x-imgconf-model.echoes``).
    echoes: tuple[str, ...] = ()
    #: Whether its answers carry token usage (``x-imgconf-model.usage``).
    reports_usage: bool = False
    #: Its own parameters beyond the standard fields, each a JSON Schema fragment
    #: (``x-imgconf-model.extensions``, the fragment as declared; its ``properties`` entry also
    #: allows null. Only models declared in a profile have any).
    extensions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Standard fields it answers as if omitted (``x-imgconf-model.ignores``).
    ignores: frozenset[str] = frozenset()
    #: Standard fields it refuses with a clean 4xx at MUST (``x-imgconf-model.refuses``).
    refuses: frozenset[str] = frozenset()
    #: Its own defaults of fields it takes (``x-imgconf-default`` of a field's model schema),
    #: where they differ from the request schema's.
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_gpt(self) -> bool:
        return self.family == GPT_FAMILY

    def takes(self, param: str) -> bool:
        """Whether the model takes a field: a standard one, or one of its own parameters."""
        return param in self.params or param in self.extensions

    def default(self, param: str, contract: Contract) -> Any:
        """What the field means when left out: the model's own default, else the schema's."""
        if param in self.defaults:
            return self.defaults[param]
        return contract.request_fields.get(param, {}).get("default")

    def values(self, param: str) -> tuple[Any, ...]:
        """Allowed non-null values of an enum field for this model (empty if it does not take it)."""
        return self.enums.get(param, ())

    def limit(self, param: str, keyword: str) -> Any:
        """The model's own ``keyword`` (``maximum``, ``maxLength``) for a field, or None."""
        return self.limits.get(param, {}).get(keyword)

    def accepts_custom(self, param: str, value: Any) -> bool:
        """Whether ``value`` is for the model's custom-size rules to judge (a ``WxH`` string on a
        model with custom sizes) rather than its enum."""
        return (
            param == "size"
            and self.custom_sizes is not None
            and isinstance(value, str)
            and parse_wxh(value) is not None
        )


@dataclass(frozen=True)
class Rule:
    """One checkable statement of the contract."""

    id: str
    level: Level
    kind: str
    models: tuple[str, ...]
    description: str
    source: str
    per_model: bool = True
    param: str | None = None
    schema: bool = False
    #: Request rules: the OpenAI-style error code a server answers a break with (None: none).
    error_code: str | None = None
    #: Request rules: what a server that lets a break through does with the field
    #: (``drop``: leaves it out, so it means its default; None: makes the best of the value).
    when_ignored: str | None = None
    #: Request rules: values of ``param`` that break the rule, as the fixed plan sends them
    #: (``$base`` inside stands for the valid body's own value of the field).
    examples: tuple[Any, ...] = ()
    #: Request rules: the other fields each group of breakers sets (one plan case per group and
    #: value); ``({},)`` for none.
    contexts: tuple[Mapping[str, Any], ...] = ({},)
    #: Request rules: fields a breaker leaves out so that it breaks this rule alone.
    clear: tuple[str, ...] = ()
    #: Custom-size rules: the limit of :meth:`CustomSizes.broken_limit` they state.
    limit: str | None = None
    #: Which models declared in a profile the rule holds for (``declared:``): ``*`` for all of
    #: them, the name of a declared fact (``sizes``) or a value within one
    #: (``response_formats.url``, ``takes.stream``, ``sizes.wxh``); None for none.
    declared: str | None = None
    #: Per-model levels that differ from :attr:`level` (a declared fact marked SHOULD).
    levels: Mapping[str, Level] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def is_must(self) -> bool:
        return self.level == Level.MUST

    def level_for(self, model: str | None) -> Level:
        """The rule's level for one model: a declared model's fact may lower it to SHOULD."""
        return self.levels.get(model, self.level) if model else self.level

    def is_must_for(self, model: str | None) -> bool:
        return self.level_for(model) == Level.MUST


@dataclass(frozen=True)
class NotObservedReason:
    """One reason a rule can go unobserved, as ``rules.yaml`` declares it."""

    name: str
    blocks: bool
    description: str


def parse_reasons(raw: Mapping[str, Any]) -> dict[str, NotObservedReason]:
    reasons = {}
    for name, entry in raw.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("blocks"), bool):
            raise ContractError(f"not_observed.{name}: needs `blocks: true|false`")
        reasons[name] = NotObservedReason(name, entry["blocks"], str(entry.get("description", "")))
    return reasons


@dataclass(frozen=True)
class Contract:
    """The whole contract: schemas, the request fields, models, rules and features."""

    schemas: Mapping[str, Mapping[str, Any]]
    models: Mapping[str, ModelSpec]
    rules: Mapping[str, Rule]
    features: Mapping[str, str]
    directory: Path
    #: Why a rule may go unobserved: reason -> whether it blocks a PASS (``rules.yaml``).
    reasons: Mapping[str, NotObservedReason] = field(default_factory=dict)
    #: A profile's names for its models (``aliases:``): the name sent -> the model it stands for.
    aliases: Mapping[str, str] = field(default_factory=dict)
    _validators: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def request_rules(self) -> dict[str, Rule]:
        """The rules a request body breaks on its own (kinds ``reject`` and ``either``)."""
        return {k: r for k, r in self.rules.items() if r.kind in ("reject", "either")}

    @property
    def request_fields(self) -> Mapping[str, Any]:
        """The request schema's top-level property schemas (the union over all models)."""
        return self.schemas["request"]["properties"]

    @cached_property
    def extension_fields(self) -> tuple[str, ...]:
        """The models' own parameters (``x-imgconf-extension`` in the request schema): the
        fields of declared models beyond the standard ones, in the schema's order."""
        return tuple(k for k, v in self.request_fields.items() if v.get("x-imgconf-extension"))

    @cached_property
    def enum_fields(self) -> Mapping[str, tuple[Any, ...]]:
        """Every standard enum field of the request and its non-null values across all models
        (a declared model's own parameters are judged by their own schemas)."""
        out: dict[str, tuple[Any, ...]] = {}
        for name, sub in self.request_fields.items():
            values = _enum_values(sub)
            if values and name != "model" and not sub.get("x-imgconf-extension"):
                out[name] = values
        return out

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(self.models)

    def family_models(self, family: str) -> tuple[str, ...]:
        return tuple(m.name for m in self.models.values() if m.family == family)

    @property
    def spec_gpt_image_models(self) -> tuple[str, ...]:
        """The models OpenAI's spec means by "the GPT image models" (one family here)."""
        return self.family_models(GPT_FAMILY)

    def bounds(self, param: str) -> tuple[int, int] | None:
        """``(minimum, maximum)`` of an integer request field; None for the other fields."""
        branch = _integer_branch(self.request_fields.get(param, {}))
        return None if branch is None else (int(branch["minimum"]), int(branch["maximum"]))

    def types(self, param: str) -> frozenset[str]:
        """The JSON types a request field allows (``null`` among them when it is optional)."""
        return _types(self.request_fields.get(param, {}))

    def is_required(self, param: str) -> bool:
        return param in self.schemas["request"].get("required", ())

    @cached_property
    def cross_fields(self) -> tuple[CrossField, ...]:
        """The request schema's rules between fields, each naming its rule id."""
        return _cross_fields(self.schemas["request"])

    def cross_field(self, rule_id: str) -> CrossField:
        for cross in self.cross_fields:
            if cross.rule == rule_id:
                return cross
        raise ContractError(f"the request schema states no cross-field rule {rule_id!r}")

    @property
    def default_model(self) -> str:
        """The model an omitted ``model`` means, unless :meth:`omitted_model_fields` carry
        values."""
        return str(self.request_fields["model"]["default"])

    @cached_property
    def omitted_model_fields(self) -> tuple[str, ...]:
        """Fields that, carrying values, keep an omitted ``model`` from meaning the default (the
        schema's ``x-imgconf-default-unless`` on ``model``: a schema they must be null in)."""
        ref = self.request_fields["model"].get("x-imgconf-default-unless", "")
        definition = self.schemas["request"]["$defs"].get(ref.removeprefix("#/$defs/"), {})
        return tuple(definition.get("properties", {}))

    def model_taking(self, fields: Iterable[str]) -> str:
        """The first model that takes all of ``fields`` (what an omitted model with them can
        mean; the spec leaves open which)."""
        wanted = set(fields)
        for spec in self.models.values():
            if wanted <= spec.params:
                return spec.name
        raise ContractError(f"no model takes all of {sorted(wanted)}")

    def validator(self, name: str) -> Any:
        """A compiled draft 2020-12 validator for one of the schemas (cached)."""
        if name not in self._validators:
            from jsonschema import Draft202012Validator

            self._validators[name] = Draft202012Validator(
                self.schemas[name], format_checker=Draft202012Validator.FORMAT_CHECKER
            )
        return self._validators[name]

    def sub_validator(self, name: str, definition: str) -> Any:
        """A validator for ``$defs/<definition>`` of one schema, resolving refs within it."""
        key = f"{name}#{definition}"
        if key not in self._validators:
            from jsonschema import Draft202012Validator

            root = self.schemas[name]
            self._validators[key] = Draft202012Validator(
                {**root, **root["$defs"][definition], "$defs": root["$defs"]}
            )
        return self._validators[key]


def _enum_values(schema: Mapping[str, Any]) -> tuple[Any, ...]:
    """Non-null enum values of a (possibly anyOf-nested) field schema."""
    values: list[Any] = []
    for value in schema.get("enum", ()):
        if value is not None and value not in values:
            values.append(value)
    for branch in schema.get("anyOf", ()):
        for value in _enum_values(branch):
            if value not in values:
                values.append(value)
    return tuple(values)


def _only_null(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "null"


_WXH = re.compile(r"^([1-9][0-9]{0,5})x([1-9][0-9]{0,5})$")


def parse_wxh(size: str) -> tuple[int, int] | None:
    """``"1536x864"`` -> ``(1536, 864)``; None for anything that is not a plain ``WxH``."""
    match = _WXH.match(size)
    return (int(match[1]), int(match[2])) if match else None


def _integer_branch(schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The branch of a (possibly ``anyOf``) field schema that states integer bounds."""
    for branch in (schema, *schema.get("anyOf", ())):
        if branch.get("type") == "integer" and "minimum" in branch and "maximum" in branch:
            return branch
    return None


def _types(schema: Mapping[str, Any]) -> frozenset[str]:
    """The JSON types a (possibly ``anyOf``) field schema allows; empty when it does not say."""
    out: set[str] = set()
    for branch in (schema, *schema.get("anyOf", ())):
        kind = branch.get("type")
        out.update([kind] if isinstance(kind, str) else kind or ())
        if "enum" in branch:
            out.update(_json_type(v) for v in branch["enum"])
    return frozenset(out)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "object")


def has_type(value: Any, types: frozenset[str]) -> bool:
    """Whether a JSON value is of one of ``types``, as JSON Schema counts (1.0 is an integer)."""
    kind = _json_type(value)
    if kind == "number" and value.is_integer():
        kind = "integer"
    return kind in types or (kind == "integer" and "number" in types)


@dataclass(frozen=True)
class CrossField:
    """A rule between fields that the request schema states (``$defs`` with ``if``/``then``,
    referenced from its top-level ``allOf`` and naming its rule with ``x-imgconf-rule``)."""

    rule: str
    description: str
    #: What an error says about a break (``x-imgconf-message``).
    message: str
    #: Fields the ``if`` looks at, and fields the ``then`` constrains, in the schema's order.
    when: tuple[str, ...]
    then: tuple[str, ...]
    schema: Mapping[str, Any] = field(repr=False)

    @cached_property
    def _validators(self) -> tuple[Any, Any]:
        from jsonschema import Draft202012Validator

        return Draft202012Validator(self.schema), Draft202012Validator(self.schema["if"])

    def holds(self, body: Mapping[str, Any]) -> bool:
        return bool(self._validators[0].is_valid(body))

    def triggers(self, body: Mapping[str, Any]) -> bool:
        """Whether the ``if`` holds for ``body`` (the ``then`` must too)."""
        return bool(self._validators[1].is_valid(body))


def _mentioned(schema: Any) -> list[str]:
    """Field names a schema fragment looks at (``properties`` and ``required``), in order."""
    out: list[str] = []
    if isinstance(schema, Mapping):
        for name in (*schema.get("properties", {}), *schema.get("required", ())):
            if name not in out:
                out.append(name)
        for key, sub in schema.items():
            if key not in ("properties", "required"):
                out.extend(n for n in _mentioned(sub) if n not in out)
    elif isinstance(schema, list):
        for sub in schema:
            out.extend(n for n in _mentioned(sub) if n not in out)
    return out


def _cross_fields(request: Mapping[str, Any]) -> tuple[CrossField, ...]:
    out = []
    for entry in request.get("allOf", ()):
        ref = entry.get("$ref", "") if set(entry) == {"$ref"} else ""
        definition = request["$defs"].get(ref.removeprefix("#/$defs/")) if ref else None
        if definition is None or "x-imgconf-rule" not in definition:
            continue
        out.append(
            CrossField(
                rule=definition["x-imgconf-rule"],
                description=definition.get("description", ""),
                message=definition.get("x-imgconf-message", definition.get("description", "")),
                when=tuple(_mentioned(definition["if"])),
                then=tuple(_mentioned(definition["then"])),
                schema=definition,
            )
        )
    return tuple(out)


def model_spec(name: str, definition: Mapping[str, Any], top: Mapping[str, Any]) -> ModelSpec:
    """A model's :class:`ModelSpec` from its ``$defs/model.<name>`` fragment and the request
    schema's top-level fields: one code path for OpenAI's models and declared ones."""
    return _model_spec(name, definition, top)


def _model_spec(name: str, definition: Mapping[str, Any], top: Mapping[str, Any]) -> ModelSpec:
    meta = definition.get("x-imgconf-model", {})
    props: Mapping[str, Any] = definition.get("properties", {})
    params = set()
    enums: dict[str, tuple[Any, ...]] = {}
    for fname in OPTIONAL_FIELDS:
        if fname == "model":
            continue
        model_schema = props.get(fname)
        if model_schema is not None and _only_null(model_schema):
            continue
        params.add(fname)
        values = _enum_values(model_schema or {}) or _enum_values(top[fname])
        if values:
            enums[fname] = values
    size_schema = props.get("size", {})
    custom = None
    spec = size_schema.get("x-imgconf-custom-size")
    if spec:
        safe = spec["safe"]
        custom = CustomSizes(
            multiple_of=spec["multiple_of"],
            max_aspect=spec["max_aspect"],
            max_edge=spec["max_edge"],
            max_pixels=spec["max_pixels"],
            safe_min_edge=safe["min_edge"],
            safe_max_edge=safe["max_edge"],
            safe_max_aspect=safe["max_aspect"],
        )
    sizes = enums.get("size", ())
    limits = {
        name: {k: sub[k] for k in ("maximum", "maxLength") if k in sub}
        for name, sub in props.items()
        if isinstance(sub, Mapping)
    }
    return ModelSpec(
        name=name,
        family=meta["family"],
        prompt_max_chars=props.get("prompt", {}).get("maxLength"),
        n_max=props.get("n", {}).get("maximum", 1),
        sizes=sizes,
        default_size=size_schema.get("x-imgconf-default", top["size"].get("default", "auto")),
        qualities=enums.get("quality", ()),
        enums=enums,
        params=frozenset(params),
        custom_sizes=custom,
        limits={k: v for k, v in limits.items() if v},
        fixed=dict(meta.get("fixed", {})),
        echoes=tuple(meta.get("echoes", ())),
        reports_usage=bool(meta.get("usage", False)),
        extensions=dict(meta.get("extensions", {})),
        ignores=frozenset(meta.get("ignores", ())),
        refuses=frozenset(meta.get("refuses", ())),
        defaults={
            k: sub["x-imgconf-default"]
            for k, sub in props.items()
            if k != "size" and isinstance(sub, Mapping) and "x-imgconf-default" in sub
        },
    )


def _resolve_models(value: Any, rule_id: str, models: Mapping[str, ModelSpec]) -> tuple[str, ...]:
    if value == "*":
        return tuple(models)
    if isinstance(value, str):
        family = tuple(m.name for m in models.values() if m.family == value)
        if not family:
            raise ContractError(f"rule {rule_id}: unknown model family {value!r}")
        return family
    if isinstance(value, list):
        unknown = [m for m in value if m not in models]
        if unknown:
            raise ContractError(f"rule {rule_id}: unknown models {unknown}")
        return tuple(value)
    raise ContractError(f"rule {rule_id}: models must be '*', a family or a list")


def parse_rules(raw: list[Mapping[str, Any]], models: Mapping[str, ModelSpec]) -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    for entry in raw:
        rule_id = entry["id"]
        if rule_id in rules:
            raise ContractError(f"rule id {rule_id} appears twice")
        if entry["level"] not in LEVELS:
            raise ContractError(f"rule {rule_id}: level must be MUST or SHOULD")
        _check_declared(rule_id, entry.get("declared"))
        rules[rule_id] = Rule(
            id=rule_id,
            level=Level(entry["level"]),
            kind=entry["kind"],
            models=_resolve_models(entry["models"], rule_id, models),
            description=entry["description"],
            source=entry["source"],
            per_model=entry.get("per_model", True),
            param=entry.get("param"),
            schema=entry.get("schema", False),
            declared=entry.get("declared", "*" if entry["models"] == "*" else None),
            **_request_rule_data(entry),
        )
    return rules


def _check_declared(rule_id: str, condition: Any) -> None:
    """A rule's ``declared:``: ``*``, a model fact, a value within one, or ``takes.FIELD`` (a
    typo would hold no declared model to the rule, silently)."""
    if condition is None or condition == "*":
        return
    fact, _, value = str(condition).partition(".")
    if fact == "takes" and value in OPTIONAL_FIELDS:
        return
    if fact in MODEL_FACTS and fact != "takes":
        return
    raise ContractError(
        f"rule {rule_id}: declared must be '*', a model fact ({', '.join(MODEL_FACTS)}), "
        f"FACT.VALUE or takes.FIELD (got {condition!r})"
    )


def _request_rule_data(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a request rule (``reject``, ``either``) that say how to break it and how a
    server answers a break."""
    if entry["kind"] not in ("reject", "either"):
        return {}
    contexts = entry.get("with", [{}])
    return {
        "error_code": entry.get("error_code"),
        "when_ignored": entry.get("when_ignored"),
        "examples": tuple(entry.get("examples", ())),
        "contexts": tuple(contexts if isinstance(contexts, list) else [contexts]),
        "clear": tuple(entry.get("clear", ())),
        "limit": entry.get("limit"),
    }


@cache
def load_contract(directory: Path | None = None) -> Contract:
    """Load and cross-check the contract data (cached: every caller shares one instance)."""
    directory = directory or schemas_dir()
    schemas = {key: read_data_file(directory / fname) for key, fname in SCHEMA_FILES.items()}
    request = schemas["request"]
    top = request["properties"]
    model_names = _enum_values(top["model"])
    models = {
        name: _model_spec(name, request["$defs"][f"model.{name}"], top) for name in model_names
    }
    catalogue = read_data_file(directory / "rules.yaml")
    rules = parse_rules(catalogue["rules"], models)
    return Contract(
        schemas=schemas,
        models=models,
        rules=rules,
        features=dict(catalogue.get("features", {})),
        directory=directory,
        reasons=parse_reasons(catalogue.get("not_observed", {})),
    )
