"""Compare an OpenAI OpenAPI file with imgconf's contract, so a new spec release shows its changes.

OpenAI's spec states the endpoint twice: structurally (enums, bounds, field sets, required keys)
and in the prose of field descriptions (per-model prompt limits, "only n=1" for dall-e-3, the
custom-size rule of gpt-image-2). The contract in ``schemas/`` turned both into data. This module
reads a spec release, extracts the same facts (the prose ones with small regexes) and lists every
place where the spec and the contract disagree, area by area.

Some disagreements are deliberate (the contract accepts any ``WxH`` answer size where the spec's
enum lists three). The contract declares those next to the schema node, as
``"x-imgconf-deviation": {"<aspect>": "<why>"}`` (or a plain string for every aspect of the node);
they are reported as known deviations and do not count as differences.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import SetupError
from ..settings import SPEC_MAX_DEPTH
from .loader import SERVER_CHOICE, Contract, parse_yaml

__all__ = ["AREAS", "Difference", "SpecDiff", "diff_spec", "load_openapi"]

#: Report areas, in the order the report lists them.
AREAS = (
    "models",
    "request fields",
    "enums",
    "bounds",
    "prose rules",
    "response",
    "stream events",
    "error",
)
DEVIATION_KEY = "x-imgconf-deviation"
ENDPOINT = "/images/generations"
_MISSING: Any = object()
_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number"}


@dataclass(frozen=True)
class Difference:
    """One disagreement: what the spec says at ``where`` against what the contract says.

    ``deviation`` holds the contract's stated reason when the disagreement is deliberate.
    """

    area: str
    where: str
    spec: str
    contract: str
    deviation: str | None = None

    @property
    def known(self) -> bool:
        return self.deviation is not None

    def line(self) -> str:
        return f"{self.where}: spec: {self.spec}; contract: {self.contract}"


@dataclass
class SpecDiff:
    """The result of one comparison; ``differences`` excludes the declared deviations."""

    source: str
    spec_version: str
    items: list[Difference] = field(default_factory=list)

    @property
    def differences(self) -> list[Difference]:
        return [d for d in self.items if not d.known]

    @property
    def known_deviations(self) -> list[Difference]:
        return [d for d in self.items if d.known]

    def summary(self) -> str:
        count = len(self.differences)
        known = len(self.known_deviations)
        tail = f" ({known} known deviation{'s' if known != 1 else ''})" if known else ""
        if count == 0:
            return f"no differences: the contract matches this spec{tail}"
        return f"{count} difference{'s' if count != 1 else ''}{tail}"

    def render(self) -> str:
        lines = [
            f"spec-diff {self.source} (OpenAPI {self.spec_version}) against imgconf's contract"
        ]
        for area, entries in iter_areas(self):
            lines.append("")
            lines.append(area)
            if not entries:
                lines.append("  agrees")
            for entry in entries:
                mark = "~" if entry.known else "-"
                lines.append(f"  {mark} {entry.line()}")
                if entry.known:
                    lines.append(f"      known deviation: {entry.deviation}")
        lines.append("")
        lines.append(self.summary())
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "spec": self.source,
            "openapi": self.spec_version,
            "differences": [asdict(d) for d in self.differences],
            "known_deviations": [asdict(d) for d in self.known_deviations],
            "summary": self.summary(),
        }


# --- reading ---------------------------------------------------------------------------------


def load_openapi(path: Path) -> Mapping[str, Any]:
    """Parse an OpenAPI document (JSON or YAML; YAML with the C loader, a 3 MB file in < 1 s)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SetupError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise SetupError(f"{path}: not a YAML or JSON file (not UTF-8 text)") from None
    except OSError as exc:
        raise SetupError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        document = json.loads(text) if text.lstrip().startswith("{") else parse_yaml(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SetupError(f"{path}: not a YAML or JSON file ({first})") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("paths"), Mapping):
        raise SetupError(f"{path}: not an OpenAPI document (no 'paths' mapping)")
    return document


def _deref(root: Mapping[str, Any], node: Any, origin: str) -> Any:
    """Follow local ``$ref`` pointers (``#/components/schemas/X``, ``#/$defs/X``)."""
    for _ in range(SPEC_MAX_DEPTH):
        if not isinstance(node, Mapping) or "$ref" not in node:
            return node
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise SetupError(f"{origin}: cannot follow $ref {ref!r} (only local refs are read)")
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise SetupError(f"{origin}: $ref {ref!r} points nowhere")
            target = target[part]
        node = target
    raise SetupError(f"{origin}: $ref chain too deep at {node.get('$ref')!r}")


