"""Reading a JSON body's text without parsing it: where a string ends, and how many objects and
arrays the body may hold.

Both are asked of answers that are mostly one long base64 string (1-4 MB per image). Each walks
from quote to quote with ``bytes.find`` (memchr speed) and never scans the inside of a string
byte by byte, so neither costs more for a bigger image.
"""

from __future__ import annotations

__all__ = ["closing_quote", "container_bound"]

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
