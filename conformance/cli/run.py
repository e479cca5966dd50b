"""``imgconf run``: send the plan to a target, judge every answer, write the reports.

This module puts a run together: the settings checked (:mod:`conformance.engine.run_settings`),
the embedded reference server when no target is given, the plan (or the cases of an earlier
report, ``--from``), a recording (``--record``), then the engine's
:func:`~conformance.engine.runner.execute`, the reports, and the comparison with a baseline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RECORD_CAP_MIB,
    VERDICT_WORDS,
    Floats,
    Ints,
    api_key_option,
    call,
    echo,
    endpoints_option,
    explore_option,
    fail_on_option,
    max_cost_option,
    max_images_option,
    models_option,
    profile_option,
    reach_options,
    report_dir_option,
    seed_option,
    timeout_option,
)

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from ..contract.profiles import Profile
    from ..engine.results import CaseResult, PlanFacts, RunResult
    from ..engine.run_settings import RunSettings
    from ..generation.planning import Plan

__all__ = ["apply_from_report", "run", "run_command"]


@dataclass
class Progress:
    """Progress on a terminal (a rich bar) or plain lines (CI logs), on stderr."""

    total: int
    tty: bool = field(default_factory=lambda: sys.stderr.isatty())
    counts: Counter[str] = field(default_factory=Counter)
    _bar: RichProgress | None = None
    _task: TaskID | None = None
    _next_line: int = 0

    def __enter__(self) -> Progress:
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]imgconf run"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def grow(self, cases: Sequence[object]) -> None:
        """More cases to come (drawn while the others are sent)."""
        self.total += len(cases)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=self.total)

    def advance(self, result: CaseResult) -> None:
        self.counts[result.outcome.value] += 1
        done = sum(self.counts.values())
        summary = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, description=summary)
        elif done >= self._next_line or done == self.total:
            print(f"imgconf: {done}/{self.total} cases ({summary})", file=sys.stderr, flush=True)
            self._next_line = done + max(1, self.total // 10)


def run(**options: Any) -> int:
    """The ``imgconf run`` job: returns the exit status; raises SetupError for bad input."""
    from ..contract.profiles import load_profile
    from ..engine.run_settings import RunSettings, check_settings, reach_config
    from ..redact import register_secrets
    from ..reports.diff import load_comparable

    asked = options.pop("endpoints", None)
    settings = RunSettings(**options)
    # Before anything can be said about the run, a bad flag included.
    register_secrets(settings.api_key, os.environ.get("OPENAI_API_KEY"))
    if settings.from_report is not None:
        settings = apply_from_report(settings)
        asked = asked or _report_endpoints(_earlier_report(settings))
    profile = load_profile(settings.profile)
    check_settings(settings, profile)
    endpoints = profile.choose_endpoints(asked)
    reach_config(settings, profile)  # a bad header, CA file or proxy: exit 2 before anything
    # Read now: a file that is not a report must not cost a whole run before it is found out.
    baseline = load_comparable(settings.baseline, "--baseline") if settings.baseline else None
    if settings.base_url is None:
        from ..server.launcher import start_reference_server

        with start_reference_server(api_key=settings.api_key, profile=settings.profile) as server:
            return _run(
                settings,
                profile,
                server.base_url,
                server.api_key,
                endpoints,
                embedded=True,
                baseline=baseline,
            )
    key = settings.api_key or os.environ.get("OPENAI_API_KEY") or None
    return _run(
        settings, profile, settings.base_url, key, endpoints, embedded=False, baseline=baseline
    )


def _build_plan(
    settings: RunSettings,
    profile: Profile,
    endpoints: Sequence[str],
    max_cost: float | None,
    max_images: int | None,
    *,
    explore_later: bool = False,
) -> Plan:
    from ..generation.planning import build_plan

    return build_plan(
        profile,
        endpoints=tuple(endpoints),
        models=list(settings.models) if settings.models else None,
        seed=settings.seed,
        max_cost=max_cost,
        max_images=max_images,
        explore=settings.explore,
        explore_later=explore_later,
    )


def _plan_facts(plan: Plan) -> PlanFacts:
    from ..engine.results import PlanFacts

    coverage = dict(plan.coverage or {})
    return PlanFacts(
        cases=len(plan.cases),
        by_origin=dict(Counter(c.origin for c in plan.cases)),
        images=plan.images,
        cost=plan.cost,
        cost_unknown_images=plan.cost_unknown_images,
        pairwise={model: facts.get("pairs") for model, facts in coverage.get("models", {}).items()},
        coverage=coverage,
        cut=[c.id for c in plan.cut],
    )


# --- --from: send again cases of an earlier report --------------------------------------------

#: ``--only`` words and the case outcomes of the earlier report they choose.
_ONLY = {"failed": ("fail",), "warned": ("warn",), "unobserved": ("not_observed",)}


def _earlier_report(settings: RunSettings) -> dict[str, Any]:
    """The ``--from`` report, read and checked (a set-up error otherwise)."""
    from ..errors import SetupError
    from ..reports.diff import load_report

    path = settings.from_report
    assert path is not None
    report = load_report(path, "--from")
    if not isinstance(report, dict) or not isinstance(report.get("cases"), list):
        raise SetupError(f"--from: {path} is not an imgconf report.json")
    odd = _odd_field(report)
    if odd is not None:
        raise SetupError(f"--from: {path} is not an imgconf report.json ({odd})")
    return report


def _odd_field(report: dict[str, Any]) -> str | None:
    """The first field ``--from`` reads whose value is not of the kind a report.json holds."""
    plan = report.get("plan")
    by_origin = plan.get("by_origin") if isinstance(plan, dict) else None
    explore = by_origin.get("explore") if isinstance(by_origin, dict) else None
    kinds: list[tuple[str, Any, tuple[type, ...]]] = [
        ("seed", report.get("seed"), (int, type(None))),
        ("profile", report.get("profile"), (str, type(None))),
        ("models", report.get("models"), (list, type(None))),
        ("plan", plan, (dict, type(None))),
        ("plan.by_origin", by_origin, (dict, type(None))),
        ("plan.by_origin.explore", explore, (int, type(None))),
    ]
    for index, case in enumerate(report["cases"]):
        if not isinstance(case, dict):
            return f"cases[{index}] is not an object"
        for key in ("id", "outcome", "endpoint"):
            kinds.append((f"cases[{index}].{key}", case.get(key), (str, type(None))))
    for field_name, value, kind in kinds:
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{field_name} is {type(value).__name__}"
    return None


def _report_endpoints(report: dict[str, Any]) -> tuple[str, ...]:
    """The endpoints an earlier report's cases were sent to (a case without ``endpoint`` was
    sent to generations)."""
    return tuple(
        dict.fromkeys(
            str(c.get("endpoint") or "generations") for c in report["cases"] if isinstance(c, dict)
        )
    )


def apply_from_report(settings: RunSettings) -> RunSettings:
    """Take the earlier run's profile, models and seed, so the plan rebuilds its exact bodies."""
    from ..errors import SetupError

    report = _earlier_report(settings)
    words = [w.strip() for w in settings.only.split(",") if w.strip()]
    unknown = [w for w in words if w not in _ONLY]
    if unknown or not words:
        raise SetupError(f"--only: expected some of {', '.join(_ONLY)} (got {settings.only!r})")
    explore = (report.get("plan") or {}).get("by_origin", {}).get("explore", 0)
    models = [m for m in report.get("models") or () if isinstance(m, str)]
    return dataclasses.replace(
        settings,
        profile=str(report.get("profile") or settings.profile),
        models=tuple(models) or settings.models,
        seed=int(report.get("seed") or 0),
        explore=explore // max(1, len(models)) if explore else 0,
    )