# --- the shape of a schema node, whichever way it says "null" ---------------------------------


@dataclass
class Shape:
    """What one schema node allows, normalised over OpenAPI 3.0 and 3.1 spellings.

    ``nullable: true``, ``type: [..., "null"]``, an ``anyOf`` branch ``{type: "null"}`` and a
    ``null`` in an enum all become ``nullable``; ``enum`` never holds ``None``. ``open_enum`` is set
    when a branch admits any value beside the enum (the spec's ``anyOf: [string, enum]``).
    """

    types: set[str] = field(default_factory=set)
    nullable: bool = False
    enum: list[Any] | None = None
    open_enum: bool = False
    pattern: str | None = None
    bounds: dict[str, Any] = field(default_factory=dict)
    default: Any = _MISSING
    properties: dict[str, Any] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    items: Any = None
    description: str = ""

    def describe_values(self) -> str:
        """The allowed non-null values in words (for report lines)."""
        if self.enum is not None:
            text = ", ".join(map(str, self.enum))
            if self.open_enum:
                text += " or " + (f"any string matching {self.pattern}" if self.pattern else "any")
            return text
        if self.pattern:
            return f"any string matching {self.pattern}"
        return "any " + ("/".join(sorted(self.types)) if self.types else "value")


_BOUND_KEYS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
)


def shape_of(root: Mapping[str, Any], node: Any, origin: str) -> Shape:
    node = _deref(root, node, origin)
    shape = Shape()
    if not isinstance(node, Mapping):
        return shape
    declared = node.get("type")
    for name in [declared] if isinstance(declared, str) else list(declared or ()):
        if name == "null":
            shape.nullable = True
        else:
            shape.types.add(name)
    if node.get("nullable") is True:
        shape.nullable = True
    values = list(node["enum"]) if isinstance(node.get("enum"), list) else None
    if "const" in node:
        values = [node["const"]]
    if values is not None:
        shape.nullable |= None in values
        shape.enum = [v for v in values if v is not None]
    shape.pattern = node.get("pattern")
    shape.bounds = {k: node[k] for k in _BOUND_KEYS if k in node}
    shape.default = node.get("default", _MISSING)
    shape.description = " ".join(str(node.get("description", "")).split())
    if isinstance(node.get("properties"), Mapping):
        shape.properties = dict(node["properties"])
    shape.required = set(node.get("required") or ())
    shape.items = node.get("items")
    branches = [b for key in ("anyOf", "oneOf") for b in node.get(key) or ()]
    for branch in branches:
        _merge_branch(shape, shape_of(root, branch, origin))
    if shape.enum is not None and not shape.types:
        shape.types = {_JSON_TYPES.get(type(v), "value") for v in shape.enum}
    return shape


def _merge_branch(shape: Shape, branch: Shape) -> None:
    """Fold one anyOf/oneOf branch into the node's shape."""
    shape.nullable |= branch.nullable
    shape.types |= branch.types
    if branch.enum is not None:
        shape.enum = (shape.enum or []) + [v for v in branch.enum if v not in (shape.enum or [])]
    elif branch.types:
        shape.open_enum = True
    shape.pattern = shape.pattern or branch.pattern
    for key, value in branch.bounds.items():
        shape.bounds.setdefault(key, value)
    if shape.default is _MISSING:
        shape.default = branch.default
    shape.description = shape.description or branch.description
    for name, sub in branch.properties.items():
        shape.properties.setdefault(name, sub)
    shape.required |= branch.required
    shape.items = shape.items if shape.items is not None else branch.items


def _deviation(raw: Any, resolved: Any, aspect: str) -> str | None:
    """The contract's declared reason for differing from the spec on ``aspect`` of a node."""
    for node in (raw, resolved):
        note = node.get(DEVIATION_KEY) if isinstance(node, Mapping) else None
        if isinstance(note, str):
            return note
        if isinstance(note, Mapping) and aspect in note:
            return str(note[aspect])
    return None


# --- structural comparison -------------------------------------------------------------------


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _words(values: Iterable[Any]) -> str:
    items = list(values)
    return ", ".join(map(str, items)) if items else "none"


