"""Sending cases to a target and reading its answers, safely.

The target is untrusted: it may hang, reset, send random bytes, an endless body or a huge one,
echo the key back, or redirect elsewhere. Everything here is bounded: every request has an
overall deadline (not only httpx's per-read timeouts, which a slow drip evades), every body is
read as a stream and cut at a cap, retries are few and their waits capped. A request that a
kept-alive connection dropped before any answer is sent once more on a fresh connection: the
drop is what the *previous* answer on that connection left behind (a server that crashed and
reset it), not this request's verdict; a second drop is. Failures become an
:class:`~conformance.engine.results.Exchange` with ``error`` set, never an exception: a broken server is
a finding for the checks, not a crash.

The API key is sent only to the target's origin, in the profile's auth style (a header or a
query parameter, :class:`~conformance.contract.reach.AuthStyle`), with the run's extra headers and query:
redirects are followed only within it, and image URLs are fetched by a client of their own that
carries nothing of the target's (no key, no extra header, no proxy, no cookie: neither client
keeps cookies at all, since a cookie set by the target would go back to every port and scheme
of its host). That client connects only to the
address it checked: a URL or redirect hop that reaches a loopback, private, link-local or cloud
metadata address is not fetched unless the target is on such an address itself or the user
allows it. Every exchange is redacted before it leaves this module, so nothing downstream
(reports, recordings, logs) can leak the key.

Memory is bounded run-wide, not only per answer: ``Accept-Encoding: identity`` is asked, a
coding applied anyway is undone here a bounded piece at a time (never a whole read at once, and
never two codings stacked), and the decoded bytes that the cases in flight hold together stay
within :attr:`TransportConfig.inflight_cap`. Retries of 429/503 share a budget for the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http.cookiejar
import io
import ipaddress
import json
import math
import select
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from .. import __version__, settings
from ..contract.loader import GENERATIONS
from ..contract.reach import AuthStyle, join_url, proxy_secret
from ..errors import SetupError
from ..generation.cases import ANY_MODEL, WRONG_KEY, Case
from ..redact import REDACTED, SECRET_HEADERS, register_secrets, strip_url
from .json_text import closing_quote
from .multipart import body_pieces, endpoint_path, summary_bytes
from .results import Exchange, TransportFailure

__all__ = [
    "REDACTED",
    "WRONG_KEY",
    "TargetClient",
    "TransportConfig",
    "address_class",
    "excerpt",
    "is_http_url",
    "is_loopback",
    "origin_of",
    "probe_target",
    "resolve_host",
]

#: Statuses retried (honouring Retry-After) before a case is called inconclusive.
RETRY_STATUSES = (429, 503)
_REDIRECTS = (301, 302, 303, 307, 308)
#: What is kept of a body cut at the cap.
_HEAD = 64 * 1024
#: The largest piece a content coding is undone by at once: the cap is checked between pieces.
_PIECE = 64 * 1024
#: The content codings undone (with the standard library's zlib); any other is refused.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
#: Cloud metadata services: never fetched unless the user allows internal addresses.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)


@dataclass(frozen=True)
class TransportConfig:
    """Where to send and how patiently. Defaults suit real endpoints (generation takes a while)."""

    base_url: str
    path: str = "/images/generations"
    api_key: str | None = None
    #: Overall deadline of one request, connection to last byte, in seconds.
    timeout: float = settings.DEFAULT_TIMEOUT
    #: Cap of a 2xx answer body (n=10 large images in base64 fit).
    body_cap: int = settings.BODY_CAP
    #: Cap of an error answer body: an error envelope is small.
    error_cap: int = settings.ERROR_CAP
    #: Cap of one fetched image.
    fetch_cap: int = settings.FETCH_CAP
    #: Decoded answer bytes that all the cases in flight may hold at once. 256 MiB keeps a run
    #: inside a 400 MB process with room for judging one answer and for the interpreter, at any
    #: concurrency; one case alone may always hold half of it (or the body cap, if larger), so
    #: an honest n=10 answer of 4 MB images (~55 MB in base64) is read whole, and reads beyond
    #: it wait for others to finish instead of failing.
    inflight_cap: int = settings.INFLIGHT_CAP
    #: Retries of a 429/503 answer.
    retries: int = settings.RETRIES
    #: The longest Retry-After honoured; a longer one makes the case inconclusive at once.
    max_retry_wait: float = settings.MAX_RETRY_WAIT
    #: Wait before a retry when the answer names none.
    default_retry_wait: float = settings.DEFAULT_RETRY_WAIT
    #: Seconds of retry waits the whole run may spend (summed over cases, so retries add at
    #: most this to a run's wall time whatever the concurrency) and retries it may make; once
    #: spent, a 429/503 answer is final (its case throttled, not observed).
    retry_budget: float = settings.RETRY_BUDGET
    retry_budget_count: int = settings.RETRY_BUDGET_COUNT
    #: Redirects followed within the target's origin (never to another one).
    max_redirects: int = settings.MAX_REDIRECTS
    #: Fetch image URLs that reach loopback, private, link-local or metadata addresses even
    #: when the target is not on such an address itself.
    allow_private_urls: bool = False
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    #: How the key is sent (a profile's ``auth:``): ``Authorization: Bearer`` by default.
    auth: AuthStyle = field(default_factory=AuthStyle)
    #: Query parameters sent on every request to the target (a profile's ``query:``), besides
    #: those of ``base_url`` itself.
    query: Mapping[str, str] = field(default_factory=dict)
    #: Values sent that must never be written (``env:`` header values, a proxy's password).
    secrets: tuple[str, ...] = ()
    #: TLS verification of the target: True (the system's CAs), an SSL context (``--ca-bundle``)
    #: or False (``--insecure``). Image URLs follow it: the CA file's CAs are trusted for them
    #: too, and under ``--insecure`` they are not verified either.
    verify: Any = True
    #: The CA file given, also trusted when fetching image URLs.
    ca_bundle: str | None = None
    #: A proxy for the target's traffic only (``--proxy``); image URLs are fetched directly.
    proxy: str | None = None
    #: The deployment each model's cases go to (``…/deployments/NAME`` + path, a profile's
    #: ``deployments:``); empty: every case goes to ``path`` under the base URL.
    deployments: Mapping[str, str] = field(default_factory=dict)
    #: The path of each endpoint beside generations (``edits``, ``variations``) when it is not
    #: the one its contract states (``/images/edits``); generations' is :attr:`path`.
    paths: Mapping[str, str] = field(default_factory=dict)

    def path_of(self, model: str, endpoint: str = GENERATIONS) -> str:
        """The path of a model's cases to ``endpoint``: under its deployment when the run sends
        each model to its own (a model-independent case goes to the first one)."""
        path = self.path
        if endpoint != GENERATIONS:
            path = self.paths.get(endpoint) or endpoint_path(endpoint)
        if not self.deployments:
            return path
        deployment = self.deployments.get(model) or next(iter(self.deployments.values()))
        return f"/deployments/{deployment}{path}"

    @property
    def endpoint(self) -> str:
        """The endpoint's URL: the path joined on the base URL's path (under the first
        deployment, when each model has its own), every query kept."""
        return self.url(self.path_of(next(iter(self.deployments), "")))

    def url(self, path: str, auth: str = "valid") -> str:
        """A URL under the base URL, with the run's query parameters (and, in the ``query``
        auth style, the case's credential)."""
        query = dict(self.query)
        if self.auth.style == "query":
            value = self.auth.credential(auth, self.api_key, WRONG_KEY)
            if value is not None:
                query[self.auth.name] = value
        return join_url(self.base_url, path, query)


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
    """A body short enough to keep for every case: base64 values and long strings elided, cut.

    Built by finding keys and quotes (C-speed ``find``), never by scanning base64 with a
    pattern, so its cost does not grow with a 4 MB image: each elided string costs one search
    for its closing quote, and at most ``limit`` bytes are copied.
    """
    if len(body) <= min(_LONG, limit) and not any(key in body for key in _IMAGE_KEYS):
        return bytes(body)  # nothing to elide or cut: most error answers
    return _elided(body, limit)


