"""Comparing two report.json documents: what broke since the baseline, what got fixed.

The unit of comparison is the rule x model of the reports' matrix, not the case: case ids
depend on the plan and its seed, while "``image.size`` holds on ``dall-e-3``" means the same in
every release. A cell of another endpoint than generations is its own (``image.size`` on
``edits/gpt-image-1`` is not ``image.size`` on ``gpt-image-1``). A rule x model failing now and not before is a new failure; failing before and
holding now is fixed; a warning that appears or goes is a changed warning; one that failed
before and was not exercised now (a smaller budget, fewer models) is said so, never counted
as fixed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.results import Level
from ..errors import SetupError

__all__ = [
    "Change",
    "RegressionDiff",
    "combine_exit_codes",
    "compare",
    "format_diff",
    "load_comparable",
    "load_report",
]

_JUDGED = ("pass", "warn", "fail")


@dataclass(frozen=True)
class Change:
    """One rule x model whose status differs between the two reports."""

    rule: str
    model: str
    level: str
    #: Status in the baseline (None: not in it at all).
    old: str | None
    #: Status now (None: not in the new report at all).
    new: str | None
    #: A message of the new (or, for a fix, the old) report, and the cases behind it.
    message: str = ""
    cases: tuple[str, ...] = ()
    #: The endpoint of the cell (None: generations).
    endpoint: str | None = None

    @property
    def key(self) -> str:
        where = f"{self.endpoint}/{self.model}" if self.endpoint else self.model
        return f"{self.rule} @ {where}"


@dataclass
class RegressionDiff:
    """New failures, fixed ones, changed warnings, and failures the new run did not re-check."""

    new_failures: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    changed_warnings: list[Change] = field(default_factory=list)
    not_rechecked: list[Change] = field(default_factory=list)
    compared: int = 0
    #: Why the new report's verdict is INCOMPLETE (empty when it is not).
    incomplete: list[str] = field(default_factory=list)

    @property
    def has_new_must_failure(self) -> bool:
        return any(c.level == Level.MUST for c in self.new_failures)

    @property
    def has_new_warning(self) -> bool:
        return any(c.new == "warn" for c in self.changed_warnings)

    def exit_code(self, fail_on: str = "must") -> int:
        """1 on a new MUST failure (or, with ``fail_on="should"``, a new warning); else 3 when
        the new run is INCOMPLETE (it could not observe what a PASS needs); else 0."""
        if self.has_new_must_failure or (fail_on == "should" and self.has_new_warning):
            return 1
        return 3 if self.incomplete else 0


def combine_exit_codes(*codes: int) -> int:
    """One exit status for several verdicts: a FAIL (1) wins, then INCOMPLETE (3), then 0."""
    for code in (1, 3):
        if code in codes:
            return code
    return max(codes, default=0)


#: A cell: its rule, model and endpoint (None: generations, as in reports made before edits).
Key = tuple[str, str, str | None]


def _matrix(report: Any, name: str) -> dict[Key, dict[str, Any]]:
    """The report's matrix by rule x model (x endpoint); a SetupError naming ``name`` when it
    is not an imgconf report.json, so that a wrong file is one clear line, not a traceback."""
    if not isinstance(report, dict) or not isinstance(report.get("matrix"), list):
        raise SetupError(f"{name}: not an imgconf report.json (no matrix)")
    out = {}
    for item in report["matrix"]:
        if not _is_cell(item):
            raise SetupError(f"{name}: not an imgconf report.json (a malformed matrix entry)")
        endpoint = item.get("endpoint")
        if endpoint in (None, "generations"):
            endpoint = None
        out[(str(item["rule"]), str(item["model"]), endpoint and str(endpoint))] = item
    return out


def _is_cell(item: Any) -> bool:
    """Whether a matrix entry has what a comparison reads: a rule, a model, a status word."""
    return (
        isinstance(item, dict)
        and "rule" in item
        and "model" in item
        and isinstance(item.get("status"), str)
        and isinstance(item.get("messages", []), list)
        and isinstance(item.get("failed_cases", []), list)
        and isinstance(item.get("warned_cases", []), list)
    )


def _change(key: Key, old: dict[str, Any] | None, new: dict[str, Any] | None) -> Change:
    source = new if new is not None and new.get("messages") else old or new or {}
    cases = (new or {}).get("failed_cases") or (new or {}).get("warned_cases") or []
    return Change(
        rule=key[0],
        model=key[1],
        level=str((new or old or {}).get("level", Level.MUST)),
        old=old["status"] if old else None,
        new=new["status"] if new else None,
        message=str((source.get("messages") or [""])[0]),
        cases=tuple(cases),
        endpoint=key[2],
    )


def compare(
    old: dict[str, Any], new: dict[str, Any], names: tuple[str, str] = ("baseline", "new report")
) -> RegressionDiff:
    """The difference between a baseline report.json and a new one (``names``: what each is
    called in an error)."""
    before, after = _matrix(old, names[0]), _matrix(new, names[1])
    diff = RegressionDiff()
    for key in [*after, *(k for k in before if k not in after)]:
        was, now = before.get(key), after.get(key)
        old_status = was["status"] if was else None
        new_status = now["status"] if now else None
        if old_status in _JUDGED and new_status in _JUDGED:
            diff.compared += 1
        if new_status == "fail" and old_status != "fail":
            diff.new_failures.append(_change(key, was, now))
        elif old_status == "fail" and new_status in ("pass", "warn"):
            diff.fixed.append(_change(key, was, now))
        elif old_status in ("fail", "warn") and new_status not in _JUDGED:
            diff.not_rechecked.append(_change(key, was, now))
        elif (new_status == "warn") != (old_status == "warn") and new_status in _JUDGED:
            diff.changed_warnings.append(_change(key, was, now))
    verdict = new.get("verdict") if isinstance(new.get("verdict"), dict) else {}
    if verdict.get("status") == "incomplete":
        diff.incomplete = list(verdict.get("incomplete_reasons") or [verdict.get("headline", "")])
    return diff


def format_diff(diff: RegressionDiff) -> str:
    """The diff as lines a person reads in a CI log."""
    if not (diff.new_failures or diff.fixed or diff.changed_warnings or diff.not_rechecked):
        return "\n".join(
            [
                f"imgconf diff: no change against the baseline "
                f"({diff.compared} rule x model judged in both)",
                *(f"  INCOMPLETE     {reason}" for reason in diff.incomplete),
            ]
        )
    lines = [
        f"imgconf diff: {len(diff.new_failures)} new failures, {len(diff.fixed)} fixed, "
        f"{len(diff.changed_warnings)} changed warnings, {len(diff.not_rechecked)} not re-checked "
        f"({diff.compared} rule x model judged in both)"
    ]

    def line(label: str, change: Change) -> str:
        was = change.old or "absent"
        text = (
            f"  {label:14} {change.level:6} {change.key} (was {was}, now {change.new or 'absent'})"
        )
        if change.message:
            text += f": {change.message[:160]}"
        return text

    lines += [line("NEW FAILURE", c) for c in diff.new_failures]
    lines += [line("FIXED", c) for c in diff.fixed]
    lines += [
        line("NEW WARNING" if c.new == "warn" else "WARNING GONE", c) for c in diff.changed_warnings
    ]
    lines += [line("NOT RECHECKED", c) for c in diff.not_rechecked]
    lines += [f"  INCOMPLETE     {reason}" for reason in diff.incomplete]
    return "\n".join(lines)


def load_report(path: Path, name: str) -> dict[str, Any]:
    """A report.json read for a command (``name`` is the argument that named it)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SetupError(f"{name}: no such file {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SetupError(f"{name}: cannot read {path} as JSON ({exc.__class__.__name__})") from None


def load_comparable(path: Path, name: str) -> dict[str, Any]:
    """A report.json that :func:`compare` can read, checked when it is loaded: ``imgconf run
    --baseline`` reads it before the first request, so a wrong file costs no run."""
    report = load_report(path, name)
    _matrix(report, name)
    return report
