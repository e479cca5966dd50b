"""The contract as data: schemas, models and rules, loaded once from ``schemas/``.

Everything the suite knows about the endpoint lives in the data files next to the package
(``schemas/`` in a source checkout, ``conformance/_schemas`` in an installed wheel). This module
is the single way to read them: strategies, checks and the reference server all ask it, so no
size list or limit is typed twice in code.

Per-model facts are read from the request schema itself (``$defs/model.<name>``), which keeps
the schema and the code from drifting apart: the schema *is* the model table.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .levels import Level

__all__ = [
    "ENDPOINTS",
    "GENERATIONS",
    "GPT_FAMILY",
    "OMIT",
    "SERVER_CHOICE",
    "Contract",
    "ContractError",
    "CrossField",
    "CustomSizes",
    "Endpoint",
    "FileInput",
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
#: The endpoint the data above describes, and the rules without an ``endpoint:``.
GENERATIONS = "generations"
#: The endpoints beside generations, and their data files (each schema's ``x-imgconf-endpoint``
#: says its path and content types; ``endpoints:`` in ``rules.yaml`` what else they reuse).
ENDPOINT_FILES = {
    "edits": {
        "request": "images.edits.request.schema.json",
        "stream_event": "images.edits.stream-event.schema.json",
    },
    "variations": {"request": "images.variations.request.schema.json"},
}
ENDPOINTS = (GENERATIONS, *ENDPOINT_FILES)

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
    #: (``response_formats.url``, ``takes.stream``, ``sizes.wxh``), or alternatives (a tuple,
    #: the strongest that holds gives the level); None for none.
    declared: str | tuple[str, ...] | None = None
    #: Per-model levels that differ from :attr:`level` (a declared fact marked SHOULD).
    levels: Mapping[str, Level] = field(default_factory=dict)
    #: The endpoint whose requests and answers the rule is about (``endpoint:``).
    endpoint: str = GENERATIONS
    #: The model capability by which the reference server shows an answer rule
    #: (``served_by:``): a profile that holds a model to the rule has the server serve it so.
    served_by: str | None = None

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
    #: The endpoints beside generations (edits, variations), by name: see :attr:`endpoints`.
    more_endpoints: Mapping[str, Endpoint] = field(default_factory=dict, repr=False)
    #: Every rule's entry as ``rules.yaml`` writes it (what the catalogue says beyond
    #: :class:`Rule`, such as ``shown_by``), in the catalogue's order.
    rule_entries: tuple[Mapping[str, Any], ...] = field(default=(), repr=False, compare=False)

    @cached_property
    def endpoints(self) -> Mapping[str, Endpoint]:
        """Every endpoint by name, generations first. Generations' is this contract's own data
        (a profile's contract has its declared models in it); the others are read from their
        own schemas."""
        generations = Endpoint(
            name=GENERATIONS,
            path="/images/generations",
            content_type="application/json",
            answers=("application/json", "text/event-stream"),
            schemas={
                "request": self.schemas["request"],
                "stream_event": self.schemas["stream_event"],
            },
            models=self.models,
            files={name: {} for name in self.models},
            rules=self.rules,
            request_fields=self.request_fields,
            cross_fields=self.cross_fields,
        )
        return {GENERATIONS: generations, **self.more_endpoints}

    def endpoint(self, name: str) -> Endpoint:
        """One endpoint's contract; a ContractError for a name the contract does not know."""
        if name not in self.endpoints:
            raise ContractError(f"no endpoint {name!r} (one of {', '.join(self.endpoints)})")
        return self.endpoints[name]

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
        return param in self.required_fields

    @cached_property
    def required_fields(self) -> frozenset[str]:
        """The request fields every request must carry."""
        return frozenset(self.schemas["request"].get("required", ()))

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
            out.update(json_type(v) for v in branch["enum"])
    return frozenset(out)


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value (what a schema's ``type`` calls it)."""
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
    kind = json_type(value)
    if kind == "number" and value.is_integer():
        kind = "integer"
    return kind in types or (kind == "integer" and "number" in types)


#: Bodies a cross-field rule remembers its verdict for (by the values it looks at).
_CROSS_FIELD_MEMO = 4096


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
        return self._judged(body)[0]

    def triggers(self, body: Mapping[str, Any]) -> bool:
        """Whether the ``if`` holds for ``body`` (the ``then`` must too)."""
        return self._judged(body)[1]

    @cached_property
    def _memo(self) -> dict[str, tuple[bool, bool]]:
        return {}

    def _judged(self, body: Mapping[str, Any]) -> tuple[bool, bool]:
        """(holds, triggers) for ``body``, remembered by the values of the fields the rule
        looks at: the plan asks about thousands of bodies that differ elsewhere."""
        fields = (*self.when, *self.then)
        seen = {name: body[name] for name in fields if name in body}
        try:
            key = json.dumps(seen, sort_keys=True)
        except (TypeError, ValueError):
            key = None
        judged = self._memo.get(key) if key is not None else None
        if judged is None:
            whole, condition = self._validators
            judged = (bool(whole.is_valid(seen)), bool(condition.is_valid(seen)))
            if key is not None:
                if len(self._memo) >= _CROSS_FIELD_MEMO:
                    self._memo.clear()
                self._memo[key] = judged
        return judged


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


def _model_spec(
    name: str,
    definition: Mapping[str, Any],
    top: Mapping[str, Any],
    fields: Iterable[str] = OPTIONAL_FIELDS,
) -> ModelSpec:
    meta = definition.get("x-imgconf-model", {})
    props: Mapping[str, Any] = definition.get("properties", {})
    params = set()
    enums: dict[str, tuple[Any, ...]] = {}
    for fname in fields:
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
            declared=_declared_condition(entry),
            endpoint=entry.get("endpoint", GENERATIONS),
            served_by=_served_by(rule_id, entry.get("served_by")),
            **_request_rule_data(entry),
        )
    return rules


#: The model capabilities an answer rule can be served by (``served_by:``), and the
#: :class:`ModelSpec` field each sets.
SERVED_CAPABILITIES = {"usage": "reports_usage"}


def _served_by(rule_id: str, capability: Any) -> str | None:
    if capability is None or capability in SERVED_CAPABILITIES:
        return capability
    raise ContractError(
        f"rule {rule_id}: served_by must be one of {', '.join(SERVED_CAPABILITIES)} "
        f"(got {capability!r})"
    )


def serving(spec: ModelSpec, capability: str) -> ModelSpec:
    """``spec`` with a capability the reference server shows an answer rule by."""
    return dataclasses.replace(spec, **{SERVED_CAPABILITIES[capability]: True})


def _declared_condition(entry: Mapping[str, Any]) -> str | tuple[str, ...] | None:
    """A rule's ``declared:`` as the loader keeps it: a list of alternatives as a tuple."""
    condition = entry.get("declared", "*" if entry["models"] == "*" else None)
    return tuple(condition) if isinstance(condition, list) else condition


def _check_declared(rule_id: str, condition: Any) -> None:
    """A rule's ``declared:``: ``*``, a model fact, a value within one, ``takes.FIELD``, or a
    list of these (the rule holds when any does). A typo would hold no declared model to the
    rule, silently."""
    if condition is None or condition == "*":
        return
    if isinstance(condition, list) and condition:
        for alternative in condition:
            _check_declared(rule_id, alternative)
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
    by_endpoint = _rules_by_endpoint(catalogue["rules"], catalogue.get("endpoints", {}))
    rules = parse_rules(by_endpoint[GENERATIONS], models)
    return Contract(
        schemas=schemas,
        models=models,
        rules=rules,
        features=dict(catalogue.get("features", {})),
        directory=directory,
        reasons=parse_reasons(catalogue.get("not_observed", {})),
        more_endpoints=_endpoints(directory, schemas, rules, catalogue, by_endpoint),
        rule_entries=tuple(MappingProxyType(entry) for entry in catalogue["rules"]),
    )


# --- The endpoints beside generations ---------------------------------------------------------


@dataclass(frozen=True)
class FileInput:
    """One file field of a multipart form (``image``, ``mask``) as one model takes it.

    Read from the field's schema, which describes a file part by its facts (``$defs/file`` of
    the edits schema: ``format`` told by the bytes, ``bytes``, ``width``, ``height``, ``alpha``);
    what JSON Schema cannot state is an ``x-imgconf-*`` annotation beside it.
    """

    field: str
    #: The part names that carry it (``image`` and ``image[]``): ``x-imgconf-parts``.
    parts: tuple[str, ...]
    required: bool
    #: The formats the model takes, as the bytes tell them (``png``, ``jpeg``, ``webp``).
    formats: tuple[str, ...]
    #: A file of this many bytes or more breaks the stated limit, however "MB" is read.
    max_bytes: int | None
    #: Valid files stay at or below this (the limit's stricter reading).
    safe_max_bytes: int | None
    #: How many files the field takes (1: one file only).
    max_count: int
    #: Width and height must be equal (``x-imgconf-square``).
    square: bool = False
    #: The field whose (first) file this one's width and height must equal.
    same_dimensions_as: str | None = None
    #: The file must have an alpha channel.
    needs_alpha: bool = False
    #: Which of its pixels mark the area to edit (``transparent``: alpha 0), for a mask.
    edit_area: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """One endpoint's contract: its request schema, its models' facts and its rules.

    Generations' entry is the contract's own data (``Contract.models``, ``Contract.rules``);
    edits and variations are read from their schemas (``ENDPOINT_FILES``), whose models are
    generations' definitions by ``$ref`` plus their own fields, and from the rules whose
    ``endpoint:`` names them.
    """

    name: str
    path: str
    content_type: str
    #: The content types of a 2xx answer (``application/json``, ``text/event-stream``).
    answers: tuple[str, ...]
    #: Its schemas by role (``request``, ``stream_event``), as written.
    schemas: Mapping[str, Mapping[str, Any]]
    models: Mapping[str, ModelSpec]
    #: Per model, its file fields (none for generations).
    files: Mapping[str, Mapping[str, FileInput]]
    #: The rules declared for this endpoint, in the catalogue's order.
    rules: Mapping[str, Rule]
    #: Generations rules its exchanges are held to as well, for the endpoint's models.
    reused: Mapping[str, Rule] = field(default_factory=dict)
    #: False while its rules are declared but not yet planned or judged.
    judged: bool = True
    #: The request schema's top-level fields with every ``$ref`` followed.
    request_fields: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: The request schema's rules between fields, each naming its rule id.
    cross_fields: tuple[CrossField, ...] = ()
    _registry: Any = field(default=None, repr=False, compare=False)
    _validators: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def default_model(self) -> str:
        """The model an omitted ``model`` means."""
        return str(self.request_fields["model"]["default"])

    @property
    def all_rules(self) -> dict[str, Rule]:
        """Its own rules, then the generations rules it reuses."""
        return {**self.rules, **self.reused}

    def file(self, model: str, field_name: str) -> FileInput:
        return self.files[model][field_name]

    def validator(self, name: str = "request") -> Any:
        """A draft 2020-12 validator for one of its schemas, resolving refs into the others."""
        if name not in self._validators:
            from jsonschema import Draft202012Validator

            extra = {} if self._registry is None else {"registry": self._registry()}
            self._validators[name] = Draft202012Validator(self.schemas[name], **extra)
        return self._validators[name]


class _Refs:
    """Follows ``$ref`` within and across the contract's schemas (by ``$id``), to read facts.

    Validation uses jsonschema's own resolution; this inlines a fragment so that the loader
    reads a model's facts from one mapping: a ``$ref`` with sibling keywords is read as the
    target with the siblings laid over it (they only narrow it, so the reading agrees with
    validation, where both apply).
    """

    def __init__(self, documents: Iterable[Mapping[str, Any]]) -> None:
        self.documents = {doc["$id"]: doc for doc in documents if "$id" in doc}

    def inline(self, node: Any, base: str) -> Any:
        if isinstance(node, list):
            return [self.inline(item, base) for item in node]
        if not isinstance(node, Mapping):
            return node
        out: dict[str, Any] = {}
        ref = node.get("$ref")
        if isinstance(ref, str):
            target_base, target = self._target(ref, base)
            out = self.inline(target, target_base)
        own = {k: self.inline(v, base) for k, v in node.items() if k != "$ref"}
        return _laid_over(out, own)

    def _target(self, ref: str, base: str) -> tuple[str, Any]:
        where, _, pointer = ref.partition("#")
        where = where or base
        node: Any = self.documents.get(where)
        for part in pointer.strip("/").split("/") if pointer.strip("/") else ():
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                node = None
                break
            node = node[part]
        if node is None:
            raise ContractError(f"{base}: $ref {ref!r} leads nowhere")
        return where, node


def _laid_over(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid over ``base``: mappings merged key by key, ``required`` lists joined."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _laid_over(out[key], value)
        elif key == "required" and isinstance(out.get(key), list):
            out[key] = [*out[key], *(v for v in value if v not in out[key])]
        else:
            out[key] = value
    return out


def _rules_by_endpoint(
    raw: list[Mapping[str, Any]], endpoints: Mapping[str, Any]
) -> dict[str, list[Mapping[str, Any]]]:
    """The catalogue's rule entries by ``endpoint:``; an unknown endpoint, an id without its
    endpoint's prefix or one used twice is a ContractError."""
    out: dict[str, list[Mapping[str, Any]]] = {name: [] for name in ENDPOINTS}
    seen: set[str] = set()
    for entry in raw:
        name = entry.get("endpoint", GENERATIONS)
        rule_id = entry["id"]
        if name not in out:
            raise ContractError(f"rule {rule_id}: endpoint must be one of {', '.join(ENDPOINTS)}")
        if rule_id in seen:
            raise ContractError(f"rule id {rule_id} appears twice")
        seen.add(rule_id)
        out[name].append(entry)
        if name != GENERATIONS:
            if not rule_id.startswith(f"{name}."):
                raise ContractError(f"rule {rule_id}: an {name} rule's id starts with '{name}.'")
            if "shown_by" in entry and not endpoints.get(name, {}).get("judged", True):
                raise ContractError(
                    f"rule {rule_id}: endpoint {name} is not judged yet (judged: false), and "
                    "the judge reads every shown_by: leave it out until the endpoint is judged"
                )
        elif rule_id.split(".", 1)[0] in ENDPOINT_FILES:
            raise ContractError(f"rule {rule_id}: its id names an endpoint it does not say")
    return out


def _endpoint_models(value: Any, rule_id: str, models: Mapping[str, ModelSpec]) -> tuple[str, ...]:
    """A generations rule's ``models:`` read against another endpoint's models: ``*`` is all of
    them, a family or a list keeps those the endpoint serves."""
    if value == "*":
        return tuple(models)
    if isinstance(value, str):
        return tuple(m.name for m in models.values() if m.family == value)
    if isinstance(value, list):
        return tuple(m for m in value if m in models)
    raise ContractError(f"rule {rule_id}: models must be '*', a family or a list")


def _endpoints(
    directory: Path,
    schemas: Mapping[str, Mapping[str, Any]],
    rules: Mapping[str, Rule],
    catalogue: Mapping[str, Any],
    by_endpoint: Mapping[str, list[Mapping[str, Any]]],
) -> dict[str, Endpoint]:
    own = {
        name: {role: read_data_file(directory / f) for role, f in files.items()}
        for name, files in ENDPOINT_FILES.items()
    }
    documents = [*schemas.values(), *(s for group in own.values() for s in group.values())]
    refs = _Refs(documents)
    registry = _registry(documents)
    out = {}
    settings = catalogue.get("endpoints", {})
    raw_by_id = {entry["id"]: entry for entry in by_endpoint[GENERATIONS]}
    for name, group in own.items():
        entry = settings.get(name, {})
        out[name] = _endpoint(
            name, group, refs, registry, by_endpoint[name], entry, raw_by_id, rules
        )
    return out


def _registry(documents: Iterable[Mapping[str, Any]]) -> Callable[[], Any]:
    """The schemas' ``$ref`` registry, built when a validator first needs it: loading the
    contract (every run's first step) need not import ``referencing``."""
    kept = [doc for doc in documents if "$id" in doc]

    @cache
    def build() -> Any:
        from referencing import Registry, Resource

        return Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in kept)

    return build


def _endpoint(
    name: str,
    group: Mapping[str, Mapping[str, Any]],
    refs: _Refs,
    registry: Any,
    raw_rules: list[Mapping[str, Any]],
    settings: Mapping[str, Any],
    generations_raw: Mapping[str, Mapping[str, Any]],
    generations_rules: Mapping[str, Rule],
) -> Endpoint:
    request = group["request"]
    base = request["$id"]
    top = {k: refs.inline(v, base) for k, v in request["properties"].items()}
    required = tuple(request.get("required", ()))
    file_fields = [k for k, v in top.items() if "x-imgconf-parts" in v]
    fields = [k for k in top if k not in required and k not in file_fields]
    models = {}
    files = {}
    for model in _enum_values(top["model"]):
        definition = refs.inline(request["$defs"][f"model.{model}"], base)
        props = definition.get("properties", {})
        own = {**definition, "properties": {k: v for k, v in props.items() if k in top}}
        models[model] = _model_spec(model, own, top, fields)
        files[model] = {
            f: _file_input(f, props.get(f) or top[f], top[f]["x-imgconf-parts"], f in required)
            for f in file_fields
        }
    reused = {}
    for rule_id in settings.get("reuses", ()):
        if rule_id not in generations_rules:
            raise ContractError(f"endpoints.{name}.reuses: {rule_id!r} is no generations rule")
        held = _endpoint_models(generations_raw[rule_id]["models"], rule_id, models)
        if not held:
            raise ContractError(f"endpoints.{name}.reuses: {rule_id} holds for none of its models")
        reused[rule_id] = dataclasses.replace(generations_rules[rule_id], models=held)
    meta = request["x-imgconf-endpoint"]
    return Endpoint(
        name=name,
        path=meta["path"],
        content_type=meta["content_type"],
        answers=tuple(meta["answers"]),
        schemas=group,
        models=models,
        files=files,
        rules=parse_rules(raw_rules, models),
        reused=reused,
        judged=bool(settings.get("judged", True)),
        request_fields=top,
        cross_fields=_cross_fields(
            {
                "allOf": request.get("allOf", ()),
                "$defs": {k: refs.inline(v, base) for k, v in request["$defs"].items()},
            }
        ),
        _registry=registry,
    )


def _file_input(
    name: str, schema: Mapping[str, Any], parts: Iterable[str], required: bool
) -> FileInput:
    """A file field's facts from its (inlined) schema: one file, or an array of them."""
    branches = schema.get("anyOf", [schema])
    array = next((b for b in branches if b.get("type") == "array"), None)
    single = next((b for b in branches if b.get("type") != "array"), None)
    one = single if single is not None else (array or {}).get("items", {})
    props = one.get("properties", {})
    fmt = props.get("format", {})
    size = props.get("bytes", {})
    return FileInput(
        field=name,
        parts=tuple(parts),
        required=required,
        formats=(fmt["const"],) if "const" in fmt else tuple(fmt.get("enum", ())),
        max_bytes=size.get("exclusiveMaximum"),
        safe_max_bytes=size.get("x-imgconf-safe-maximum"),
        max_count=int(array.get("maxItems", 1)) if array else 1,
        square=bool(one.get("x-imgconf-square", False)),
        same_dimensions_as=one.get("x-imgconf-same-dimensions-as"),
        needs_alpha=props.get("alpha", {}).get("const") is True,
        edit_area=one.get("x-imgconf-edit-area"),
    )