def _elided(body: bytes, limit: int) -> bytes:
    """:func:`excerpt`'s walk from string to string."""
    out = bytearray()
    pos, size = 0, len(body)
    while pos < size and len(out) < limit:
        start = body.find(b'"', pos, pos + limit)
        if start == -1:
            out += body[pos : pos + limit - len(out)]
            pos += limit
            break
        end = closing_quote(body, start + 1)
        if end == -1:  # an unterminated string: keep what fits
            out += body[pos : pos + limit - len(out)]
            pos = size
            break
        out += body[pos:start]
        value = body[start : end + 1]
        if _is_image_key(out) and len(value) > 66:
            out += b'"<base64 elided>"'
        elif len(value) > _LONG:
            out += b'"<long string elided>"'
        else:
            out += value
        pos = end + 1
    if pos < size or len(out) > limit:
        return bytes(out[:limit]) + b"...<cut>"
    return bytes(out)


#: Strings longer than this (quotes included) are elided from a kept excerpt.
_LONG = 2000
_IMAGE_KEYS = (b'"b64_json"', b'"partial_image_b64"')


def _is_image_key(before: bytearray) -> bool:
    """Whether the text kept so far ends with an image key and its colon."""
    tail = bytes(before[-40:]).rstrip()
    if not tail.endswith(b":"):
        return False
    return tail[:-1].rstrip().endswith(_IMAGE_KEYS)


#: The headers of a GET under the base URL are those of a plain request with the key.
_LISTING = Case(id="listing", model=ANY_MODEL, kind="probe", rule="", level="", expect="either")