def _set_detail(spec: Iterable[Any], ours: Iterable[Any]) -> tuple[str, str]:
    spec_l, ours_l = list(spec), list(ours)
    only_spec = [v for v in spec_l if v not in ours_l]
    only_ours = [v for v in ours_l if v not in spec_l]
    spec_text = _words(spec_l) + (f" (not in contract: {_words(only_spec)})" if only_spec else "")
    ours_text = _words(ours_l) + (f" (not in spec: {_words(only_ours)})" if only_ours else "")
    return spec_text, ours_text


@dataclass
class _Side:
    """One document (the spec or one of our schemas) and how to name it in errors."""

    root: Mapping[str, Any]
    origin: str

    def shape(self, node: Any) -> Shape:
        return shape_of(self.root, node, self.origin)

    def resolve(self, node: Any) -> Any:
        return _deref(self.root, node, self.origin)


AreaFor = Callable[[str, str], str]


class _Comparer:
    """Walks a spec schema node and the contract's node side by side, collecting differences."""

    def __init__(self, spec: _Side, ours: _Side, area_for: AreaFor, skip_enums: Iterable[str] = ()):
        self.spec = spec
        self.ours = ours
        self.area_for = area_for
        #: Nodes whose enums are compared elsewhere (the request's model and size).
        self.skip_enums = set(skip_enums)
        self.out: list[Difference] = []

    def add(self, where: str, aspect: str, spec: str, ours: str, our_node: Any) -> None:
        reason = _deviation(our_node, self.ours.resolve(our_node), aspect)
        self.out.append(Difference(self.area_for(where, aspect), where, spec, ours, reason))

    def node(self, where: str, spec_node: Any, our_node: Any, depth: int = 0) -> None:
        if depth > SPEC_MAX_DEPTH:
            return
        s, o = self.spec.shape(spec_node), self.ours.shape(our_node)
        if s.types and o.types and s.types != o.types:
            self.add(
                f"{where} type", "types", _words(sorted(s.types)), _words(sorted(o.types)), our_node
            )
        if s.nullable != o.nullable:
            yes_no = {True: "nullable", False: "not nullable"}
            self.add(
                f"{where} nullable", "nullable", yes_no[s.nullable], yes_no[o.nullable], our_node
            )
        if where not in self.skip_enums:
            self._enum(where, s, o, our_node)
        self._bounds(where, s, o, our_node)
        if s.default != o.default:
            show = lambda v: "none" if v is _MISSING else json.dumps(v)  # noqa: E731
            self.add(f"{where} default", "default", show(s.default), show(o.default), our_node)
        if s.properties or o.properties:
            self.object(where, s, o, our_node, depth)
        if s.items is not None and o.items is not None:
            self.node(f"{where}[]", s.items, o.items, depth + 1)

    def object(self, where: str, s: Shape, o: Shape, our_node: Any, depth: int) -> None:
        for name in s.properties:
            if name not in o.properties:
                kind = _words(sorted(self.spec.shape(s.properties[name]).types)) or "any"
                self.add(
                    f"{where}.{name}",
                    "properties",
                    f"has the field ({kind})",
                    "no such field",
                    our_node,
                )
        for name in o.properties:
            if name not in s.properties:
                self.add(
                    f"{where}.{name}", "properties", "no such field", "has the field", our_node
                )
        # One line per field whose "required" differs; a deviation sits on that field's node.
        for name in sorted(s.required ^ o.required):
            spec_text = "required" if name in s.required else "optional"
            ours_text = "required" if name in o.required else "optional"
            self.add(f"{where}.{name}", "required", spec_text, ours_text, o.properties.get(name))
        for name in s.properties:
            if name in o.properties:
                self.node(f"{where}.{name}", s.properties[name], o.properties[name], depth + 1)

    def _enum(self, where: str, s: Shape, o: Shape, our_node: Any) -> None:
        if s.enum is None and o.enum is None:
            return
        same = (
            s.enum is not None
            and o.enum is not None
            and set(map(str, s.enum)) == set(map(str, o.enum))
            and s.open_enum == o.open_enum
        )
        if same:
            return
        if s.enum is not None and o.enum is not None and s.open_enum == o.open_enum:
            spec_text, ours_text = _set_detail(s.enum, o.enum)
        else:
            spec_text, ours_text = s.describe_values(), o.describe_values()
        self.add(f"{where} enum", "enum", spec_text, ours_text, our_node)

    def _bounds(self, where: str, s: Shape, o: Shape, our_node: Any) -> None:
        for key in _BOUND_KEYS:
            spec_value, our_value = s.bounds.get(key), o.bounds.get(key)
            if spec_value != our_value:
                show = lambda v: "none" if v is None else str(v)  # noqa: E731
                self.add(f"{where} {key}", key, show(spec_value), show(our_value), our_node)


