"""Tiny hostile HTTP targets on 127.0.0.1, each in its own thread and event loop.

Each one misbehaves in one way a broken server or proxy does: it never answers, resets the
connection, answers random bytes, an endless body, or a 200 MB JSON document. ``imgconf run``
must turn each into a finding within bounded time and memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Iterator

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
    "echo_key",
    "endless_body",
    "free_port",
    "huge_json",
    "never_answers",
    "random_bytes",
    "read_request",
    "resets",
    "serve",
]
