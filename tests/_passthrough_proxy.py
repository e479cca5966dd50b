"""A tiny pass-through proxy for tests: what a gateway in front of an image API looks like.

It checks its own key, forwards ``POST .../images/generations`` to an upstream with the
upstream's key, streams the answer back unchanged (JSON or server-sent events), and counts the
images the upstream generated, so a test can tell how many a run really spent. ``fault`` lets a
test break it on purpose, as a buggy gateway release would.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


@dataclass
class ProxyStats:
    requests: int = 0
    images: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, images: int) -> None:
        with self.lock:
            self.requests += 1
            self.images += images


@dataclass
class RunningProxy:
    base_url: str
    api_key: str
    stats: ProxyStats


def _images_in(body: bytes) -> int:
    try:
        data = json.loads(body).get("data")
    except (ValueError, AttributeError):
        return 0
    return len(data) if isinstance(data, list) else 0


def create_proxy(
    upstream: str,
    upstream_key: str,
    api_key: str,
    stats: ProxyStats,
    fault: str | None = None,
    require_headers: Mapping[str, str] | None = None,
) -> Starlette:
    """``require_headers``: the routing headers (name: value) a request must carry, as a
    gateway that routes on them; without them it answers 400, and it echoes their values back
    in ``x-routed-by`` (a gateway that reflects what it read)."""
    client = httpx.AsyncClient(timeout=60.0, trust_env=False)
    routing = dict(require_headers or {})

    async def generations(request: Request) -> Response:
        if any(request.headers.get(name) != value for name, value in routing.items()):
            stats.count(0)
            return JSONResponse(
                {"error": {"message": f"cannot route: {', '.join(routing)} required"}},
                status_code=400,
            )
        if request.headers.get("authorization") != f"Bearer {api_key}":
            stats.count(0)
            return JSONResponse(
                {
                    "error": {
                        "message": "bad key",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                status_code=401,
            )
        body = await request.body()
        if fault == "500-on-bad-input" and body[:1] != b"{":
            stats.count(0)
            return JSONResponse({"error": {"message": "proxy crashed"}}, status_code=500)
        headers = {
            "authorization": f"Bearer {upstream_key}",
            "content-type": request.headers.get("content-type", "application/json"),
            "accept": request.headers.get("accept", "application/json"),
        }
        upstream_request = client.build_request(
            "POST", upstream.rstrip("/") + "/images/generations", content=body, headers=headers
        )
        answer = await client.send(upstream_request, stream=True)
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        if answer.headers.get("content-type", "").startswith("text/event-stream"):
            stats.count(0)
            return StreamingResponse(
                answer.aiter_raw(),
                status_code=answer.status_code,
                headers=out_headers,
                background=BackgroundTask(answer.aclose),
            )
        if routing:
            out_headers["x-routed-by"] = ",".join(routing.values())
        content = await answer.aread()
        await answer.aclose()
        stats.count(_images_in(content) if answer.is_success else 0)
        if fault == "gzip":  # compresses whatever the client asked for
            content = gzip.compress(content)
            out_headers["content-encoding"] = "gzip"
        return Response(content, status_code=answer.status_code, headers=out_headers)

    async def multipart(request: Request) -> Response:
        """Edits and variations, forwarded as they came; under ``fault="mask-and-images"``
        the form is parsed and sent on without its mask and with only its first image, as
        gateways that map a form onto one-file models do."""
        if request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        path = request.url.path.split("/v1", 1)[1].rstrip("/")
        headers = {"authorization": f"Bearer {upstream_key}"}
        if fault == "mask-and-images":
            form = await request.form()
            texts: dict[str, str] = {}
            files: list[tuple[str, tuple[str | None, bytes, str | None]]] = []
            for name, value in form.multi_items():
                if isinstance(value, str):
                    texts[name] = value
                elif name != "mask" and not (
                    name.startswith("image") and any(n.startswith("image") for n, _ in files)
                ):
                    files.append((name, (value.filename, await value.read(), value.content_type)))
            await form.close()
            upstream_request = client.build_request(
                "POST", upstream.rstrip("/") + path, data=texts, files=files, headers=headers
            )
        else:
            headers["content-type"] = request.headers.get("content-type", "")
            upstream_request = client.build_request(
                "POST", upstream.rstrip("/") + path, content=request.stream(), headers=headers
            )
        answer = await client.send(upstream_request)
        stats.count(_images_in(answer.content) if answer.is_success else 0)
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(answer.content, status_code=answer.status_code, headers=out_headers)

    routes = [
        Route("/v1/images/generations", generations, methods=["POST"]),
        Route("/v1/images/generations/", generations, methods=["POST"]),
        Route("/v1/images/edits", multipart, methods=["POST"]),
        Route("/v1/images/variations", multipart, methods=["POST"]),
    ]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(routes=routes, lifespan=lifespan)


@contextmanager
def run_proxy(
    upstream: str,
    upstream_key: str,
    *,
    api_key: str = "sk-proxy-key-0000",
    fault: str | None = None,
    require_headers: Mapping[str, str] | None = None,
) -> Iterator[RunningProxy]:
    """Serve the proxy on a free loopback port in a thread for the ``with`` block."""
    stats = ProxyStats()
    app = create_proxy(upstream, upstream_key, api_key, stats, fault, require_headers)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield RunningProxy(f"http://127.0.0.1:{port}/v1", api_key, stats)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