# --- finding the endpoint ------------------------------------------------------------------------


@dataclass
class _Endpoint:
    request: Any
    response: Any | None
    stream: Any | None


def _find_endpoint(spec: Mapping[str, Any], origin: str) -> _Endpoint:
    paths = spec["paths"]
    key = next((p for p in paths if str(p).rstrip("/").endswith(ENDPOINT)), None)
    operation = paths.get(key, {}).get("post") if key is not None else None
    if not isinstance(operation, Mapping):
        raise SetupError(f"{origin}: no POST {ENDPOINT} endpoint in this OpenAPI file")
    content = (operation.get("requestBody") or {}).get("content") or {}
    request = (content.get("application/json") or {}).get("schema")
    if request is None:
        raise SetupError(f"{origin}: POST {ENDPOINT} has no application/json request schema")
    responses = operation.get("responses") or {}
    ok = responses.get("200", responses.get(200)) or {}
    answers = ok.get("content") or {}
    return _Endpoint(
        request=request,
        response=(answers.get("application/json") or {}).get("schema"),
        stream=(answers.get("text/event-stream") or {}).get("schema"),
    )


# --- the areas -----------------------------------------------------------------------------------


def _request_area(where: str, aspect: str) -> str:
    if where.startswith("request.model "):
        return "models"
    if aspect in _BOUND_KEYS:
        return "bounds"
    return "enums" if aspect == "enum" else "request fields"


def _compare_models(spec: _Side, request: Shape, contract: Contract) -> list[Difference]:
    out: list[Difference] = []
    model = spec.shape(request.properties.get("model"))
    if not request.properties.get("model") or not model.enum:
        out.append(
            Difference(
                "models", "request.model enum", "lists no models", _words(contract.model_names)
            )
        )
        return out
    for name in model.enum:
        if name not in contract.models:
            out.append(Difference("models", f"model {name}", "listed", "unknown to the contract"))
    for name in contract.model_names:
        if name not in model.enum:
            out.append(
                Difference("models", f"model {name}", "no longer listed", "a contract model")
            )
    return out


def _compare_request(
    spec: _Side, ours: _Side, request: Shape, contract: Contract
) -> list[Difference]:
    out = _compare_models(spec, request, contract)
    comparer = _Comparer(spec, ours, _request_area, skip_enums=("request.model", "request.size"))
    comparer.object("request", request, ours.shape(ours.root), ours.root, 0)
    out += comparer.out
    out = _with_prose_bounds(out, request, spec)
    size = spec.shape(request.properties.get("size"))
    if request.properties.get("size") is not None:
        ours_sizes = _union(m.sizes for m in contract.models.values())
        if set(size.enum or ()) != set(ours_sizes):
            spec_text, ours_text = _set_detail(size.enum or (), ours_sizes)
            out.append(
                Difference(
                    "enums", "request.size enum", spec_text, ours_text + " (all models' sizes)"
                )
            )
    return out


def _union(groups: Iterable[Iterable[Any]]) -> list[Any]:
    out: list[Any] = []
    for group in groups:
        out += [v for v in group if v not in out]
    return out


_PROSE_RANGE = (
    re.compile(r"\((\d+)\s*-\s*(\d+)\s*%?\)"),
    re.compile(r"between (\d+) and (\d+)", re.IGNORECASE),
)


def _with_prose_bounds(found: list[Difference], request: Shape, spec: _Side) -> list[Difference]:
    """Read a numeric bound the spec states only in prose ("(0-100%)") as stated.

    A bound the prose states like the contract is no difference; one it states otherwise is
    reported with the prose's number.
    """
    out: list[Difference] = []
    for diff in found:
        match = re.fullmatch(r"request\.(\w+) (minimum|maximum)", diff.where)
        stated = None
        if match and diff.spec == "none":
            text = spec.shape(request.properties.get(match[1])).description
            ranges = (p.search(text) for p in _PROSE_RANGE)
            if (hit := next((r for r in ranges if r), None)) is not None:
                stated = hit[1] if match[2] == "minimum" else hit[2]
        if stated is None:
            out.append(diff)
        elif stated != diff.contract:
            out.append(replace(diff, spec=f"{stated} (in the description)"))
    return out


