"""Sending cases to a target and reading its answers, safely.

The target is untrusted: it may hang, reset, send random bytes, an endless body or a huge one,
echo the key back, or redirect elsewhere. Everything here is bounded: every request has an
overall deadline (not only httpx's per-read timeouts, which a slow drip evades), every body is
read as a stream and cut at a cap, retries are few and their waits capped. A request that a
kept-alive connection dropped before any answer is sent once more on a fresh connection: the
drop is what the *previous* answer on that connection left behind (a server that crashed and
reset it), not this request's verdict; a second drop is. Failures become an
:class:`~conformance.results.Exchange` with ``error`` set, never an exception: a broken server is
a finding for the checks, not a crash.

The API key is sent only to the target's origin: redirects are followed only within it, and
image URLs are fetched by a separate request that never carries it. Every exchange is redacted
before it leaves this module, so nothing downstream (reports, recordings, logs) can leak the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from . import __version__
from .cases import ANY_MODEL, Case
from .errors import SetupError
from .redact import REDACTED, SECRET_HEADERS, register_secrets, strip_url
from .results import Exchange

__all__ = [
    "REDACTED",
    "WRONG_KEY",
    "Transport",
    "TransportConfig",
    "excerpt",
    "is_http_url",
    "is_loopback",
    "origin_of",
    "probe_target",
]

#: The key sent by ``auth: wrong`` cases: plainly not a real key.
WRONG_KEY = "sk-imgconf-wrong-key-0000000000000000"
MIB = 1024 * 1024
#: Statuses retried (honouring Retry-After) before a case is called inconclusive.
RETRY_STATUSES = (429, 503)
_REDIRECTS = (301, 302, 303, 307, 308)
#: What is kept of a body cut at the cap.
_HEAD = 64 * 1024
_B64_RUN = re.compile(rb'"(b64_json|partial_image_b64)"\s*:\s*"[A-Za-z0-9+/=\\]{64,}"')
_LONG_STRING = re.compile(rb'"([^"\\]|\\.){2000,}"')


@dataclass(frozen=True)
class TransportConfig:
    """Where to send and how patiently. Defaults suit real endpoints (generation takes a while)."""

    base_url: str
    path: str = "/images/generations"
    api_key: str | None = None
    #: Overall deadline of one request, connection to last byte, in seconds.
    timeout: float = 120.0
    #: Cap of a 2xx answer body (n=10 large images in base64 fit).
    body_cap: int = 64 * MIB
    #: Cap of an error answer body: an error envelope is small.
    error_cap: int = 1 * MIB
    #: Cap of one fetched image.
    fetch_cap: int = 32 * MIB
    #: Retries of a 429/503 answer.
    retries: int = 2
    #: The longest Retry-After honoured; a longer one makes the case inconclusive at once.
    max_retry_wait: float = 30.0
    #: Wait before a retry when the answer names none.
    default_retry_wait: float = 1.0
    #: Redirects followed within the target's origin (never to another one).
    max_redirects: int = 3
    extra_headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + self.path


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def is_loopback(url: str) -> bool:
    """True when the URL's host is this machine (no money, no third party involved)."""
    host = urlsplit(url).hostname or ""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_http_url(url: object) -> bool:
    """Whether a URL is an http(s) URL with a host that can be requested as it is.

    An answer's URL is untrusted: one with an impossible port or a broken IPv6 literal makes
    the URL parser (or the socket layer, later) raise instead of failing the request.
    """
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def excerpt(body: bytes, limit: int = 4096) -> bytes:
    """A body short enough to keep for every case: base64 runs and long strings elided, cut."""
    if not body:
        return body
    head = body[: limit * 64]
    head = _B64_RUN.sub(lambda m: b'"' + m.group(1) + b'": "<base64 elided>"', head)
    head = _LONG_STRING.sub(b'"<long string elided>"', head)
    if len(head) > limit or len(body) > limit * 64:
        return head[:limit] + b"...<cut>"
    return head


