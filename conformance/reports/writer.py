"""Write a run's four reports: report.json, junit.xml, report.md and report.html.

report.json is built first and every other format is rendered from it (the HTML also takes the
thumbnails the run kept), so their counts cannot disagree. That one document is also where
server text is made fit to write, once for every format
(:func:`~conformance.redact.printable_document`): every string in it is redacted of the run's
secrets and made encodable and printable (a lone surrogate in an error message is replaced,
control characters are shown escaped). A format that still fails to render or write does not
stop the others: they are written, and the failure is said on stderr. Each file is written to a temporary
file in the same directory and moved into place with :func:`os.replace`: a reader (a CI step,
a browser reloading the page) never sees half a report, even when the run is interrupted.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..engine.results import Level, Outcome, RunResult
from ..redact import printable, printable_document
from .document import ReplayInfo, build_report
from .html import Thumbnail, render_html
from .junit import render_junit
from .markdown import render_markdown

__all__ = [
    "FILE_MODE",
    "REPORT_FILES",
    "failure_lines",
    "outcome_counts",
    "thumbnails_of",
    "write_atomic",
    "write_reports",
]

REPORT_FILES = {
    "json": "report.json",
    "junit": "junit.xml",
    "markdown": "report.md",
    "html": "report.html",
}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Reports are shared files: the mode an ordinary ``open()`` would give (mkstemp's is 0600).
FILE_MODE = 0o666 & ~_umask()


def write_atomic(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` (bytes, or its pieces in order) to ``path`` so that the file is either
    the old one or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes | bytearray):
                handle.write(data)
            else:
                handle.writelines(data)
            os.fchmod(handle.fileno(), FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def thumbnails_of(run: RunResult) -> list[Thumbnail]:
    """The thumbnails the run kept, in case order (partial stream images left out)."""
    return [
        (result.case.id, image.index, image.thumbnail)
        for result in run.results
        for image in result.images
        if image.thumbnail and image.source != "partial"
    ]


def report_document(run: RunResult, *, replay: ReplayInfo | None = None) -> dict[str, Any]:
    """report.json's document, every string in it redacted and safe for every format."""
    return printable_document(build_report(run, replay=replay))


def json_pieces(value: Any, depth: int = 2) -> Iterator[bytes]:
    """``value`` as ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` writes it,
    byte for byte, in pieces: the containers of its first ``depth`` levels opened here, each
    value below encoded whole (by the C encoder: an indent, or ``json.dump``, would use the
    pure-Python one). report.json for 6,642 cases is 8 MB of text, 16-32 MB as one string, and
    held with its bytes that was the run's peak of memory; one case's text is a few kilobytes."""
    if depth and isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        opener = b"{"
        for key, item in value.items():
            yield opener + _compact(key).encode() + b":"
            yield from json_pieces(item, depth - 1)
            opener = b","
        yield b"}"
    elif depth and isinstance(value, list) and value:
        opener = b"["
        for item in value:
            yield opener
            yield from json_pieces(item, depth - 1)
            opener = b","
        yield b"]"
    else:
        yield _compact(value).encode()


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _renderers(
    run: RunResult, report: dict[str, Any]
) -> dict[str, Callable[[], bytes | Iterable[bytes]]]:
    return {
        "json": lambda: json_pieces(report),
        "junit": lambda: render_junit(report),
        "markdown": lambda: render_markdown(report).encode(),
        "html": lambda: render_html(report, thumbnails_of(run)).encode(),
    }


def write_reports(
    run: RunResult, directory: Path, *, replay: ReplayInfo | None = None
) -> dict[str, Path]:
    """Write the four reports into ``directory`` (created if needed); their paths by format.

    A format that fails is left out of the answer and said on stderr; the others are written.
    """
    directory = Path(directory)
    report = report_document(run, replay=replay)
    written: dict[str, Path] = {}
    for name, render in _renderers(run, report).items():
        path = directory / REPORT_FILES[name]
        try:
            write_atomic(path, render())
        except Exception as exc:  # one format's failure must not cost the others
            reason = printable(f"{exc.__class__.__name__}: {exc}")[:300]
            print(f"imgconf: error: {path} not written ({reason})", file=sys.stderr, flush=True)
            continue
        written[name] = path
    return written


def outcome_counts(run: RunResult) -> str:
    """``"3 pass, 1 fail, ..."``: every outcome, in a fixed order, for a run's console line."""
    counts = Counter(r.outcome.value for r in run.results)
    return ", ".join(f"{counts.get(o.value, 0)} {o.value}" for o in Outcome)


def failure_lines(run: RunResult, limit: int = 20) -> list[str]:
    """Every broken MUST rule with its models, then why the run is INCOMPLETE if it is: the
    reports hold the details, the console names what a reader acts on first."""
    verdict = run.verdict()
    by_rule: dict[str, list[str]] = {}
    for label in verdict.failed:
        rule, _, model = label.partition(" @ ")
        by_rule.setdefault(rule, []).append(model)
    cases = Counter(f.rule for r in run.must_failures for f in r.findings if f.level == Level.MUST)
    lines = [
        f"  FAIL {rule} on {', '.join(models)} ({cases.get(rule, 0)} case"
        f"{'' if cases.get(rule, 0) == 1 else 's'})"
        for rule, models in list(by_rule.items())[:limit]
    ]
    if len(by_rule) > limit:
        lines.append(f"  ... and {len(by_rule) - limit} more broken MUST rules (see the reports)")
    lines += [f"  INCOMPLETE {reason}" for reason in verdict.incomplete_reasons]
    budget = [label for label in verdict.not_observed if "budget" in label]
    if verdict.status == "pass" and budget:
        shown = ", ".join(budget[:limit])
        more = len(budget) - limit
        lines.append(
            f"  left unobserved by the budget: {shown}" + (f" and {more} more" if more > 0 else "")
        )
    return lines
