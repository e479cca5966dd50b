"""Sending a plan's cases to a target and judging every answer: the runner.

The front ends (``imgconf run``, the pytest plugin) make the plan, the client and the budget,
and hand them to :func:`execute` (or a :class:`Runner`); they write the reports. The runner owns the order of things and the limits that keep a run safe against any target:

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
  :data:`~conformance.settings.MAX_THUMBNAILS`, one matching image per model and format).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .. import settings
from ..contract.profiles import Profile, Rate
from ..errors import SetupError
from ..generation.cases import Case
from ..redact import redactor, strip_url
from . import allocator
from .checks import judge
from .image_facts import GalleryLater, GalleryPicks, PixelsWanted, no_pixel_work, thumbnail_of
from .preflight import AuthWatch
from .results import (
    TARGET_SILENT,
    BudgetFacts,
    CaseResult,
    Exchange,
    Outcome,
    Reason,
    release,
)
from .transport import Lease, TargetClient, TransportConfig, excerpt

__all__ = ["Budget", "BudgetLedger", "LaterCases", "Runner", "execute", "may_have_generated"]


#: Answers with images judged at once, off the event loop: one per core. Pixel work is
#: CPU-bound, so more threads would not judge faster, only hold more decoded images at once.
JUDGING_SLOTS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2

#: Judging's working memory per byte of answer: the JSON text (1), the decoded images (3/4),
#: their pixels (a PNG's RGBA is about 2-4 times its file; a JPEG's many more, but a JPEG
#: answer is small for its size).
WORKING_SET = 6


def _may_hold_images(exchange: Exchange) -> bool:
    """Whether the answer may carry images to check, and so be judged off the event loop unless
    none of them wants pixel work (:meth:`Runner._judged_here`): any 2xx. Its size does not
    tell: a few kilobytes of flat picture can declare millions of pixels to decode, and three
    decodes at once (two judging threads and the loop) would both stall sending and pass the
    judging memory bound."""
    return exchange.status is not None and 200 <= exchange.status < 300


def _bytes_read(exchange: Exchange) -> int:
    return len(exchange.response_body) + sum(len(f.response_body) for f in exchange.fetches)


def _working_set(exchange: Exchange) -> int:
    """Bytes judging the answer may hold at its peak (an estimate from the bytes read)."""
    return WORKING_SET * _bytes_read(exchange)


class JudgingGate:
    """Admits answers to be judged off the event loop, first come first served: at most
    ``slots`` at once, and their estimated working memory within ``memory`` (one answer
    estimated larger than that is judged alone), so that the run's memory does not grow with
    the size of the images a target answers.
    """

    def __init__(self, slots: int, memory: int) -> None:
        self.slots = max(1, slots)
        self.memory = memory
        self.running = 0
        self.held = 0
        self._queue: deque[tuple[int, asyncio.Future[None]]] = deque()

    @contextlib.asynccontextmanager
    async def admit(self, weight: int) -> AsyncIterator[None]:
        admitted = asyncio.get_running_loop().create_future()
        self._queue.append((weight, admitted))
        self._pump()
        try:
            await admitted
        except asyncio.CancelledError:
            if admitted.done() and not admitted.cancelled():
                self._leave(weight)  # admitted, then cancelled before it could start
            raise
        try:
            yield
        finally:
            self._leave(weight)

    def _leave(self, weight: int) -> None:
        self.running -= 1
        self.held -= weight
        self._pump()

    def _pump(self) -> None:
        while self._queue:
            weight, admitted = self._queue[0]
            if admitted.done():  # its task was cancelled while it waited
                self._queue.popleft()
                continue
            fits = self.running < self.slots and self.held + weight <= self.memory
            if self.running and not fits:
                return
            self._queue.popleft()
            self.running += 1
            self.held += weight
            admitted.set_result(None)


class LaterCases(Protocol):
    """Cases a run admits after its first ones, a batch at a time as they are made (in a
    thread); closing it, from any thread, stops the making."""

    def __next__(self) -> list[Case]: ...

    def close(self) -> None: ...


class Recorder(Protocol):
    def add(self, case: Case, exchange: Exchange) -> None: ...

    def close(self, meta: dict[str, Any]) -> None: ...


class BudgetLedger(Protocol):
    """What the runner needs of a budget (one process: :class:`Budget`; a pytest session under
    xdist: the plugin's file-locked ledger)."""

    def reserve(self, case: Case) -> bool: ...

    def settle(self, case: Case, *, generated: bool) -> None: ...

    def pending(self) -> int: ...

    def facts(self) -> BudgetFacts: ...


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

    def facts(self) -> BudgetFacts:
        """The budget as asked and as spent (what report.json's ``budget`` holds)."""
        return BudgetFacts(
            max_cost=self.max_cost,
            max_images=self.max_images,
            images=self.images,
            cost=round(self.cost, 6),
            cost_unknown_images=self.cost_unknown_images,
        )


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
    exchange.body_size = len(exchange.response_body)
    exchange.response_body = excerpt(exchange.response_body)
    for fetch in exchange.fetches:
        fetch.response_body = b""


class Runner:
    """Sends cases with bounded concurrency and budget, and judges each answer."""

    #: Stops the run when its first valid requests are all refused (a wrong key).
    auth_watch: AuthWatch | None = None

    def __init__(
        self,
        client: TargetClient,
        profile: Profile,
        *,
        concurrency: int = settings.DEFAULT_CONCURRENCY,
        budget: BudgetLedger | None = None,
        recorder: Recorder | None = None,
        progress: Callable[[CaseResult], None] | None = None,
        max_thumbnails: int = settings.MAX_THUMBNAILS,
        failure_streak: int | None = None,
        rate: Rate | None = None,
    ) -> None:
        self.client = client
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
        client.resend_gate = self._reserve_again
        self._stop = asyncio.Event()
        #: Cases are admitted to the budget one at a time, in plan order.
        self._admission = asyncio.Lock()
        self._settled = asyncio.Event()
        self._judging = JudgingGate(JUDGING_SLOTS, settings.JUDGING_MEMORY)
        #: Answers handed to judging and not yet judged: a worker sends its next case meanwhile,
        #: but no more answers wait than there are workers (their bytes stay counted in the
        #: transport's in-flight budget until judged, which holds back reading more).
        self._backlog = asyncio.Semaphore(self.concurrency)
        self._judging_tasks: set[asyncio.Task[None]] = set()
        #: Cases fed after the first ones (``run(later=...)``): whether more may come, and the
        #: events that wake a worker waiting for them and the feeder waiting for room.
        self._feeding = False
        self._pending: dict[int, Case] = {}
        self._more = asyncio.Event()
        self._queue_low = asyncio.Event()
        #: Told each batch of later cases as it is admitted (a progress bar's total grows).
        self.admitted: Callable[[list[Case]], None] | None = None

    def stop(self, reason: str, kind: Reason = Reason.INTERRUPTED) -> None:
        """Stop sending: cases not yet answered are reported as not observed, for ``kind``."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_kind = kind
        self._stop.set()

    async def run(self, cases: list[Case], later: LaterCases | None = None) -> list[CaseResult]:
        """Send and judge ``cases``, then the batches of ``later`` as they come (made while
        these are sent: ``--explore``'s cases, drawn meanwhile); the results of all, in order.
        """
        results: list[CaseResult | None] = [None] * len(cases)
        queue = deque(enumerate(cases))
        #: The cases without a result yet: a judged case is let go of here, and its result
        #: keeps what the reports need of it (a passing one sheds its body).
        self._pending = dict(enumerate(cases))
        self._feeding = later is not None
        workers = [
            asyncio.create_task(self._worker(queue, results)) for _ in range(self.concurrency)
        ]
        feeder = (
            asyncio.create_task(self._feed(later, queue, results)) if later is not None else None
        )
        stopper = asyncio.create_task(self._stop.wait())
        finished = asyncio.create_task(self._all_judged(workers, feeder))
        try:
            await asyncio.wait([stopper, finished], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Stopping cancels the requests in flight and the answers not yet judged: their
            # cases are reported as not judged.
            if later is not None:
                later.close()
            tasks = (*workers, *self._judging_tasks, *([feeder] if feeder else []), stopper)
            for task in (*tasks, finished):
                task.cancel()
            await asyncio.gather(*tasks, finished, return_exceptions=True)
        note = f"not judged: {self.stop_reason}" if self.stop_reason else "not judged"
        reason = self.stop_kind or Reason.INTERRUPTED
        return [
            result or not_observed(self._pending[index], reason, note)
            for index, result in enumerate(results)
        ]

    async def _feed(
        self,
        later: LaterCases,
        queue: deque[tuple[int, Case]],
        results: list[CaseResult | None],
    ) -> None:
        """Admit ``later``'s batches to the queue, the next one (made in a thread) whenever
        the queue runs low: the cases not yet sent are never all held at once, while whatever
        makes them works ahead on its own (``--explore`` draws in another process)."""
        allocator.configure()  # before the first thread allocates (once per process)
        try:
            while not self._stop.is_set():
                while len(queue) > self.concurrency and not self._stop.is_set():
                    self._queue_low.clear()
                    await self._queue_low.wait()
                allocator.give_back_free_memory()  # what the batch before left in the heaps
                try:
                    batch = await asyncio.to_thread(next, later, None)
                except Exception as exc:  # the plan cannot be completed: the run says so
                    message = str(exc) if isinstance(exc, SetupError) else repr(exc)
                    self.stop(
                        f"making the cases to send failed: {message}"[:300], Reason.INTERNAL_ERROR
                    )
                    return
                if batch is None:
                    return
                for case in batch:
                    queue.append((len(results), case))
                    self._pending[len(results)] = case
                    results.append(None)
                if self.admitted is not None:
                    self.admitted(batch)
                self._more.set()
        finally:
            self._feeding = False
            self._more.set()

    async def _all_judged(
        self, workers: list[asyncio.Task[None]], feeder: asyncio.Task[None] | None
    ) -> None:
        """Every case sent (those fed later too), then every answer handed to judging judged."""
        await asyncio.gather(*workers, *([feeder] if feeder else []))
        while self._judging_tasks:
            await asyncio.gather(*self._judging_tasks)

    async def _next_case(self, queue: deque[tuple[int, Case]]) -> tuple[int, Case] | None:
        """The next case to send; None when there is none and none will be fed."""
        while not queue and self._feeding and not self._stop.is_set():
            self._more.clear()
            await self._more.wait()
        if not queue or self._stop.is_set():
            return None
        taken = queue.popleft()
        if len(queue) <= self.concurrency:
            self._queue_low.set()
        return taken

    async def _worker(
        self, queue: deque[tuple[int, Case]], results: list[CaseResult | None]
    ) -> None:
        while True:
            async with self._admission:
                taken = await self._next_case(queue)
                if taken is None:
                    return
                index, case = taken
                admitted = await self._reserve(case)
            if not admitted:
                results[index] = not_observed(
                    case,
                    Reason.BUDGET,
                    "not sent: its worst case does not fit the remaining budget",
                )
                self._done(index, results)
                continue
            lease = self.client.inflight.open()
            try:
                exchange = await self._send(index, case, lease, results)
                if exchange is None:
                    self._done(index, results)
                    continue
                self._observe(case, exchange)
                if _may_hold_images(exchange):
                    if here := self._judged_here(case, exchange):
                        result, later = here
                        await self._offer_thumbnails(later)
                        results[index] = self._kept(case, exchange, result)
                        self._done(index, results)
                        continue
                    # Images are checked whole (and decoded where a rule needs pixels) off the
                    # event loop, while this worker sends its next case.
                    await self._backlog.acquire()
                    task = asyncio.create_task(
                        self._judge_apart(index, case, exchange, lease, results)
                    )
                    self._judging_tasks.add(task)
                    task.add_done_callback(self._judging_tasks.discard)
                    lease = None  # the judging task closes it
                    continue
                results[index] = self._kept(case, exchange, self._judged(case, exchange))
                self._done(index, results)
            finally:
                if lease is not None:
                    lease.close()

    async def _send(
        self, index: int, case: Case, lease: Lease, results: list[CaseResult | None]
    ) -> Exchange | None:
        """Send one case and settle its budget; None (its result set) when imgconf failed."""
        exchange = None
        self._reservations[case.id] = 1
        try:
            await self.pacer.wait(case)
            exchange = await self.client.send_case(case, lease)
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
        return exchange

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
                async with asyncio.timeout(settings.BUDGET_POLL):
                    await self._settled.wait()
        return True

    def _judged_here(
        self, case: Case, exchange: Exchange
    ) -> tuple[CaseResult, GalleryLater | None] | None:
        """The verdict on a small answer, judged on the event loop when none of its images wants
        pixel work (each one's facts remembered: :func:`no_pixel_work`), with the images it
        offers the gallery; None when it must be judged in a thread."""
        if _bytes_read(exchange) > settings.INLINE_JUDGING:
            return None
        later = GalleryLater() if self.gallery is not None and case.expect != "reject" else None
        try:
            with no_pixel_work():
                return judge(case, exchange, self.profile, thumbnails=later or False), later
        except PixelsWanted:
            return None
        except Exception as exc:  # a bug of imgconf's, not the target's: judge the rest
            return internal_error(case, exc, exchange), None

    async def _offer_thumbnails(self, later: GalleryLater | None) -> None:
        """Offer the run's gallery the images of an answer judged on the event loop; a picked
        one's thumbnail is made in a thread (or taken from the memory of a repeat there)."""
        if later is None or self.gallery is None:
            return
        for offer in later.offers:
            if self.gallery.take(offer.model, offer.facts.format, offer.image.ok):
                with contextlib.suppress(Exception):  # a surprise costs the thumbnail only
                    offer.image.thumbnail = await asyncio.to_thread(
                        thumbnail_of, offer.data, offer.facts
                    )

    def _judged(self, case: Case, exchange: Exchange) -> CaseResult:
        thumbnails = self.gallery if case.expect != "reject" and self.gallery else False
        try:
            return judge(case, exchange, self.profile, thumbnails=thumbnails)
        except Exception as exc:  # a bug of imgconf's, not the target's: judge the rest
            return internal_error(case, exc, exchange)

    async def _judge_apart(
        self,
        index: int,
        case: Case,
        exchange: Exchange,
        lease: Lease,
        results: list[CaseResult | None],
    ) -> None:
        """Judge an answer with images in a thread (Pillow and zlib release the GIL), then
        give back its bytes and its place in the backlog."""
        allocator.configure()  # before the first thread allocates (once per process)
        try:
            async with self._judging.admit(_working_set(exchange)):
                result = await asyncio.to_thread(self._judged, case, exchange)
            results[index] = self._kept(case, exchange, result)
        finally:
            lease.close()
            self._backlog.release()
        self._done(index, results)

    def _kept(self, case: Case, exchange: Exchange, result: CaseResult) -> CaseResult:
        """Record the exchange, then keep of it only what the reports need."""
        try:
            if self.recorder is not None:
                self.recorder.add(case, exchange)
            trim(exchange)
            release(result)
        except Exception as exc:  # recording or bookkeeping: never lose the rest
            return internal_error(case, exc, exchange)
        return result

    def _observe(self, case: Case, exchange: Exchange) -> None:
        """What an answer tells about the whole run, as soon as it is read: a key refused from
        the start, a target that stopped answering."""
        if self.auth_watch is not None and (refused := self.auth_watch.observe(case, exchange)):
            self.stop(refused)
        if exchange.error in TARGET_SILENT:
            self._streak += 1
            if self._streak >= self.failure_streak:
                self.stop(
                    f"the target stopped answering ({self._streak} transport failures in a row, "
                    f"the last: {exchange.error})",
                    Reason.TRANSPORT,
                )
        elif exchange.status is not None:
            self._streak = 0

    def _done(self, index: int, results: list[CaseResult | None]) -> None:
        """A case has its result: let go of the case as planned, and tell the progress."""
        result = results[index]
        if result is None:
            return
        self._pending.pop(index, None)
        if self.progress is not None:
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


async def execute(
    cases: list[Case],
    profile: Profile,
    config: TransportConfig,
    *,
    budget: BudgetLedger,
    concurrency: int = settings.DEFAULT_CONCURRENCY,
    rate: Rate | None = None,
    max_duration: float | None = None,
    recorder: Recorder | None = None,
    progress: Callable[[CaseResult], None] | None = None,
    later: LaterCases | None = None,
    admitted: Callable[[list[Case]], None] | None = None,
) -> tuple[list[CaseResult], str | None]:
    """Send the cases and judge every answer: their results, and why the run stopped early
    (None when it did not). Ctrl-C, SIGTERM or ``max_duration`` stop sending; the results of
    cases not judged then say so. A key refused from the start is a SetupError. ``later``'s
    batches follow the cases as they are made, each told to ``admitted``."""
    async with TargetClient(config) as client:
        runner = Runner(
            client,
            profile,
            concurrency=concurrency,
            budget=budget,
            recorder=recorder,
            progress=progress,
            rate=rate,
        )
        runner.admitted = admitted
        endpoint = redactor().text(strip_url(config.endpoint))
        runner.auth_watch = watch = AuthWatch.for_plan(cases, runner.concurrency, endpoint)
        loop = asyncio.get_running_loop()
        deadline = None
        if max_duration is not None:
            deadline = loop.call_later(
                max_duration,
                runner.stop,
                f"the run reached --max-duration {max_duration:g} s",
            )
        try:
            with _signals_stop(loop, runner):
                results = await runner.run(cases, later)
        finally:
            if deadline is not None:
                deadline.cancel()
    if watch.message is not None:
        raise SetupError(watch.message)
    return results, runner.stop_reason
