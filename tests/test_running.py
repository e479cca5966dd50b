"""The runner: budget reserved before sending, bounded concurrency, stopping, memory trimming."""

from __future__ import annotations

import asyncio
import json

import httpx
import respx
from _report_fixtures import gpt_answer, png

from conformance.contract.profiles import load_profile
from conformance.engine.results import Outcome
from conformance.engine.runner import Budget, Runner
from conformance.engine.transport import TargetClient, TransportConfig
from conformance.generation.cases import Case

BASE = "http://target.test/v1"
ENDPOINT = BASE + "/images/generations"
PROFILE = load_profile("openai")


ANSWER = gpt_answer([png(1024, 1024, (1, 2, 3))])


def cases(count: int, images: int = 1, cost: float | None = 0.01) -> list[Case]:
    return [
        Case(
            id=f"c{i}",
            model="gpt-image-1",
            kind="valid",
            rule="request.valid.accepted",
            level="MUST",
            expect="accept",
            body={"model": "gpt-image-1", "prompt": f"p{i}", "size": "1024x1024", "quality": "low"},
            images=images,
            cost=cost,
        )
        for i in range(count)
    ]


def execute(plan, handler, **runner_options):
    async def go():
        with respx.mock() as mock:
            route = mock.post(ENDPOINT)
            route.side_effect = handler
            config = TransportConfig(BASE, api_key="sk-x-123456", timeout=5)
            async with TargetClient(config) as transport:
                runner = Runner(transport, PROFILE, **runner_options)
                results = await runner.run(plan)
            return runner, results, route.call_count

    return asyncio.run(go())


def test_every_case_is_judged_and_trimmed():
    _runner, results, calls = execute(cases(20), lambda r: httpx.Response(200, json=ANSWER))
    assert calls == 20 and all(r.outcome is Outcome.PASS for r in results)
    # Image bodies are not kept once judged.
    assert all(len(r.exchange.response_body) < 5000 for r in results)
    assert b"elided" in results[0].exchange.response_body


def test_the_budget_is_reserved_before_sending_and_never_overshot():
    budget = Budget(max_images=5)
    _runner, results, calls = execute(
        cases(10, images=2),
        lambda r: httpx.Response(200, json=ANSWER),
        concurrency=8,
        budget=budget,
    )
    assert calls == 2 and budget.images == 4
    skipped = [r for r in results if r.reason == "budget"]
    assert len(skipped) == 8 and "budget" in skipped[0].note


def test_a_cost_budget_counts_invalid_cases_too():
    plan = cases(4, cost=0.04)
    plan[0] = Case(
        **{**plan[0].__dict__, "kind": "invalid", "expect": "reject", "rule": "request.n.max"}
    )
    budget = Budget(max_cost=0.1)
    _, results, calls = execute(plan, lambda r: httpx.Response(200, json=ANSWER), budget=budget)
    assert calls == 2 and abs(budget.cost - 0.08) < 1e-9
    # The invalid case was wrongly accepted: a finding, and it was paid for.
    assert results[0].outcome is Outcome.FAIL


def test_unknown_prices_are_counted_apart():
    budget = Budget(max_cost=1.0, max_images=10)
    execute(cases(3, cost=None), lambda r: httpx.Response(200, json=ANSWER), budget=budget)
    assert budget.cost_unknown_images == 3 and budget.cost == 0
    # Under a cost cap alone they are never sent: nothing could bound them.
    alone = Budget(max_cost=1.0)
    assert not any(alone.fits(case) for case in cases(3, cost=None))


def test_concurrency_is_bounded():
    in_flight = 0
    peak = 0

    async def handler(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=ANSWER)

    execute(cases(30), handler, concurrency=4)
    assert peak == 4


def test_a_target_that_stops_answering_stops_the_run():
    runner, results, calls = execute(
        cases(100), httpx.ConnectError("refused"), concurrency=2, failure_streak=5
    )
    assert runner.stop_reason and "stopped answering" in runner.stop_reason
    assert calls < 10
    assert [r.outcome for r in results[:5]] == [Outcome.FAIL] * 5
    assert results[-1].outcome is Outcome.NOT_OBSERVED and "stopped answering" in results[-1].note
    assert results[-1].reason == "transport"


def test_stop_cancels_in_flight_and_skips_the_rest():
    async def go():
        async def slow(request):
            await asyncio.sleep(10)
            return httpx.Response(200, json=ANSWER)

        with respx.mock(assert_all_called=False) as mock:
            mock.post(ENDPOINT).side_effect = slow
            async with TargetClient(TransportConfig(BASE, api_key="k" * 10)) as transport:
                runner = Runner(transport, PROFILE, concurrency=3)
                asyncio.get_running_loop().call_later(0.2, runner.stop, "interrupted by SIGINT")
                started = asyncio.get_running_loop().time()
                results = await runner.run(cases(10))
                return results, asyncio.get_running_loop().time() - started

    results, elapsed = asyncio.run(go())
    assert elapsed < 2
    assert all(r.outcome is Outcome.NOT_OBSERVED for r in results)
    assert "interrupted" in results[0].note