def _rerun_plan(plan: Plan, settings: RunSettings) -> Plan:
    """The plan cut down to the earlier report's chosen cases, with the controls they lean on."""
    from ..errors import SetupError
    from ..generation.cases import ANY_MODEL, CONTROL_ORIGIN

    report = _earlier_report(settings)
    wanted = {o for w in settings.only.split(",") for o in _ONLY.get(w.strip(), ())}
    chosen = {
        c["id"] for c in report["cases"] if isinstance(c, dict) and c.get("outcome") in wanted
    }
    models = {c.model for c in [*plan.cases, *plan.cut] if c.id in chosen}
    if ANY_MODEL in models and plan.models:
        models.add(plan.models[0])  # model-independent probes lean on any accepted request
    keep = [
        c
        for c in [*plan.cases, *plan.cut]
        if c.id in chosen or (c.origin == CONTROL_ORIGIN and c.model in models)
    ]
    keep.sort(key=lambda c: c.origin != CONTROL_ORIGIN)
    missing = chosen - {c.id for c in keep}
    if missing:
        raise SetupError(
            f"--from: {len(missing)} case(s) of the report are not in today's plan "
            f"(e.g. {sorted(missing)[0]}): it was made by another version"
        )
    plan.cases, plan.cut = keep, []
    plan.models = tuple(m for m in plan.models if m in models)
    return plan


