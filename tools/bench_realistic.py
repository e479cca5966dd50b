"""A benchmark that looks like production: imgconf against answers of 1-4 MB per image.

The reference server runs with ``realistic_images`` (``imgconf serve --realistic-images``):
photographic-like pictures (noise over gradients, alpha varying from clear to opaque on
transparent backgrounds), encoded once per size, format and background and then served from its
cache, so its CPU does not compete with the client's after a warm-up pass. Every client runs in
its own process, in a session of its own; its CPU (user + sys) comes from ``wait4`` on that
process (it and everything it waited for), its peak RSS is the highest sum of the resident sets
of every process in its session, read from ``/proc`` every 20 ms (and never below the largest
peak of a single process, its ``VmHWM``; not ``wait4``'s ``ru_maxrss``, which starts at this
script's own size). All traffic stays on 127.0.0.1; every client is killed after
``--cap`` seconds.

Scenarios (``--scenario``, repeatable; all by default):

- ``realistic``: the plan for ``--models`` (default gpt-image-1,gpt-image-2) sent by (a) the real
  ``imgconf run --base-url ... --endpoint generations`` command (start-up, plan, pre-flight,
  send, judge, reports),
  (b) a plain httpx loop sending the same bodies that reads, JSON-parses and base64-decodes
  every answer (the floor), (c) that loop also running imgconf's image check on every image,
  in as many threads as imgconf judges in, and judging nothing else (what the image checks
  alone cost a client that reads answers as the loop does), (d) Schemathesis with OpenAI's OpenAPI document
  cut to the endpoint (when it is installed; it sends its own requests, mostly refused ones).
- ``uhd``: gpt-image-2 at 3840x2160 in png, jpeg and webp, opaque and transparent. imgconf's
  plan sends no such size, so imgconf's send-and-judge loop (``Runner``) is called on cases
  built here, against the plain loop on the same bodies.
- ``flat``: the default plan of every openai model against the reference server's small, flat
  images: the real ``imgconf run``, the two loops and Schemathesis, as in ``realistic``.
  In both, each client runs ``--repeat`` times (3), interleaved, and its row is its run of
  median CPU: one run of a client moves by 10-30% on a shared machine.
- ``explore``: ``imgconf run --explore N`` for every model (``--explore-cases``, about 6,000
  drawn cases in all) against flat images: the peak RSS of its process tree (the drawing
  interpreter included) and how long after start its first request goes out.
- ``latency``: the server sleeps 1 s per request (the ``slow:1`` quirk; listen backlog 1024);
  concurrency 1, 8, 32 and 64 with ``--rounds`` (20) requests per slot in flight (64x20 at 64),
  imgconf's ``Runner`` against the plain loop. Speedup is requests/s over the same client's
  at concurrency 1 (ideal: the concurrency).

    python tools/bench_realistic.py                       # everything, a few minutes
    python tools/bench_realistic.py --scenario latency --rounds 5
    python tools/bench_realistic.py --scenario realistic --cprofile /tmp/imgconf.prof
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO.parent / "shared" / "openai-spec" / "openapi.yaml"
KEY_ENV = "IMGCONF_BENCH_KEY"
SCENARIOS = ("realistic", "uhd", "latency", "flat", "explore")
LATENCY_LEVELS = (1, 8, 32, 64)
UHD_SIZE = "3840x2160"
#: (output_format, background) of the 3840x2160 requests.
UHD_KINDS = (
    ("png", "opaque"),
    ("png", "transparent"),
    ("jpeg", "opaque"),
    ("webp", "opaque"),
    ("webp", "transparent"),
)


# --- the cases each client sends (built the same way in every process) ----------------------


def plan_cases(models: list[str]) -> list:
    """The cases ``imgconf run --models ...`` sends (default profile and seed)."""
    from conformance.contract.profiles import load_profile
    from conformance.generation.planning import build_plan

    return list(build_plan(load_profile("openai"), models=models).cases)


def _control(model: str) -> object:
    return next(c for c in plan_cases([model]) if c.id == f"{model}/control")


def uhd_cases(repeat: int) -> list:
    """gpt-image-2 at 3840x2160 in every format and background, ``repeat`` times each."""
    control = _control("gpt-image-2")
    cases = []
    for round_number in range(repeat):
        for fmt, background in UHD_KINDS:
            body = {**control.body, "size": UHD_SIZE, "quality": "low"}
            body.update(output_format=fmt, background=background)
            cases.append(
                dataclasses.replace(
                    control,
                    id=f"gpt-image-2/uhd-{fmt}-{background}#{round_number}",
                    body=body,
                    title=f"{UHD_SIZE} {fmt} {background}",
                )
            )
    return cases


def latency_cases(count: int) -> list:
    """``count`` copies of gpt-image-1's control request (1024x1024), each its own case."""
    control = _control("gpt-image-1")
    return [dataclasses.replace(control, id=f"{control.id}#{i}") for i in range(count)]


