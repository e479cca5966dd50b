"""``imgconf run``: send a plan to a target, judge every answer, write the reports.

The runner owns the order of things and the limits that keep a run safe against any target:

- **Budget**: each case's images (and cost) are reserved *before* it is sent — invalid cases
  too, since a broken server may wrongly accept them — and workers take cases one at a time, so
  concurrency can never overshoot ``--max-images``/``--max-cost``. Once answered, a reservation
  is settled to what the server may really have generated: a non-2xx answer, or a failure with
  no answer at all, gives it back (a timeout excepted: the server may still be generating); a
  2xx keeps it (as asked: a server that answers more items than asked is a finding of the
  checks, not a cost). A case that does not fit while other
  reservations are still in flight waits for them to settle before it is given up, and cases
  are admitted in plan order, so what a run skips depends on the answers, not on scheduling.
- **Bounded time**: the transport bounds every request; when the target stops answering (as
  many transport failures in a row as there are workers, with no HTTP answer in between) the
  run stops sending instead of timing out case after case, and reports what it saw.
- **Signals**: Ctrl-C or SIGTERM stops sending; the report is still written, marked incomplete.
- **Memory**: an answer is judged, handed to the recorder, then trimmed to an excerpt; a
  thumbnail is made only for an image the report's gallery shows (every broken one up to
  ``MAX_THUMBNAILS``, one matching image per model and format).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .. import __version__
from ..contract.profiles import Profile, Rate, load_profile
from ..errors import SetupError
from ..generation.cases import ANY_MODEL, CONTROL_ORIGIN, Case
from ..redact import printable, register_secrets, strip_url
from .checks import judge, settle_controls
from .image_facts import GalleryPicks
from .preflight import AuthWatch, check_target, check_writable
from .results import CaseResult, Exchange, Outcome, Reason, RunResult
from .transport import (
    Transport,
    TransportConfig,
    excerpt,
    is_http_url,
    is_loopback,
)

__all__ = ["Budget", "BudgetLedger", "Runner", "may_have_generated", "run_cli"]

#: Thumbnails kept per run for the report's gallery.
MAX_THUMBNAILS = 64
#: How often a case waiting for the budget looks again when no settlement of this process
#: wakes it (reservations in flight in other processes settle unseen).
_BUDGET_POLL = 0.05
_TRANSPORT_FAILURES = frozenset({"timeout", "connection", "protocol", "too_large"})


#: Answers at least this large (a 2xx carrying images) are judged in a worker thread.
_HEAVY_BODY = 64 * 1024


def _heavy(exchange: Exchange) -> bool:
    """Whether judging the answer may take long enough to hold up the event loop."""
    ok = exchange.status is not None and 200 <= exchange.status < 300
    return ok and (len(exchange.response_body) >= _HEAVY_BODY or bool(exchange.fetches))


class Recorder(Protocol):
    def add(self, case: Case, exchange: Exchange) -> None: ...

    def close(self, meta: dict[str, Any]) -> None: ...


class BudgetLedger(Protocol):
    """What the runner needs of a budget (one process: :class:`Budget`; a pytest session under
    xdist: the plugin's file-locked ledger)."""

    def reserve(self, case: Case) -> bool: ...

    def settle(self, case: Case, *, generated: bool) -> None: ...

    def pending(self) -> int: ...

    def as_dict(self) -> dict[str, Any]: ...


def may_have_generated(exchange: Exchange) -> bool:
    """Whether the target may have generated the images of the request behind ``exchange``.

    Only a 4xx refused the request, and only a connection that could not be made surely sent
    nothing: those give their reservation back. Everything else keeps it: a 2xx generated; a
    5xx, a time-out, a dropped connection or an answer that is not HTTP may have come after
    generating, and a real vendor bills that.
    """
    if exchange.status is not None:
        return not 400 <= exchange.status < 500
    return exchange.sent


@dataclass
class Budget:
    """Images and dollars a run may spend, reserved case by case before sending."""

    max_images: int | None = None
    max_cost: float | None = None
    images: int = 0
    cost: float = 0.0
    cost_unknown_images: int = 0
    #: Reservations taken and not yet settled.
    in_flight: int = 0

    def fits(self, case: Case) -> bool:
        """Whether the case's images and cost fit what is left.

        Under a cost cap alone, images of unknown price cannot be bounded: they never fit
        (``imgconf run`` refuses such a plan at start; this holds whatever the plan holds).
        """
        if self.max_images is not None and self.images + case.images > self.max_images:
            return False
        if self.max_cost is None:
            return True
        if case.cost is None:
            return not case.images or self.max_images is not None
        return self.cost + case.cost <= self.max_cost + 1e-9

    def reserve(self, case: Case) -> bool:
        """Reserve what the case costs if the server accepts it; False when it does not fit."""
        if not self.fits(case):
            return False
        self.images += case.images
        if case.cost is None:
            self.cost_unknown_images += case.images
        else:
            self.cost += case.cost
        self.in_flight += 1
        return True

    def settle(self, case: Case, *, generated: bool) -> None:
        """End a reservation: kept when the server may have generated, refunded otherwise."""
        self.in_flight = max(0, self.in_flight - 1)
        if generated:
            return
        self.images = max(0, self.images - case.images)
        if case.cost is None:
            self.cost_unknown_images = max(0, self.cost_unknown_images - case.images)
        else:
            self.cost = max(0.0, round(self.cost - case.cost, 9))

    def pending(self) -> int:
        """Reservations in flight: what may still be refunded."""
        return self.in_flight

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_cost": self.max_cost,
            "max_images": self.max_images,
            "images": self.images,
            "cost": round(self.cost, 6),
            "cost_unknown_images": self.cost_unknown_images,
        }


