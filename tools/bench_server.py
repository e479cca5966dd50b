"""Requests per second of the embedded reference server (a measurement, not a test).

    python tools/bench_server.py [--requests 200] [--concurrency 8] [--mode process|thread|both]

Three workloads, each against a fresh embedded server:

- ``small-png``: gpt-image-1, low quality, 1024x1024 png (one picture, cached after the first);
- ``dalle3-b64``: dall-e-3, 1792x1024, ``response_format: b64_json`` (cached likewise);
- ``uncached``: gpt-image-2 with a new custom size every request, png/jpeg/webp and transparent
  in turn, so every picture is drawn and encoded (the server's worst case).

The client decodes every image it gets (as ``imgconf run`` does when it judges alpha), so the
numbers show how the server and a CPU-busy client share the machine; that is what decides
between running the embedded server in a thread or in a child process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import itertools
import time
from collections.abc import Callable

import httpx
from PIL import Image

from conformance.server.launcher import start_reference_server

Body = Callable[[int], dict]


def small_png(i: int) -> dict:
    return {
        "model": "gpt-image-1",
        "prompt": "a lighthouse at dusk",
        "quality": "low",
        "size": "1024x1024",
        "output_format": "png",
    }


def dalle3_b64(i: int) -> dict:
    return {
        "model": "dall-e-3",
        "prompt": "a lighthouse at dusk",
        "size": "1792x1024",
        "response_format": "b64_json",
    }


_SIDES = [512 + 16 * k for k in range(0, 97)]  # 512..2048
_SIZES = [(w, h) for w, h in itertools.product(_SIDES, _SIDES) if max(w, h) / min(w, h) <= 2]


def uncached(i: int) -> dict:
    width, height = _SIZES[(i * 7919) % len(_SIZES)]
    fmt = ("png", "jpeg", "webp")[i % 3]
    return {
        "model": "gpt-image-2",
        "prompt": f"bench {i}",
        "size": f"{width}x{height}",
        "output_format": fmt,
        "background": "transparent" if fmt != "jpeg" and i % 2 else "opaque",
    }


WORKLOADS: dict[str, Body] = {
    "small-png": small_png,
    "dalle3-b64": dalle3_b64,
    "uncached": uncached,
}


def judge(payload: dict) -> None:
    """What a judging client does with an answer: decode every image fully."""
    for item in payload["data"]:
        image = Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
        image.load()


async def run_workload(
    base_url: str, key: str, body: Body, requests: int, concurrency: int
) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    counter = iter(range(requests))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        # One warm-up request so that connection set-up is not measured.
        (
            await client.post("/images/generations", json=body(-1), headers=headers)
        ).raise_for_status()

        async def worker() -> None:
            for i in counter:
                start = time.perf_counter()
                response = await client.post("/images/generations", json=body(i), headers=headers)
                response.raise_for_status()
                judge(response.json())
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return requests / elapsed, latencies[len(latencies) // 2] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mode", choices=["process", "thread", "both"], default="both")
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    args = parser.parse_args()
    modes = ["process", "thread"] if args.mode == "both" else [args.mode]
    workloads = WORKLOADS if args.workload == "all" else {args.workload: WORKLOADS[args.workload]}
    print(f"{args.requests} requests, concurrency {args.concurrency}, client decodes every image")
    for name, body in workloads.items():
        for mode in modes:
            with start_reference_server(mode=mode) as server:
                rps, median = asyncio.run(
                    run_workload(
                        server.base_url, server.api_key, body, args.requests, args.concurrency
                    )
                )
            print(f"  {name:11} {mode:8} {rps:7.1f} req/s   median {median:6.1f} ms")


if __name__ == "__main__":
    main()