# --- prose rules ---------------------------------------------------------------------------------

_NAMES = (
    r"(?:the GPT image models|`[^`]+`(?:\s*(?:,|and|or)\s*`[^`]+`)*(?:,?\s*(?:and|or)\s*`[^`]+`)?)"
)
_BACKTICKED = re.compile(r"`([^`]+)`")


def _models_named(phrase: str, contract: Contract) -> list[str]:
    if phrase.lower().startswith("the gpt image models"):
        return list(contract.spec_gpt_image_models)
    return _BACKTICKED.findall(phrase)


class _Prose:
    """Extracts the per-model facts that the spec states only in descriptions."""

    def __init__(self, spec: _Side, request: Shape, contract: Contract):
        self.contract = contract
        #: The spec's structural ``n`` maximum: every model not named in a prose override has it.
        self.structural_n_max = spec.shape(request.properties.get("n")).bounds.get("maximum")
        self.text = {
            name: spec.shape(node).description for name, node in request.properties.items()
        }
        self.out: list[Difference] = []

    def add(self, where: str, spec: str, ours: str) -> None:
        self.out.append(Difference("prose rules", where, spec, ours))

    def missing(self, field_name: str, sentence: str, ours: str) -> None:
        self.add(
            f"request.{field_name}.description",
            f"sentence not found ({sentence}): the prose changed, check it by hand",
            ours,
        )

    def run(self) -> list[Difference]:
        self.gpt_models()
        self.prompt_limits()
        self.n_per_model()
        self.sizes()
        self.custom_sizes()
        self.qualities()
        self.field_scopes()
        return self.out

    def gpt_models(self) -> None:
        ours = list(self.contract.spec_gpt_image_models)
        found = re.search(r"GPT image models? \(([^)]*)\)", self.text.get("model", ""))
        if not found:
            self.missing("model", "'a GPT image model (`...`)'", _words(ours))
            return
        named = _BACKTICKED.findall(found[1])
        if set(named) != set(ours):
            spec_text, ours_text = _set_detail(named, ours)
            self.add("GPT image models", spec_text, ours_text)

    def prompt_limits(self) -> None:
        stated: dict[str, int] = {}
        pattern = rf"(\d[\d,]*)\s+characters\s+for\s+({_NAMES})"
        for number, phrase in re.findall(pattern, self.text.get("prompt", "")):
            for name in _models_named(phrase, self.contract):
                stated.setdefault(name, int(number.replace(",", "")))
        if not stated:
            ours = ", ".join(
                f"{m.name} {m.prompt_max_chars}" for m in self.contract.models.values()
            )
            self.missing("prompt", "'N characters for <model>'", ours)
            return
        for model in self.contract.models.values():
            value = stated.get(model.name)
            if value != model.prompt_max_chars:
                shown = f"{value} characters" if value is not None else "states no limit"
                self.add(
                    f"{model.name} prompt max length", shown, f"{model.prompt_max_chars} characters"
                )

    def n_per_model(self) -> None:
        text = self.text.get("n", "")
        n_max = self.structural_n_max
        pattern = rf"[Ff]or\s+({_NAMES}),\s+only\s+`?n\s*=\s*(\d+)`?"
        overrides: dict[str, int] = {}
        for phrase, number in re.findall(pattern, text):
            for name in _models_named(phrase, self.contract):
                overrides[name] = int(number)
        limited = [m.name for m in self.contract.models.values() if m.n_max != n_max]
        if not overrides and limited:
            self.missing(
                "n", "'For `<model>`, only `n=N` is supported'", f"limited: {_words(limited)}"
            )
        for model in self.contract.models.values():
            expected = overrides.get(model.name, n_max)
            if expected is not None and expected != model.n_max:
                self.add(f"{model.name} n maximum", str(expected), str(model.n_max))

    def sizes(self) -> None:
        text = self.text.get("size", "")
        found = re.findall(
            rf"[Ff]or\s+({_NAMES}),\s+use one of\s+((?:`[^`]+`[\s,]*(?:or\s+)?)+)", text
        )
        if not found:
            self.missing("size", "'For `<model>`, use one of `WxH`, ...'", "per-model sizes")
        for phrase, listed in found:
            sizes = _BACKTICKED.findall(listed)
            for name in _models_named(phrase, self.contract):
                model = self.contract.models.get(name)
                if model is not None and set(model.sizes) != set(sizes):
                    spec_text, ours_text = _set_detail(sizes, model.sizes)
                    self.add(f"{name} sizes", spec_text, ours_text)
        standard = re.search(
            r"standard sizes\s+((?:`[^`]+`[\s,]*(?:and\s+)?)+)are supported by the GPT image models",
            text,
        )
        if not standard:
            self.missing(
                "size",
                "'The standard sizes ... are supported by the GPT image models'",
                "GPT sizes",
            )
            return
        sizes = _BACKTICKED.findall(standard[1])
        for name in self.contract.spec_gpt_image_models:
            ours = [s for s in self.contract.models[name].sizes if s != SERVER_CHOICE]
            if set(ours) != set(sizes):
                spec_text, ours_text = _set_detail(sizes, ours)
                self.add(f"{name} standard sizes", spec_text, ours_text)

    def custom_sizes(self) -> None:
        text = self.text.get("size", "")
        ours = {m.name: m.custom_sizes for m in self.contract.models.values() if m.custom_sizes}
        who = re.search(rf"[Ff]or\s+({_NAMES}),\s+arbitrary resolutions", text)
        if not who:
            self.missing(
                "size", "'For `<model>`, arbitrary resolutions are supported'", _words(ours)
            )
        else:
            named = _models_named(who[1], self.contract)
            if set(named) != set(ours):
                spec_text, ours_text = _set_detail(named, list(ours))
                self.add("models with custom sizes", spec_text, ours_text)
        checks: list[tuple[str, str, Callable[[re.Match[str]], Any], str]] = [
            ("divisible by (\\d+)", "'divisible by N'", lambda m: int(m[1]), "multiple_of"),
            (
                "between (\\d+):(\\d+) and (\\d+):(\\d+)",
                "'aspect ratio between A:B and C:D'",
                lambda m: max(int(m[1]) / int(m[2]), int(m[3]) / int(m[4])),
                "max_aspect",
            ),
            (
                "maximum supported resolution is `?(\\d+)x(\\d+)",
                "'the maximum supported resolution is WxH'",
                lambda m: max(int(m[1]), int(m[2])),
                "max_edge",
            ),
            (
                "maximum supported resolution is `?(\\d+)x(\\d+)",
                "'the maximum supported resolution is WxH'",
                lambda m: int(m[1]) * int(m[2]),
                "max_pixels",
            ),
        ]
        for regex, sentence, read, attribute in checks:
            found = re.search(regex, text)
            values = {getattr(c, attribute) for c in ours.values()}
            if not found:
                if attribute != "max_pixels":
                    self.missing("size", sentence, f"{attribute} {_words(sorted(values))}")
                continue
            stated = read(found)
            for name, custom in ours.items():
                if getattr(custom, attribute) != stated:
                    self.add(
                        f"{name} custom size {attribute}",
                        _number(stated),
                        _number(getattr(custom, attribute)),
                    )

    def qualities(self) -> None:
        text = self.text.get("quality", "")
        pattern = rf"((?:`[^`]+`[\s,]*(?:and|or)?\s*)+)(?:are|is)\s+(?:supported for|the only option for)\s+({_NAMES})"
        stated: dict[str, set[str]] = {}
        for listed, phrase in re.findall(pattern, text):
            for name in _models_named(phrase, self.contract):
                stated.setdefault(name, set()).update(_BACKTICKED.findall(listed))
        if not stated:
            self.missing("quality", "'`a`, `b` are supported for <model>'", "per-model qualities")
            return
        everyone = (
            set(_BACKTICKED.findall(m[0]))
            if (m := re.search(r"(`[^`]+`)\s*\(default value\)", text))
            else set()
        )
        for model in self.contract.models.values():
            spec_values = stated.get(model.name, set()) | everyone
            if set(model.qualities) != spec_values:
                spec_text, ours_text = _set_detail(sorted(spec_values), sorted(model.qualities))
                self.add(f"{model.name} qualities", spec_text, ours_text)

    def field_scopes(self) -> None:
        """'This parameter is only supported for X' / 'isn't supported for X' against ModelSpec.params."""
        for field_name, text in self.text.items():
            only = re.search(rf"only\s+supported\s+for\s+({_NAMES})", text, re.IGNORECASE)
            never = re.search(
                rf"(?:isn't|is not)\s+supported\s+for\s+({_NAMES})", text, re.IGNORECASE
            )
            if only:
                takers = set(_models_named(only[1], self.contract))
            elif never:
                takers = set(self.contract.models) - set(_models_named(never[1], self.contract))
            else:
                continue
            ours = {m.name for m in self.contract.models.values() if m.takes(field_name)}
            if takers != ours:
                order = list(self.contract.models)
                spec_text, ours_text = _set_detail(
                    [m for m in order if m in takers], [m for m in order if m in ours]
                )
                self.add(f"models taking {field_name}", spec_text, ours_text)


