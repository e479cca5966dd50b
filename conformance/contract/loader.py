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
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "GPT_FAMILY",
    "Contract",
    "ContractError",
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

LEVELS = ("MUST", "SHOULD")
#: The model family (``x-imgconf-model.family``) with the GPT image models' own fields and
#: answers; the code names it wherever those differ from the dall-e models.
GPT_FAMILY = "gpt-image"


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

    def broken_rule(self, width: int, height: int) -> str | None:
        """The id of the custom-size rule that ``width x height`` breaks, or None when it is valid."""
        if width <= 0 or height <= 0 or width % self.multiple_of or height % self.multiple_of:
            return "request.size.custom.divisible"
        if max(width, height) / min(width, height) > self.max_aspect:
            return "request.size.custom.aspect"
        if max(width, height) > self.max_edge or width * height > self.max_pixels:
            return "request.size.custom.max"
        return None

    def is_safe(self, width: int, height: int) -> bool:
        """True for sizes that every conformant server must accept."""
        return (
            self.broken_rule(width, height) is None
            and self.safe_min_edge <= min(width, height)
            and max(width, height) <= self.safe_max_edge
            and max(width, height) / min(width, height) <= self.safe_max_aspect
        )


@dataclass(frozen=True)
class ModelSpec:
    """What one model takes, read from ``$defs/model.<name>`` of the request schema."""

    name: str
    family: str
    prompt_max_chars: int
    n_max: int
    sizes: tuple[str, ...]
    default_size: str
    qualities: tuple[str, ...]
    #: Allowed non-null values of every enum field the model takes (size and quality included).
    enums: Mapping[str, tuple[Any, ...]]
    #: Optional fields the model takes (a field whose model schema only allows null is not here).
    params: frozenset[str]
    custom_sizes: CustomSizes | None = None

    @property
    def is_gpt(self) -> bool:
        return self.family == GPT_FAMILY

    def takes(self, param: str) -> bool:
        return param in self.params

    def values(self, param: str) -> tuple[Any, ...]:
        """Allowed non-null values of an enum field for this model (empty if it does not take it)."""
        return self.enums.get(param, ())


@dataclass(frozen=True)
class Rule:
    """One checkable statement of the contract."""

    id: str
    level: str
    kind: str
    models: tuple[str, ...]
    description: str
    source: str
    per_model: bool = True
    param: str | None = None
    schema: bool = False

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def is_must(self) -> bool:
        return self.level == "MUST"

    def applies_to(self, model: str) -> bool:
        return model in self.models


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
    _validators: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def request_fields(self) -> Mapping[str, Any]:
        """The request schema's top-level property schemas (the union over all models)."""
        return self.schemas["request"]["properties"]

    @cached_property
    def enum_fields(self) -> Mapping[str, tuple[Any, ...]]:
        """Every enum field of the request and its non-null values across all models."""
        out: dict[str, tuple[Any, ...]] = {}
        for name, sub in self.request_fields.items():
            values = _enum_values(sub)
            if values and name != "model":
                out[name] = values
        return out

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(self.models)

    def family_models(self, family: str) -> tuple[str, ...]:
        return tuple(m.name for m in self.models.values() if m.family == family)

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
    size_schema = props["size"]
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
    sizes = enums["size"]
    return ModelSpec(
        name=name,
        family=meta["family"],
        prompt_max_chars=props["prompt"]["maxLength"],
        n_max=props["n"]["maximum"],
        sizes=sizes,
        default_size=size_schema.get("x-imgconf-default", top["size"].get("default", "auto")),
        qualities=enums["quality"],
        enums=enums,
        params=frozenset(params),
        custom_sizes=custom,
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
        rules[rule_id] = Rule(
            id=rule_id,
            level=entry["level"],
            kind=entry["kind"],
            models=_resolve_models(entry["models"], rule_id, models),
            description=entry["description"],
            source=entry["source"],
            per_model=entry.get("per_model", True),
            param=entry.get("param"),
            schema=entry.get("schema", False),
        )
    return rules


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
