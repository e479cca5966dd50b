"""A request that a stale kept-alive connection drops is retried once on a fresh connection.

After a server crashes on one request and resets its kept-alive connection, the next request
sent on that connection gets no answer at all. That drop is the previous request's doing: the
transport sends the request once more on a fresh connection, and only a second drop is this
request's finding (``transport.connection``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from _hostile import read_request

from conformance.contract.profiles import load_profile
from conformance.engine.results import Outcome
from conformance.engine.runner import Budget, Runner
from conformance.engine.transport import TargetClient, TransportConfig
from conformance.generation.cases import Case
from conformance.server.launcher import start_reference_server

PROFILE = load_profile("openai")
KEY = "sk-reconnect-0000"
ERROR = {
    "error": {
        "message": "n must be at most 10",
        "type": "invalid_request_error",
        "param": "n",
        "code": None,
    }
}


@dataclass
class Server:
    """What the tiny server saw: connections opened and requests answered."""

    base_url: str = ""
    connections: int = 0
    answered: int = 0
    dropped: int = 0
    requests: list[bytes] = field(default_factory=list)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """The body of one request (its head is read and dropped)."""
    request = await read_request(reader)
    return request.split(b"\r\n\r\n", 1)[1]


@asynccontextmanager
async def stale_keep_alive_server(*, always_drop: bool = False) -> AsyncIterator[Server]:
    """Answers the first request of each connection (keeping it alive), then drops that
    connection as soon as the next request arrives on it, without answering: what a server
    that crashed after its answer left behind. ``always_drop`` drops every request."""
    state = Server()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            served = 0
            while True:
                body = await _read_request(reader)
                state.requests.append(body)
                if always_drop or served:
                    state.dropped += 1
                    return
                payload = json.dumps(ERROR).encode()
                writer.write(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
                state.answered += 1
                served += 1
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    async with server:
        yield state


def invalid_case(index: int) -> Case:
    return Case(
        id=f"n{index}",
        model="dall-e-2",
        kind="invalid",
        rule="request.n.max",
        level="MUST",
        expect="reject",
        body={"model": "dall-e-2", "prompt": f"p{index}", "n": 11},
        images=11,
        cost=0.2,
    )


def run_cases(count: int, *, always_drop: bool = False, max_images: int = 22):
    async def go():
        async with stale_keep_alive_server(always_drop=always_drop) as server:
            config = TransportConfig(server.base_url, api_key=KEY, timeout=5)
            budget = Budget(max_images=max_images)
            async with TargetClient(config) as transport:
                runner = Runner(transport, PROFILE, concurrency=1, budget=budget)
                results = await runner.run([invalid_case(i) for i in range(count)])
            return server, results, budget

    return asyncio.run(go())


def test_a_request_on_a_connection_dropped_after_the_previous_answer_gets_its_own_verdict():
    server, results, budget = run_cases(3)
    # The second request went out on the first one's kept-alive connection and was dropped
    # there; sent again on a fresh connection, it got its own answer.
    assert [r.outcome for r in results] == [Outcome.PASS] * 3, [r.findings for r in results]
    assert all(r.status == 400 for r in results)
    assert server.answered == 3 and server.dropped == 1
    assert [json.loads(b)["prompt"] for b in server.requests] == ["p0", "p1", "p1", "p2"]
    first, second, third = (r.exchange for r in results)
    assert first.attempts == [] and third.attempts == []
    assert second.attempts[0]["reconnected"] is True and second.retries == 0
    # The dropped try may have reached the server: it keeps its reservation, and the resend
    # took one of its own, given back when it was refused.
    assert budget.images == 11 and budget.in_flight == 0


def test_a_resend_that_does_not_fit_the_budget_is_not_sent():
    server, results, budget = run_cases(2, max_images=11)
    assert [json.loads(b)["prompt"] for b in server.requests] == ["p0", "p1"]
    assert [f.rule for f in results[1].findings] == ["transport.connection"]
    assert budget.images == 11 and budget.in_flight == 0


def test_a_second_drop_on_a_fresh_connection_is_the_finding():
    server, results, _ = run_cases(2, always_drop=True)
    for result in results:
        assert result.outcome is Outcome.FAIL
        assert [f.rule for f in result.findings] == ["transport.connection"]
    # A request that opened its own connection and was dropped is not sent again.
    assert server.dropped == server.connections == len(results)


def test_the_reset_quirk_is_still_a_connection_finding():
    """The reference server's ``reset`` quirk drops every request to the endpoint: on a fresh
    connection or a kept-alive one, concurrently, each case is a ``transport.connection``."""
    plan = [invalid_case(i) for i in range(12)]

    async def go():
        with start_reference_server(quirks=("reset",), mode="thread") as server:
            config = TransportConfig(server.base_url, api_key=server.api_key, timeout=10)
            async with TargetClient(config) as transport:
                runner = Runner(transport, PROFILE, concurrency=4, failure_streak=100)
                return await runner.run(plan)

    for result in asyncio.run(go()):
        assert result.outcome is Outcome.FAIL
        assert [f.rule for f in result.findings] == ["transport.connection"]
