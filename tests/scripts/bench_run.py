"""Benchmark ``imgconf run``'s send-and-judge loop against the reference server.

Runs the default plan for every model of the openai profile against the embedded reference
server (in its own process, so client CPU is measured apart), then sends the same requests with
a plain httpx loop that reads the answers and judges nothing. Prints cases per second, wall
time, client CPU per request (``time.process_time``) and the overhead ratio of judging.

    python tests/scripts/bench_run.py [--rounds 3] [--concurrency 8] [--profile openai]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial

import httpx

from conformance.cases import Case
from conformance.embedded import start_reference_server
from conformance.planning import build_plan
from conformance.profiles import Profile, load_profile
from conformance.running import Runner
from conformance.transport import WRONG_KEY, Transport, TransportConfig


async def judged(
    cases: list[Case], config: TransportConfig, concurrency: int, profile: Profile
) -> Counter[str]:
    """What ``imgconf run`` does per case: send, fetch URLs, judge, trim (no report files)."""
    async with Transport(config) as transport:
        runner = Runner(transport, profile, concurrency=concurrency)
        results = await runner.run(cases)
    return Counter(r.outcome.value for r in results)


async def plain(cases: list[Case], config: TransportConfig, concurrency: int) -> Counter[str]:
    """The same requests from a plain httpx loop: read every answer, judge nothing."""
    queue = list(reversed(cases))
    statuses: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=config.timeout) as client:

        async def worker() -> None:
            while queue:
                case = queue.pop()
                headers = {"content-type": "application/json"}
                if case.auth == "valid":
                    headers["authorization"] = f"Bearer {config.api_key}"
                elif case.auth == "wrong":
                    headers["authorization"] = f"Bearer {WRONG_KEY}"
                response = await client.post(
                    config.endpoint + case.path_suffix, content=case.content(), headers=headers
                )
                statuses[str(response.status_code)] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def measure(
    job: Callable[[list[Case], TransportConfig, int], Awaitable[Counter[str]]],
    cases: list[Case],
    config: TransportConfig,
    concurrency: int,
) -> tuple[float, float, Counter[str]]:
    wall, cpu = time.perf_counter(), time.process_time()
    counts = asyncio.run(job(cases, config, concurrency))
    return time.perf_counter() - wall, time.process_time() - cpu, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", default="openai")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    plan = build_plan(profile)
    cases = plan.cases
    print(
        f"plan: {len(cases)} cases for {len(plan.models)} models ({', '.join(plan.models)}), "
        f"{plan.images} images if accepted; concurrency {args.concurrency}"
    )
    with start_reference_server() as server:
        config = TransportConfig(
            base_url=server.base_url, path=profile.path, api_key=server.api_key, timeout=60
        )
        measure(plain, cases, config, args.concurrency)  # warm up both sides
        rows: dict[str, list[tuple[float, float]]] = {"imgconf run": [], "plain httpx": []}
        for round_number in range(1, args.rounds + 1):
            seen = []
            for name, job in (
                ("imgconf run", partial(judged, profile=profile)),
                ("plain httpx", plain),
            ):
                wall, cpu, counts = measure(job, cases, config, args.concurrency)
                rows[name].append((wall, cpu))
                seen.append(f"{name}: {dict(counts)}")
            print(f"  round {round_number}: " + "; ".join(seen))
    summary = {}
    for name, samples in rows.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        summary[name] = (wall, cpu)
        print(
            f"{name:12}  wall {wall:6.2f} s  {len(cases) / wall:7.1f} cases/s  "
            f"client CPU {cpu:6.2f} s = {1000 * cpu / len(cases):5.2f} ms/request"
        )
    (jw, jc), (pw, pc) = summary["imgconf run"], summary["plain httpx"]
    print(
        f"overhead of judging: wall x{jw / pw:.2f}, client CPU x{jc / pc:.2f} "
        f"(+{1000 * (jc - pc) / len(cases):.2f} ms CPU per judged request)"
    )


if __name__ == "__main__":
    main()
