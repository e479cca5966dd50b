"""How a target is reached: its URL and query, the auth style, extra headers, TLS and a proxy.

OpenAI's endpoint takes ``Authorization: Bearer KEY`` at ``<base_url>/images/generations``.
Other targets differ in exactly these ways, each stated as data (a profile, or flags):

- **The URL.** ``--base-url`` may carry a query (an Azure deployment's
  ``…/openai/deployments/NAME?api-version=…``) and a profile may name parameters sent on every
  request (``query:``). Paths are joined on the URL's *path*, never on its text, so the query
  stays a query: ``…/NAME/images/generations?api-version=…``, and the trailing-slash probe is
  ``…/images/generations/?api-version=…``.
- **The auth style** (``auth:`` in a profile): ``bearer`` (``Authorization: Bearer KEY``, the
  default), ``header`` (the key alone as the value of a named header, ``api-key: KEY``) or
  ``query`` (the key as a named query parameter). The negative auth probes follow it (see
  :meth:`AuthStyle.sends`).
- **Extra headers** (``--header 'NAME: VALUE'``, ``headers:`` in a profile). A value written
  ``env:VAR`` is read from the environment variable ``VAR`` when the run starts, so a secret
  never sits in argv or in a profile file; such values are secrets for the one redactor.
- **TLS** (``--ca-bundle FILE``, ``--insecure``) and a **proxy** (``--proxy URL``) for the
  target's traffic only: image URLs are fetched by a client of their own, directly, with the
  system's CAs (and the given CA file), and their addresses checked as always.

Everything here turns bad input into one :class:`~conformance.errors.SetupError` line.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import SetupError

__all__ = [
    "AUTH_STYLES",
    "ENV_PREFIX",
    "RESERVED_HEADERS",
    "AuthStyle",
    "check_proxy",
    "join_url",
    "parse_header",
    "parse_query",
    "resolve_headers",
    "ssl_context",
    "url_query",
]

#: A header value (or query value) written ``env:VAR`` is read from ``$VAR``.
ENV_PREFIX = "env:"
AUTH_STYLES = ("bearer", "header", "query")
#: Headers the transport sets itself: an extra header may not replace them (framing, the body's
#: type, what is accepted back).
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "content-type",
        "accept",
        "accept-encoding",
    }
)
#: RFC 9110 token characters: what a header name may hold.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: A query parameter's name or an environment variable's: no spaces, nothing that needs quoting.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class AuthStyle:
    """How the key is sent: ``bearer`` (``Authorization: Bearer KEY``), ``header`` (``NAME: KEY``)
    or ``query`` (``?NAME=KEY``)."""

    style: str = "bearer"
    #: The header or query parameter that carries the key (``authorization`` for bearer).
    name: str = "authorization"

    @classmethod
    def from_mapping(cls, data: Any) -> AuthStyle:
        """A profile's ``auth:`` value; ValueError names what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError("must be a mapping: {style: bearer|header|query, name: ...}")
        bad = sorted(set(data) - {"style", "name"})
        if bad:
            raise ValueError(f"unknown key {bad[0]!r} (style, name)")
        style = data.get("style", "bearer")
        if style not in AUTH_STYLES:
            raise ValueError(f"style must be one of {', '.join(AUTH_STYLES)} (got {style!r:.40})")
        if style == "bearer":
            if data.get("name") not in (None, "authorization", "Authorization"):
                raise ValueError("style bearer is always sent as Authorization: leave out 'name'")
            return cls()
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"style {style} needs 'name': the {style} that carries the key")
        if style == "header":
            if not _TOKEN.match(name) or name.lower() in RESERVED_HEADERS:
                raise ValueError(f"name {name!r:.40} cannot be a header carrying the key")
            return cls("header", name.lower())
        if any(c in name for c in "&=#? "):
            raise ValueError(f"name {name!r:.40} cannot be a query parameter")
        return cls("query", name)

    @property
    def is_bearer(self) -> bool:
        return self.style == "bearer"

    def where(self) -> str:
        """Where the key goes, in words (titles, messages): ``Authorization``, ``api-key
        header``, ``key query parameter``."""
        if self.style == "bearer":
            return "Authorization header"
        return f"{self.name} {'header' if self.style == 'header' else 'query parameter'}"

    def sends(self, auth: str) -> bool:
        """Whether a probe of this kind (``Case.auth``) means anything in this style.

        A missing key, a wrong key and an empty credential exist in every style; the key under
        another scheme than ``Bearer`` exists only where there is a scheme.
        """
        return auth != "other-scheme" or self.is_bearer

    def credential(self, auth: str, key: str | None, wrong: str) -> str | None:
        """The value sent for a case's ``auth`` (None: nothing is sent)."""
        if auth == "missing" or (auth == "valid" and not key):
            return None
        if self.is_bearer:
            if auth == "blank-bearer":
                # What "Bearer " arrives as: HTTP drops a header value's trailing whitespace.
                return "Bearer"
            if auth == "other-scheme":
                # The right key under another scheme: a server that reads the token and ignores
                # the scheme accepts it.
                return f"Basic {key or wrong}"
            return f"Bearer {wrong if auth == 'wrong' else key}"
        if auth == "blank-bearer":
            return ""  # the style's header or parameter, with no value
        return wrong if auth == "wrong" else key

    def probe_title(self, auth: str) -> str | None:
        """The title of an auth probe in this style (None: the probe does not apply)."""
        if not self.sends(auth):
            return None
        if self.is_bearer:
            return {
                "missing": "no Authorization header",
                "wrong": "wrong key",
                "blank-bearer": "Bearer with no token",
                "other-scheme": "the key under another scheme",
            }.get(auth)
        return {
            "missing": f"no {self.where()}",
            "wrong": "wrong key",
            "blank-bearer": f"{self.where()} with no value",
        }.get(auth)


