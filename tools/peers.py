#!/usr/bin/env python3
"""Run imgconf against real OpenAI-compatible servers that nobody on this project wrote.

Each peer is a pinned release from a public registry. For each one this script installs it into
its own virtual environment (or npm prefix) outside the project's environment, starts it on a
free loopback port, waits until it answers, runs ``imgconf run`` against it with the report in
``reports/peers/<peer>/``, stops it, and prints a summary: verdict, the MUST rules it broke, the
SHOULD rules it warned on, and the wall time.

The peers:

- ``litellm``: the LiteLLM proxy, in front of ``imgconf serve`` as its upstream (the recipe a
  gateway uses to gate its own releases);
- ``llmock``: a chaos-testing mock of many LLM providers;
- ``mock-ai-api``: a local mock of OpenAI's and Anthropic's APIs;
- ``prism``: Stoplight Prism mocking OpenAI's own OpenAPI document.

Isolation: peers answer with image URLs of their choosing (Prism's come from the spec's
examples and point at a public host). So that no request ever leaves the machine, the peers and
imgconf run inside a fresh network namespace with only a loopback interface (``unshare -n``);
where none can be made the script refuses to run unless told ``--no-isolate``. Installs happen
first, outside the namespace.

Every exchange is also recorded (``exchanges.har`` beside the reports), so each finding can be
checked by hand against what the peer really sent.

Usage::

    python tools/peers.py                  # all peers
    python tools/peers.py --peer prism     # one peer
    python tools/peers.py --list
    python tools/peers.py --summary-json out.json -- --seed 3   # extra imgconf flags
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = Path(os.environ.get("IMGCONF_PEERS_DIR", "/tmp/imgconf-peers"))
DEFAULT_SPEC = REPO.parent / "shared" / "openai-spec" / "openapi.yaml"
DEFAULT_REPORTS = REPO / "reports" / "peers"
#: The key imgconf sends to every peer: LiteLLM's master key (the others take any key or none).
PEER_KEY = "sk-imgconf-peer-0000"
#: The key LiteLLM sends to its upstream, the reference server.
UPSTREAM_KEY = "sk-imgconf-upstream-0000"
#: Set inside the network namespace, so that the re-executed script does not unshare again.
INSIDE_ENV = "IMGCONF_PEERS_NETNS"
READY_TIMEOUT = 120.0


# --- ports, processes, readiness ---------------------------------------------------------


def free_port() -> int:
    """A loopback port that was free a moment ago (the peer binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    """A started peer (or upstream): its process group is stopped as one."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(grace)

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Process:
    """Start ``argv`` in its own session (so that its children stop with it), logging to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Process(name, popen, log)


def wait_ready(process: Process, url: str, timeout: float = READY_TIMEOUT) -> float:
    """Wait until ``url`` answers any HTTP status; return the seconds it took.

    Any answer will do: the peer is listening and routing. A peer that exits or never answers
    is a set-up failure of this script, reported with the end of its log.
    """
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.popen.poll() is not None:
            raise RuntimeError(
                f"{process.name} exited with {process.popen.returncode}:\n{process.log_tail()}"
            )
        try:
            httpx.get(url, timeout=2.0, trust_env=False)
            return time.monotonic() - start
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(
        f"{process.name} did not answer at {url} in {timeout:.0f} s:\n{process.log_tail()}"
    )


# --- installs ----------------------------------------------------------------------------


def pip_venv(workdir: Path, name: str, requirements: Sequence[str]) -> Path:
    """A virtual environment for one peer, created once and reused while its pins hold."""
    venv = workdir / name
    marker = venv / ".imgconf-installed"
    wanted = "\n".join(requirements)
    if marker.exists() and marker.read_text() == wanted:
        return venv
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements],
        capture_output=True,
        text=True,
    )
    if installed.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(requirements)} failed:\n{installed.stderr}")
    marker.write_text(wanted)
    return venv