# --- answers -------------------------------------------------------------------------------------


def _event_types(side: _Side, node: Any) -> dict[str, Any]:
    """Map each stream event's ``type`` value to its schema node (the union's branches)."""
    resolved = side.resolve(node)
    branches = [b for key in ("anyOf", "oneOf") for b in (resolved or {}).get(key) or ()]
    events: dict[str, Any] = {}
    for branch in branches or [resolved]:
        kind = side.shape(side.shape(branch).properties.get("type")).enum or []
        for value in kind:
            events[str(value)] = branch
    return events


def _compare_stream(spec: _Side, ours: _Side, endpoint: _Endpoint) -> list[Difference]:
    area = "stream events"
    if endpoint.stream is None:
        return [
            Difference(
                area, "200 text/event-stream", "no stream schema", "partial and completed events"
            )
        ]
    spec_events, our_events = _event_types(spec, endpoint.stream), _event_types(ours, ours.root)
    out = [
        Difference(area, f"event {name}", "defined", "unknown to the contract")
        for name in spec_events
        if name not in our_events
    ]
    out += [
        Difference(area, f"event {name}", "not defined", "defined")
        for name in our_events
        if name not in spec_events
    ]
    comparer = _Comparer(spec, ours, lambda _w, _a: area)
    for name, node in spec_events.items():
        if name in our_events:
            comparer.node(f"event {name}", node, our_events[name])
    return out + comparer.out