# --- headers ---------------------------------------------------------------------------------


def parse_header(text: str, flag: str = "--header") -> tuple[str, str]:
    """``'NAME: VALUE'`` as (lower-cased name, value); the value may be ``env:VAR``."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not name or "=" in name:
        raise SetupError(f"{flag}: expected 'NAME: VALUE', with a colon as in curl -H")
    return check_header(name, value, flag)


def check_header(name: Any, value: Any, flag: str) -> tuple[str, str]:
    """A header name and value fit to be sent, or a SetupError naming them."""
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise SetupError(f"{flag}: {name!r:.60} is not a header name")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SetupError(f"{flag}: the value of {name} must be a string")
    value = str(value)
    if any(c in value for c in "\r\n\0"):
        raise SetupError(f"{flag}: the value of {name} holds a line break")
    if (problem := unsendable(value)) is not None:
        raise SetupError(f"{flag}: the value of {name} {problem}")
    if name.lower() in RESERVED_HEADERS:
        raise SetupError(f"{flag}: {name} is set by imgconf itself and cannot be replaced")
    return name.lower(), value


def resolve_value(value: str, where: str, environ: Mapping[str, str]) -> tuple[str, bool]:
    """A value as sent, and whether it came from the environment (then it is a secret)."""
    if not value.startswith(ENV_PREFIX):
        return value, False
    var = value[len(ENV_PREFIX) :].strip()
    if not _ENV_NAME.match(var):
        raise SetupError(f"{where}: {value!r:.60} must name an environment variable (env:VAR)")
    found = environ.get(var)
    if found is None or found == "":
        raise SetupError(f"{where}: the environment variable {var} is not set (or empty)")
    if any(c in found for c in "\r\n\0"):
        raise SetupError(f"{where}: the environment variable {var} holds a line break")
    if (problem := unsendable(found)) is not None:
        raise SetupError(f"{where}: the environment variable {var} {problem}")
    return found, True


def unsendable(value: str) -> str | None:
    """Why ``value`` cannot go in an HTTP header as it is (None when it can): a character
    outside printable ASCII, or space at either end. httpx and h11 refuse such a value only as
    the request is made, where the failure would read as the target's. Says where, never what
    (a value may be a secret)."""
    for index, char in enumerate(value):
        if not (" " <= char <= "~" or char == "\t"):
            kind = "a control character" if ord(char) < 128 else "a non-ASCII character"
            return f"holds {kind} at position {index + 1}, which an HTTP header cannot carry"
    if value != value.strip(" \t"):
        return "starts or ends with a space, which an HTTP header cannot carry"
    return None


def resolve_headers(
    profile_headers: Mapping[str, str],
    flags: Iterable[str],
    auth: AuthStyle,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The extra headers of a run (the profile's, then ``--header`` ones over them) with their
    ``env:`` values read, and the values that are secrets.

    A header that names the auth style's own header is refused: the probes that send no key
    (or a wrong one) would otherwise still carry it.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, tuple[str, str]] = {}
    for name, value in profile_headers.items():
        raw[name.lower()] = (value, "profile field 'headers'")
    for text in flags:
        name, value = parse_header(text)
        raw[name] = (value, "--header")
    headers: dict[str, str] = {}
    secrets: list[str] = []
    for name, (value, where) in raw.items():
        if auth.style != "query" and name == auth.name:
            raise SetupError(
                f"{where}: {name} carries the key (auth style {auth.style}): pass the key with "
                "--api-key or OPENAI_API_KEY instead"
            )
        sent, secret = resolve_value(value, f"{where} {name}", environ)
        headers[name] = sent
        if secret:
            secrets.append(sent)
    return headers, secrets


# --- URLs ------------------------------------------------------------------------------------


def parse_query(data: Any, where: str) -> dict[str, str]:
    """A profile's ``query:`` mapping as strings; SetupError names a bad entry."""
    if not isinstance(data, Mapping):
        raise SetupError(f"{where} must map query parameter names to values")
    out = {}
    for name, value in data.items():
        if not isinstance(name, str) or not name or any(c in name for c in "&=#? "):
            raise SetupError(f"{where}: {name!r:.40} is not a query parameter name")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SetupError(f"{where}.{name} must be a string")
        out[name] = str(value)
    return out