def npm_prefix(workdir: Path, name: str, package: str) -> Path:
    """An npm prefix for one peer, installed once and reused while its pin holds."""
    prefix = workdir / name
    marker = prefix / ".imgconf-installed"
    if marker.exists() and marker.read_text() == package:
        return prefix
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed (Prism needs node and npm)")
    prefix.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent", package],
        check=True,
    )
    marker.write_text(package)
    return prefix


# --- OpenAI's spec, made fit for Prism ---------------------------------------------------

SPEC_PATH = "/images/generations"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve_pointer(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _set_pointer(document: dict[str, Any], ref: str, value: Any) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in ref.removeprefix("#/").split("/")]
    node = document
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def to_openapi31_nulls(node: Any) -> Any:
    """Replace OpenAPI 3.0's ``nullable: true`` with 3.1's null types, recursively.

    OpenAI's document says ``openapi: 3.1.0`` but still writes ``nullable: true``. A 3.1 tool
    ignores that keyword, so ``null`` is rejected where the spec allows it; and where it sits
    beside ``anyOf`` Prism gives up validating the body altogether. Each form is rewritten to
    what 3.1 means by it: ``type: [T, "null"]`` (with ``null`` added to an ``enum``), a
    ``{"type": "null"}`` branch in ``anyOf``/``oneOf``, or an ``anyOf`` around anything else.
    """
    if isinstance(node, list):
        return [to_openapi31_nulls(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: to_openapi31_nulls(value) for key, value in node.items()}
    if node.pop("nullable", False) is not True:
        return node
    null_schema = {"type": "null"}
    if "enum" in node and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]
    for combinator in ("anyOf", "oneOf"):
        if combinator in node:
            if null_schema not in node[combinator]:
                node[combinator] = [*node[combinator], null_schema]
            return node
    kind = node.get("type")
    if isinstance(kind, str):
        node["type"] = [kind, "null"]
        return node
    if isinstance(kind, list):
        if "null" not in kind:
            node["type"] = [*kind, "null"]
        return node
    annotations = {
        k: node.pop(k) for k in ("description", "default", "example", "title") if k in node
    }
    return {**annotations, "anyOf": [node, null_schema]}