def test_thumbnails_are_made_only_for_what_the_gallery_shows():
    # Matching images: one per model and format, however many there are.
    _runner, results, _ = execute(
        cases(10), lambda r: httpx.Response(200, json=ANSWER), max_thumbnails=3
    )
    kept = [i for r in results for i in r.images if i.thumbnail]
    assert len(kept) == 1
    assert kept[0].thumbnail.startswith(b"\x89PNG")
    # Broken ones (here the wrong size): every one, up to the bound.
    wrong_size = gpt_answer([png(512, 512, (1, 2, 3))])
    _runner, results, _ = execute(
        cases(10), lambda r: httpx.Response(200, json=wrong_size), max_thumbnails=3
    )
    assert all(r.outcome is Outcome.FAIL for r in results)
    assert sum(1 for r in results for i in r.images if i.thumbnail) == 3
    _runner, results, _ = execute(
        cases(10), lambda r: httpx.Response(200, json=wrong_size), max_thumbnails=0
    )
    assert not any(i.thumbnail for r in results for i in r.images)


def test_answers_with_images_are_judged_off_the_event_loop_one_per_core_at_most(monkeypatch):
    import threading
    import time

    from conformance.engine import runner as running

    monkeypatch.setattr(running, "JUDGING_SLOTS", 2)
    lock = threading.Lock()
    now = peak = 0
    threads: set[int] = set()
    original = running.judge

    def judge(*args, **kwargs):
        nonlocal now, peak
        result = original(*args, **kwargs)  # a try on the event loop stops here: pixels wanted
        with lock:
            now += 1
            peak = max(peak, now)
            threads.add(threading.get_ident())
        time.sleep(0.02)
        with lock:
            now -= 1
        return result

    monkeypatch.setattr(running, "judge", judge)
    _runner, results, _ = execute(cases(12), new_picture_each_time(), concurrency=8)
    assert all(r.outcome is Outcome.PASS for r in results)
    assert peak == 2
    assert threading.main_thread().ident not in threads


def test_a_worker_sends_its_next_case_while_its_answer_is_judged(monkeypatch):
    import threading
    import time

    from conformance.engine import runner as running

    sent: list[float] = []
    judged: list[float] = []
    held: list[int] = []
    lock = threading.Lock()
    original = running.judge
    runners: list[Runner] = []
    monkeypatch.setattr(running.Runner, "__init__", _remember(running.Runner.__init__, runners))

    def judge(*args, **kwargs):
        result = original(*args, **kwargs)  # a try on the event loop stops here: pixels wanted
        held.append(runners[0].client.inflight.held)
        time.sleep(0.3)
        with lock:
            judged.append(time.perf_counter())
        return result

    pictures = new_picture_each_time()

    def handler(request):
        sent.append(time.perf_counter())
        return pictures(request)

    monkeypatch.setattr(running, "judge", judge)
    _runner, results, calls = execute(cases(6), handler, concurrency=2)
    assert calls == 6 and all(r.outcome is Outcome.PASS for r in results)
    # Two answers wait to be judged while the two workers send two more cases each.
    assert sum(1 for t in sent if t < min(judged)) == 4
    # An answer's bytes stay counted in flight until it is judged.
    assert min(held) >= len(json.dumps(ANSWER))
    assert runners[0].client.inflight.held == 0


def new_picture_each_time():
    """A handler answering a picture never seen before, so that judging it wants pixels."""
    count = iter(range(1, 1_000_000))

    def handler(request):
        return httpx.Response(200, json=gpt_answer([png(1024, 1024, (next(count) % 256, 2, 3))]))

    return handler


def test_an_answer_whose_images_were_judged_before_is_judged_on_the_event_loop(monkeypatch):
    """A repeated picture's facts are remembered: its answer costs no thread, and the gallery
    still gets what it shows (one passing image per kind, every broken one up to its bound)."""
    import threading

    from conformance.engine import runner as running

    threads: list[int] = []
    original = running.judge

    def judge(*args, **kwargs):
        result = original(*args, **kwargs)
        threads.append(threading.get_ident())
        return result

    monkeypatch.setattr(running, "judge", judge)
    loop = threading.main_thread().ident
    for answer, outcome, thumbnails in (
        (ANSWER, Outcome.PASS, 1),
        (gpt_answer([png(512, 512, (9, 9, 9))]), Outcome.FAIL, 4),  # the wrong size
    ):
        execute(cases(1), lambda r, a=answer: httpx.Response(200, json=a))  # seen once
        threads.clear()
        _runner, results, _ = execute(
            cases(6), lambda r, a=answer: httpx.Response(200, json=a), max_thumbnails=4
        )
        assert all(r.outcome is outcome for r in results)
        assert threads == [loop] * 6  # every one judged on the event loop
        shown = [i.thumbnail for r in results for i in r.images if i.thumbnail]
        assert len(shown) == thumbnails and len(set(shown)) == 1