#: The headers of a GET under the base URL are those of a plain request with the key.
_LISTING = Case(id="listing", model=ANY_MODEL, kind="probe", rule="", level="", expect="either")


def _secrets_of(config: TransportConfig) -> tuple[str | None, ...]:
    """What the transport sends that must never be written: the key and credential headers."""
    extra = (v for k, v in config.extra_headers.items() if k.lower() in SECRET_HEADERS)
    return (config.api_key, *extra)


class _BodyTooLarge(Exception):
    pass


class _ConnectionTrace:
    """Listens to httpcore's trace of one request: did it open its own connection?

    One that did not went out on a kept-alive connection, which the server may have closed or
    reset before it read this request (after crashing on the previous one, or when idle).
    """

    def __init__(self) -> None:
        self.connected = False

    async def __call__(self, event: str, info: Mapping[str, Any]) -> None:
        if event.startswith("connection.connect_tcp."):
            self.connected = True


def _dropped_before_answer(exc: Exception) -> bool:
    """True for the failures a stale kept-alive connection gives before any answer arrives."""
    if isinstance(exc, httpx.RemoteProtocolError):
        return "without sending a response" in str(exc)
    return isinstance(exc, httpx.ReadError | httpx.WriteError)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), None if absent."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


class Transport:
    """An async client for one target; use as ``async with Transport(config) as t``."""

    def __init__(self, config: TransportConfig, *, client: httpx.AsyncClient | None = None):
        self.config = config
        self._origin = origin_of(config.endpoint)
        # Registered process-wide: every writer then redacts what this transport sends.
        self._redactor = register_secrets(*_secrets_of(config))
        self._own_client = client is None
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        # The overall deadline is enforced around each request; httpx's own timeouts catch a
        # silent peer early and keep sockets from lingering.
        per_op = httpx.Timeout(config.timeout, connect=min(config.timeout, 30.0))
        self._client = client or httpx.AsyncClient(
            timeout=per_op, limits=limits, follow_redirects=False, trust_env=False
        )
        self._per_op = per_op
        self._fresh: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def _fresh_client(self) -> httpx.AsyncClient:
        """The client of retries after a kept-alive connection dropped a request: it keeps no
        connection alive, so a retry surely gets a fresh one. Made on first need."""
        if self._fresh is None:
            self._fresh = httpx.AsyncClient(
                timeout=self._per_op,
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=0),
                follow_redirects=False,
                trust_env=False,
            )
        return self._fresh

    async def aclose(self) -> None:
        if self._fresh is not None:
            await self._fresh.aclose()
        if self._own_client:
            await self._client.aclose()

    def redact(self, text: str) -> str:
        """Remove the key from a line of text before it is shown anywhere."""
        return self._redactor.text(text)

    # --- the target ---------------------------------------------------------------------

    def _request_headers(self, case: Case) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if case.stream else "application/json",
            "user-agent": f"imgconf/{__version__}",
            **{k.lower(): v for k, v in self.config.extra_headers.items()},
        }
        key = self.config.api_key
        if case.auth == "valid" and key:
            headers["authorization"] = f"Bearer {key}"
        elif case.auth == "wrong":
            headers["authorization"] = f"Bearer {WRONG_KEY}"
        elif case.auth == "blank-bearer":
            # What "Bearer " arrives as: HTTP drops a header value's trailing whitespace.
            headers["authorization"] = "Bearer"
        elif case.auth == "other-scheme":
            # The right key under another scheme: a server that reads the token and ignores the
            # scheme accepts it, one that checks the key alone cannot tell it from a valid one.
            headers["authorization"] = f"Basic {key or WRONG_KEY}"
        return headers

    async def get(self, path: str) -> Exchange:
        """GET a path under the base URL (``/models``) with the run's headers and key.

        The answer is read at the error cap (a listing is small) and never retried: this is how
        the pre-flight asks what the target offers, at the same origin the run talks to.
        """
        headers = self._request_headers(_LISTING)
        del headers["content-type"]
        url = self.config.base_url.rstrip("/") + path
        return await self._exchange("GET", url, headers, b"", self.config.error_cap)

    async def send(self, case: Case) -> Exchange:
        """Send one case, retrying 429/503 within bounds; never raises for a target's failure."""
        url = self.config.endpoint + case.path_suffix
        headers = self._request_headers(case)
        content = case.content()
        attempts: list[dict[str, Any]] = []
        while True:
            exchange = await self._exchange("POST", url, headers, content, self.config.body_cap)
            if exchange.status not in RETRY_STATUSES or len(attempts) >= self.config.retries:
                break
            asked = _retry_after(exchange.response_headers)
            wait = asked
            if wait is None:
                wait = self.config.default_retry_wait * (2 ** len(attempts))
            if wait > self.config.max_retry_wait:
                break  # honouring it would stall the run: the case is inconclusive
            attempts.append({"status": exchange.status, "retry_after": asked})
            await asyncio.sleep(wait)
        exchange.retries = len(attempts)
        exchange.attempts = attempts + exchange.attempts
        return exchange

    async def send_case(self, case: Case) -> Exchange:
        """Send a case and fetch the image URLs of a 2xx JSON answer into ``fetches``."""
        exchange = await self.send(case)
        if (
            exchange.error is None
            and exchange.status is not None
            and 200 <= exchange.status < 300
            and b'"url"' in exchange.response_body
        ):
            urls = _answer_urls(exchange.response_body)
            if urls:
                exchange.fetches = list(await asyncio.gather(*(self.fetch(u) for u in urls)))
        return exchange

    async def fetch(self, url: str) -> Exchange:
        """GET an image URL from an answer: never with the key, only http(s), capped."""
        if not is_http_url(url):
            return Exchange(
                method="GET",
                url=self._redactor.url(url)
                if isinstance(url, str)
                else self._redactor.text(str(url)[:200]),
                request_headers={},
                request_body=b"",
                error="scheme",
            )
        headers = {"user-agent": f"imgconf/{__version__}", "accept": "image/*"}
        return await self._exchange(
            "GET", url, headers, b"", self.config.fetch_cap, same_origin_only=False
        )

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes,
        cap: int,
        *,
        same_origin_only: bool = True,
    ) -> Exchange:
        started = time.time()
        clock = time.perf_counter()
        exchange = Exchange(
            method=method,
            url=self._redactor.url(url),
            request_headers=self._redactor.headers(headers),
            request_body=self._redactor.data(content),
            started=started,
        )
        try:
            async with asyncio.timeout(self.config.timeout):
                trace = _ConnectionTrace()
                try:
                    await self._read(
                        exchange, method, url, headers, content, cap, same_origin_only, trace
                    )
                except httpx.TransportError as exc:
                    if trace.connected or exchange.status is not None:
                        raise
                    if not _dropped_before_answer(exc):
                        raise
                    # A kept-alive connection dropped it before any answer: once more, fresh.
                    exchange.attempts.append(
                        {
                            "error": "connection",
                            "reconnected": True,
                            "reason": self._redactor.text(str(exc)[:200]),
                        }
                    )
                    exchange.response_headers, exchange.response_body = {}, b""
                    await self._read(
                        exchange, method, url, headers, content, cap, same_origin_only, None
                    )
        except TimeoutError:
            exchange.error = "timeout"
        except _BodyTooLarge:
            exchange.error = "too_large"
            exchange.truncated = True
        except httpx.RemoteProtocolError as exc:
            # A peer that hangs up (before or during the answer) dropped the connection;
            # anything else it sent was not HTTP.
            dropped = any(word in str(exc).lower() for word in ("disconnect", "closed"))
            exchange.error = "connection" if dropped else "protocol"
        except (httpx.LocalProtocolError, httpx.DecodingError):
            exchange.error = "protocol"
        except httpx.TimeoutException:
            exchange.error = "timeout"
        except (httpx.TransportError, OSError):
            exchange.error = "connection"
        except httpx.InvalidURL:
            exchange.error = "scheme"
        except ValueError:
            # A redirect to a URL that does not parse (a port out of range, a broken IPv6
            # literal): what the target answered is not usable HTTP.
            exchange.error = "protocol"
        exchange.elapsed = time.perf_counter() - clock
        exchange.response_body = self._redactor.data(exchange.response_body)
        return exchange

    async def _read(
        self,
        exchange: Exchange,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes,
        cap: int,
        same_origin_only: bool,
        trace: _ConnectionTrace | None,
    ) -> None:
        """One attempt; ``trace`` None sends it through the client that opens a fresh
        connection for every request."""
        client = self._client if trace is not None else self._fresh_client()
        extensions = {"trace": trace} if trace is not None else None
        for _ in range(self.config.max_redirects + 1):
            request = client.build_request(
                method, url, headers=headers, content=content, extensions=extensions
            )
            response = await client.send(request, stream=True)
            try:
                exchange.status = response.status_code
                exchange.response_headers = self._redactor.headers(response.headers)
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    target = str(response.url.join(location))
                    same = origin_of(target) == self._origin
                    if not (same or not same_origin_only) or (
                        method == "POST" and response.status_code not in (307, 308)
                    ):
                        # Another origin would get the key; a 301-303 would drop the body:
                        # both are the target's answer, judged as it is.
                        await self._drain(exchange, response, self.config.error_cap)
                        return
                    await response.aclose()
                    url = target
                    exchange.url = self._redactor.url(url)
                    continue
                limit = cap if 200 <= response.status_code < 300 else self.config.error_cap
                await self._drain(exchange, response, limit)
                return
            finally:
                await response.aclose()
        exchange.error = "protocol"

    @staticmethod
    async def _drain(exchange: Exchange, response: httpx.Response, cap: int) -> None:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            exchange.response_body = b""
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    # Keep only a head of the cut body: enough to show what it was.
                    head = bytearray()
                    for part in (*chunks, chunk):
                        head += part[: _HEAD - len(head)]
                        if len(head) >= _HEAD:
                            break
                    chunks.clear()
                    exchange.response_body = bytes(head[: min(_HEAD, cap)])
                    raise _BodyTooLarge
                chunks.append(chunk)
        finally:
            if not exchange.response_body:
                exchange.response_body = b"".join(chunks)