def build_cases(scenario: str, models: list[str], amount: int) -> list:
    if scenario in ("realistic", "flat"):
        return plan_cases(models)
    if scenario == "uhd":
        return uhd_cases(amount)
    return latency_cases(amount)


# --- the clients, each run in a child process (``--child``) -----------------------------------


async def plain_loop(
    cases: list, base_url: str, key: str, concurrency: int, *, check_images: bool = False
) -> dict:
    """The floor: send each body, read the answer, parse its JSON, base64-decode every image.

    With ``check_images``, also the least judging any client that checks images does: imgconf's
    own image check (:func:`~conformance.engine.image_facts.inspect_image`: structure, then
    the decode or inflate that tells whether all of the image is there, and the alpha band when
    ``background: transparent`` was asked) on every image, in as many threads as imgconf judges
    in and while sending goes on, repeats remembered as imgconf remembers them. Nothing else of
    an answer is judged and no report is written: what checking every image alone costs a
    client that reads answers as this loop does (the memory of the images waiting for their
    check is not bounded, which only helps it keep sending)."""
    from conformance.engine.transport import WRONG_KEY

    queue = list(reversed(cases))
    statuses: Counter[str] = Counter()
    images = 0
    checks: list[asyncio.Task[bool]] = []
    slots = asyncio.Semaphore(cores())
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def check(data: bytes, alpha: bool) -> bool:
        from conformance.engine.image_facts import inspect_image

        async with slots:
            facts = await asyncio.to_thread(inspect_image, data, check_alpha=alpha)
        return facts.decodes

    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal images
            while queue:
                case = queue.pop()
                headers = {"content-type": "application/json"}
                if case.auth == "valid":
                    headers["authorization"] = f"Bearer {key}"
                elif case.auth == "wrong":
                    headers["authorization"] = f"Bearer {WRONG_KEY}"
                url = f"{base_url}/images/generations{case.path_suffix}"
                try:
                    response = await client.post(url, content=case.content(), headers=headers)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                statuses[str(response.status_code)] += 1
                if response.status_code != 200:
                    continue
                alpha = isinstance(case.body, dict) and case.body.get("background") == "transparent"
                for item in _items(response):
                    if "b64_json" in item:
                        data = base64.b64decode(item["b64_json"])
                    elif str(item.get("url", "")).startswith("http://127.0.0.1:"):
                        data = (await client.get(item["url"])).content
                    else:
                        continue
                    images += 1
                    if check_images:
                        checks.append(asyncio.create_task(check(data, alpha)))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        verdicts = await asyncio.gather(*checks)
    summary: dict = {"statuses": dict(statuses), "images": images}
    if check_images:
        summary.update(checked=len(verdicts), broken=verdicts.count(False), **decode_cpu())
    return summary


async def checking_loop(cases: list, base_url: str, key: str, concurrency: int) -> dict:
    """The plain loop with imgconf's image checks (:func:`plain_loop`'s ``check_images``)."""
    return await plain_loop(cases, base_url, key, concurrency, check_images=True)


def _items(response: httpx.Response) -> list[dict]:
    """The image items of an answer: ``data`` of a JSON one, every event of a stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        events = []
        for line in response.text.splitlines():
            if line.startswith("data:"):
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line[5:]))
        return [e for e in events if isinstance(e, dict)]
    try:
        answer = json.loads(response.content)
    except ValueError:
        return []
    data = answer.get("data") if isinstance(answer, dict) else None
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


async def imgconf_runner(cases: list, base_url: str, key: str, concurrency: int) -> dict:
    """imgconf's send-and-judge loop (what ``imgconf run`` does per case; no report files)."""
    from conformance.contract.profiles import load_profile
    from conformance.engine.runner import Runner
    from conformance.engine.transport import TargetClient, TransportConfig

    profile = load_profile("openai")
    config = TransportConfig(base_url=base_url, path=profile.path, api_key=key, timeout=120)
    async with TargetClient(config) as transport:
        results = await Runner(transport, profile, concurrency=concurrency).run(cases)
    return {"outcomes": dict(Counter(r.outcome.value for r in results)), **decode_cpu()}


def decode_cpu() -> dict:
    """The CPU imgconf spent on pixel work (decodes, PNG inflates, thumbnails): reported apart
    (by a version of imgconf that counts it)."""
    try:
        from conformance.engine.image_facts import decode_seconds
    except ImportError:
        return {}
    return {"decode_cpu": decode_seconds()}


def child_main(args: argparse.Namespace) -> None:
    cases = build_cases(args.scenario[0], args.models.split(","), args.amount)
    job = {"loop": plain_loop, "checks": checking_loop, "runner": imgconf_runner}[args.child]
    started = time.perf_counter()
    summary = asyncio.run(job(cases, args.base_url, os.environ[KEY_ENV], args.concurrency))
    summary.update(requests=len(cases), wall=time.perf_counter() - started)
    print(json.dumps(summary), flush=True)


