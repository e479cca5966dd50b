"""Malformed credentials: sent as planned, judged at the contract's levels, refused by the
reference server on every path.

A malformed ``Authorization`` (Bearer with no token, another scheme) MUST be refused with a 4xx
(``auth.wrong``); 401 is the SHOULD (``auth.status_401``). A missing or wrong key stays 401 MUST.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx
from test_checks import (
    BASE,
    ENDPOINT,
    KEY,
    error,
    gpt_answer,
    gpt_body,
    make_case,
    rules_of,
    run,
)
from test_reference_server import PATH, body_for

from conformance.engine.results import Outcome
from conformance.engine.transport import WRONG_KEY, TargetClient, TransportConfig
from conformance.generation.cases import MALFORMED_AUTH, Case
from conformance.reports.reproducer import curl_command


def auth_case(auth: str, **fields: object) -> Case:
    rule = "auth.missing" if auth == "missing" else "auth.wrong"
    return make_case(gpt_body(**fields), kind="probe", rule=rule, expect="reject", auth=auth)


def sent_headers(auth: str, api_key: str | None = KEY) -> httpx.Headers:
    seen: list[httpx.Request] = []

    async def go() -> None:
        with respx.mock() as mock:
            mock.post(ENDPOINT).side_effect = lambda r: seen.append(r) or error(401, param=None)
            async with TargetClient(TransportConfig(BASE, api_key=api_key)) as transport:
                await transport.send(auth_case(auth))

    asyncio.run(go())
    return seen[0].headers


# --- what is sent -----------------------------------------------------------------------------


def test_a_blank_bearer_sends_the_scheme_alone() -> None:
    assert sent_headers("blank-bearer")["authorization"] == "Bearer"


def test_another_scheme_carries_the_real_key_so_a_scheme_blind_server_shows() -> None:
    assert sent_headers("other-scheme")["authorization"] == f"Basic {KEY}"
    assert sent_headers("other-scheme", api_key=None)["authorization"] == f"Basic {WRONG_KEY}"


def test_the_reproducer_sends_the_same_header() -> None:
    url = "http://127.0.0.1:9/v1/images/generations"
    assert "-H 'Authorization: Bearer' " in curl_command(auth_case("blank-bearer"), url)
    assert '"Authorization: Basic $OPENAI_API_KEY"' in curl_command(auth_case("other-scheme"), url)


# --- how it is judged -------------------------------------------------------------------------


@pytest.mark.parametrize("auth", MALFORMED_AUTH)
def test_a_malformed_header_must_be_refused_and_should_get_401(auth: str) -> None:
    case = auth_case(auth)
    assert run(case, error(401, param=None)).outcome is Outcome.PASS
    for status in (400, 403):
        result = run(case, error(status, param=None))
        assert rules_of(result, "SHOULD") == {"auth.status_401"}, result.findings
        assert not rules_of(result, "MUST") and result.outcome is Outcome.WARN
    accepted = run(case, httpx.Response(200, json=gpt_answer()))
    assert rules_of(accepted) == {"auth.wrong"} and rules_of(accepted, "MUST") == {"auth.wrong"}


@pytest.mark.parametrize("auth", ["missing", "wrong"])
def test_a_missing_or_wrong_key_still_needs_401_and_is_not_held_to_the_should(auth: str) -> None:
    case = auth_case(auth)
    assert "auth.status_401" not in run(case, error(401, param=None)).checked
    assert f"auth.{auth}" in rules_of(run(case, error(403, param=None)), "MUST")


# --- the reference server refuses every way, streamed or not ----------------------------------

HEADERS = {
    "missing": "",
    "wrong": "Bearer sk-not-the-key-0000",
    "blank-bearer": "Bearer",
    "other-scheme": None,  # the right key under Basic, filled in below
    "token-scheme": None,
}


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("way", sorted(HEADERS))
def test_the_reference_server_refuses_with_401(
    way: str, stream: bool, lenient: bool, reference_client, reference_api_key: str
) -> None:
    client = reference_client(lenient=lenient)
    header = HEADERS[way]
    if header is None:
        header = f"{'Basic' if way == 'other-scheme' else 'Token'} {reference_api_key}"
    body = body_for("gpt-image-1", stream=True) if stream else body_for("gpt-image-1")
    response = client.post(PATH, json=body, headers={"Authorization": header})
    assert response.status_code == 401, response.text[:200]
    assert response.json()["error"]["message"]
    assert client.post(PATH, json=body).status_code == 200