def _remember(init, runners):
    def remembering(self, *args, **kwargs):
        runners.append(self)
        init(self, *args, **kwargs)

    return remembering


def test_answers_are_judged_first_come_first_served_within_slots_and_memory():
    from conformance.engine.runner import JudgingGate

    async def go():
        gate = JudgingGate(slots=2, memory=100)
        log: list[tuple[str, int, int]] = []

        async def job(name: str, weight: int, seconds: float) -> None:
            async with gate.admit(weight):
                log.append((name, gate.running, gate.held))
                await asyncio.sleep(seconds)

        await asyncio.gather(
            job("a", 60, 0.05), job("b", 60, 0.05), job("c", 30, 0.01), job("huge", 200, 0.01)
        )
        return log, gate

    log, gate = asyncio.run(go())
    assert [name for name, *_ in log] == ["a", "b", "c", "huge"]
    assert all(running <= 2 for _, running, _ in log)
    assert all(held <= 100 for name, _, held in log if name != "huge")
    assert ("huge", 1, 200) in log  # larger than the memory: judged alone
    assert gate.running == gate.held == 0


def test_a_judged_case_keeps_whole_bodies_only_when_it_did_not_pass():
    wrong_size = gpt_answer([png(512, 512, (1, 2, 3))])
    sent: dict[str, int] = {}

    def handler(request):
        answer = wrong_size if b'"p0"' in request.content else ANSWER
        response = httpx.Response(200, json=answer)
        sent[json.loads(request.content)["prompt"]] = len(response.content)
        return response

    _runner, results, _ = execute(cases(4), handler)
    failed = [r for r in results if r.outcome is Outcome.FAIL]
    passed = [r for r in results if r.outcome is Outcome.PASS]
    assert [r.case.id for r in failed] == ["c0"] and len(passed) == 3
    for result in passed:
        assert result.exchange.request_body == b""
        assert len(result.exchange.response_body) <= 520
        assert result.exchange.body_size == sent[result.case.body["prompt"]]
    kept = failed[0].exchange
    assert kept.request_body == failed[0].case.content()
    assert kept.body_size == sent["p0"] and b"elided" in kept.response_body


# --- the command's set-up errors: one line, exit 2, nothing sent ------------------------------


