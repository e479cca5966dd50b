"""Which contract rules a request breaks, by rule id.

This is the executable side of the request schema: it reads every limit from the contract data
and names the rule each break violates, which a JSON Schema error cannot do. The reference server
uses it to answer, the strategies to prove that an invalid case breaks exactly its labelled rule,
and the checks to know what a correct server does with an explored case. Tests hold it and the
strict request schema to the same verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .loader import GPT_FAMILY, Contract, ModelSpec, load_contract

__all__ = [
    "GPT_ONLY_FIELDS",
    "Violation",
    "parse_body",
    "parse_size",
    "request_violations",
    "resolve_model",
]

_WXH = re.compile(r"^([1-9][0-9]{0,5})x([1-9][0-9]{0,5})$")


@dataclass(frozen=True)
class Violation:
    """One broken rule: its id, the offending field (as an error's ``param``), a message."""

    rule: str
    param: str | None
    message: str


def _gpt_only_fields(contract: Contract) -> tuple[str, ...]:
    dalle = contract.models[contract.family_models("dall-e")[0]]
    gpt = contract.models[contract.family_models(GPT_FAMILY)[0]]
    return tuple(sorted(gpt.params - dalle.params))


GPT_ONLY_FIELDS = _gpt_only_fields(load_contract())


def parse_size(size: str) -> tuple[int, int] | None:
    """``"1536x864"`` -> ``(1536, 864)``; None for anything that is not a plain ``WxH``."""
    match = _WXH.match(size)
    return (int(match[1]), int(match[2])) if match else None


def parse_body(raw: bytes) -> tuple[Any, Violation | None]:
    """Decode a request body; a body that is not JSON is a violation of its own."""
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError):
        return None, Violation("request.body.not_json", None, "The body is not valid JSON.")


def resolve_model(body: Mapping[str, Any], contract: Contract | None = None) -> str | None:
    """The model a request addresses: its ``model``; when omitted, dall-e-2 unless GPT-only
    fields carry values (then a GPT image model, which one the spec leaves open: None)."""
    contract = contract or load_contract()
    model = body.get("model")
    if model is not None:
        return model if isinstance(model, str) else None
    if any(body.get(f) is not None for f in GPT_ONLY_FIELDS):
        return None
    return contract.schemas["request"]["properties"]["model"]["default"]


def _is_integer(value: Any) -> bool:
    # JSON Schema counts 1.0 as an integer; so does this, to agree with the schema.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def request_violations(body: Any, contract: Contract | None = None) -> list[Violation]:
    """Every rule the decoded request body breaks, MUST and SHOULD, in a stable order."""
    contract = contract or load_contract()
    if not isinstance(body, dict):
        return [Violation("request.body.not_object", None, "The body must be a JSON object.")]
    out: list[Violation] = []
    fields = contract.request_fields

    model_name = body.get("model")
    spec: ModelSpec | None = None
    if model_name is not None and (
        not isinstance(model_name, str) or model_name not in contract.models
    ):
        out.append(
            Violation("request.model.unknown", "model", f"Unknown model: {model_name!r:.80}.")
        )
    else:
        resolved = resolve_model(body, contract)
        spec = contract.models.get(resolved) if resolved else None

    for key in body:
        if key not in fields:
            out.append(Violation("request.unknown_field", key, f"Unknown parameter: '{key:.80}'."))

    out.extend(_prompt_violations(body, spec))
    out.extend(_n_violations(body, spec, contract))
    # Each enum field (``contract.enum_fields``) has a rule ``request.<field>.enum`` of its own.
    for name in ("size", *contract.enum_fields, "output_compression", "partial_images", "stream"):
        value = body.get(name)
        if value is None:
            continue
        if spec is not None and not spec.takes(name):
            out.append(
                Violation(
                    "request.unsupported_param",
                    name,
                    f"'{name}' is not supported with model {spec.name}.",
                )
            )
            continue
        out.extend(_field_violations(name, value, body, spec, contract))
    return out