def _answer_urls(body: bytes, limit: int = 16) -> list[str]:
    """The string ``url`` of each item of a JSON answer's ``data``, in order (at most ``limit``).

    Judging pairs fetches with items by this order. The limit keeps a server that answers a
    thousand URLs from making the suite fetch them all.
    """
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        return []
    urls = [
        item["url"] for item in data if isinstance(item, dict) and isinstance(item.get("url"), str)
    ]
    return urls[:limit]


async def probe_target(base_url: str, timeout: float = 10.0) -> None:
    """Check once that something listens at the target; nothing there is a set-up error.

    Only the TCP connection is tried: a server that accepts and then misbehaves is a finding
    for the run, not a reason to refuse it.
    """
    if not is_http_url(base_url):
        raise SetupError(f"--base-url must be an http(s) URL (got {strip_url(base_url)!r})")
    _scheme, host, port = origin_of(base_url)
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host.strip("[]"), port)
    except TimeoutError:
        raise SetupError(
            f"nothing answers at {host}:{port} (no connection within {timeout:g} s)"
        ) from None
    except OSError as exc:
        if "Name or service" in str(exc) or exc.errno in (-2, -3, -5):
            reason = "unknown host"
        elif exc.errno == errno.ECONNREFUSED:
            reason = "connection refused"
        else:
            reason = exc.strerror or exc.__class__.__name__
        raise SetupError(f"nothing listening at {host}:{port} ({reason.lower()})") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
