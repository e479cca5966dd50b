"""Tiny hostile HTTP targets on 127.0.0.1, each in its own thread and event loop.

Each one misbehaves in one way a broken server or proxy does: it never answers, resets the
connection, answers random bytes, an endless body, a 200 MB JSON document, a decompression bomb,
a million items, events or PNG chunks, text no format can encode, the key in disguise, or bills
images it then answers 502 or resets. ``imgconf run`` must turn each into a finding within
bounded time and memory, without the key reaching any output or any other origin.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import html
import ipaddress
import json
import random
import re
import socket
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """Read one request's head and its Content-Length body (enough for these servers)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return head + body


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(3600)


async def resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def random_bytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(random.Random(7).randbytes(4096))
    await writer.drain()
    writer.close()


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n")
    chunk = b'{"created": 1, "data": [' + b" " * (1 << 20)
    with contextlib.suppress(ConnectionError):
        while True:
            writer.write(chunk)
            await writer.drain()


_BIG_ITEM = b'{"b64_json": "' + b"A" * (1 << 20) + b'"},'


async def huge_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A 200 MB JSON answer, close-delimited (no Content-Length), so it must be cut while read."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n")
    with contextlib.suppress(ConnectionError):
        writer.write(b'{"created": 1, "data": [')
        for _ in range(200):
            writer.write(_BIG_ITEM)
            await writer.drain()
        writer.write(b'{"b64_json": ""}]}')
        await writer.drain()
        writer.close()


_ZEROS = bytes(1 << 20)


def gzip_zeros(total: int) -> Iterator[bytes]:
    """A gzip stream of ``total`` zero bytes, made lazily: after a full flush, every MiB of
    zeros compresses to the same ~1 KB block, so 10 GB cost 10 MB of output and no memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    yield compressor.compress(_ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(_ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    for _ in range(total // len(_ZEROS) - 1):
        yield block


def _encoded_head(encoding: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-encoding: " + encoding + b"\r\nconnection: close\r\n\r\n"
    )


async def gzip_bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A 200 whose gzip body inflates to 10 GB of zeros (10 MB on the wire)."""
    await read_request(reader)
    writer.write(_encoded_head(b"gzip"))
    with contextlib.suppress(ConnectionError):
        for block in gzip_zeros(10 << 30):
            writer.write(block)
            await writer.drain()
        writer.close()


@functools.cache
def _gzip_gzip_zeros() -> bytes:
    """10 GB of zeros gzipped twice: 24 KB, made once (about 40 ms) on first use."""
    outer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(outer.compress(block) for block in gzip_zeros(10 << 30)) + outer.flush()


async def stacked_gzip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """``Content-Encoding: gzip, gzip``: 24 KB on the wire, 10 GB once both are undone."""
    await read_request(reader)
    writer.write(_encoded_head(b"gzip, gzip"))
    with contextlib.suppress(ConnectionError):
        writer.write(_gzip_gzip_zeros())
        await writer.drain()
        writer.close()


async def retry_after_flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request 429 with ``Retry-After: 29`` (just under the longest honoured)."""
    body = b'{"error": {"message": "slow down", "type": "rate_limit"}}'
    while True:
        try:
            await read_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        writer.write(
            b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
            b"retry-after: 29\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()


def echo_key(seen: list[bytes]) -> Handler:
    """Answers 400 with the request head (Authorization included) in body and headers."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            seen.append(request)
            auth = b""
            for line in request.split(b"\r\n"):
                if line.lower().startswith(b"authorization:"):
                    auth = line.split(b":", 1)[1].strip()
            body = b'{"error": {"message": "you sent ' + auth + b'"}}'
            writer.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                + b"x-echo: "
                + auth
                + b"\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            await writer.drain()

    return handler


def sets_cookies(key: str, image_urls: list[str], seen: list[bytes]) -> Handler:
    """Answers every POST 200 with image URLs, setting cookies that hold ``key`` (one
    host-only, one Domain-scoped): a client that kept them would send them on."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = json.dumps({"created": 1, "data": [{"url": u} for u in image_urls]}).encode()
        while True:
            try:
                seen.append(await read_request(reader))
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"set-cookie: k={key}; Path=/\r\n".encode()
                + f"set-cookie: d={key}; Domain=localhost; Path=/\r\n".encode()
                + f"set-cookie: i={key}; Domain=127.0.0.1; Path=/\r\n".encode()
                + b"content-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            await writer.drain()

    return handler


def serves_image(seen: list[bytes], *, redirect: str | None = None) -> Handler:
    """Records each request and answers a small PNG (or a 302 to ``redirect``)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                seen.append(await read_request(reader))
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if redirect is not None:
                writer.write(
                    b"HTTP/1.1 302 Found\r\nlocation: " + redirect.encode() + b"\r\n"
                    b"content-length: 0\r\n\r\n"
                )
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: "
                    + str(len(TINY_PNG)).encode()
                    + b"\r\n\r\n"
                    + TINY_PNG
                )
            await writer.drain()

    return handler