# --- the run -----------------------------------------------------------------------------------


def _run(
    settings: RunSettings,
    profile: Profile,
    base_url: str,
    key: str | None,
    endpoints: Sequence[str],
    *,
    embedded: bool,
    baseline: dict[str, Any] | None = None,
) -> int:
    from .. import __version__
    from ..engine.checks import settle_controls
    from ..engine.preflight import check_target, check_writable
    from ..engine.results import RunResult, TlsFacts
    from ..engine.run_settings import check_budget, check_key, check_prices, transport_config
    from ..engine.runner import Budget, cut_result, execute
    from ..redact import printable, strip_url
    from .plan import plan_warnings

    target = strip_url(base_url)
    if not embedded:
        check_budget(
            settings, base_url, lambda: _build_plan(settings, profile, endpoints, None, None)
        )
    key = check_key(key)
    check_prices(settings, profile)
    check_writable(settings.report_dir, settings.record)
    config = transport_config(settings, profile, base_url, key)
    if settings.insecure:
        warning = f"imgconf: warning: TLS is not verified for {target} (--insecure)"
        print(printable(warning), file=sys.stderr)
    if not embedded:
        asyncio.run(check_target(config))
    # Explore cases are drawn while the rest is sent, and added to the plan once drawn.
    plan = _build_plan(
        settings,
        profile,
        endpoints,
        settings.max_cost,
        settings.max_images,
        explore_later=settings.from_report is None,
    )
    if settings.from_report is not None:
        plan = _rerun_plan(plan, settings)
    recorder = None
    if settings.record is not None:
        from ..reports.har import HarRecorder

        recorder = HarRecorder(
            settings.record, keep_images=True, cap=settings.record_cap * 1024 * 1024
        )
    say: Callable[[str], None] = (lambda _line: None) if settings.quiet else echo
    drawing = plan.explore
    later = (
        f" (+{settings.explore} per model drawn meanwhile, within the budget)" if drawing else ""
    )
    say(
        f"imgconf {__version__}: {len(plan.cases)} cases{later} for "
        f"{', '.join(map(profile.label, plan.models))} "
        f"against {'the embedded reference server' if embedded else target} "
        f"(profile {profile.name}, seed {settings.seed}"
        + ("" if tuple(endpoints) == ("generations",) else f"; {', '.join(endpoints)}")
        + ")"
    )
    for warning in plan_warnings(plan, costs=not embedded):
        say(f"imgconf: {warning}")
    run = RunResult.begin(
        profile,
        target=target,
        models=plan.models,
        seed=settings.seed,
        plan=_plan_facts(plan),
        fail_on=settings.fail_on,
        tls=TlsFacts(verify=not settings.insecure, ca_bundle=settings.ca_bundle),
        endpoints=endpoints,
    )
    budget = Budget(max_images=settings.max_images, max_cost=settings.max_cost)
    try:
        with Progress(total=len(plan.cases), tty=sys.stderr.isatty() and not settings.quiet) as bar:
            results, stop_reason = asyncio.run(
                execute(
                    plan.cases,
                    profile,
                    config,
                    budget=budget,
                    concurrency=settings.concurrency,
                    rate=settings.pace(profile),
                    max_duration=settings.max_duration,
                    recorder=recorder,
                    progress=None if settings.quiet else bar.advance,
                    later=drawing,
                    admitted=bar.grow,
                )
            )
    finally:
        if recorder is not None:
            recorder.close(
                {
                    "tool_version": __version__,
                    "target": target,
                    "profile": profile.name,
                    "models": list(plan.models),
                    "endpoints": list(endpoints),
                    "seed": settings.seed,
                }
            )
    if settings.from_report is None:
        from ..generation.planning import complete_plan

        explored = [r.case for r in results[len(plan.cases) :]]
        plan = complete_plan(plan, explored, drawing.cut if drawing is not None else [])
        run.plan = _plan_facts(plan)
    run.finish(
        settle_controls(results + [cut_result(case) for case in plan.cut]),
        budget=budget.facts(),
        stopped=stop_reason,
    )
    return _finish(run, settings, say, baseline)