CLIENT_NAMES = {"loop": "plain loop", "checks": "loop+img checks", "runner": "imgconf Runner"}


# --- measuring a client process ----------------------------------------------------------------


@dataclass
class Measured:
    """One client's run: the numbers of its process tree."""

    scenario: str
    client: str
    requests: int
    wall: float
    cpu: float
    peak_rss_mb: float
    status: str
    images: int = 0
    concurrency: int = 0
    detail: dict = field(default_factory=dict)
    #: CPU seconds the server spent while this client ran (None when not measured).
    server_cpu: float | None = None

    @property
    def decode_cpu(self) -> float | None:
        """CPU seconds of pixel work (decodes, PNG inflates, thumbnails) within ``cpu``; None
        when this client does not count it."""
        return self.detail.get("decode_cpu")

    @property
    def sending(self) -> float:
        """Seconds from the first request out to the last answer judged (a client run by this
        script says; for a whole command, its wall time)."""
        return self.detail.get("wall", self.wall)

    @property
    def rate(self) -> float:
        return self.requests / self.sending if self.sending else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu / self.requests if self.requests else 0.0

    def floor(self, cores: int) -> float | None:
        """The shortest wall time this run's measured CPU allows on ``cores`` cores: its
        start-up (up to the first request: one thread, the server idle) as it took, then the
        rest of its CPU and the server's spread evenly over every core. A lower bound: no
        schedule of the same work finishes sooner."""
        if self.server_cpu is None:
            return None
        start = self.wall - self.sending
        return start + max(0.0, self.cpu - start + self.server_cpu) / cores


def measure(
    argv: list[str], env: dict[str, str], cap: float, cwd: Path | None = None
) -> tuple[float, float, float, str, str]:
    """Run ``argv`` to its end (killed after ``cap`` s): wall s, CPU s (from ``wait4``: the
    process and the descendants it waited for), peak RSS MB of its session, status, stdout."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        status = ""
        peak = 0
        own_peaks: dict[str, int] = {}
        while True:
            pid, code, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, session_rss(proc.pid, own_peaks))
            if time.perf_counter() - started > cap:
                os.killpg(proc.pid, signal.SIGKILL)
                status = f"killed after {cap:.0f} s"
            time.sleep(0.02)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(code)
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    # Not wait4's ru_maxrss: Linux carries a parent's peak over fork and exec into the child's,
    # so every client would measure at least this script's own size.
    rss = max(peak, max(own_peaks.values(), default=0)) / 2**20
    return wall, cpu, rss, status or f"exit {proc.returncode}", stdout


PAGE = os.sysconf("SC_PAGE_SIZE")


def process_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far, read from ``/proc``; None
    when it cannot be read (another system, a server served from a thread)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def server_seconds(server) -> float | None:
    """The server's CPU seconds so far. An older imgconf measured through ``PYTHONPATH`` names
    no server process: None."""
    return process_cpu(getattr(server, "pid", None))


def served(server, before: float | None) -> float | None:
    """The server's CPU seconds since ``before`` (a :func:`server_seconds` of it)."""
    after = server_seconds(server)
    return None if before is None or after is None else after - before


def session_rss(session: int, own_peaks: dict[str, int] | None = None) -> int:
    """Bytes resident in every process of ``session`` now; ``own_peaks`` gets each one's own
    peak so far (``VmHWM``: a peak between two samples still counts for one process)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError, StopIteration):
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            if int(fields[3]) != session:  # the session id, after state, ppid and pgrp
                continue
            with open(f"/proc/{entry.name}/statm", "rb") as statm:
                total += int(statm.read().split()[1]) * PAGE
            if own_peaks is not None:
                with open(f"/proc/{entry.name}/status", "rb") as status:
                    line = next(x for x in status if x.startswith(b"VmHWM:"))
                own = int(line.split()[1]) * 1024
                own_peaks[entry.name] = max(own_peaks.get(entry.name, 0), own)
    return total


def run_child(
    client: str, scenario: str, server, args: argparse.Namespace, concurrency: int, amount: int
) -> Measured:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", client]
    argv += ["--scenario", scenario, "--models", args.models, "--amount", str(amount)]
    argv += ["--concurrency", str(concurrency), "--base-url", server.base_url]
    env = {**os.environ, KEY_ENV: server.api_key}
    server_before = server_seconds(server)
    wall, cpu, rss, status, stdout = measure(argv, env, args.cap)
    server_cpu = served(server, server_before)
    lines = stdout.strip().splitlines()
    detail = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    name = CLIENT_NAMES[client]
    seen = detail.get("outcomes") or detail.get("statuses") or {}
    status += "; " + " ".join(f"{k} {v}" for k, v in sorted(seen.items())) if seen else ""
    if "checked" in detail:
        status += f"; images checked {detail['checked']}, {detail['broken']} broken"
    return Measured(
        scenario,
        name,
        detail.get("requests", 0),
        wall,
        cpu,
        rss,
        status,
        images=detail.get("images", 0),
        concurrency=concurrency,
        detail=detail,
        server_cpu=server_cpu,
    )


#: ``imgconf run`` as its entry point runs it, then the CPU its pixel work took, to a file.
COMMAND_RUN = """\
import json, os, sys, time