def _tiny_png() -> bytes:
    raw = b"\x00\x00\x00\x00"  # one row: filter byte, then one RGB pixel
    chunks = [
        (b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)),
        (b"IDAT", zlib.compress(raw)),
        (b"IEND", b""),
    ]
    out = b"\x89PNG\r\n\x1a\n"
    for kind, data in chunks:
        out += struct.pack(">I", len(data)) + kind + data
        out += struct.pack(">I", zlib.crc32(kind + data))
    return out


TINY_PNG = _tiny_png()


def _answer(status: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type + b"\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def answers_every_request(status: bytes, body: bytes, content_type: bytes = b"application/json"):
    """Answers every request on a connection with the same ``status`` and ``body``."""
    return answers_with(_answer(status, body, content_type))


def answers_with(response: bytes) -> Handler:
    """Answers every request on a (kept-alive) connection with the same raw ``response``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(response)
            await writer.drain()

    return handler


@functools.cache
def _million_items() -> bytes:
    """An accepted answer whose ``data`` holds a million (empty) items: 16 MB, under any body
    cap, but 2.5 GB of Python objects if parsed whole."""
    return b'{"created": 1, "data": [' + b",".join([b'{"b64_json": ""}'] * 1_000_000) + b"]}"


async def million_items(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await answers_every_request(b"200 OK", _million_items())(reader, writer)


@functools.cache
def _million_events() -> bytes:
    """A server-sent event stream of a million tiny events (10 MB)."""
    partial = b'data: {"type": "image_generation.partial_image"}\n\n'
    return partial * 10 + b"data: {}\n\n" * 1_000_000


async def million_events(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request 200 with a million-event stream (streamed or not, it was asked)."""
    await answers_every_request(b"200 OK", _million_events(), b"text/event-stream")(reader, writer)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def million_chunk_png() -> bytes:
    """A valid 1x1 PNG with a million empty ancillary chunks between IHDR and IDAT (12 MB)."""
    return (
        TINY_PNG[:33]  # signature and IHDR
        + png_chunk(b"imGc", b"") * 1_000_000
        + TINY_PNG[33:]
    )


@functools.cache
def _million_chunk_answer() -> bytes:
    image = base64.b64encode(million_chunk_png())
    return b'{"created": 1, "data": [{"b64_json": "' + image + b'"}]}'


async def million_chunks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request 200 with one base64 PNG of a million chunks."""
    await answers_every_request(b"200 OK", _million_chunk_answer())(reader, writer)


def lone_surrogates(image_base: str) -> Handler:
    """Answers, by turns, an error whose message holds a lone surrogate (and a control
    character) and an accepted answer whose image URL, under ``image_base``, holds one: both
    valid JSON, neither encodable as UTF-8 once decoded."""
    count = 0
    url = image_base.encode() + b"/img\\ud800.png"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        while True:
            try:
                await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            count += 1
            if count % 2:
                body = b'{"error": {"message": "bad \\ud800 request\\u0007", "type": "x"}}'
                writer.write(_answer(b"400 Bad Request", body))
            else:
                body = b'{"created": 1, "data": [{"url": "' + url + b'"}]}'
                writer.write(_answer(b"200 OK", body))
            await writer.drain()

    return handler


# --- the key in disguise -------------------------------------------------------------------


def mixed_escapes(text: str, seed: int) -> str:
    """``text`` as JSON string content, about half its characters written as ``\\uXXXX``."""
    rng = random.Random(seed)
    return "".join(f"\\u{ord(c):04x}" if rng.random() < 0.5 else c for c in text)


def b64_at(key: str, shift: int, seed: int) -> str:
    """``key`` base64-encoded inside a longer blob, starting ``shift`` bytes into a group."""
    rng = random.Random(seed)
    blob = rng.randbytes(30 + shift) + key.encode() + rng.randbytes(29)
    return base64.b64encode(blob).decode()


def disguised_answers(key: str) -> tuple[bytes, bytes]:
    """An error answer and an accepted one, hiding ``key`` every way but verbatim: JSON
    ``\\u`` escapes mixed at random, and base64 at all three alignments."""
    error = (
        '{"error": {"message": "invalid api key '
        + mixed_escapes(key, 1)
        + '", "type": "invalid_request_error", "param": "'
        + b64_at(key, 0, 2)
        + '", "code": "'
        + b64_at(key, 1, 3)
        + '"}, "trace": "'
        + b64_at(key, 2, 4)
        + '"}'
    ).encode()
    accepted = (
        '{"created": 1, "data": [{"b64_json": "'
        + b64_at(key, 1, 5)
        + '", "revised_prompt": "you are '
        + mixed_escapes(key, 6)
        + '"}, {"b64_json": "'
        + b64_at(key, 2, 7)
        + '"}, {"b64_json": "'
        + b64_at(key, 0, 8)
        + '"}]}'
    ).encode()
    return error, accepted


def _unescape(text: str) -> str:
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)


def key_disguises(data: bytes, key: str) -> set[str]:
    """Every disguise of ``key`` readable in ``data``: an oracle independent of imgconf's own
    redaction (it decodes every base64 run at every offset rather than knowing the forms)."""
    text = data.decode("utf-8", "replace")
    found = set()
    views = {
        "verbatim": text,
        "json-escaped": _unescape(text),
        "percent-encoded": unquote(text),
        "html-escaped": html.unescape(text),
    }
    for name, view in views.items():
        if key.lower() in view.lower():
            found.add(name)
    for run in re.findall(r"[A-Za-z0-9+/_-]{16,}", _unescape(text)):
        for offset in range(4):
            chunk = run[offset:]
            chunk = chunk[: len(chunk) // 4 * 4].replace("-", "+").replace("_", "/")
            with contextlib.suppress(ValueError):
                if key.encode() in base64.b64decode(chunk):
                    found.add("base64")
    return found


def echo_disguised(key: str, seen: list[bytes]) -> Handler:
    """Answers, by turns, 400 and 200, ``key`` hidden in the body, in a header *name* and in a
    header value (base64)."""
    error, accepted = disguised_answers(key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            seen.append(request)
            status, body = (b"400 Bad Request", error) if len(seen) % 2 else (b"200 OK", accepted)
            writer.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                b"x-key-" + key.encode() + b": seen\r\n"
                b"x-trace: " + b64_at(key, 2, 9).encode() + b"\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()

    return handler


def key_in_header_name(key: str) -> Handler:
    """Answers every request 400 with a response header whose *name* is the key."""
    body = b'{"error": {"message": "no", "type": "invalid_request_error"}}'
    response = (
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
        + key.encode()
        + b": 1\r\nx-"
        + key.encode()
        + b"-seen: yes\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    return answers_with(response)


# --- servers that bill what they do not deliver ----------------------------------------------


def images_asked(request: bytes) -> int:
    """How many images a generating server would make for ``request``: a POST whose body is a
    JSON object with a string prompt and ``n`` absent or an integer from 1 to 10."""
    if not request.startswith(b"POST"):
        return 0
    try:
        body = json.loads(request.split(b"\r\n\r\n", 1)[1])
    except ValueError:
        return 0
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        return 0
    n = body.get("n", 1)
    if n is None:
        return 1
    return n if type(n) is int and 1 <= n <= 10 else 0


def generates_then(fault: str, generated: list[int]) -> Handler:
    """A server that generates the images asked (adding them to ``generated[0]``), then
    answers ``502`` (``fault="502"``) or resets the connection (``fault="reset"``): billed,
    never delivered. Anything it would not generate for is answered 400."""
    refusal = b'{"error": {"message": "no", "type": "invalid_request_error"}}'
    bad_gateway = b'{"error": {"message": "upstream failed", "type": "server_error"}}'

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            images = images_asked(request)
            if not images:
                writer.write(_answer(b"400 Bad Request", refusal))
                await writer.drain()
                continue
            generated[0] += images
            if fault == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            writer.write(_answer(b"502 Bad Gateway", bad_gateway))
            await writer.drain()

    return handler


class FakeNetwork:
    """A stub resolver and a pretend network, so tests never reach a non-loopback address.

    ``names`` maps a host name to the addresses it resolves to; ``routes`` maps a pretend
    address to the loopback address that really serves it (the connected stream then reports
    the pretend address as its peer, as a real route would). Connecting to any other
    non-loopback address fails here, before any packet is sent. ``connected`` lists every
    address a connection was asked for. With ``report_routes`` False, a routed stream reports
    its true loopback peer instead (a connection that landed elsewhere than asked).
    """

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}
        self.routes: dict[str, str] = {}
        self.connected: list[str] = []
        self.report_routes = True

    def install(self, monkeypatch: Any) -> FakeNetwork:
        import httpcore

        import conformance.engine.transport

        real_connect = httpcore.AnyIOBackend.connect_tcp
        network = self

        async def resolve(host: str, port: int) -> list[str]:
            if host not in network.names:
                raise OSError(f"{host}: unknown in the test network")
            return list(network.names[host])

        async def connect(
            backend: Any,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> Any:
            network.connected.append(host)
            real = network.routes.get(host, host)
            if not ipaddress.ip_address(real).is_loopback:
                raise httpcore.ConnectError(f"{host}: no route in the test network")
            stream = await real_connect(backend, real, port, timeout, local_address, socket_options)
            if real == host or not network.report_routes:
                return stream
            return _Routed(stream, (host, port))

        monkeypatch.setattr(conformance.engine.transport, "resolve_host", resolve)
        monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", connect)
        return self


class _Routed:
    """A loopback stream that reports a pretend peer address."""

    def __init__(self, stream: Any, peer: tuple[str, int]) -> None:
        self._stream = stream
        self._peer = peer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(self, *args: Any, **kwargs: Any) -> Any:
        return await self._stream.start_tls(*args, **kwargs)

    def get_extra_info(self, info: str) -> Any:
        return self._peer if info == "server_addr" else self._stream.get_extra_info(info)


@contextlib.contextmanager
def serve(handler: Handler) -> Iterator[str]:
    """Run ``handler`` for every connection on a free loopback port; yields the base URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def main() -> None:
        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await handler(reader, writer)
            with contextlib.suppress(Exception):
                writer.close()

        server = await asyncio.start_server(guarded, "127.0.0.1", 0, backlog=256)
        holder["port"] = server.sockets[0].getsockname()[1]
        holder["server"] = server
        ready.set()
        async with server:
            await server.serve_forever()

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            loop.run_until_complete(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield f"http://127.0.0.1:{holder['port']}/v1"
    finally:

        def shutdown() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()

        loop.call_soon_threadsafe(shutdown)
        thread.join(5)
        if not loop.is_running():
            loop.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


__all__ = [
    "RECORDED",
    "TARGETS",
    "TINY_PNG",
    "FakeNetwork",
    "Target",
    "answers_every_request",
    "b64_at",
    "disguised_answers",
    "echo_disguised",
    "echo_key",
    "endless_body",
    "free_port",
    "generates_then",
    "gzip_bomb",
    "gzip_zeros",
    "huge_json",
    "images_asked",
    "key_disguises",
    "key_in_header_name",
    "lone_surrogates",
    "million_chunk_png",
    "million_chunks",
    "million_events",
    "million_items",
    "mixed_escapes",
    "never_answers",
    "png_chunk",
    "random_bytes",
    "read_request",
    "resets",
    "retry_after_flood",
    "serve",
    "serves_image",
    "sets_cookies",
    "stacked_gzip",
    "start_target",
]


# --- the acceptance targets, by name ---------------------------------------------------------


@dataclasses.dataclass
class Target:
    """A running hostile target: its base URL, the models a run needs for its fault to show,
    what another loopback origin (``other_base``, where image URLs point) received, and how
    many images the target says it generated."""

    base_url: str
    models: str
    other_base: str
    other_seen: list[bytes]
    generated: list[int]


def _cookie_target(key: str, other: str, seen: list[bytes], generated: list[int]) -> Handler:
    port = urlsplit(other).port
    return sets_cookies(key, [f"{other}/a.png", f"http://localhost:{port}/b.png"], [])


#: name -> (models, handler maker(key, other_base, other_seen, generated)).
TARGETS: dict[str, tuple[str, Callable[[str, str, list[bytes], list[int]], Handler]]] = {
    "gzip-bomb": ("dall-e-2", lambda *_: gzip_bomb),
    "gzip-gzip": ("dall-e-2", lambda *_: stacked_gzip),
    "million-items": ("dall-e-2", lambda *_: million_items),
    "million-events": ("gpt-image-1", lambda *_: million_events),
    "million-png-chunks": ("dall-e-2", lambda *_: million_chunks),
    "retry-after-flood": ("dall-e-2", lambda *_: retry_after_flood),
    "lone-surrogates": ("dall-e-2", lambda key, other, *_: lone_surrogates(other)),
    "cookie-key-other-port": ("dall-e-2", _cookie_target),
    "key-in-header-name": ("dall-e-2", lambda key, *_: key_in_header_name(key)),
    "key-disguised": ("dall-e-2", lambda key, *_: echo_disguised(key, [])),
    "generate-then-502": (
        "dall-e-2",
        lambda key, o, s, generated: generates_then("502", generated),
    ),
    "generate-then-reset": (
        "dall-e-2",
        lambda key, o, s, generated: generates_then("reset", generated),
    ),
}

#: Targets whose answers put the key, or text no format can encode, where a recording keeps
#: them: runs against these also ``--record`` so the HAR is checked as well.
RECORDED = frozenset(
    {"lone-surrogates", "cookie-key-other-port", "key-in-header-name", "key-disguised"}
)


@contextlib.contextmanager
def start_target(name: str, key: str) -> Iterator[Target]:
    """Serve the target ``name`` and, on another loopback port, a recording image server."""
    models, make = TARGETS[name]
    other_seen: list[bytes] = []
    generated = [0]
    with serve(serves_image(other_seen)) as other_v1:
        other = other_v1.removesuffix("/v1")
        with serve(make(key, other, other_seen, generated)) as base_url:
            yield Target(base_url, models, other, other_seen, generated)
