"""The budget: reserved before sending, settled to what the server may have generated.

A refused request gives its reservation back, so a tight cap still sends every negative case;
a server that wrongly accepts them keeps its reservations, so the cap holds even then, at any
concurrency.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import respx
from _passthrough_proxy import run_proxy

from conformance.cli import main_entry
from conformance.contract.profiles import load_profile
from conformance.engine.results import Exchange, Outcome
from conformance.engine.runner import Budget, Runner, may_have_generated
from conformance.engine.transport import TargetClient, TransportConfig
from conformance.generation.cases import Case
from conformance.generation.planning import build_plan, spends
from conformance.pytest_plugin import SharedBudget
from conformance.server.launcher import start_reference_server

BASE = "http://target.test/v1"
ENDPOINT = BASE + "/images/generations"
PROFILE = load_profile("openai")
REFUSAL = {
    "error": {"message": "n too large", "type": "invalid_request_error", "param": "n", "code": None}
}


def invalid(index: int, images: int = 3, cost: float | None = 0.03) -> Case:
    return Case(
        id=f"bad{index}",
        model="dall-e-2",
        kind="invalid",
        rule="request.n.max",
        level="MUST",
        expect="reject",
        body={"model": "dall-e-2", "prompt": "p", "n": 10 + images},
        images=images,
        cost=cost,
    )


def execute(plan: list[Case], handler, budget: Budget, concurrency: int = 4):
    async def go():
        with respx.mock() as mock:
            route = mock.post(ENDPOINT)
            route.side_effect = handler
            async with TargetClient(TransportConfig(BASE, api_key="sk-x-123456", timeout=5)) as t:
                results = await Runner(t, PROFILE, concurrency=concurrency, budget=budget).run(plan)
            return results, route.call_count

    return asyncio.run(go())


def test_a_refused_request_gives_its_reservation_back():
    async def refuse(request):
        await asyncio.sleep(0.01)
        return httpx.Response(400, json=REFUSAL)

    budget = Budget(max_images=3, max_cost=0.05)
    results, calls = execute([invalid(i) for i in range(6)], refuse, budget)
    # Each case takes the whole budget while in flight; each refusal gives it back.
    assert calls == 6
    assert all(r.outcome is Outcome.PASS for r in results)
    assert (budget.images, budget.cost, budget.in_flight) == (0, 0.0, 0)


def test_a_wrongly_accepted_request_keeps_its_reservation_and_the_cap_holds():
    in_flight = peak_images = 0

    async def accept(request):
        nonlocal in_flight, peak_images
        asked = json.loads(request.content)["n"] - 10
        in_flight += asked
        peak_images = max(peak_images, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= asked
        return httpx.Response(200, json={"created": 1, "data": [{"url": "x"}] * asked})

    budget = Budget(max_images=7)
    results, calls = execute([invalid(i) for i in range(6)], accept, budget, concurrency=8)
    assert calls == 2 and budget.images == 6 and peak_images <= 7
    assert [r.reason for r in results[2:]] == ["budget"] * 4
    assert "does not fit" in results[2].note


@pytest.mark.parametrize(
    ("exchange", "kept"),
    [
        (Exchange("POST", "u", {}, b"", status=200), True),
        (Exchange("POST", "u", {}, b"", status=200, error="too_large"), True),
        (Exchange("POST", "u", {}, b"", status=400), False),
        (Exchange("POST", "u", {}, b"", status=429), False),
        # A server may generate and then answer 5xx, drop the connection or send garbage:
        # only a 4xx, or a connection never made, surely generated nothing.
        (Exchange("POST", "u", {}, b"", status=500), True),
        (Exchange("POST", "u", {}, b"", status=502), True),
        (Exchange("POST", "u", {}, b"", error="connection"), True),
        (Exchange("POST", "u", {}, b"", error="protocol"), True),
        (Exchange("POST", "u", {}, b"", error="connection", sent=False), False),
        # No answer in time: the server may still be generating (and billing) it.
        (Exchange("POST", "u", {}, b"", error="timeout"), True),
    ],
    ids=[
        "2xx",
        "2xx-cut",
        "400",
        "429",
        "500",
        "502",
        "dropped",
        "garbage",
        "refused",
        "timeout",
    ],
)
def test_what_settles_a_reservation(exchange: Exchange, kept: bool):
    assert may_have_generated(exchange) is kept


def test_a_dropped_connection_refunds_and_a_timeout_keeps():
    dropped = Budget(max_images=3)
    execute([invalid(0)], httpx.ConnectError("refused"), dropped)
    assert dropped.images == 0
    timed_out = Budget(max_images=3)
    execute([invalid(0)], httpx.ReadTimeout("slow"), timed_out)
    assert timed_out.images == 3


def test_the_shared_ledger_refunds_and_counts_reservations_in_flight(tmp_path: Path):
    path = tmp_path / "budget.json"
    one = SharedBudget(path, max_images=5, max_cost=None)
    other = SharedBudget(path, max_images=5, max_cost=None)
    assert one.reserve(invalid(0)) and not other.reserve(invalid(1))
    assert other.pending() == 1
    one.settle(invalid(0), generated=False)
    assert other.pending() == 0 and other.reserve(invalid(1))
    other.settle(invalid(1), generated=True)
    assert one.spent() == {"images": 3, "cost": 0.03, "cost_unknown_images": 0}
    assert one.facts().images == 3 and "in_flight" not in one.facts().to_dict()


def test_reservations_of_a_dead_process_are_not_waited_for(tmp_path: Path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    path = tmp_path / "budget.json"
    ledger = {"images": 3, "cost": 0.0, "cost_unknown_images": 0, "in_flight": {}}
    ledger["in_flight"][str(finished.pid)] = 1
    path.write_text(json.dumps(ledger))
    assert SharedBudget(path, max_images=1, max_cost=None).pending() == 0


# --- imgconf run, end to end ------------------------------------------------------------------


def test_a_tight_cap_sends_every_negative_case_to_a_conformant_server(tmp_path: Path, imgconf_run):
    cap = 40
    plan = build_plan(PROFILE, max_images=cap)
    negatives = {c.id for c in plan.cases if not spends(c)}
    assert plan.cut and len(negatives) > 200
    with (
        start_reference_server(mode="thread") as upstream,
        run_proxy(upstream.base_url, upstream.api_key) as proxy,
    ):
        status, report = imgconf_run("--max-images", str(cap), "--concurrency", "8", target=proxy)
    assert status == 0
    sent = {c["id"] for c in report["cases"] if c["response"] is not None}
    skipped = {c["id"]: c for c in report["cases"] if c["response"] is None}
    assert negatives <= sent
    # What the runner skipped is exactly what the plan cut, and the report says so by group.
    assert set(skipped) == {c.id for c in plan.cut}
    assert set(report["plan"]["cut"]) == set(skipped)
    assert all(c["note"].startswith("cut by the budget") for c in skipped.values())
    assert proxy.stats.images <= cap
    assert report["budget"]["spent"]["images"] == plan.images <= cap
    markdown = (tmp_path / "report.md").read_text()
    origins = {c.origin for c in plan.cut}
    for origin in origins:
        count = sum(1 for c in plan.cut if c.origin == origin)
        assert f"{count} cases: cut by the budget: {origin}" in markdown


def test_a_server_accepting_invalid_requests_never_generates_beyond_the_cap(imgconf_run):
    cap = 40
    accepting = ("accept-n-out-of-range", "accept-bad-enums", "accept-any-size", "no-auth")
    plan = build_plan(PROFILE, max_images=cap)
    assert plan.worst_images > 3 * cap  # accepting everything would blow the cap
    with (
        start_reference_server(quirks=accepting, mode="thread") as upstream,
        run_proxy(upstream.base_url, upstream.api_key) as proxy,
    ):
        status, report = imgconf_run("--max-images", str(cap), "--concurrency", "8", target=proxy)
    assert status == 1
    assert 0 < proxy.stats.images <= cap
    assert report["budget"]["spent"]["images"] <= cap
    skipped = [c for c in report["cases"] if c["response"] is None]
    assert any("does not fit the remaining budget" in c["note"] for c in skipped)


# --- the pytest plugin's shared ledger ---------------------------------------------------------

pytest_plugins = ["pytester"]


@pytest.mark.slow  # a pytest session of its own, or a pip install: several seconds
def test_xdist_workers_refund_refused_requests(pytester: pytest.Pytester, tmp_path: Path):
    """Two workers on one ledger, a cap far below what the invalid cases would cost if accepted:
    the conformant server refuses them and the refunds let them through.

    Under xdist the workers send different models at once, so an invalid case whose worst case
    needs more than another worker's valid cases have left may still be skipped: which ones
    depends on timing. Without refunds, what was sent could not add up to more than the cap.
    """
    cap = 12
    models = ["dall-e-2", "gpt-image-1"]
    plan = build_plan(PROFILE, models=models, max_images=cap)
    negatives = {c.id: c for c in plan.cases if not spends(c)}
    with (
        start_reference_server(mode="thread") as upstream,
        run_proxy(upstream.base_url, upstream.api_key) as proxy,
    ):
        result = pytester.runpytest_subprocess(
            "--imgconf-base-url",
            proxy.base_url,
            "--imgconf-api-key",
            proxy.api_key,
            "--imgconf-models",
            ",".join(models),
            "--imgconf-max-images",
            str(cap),
            "--imgconf-endpoint",
            "generations",
            "--imgconf-report-dir",
            str(tmp_path),
            "-p",
            "no:randomly",
            "-n",
            "2",
        )
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
    report = json.loads((tmp_path / "report.json").read_text())
    sent = {c["id"] for c in report["cases"] if c["response"] is not None}
    skipped = {c["id"] for c in report["cases"] if c["response"] is None}
    assert sum(negatives[i].images for i in sent & set(negatives)) > 4 * cap
    # Beyond what the plan cut, only invalid cases that would cost more than one image.
    assert all(negatives[i].images > 1 for i in skipped - {c.id for c in plan.cut})
    assert proxy.stats.images <= cap and report["budget"]["spent"]["images"] <= cap


def test_a_cost_cap_never_admits_images_of_unknown_price():
    capped = Budget(max_cost=10.0)
    assert not capped.fits(invalid(0, images=1, cost=None))
    assert capped.fits(invalid(1, images=0, cost=None))
    both = Budget(max_cost=10.0, max_images=5)
    assert both.fits(invalid(2, images=1, cost=None))


def test_a_cost_cap_over_unpriced_models_is_refused_at_start(tmp_path: Path, capsys):
    args = ["run", "--report-dir", str(tmp_path), "--max-cost", "0"]
    assert main_entry([*args, "--models", "gpt-image-2,dall-e-3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gpt-image-2" in err and "--max-images" in err
    assert not (tmp_path / "report.json").exists()
    # Bounded by images too, it runs.
    assert main_entry([*args, "--models", "gpt-image-2", "--max-images", "0"]) == 3


def test_a_zero_cost_cap_generates_nothing_even_where_everything_is_accepted(imgconf_run):
    quirks = ("accept-n-out-of-range", "dall-e-3-multi", "no-auth")
    with start_reference_server(quirks=quirks) as server:
        status, report = imgconf_run("--max-cost", "0", "--models", "dall-e-3", target=server)
    assert status == 3
    assert all(case["response"] is None for case in report["cases"])
    assert report["budget"]["spent"]["images"] == 0


def test_the_pacer_spaces_requests_and_images_evenly():
    from conformance.contract.profiles import Rate
    from conformance.engine.runner import Pacer

    async def go() -> list[float]:
        pacer = Pacer(Rate(requests_per_minute=600, images_per_minute=300))
        loop = asyncio.get_running_loop()
        start = loop.time()
        times = []
        for index in range(4):
            case = invalid(index, images=1)
            accepted = Case(**{**case.__dict__, "expect": "accept"})
            await pacer.wait(accepted)
            times.append(loop.time() - start)
        return times

    times = asyncio.run(go())
    # 300 images a minute: one every 0.2 s, tighter than 600 requests a minute.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.17 < gap < 0.35 for gap in gaps), gaps


@pytest.mark.parametrize(
    ("text", "ok"),
    [("60", True), ("60,5", True), (",5", True), ("0", False), ("x", False), ("5,-1", False)],
)
def test_rate_flag_and_profile_field_are_checked(text, ok, tmp_path, capsys):
    from conformance.contract.profiles import Rate

    if ok:
        Rate.parse(text)
    else:
        with pytest.raises(ValueError):
            Rate.parse(text)
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\nmodels: [dall-e-2]\nrate: {requests_per_minute: 0}\n")
    assert main_entry(["plan", "--profile", str(profile)]) == 2
    assert "rate" in capsys.readouterr().err


def test_a_503_that_may_have_generated_is_retried_only_on_a_fresh_reservation():
    """A server may generate and then answer 503: the retry reserves again, and both keep."""

    def answers():
        yield httpx.Response(503, headers={"retry-after": "0"}, json=REFUSAL)
        yield httpx.Response(400, json=REFUSAL)

    roomy = Budget(max_images=6)
    _, calls = execute([invalid(0)], answers(), roomy)
    assert calls == 2 and roomy.images == 3  # the 503 kept 3; the refused retry gave 3 back
    tight = Budget(max_images=3)
    results, calls = execute([invalid(0)], answers(), tight)
    assert calls == 1 and tight.images == 3  # no room to send it again: not sent again
    assert results[0].reason == "throttled"


def test_a_server_that_generates_then_fails_is_billed_no_more_than_the_cap():
    generated = 0

    def handler(request):
        nonlocal generated
        generated += json.loads(request.content)["n"] - 10
        return httpx.Response(502, text="bad gateway")

    budget = Budget(max_images=7)
    execute([invalid(i) for i in range(10)], handler, budget, concurrency=4)
    assert generated <= 7 and budget.images <= 7