def _prompt_violations(body: Mapping[str, Any], spec: ModelSpec | None) -> list[Violation]:
    if "prompt" not in body:
        return [
            Violation("request.prompt.required", "prompt", "Missing required parameter: 'prompt'.")
        ]
    prompt = body["prompt"]
    if not isinstance(prompt, str):
        return [Violation("request.prompt.type", "prompt", "'prompt' must be a string.")]
    if prompt == "":
        return [Violation("request.prompt.empty", "prompt", "'prompt' must not be empty.")]
    if spec is not None and len(prompt) > spec.prompt_max_chars:
        return [
            Violation(
                "request.prompt.max_length",
                "prompt",
                f"'prompt' is {len(prompt)} characters; {spec.name} takes at most "
                f"{spec.prompt_max_chars}.",
            )
        ]
    return []


def _n_violations(
    body: Mapping[str, Any], spec: ModelSpec | None, contract: Contract
) -> list[Violation]:
    n = body.get("n")
    if n is None:
        return []
    if not _is_integer(n):
        return [Violation("request.n.type", "n", f"'n' must be an integer (got {n!r:.40}).")]
    bounds = contract.request_fields["n"]["anyOf"][1]
    if n < bounds["minimum"]:
        return [Violation("request.n.min", "n", f"'n' must be at least {bounds['minimum']}.")]
    if spec is not None and n > spec.n_max and spec.n_max < bounds["maximum"]:
        return [
            Violation(
                f"request.n.max.{spec.name}", "n", f"{spec.name} supports only n<={spec.n_max}."
            )
        ]
    if n > bounds["maximum"]:
        return [Violation("request.n.max", "n", f"'n' must be at most {bounds['maximum']}.")]
    return []


def _field_violations(
    name: str, value: Any, body: Mapping[str, Any], spec: ModelSpec | None, contract: Contract
) -> list[Violation]:
    if name == "size":
        return _size_violations(value, spec)
    if name in contract.enum_fields:
        if value not in contract.enum_fields[name]:
            return [
                Violation(
                    f"request.{name}.enum", name, f"Invalid value for '{name}': {value!r:.60}."
                )
            ]
        if spec is not None and value not in spec.values(name):
            return [
                Violation(
                    "request.quality.model" if name == "quality" else f"request.{name}.enum",
                    name,
                    f"'{name}={value}' is not supported with model {spec.name}.",
                )
            ]
        if name == "background" and value == "transparent" and body.get("output_format") == "jpeg":
            return [
                Violation(
                    "request.background.transparent_jpeg",
                    "background",
                    "Transparent background needs output_format png or webp.",
                )
            ]
        return []
    if name in ("output_compression", "partial_images"):
        bounds = contract.request_fields[name]["anyOf"][1]
        if not _is_integer(value) or not bounds["minimum"] <= value <= bounds["maximum"]:
            return [
                Violation(
                    f"request.{name}.range",
                    name,
                    f"'{name}' must be an integer from {bounds['minimum']} to {bounds['maximum']}.",
                )
            ]
        if name == "output_compression" and body.get("output_format") in (None, "png"):
            return [
                Violation(
                    "request.output_compression.png",
                    name,
                    "'output_compression' applies to jpeg and webp output only.",
                )
            ]
        return []
    if name == "stream" and not isinstance(value, bool):
        return [Violation("request.stream.type", "stream", "'stream' must be a boolean.")]
    return []


def _size_violations(value: Any, spec: ModelSpec | None) -> list[Violation]:
    if not isinstance(value, str):
        return [Violation("request.size.enum", "size", "'size' must be a string.")]
    if spec is None or value in spec.sizes:
        return []
    wxh = parse_size(value)
    if spec.custom_sizes is not None and wxh is not None:
        broken = spec.custom_sizes.broken_rule(*wxh)
        if broken is None:
            return []
        return [Violation(broken, "size", f"Invalid size {value!r} for {spec.name}.")]
    return [
        Violation(
            "request.size.enum",
            "size",
            f"Invalid size {value!r:.40} for {spec.name}; use one of {', '.join(spec.sizes)}.",
        )
    ]
