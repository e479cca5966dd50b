"""Benchmark ``imgconf run``'s send-and-judge loop against the reference server.

Runs the default plan for every model of the openai profile against the embedded reference
server (in its own process, so client CPU is measured apart), then sends the same requests with
a plain httpx loop that reads the answers and judges nothing. Prints cases per second, wall
time, client CPU per request (``time.process_time``) and the overhead ratio of judging.

    python tools/bench_run.py [--rounds 3] [--concurrency 8] [--profile openai]
                                      [--previous REV]

With ``--previous REV`` it also times the whole ``imgconf run`` command (start-up, plan, send,
judge, reports) of this tree and of the git revision REV (checked out in a temporary worktree),
both against the same reference server, and prints the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import httpx

from conformance.contract.profiles import Profile, load_profile
from conformance.engine.image_facts import forget_seen_images
from conformance.engine.runner import Runner
from conformance.engine.transport import TargetClient, TransportConfig
from conformance.generation.cases import WRONG_KEY, Case
from conformance.generation.planning import build_plan
from conformance.server.launcher import start_reference_server


async def judged(
    cases: list[Case], config: TransportConfig, concurrency: int, profile: Profile
) -> Counter[str]:
    """What ``imgconf run`` does per case: send, fetch URLs, judge, trim (no report files).
    Each round starts as a new command does, remembering no image."""
    forget_seen_images()
    async with TargetClient(config) as transport:
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


def command_run(
    source: Path, base_url: str, api_key: str, concurrency: int
) -> tuple[float, float, int, int]:
    """One whole ``imgconf run`` of the package in ``source``: (wall s, CPU s, exit status,
    requests sent)."""
    code = (
        f"import sys; sys.path.insert(0, {str(source)!r}); from conformance.cli import run; run()"
    )
    with tempfile.TemporaryDirectory() as reports:
        argv = [sys.executable, "-c", code, "run", "--base-url", base_url, "--api-key", api_key]
        argv += ["--concurrency", str(concurrency), "--report-dir", reports]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        status = subprocess.run(argv, capture_output=True, check=False).returncode
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        report = Path(reports) / "report.json"
        sent = len(json.loads(report.read_text())["cases"]) if report.is_file() else 0
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, status, sent


def compare_with_previous(revision: str, rounds: int, concurrency: int) -> None:
    """Time this tree's ``imgconf run`` against the same command at ``revision``."""
    here = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp, start_reference_server() as server:
        worktree = Path(tmp) / "previous"
        subprocess.run(
            ["git", "-C", str(here), "worktree", "add", "--detach", str(worktree), revision],
            capture_output=True,
            check=True,
        )
        # Bytecode written for both, as their first import would (a fresh checkout has none,
        # and PYTHONDONTWRITEBYTECODE would have each command compile every module again).
        for source in (here, worktree):
            compileall.compile_dir(str(source / "conformance"), quiet=1)
        try:
            samples: dict[str, list[tuple[float, float, int, int]]] = {
                "this tree": [],
                revision: [],
            }
            for _ in range(rounds):
                for name, source in (("this tree", here), (revision, worktree)):
                    samples[name].append(
                        command_run(source, server.base_url, server.api_key, concurrency)
                    )
        finally:
            subprocess.run(
                ["git", "-C", str(here), "worktree", "remove", "--force", str(worktree)],
                capture_output=True,
                check=False,
            )
    medians = {}
    for name, rows in samples.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        per_request = statistics.median(1000 * r[1] / max(1, r[3]) for r in rows)
        medians[name] = (wall, cpu, per_request)
        statuses = sorted({r[2] for r in rows})
        print(
            f"imgconf run @ {name:12} wall {wall:6.2f} s  CPU {cpu:6.2f} s  "
            f"{per_request:5.2f} ms CPU/request ({rows[0][3]} requests)  exit {statuses}"
        )
    (nw, nc, nr), (pw, pc, pr) = medians["this tree"], medians[revision]
    print(
        f"this tree vs {revision}: wall x{nw / pw:.2f}, CPU x{nc / pc:.2f}, "
        f"CPU per request x{nr / pr:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", default="openai")
    parser.add_argument(
        "--previous", metavar="REV", help="Also compare the whole command with git revision REV."
    )
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
    if args.previous:
        compare_with_previous(args.previous, args.rounds, args.concurrency)


if __name__ == "__main__":
    main()