def prism_document(spec: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's document cut down to the image endpoint, with 3.1 null types, under ``/v1``.

    Only the operation and the components it references are kept (Prism then starts in about a
    second instead of fifteen). The server's ``/v1`` base path is moved into the path, because
    Prism matches request paths against the ``paths`` keys alone.
    """
    operation = spec["paths"][SPEC_PATH]
    out: dict[str, Any] = {
        "openapi": spec["openapi"],
        "info": spec["info"],
        "paths": {"/v1" + SPEC_PATH: operation},
        "security": spec.get("security", []),
        "components": {
            "securitySchemes": spec.get("components", {}).get("securitySchemes", {}),
        },
    }
    pending = list(_refs(operation))
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen or not ref.startswith("#/"):
            continue
        seen.add(ref)
        target = _resolve_pointer(spec, ref)
        _set_pointer(out, ref, target)
        pending.extend(_refs(target))
    return to_openapi31_nulls(out)


def write_prism_document(spec_path: Path, directory: Path) -> Path:
    """Read OpenAI's spec from ``spec_path`` and write Prism's copy into ``directory``."""
    if not spec_path.is_file():
        raise RuntimeError(f"OpenAI's spec is not at {spec_path} (pass --spec)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(spec_path.read_text(encoding="utf-8"), Loader=loader)
    target = directory / "openai-images.openapi.json"
    target.write_text(json.dumps(prism_document(spec), indent=1))
    return target


# --- the peers ---------------------------------------------------------------------------


@dataclass
class Started:
    """A peer up and answering: where imgconf should point, and what to stop afterwards."""

    base_url: str
    processes: list[Process]
    startup_seconds: float
    #: Extra ``imgconf run`` flags this peer needs (its key).
    imgconf_args: list[str] = field(default_factory=list)


@dataclass
class Peer:
    name: str
    version: str
    #: Installs the peer under the work directory; returns its venv or prefix.
    install: Callable[[Path], Path]
    #: Starts the peer from its installation; ``logs`` is where its output goes.
    start: Callable[[Path, Path, argparse.Namespace], Started]
    description: str


def _start_listening(name: str, command: list[str], logs: Path) -> Started:
    """Start a peer that takes ``--host/--port/--log-level`` and serves ``/v1/models`` when up."""
    port = free_port()
    argv = [*command, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = spawn(name, argv, logs / f"{name}.log")
    base = f"http://127.0.0.1:{port}"
    return Started(f"{base}/v1", [proc], wait_ready(proc, f"{base}/v1/models"))


def _start_llmock(venv: Path, logs: Path, _: argparse.Namespace) -> Started:
    return _start_listening("llmock", [str(venv / "bin" / "llmock"), "serve"], logs)


def _start_mock_ai_api(venv: Path, logs: Path, _: argparse.Namespace) -> Started:
    return _start_listening(
        "mock-ai-api", [str(venv / "bin" / "uvicorn"), "app.openai_app:app"], logs
    )


def _start_prism(prefix: Path, logs: Path, options: argparse.Namespace) -> Started:
    document = write_prism_document(options.spec, Path(tempfile.mkdtemp(prefix="imgconf-prism-")))
    port = free_port()
    proc = spawn(
        "prism",
        [
            str(prefix / "node_modules" / ".bin" / "prism"),
            "mock",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            str(document),
        ],
        logs / "prism.log",
    )
    base = f"http://127.0.0.1:{port}"
    # Its document is cut to the generations endpoint, so that is the one endpoint it serves.
    return Started(
        f"{base}/v1",
        [proc],
        wait_ready(proc, f"{base}/"),
        imgconf_args=["--endpoint", "generations"],
    )


def litellm_config(upstream: str, models: Sequence[str]) -> dict[str, Any]:
    """LiteLLM's config: every model passed through to the upstream under its own name."""
    return {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": upstream,
                    "api_key": UPSTREAM_KEY,
                },
            }
            for model in models
        ],
        # Cool-downs and retries would hide or multiply the upstream's answers to invalid
        # requests: imgconf must see each answer once, as the upstream gave it.
        "router_settings": {"disable_cooldowns": True, "num_retries": 0},
        "litellm_settings": {"num_retries": 0, "request_timeout": 60},
        "general_settings": {"master_key": PEER_KEY},
    }


def _start_litellm(venv: Path, logs: Path, options: argparse.Namespace) -> Started:
    from conformance.contract.profiles import load_profile

    upstream_port, port = free_port(), free_port()
    upstream = spawn(
        "imgconf-serve",
        [
            sys.executable,
            "-c",
            "from conformance.cli import run; run()",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(upstream_port),
            "--api-key",
            UPSTREAM_KEY,
        ],
        logs / "imgconf-serve.log",
    )
    processes = [upstream]
    try:
        upstream_url = f"http://127.0.0.1:{upstream_port}/v1"
        wait_ready(upstream, f"http://127.0.0.1:{upstream_port}/")
        models = load_profile(options.profile).models
        config = logs / "litellm.config.yaml"
        config.write_text(yaml.safe_dump(litellm_config(upstream_url, models), sort_keys=False))
        proxy = spawn(
            "litellm",
            [
                str(venv / "bin" / "litellm"),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ],
            logs / "litellm.log",
            env={
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_LOG": "ERROR",
                "DISABLE_SCHEMA_UPDATE": "True",
            },
        )
        processes.append(proxy)
        base = f"http://127.0.0.1:{port}"
        ready = wait_ready(proxy, f"{base}/health/liveliness")
    except BaseException:
        for process in reversed(processes):
            process.stop()
        raise
    return Started(f"{base}/v1", processes, ready)


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer(
            "litellm",
            "1.103.7",
            lambda w: pip_venv(w, "litellm", ["litellm[proxy]==1.103.7", "prisma"]),
            _start_litellm,
            "LiteLLM proxy in front of imgconf serve",
        ),
        Peer(
            "llmock",
            "0.2.2",
            lambda w: pip_venv(w, "llmock", ["llmock==0.2.2"]),
            _start_llmock,
            "llmock serve",
        ),
        Peer(
            "mock-ai-api",
            "0.1.1",
            lambda w: pip_venv(w, "mockai", ["mock-ai-api==0.1.1"]),
            _start_mock_ai_api,
            "mock-ai-api (uvicorn app.openai_app:app)",
        ),
        Peer(
            "prism",
            "5.14.2",
            lambda w: npm_prefix(w, "prism", "@stoplight/prism-cli@5.14.2"),
            _start_prism,
            "Stoplight Prism mocking OpenAI's OpenAPI document",
        ),
    )
}


