"""Multipart cases (edits, variations) as the engine sends, records and judges them.

A multipart case's body is made from its parts as it is sent (:meth:`Case.iter_content`): its
input files are recipes, and the largest are 50 MB and more, so the body is never held, neither
to send it nor to record it. What is kept of it instead is its **summary**
(:func:`request_summary`): the text parts as sent, and for each file its name, media type,
length, digest (the stamp's 16-hex form) and recipe, from which the same bytes are made again.
The exchange's ``request_body`` holds that summary as JSON; the HAR recorder and a replay read
it (or :func:`request_summary` of the case) to write the parts and to make the files again.

The judge reads what a form asked the way the server does: each text part decoded as its
field's type (:func:`asked_fields`), and which file fields the form carries (:func:`sent_files`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..contract.loader import GENERATIONS, Endpoint, load_contract
from ..generation.cases import Case
from ..generation.inputs import InputFile

__all__ = [
    "SUMMARY_FORMAT",
    "asked_fields",
    "body_pieces",
    "endpoint_path",
    "file_parts",
    "request_summary",
    "sent_files",
    "summary_bytes",
]

#: The ``format`` of a summary: what a reader of a recording checks before reading one.
SUMMARY_FORMAT = "imgconf-multipart/1"


def endpoint_path(name: str) -> str:
    """The path of an endpoint under the API's base URL, as its contract states it."""
    return load_contract().endpoint(name).path


async def body_pieces(case: Case) -> AsyncIterator[bytes]:
    """The case's body in pieces, as an async stream (httpx's async client takes only those):
    each call makes the body afresh from the recipes, so a retry or a redirect sends it again
    without it ever being held."""
    for piece in case.iter_content():
        yield piece


def request_summary(case: Case) -> dict[str, Any]:
    """What was sent in a multipart case, without its files' bytes: the content type (with
    its boundary), the body's length, and each part in order: ``{"name", "value"}`` for a text
    part, ``{"name", "filename", "content_type", "bytes", "digest", "recipe"}`` for a file."""
    parts: list[dict[str, Any]] = []
    for part in _sent_order(case):
        if part.file is None:
            parts.append({"name": part.name, "value": part.value or ""})
            continue
        recipe = part.file
        parts.append(
            {
                "name": part.name,
                "filename": recipe.filename,
                "content_type": recipe.media_type,
                "bytes": recipe.size(),
                "digest": recipe.digest(),
                "recipe": recipe.to_dict(),
            }
        )
    return {
        "format": SUMMARY_FORMAT,
        "endpoint": case.endpoint,
        "content_type": case.content_type,
        "bytes": case.content_length(),
        "parts": parts,
    }


def summary_bytes(case: Case) -> bytes:
    """The summary as the exchange's ``request_body`` holds it (compact JSON)."""
    return json.dumps(request_summary(case), separators=(",", ":")).encode()


def _sent_order(case: Case) -> list[Any]:
    """The parts in the order they are sent: text parts first, then files, each in order."""
    return [p for p in case.parts if p.file is None] + [p for p in case.parts if p.file]


def file_parts(case: Case, endpoint: Endpoint, model: str) -> dict[str, list[InputFile]]:
    """The files the form carries, by the field they belong to (``image[]`` parts are the
    ``image`` field's), in the order they are sent. Parts of no file field are left out."""
    files = endpoint.files.get(model) or next(iter(endpoint.files.values()), {})
    owner = {part: name for name, spec in files.items() for part in spec.parts}
    out: dict[str, list[InputFile]] = {}
    for part in case.parts:
        if part.file is not None and part.name in owner:
            out.setdefault(owner[part.name], []).append(part.file)
    return out


def sent_files(case: Case, endpoint: Endpoint, model: str) -> frozenset[str]:
    """The file fields the form carries at least one file for."""
    return frozenset(file_parts(case, endpoint, model))


def asked_fields(case: Case, endpoint: Endpoint) -> dict[str, Any]:
    """The form's text fields as the request asks them: each decoded as its field's type
    (``n`` an integer, ``stream`` a boolean), a value that does not decode kept as text, a
    field sent twice read as its last value."""
    out: dict[str, Any] = {}
    for part in case.parts:
        if part.file is not None or part.value is None:
            continue
        schema = endpoint.request_fields.get(part.name)
        out[part.name] = _decoded(part.value, schema) if schema is not None else part.value
    return out


def _types(schema: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    kind = schema.get("type")
    if isinstance(kind, str):
        found.add(kind)
    elif isinstance(kind, list):
        found.update(k for k in kind if isinstance(k, str))
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, ()):
            if isinstance(branch, Mapping):
                found |= _types(branch)
    return found


def _decoded(value: str, schema: Mapping[str, Any]) -> Any:
    """A text part's value as its field's JSON type, as a multipart server reads it."""
    types = _types(schema)
    if "boolean" in types and value in ("true", "false"):
        return value == "true"
    if types & {"integer", "number"}:
        try:
            return int(value)
        except ValueError:
            if "number" in types:
                try:
                    return float(value)
                except ValueError:
                    pass
    return value


def is_multipart_endpoint(name: str) -> bool:
    """Whether an endpoint's requests are multipart forms (every one beside generations)."""
    return name != GENERATIONS
