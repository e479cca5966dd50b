"""A last line of defence against key leaks in what imgconf writes (reports, recordings).

The transport already replaces the exact key wherever it appears. What reaches a file is
scrubbed once more for anything that *looks* like a credential — a bearer token in a header, an
OpenAI-style ``sk-...`` key in a body, a password in a URL — because a hostile server may echo
a key the transport did not know about (a proxy's upstream key, say), and a report is shared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SECRET_HEADERS",
    "redact_credential",
    "scrub_bytes",
    "scrub_headers",
    "scrub_text",
    "strip_url",
]

REDACTED = "[REDACTED]"
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie"}
)
#: OpenAI-style keys (sk-..., sk-proj-..., sess-...): long runs after a known prefix.
_KEY_LIKE = re.compile(r"\b(?:sk|sess|rk)-[A-Za-z0-9_\-]{16,}")
_KEY_LIKE_BYTES = re.compile(rb"\b(?:sk|sess|rk)-[A-Za-z0-9_\-]{16,}")
_SECRET_QUERY = re.compile(
    r"(?i)((?:api[_-]?key|key|token|access_token|sig|signature|secret|password)=)[^&#]*"
)


def scrub_text(text: str) -> str:
    """The text with every key-like token replaced."""
    return _KEY_LIKE.sub(REDACTED, text)


def scrub_bytes(data: bytes) -> bytes:
    """Bytes with every key-like token replaced (base64 never matches: it has no ``-``)."""
    return _KEY_LIKE_BYTES.sub(REDACTED.encode(), data)


def redact_credential(value: str) -> str:
    """The value of a credential header redacted, its scheme kept (``Bearer [REDACTED]``) so a
    reader still sees how the credential was sent."""
    scheme = value.split(" ", 1)[0] if " " in value else ""
    return f"{scheme} {REDACTED}" if scheme.isalpha() else REDACTED


def scrub_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with credential values redacted, whatever the transport did before."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        lower = str(name).lower()
        value = str(value)
        out[lower] = redact_credential(value) if lower in SECRET_HEADERS else scrub_text(value)
    return out


def strip_url(url: str) -> str:
    """The URL without user:password and with secret-looking query values redacted."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return scrub_text(url)
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    query = _SECRET_QUERY.sub(rf"\1{REDACTED}", parts.query)
    return scrub_text(urlunsplit((parts.scheme, netloc, parts.path, query, "")))