# --- one run -----------------------------------------------------------------------------


@dataclass
class PeerRun:
    """What one peer's run gave, for the summary and for tests."""

    peer: str
    version: str
    exit_code: int | None = None
    verdict: str = "error"
    must_failures: dict[str, int] = field(default_factory=dict)
    should_warnings: dict[str, int] = field(default_factory=dict)
    cases: int = 0
    startup_seconds: float = 0.0
    run_seconds: float = 0.0
    report_dir: str = ""
    error: str = ""


def summarise_report(report: dict[str, Any]) -> tuple[dict[str, int], dict[str, int], int]:
    """Count the broken MUST rules and the SHOULD warnings of a ``report.json``."""
    must: Counter[str] = Counter()
    should: Counter[str] = Counter()
    cases = report.get("cases", [])
    for case in cases:
        for finding in case.get("findings", []):
            (must if finding.get("level") == "MUST" else should)[finding["rule"]] += 1
    return dict(sorted(must.items())), dict(sorted(should.items())), len(cases)


def imgconf_command() -> list[str]:
    """``imgconf`` as the Python running this script has it installed."""
    return [sys.executable, "-c", "from conformance.cli import run; run()"]


def run_peer(peer: Peer, options: argparse.Namespace) -> PeerRun:
    result = PeerRun(peer.name, peer.version)
    report_dir = options.report_root / peer.name
    if report_dir.exists():
        shutil.rmtree(report_dir)
    report_dir.mkdir(parents=True)
    result.report_dir = str(report_dir)
    logs = report_dir / "logs"
    started: Started | None = None
    try:
        installed = (
            peer.install(options.workdir)
            if options.install
            else (options.workdir / {"mock-ai-api": "mockai"}.get(peer.name, peer.name))
        )
        started = peer.start(installed, logs, options)
        result.startup_seconds = round(started.startup_seconds, 2)
        argv = [
            *imgconf_command(),
            "run",
            "--base-url",
            started.base_url,
            "--report-dir",
            str(report_dir),
            "--profile",
            options.profile,
            "--timeout",
            str(options.timeout),
            "--record",
            str(report_dir / "exchanges.har"),
            "--api-key",
            PEER_KEY,
            *started.imgconf_args,
            *options.imgconf_args,
        ]
        begin = time.monotonic()
        completed = subprocess.run(
            argv, capture_output=True, text=True, timeout=options.run_timeout
        )
        result.run_seconds = round(time.monotonic() - begin, 2)
        (logs / "imgconf.stdout").write_text(completed.stdout)
        (logs / "imgconf.stderr").write_text(completed.stderr)
        result.exit_code = completed.returncode
        report_file = report_dir / "report.json"
        if report_file.exists():
            report = json.loads(report_file.read_text())
            result.must_failures, result.should_warnings, result.cases = summarise_report(report)
            result.verdict = "pass" if completed.returncode == 0 else "fail"
        else:
            result.error = (completed.stderr.strip().splitlines() or ["no report written"])[-1]
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        result.error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    finally:
        if started:
            for process in reversed(started.processes):
                process.stop()
    return result


def print_summary(runs: Sequence[PeerRun]) -> None:
    for run in runs:
        head = (
            f"{run.peer} {run.version}: {run.verdict.upper()} (exit {run.exit_code}), "
            f"{run.cases} cases in {run.run_seconds:.1f} s "
            f"(start-up {run.startup_seconds:.1f} s)"
        )
        print(head)
        if run.error:
            print(f"  error: {run.error}")
        for title, rules in (
            ("MUST broken", run.must_failures),
            ("SHOULD warned", run.should_warnings),
        ):
            if rules:
                listed = ", ".join(f"{rule} ×{count}" for rule, count in rules.items())
                print(f"  {title} ({len(rules)}): {listed}")
        print(f"  report: {run.report_dir}")