def _finish(
    run: RunResult,
    settings: RunSettings,
    say: Callable[[str], None],
    baseline: dict[str, Any] | None = None,
) -> int:
    """Write the reports, say the verdict (and the change against ``baseline``, the report
    ``--baseline`` named, read before the run)."""
    from ..reports.diff import combine_exit_codes, compare, format_diff
    from ..reports.writer import failure_lines, outcome_counts, write_reports

    assert settings.report_dir is not None
    paths = write_reports(run, settings.report_dir)
    say(f"imgconf: {outcome_counts(run)} in {run.finished - run.started:.1f} s")
    if run.stopped:
        say(f"imgconf: stopped early: {run.stopped}")
    for line in failure_lines(run):
        say(line)
    status = run.exit_code
    if baseline is not None:
        written = [p for p in paths.values() if Path(p).suffix == ".json"]
        new = json.loads(Path(written[0]).read_text(encoding="utf-8")) if written else {}
        diff = compare(baseline, new, ("--baseline", "the new report.json"))
        say(format_diff(diff))
        status = combine_exit_codes(status, diff.exit_code(settings.fail_on))
    say(f"imgconf: {VERDICT_WORDS[status]}; reports in {settings.report_dir}/")
    return status


@click.command("run")
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="The target, as the OpenAI SDK takes it (.../v1). Default: the embedded reference server.",
)
@api_key_option
@models_option
@endpoints_option
@profile_option
@report_dir_option
@seed_option
@timeout_option
@click.option(
    "--rate",
    default=None,
    metavar="REQUESTS[,IMAGES]",
    help="Keep to this many requests (and images) per minute, e.g. 50,5 (default: the "
    "profile's rate, else none).",
)
@click.option(
    "--max-duration",
    type=Floats(min=0, min_open=True),
    default=None,
    metavar="S",
    help="Stop sending after S seconds; the run is then INCOMPLETE (exit 3 unless a MUST broke).",
)
@click.option(
    "--concurrency",
    type=Ints(min=1),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Requests in flight at once.",
)
@max_cost_option
@max_images_option
@explore_option
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.har",
    help="Record every exchange as HAR 1.2 (key redacted).",
)
@click.option(
    "--record-cap",
    type=Ints(min=1),
    default=DEFAULT_RECORD_CAP_MIB,
    show_default=True,
    metavar="MIB",
    help="The recording's largest size; bodies past it are left out, each entry saying so.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="OLD.json",
    help="Compare with an earlier report.json; exit 1 on a new MUST failure.",
)
@click.option(
    "--from",
    "from_report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="REPORT.json",
    help="Send again cases of an earlier run (same bodies: its profile, models and seed).",
)
@click.option(
    "--only",
    default="failed,unobserved",
    show_default=True,
    metavar="failed,warned,unobserved",
    help="With --from: which of its cases to send again.",
)
@click.option(
    "--allow-private-urls",
    is_flag=True,
    help="Fetch image URLs on loopback, private, link-local or metadata addresses even when "
    "the target is not on one.",
)
@click.option(
    "--limit",
    "limits",
    multiple=True,
    metavar="NAME=VALUE",
    help="Raise or lower a bound (repeatable): body_cap, error_cap, fetch_cap, inflight_cap "
    "(bytes, or with KiB/MiB/GiB), retries, max_retry_wait, retry_budget (seconds), "
    "retry_budget_count.",
)
@reach_options
@fail_on_option("Fail the run on MUST failures only, or on SHOULD warnings too.")
def run_command(allow_private_urls: bool, limits: tuple[str, ...], **options: Any) -> None:
    """Send the plan to an endpoint, judge every answer, write the reports.

    Exit 0 (PASS) when no MUST rule failed and everything a PASS needs was observed, 1 (FAIL)
    when a MUST rule broke, 3 (INCOMPLETE) when something in scope could not be observed
    (throttled, refused key, no accepted control, interrupted, ...), 2 for a usage or set-up
    error.
    """
    options["extra"] = {"allow_private_urls": True} if allow_private_urls else {}
    options["limits"] = limits
    call(run, **options)