def test_a_remote_target_without_a_budget_is_refused_with_the_plan_cost(tmp_path, capsys):
    from conformance.cli import main_entry

    argv = ["run", "--base-url", "https://api.example.com/v1", "--api-key", "sk-remote-123456"]
    assert main_entry([*argv, "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "not on loopback" in err[0] and "--max-cost" in err[0] and "$" in err[0]
    assert "sk-remote-123456" not in err[0]
    assert not any(tmp_path.iterdir())


def test_bad_flags_are_one_line_errors(tmp_path, capsys):
    from conformance.cli import main_entry

    for extra in (
        ["--concurrency", "0"],
        ["--timeout", "0"],
        ["--profile", "no-such-profile"],
        ["--models", "dall-e-9"],
        ["--base-url", "ftp://127.0.0.1/v1"],
        ["--base-url", "http://127.0.0.1:99999/v1"],
        ["--base-url", "http://[::1/v1"],
        ["--fail-on", "never"],
    ):
        assert main_entry(["run", "--report-dir", str(tmp_path), *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("imgconf: error:"), (extra, err)


def test_an_unknown_host_is_a_one_line_set_up_error(tmp_path, capsys, monkeypatch):
    """The name lookup is answered here (no query leaves the machine): the host does not exist."""
    import socket

    from conformance.cli import main_entry

    def no_such_host(*_args, **_kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    argv = ["run", "--base-url", "https://no-such-host.invalid/v1", "--api-key", "sk-x"]
    argv += ["--max-images", "1"]
    assert main_entry([*argv, "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "nothing listening at no-such-host.invalid:443 (unknown host)" in err[0]
    assert not any(tmp_path.iterdir())


def test_limits_are_parsed_with_units_and_bad_ones_are_one_line(tmp_path, capsys):
    from conformance.cli import main_entry
    from conformance.engine.run_settings import parse_limits

    assert parse_limits(("body_cap=128MiB", "retries=1", "retry_budget=2.5")) == {
        "body_cap": 128 << 20,
        "retries": 1,
        "retry_budget": 2.5,
    }
    for bad in ("nope=1", "body_cap=", "body_cap=-1KiB", "retries=x"):
        assert main_entry(["run", "--limit", bad, "--report-dir", str(tmp_path)]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    # A lowered body cap is enforced: the answers no longer fit, and since a conformant answer
    # may be larger than the cap, the run cannot tell (INCOMPLETE), and blames nothing.
    args = ["run", "--models", "dall-e-2", "--report-dir", str(tmp_path), "--limit"]
    assert main_entry([*args, "body_cap=1KiB"]) == 3
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"]["status"] == "incomplete"
    assert any("over_limit" in reason for reason in report["verdict"]["incomplete_reasons"])
    assert not [case for case in report["cases"] if case.get("outcome") == "fail"]


class _Later:
    """Batches of cases made one at a time (each after ``delay`` s), as ``--explore`` makes them."""

    def __init__(self, batches, delay=0.0, fail=None):
        self.batches = list(batches)
        self.delay = delay
        self.fail = fail
        self.made = []
        self.closed = False

    def __next__(self):
        import time

        time.sleep(self.delay)
        if not self.batches:
            if self.fail is not None:
                raise self.fail
            raise StopIteration
        batch = self.batches.pop(0)
        self.made.append(batch)
        return batch

    def close(self):
        self.closed = True


def test_later_cases_are_sent_after_the_first_ones_and_judged_in_order():
    from conformance.generation.cases import Case as Made

    first = cases(3)
    later = [
        [Made(**{**c.__dict__, "id": f"later-{b}-{i}"}) for i, c in enumerate(cases(2))]
        for b in range(3)
    ]
    source = _Later(later, delay=0.05)
    sent: list[str] = []

    def handler(request):
        sent.append(json.loads(request.content)["prompt"])
        return httpx.Response(200, json=ANSWER)

    admitted = []

    async def go():
        with respx.mock() as mock:
            mock.post(ENDPOINT).side_effect = handler
            config = TransportConfig(BASE, api_key="sk-x-123456", timeout=5)
            async with TargetClient(config) as transport:
                runner = Runner(transport, PROFILE, concurrency=2)
                runner.admitted = admitted.append
                return await runner.run(first, source)

    results = asyncio.run(go())
    assert [r.case.id for r in results] == [c.id for c in first] + [
        c.id for batch in later for c in batch
    ]
    assert all(r.outcome is Outcome.PASS for r in results)
    assert len(sent) == 9 and admitted == later and source.closed


def test_a_failure_to_make_later_cases_leaves_the_run_incomplete():
    from conformance.errors import SetupError

    source = _Later([], fail=SetupError("--explore: drawing the cases failed: boom"))

    async def go():
        with respx.mock() as mock:
            mock.post(ENDPOINT).side_effect = lambda r: httpx.Response(200, json=ANSWER)
            config = TransportConfig(BASE, api_key="sk-x-123456", timeout=5)
            async with TargetClient(config) as transport:
                runner = Runner(transport, PROFILE, concurrency=2)
                await runner.run(cases(2), source)
                return runner

    runner = asyncio.run(go())
    assert runner.stop_reason == (
        "making the cases to send failed: --explore: drawing the cases failed: boom"
    )
    assert runner.stop_kind == "internal_error"


def test_a_passing_case_keeps_only_what_the_report_shows_of_its_body_and_headers():
    from dataclasses import replace

    from conformance.reports.document import elide

    long = [replace(c, body={**c.body, "prompt": "🌅 harbour " * 3000}) for c in cases(2)]
    wrong_size = gpt_answer([png(512, 512, (1, 2, 3))])
    headers = {"x-request-id": "req_1", "openai-processing-ms": "1200"}
    _runner, results, _ = execute(long, lambda r: httpx.Response(200, json=ANSWER, headers=headers))
    for original, result in zip(long, results, strict=True):
        assert result.outcome is Outcome.PASS
        assert result.case.body == elide(original.body)
        assert result.case.sent_bytes == len(original.content())
        assert result.exchange.response_headers == {"content-type": "application/json"}
        assert result.exchange.content_type == "application/json"
        assert list(result.exchange.request_headers) == ["content-type"]
    _runner, results, _ = execute(
        long, lambda r: httpx.Response(200, json=wrong_size, headers=headers)
    )
    assert all(
        r.outcome is Outcome.FAIL and r.case is c for r, c in zip(results, long, strict=True)
    )
    assert all(r.exchange.response_headers["x-request-id"] == "req_1" for r in results)
    assert all("authorization" in r.exchange.request_headers for r in results)