def url_query(url: str) -> dict[str, str]:
    """The query parameters of a URL, in order."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def join_url(base_url: str, path: str = "", query: Mapping[str, str] | None = None) -> str:
    """``path`` appended to the base URL's *path*, the base's query kept (then ``query`` added
    over it): ``join_url('https://h/d/NAME?api-version=1', '/images/generations/')`` is
    ``https://h/d/NAME/images/generations/?api-version=1``."""
    parts = urlsplit(base_url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    params.update(query or {})
    joined = parts.path.rstrip("/") + path if path else parts.path
    return urlunsplit((parts.scheme, parts.netloc, joined, urlencode(params), ""))


# --- TLS and proxy ---------------------------------------------------------------------------


def ssl_context(ca_bundle: str | Path | None, *, insecure: bool = False) -> ssl.SSLContext | bool:
    """What the target's client verifies TLS with: the system's CAs (True), a CA file's, or
    nothing (``--insecure``). A CA file that is missing or unreadable is a SetupError."""
    if insecure:
        return False
    if ca_bundle is None:
        return True
    path = Path(ca_bundle)
    if not path.is_file():
        raise SetupError(f"--ca-bundle: no such file {path}")
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise SetupError(
            f"--ca-bundle: cannot read {path} as PEM certificates ({reason})"
        ) from None
    return context


def check_proxy(url: str | None) -> str | None:
    """A ``--proxy`` URL fit to use (http or https), or a SetupError."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        from ..redact import strip_url

        raise SetupError(f"--proxy must be an http(s) URL (got {strip_url(url)!r})")
    return url


def proxy_secret(url: str | None) -> str | None:
    """The password of a proxy URL (``http://user:pass@proxy``): a secret for the redactor."""
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None