def _compare_answer(spec: _Side, ours: _Side, endpoint: _Endpoint) -> list[Difference]:
    if endpoint.response is None:
        return [
            Difference("response", "200 application/json", "no answer schema", "ImagesResponse")
        ]
    comparer = _Comparer(spec, ours, lambda _w, _a: "response")
    comparer.node("response", endpoint.response, ours.root)
    return comparer.out


def _compare_error(spec: _Side, ours: _Side) -> list[Difference]:
    schemas = spec.root.get("components", {}).get("schemas", {})
    if "ErrorResponse" not in schemas:
        return [
            Difference("error", "components.schemas.ErrorResponse", "missing", "error envelope")
        ]
    comparer = _Comparer(spec, ours, lambda _w, _a: "error")
    comparer.node("error", schemas["ErrorResponse"], ours.root)
    return comparer.out


# --- entry points --------------------------------------------------------------------------------


def diff_spec(spec: Mapping[str, Any], contract: Contract, source: str = "<spec>") -> SpecDiff:
    """Compare a parsed OpenAPI document with the contract; raises SetupError without the endpoint."""
    endpoint = _find_endpoint(spec, source)
    spec_side = _Side(spec, source)
    side = {key: _Side(schema, f"schemas/{key}") for key, schema in contract.schemas.items()}
    request = spec_side.shape(endpoint.request)
    items = _compare_request(spec_side, side["request"], request, contract)
    items += _Prose(spec_side, request, contract).run()
    items += _compare_answer(spec_side, side["response"], endpoint)
    items += _compare_stream(spec_side, side["stream_event"], endpoint)
    items += _compare_error(spec_side, side["error"])
    order = {area: index for index, area in enumerate(AREAS)}
    items.sort(key=lambda d: order[d.area])
    return SpecDiff(source=source, spec_version=str(spec.get("openapi", "?")), items=items)


def iter_areas(result: SpecDiff) -> Iterator[tuple[str, list[Difference]]]:
    """The result's items grouped by area, in report order (areas without items included)."""
    for area in AREAS:
        yield area, [d for d in result.items if d.area == area]
