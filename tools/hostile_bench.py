"""Run ``imgconf run`` once against each hostile target and tabulate wall time and peak memory.

Each target of ``tests/_hostile.py`` (``TARGETS``) is served on loopback, with a recording
image server on another loopback port, and one ``imgconf run --timeout 10`` of the package in
``--source`` (default: this tree) is sent to it at the default concurrency under
``/usr/bin/time -v`` (its peak resident set, the largest of imgconf's process tree; without
GNU time, ``getrusage`` of the children). A run still going after ``--kill-after`` seconds is
killed and marked so. For comparing revisions::

    git worktree add /tmp/old <commit>
    python tools/hostile_bench.py --source /tmp/old
    python tools/hostile_bench.py

Runs against the targets in ``RECORDED`` also ``--record`` (the HAR is searched too); runs
against the targets that bill then fail also ``--max-images 5``.

Columns: the target; the exit status (``killed`` past the limit); wall seconds; peak RSS in
MB; whether report.json was written; where the key was found (``no``): any file the run wrote,
its stdout or stderr (verbatim, escaped, or base64 at any alignment), or ``other-origin`` (the
other port received the key, a cookie or an Authorization header); and for the capped targets,
the images the server says it generated.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "tests"))

from _hostile import RECORDED, TARGETS, key_disguises, start_target  # noqa: E402

#: Runs against servers that bill images they never deliver are capped, to show the cap holds.
IMAGE_CAP = 5
CAPPED = {"generate-then-502", "generate-then-reset"}

#: A key of no vendor's shape, so only a redaction that knows the key itself can catch it.
KEY = "Qv7_bench-Kb2mW9xZ4pLr8TnY3cJd6FgH"


@dataclass
class Row:
    case: str
    status: str
    wall: float
    rss_mb: float | None
    report: bool
    key_found: str
    generated: int | None


def key_found(directory: Path, output: bytes, other_seen: list[bytes]) -> str:
    """Where the key was found: file names, ``stdout/stderr``, ``other-origin``; or ``no``."""
    places = []
    blobs = [(p.name, p.read_bytes()) for p in directory.rglob("*") if p.is_file()]
    blobs.append(("stdout/stderr", output))
    for name, data in blobs:
        if key_disguises(data, KEY):
            places.append(name)
    for request in other_seen:
        head = request.split(b"\r\n\r\n")[0].lower()
        if KEY.encode() in request or b"\r\ncookie:" in head or b"\r\nauthorization:" in head:
            places.append("other-origin")
            break
    return ", ".join(sorted(set(places))) or "no"


def _time_v(path: Path) -> tuple[float | None, float | None]:
    """(peak RSS in MB, wall seconds) from ``/usr/bin/time -v`` output, where present."""
    if not path.is_file():
        return None, None
    text = path.read_text(errors="replace")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", text)
    seconds = None
    if wall:
        hours, minutes, secs = wall.groups()
        seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
    return (int(rss.group(1)) / 1024 if rss else None), seconds


def run_case(name: str, source: Path, kill_after: float, time_v: str | None) -> Row:
    with tempfile.TemporaryDirectory(prefix="hostile-bench-") as tmp, start_target(name, KEY) as t:
        workdir = Path(tmp) / "run"  # all imgconf writes; the timing (holding argv) is outside
        workdir.mkdir()
        reports = workdir / "reports"
        timing = Path(tmp) / "time.txt"
        argv = [sys.executable, "-c", "from conformance.cli import run; run()", "run"]
        argv += ["--base-url", t.base_url, "--api-key", KEY, "--timeout", "10"]
        argv += ["--models", t.models, "--report-dir", str(reports)]
        if name in RECORDED:
            argv += ["--record", str(workdir / "run.har")]
        if name in CAPPED:
            argv += ["--max-images", str(IMAGE_CAP)]
        if time_v:
            argv = [time_v, "-v", "-o", str(timing), *argv]
        env = {**os.environ, "PYTHONPATH": str(source)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.monotonic()
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=kill_after)
            status = str(process.returncode)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            status = "killed"
        wall = time.monotonic() - started
        rss, timed_wall = _time_v(timing)
        if rss is None:  # the largest child so far: an upper bound for this one
            after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            rss = max(before, after) / 1024 if status != "killed" else None
        if "Traceback" in output.decode("utf-8", "replace"):
            status += " (traceback)"
        generated = t.generated[0] if name in CAPPED else None
        return Row(
            case=name,
            status=status,
            wall=timed_wall if timed_wall is not None and status != "killed" else wall,
            rss_mb=rss,
            report=(reports / "report.json").is_file(),
            key_found=key_found(workdir, output, t.other_seen),
            generated=generated,
        )


def table(rows: list[Row]) -> str:
    lines = [
        "| case | exit | wall s | peak RSS MB | report.json | key found"
        f" | images billed (--max-images {IMAGE_CAP}) |",
        "|---|---|---:|---:|---|---|---:|",
    ]
    for r in rows:
        rss = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "?"
        billed = "" if r.generated is None else str(r.generated)
        lines.append(
            f"| {r.case} | {r.status} | {r.wall:.1f} | {rss} | {'yes' if r.report else 'no'}"
            f" | {r.key_found} | {billed} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=HERE, help="the tree whose imgconf runs")
    parser.add_argument("--kill-after", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--only", default="", help="comma-separated target names")
    parser.add_argument("--json", type=Path, help="also write the rows here as JSON")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(TARGETS)
    unknown = set(names) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}; known: {', '.join(TARGETS)}")
    time_v = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    source = args.source.resolve()
    probe = subprocess.run(
        [sys.executable, "-c", "import conformance; print(conformance.__file__)"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(source)},
        cwd=tempfile.gettempdir(),  # as the runs: not this tree's directory first on sys.path
        check=True,
    ).stdout.strip()
    print(f"imgconf from {probe}; peak RSS by {time_v or 'getrusage'}", file=sys.stderr)
    rows = []
    for name in names:
        rows.append(run_case(name, source, args.kill_after, time_v))
        r = rows[-1]
        print(f"{name}: exit {r.status} in {r.wall:.1f} s", file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2))


if __name__ == "__main__":
    main()