def _secrets_of(config: TransportConfig) -> tuple[str | None, ...]:
    """What the transport sends that must never be written: the key and credential headers."""
    extra = (v for k, v in config.extra_headers.items() if k.lower() in SECRET_HEADERS)
    return (config.api_key, *extra, *config.secrets, proxy_secret(config.proxy))


class _BodyTooLarge(Exception):
    """An answer's body passed one of the run's bounds: ``name`` (its ``--limit`` name) at
    ``cap`` bytes."""

    def __init__(self, cap: int, name: str) -> None:
        super().__init__(f"past {name} ({cap} bytes)")
        self.cap = cap
        self.name = name


class _BadEncoding(Exception):
    """The answer's content coding is stacked, unknown, or does not decode."""


class _BlockedAddress(Exception):
    """An image URL (or a redirect hop) reaches an internal address that may not be fetched."""


class _NoCookies(http.cookiejar.CookiePolicy):
    """A cookie policy that accepts and returns nothing.

    Cookies are scoped by host, not by port or scheme, and a Domain cookie reaches sibling
    hosts: a target that sets one holding the key would have it sent on to image URLs. The
    suite needs no session state, so its clients keep none.
    """

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


def _no_cookies() -> http.cookiejar.CookieJar:
    return http.cookiejar.CookieJar(policy=_NoCookies())


# --- content codings ------------------------------------------------------------------------


class _Inflater:
    """Undoes one gzip or deflate coding a bounded piece at a time.

    ``zlib.decompress`` of one read inflates it whole: 64 KB of a gzip bomb are 64 MB, and a
    stacked coding multiplies that again. Each call here yields pieces of at most ``_PIECE``
    bytes, so the caller's cap is checked before more is made.
    """

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._inflater = zlib.decompressobj(_WBITS[coding])
        #: "deflate" is meant as zlib-wrapped, but servers also send it raw: tried once.
        self._may_be_raw = coding == "deflate"
        self._fed = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._fed = self._fed or bool(data)
        while not self._inflater.eof:
            try:
                piece = self._inflater.decompress(data, _PIECE)
            except zlib.error as exc:
                if self._may_be_raw:
                    self._may_be_raw = False
                    self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise _BadEncoding(f"the {self.coding} body does not decode ({exc})") from None
            self._may_be_raw = False
            data = self._inflater.unconsumed_tail
            if piece:
                yield piece
            # A full piece may leave output inside zlib even when all input is taken.
            if not data and len(piece) < _PIECE:
                return

    def finish(self) -> None:
        if self._fed and not self._inflater.eof:
            raise _BadEncoding(f"the {self.coding} body ends before its coding does")


def _inflater_for(encoding: str) -> _Inflater | None:
    """The decoder of an answer's Content-Encoding (as :attr:`Exchange.content_encoding`
    gives it), None for none; a stacked or unknown coding raises :class:`_BadEncoding`."""
    if not encoding:
        return None
    if "," in encoding:
        raise _BadEncoding(f"stacked content codings ({encoding}) are refused")
    if encoding not in _WBITS:
        raise _BadEncoding(f"the content coding {encoding!r} is not one the suite decodes")
    return _Inflater(encoding)


# --- the run-wide budget of bytes in flight ----------------------------------------------------


class InFlightBudget:
    """Decoded answer bytes held by the cases in flight, run-wide, bounded by ``limit``.

    Each case reads under a :class:`Lease` that holds its bytes until the case is done (answer
    and fetched images; in a run, until the answer is judged, so that answers waiting to be
    judged hold back reading more). Growing a lease waits while the others hold too much; so
    that this can never deadlock (every case half-read, each waiting for the others), the
    oldest lease, the *leader*, never waits: it has ``lane`` bytes of its own, the others share
    ``limit - lane``. When the leader finishes the next oldest takes its place, so every case
    progresses and the bytes held together never pass ``max(limit, lane)``. A single case past
    ``lane`` is cut. (An answer being judged needs no more bytes: judging always ends.)
    """

    def __init__(self, limit: int, lane: int) -> None:
        self.limit = limit
        self.lane = lane
        self._leases: dict[int, Lease] = {}
        self._tickets = 0
        self._waiters: list[asyncio.Future[None]] = []
        #: The sum of every open lease's bytes, kept as they change: it is asked at every chunk
        #: read, where a sum over the open leases would cost as many steps as cases in flight.
        self.held = 0

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[Lease]:
        lease = self.open()
        try:
            yield lease
        finally:
            lease.close()

    def open(self) -> Lease:
        """A new lease, the youngest; its holder must :meth:`Lease.close` it (``lease()``
        does so for a block of code)."""
        self._tickets += 1
        lease = Lease(self, self._tickets)
        self._leases[lease.ticket] = lease
        return lease

    def _close(self, lease: Lease) -> None:
        if self._leases.pop(lease.ticket, None) is not None:
            self._wake()

    def _leader(self) -> Lease | None:
        return next(iter(self._leases.values()), None)

    def _fits(self, lease: Lease, size: int) -> bool:
        leader = self._leader()
        if lease is leader:
            return True
        shared = self.held - (leader.held if leader is not None else 0)
        return shared + size <= self.limit - self.lane

    async def _acquire(self, lease: Lease, size: int) -> None:
        if lease.held + size > self.lane:
            raise _BodyTooLarge(self.lane, "inflight_cap")
        while not self._fits(lease, size):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        lease.held += size
        self.held += size

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class Lease:
    """One case's share of an :class:`InFlightBudget`."""

    def __init__(self, budget: InFlightBudget, ticket: int) -> None:
        self.budget = budget
        self.ticket = ticket
        self.held = 0

    async def acquire(self, size: int) -> None:
        await self.budget._acquire(self, size)

    def release(self, size: int) -> None:
        given = min(size, self.held)
        self.held -= given
        self.budget.held -= given
        self.budget._wake()

    def close(self) -> None:
        """Give back all its bytes (closing twice does nothing)."""
        self.budget.held -= self.held
        self.held = 0
        self.budget._close(self)