# --- isolation ---------------------------------------------------------------------------


UNSHARE_FORMS = (["unshare", "-n"], ["unshare", "-r", "-n"])


def in_loopback_namespace(argv: Sequence[str]) -> int | None:
    """Re-run this script inside a new network namespace with only loopback up.

    Tries a plain network namespace (root), then one inside a user namespace (unprivileged
    users where the kernel allows it). Returns the child's exit status, or None when neither
    is available here.
    """
    if shutil.which("unshare") is None:
        return None
    for form in UNSHARE_FORMS:
        if subprocess.run([*form, "true"], capture_output=True).returncode != 0:
            continue
        script = 'ip link set lo up 2>/dev/null; exec "$@"'
        child = subprocess.run(
            [
                *form,
                "sh",
                "-c",
                script,
                "sh",
                sys.executable,
                str(Path(__file__).resolve()),
                "--no-install",
                *argv,
            ],
            env={**os.environ, INSIDE_ENV: "1"},
        )
        return child.returncode
    return None


def loopback_works() -> bool:
    """Whether this process can connect to itself on 127.0.0.1 (``lo`` is up)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        try:
            socket.create_connection(server.getsockname(), timeout=2).close()
        except OSError:
            return False
    return True


# --- command line ------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--peer",
        action="append",
        choices=sorted(PEERS),
        help="run only this peer (repeatable); default: all",
    )
    parser.add_argument("--list", action="store_true", help="list the peers and exit")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where the peers' venvs and npm prefix live (default %(default)s)",
    )
    parser.add_argument(
        "--report-root",
        type=Path,
        default=DEFAULT_REPORTS,
        help="reports go to REPORT_ROOT/<peer>/ (default %(default)s)",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        default=DEFAULT_SPEC,
        help="OpenAI's openapi.yaml, for Prism (default %(default)s)",
    )
    parser.add_argument("--profile", default="openai")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="imgconf's per-request timeout in seconds"
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=600.0,
        help="the longest one imgconf run may take, in seconds",
    )
    parser.add_argument("--summary-json", type=Path, help="also write the summary as JSON")
    parser.add_argument(
        "--no-install",
        dest="install",
        action="store_false",
        help="use the installed peers as they are",
    )
    parser.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="do not run in a loopback-only network namespace",
    )
    parser.add_argument("imgconf_args", nargs="*", help="after --: extra `imgconf run` flags")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(argv)
    if options.list:
        for peer in PEERS.values():
            print(f"{peer.name:12} {peer.version:9} {peer.description}")
        return 0
    options.report_root = options.report_root.resolve()
    options.workdir.mkdir(parents=True, exist_ok=True)
    peers = [PEERS[name] for name in options.peer or PEERS]
    if os.environ.get(INSIDE_ENV):
        if not loopback_works():
            print(
                "peers: the loopback interface is down in the namespace ('ip' missing?)",
                file=sys.stderr,
            )
            return 2
    elif options.isolate:
        if options.install:
            for peer in peers:
                peer.install(options.workdir)
        status = in_loopback_namespace(argv)
        if status is not None:
            return status
        print(
            "peers: cannot make a loopback-only network namespace here (unshare -n); "
            "peers answer image URLs on other hosts, which imgconf would fetch. "
            "Run as root, or pass --no-isolate to run anyway.",
            file=sys.stderr,
        )
        return 2
    runs = [run_peer(peer, options) for peer in peers]
    print_summary(runs)
    if options.summary_json:
        options.summary_json.write_text(json.dumps([asdict(r) for r in runs], indent=2))
    # 0: every peer ran and wrote a report (verdicts are findings, not errors of this script).
    return 0 if all(not r.error for r in runs) else 2


if __name__ == "__main__":
    sys.exit(main())