import conformance.engine.transport as transport

started = float(os.environ["BENCH_STARTED"])
sends = []
send_case = transport.TargetClient.send_case


async def timed_send_case(self, case, *args, **kwargs):
    if not sends:
        sends.append(time.time())
    return await send_case(self, case, *args, **kwargs)


transport.TargetClient.send_case = timed_send_case
from conformance.cli import run

sys.argv = ["imgconf", *sys.argv[2:]]
try:
    run()
finally:
    facts = {"first_request": sends[0] - started} if sends else {}
    try:
        from conformance.engine.image_facts import decode_seconds
    except ImportError:  # a version of imgconf that does not count it
        pass
    else:
        facts["decode_cpu"] = decode_seconds()
    with open(FACTS_FILE, "w") as out:
        out.write(json.dumps(facts))
"""


def run_imgconf_command(
    server,
    args: argparse.Namespace,
    report_dir: Path,
    *,
    scenario: str = "realistic",
    models: str | None = None,
    extra: tuple[str, ...] = (),
) -> Measured:
    """The whole ``imgconf run`` command against the benchmark server: its entry point called
    by a short driver that notes when the first request went out and then writes down that
    and the CPU of its pixel work."""
    _imgconf()  # installed here
    models = models or args.models
    driver = report_dir.parent / "command_run.py"
    facts = report_dir.parent / "command_facts.json"
    driver.write_text(COMMAND_RUN.replace("FACTS_FILE", repr(str(facts))))
    argv = [sys.executable, str(driver), "--", "run", "--base-url", server.base_url]
    argv += ["--models", models, "--endpoint", "generations", *extra]
    argv += ["--concurrency", str(args.concurrency), "--report-dir", str(report_dir)]
    env = {**os.environ, "OPENAI_API_KEY": server.api_key, "BENCH_STARTED": repr(time.time())}
    server_before = server_seconds(server)
    wall, cpu, rss, status, stdout = measure(argv, env, args.cap)
    server_cpu = served(server, server_before)
    detail: dict = {}
    with contextlib.suppress(OSError, ValueError):
        detail = json.loads(facts.read_text())
    if "first_request" in detail:  # sending: from the first request out to the exit
        detail["wall"] = wall - detail["first_request"]
    requests = 0
    with contextlib.suppress(OSError, ValueError):
        report = json.loads((report_dir / "report.json").read_text())
        requests = sum(1 for case in report.get("cases", []) if case.get("status") is not None)
    requests = requests or len(plan_cases(models.split(",")))
    verdict = next((w for w in stdout.split() if w in ("PASS", "FAIL", "INCOMPLETE")), "")
    return Measured(
        scenario,
        "imgconf run",
        requests,
        wall,
        cpu,
        rss,
        f"{status} {verdict}".strip(),
        concurrency=args.concurrency,
        detail=detail,
        server_cpu=server_cpu,
    )


def _imgconf() -> str:
    """The ``imgconf`` of this interpreter's environment."""
    candidate = Path(sys.executable).with_name("imgconf")
    if not candidate.exists():
        raise SystemExit("imgconf is not installed in this environment (pip install -e .)")
    return str(candidate)


SCHEMATHESIS_HOOK = """\
import atexit, json, os
import schemathesis

_seen = {"requests": 0, "accepted": 0}


@schemathesis.hook
def after_call(context, case, response):
    _seen["requests"] += 1
    _seen["accepted"] += 200 <= response.status_code < 300


atexit.register(lambda: open(os.environ["BENCH_ST_COUNT"], "w").write(json.dumps(_seen)))
"""