# --- internal addresses ------------------------------------------------------------------------


def address_class(address: str) -> str | None:
    """``loopback``, ``link-local``, ``metadata`` or ``private`` for an internal address, None
    for a global one (the internet, where an image CDN is)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "metadata"
    if ip.is_loopback or ip.is_unspecified:  # 0.0.0.0 and :: reach this machine too
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    return None if ip.is_global else "private"


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses a host name resolves to (the system resolver), in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


async def _addresses(host: str, port: int) -> list[str]:
    literal = _literal(host)
    return [literal] if literal is not None else await resolve_host(host, port)


class _AddressGuard:
    """Decides which addresses image URLs may be fetched from.

    Internal ones are allowed only in the class the target itself is on (a local server under
    test serves its images from loopback) or when the user allows them; metadata services only
    when the user does.
    """

    def __init__(self, target_url: str, *, allow_internal: bool) -> None:
        self._target = origin_of(target_url)
        self._allow_internal = allow_internal
        self._target_classes: frozenset[str] | None = None

    async def target_classes(self) -> frozenset[str]:
        if self._target_classes is None:
            _scheme, host, port = self._target
            try:
                found = await _addresses(host, port)
            except OSError:
                found = []
            self._target_classes = frozenset(filter(None, map(address_class, found)))
        return self._target_classes

    async def check(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``, in order; raises :class:`_BlockedAddress`
        when any address it resolves to may not be reached."""
        found = await _addresses(host, port)
        if not found:
            raise OSError(f"{host} resolves to no address")
        for address in found:
            await self.check_address(address, host)
        return list(dict.fromkeys(found))

    async def check_address(self, address: str, host: str) -> None:
        kind = address_class(address)
        if kind is None or self._allow_internal:
            return
        if kind != "metadata" and kind in await self.target_classes():
            return
        shown = host if _literal(host) == address else f"{host} ({address})"
        raise _BlockedAddress(
            f"{shown} is a {kind} address and the target is not on one"
            + ("" if kind == "metadata" else " (--allow-private-urls fetches it)")
        )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to an address the guard checked, and checks the connected peer too.

    The name is resolved once, here: connecting to the checked address (not resolving the
    name again) leaves no window for a second answer of the resolver to point elsewhere.
    """

    def __init__(self, guard: _AddressGuard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.check(host, port)
        # In the resolver's order, each tried in turn (localhost: ::1, then 127.0.0.1).
        for index, address in enumerate(addresses):
            try:
                stream = await self._inner.connect_tcp(
                    address,
                    port,
                    timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
                break
            except httpcore.ConnectError:
                if index == len(addresses) - 1:
                    raise
        peer = stream.get_extra_info("server_addr")
        try:
            if peer:
                await self._guard.check_address(str(peer[0]), host)
        except BaseException:
            await stream.aclose()
            raise
        return stream

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise _BlockedAddress("a unix socket is not an image URL")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _LargeReads(httpcore.AsyncNetworkBackend):
    """A network backend whose streams read up to :data:`~conformance.settings.READ_CHUNK`
    bytes at a time, whatever httpcore asks.

    httpcore asks for 64 KiB per read, and each read costs tens of microseconds of Python on
    the event loop (a cancel scope, h11's event, httpx's iterator, the body's bookkeeping)
    whatever it returns: a 3 MB answer took about 50 of them. asyncio hands a read at most the
    256 KiB it takes from the socket at once, so asking for more changes the count, not the
    bytes held.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _LargeReadStream(await self._inner.connect_tcp(*args, **kwargs))

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _LargeReadStream(await self._inner.connect_unix_socket(*args, **kwargs))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _LargeReadStream(httpcore.AsyncNetworkStream):
    """A stream of :class:`_LargeReads`: its reads (and its TLS stream's) ask for more."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = None
        self._socket_known = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max(max_bytes, settings.READ_CHUNK), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _LargeReadStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # httpcore asks this of every idle connection of the pool before each request;
            # anyio answers by building a dict of every attribute of the socket (two system
            # calls among them) to take the socket out of it, each time.
            if not self._socket_known:
                self._socket, self._socket_known = self._inner.get_extra_info("socket"), True
            return socket_readable(self._socket)
        return self._inner.get_extra_info(info)


def socket_readable(sock: socket.socket | None) -> bool:
    """Whether a read would return at once: data, or the end a server's close leaves (so an idle
    connection that is readable is not reused). A socket closed or unknown counts as readable."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