class Pacer:
    """Keeps a run within a vendor's rate limits: requests and images per minute.

    Each send takes the next free slot in turn (slots are spaced evenly, so a minute's
    allowance is not spent in a burst that a per-second limiter would refuse); images count
    what a conformant server generates for the case.
    """

    def __init__(self, rate: Rate | None) -> None:
        self.rate = rate
        self._next_request = 0.0
        self._next_image = 0.0

    async def wait(self, case: Case) -> None:
        rate = self.rate
        if rate is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._next_request, self._next_image)
        if rate.requests_per_minute:
            self._next_request = start + 60.0 / rate.requests_per_minute
        images = case.images if case.expect != "reject" else 0
        if rate.images_per_minute and images:
            self._next_image = start + images * 60.0 / rate.images_per_minute
        if start > now:
            await asyncio.sleep(start - now)


def cut_note(case: Case) -> str:
    """Why a case the plan cut was not sent, naming its group (reports count cases by note)."""
    return f"cut by the budget: {case.origin} (not covered)"


def not_observed(case: Case, reason: Reason, note: str) -> CaseResult:
    """The result of a case that got no answer to judge."""
    return CaseResult(case=case, outcome=Outcome.NOT_OBSERVED, reason=reason, note=note)


def cut_result(case: Case) -> CaseResult:
    """The result of a case the plan cut to fit the budget."""
    return not_observed(case, Reason.BUDGET, cut_note(case))


def internal_error(case: Case, exc: BaseException, exchange: Exchange | None) -> CaseResult:
    """A case imgconf failed to judge: recorded as such, so the other cases are still judged and
    the verdict cannot be PASS on what was not judged."""
    result = not_observed(
        case,
        Reason.INTERNAL_ERROR,
        f"imgconf failed while judging this answer: {type(exc).__name__}: {str(exc)[:200]}",
    )
    result.exchange = exchange
    if exchange is not None:
        result.status, result.elapsed = exchange.status, exchange.elapsed
    return result


def trim(exchange: Exchange) -> None:
    """Keep what a report shows of an exchange; drop image bytes and long bodies."""
    exchange.response_body = excerpt(exchange.response_body)
    for fetch in exchange.fetches:
        fetch.response_body = b""


