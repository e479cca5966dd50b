"""Multipart cases (edits, variations) as the engine sends, records and judges them.

A multipart case's body is made from its parts as it is sent (:meth:`Case.iter_content`): its
input files are recipes, and the largest are 50 MB and more, so the body is never held, neither
to send it nor to record it. What is kept of it instead is its **summary**
(:func:`request_summary`): the text parts as sent, and for each file its name, media type,
length, digest (the stamp's 16-hex form) and recipe, from which the same bytes are made again.
The exchange's ``request_body`` holds that summary as JSON; the HAR recorder and a replay read
it (or :func:`request_summary` of the case) to write the parts and to make the files again.

What a form asks, as the judge reads it, is :func:`~conformance.generation.showing.asked_fields`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ..contract.loader import load_contract
from ..generation.cases import Case

__all__ = [
    "SUMMARY_FORMAT",
    "body_pieces",
    "endpoint_path",
    "request_summary",
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
    for part in case.sent_parts:
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