def run_schemathesis(
    server, args: argparse.Namespace, workdir: Path, scenario: str = "realistic"
) -> Measured | str:
    """Schemathesis on OpenAI's document cut to the endpoint (read from ``--spec``, written to a
    temporary directory, never into the project); a string says why it could not run."""
    executable = Path(sys.executable).with_name("schemathesis")
    if not executable.exists():
        return "Schemathesis is not installed here (pip install schemathesis)"
    if not args.spec.is_file():
        return f"OpenAI's spec is not at {args.spec} (pass --spec)"
    sys.path.insert(0, str(REPO / "tools"))
    from peers import write_prism_document  # the endpoint's operation and what it references

    document = write_prism_document(args.spec, workdir)
    (workdir / "bench_st_hook.py").write_text(SCHEMATHESIS_HOOK)
    counts = workdir / "st-count"
    argv = [str(executable), "run", str(document), "--url", server.url]
    argv += ["-H", f"Authorization: Bearer {server.api_key}", "--checks", "all"]
    argv += ["--continue-on-failure", "--max-examples", str(args.st_examples)]
    argv += ["--workers", str(args.concurrency), "--request-timeout", "120"]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "bench_st_hook",
        "PYTHONPATH": str(workdir),
        "BENCH_ST_COUNT": str(counts),
    }
    # Run in the temporary directory: Schemathesis keeps a cache in its working directory.
    server_before = server_seconds(server)
    wall, cpu, rss, status, _ = measure(argv, env, args.cap, cwd=workdir)
    server_cpu = served(server, server_before)
    try:
        seen = json.loads(counts.read_text())  # written by the hook above
    except (OSError, ValueError):
        return f"Schemathesis ran ({status}) but did not report its requests"
    return Measured(
        scenario,
        "Schemathesis",
        seen["requests"],
        wall,
        cpu,
        rss,
        f"{status}; {seen['accepted']} answered 2xx",
        concurrency=args.concurrency,
        server_cpu=server_cpu,
    )


# --- the scenarios ------------------------------------------------------------------------------


@contextlib.contextmanager
def benchmark_server(quirks: tuple[str, ...] = (), *, realistic_images: bool = True) -> Iterator:
    from conformance.server.launcher import start_reference_server

    with start_reference_server(quirks=quirks, realistic_images=realistic_images) as server:
        yield server


def all_models() -> str:
    from conformance.contract.profiles import load_profile

    return ",".join(load_profile("openai").models)


def flat(args: argparse.Namespace, notes: list[str]) -> list[Measured]:
    """The default plan of every model against the reference server's small, flat images."""
    models = all_models()
    notes.append(f"flat: the default plan of every openai model ({models}), small flat images")
    return command_loop_schemathesis("flat", args, notes, models=models, realistic_images=False)