@dataclass
class Progress:
    """Progress on a terminal (a rich bar) or plain lines (CI logs), on stderr."""

    total: int
    tty: bool = field(default_factory=lambda: sys.stderr.isatty())
    counts: Counter[str] = field(default_factory=Counter)
    _bar: Any = None
    _task: Any = None
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

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, result: CaseResult) -> None:
        self.counts[result.outcome.value] += 1
        done = sum(self.counts.values())
        summary = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        if self._bar is not None:
            self._bar.update(self._task, completed=done, description=summary)
        elif done >= self._next_line or done == self.total:
            print(f"imgconf: {done}/{self.total} cases ({summary})", file=sys.stderr, flush=True)
            self._next_line = done + max(1, self.total // 10)


class Runner:
    """Sends cases with bounded concurrency and budget, and judges each answer."""

    #: Stops the run when its first valid requests are all refused (a wrong key).
    auth_watch: AuthWatch | None = None

    def __init__(
        self,
        transport: Transport,
        profile: Profile,
        *,
        concurrency: int = 8,
        budget: BudgetLedger | None = None,
        recorder: Recorder | None = None,
        progress: Callable[[CaseResult], None] | None = None,
        max_thumbnails: int = MAX_THUMBNAILS,
        failure_streak: int | None = None,
        rate: Rate | None = None,
    ) -> None:
        self.transport = transport
        self.profile = profile
        self.concurrency = max(1, concurrency)
        self.budget = budget or Budget()
        self.recorder = recorder
        self.progress = progress
        #: Which images get a thumbnail (the ones the gallery shows); None: none at all.
        self.gallery = GalleryPicks(max_thumbnails) if max_thumbnails > 0 else None
        self.pacer = Pacer(rate)
        self.failure_streak = failure_streak or max(2, self.concurrency)
        self.stop_reason: str | None = None
        self.stop_kind: Reason | None = None
        self._streak = 0
        #: Reservations each case in flight holds (one more for each try sent again).
        self._reservations: dict[str, int] = {}
        transport.resend_gate = self._reserve_again
        self._stop = asyncio.Event()
        #: Cases are admitted to the budget one at a time, in plan order.
        self._admission = asyncio.Lock()
        self._settled = asyncio.Event()

    def stop(self, reason: str, kind: Reason = Reason.INTERRUPTED) -> None:
        """Stop sending: cases not yet answered are reported as not observed, for ``kind``."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_kind = kind
        self._stop.set()

    async def run(self, cases: list[Case]) -> list[CaseResult]:
        results: list[CaseResult | None] = [None] * len(cases)
        queue = deque(enumerate(cases))
        workers = [
            asyncio.create_task(self._worker(queue, results)) for _ in range(self.concurrency)
        ]
        stopper = asyncio.create_task(self._stop.wait())
        finished = asyncio.gather(*workers)
        try:
            await asyncio.wait([stopper, finished], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Stopping cancels the requests in flight: their cases are reported as not judged.
            for task in (*workers, stopper, finished):
                task.cancel()
            await asyncio.gather(*workers, stopper, finished, return_exceptions=True)
        note = f"not judged: {self.stop_reason}" if self.stop_reason else "not judged"
        reason = self.stop_kind or Reason.INTERRUPTED
        return [
            result or not_observed(case, reason, note)
            for case, result in zip(cases, results, strict=True)
        ]

    async def _worker(
        self, queue: deque[tuple[int, Case]], results: list[CaseResult | None]
    ) -> None:
        while True:
            async with self._admission:
                if not queue or self._stop.is_set():
                    return
                index, case = queue.popleft()
                admitted = await self._reserve(case)
            if not admitted:
                results[index] = not_observed(
                    case,
                    Reason.BUDGET,
                    "not sent: its worst case does not fit the remaining budget",
                )
                self._report(results[index])
                continue
            exchange = None
            self._reservations[case.id] = 1
            try:
                await self.pacer.wait(case)
                exchange = await self.transport.send_case(case)
            except Exception as exc:  # a bug of imgconf's, not the target's: judge the rest
                results[index] = internal_error(case, exc, None)
            finally:
                # Stopped mid-request, the request may have reached the server: keep it. Each
                # earlier try that was sent again keeps its own reservation.
                generated = exchange is None or may_have_generated(exchange)
                for _ in range(self._reservations.pop(case.id, 1) - 1):
                    self.budget.settle(case, generated=True)
                self.budget.settle(case, generated=generated)
                self._settled.set()
            if exchange is not None:
                try:
                    results[index] = await self._judge(case, exchange)
                except Exception as exc:  # recording or bookkeeping: never lose the rest
                    results[index] = internal_error(case, exc, exchange)
            self._report(results[index])

    async def _reserve_again(self, case: Case) -> bool:
        """A try that may have generated is sent again only if its images fit once more."""
        if self._stop.is_set() or not self.budget.reserve(case):
            return False
        self._reservations[case.id] = self._reservations.get(case.id, 1) + 1
        return True

    async def _reserve(self, case: Case) -> bool:
        """Reserve the case's budget, waiting while reservations in flight may be refunded.

        Only when nothing is in flight any more (so nothing can come back) and the case still
        does not fit is it given up.
        """
        while not self.budget.reserve(case):
            if not self.budget.pending():
                return False
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_BUDGET_POLL):
                    await self._settled.wait()
        return True

    async def _judge(self, case: Case, exchange: Exchange) -> CaseResult:
        wanted = self.gallery if case.expect != "reject" and self.gallery is not None else False
        try:
            if _heavy(exchange):
                # Images are checked whole (and decoded where a rule needs pixels): off the
                # event loop, so sending goes on meanwhile (Pillow releases the GIL).
                result = await asyncio.to_thread(
                    judge, case, exchange, self.profile, thumbnails=wanted
                )
            else:
                result = judge(case, exchange, self.profile, thumbnails=wanted)
        except Exception as exc:  # a bug of imgconf's, not the target's: judge the rest
            result = internal_error(case, exc, exchange)
        if self.recorder is not None:
            self.recorder.add(case, exchange)
        trim(exchange)
        if self.auth_watch is not None and (refused := self.auth_watch.observe(case, exchange)):
            self.stop(refused)
        if exchange.error in _TRANSPORT_FAILURES:
            self._streak += 1
            if self._streak >= self.failure_streak:
                self.stop(
                    f"the target stopped answering ({self._streak} transport failures in a row, "
                    f"the last: {exchange.error})",
                    Reason.TRANSPORT,
                )
        elif exchange.status is not None:
            self._streak = 0
        return result

    def _report(self, result: CaseResult | None) -> None:
        if self.progress is not None and result is not None:
            self.progress(result)


@contextlib.contextmanager
def _signals_stop(loop: asyncio.AbstractEventLoop, runner: Runner) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop sending (the report is still written); a second one aborts."""
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, _on_signal, runner, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _on_signal(runner: Runner, sig: signal.Signals) -> None:
    if runner.stop_reason is not None and runner.stop_reason.startswith("interrupted"):
        os._exit(130)
    runner.stop(f"interrupted by {signal.Signals(sig).name}")


# --- the command ------------------------------------------------------------------------


@dataclass
class RunSettings:
    """Everything ``imgconf run`` was asked, checked."""

    base_url: str | None = None
    api_key: str | None = None
    models: tuple[str, ...] | None = None
    profile: str = "openai"
    report_dir: Path = Path("reports")
    seed: int = 0
    timeout: float = 120.0
    #: ``--rate REQUESTS[,IMAGES]`` per minute (default: the profile's ``rate``, else none).
    rate: str | None = None
    #: ``--max-duration``: seconds after which the run stops sending (None: no deadline).
    max_duration: float | None = None
    concurrency: int = 8
    max_cost: float | None = None
    max_images: int | None = None
    explore: int = 0
    record: Path | None = None
    #: The recording's total cap, in MiB (``--record-cap``).
    record_cap: int = 256
    baseline: Path | None = None
    fail_on: str = "must"
    #: ``--from``: an earlier report.json whose cases (chosen by ``only``) are sent again.
    from_report: Path | None = None
    only: str = "failed,unobserved"
    #: Tunables for tests and the benchmark; not command-line flags.
    body_cap: int | None = None
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``--limit NAME=VALUE``: transport bounds raised or lowered (see :data:`LIMITS`).
    limits: tuple[str, ...] = ()
    #: How the target is reached (:mod:`conformance.contract.reach`): ``--header 'NAME: VALUE'`` (a
    #: value ``env:VAR`` read from the environment), ``--ca-bundle``, ``--insecure``, ``--proxy``.
    headers: tuple[str, ...] = ()
    ca_bundle: str | None = None
    insecure: bool = False
    proxy: str | None = None


#: Bounds ``--limit`` may set: the transport's, with their unit.
LIMITS = {
    "body_cap": "bytes",
    "error_cap": "bytes",
    "fetch_cap": "bytes",
    "inflight_cap": "bytes",
    "retries": "count",
    "max_retry_wait": "seconds",
    "retry_budget": "seconds",
    "retry_budget_count": "count",
}
_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def parse_limits(items: tuple[str, ...]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs as transport settings; a SetupError names the bad one."""
    out: dict[str, Any] = {}
    for item in items:
        name, _, text = item.partition("=")
        name, text = name.strip(), text.strip().lower()
        unit = LIMITS.get(name)
        if unit is None:
            raise SetupError(f"--limit: unknown bound {name!r} (known: {', '.join(LIMITS)})")
        try:
            if unit == "bytes":
                digits = text.rstrip("kmgib")
                value: Any = int(float(digits) * _UNITS[text[len(digits) :]])
            elif unit == "count":
                value = int(text)
            else:
                value = float(text)
        except (ValueError, KeyError):
            raise SetupError(f"--limit: {item!r} needs a number of {unit}") from None
        if value < 0 or (unit == "bytes" and value == 0):
            raise SetupError(f"--limit: {item!r} must be positive")
        out[name] = value
    return out


def reach_config(settings: RunSettings, profile: Profile) -> dict[str, Any]:
    """The transport settings of how the target is reached: the profile's auth style and
    query, extra headers (``env:`` values read and registered as secrets), TLS and proxy.
    Each bad one is a SetupError."""
    from ..contract.reach import check_proxy, proxy_secret, resolve_headers, ssl_context

    if settings.insecure and settings.ca_bundle is not None:
        raise SetupError("--insecure and --ca-bundle contradict each other: give one")
    headers, secrets = resolve_headers(profile.headers, settings.headers, profile.auth)
    proxy = check_proxy(settings.proxy)
    register_secrets(*secrets, proxy_secret(proxy))
    return {
        "extra_headers": headers,
        "secrets": tuple(secrets),
        "auth": profile.auth,
        "query": dict(profile.query),
        "verify": ssl_context(settings.ca_bundle, insecure=settings.insecure),
        "ca_bundle": settings.ca_bundle,
        "proxy": proxy,
    }


def _check_settings(settings: RunSettings, profile: Profile) -> None:
    if settings.timeout <= 0:
        raise SetupError("--timeout must be a positive number of seconds")
    if settings.concurrency < 1:
        raise SetupError("--concurrency must be at least 1")
    if settings.max_cost is not None and settings.max_cost < 0:
        raise SetupError("--max-cost must be a USD amount >= 0")
    if settings.max_images is not None and settings.max_images < 0:
        raise SetupError("--max-images must be >= 0")
    if settings.explore < 0:
        raise SetupError("--explore must be >= 0")
    if settings.record_cap < 1:
        raise SetupError("--record-cap must be at least 1 (MiB)")
    parse_limits(settings.limits)
    if settings.rate is not None:
        try:
            Rate.parse(settings.rate)
        except ValueError as exc:
            raise SetupError(f"--rate: {exc}") from None
    for model in settings.models or ():
        if model not in profile.models:
            raise SetupError(
                f"--models: {model!r} is not a model of profile {profile.name} "
                f"({', '.join(profile.models)})"
            )
    if settings.base_url is not None and not is_http_url(settings.base_url):
        raise SetupError(
            f"--base-url must be an http(s) URL (got {strip_url(settings.base_url)!r})"
        )
    if settings.baseline is not None and not settings.baseline.is_file():
        raise SetupError(f"--baseline: no such file {settings.baseline}")


def _plan_dict(plan: Any) -> dict[str, Any]:
    coverage = dict(getattr(plan, "coverage", {}) or {})
    return {
        "cases": len(plan.cases),
        "by_origin": dict(Counter(c.origin for c in plan.cases)),
        "images": plan.images,
        "cost": plan.cost,
        "cost_unknown_images": plan.cost_unknown_images,
        "pairwise": {
            model: facts.get("pairs") for model, facts in coverage.get("models", {}).items()
        },
        "coverage": coverage,
        "cut": [c.id for c in plan.cut],
    }


def _check_prices(settings: RunSettings, profile: Profile) -> None:
    """Refuse a cost cap that cannot bound the run: models without a price under --max-cost
    alone would be sent uncounted (or, with the cap holding, never at all)."""
    if settings.max_cost is None or settings.max_images is not None:
        return
    models = settings.models or profile.models
    unpriced = [m for m in models if not profile.price_known(m)]
    if unpriced:
        raise SetupError(
            f"--max-cost cannot bound {', '.join(unpriced)}: profile {profile.name} has no price "
            "for it; add --max-images N, or give the profile a price with its source"
        )


def _budget_refusal(plan: Any, target: str) -> str:
    unknown = (
        f" (+{plan.cost_unknown_images} images at unknown prices)"
        if plan.cost_unknown_images
        else ""
    )
    return (
        f"{target} is not on loopback: give a budget with --max-cost USD or --max-images N "
        f"(the full plan sends {len(plan.cases)} requests, generating up to {plan.images} "
        f"images, estimated ${plan.cost:.2f}{unknown})"
    )


def run_cli(**options: Any) -> int:
    """The ``imgconf run`` job: returns the exit status; raises SetupError for bad input."""
    settings = RunSettings(**options)
    # Before anything can be said about the run, a bad flag included.
    register_secrets(settings.api_key, os.environ.get("OPENAI_API_KEY"))
    if settings.from_report is not None:
        settings = apply_from_report(settings)
    profile = load_profile(settings.profile)
    _check_settings(settings, profile)
    reach_config(settings, profile)  # a bad header, CA file or proxy: exit 2 before anything
    if settings.base_url is None:
        from ..server.launcher import start_reference_server

        with start_reference_server(api_key=settings.api_key, profile=settings.profile) as server:
            return _run(settings, profile, server.base_url, server.api_key, embedded=True)
    key = settings.api_key or os.environ.get("OPENAI_API_KEY") or None
    return _run(settings, profile, settings.base_url, key, embedded=False)


def _build_plan(settings: RunSettings, profile: Profile, max_cost: Any, max_images: Any) -> Any:
    from ..generation.planning import build_plan

    return build_plan(
        profile,
        models=list(settings.models) if settings.models else None,
        seed=settings.seed,
        max_cost=max_cost,
        max_images=max_images,
        explore=settings.explore,
    )


#: ``--only`` words and the case outcomes of the earlier report they choose.
_ONLY = {"failed": ("fail",), "warned": ("warn",), "unobserved": ("not_observed",)}


def _earlier_report(settings: RunSettings) -> dict[str, Any]:
    """The ``--from`` report, read and checked (a set-up error otherwise)."""
    from ..reports.diff import load_report

    path = settings.from_report
    assert path is not None
    report = load_report(path, "--from")
    if not isinstance(report, dict) or not isinstance(report.get("cases"), list):
        raise SetupError(f"--from: {path} is not an imgconf report.json")
    return report


def apply_from_report(settings: RunSettings) -> RunSettings:
    """Take the earlier run's profile, models and seed, so the plan rebuilds its exact bodies."""
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


def _rerun_plan(plan: Any, settings: RunSettings) -> Any:
    """The plan cut down to the earlier report's chosen cases, with the controls they lean on."""
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


def _run(
    settings: RunSettings, profile: Profile, base_url: str, key: str | None, *, embedded: bool
) -> int:
    target = strip_url(base_url)
    budgeted = settings.max_cost is not None or settings.max_images is not None
    if not embedded and not is_loopback(base_url) and not budgeted:
        raise SetupError(_budget_refusal(_build_plan(settings, profile, None, None), target))
    if not key:
        raise SetupError("no API key: pass --api-key or set OPENAI_API_KEY")
    _check_prices(settings, profile)
    check_writable(settings.report_dir, settings.record)
    config = TransportConfig(
        base_url=base_url,
        path=profile.path,
        api_key=key,
        timeout=settings.timeout,
        **({"body_cap": settings.body_cap} if settings.body_cap else {}),
        **settings.extra,
        **parse_limits(settings.limits),
        **reach_config(settings, profile),
    )
    if settings.insecure:
        warning = f"imgconf: warning: TLS is not verified for {target} (--insecure)"
        print(printable(warning), file=sys.stderr)
    if not embedded:
        asyncio.run(check_target(config))
    plan = _build_plan(settings, profile, settings.max_cost, settings.max_images)
    if settings.from_report is not None:
        plan = _rerun_plan(plan, settings)
    recorder = None
    if settings.record is not None:
        from ..reports.har import HarRecorder

        recorder = HarRecorder(
            settings.record, keep_images=True, cap=settings.record_cap * 1024 * 1024
        )
    say = (lambda *a: None) if settings.quiet else (lambda line: print(printable(line), flush=True))
    say(
        f"imgconf {__version__}: {len(plan.cases)} cases for {', '.join(plan.models)} "
        f"against {'the embedded reference server' if embedded else target} "
        f"(profile {profile.name}, seed {settings.seed})"
    )
    if not embedded:
        from ..generation.planning import plan_warnings

        for warning in plan_warnings(plan):
            say(f"imgconf: {warning}")
    run = RunResult(
        tool_version=__version__,
        target=target,
        profile=profile.name,
        models=list(plan.models),
        seed=settings.seed,
        started=time.time(),
        plan=_plan_dict(plan),
        fail_on=settings.fail_on,
        tls={"verify": not settings.insecure, "ca_bundle": settings.ca_bundle},
        auth=profile.auth,
        rules=profile.rules(),
        judged_by=profile.contract,
    )
    budget = Budget(max_images=settings.max_images, max_cost=settings.max_cost)
    try:
        results, stop_reason = asyncio.run(
            _execute(plan.cases, profile, config, settings, budget, recorder)
        )
    finally:
        if recorder is not None:
            recorder.close(
                {
                    "tool_version": __version__,
                    "target": target,
                    "profile": profile.name,
                    "models": list(plan.models),
                    "seed": settings.seed,
                }
            )
    run.results = settle_controls(results + [cut_result(case) for case in plan.cut])
    run.rules = profile.rules()
    run.finished = time.time()
    run.budget = budget.as_dict()
    if stop_reason is not None:
        run.incomplete = True
        run.stopped = stop_reason
        run.plan["stopped"] = stop_reason
    return _finish(run, settings, say, stop_reason)


async def _execute(
    cases: list[Case],
    profile: Profile,
    config: TransportConfig,
    settings: RunSettings,
    budget: Budget,
    recorder: Recorder | None,
) -> tuple[list[CaseResult], str | None]:
    async with Transport(config) as transport:
        with Progress(total=len(cases), tty=sys.stderr.isatty() and not settings.quiet) as bar:
            runner = Runner(
                transport,
                profile,
                concurrency=settings.concurrency,
                budget=budget,
                recorder=recorder,
                progress=None if settings.quiet else bar.advance,
                rate=Rate.parse(settings.rate) if settings.rate else profile.rate,
            )
            endpoint = transport.redact(strip_url(config.endpoint))
            runner.auth_watch = watch = AuthWatch.for_plan(cases, runner.concurrency, endpoint)
            loop = asyncio.get_running_loop()
            deadline = None
            if settings.max_duration is not None:
                deadline = loop.call_later(
                    settings.max_duration,
                    runner.stop,
                    f"the run reached --max-duration {settings.max_duration:g} s",
                )
            try:
                with _signals_stop(loop, runner):
                    results = await runner.run(cases)
            finally:
                if deadline is not None:
                    deadline.cancel()
    if watch.message is not None:
        raise SetupError(watch.message)
    return results, runner.stop_reason


def _finish(
    run: RunResult, settings: RunSettings, say: Callable[[str], None], stop_reason: str | None
) -> int:
    from ..reports.writer import VERDICT_WORDS, failure_lines, outcome_counts, write_reports

    paths = write_reports(run, settings.report_dir)
    say(f"imgconf: {outcome_counts(run)} in {run.finished - run.started:.1f} s")
    if stop_reason:
        say(f"imgconf: stopped early: {stop_reason}")
    for line in failure_lines(run):
        say(line)
    status = run.exit_code
    if settings.baseline is not None:
        import json

        from ..reports.diff import combine_exit_codes, compare, format_diff, load_report

        old = load_report(settings.baseline, "--baseline")
        written = [p for p in paths.values() if Path(p).suffix == ".json"]
        new = json.loads(Path(written[0]).read_text(encoding="utf-8")) if written else {}
        diff = compare(old, new)
        say(format_diff(diff))
        status = combine_exit_codes(status, diff.exit_code(settings.fail_on))
    say(f"imgconf: {VERDICT_WORDS[status]}; reports in {settings.report_dir}/")
    return status