class _PoolTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over an httpcore connection pool on a network backend of imgconf's.

    httpx takes no network backend of its own; its transport sends everything through the
    httpcore pool it keeps as ``_pool``, so that pool is the one made here instead.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits,
        backend: httpcore.AsyncNetworkBackend,
    ) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_LargeReads(backend),
        )


def _image_transport(
    guard: _AddressGuard,
    limits: httpx.Limits,
    ca_bundle: str | None,
    *,
    verify: bool,
    tls: bool,
) -> _PoolTransport:
    """The transport of image URLs of one scheme (``tls``: https): every connection through the
    guard.

    The target's TLS settings hold for its images too (a self-hosted gateway serves them
    itself): its CA file is trusted besides the system's, and --insecure checks nothing
    (nothing of the target's is ever sent to an image URL, so nothing can leak there). The
    http:// one never speaks TLS, so it loads no CA store (tens of ms): its context trusts no
    one, so were it ever asked to, it would fail closed.
    """
    if not tls:
        return _PoolTransport(
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), limits, _GuardedBackend(guard)
        )
    ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
    if ca_bundle is not None and verify:
        ssl_context.load_verify_locations(cafile=ca_bundle)
    return _PoolTransport(ssl_context, limits, _GuardedBackend(guard))


def _target_transport(config: TransportConfig, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """The transport of the target's requests. Through a proxy, httpx's own (its proxy pools
    are httpx's to make); else one whose connections read :data:`settings.READ_CHUNK` at a
    time."""
    verify = _target_tls(config)
    if config.proxy:
        return httpx.AsyncHTTPTransport(
            verify=verify, limits=limits, proxy=config.proxy, trust_env=False
        )
    ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
    return _PoolTransport(ssl_context, limits, httpcore.AnyIOBackend())


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


def _certificate_refused(exc: BaseException) -> str | None:
    """Why TLS refused the peer's certificate (not trusted, another name), None when it was
    not that: the cause is an :class:`ssl.SSLCertVerificationError` somewhere down the chain."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason or "certificate verify failed")
        seen = seen.__cause__ or seen.__context__
    return None


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


def _target_tls(config: TransportConfig) -> Any:
    """The TLS setting of the target's clients. Traffic to an http:// target (directly or
    through an http:// proxy) never speaks TLS, so no CA store is loaded for it: loading one
    costs about 0.1 s of start-up for each client made."""
    proxy = str(config.proxy or "").lower()
    plain = origin_of(config.endpoint)[0] == "http" and not proxy.startswith("https:")
    return False if plain else config.verify


class TargetClient:
    """The client of one target: sends cases to it, reads its answers and fetches their image
    URLs, every read bounded. Use as ``async with TargetClient(config) as client``.

    Not an httpx transport: it holds httpx clients (the target's, a fresh-connection one for
    retries, and one for image URLs that carries nothing of the target's).
    """

    def __init__(self, config: TransportConfig):
        self.config = config
        self._origin = origin_of(config.endpoint)
        # Registered process-wide: every writer then redacts what this transport sends.
        self._redactor = register_secrets(*_secrets_of(config))
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        # The overall deadline is enforced around each request; httpx's own timeouts catch a
        # silent peer early and keep sockets from lingering.
        per_op = httpx.Timeout(config.timeout, connect=min(config.timeout, 30.0))
        self._client = httpx.AsyncClient(
            transport=_target_transport(config, limits),
            timeout=per_op,
            follow_redirects=False,
            trust_env=False,
            cookies=_no_cookies(),
        )
        self._per_op = per_op
        self._fresh: httpx.AsyncClient | None = None
        self._guard = _AddressGuard(config.endpoint, allow_internal=config.allow_private_urls)
        #: The image URLs' clients, by scheme (True: https).
        self._fetchers: dict[bool, httpx.AsyncClient] = {}
        self.inflight = InFlightBudget(
            config.inflight_cap, max(config.body_cap, config.inflight_cap // 2)
        )
        self._retry_seconds_left = config.retry_budget
        self._retries_left = config.retry_budget_count
        #: Asked before a request that may already have generated is sent again (after a 503,
        #: or a connection dropped once it was sent): the runner reserves the budget again.
        self.resend_gate: Callable[[Case], Awaitable[bool]] | None = None

    async def __aenter__(self) -> TargetClient:
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
                cookies=_no_cookies(),
                verify=_target_tls(self.config),
                proxy=self.config.proxy,
            )
        return self._fresh

    def _fetch_client(self, url: str) -> httpx.AsyncClient:
        """The client of image URLs of ``url``'s scheme: nothing of the target's in it, and it
        connects only to addresses the guard allows, on a fresh connection each time (each one
        checked). One per scheme, made on first need: only https needs a CA store."""
        tls = url[:6].lower() == "https:"
        fetcher = self._fetchers.get(tls)
        if fetcher is None:
            limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)
            fetcher = self._fetchers[tls] = httpx.AsyncClient(
                transport=_image_transport(
                    self._guard,
                    limits,
                    self.config.ca_bundle,
                    verify=self.config.verify is not False,
                    tls=tls,
                ),
                timeout=self._per_op,
                follow_redirects=False,
                trust_env=False,
                cookies=_no_cookies(),
            )
        return fetcher

    async def aclose(self) -> None:
        if self._fresh is not None:
            await self._fresh.aclose()
        for fetcher in self._fetchers.values():
            await fetcher.aclose()
        await self._client.aclose()

    # --- the target ---------------------------------------------------------------------

    def _request_headers(self, case: Case) -> dict[str, str]:
        headers = {
            "content-type": case.content_type,
            "accept": "text/event-stream" if case.stream else "application/json",
            "accept-encoding": "identity",
            "user-agent": f"imgconf/{__version__}",
            **{k.lower(): v for k, v in self.config.extra_headers.items()},
        }
        style = self.config.auth
        if style.style != "query":
            value = style.credential(case.auth, self.config.api_key, WRONG_KEY)
            if value is not None:
                headers[style.name] = value
        return headers

    async def get(self, path: str) -> Exchange:
        """GET a path under the base URL (``/models``) with the run's headers and key.

        The answer is read at the error cap (a listing is small) and never retried: this is how
        the pre-flight asks what the target offers, at the same origin the run talks to.
        """
        headers = self._request_headers(_LISTING)
        del headers["content-type"]
        url = self.config.url(path)
        async with self.inflight.lease() as lease:
            return await self._exchange(
                "GET", url, headers, b"", self.config.error_cap, lease, cap_name="error_cap"
            )

    async def send(self, case: Case) -> Exchange:
        """Send one case, retrying 429/503 within bounds; never raises for a target's failure."""
        async with self.inflight.lease() as lease:
            return await self._send(case, lease)

    async def _send(self, case: Case, lease: Lease) -> Exchange:
        path = self.config.path_of(case.model, case.endpoint)
        url = self.config.url(path + case.path_suffix, case.auth)
        headers = self._request_headers(case)
        content: Body = case.content() if not case.multipart else _Streamed(case)
        if isinstance(content, _Streamed):
            headers["content-length"] = str(content.length)
        attempts: list[dict[str, Any]] = []

        async def resend() -> bool:
            return self.resend_gate is None or await self.resend_gate(case)

        while True:
            exchange = await self._exchange(
                "POST",
                url,
                headers,
                content,
                self.config.body_cap,
                lease,
                cap_name="body_cap",
                resend=resend,
            )
            if exchange.status not in RETRY_STATUSES or len(attempts) >= self.config.retries:
                break
            if exchange.status >= 500 and not await resend():
                break  # a 503 may have generated: sending again must fit the budget again
            asked = _retry_after(exchange.response_headers)
            wait = asked
            if wait is None:
                wait = self.config.default_retry_wait * (2 ** len(attempts))
            if wait > self.config.max_retry_wait or not self._spend_retry(wait):
                break  # honouring it would stall the run: the case is inconclusive
            attempts.append({"status": exchange.status, "retry_after": asked})
            lease.release(lease.held)  # this answer is dropped for the next one
            await asyncio.sleep(wait)
        exchange.retries = len(attempts)
        exchange.attempts = attempts + exchange.attempts
        return exchange

    def _spend_retry(self, wait: float) -> bool:
        """Take one retry and its wait from the run's budget; False when it is spent."""
        if self._retries_left <= 0 or wait > self._retry_seconds_left:
            return False
        self._retries_left -= 1
        self._retry_seconds_left -= wait
        return True

    async def send_case(self, case: Case, lease: Lease | None = None) -> Exchange:
        """Send a case and fetch the image URLs of a 2xx JSON answer into ``fetches``.

        The answer's bytes count in ``lease`` when one is given, and stay counted until its
        holder closes it (the runner does once the answer is judged); else in a lease of its
        own, closed on return.
        """
        if lease is None:
            async with self.inflight.lease() as own:
                return await self.send_case(case, own)
        exchange = await self._send(case, lease)
        if (
            exchange.error is None
            and exchange.status is not None
            and 200 <= exchange.status < 300
            and _mentions_url(exchange.response_body)
        ):
            urls = _answer_urls(exchange.response_body)
            if urls:
                exchange.fetches = list(
                    await asyncio.gather(*(self._fetch(u, lease) for u in urls))
                )
        return exchange

    async def fetch(self, url: str) -> Exchange:
        """GET an image URL from an answer: never with anything of the target's, only http(s)
        to an allowed address, capped."""
        async with self.inflight.lease() as lease:
            return await self._fetch(url, lease)

    async def _fetch(self, url: str, lease: Lease) -> Exchange:
        if not is_http_url(url):
            return Exchange(
                method="GET",
                url=self._redactor.url(url)
                if isinstance(url, str)
                else self._redactor.text(str(url)[:200]),
                request_headers={},
                request_body=b"",
                error=TransportFailure.SCHEME,
            )
        headers = {
            "user-agent": f"imgconf/{__version__}",
            "accept": "image/*",
            "accept-encoding": "identity",
        }
        return await self._exchange(
            "GET", url, headers, b"", self.config.fetch_cap, lease, cap_name="fetch_cap", image=True
        )

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: Body,
        cap: int,
        lease: Lease,
        *,
        cap_name: str,
        image: bool = False,
        resend: Callable[[], Awaitable[bool]] | None = None,
    ) -> Exchange:
        """One request and its answer (its 2xx body read within ``cap``, whose ``--limit``
        name is ``cap_name``), tried again on a fresh connection when a kept-alive one dropped
        it before any answer."""
        started = time.time()
        clock = time.perf_counter()
        exchange = Exchange(
            method=method,
            url=self._redactor.url(url),
            request_headers=self._redactor.headers(headers),
            request_body=self._redactor.data(
                content.summary if isinstance(content, _Streamed) else content
            ),
            started=started,
        )
        held = lease.held
        read = _Read(exchange, method, headers, content, cap, cap_name, lease, image)
        try:
            async with asyncio.timeout(self.config.timeout):
                client = self._fetch_client(url) if image else self._client
                trace = None if image else _ConnectionTrace()
                try:
                    await self._read(read, url, client, trace)
                except httpx.TransportError as exc:
                    if trace is None or trace.connected or exchange.status is not None:
                        raise
                    if not _dropped_before_answer(exc):
                        raise
                    if resend is not None and not await resend():
                        raise  # it may have reached the server: again only within budget
                    # A kept-alive connection dropped it before any answer: once more, fresh.
                    exchange.attempts.append(
                        {
                            "error": "connection",
                            "reconnected": True,
                            "reason": self._redactor.text(str(exc)[:200]),
                        }
                    )
                    exchange.response_headers, exchange.response_body = {}, b""
                    lease.release(lease.held - held)
                    await self._read(read, url, self._fresh_client(), None)
        except TimeoutError:
            exchange.error = TransportFailure.TIMEOUT
        except _BodyTooLarge as cut:
            exchange.error = TransportFailure.TOO_LARGE
            exchange.truncated = True
            exchange.cut_at = (cut.name, cut.cap)
        except _BadEncoding as exc:
            exchange.error = TransportFailure.ENCODING
            exchange.attempts.append({"error": "encoding", "reason": str(exc)})
        except _BlockedAddress as exc:
            exchange.error = TransportFailure.BLOCKED_ADDRESS
            exchange.attempts.append({"error": "blocked_address", "reason": str(exc)})
        except httpx.RemoteProtocolError as exc:
            # A peer that hangs up (before or during the answer) dropped the connection;
            # anything else it sent was not HTTP.
            dropped = any(word in str(exc).lower() for word in ("disconnect", "closed"))
            exchange.error = TransportFailure.CONNECTION if dropped else TransportFailure.PROTOCOL
        except (httpx.LocalProtocolError, httpx.DecodingError):
            exchange.error = TransportFailure.PROTOCOL
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # No connection, so no request: unless a first try went out before a reconnect.
            exchange.error = (
                TransportFailure.TIMEOUT
                if isinstance(exc, httpx.ConnectTimeout)
                else TransportFailure.CONNECTION
            )
            exchange.sent = any(a.get("reconnected") for a in exchange.attempts)
            if (refused := _certificate_refused(exc)) is not None:
                exchange.attempts.append({"error": "tls", "reason": refused})
        except httpx.TimeoutException:
            exchange.error = TransportFailure.TIMEOUT
        except (httpx.TransportError, OSError):
            exchange.error = TransportFailure.CONNECTION
        except httpx.InvalidURL:
            exchange.error = TransportFailure.SCHEME
            exchange.sent = False
        except ValueError:
            # A redirect to a URL that does not parse (a port out of range, a broken IPv6
            # literal): what the target answered is not usable HTTP.
            exchange.error = TransportFailure.PROTOCOL
        exchange.elapsed = time.perf_counter() - clock
        exchange.response_body = self._redactor.data(exchange.response_body)
        return exchange

    async def _read(
        self,
        read: _Read,
        url: str,
        client: httpx.AsyncClient,
        trace: _ConnectionTrace | None,
    ) -> None:
        """One attempt through ``client``, following redirects as allowed. An image URL's hops
        each go through the image client of their own scheme (an http:// URL may redirect to
        https://)."""
        exchange, method = read.exchange, read.method
        extensions = {"trace": trace} if trace is not None else None
        for _ in range(self.config.max_redirects + 1):
            request = client.build_request(
                method, url, headers=read.headers, content=read.body(), extensions=extensions
            )
            response = await client.send(request, stream=True)
            try:
                exchange.status = response.status_code
                exchange.response_headers = self._redactor.headers(response.headers)
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    target = str(response.url.join(location))
                    same = origin_of(target) == self._origin
                    if not (same or read.image) or (
                        method == "POST" and response.status_code not in (307, 308)
                    ):
                        # Another origin would get the key; a 301-303 would drop the body:
                        # both are the target's answer, judged as it is.
                        await _drain(read, response, self.config.error_cap, "error_cap")
                        return
                    await response.aclose()
                    url = target
                    exchange.url = self._redactor.url(url)
                    if read.image:  # the next hop's scheme may differ: its own client
                        client = self._fetch_client(url)
                    continue
                if 200 <= response.status_code < 300:
                    await _drain(read, response, read.cap, read.cap_name)
                else:
                    await _drain(read, response, self.config.error_cap, "error_cap")
                return
            finally:
                await response.aclose()
        exchange.error = TransportFailure.PROTOCOL


@dataclass
class _Read:
    """What one exchange sends, and where its answer's bytes are counted."""

    exchange: Exchange
    method: str
    headers: dict[str, str]
    content: Body
    cap: int
    #: The cap's ``--limit`` name (``body_cap``, ``fetch_cap``, ``error_cap``).
    cap_name: str
    lease: Lease
    #: An image URL: any origin, through the fetch client.
    image: bool

    def body(self) -> bytes | AsyncIterator[bytes]:
        """The bytes to send, afresh for each try (a streamed body is made again each time)."""
        if isinstance(self.content, _Streamed):
            return body_pieces(self.content.case)
        return self.content


class _Streamed:
    """A multipart case's body, sent streamed: made from its parts as it goes out, its length
    known beforehand (so it is sent with Content-Length, never chunked), and recorded as its
    summary (the text parts, each file's recipe and digest), never as the files."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.length = case.content_length()
        self.summary = summary_bytes(case)


#: What a request sends: JSON (or raw) bytes, or a multipart case's streamed body.
Body = bytes | _Streamed


async def _drain(read: _Read, response: httpx.Response, cap: int, cap_name: str) -> None:
    """Read the answer's body into the exchange: decoded, within ``cap`` (``--limit
    cap_name``), counted in the lease.

    Raw bytes are read and a content coding undone here, a bounded piece at a time, so the cap
    holds for what is *decoded*, and the bytes are counted before they are kept.
    """
    exchange, lease = read.exchange, read.lease
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        exchange.response_body = b""
        raise _BodyTooLarge(cap, cap_name)
    inflater = _inflater_for(exchange.content_encoding)
    body = io.BytesIO()
    size = 0
    try:
        async for raw in response.aiter_raw():
            for piece in inflater.feed(raw) if inflater is not None else (raw,):
                size += len(piece)
                try:
                    if size > cap:
                        raise _BodyTooLarge(cap, cap_name)
                    await lease.acquire(len(piece))  # past the case's share: cut as well
                except _BodyTooLarge:
                    # Keep only a head of the cut body: enough to show what it was.
                    head = body.getbuffer()[: min(_HEAD, cap)].tobytes()
                    lease.release(body.tell() - len(head))
                    exchange.response_body = head
                    raise
                body.write(piece)
        if inflater is not None:
            inflater.finish()
    finally:
        if not exchange.response_body:
            exchange.response_body = body.getvalue()


def _mentions_url(body: bytes, quotes: int = 256) -> bool:
    """Whether ``"url"`` occurs in the body, found from its quotes (a memchr each): a search
    for the five bytes would step through a 4 MB base64 string five bytes at a time, on the
    event loop. Past ``quotes`` quotes, the plain search."""
    pos = body.find(b'"')
    for _ in range(quotes):
        if pos == -1:
            return False
        if body.startswith(b'"url"', pos):
            return True
        pos = body.find(b'"', pos + 1)
    return pos != -1 and b'"url"' in body


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