def explore(args: argparse.Namespace, notes: list[str]) -> list[Measured]:
    """``imgconf run --explore N`` for every model (about ``--explore-cases`` cases in all)
    against flat images: the peak RSS of its process tree and when its first request goes out."""
    from conformance.contract.profiles import load_profile

    models = all_models()
    count = max(1, args.explore_cases // len(load_profile("openai").models))
    with benchmark_server(realistic_images=False) as server, tempfile.TemporaryDirectory() as tmp:
        # ``imgconf plan`` first, as an earlier run would have: its covering arrays are kept in
        # the user's cache directory.
        subprocess.run([_imgconf(), "plan", "--models", models], capture_output=True, check=False)
        row = run_imgconf_command(
            server,
            args,
            Path(tmp) / "report",
            scenario="explore",
            models=models,
            extra=("--explore", str(count)),
        )
    notes.append(
        f"explore: imgconf run --explore {count} for {models} against small flat images "
        "(the covering arrays cached by an earlier `imgconf plan`)"
    )
    return [row]


def realistic(args: argparse.Namespace, notes: list[str]) -> list[Measured]:
    return command_loop_schemathesis("realistic", args, notes)


def command_loop_schemathesis(
    scenario: str,
    args: argparse.Namespace,
    notes: list[str],
    *,
    models: str | None = None,
    realistic_images: bool = True,
) -> list[Measured]:
    """The whole ``imgconf run``, the plain loop on the same bodies, that loop with imgconf's
    image checks and Schemathesis, against one server (and ``imgconf run`` once more under
    cProfile when asked)."""
    run_args = argparse.Namespace(**{**vars(args), "models": models or args.models})
    rows = []
    with (
        benchmark_server(realistic_images=realistic_images) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        run_child("loop", scenario, server, run_args, args.concurrency, 0)  # warm the cache
        commands, loops, checking, sts = [], [], [], []
        for attempt in range(args.repeat):  # interleaved: a change of load hits every client
            loops.append(run_child("loop", scenario, server, run_args, args.concurrency, 0))
            checking.append(run_child("checks", scenario, server, run_args, args.concurrency, 0))
            report = Path(tmp) / f"report-{attempt}"
            commands.append(run_imgconf_command(server, run_args, report, scenario=scenario))
            workdir = Path(tmp) / f"schemathesis-{attempt}"  # its cache starts empty each time
            workdir.mkdir()
            sts.append(run_schemathesis(server, args, workdir, scenario=scenario))
        loop, command, checks = median_run(loops), median_run(commands), median_run(checking)
        command.images = loop.images  # the same bodies: the same images
        rows += [command, loop, checks]
        if isinstance(sts[0], str):
            notes.append(f"Schemathesis: not run: {sts[0]}")
        else:
            rows.append(median_run([st for st in sts if not isinstance(st, str)]))
        if args.repeat > 1:
            notes.append(
                f"{scenario}: each client run {args.repeat} times, interleaved; each row is the "
                "run of median CPU"
            )
        if args.cprofile:
            profile_imgconf(server, run_args, Path(tmp) / "profiled", notes)
    return rows


def median_run(runs: list[Measured]) -> Measured:
    """The run of median CPU (the lower middle of an even count): one whole run, so that its
    wall, CPU and memory stay each other's, and one slow moment of a shared machine does not
    make the row."""
    return sorted(runs, key=lambda run: run.cpu)[(len(runs) - 1) // 2]


def uhd(args: argparse.Namespace, notes: list[str]) -> list[Measured]:
    sizes = {c.body.get("size") for c in plan_cases(["gpt-image-2"]) if isinstance(c.body, dict)}
    if UHD_SIZE not in sizes:
        notes.append(
            f"uhd: imgconf's plan for gpt-image-2 sends no {UHD_SIZE} request, so imgconf's "
            f"Runner judges {len(UHD_KINDS)}x{args.uhd_repeat} such cases built here"
        )
    with benchmark_server() as server:
        run_child("loop", "uhd", server, args, args.concurrency, 1)  # warm the cache
        loop = run_child("loop", "uhd", server, args, args.concurrency, args.uhd_repeat)
        judged = run_child("runner", "uhd", server, args, args.concurrency, args.uhd_repeat)
    judged.images = loop.images
    return [judged, loop]


def latency(args: argparse.Namespace, notes: list[str]) -> list[Measured]:
    notes.append(
        f"latency: the server sleeps 1 s per request; {args.rounds} requests per slot in flight "
        "(concurrency x rounds requests); gpt-image-1 1024x1024 png"
    )
    rows = []
    with benchmark_server(("slow:1",)) as server:
        run_child("loop", "latency", server, args, 1, 1)  # warm the cache
        for level in LATENCY_LEVELS:
            pair = [
                run_child(client, "latency", server, args, level, level * args.rounds)
                for client in ("runner", "loop")
            ]
            for row in pair:
                row.scenario = f"latency c={level}"
            pair[0].images = pair[1].images  # the same bodies: the same images
            rows += pair
    return rows


PROFILED_RUN = """\
import cProfile, pstats, sys, threading, time

import conformance.engine.runner as running

# CPU time per thread (time.thread_time), in the main thread and in the threads that judge
# answers with images (asyncio.to_thread), merged at the end.
judging, lock, local = [], threading.Lock(), threading.local()
original = running.judge


def judge(*args, **kwargs):
    if threading.current_thread() is threading.main_thread():
        return original(*args, **kwargs)
    profile = getattr(local, "profile", None)
    if profile is None:
        profile = local.profile = cProfile.Profile(time.thread_time)
        with lock:
            judging.append(profile)
    profile.enable()
    try:
        return original(*args, **kwargs)
    finally:
        profile.disable()


running.judge = judge
main = cProfile.Profile(time.thread_time)
sys.argv = ["imgconf", *sys.argv[2:]]
main.enable()
try:
    from conformance.cli import run

    run()
except SystemExit:
    pass
finally:
    main.disable()
    stats = pstats.Stats(main)
    for profile in judging:
        stats.add(profile)
    stats.dump_stats(OUT)
"""


def profile_imgconf(server, args: argparse.Namespace, report_dir: Path, notes: list[str]) -> None:
    """``imgconf run`` under cProfile (CPU time of every thread, the judging threads included)
    against the same server; the top 15 functions by cumulative time go to FILE.txt."""
    import pstats

    driver = report_dir.parent / "profiled_run.py"
    driver.write_text(PROFILED_RUN.replace("OUT)", f"{str(args.cprofile)!r})"))
    argv = [sys.executable, str(driver), "--", "run", "--base-url", server.base_url]
    argv += ["--models", args.models, "--endpoint", "generations"]
    argv += ["--concurrency", str(args.concurrency), "--report-dir", str(report_dir)]
    measure(argv, {**os.environ, "OPENAI_API_KEY": server.api_key}, args.cap)
    with contextlib.suppress(OSError):
        out = Path(args.cprofile).with_suffix(".txt")
        with out.open("w") as stream:
            stats = pstats.Stats(str(args.cprofile), stream=stream)
            stats.sort_stats("cumulative").print_stats(15)
            stats.sort_stats("tottime").print_stats(15)
        notes.append(f"cProfile of imgconf run: {args.cprofile} (top 15 in {out})")


# --- the table -----------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} cores (nproc {cores()}), {model}; "
        f"Python {platform.python_version()}; load average {load}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def floor_note(imgconf: Measured, loop: Measured, *, rate: bool = False) -> str:
    """What this machine allows imgconf at best against the loop, from the CPU both imgconf
    and the server were measured to spend: its wall (or request rate) at its :meth:`floor`."""
    floor = imgconf.floor(cores())
    if floor is None or not loop.wall or not loop.rate:
        return ""
    spent = (
        f"imgconf's {imgconf.cpu:.2f} s of CPU and the server's {imgconf.server_cpu:.2f} s "
        f"on {cores()} cores"
    )
    if rate:
        sending = floor - (imgconf.wall - imgconf.sending)
        best = imgconf.requests / sending / loop.rate if sending > 0 else float("inf")
        return f"; {spent} allow at best x{best:.2f}"
    return f"; {spent} allow at best x{floor / loop.wall:.2f} ({floor:.2f} s)"


def ratios(rows: list[Measured]) -> list[str]:
    """The ratios the targets name, from the rows there are."""
    by = {(r.scenario, r.client): r for r in rows}
    lines = []
    for scenario, target_wall, target_cpu in (
        ("realistic", 1.2, 2.0),
        ("uhd", None, 60.0),
    ):
        imgconf = by.get((scenario, "imgconf run")) or by.get((scenario, "imgconf Runner"))
        loop = by.get((scenario, "plain loop"))
        if imgconf is None or loop is None:
            continue
        images = max(loop.images, 1)
        extra = 1000 * (imgconf.cpu - loop.cpu) / images
        apart = "pixel work not counted by this imgconf"
        if imgconf.decode_cpu is not None:
            pixels = 1000 * imgconf.decode_cpu / images
            apart = f"of which pixel work {pixels:.1f} ms: +{extra - pixels:.1f} ms without it"
        line = (
            f"{scenario}: imgconf/loop wall x{imgconf.wall / loop.wall:.2f}"
            + (f" (target <= {target_wall}{floor_note(imgconf, loop)})" if target_wall else "")
            + f", CPU x{imgconf.cpu / loop.cpu:.2f}, CPU per image +{extra:.1f} ms above the "
            f"loop's, {apart} (target <= {target_cpu:g}), peak RSS {imgconf.peak_rss_mb:.0f} MB"
        )
        st = by.get((scenario, "Schemathesis"))
        if st is not None and st.requests:
            line += (
                f"; imgconf/Schemathesis CPU per request x"
                f"{imgconf.cpu_ms_per_request / st.cpu_ms_per_request:.2f}, "
                f"request rate x{imgconf.rate / st.rate:.2f}"
            )
        lines.append(line)
    flat_run, flat_loop = by.get(("flat", "imgconf run")), by.get(("flat", "plain loop"))
    if flat_run is not None and flat_loop is not None and flat_loop.rate:
        line = (
            f"flat: imgconf/loop request rate x{flat_run.rate / flat_loop.rate:.2f} "
            "(target >= 0.9; imgconf's from its first request to its exit, reports included"
            f"{floor_note(flat_run, flat_loop, rate=True)})"
        )
        st = by.get(("flat", "Schemathesis"))
        if st is not None and st.requests:
            line += (
                f", imgconf/Schemathesis CPU per request "
                f"x{flat_run.cpu_ms_per_request / st.cpu_ms_per_request:.2f} (target <= 0.2)"
            )
        lines.append(line)
    for scenario in ("realistic", "flat"):
        checks, loop = by.get((scenario, "loop+img checks")), by.get((scenario, "plain loop"))
        if checks is None or loop is None or not loop.rate or not loop.wall:
            continue
        lines.append(
            f"{scenario}: the plain loop with imgconf's image checks, nothing else judged: wall "
            f"x{checks.wall / loop.wall:.2f}, request rate x{checks.rate / loop.rate:.2f} of "
            "the plain loop's"
        )
    drawn = by.get(("explore", "imgconf run"))
    if drawn is not None:
        first = drawn.detail.get("first_request")
        lines.append(
            f"explore: {drawn.requests} cases in {drawn.wall:.1f} s, peak RSS of the process "
            f"tree {drawn.peak_rss_mb:.0f} MB (target <= 200), first request out "
            + (f"{first:.2f} s after start" if first is not None else "(not measured)")
            + " (target <= 0.5)"
        )
    speedups = {}
    for client in ("imgconf Runner", "plain loop"):
        base = by.get(("latency c=1", client))
        for level in LATENCY_LEVELS:
            row = by.get((f"latency c={level}", client))
            if base and row and base.rate:
                speedups[client, level] = row.rate / base.rate
    parts = []
    for level in (32, 64):
        if ("imgconf Runner", level) in speedups and ("plain loop", level) in speedups:
            mine, floor = speedups["imgconf Runner", level], speedups["plain loop", level]
            parts.append(
                f"at {level}: imgconf x{mine:.1f}, loop x{floor:.1f}, ratio {mine / floor:.2f}"
            )
    if parts:
        lines.append("latency speedup (target ratio >= 0.95): " + "; ".join(parts))
    return lines


def print_table(rows: list[Measured], notes: list[str]) -> None:
    speed = {}
    for row in rows:
        if row.scenario.startswith("latency"):
            base = next(
                (r for r in rows if r.scenario == "latency c=1" and r.client == row.client), None
            )
            if base and base.rate:
                speed[id(row)] = f"x{row.rate / base.rate:.1f}"
    loops = {r.scenario: r for r in rows if r.client == "plain loop"}
    header = (
        f"{'scenario':16} {'client':15} {'reqs':>5} {'imgs':>5} {'wall s':>7} {'send s':>7} "
        f"{'req/s':>7} "
        f"{'CPU ms/req':>10} {'+CPU ms/img':>11} {'pix ms/img':>10} {'srv CPU s':>9} "
        f"{'RSS MB':>7} {'speedup':>7}  status"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        loop = loops.get(row.scenario)
        above = pixels = ""
        if loop is not None and row is not loop and loop.images and row.images:
            above = f"{1000 * (row.cpu - loop.cpu) / loop.images:+.1f}"
            if row.decode_cpu is not None:
                pixels = f"{1000 * row.decode_cpu / loop.images:.1f}"
        served_cpu = "" if row.server_cpu is None else f"{row.server_cpu:.2f}"
        print(
            f"{row.scenario:16} {row.client:15} {row.requests:5d} {row.images or '':>5} "
            f"{row.wall:7.2f} {row.sending:7.2f} {row.rate:7.1f} {row.cpu_ms_per_request:10.2f} "
            f"{above:>11} {pixels:>10} {served_cpu:>9} {row.peak_rss_mb:7.0f} "
            f"{speed.get(id(row), ''):>7}  "
            f"{row.status}"
        )
    print("-" * len(header))
    print(
        "wall: the client process from start to exit; send: its first request to its last "
        "answer (req/s and speedup use it); CPU: user+sys of the process tree, start-up "
        "included; +CPU ms/img: (CPU - the plain loop's CPU) / images; pix ms/img: imgconf's "
        "pixel work (decodes, PNG inflates, thumbnails: what the image rules ask for) per "
        "image, within +CPU; srv CPU: the server's CPU while the client ran; RSS: peak of the "
        "tree (the sum over its processes, read every 20 ms). 'At best': the client's start-up "
        "as it took, then its CPU and the server's spread evenly over every core."
    )
    for line in ratios(rows):
        print(line)
    for note in notes:
        print(f"note: {note}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    parser.add_argument("--models", default="gpt-image-1,gpt-image-2")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20, help="Latency: requests per slot.")
    parser.add_argument(
        "--uhd-repeat", type=int, default=4, help="3840x2160: requests per format/background."
    )
    parser.add_argument("--st-examples", type=int, default=50, help="Schemathesis --max-examples.")
    parser.add_argument(
        "--explore-cases", type=int, default=6000, help="Explore: drawn cases in all (about)."
    )
    parser.add_argument("--cap", type=float, default=300.0, help="Seconds any one client may run.")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="realistic and flat: runs of each client (interleaved); the row is the median's.",
    )
    parser.add_argument("--spec", type=Path, default=SPEC, help="OpenAI's openapi.yaml.")
    parser.add_argument("--cprofile", type=Path, help="Also profile one imgconf run into FILE.")
    # Internal: run one client (the parent measures this process).
    parser.add_argument("--child", choices=["loop", "checks", "runner"], help=argparse.SUPPRESS)
    parser.add_argument("--amount", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def compile_package() -> None:
    """Write the bytecode of the package measured, as its first import would: with
    PYTHONDONTWRITEBYTECODE set, or in a fresh checkout of an older revision, each command
    would otherwise compile every module it imports again (a few tenths of a second of CPU),
    and that is not imgconf's cost."""
    import compileall

    import conformance

    compileall.compile_dir(str(Path(conformance.__file__).parent), quiet=1)


def main() -> None:
    args = parse_args()
    if args.child:
        child_main(args)
        return
    scenarios = args.scenario or list(SCENARIOS)
    compile_package()
    print(machine())
    print(
        f"models {args.models}, concurrency {args.concurrency} (latency: {LATENCY_LEVELS}), "
        f"cap {args.cap:.0f} s per client",
        flush=True,
    )
    rows: list[Measured] = []
    notes: list[str] = []
    for scenario in scenarios:
        started = time.perf_counter()
        run_scenario = {
            "realistic": realistic,
            "uhd": uhd,
            "latency": latency,
            "flat": flat,
            "explore": explore,
        }[scenario]
        rows += run_scenario(args, notes)
        print(f"  {scenario} done in {time.perf_counter() - started:.0f} s", flush=True)
    print()
    print_table(rows, notes)


if __name__ == "__main__":
    main()
