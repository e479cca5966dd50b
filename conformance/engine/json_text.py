"""Reading a JSON body's text around its strings: where a string ends, how many objects and
arrays the body may hold, and the body parsed with its base64 images decoded straight from it.

All three are asked of answers that are mostly one long base64 string (1-4 MB per image). Each
walks from quote to quote with ``bytes.find`` (memchr speed) and never scans the inside of a
string byte by byte in Python.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from .base64_strict import decode_base64

__all__ = ["closing_quote", "container_bound", "loads_lifting_base64"]

#: Strings stepped over one by one before the rest of a body is counted whole (bounded work in
#: Python however many strings a body holds; the count is then an over-estimate).
WALKED_STRINGS = 256


def closing_quote(body: bytes, start: int, escaped: int = 1000) -> int:
    """The index of the quote that ends a JSON string opened just before ``start``; -1 when
    there is none, or when more than ``escaped`` escaped quotes come first (bounded work)."""
    for _ in range(escaped + 1):
        end = body.find(b'"', start)
        if end == -1:
            return -1
        window = body[max(start, end - 4096) : end]
        backslashes = len(window) - len(window.rstrip(b"\\"))
        if backslashes == len(window) == 4096:  # a run of escapes longer than the window
            while end - backslashes - 1 >= start and body[end - backslashes - 1] == 0x5C:
                backslashes += 1
        if backslashes % 2 == 0:
            return end
        start = end + 1
    return -1


def container_bound(body: bytes) -> int:
    """At least as many as the JSON objects and arrays a parser would build from ``body``.

    Every ``{`` and ``[`` outside strings counts. A parser reads the body in order and agrees
    with this walk on where each string starts and ends, for as far as it parses; past the
    strings stepped over (:data:`WALKED_STRINGS`, or an unterminated one), everything counts,
    inside strings too.
    """
    count = pos = 0
    for _ in range(WALKED_STRINGS):
        start = body.find(b'"', pos)
        if start == -1:
            break
        count += body.count(b"{", pos, start) + body.count(b"[", pos, start)
        end = closing_quote(body, start + 1)
        if end == -1:
            pos = start
            break
        pos = end + 1
    return count + body.count(b"{", pos) + body.count(b"[", pos)


#: Strings at least this long are read as base64 straight from the body, when they are.
LIFTED_LENGTH = 16 * 1024


def loads_lifting_base64(
    body: bytes, min_length: int = LIFTED_LENGTH
) -> tuple[Any, dict[str, bytes]]:
    """``json.loads(body)``, with the images taken out: each string of at least ``min_length``
    characters that is strict base64 is decoded straight from the body's bytes, and stands in
    the result as a token (a string no server can write, unique to this call) that maps to the
    decoded bytes.

    The result, and whether the body parses at all, are those of ``json.loads``: a string of
    base64 characters alone holds no escape, no quote and no control character, so it reads
    the same as JSON text and as bytes, and a token in its place changes nothing else. What
    this saves is the text of every image (as large as the image in base64) and parsing it.
    """
    view = memoryview(body)
    pieces: list[bytes | memoryview] = []
    lifted: dict[str, bytes] = {}
    nonce = secrets.token_hex(8)
    kept = pos = 0
    for _ in range(WALKED_STRINGS):
        start = body.find(b'"', pos)
        if start == -1:
            break
        end = closing_quote(body, start + 1)
        if end == -1:
            break
        pos = end + 1
        if end - start - 1 < min_length:
            continue
        decoded = decode_base64(view[start + 1 : end])
        if decoded is None:
            continue
        token = f"\x00image:{nonce}:{len(lifted)}"
        lifted[token] = decoded
        pieces += (view[kept:start], json.dumps(token).encode())
        kept = end + 1
    if not lifted:
        return json.loads(body), lifted
    pieces.append(view[kept:])
    return json.loads(b"".join(pieces)), lifted
