"""Before anything is spent: is the target reachable as configured, and can the results be kept?

A wrong key or a base URL without ``/v1`` would otherwise run the whole plan and report a wall
of refusals, and an unwritable report directory would end a paid run in a traceback. Each of
these is bad input to the tool, so it ends as one :class:`~conformance.errors.SetupError` line
(exit 2) that says which and what to try, before the plan is sent.

The pre-flight cannot bill: it sends a body that is not JSON (no server can generate an image
from it) to the endpoint, with the run's headers and key, and reads ``GET …/models`` where the
target offers it. Answers are classified by status, content type and the error envelope only,
never by a vendor's message text:

- 400 or 422, whatever the body: the endpoint exists and the key was not refused; go on.
- 401 or 403: the key was refused.
- 404, 405, a redirect, or an HTML page / another answer that is neither JSON nor the error
  envelope: nothing like the endpoint is at this URL (with a "did you mean …/v1?" when a
  neighbouring URL answers like an OpenAI API).
- No answer at all (a hang, a reset, bytes that are not HTTP), a 5xx or a 429: the server is
  there but misbehaves. That is a *finding* for the run, not a set-up error; go on.

Only a failed TCP connection (refused, unknown host, no connection in time; to the proxy when
there is one) is "unreachable". A certificate that TLS refuses is a set-up error too: the run
would only repeat it (``--ca-bundle`` or ``--insecure`` is what to try).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..contract.loader import load_contract
from ..errors import SetupError
from ..generation.cases import ANY_MODEL, Case
from ..generation.planned import BODY_NOT_JSON
from ..redact import redactor, strip_url
from ..settings import PREFLIGHT_ANSWER_TIMEOUT, PREFLIGHT_CONNECT_TIMEOUT
from .results import Exchange
from .transport import TargetClient, TransportConfig, probe_target

__all__ = [
    "AuthWatch",
    "check_target",
    "check_writable",
    "classify",
]

#: The body of the pre-flight: not JSON, so nothing can be generated from it.
NOT_JSON = b"{"
_REFUSED = frozenset({401, 403})
#: Answers to a body that is not JSON which prove the endpoint is there and the key passed.
_UNDERSTOOD = frozenset({400, 422})

# What one pre-flight answer says about the set-up.
ENDPOINT, REFUSED, WRONG_PATH, UNSURE = "endpoint", "refused", "wrong_path", "unsure"


# --- files -------------------------------------------------------------------------------


def check_writable(report_dir: Path, record: Path | None = None) -> None:
    """Make sure the reports (and the recording) can be written before anything is sent.

    The report directory is created when missing; a file is created and removed in it (and
    in the recording's directory) so that permissions, a read-only file system or a path
    through a regular file show up now, as one line, rather than after a paid run.
    """
    _check_directory(Path(report_dir), "--report-dir")
    if record is not None:
        record = Path(record)
        if record.is_dir():
            raise SetupError(f"--record: {record} is a directory, not a file")
        _check_directory(record.parent, "--record")


def _check_directory(directory: Path, flag: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise SetupError(
            f"{flag}: cannot create {directory}: it or a parent of it is a file, not a directory"
        ) from None
    except OSError as exc:
        raise SetupError(f"{flag}: cannot create {directory} ({_reason(exc)})") from None
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".imgconf-write-test-")
    except OSError as exc:
        raise SetupError(f"{flag}: cannot write in {directory} ({_reason(exc)})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def _reason(exc: OSError) -> str:
    return (exc.strerror or exc.__class__.__name__).lower()


# --- the target ----------------------------------------------------------------------------


def _not_json_case() -> Case:
    return Case(
        id="preflight.not_json",
        model=ANY_MODEL,
        kind="probe",
        rule=BODY_NOT_JSON.id,
        level="MUST",
        expect="reject",
        raw=NOT_JSON,
        title="pre-flight: a body that is not JSON",
    )


async def check_target(config: TransportConfig) -> None:
    """Raise SetupError when the target is unreachable, refuses the key or is not at this URL.

    Sends one request that cannot bill, and up to five more only to word a wrong URL's hint.
    Anything it cannot classify lets the run go on: a misbehaving server is the run's finding.
    Every answer is read at the error cap: none of them carries an image.
    """
    # Through a proxy, the proxy is what must be listening (the target may be out of reach).
    try:
        await probe_target(
            config.proxy or config.base_url, timeout=min(config.timeout, PREFLIGHT_CONNECT_TIMEOUT)
        )
    except SetupError as exc:
        flag = "--proxy" if config.proxy else "--base-url"
        raise SetupError(f"{exc}: check {flag} and that the server is running") from None
    quick = replace(
        config,
        timeout=min(config.timeout, PREFLIGHT_ANSWER_TIMEOUT),
        retries=0,
        body_cap=config.error_cap,
    )
    async with TargetClient(quick) as transport:
        answer = await transport.send(_not_json_case())
        refused = [a["reason"] for a in answer.attempts if a.get("error") == "tls"]
        if refused:
            raise SetupError(
                f"the target's TLS certificate was not accepted ({refused[0]}): give its CA "
                "with --ca-bundle FILE, or --insecure to skip the check"
            )
        if answer.status == 407:
            raise SetupError(_proxy_auth_line(config.proxy))
        verdict = classify(answer)
        if verdict == REFUSED:
            raise SetupError(_refused_line(transport, answer))
        if verdict == WRONG_PATH:
            raise SetupError(await _wrong_path_line(transport, quick, answer))


def classify(exchange: Exchange) -> str:
    """What the answer to the not-JSON body says: ENDPOINT, REFUSED, WRONG_PATH or UNSURE."""
    status = exchange.status
    if exchange.error is not None or status is None:
        return UNSURE  # a hang, a reset, bytes that are not HTTP: the run's finding
    if status in _UNDERSTOOD:
        return ENDPOINT
    if status in _REFUSED:
        return REFUSED
    if status in (404, 405) or 300 <= status < 400:
        return WRONG_PATH
    if status >= 500 or status in (408, 429):
        return UNSURE  # the server is there, and failing or busy: the run's finding
    if 200 <= status < 300:
        # JSON accepted for a body that is not JSON is the server's fault; a page is not an API.
        return UNSURE if _json_body(exchange) is not None else WRONG_PATH
    return UNSURE if _is_envelope(exchange) else WRONG_PATH


def _json_body(exchange: Exchange) -> object | None:
    if _is_page(exchange):
        return None
    try:
        return json.loads(exchange.response_body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _is_page(exchange: Exchange) -> bool:
    head = exchange.response_body.lstrip()[:64].lower()
    return exchange.content_type in ("text/html", "application/xhtml+xml") or head.startswith(
        (b"<!doctype html", b"<html")
    )


def _is_envelope(exchange: Exchange) -> bool:
    """Whether the body is the contract's error envelope, ``{"error": {"message": ...}}``."""
    data = _json_body(exchange)
    return data is not None and load_contract().validator("error").is_valid(data)


def _lists_models(exchange: Exchange) -> bool:
    """Whether a ``GET …/models`` answer looks like an OpenAI API: a list, or a refusal."""
    status = exchange.status or 0
    data = _json_body(exchange) if exchange.error is None else None
    if 200 <= status < 300:
        return isinstance(data, dict) and isinstance(data.get("data"), list)
    return status in _REFUSED and _is_envelope(exchange)


def _what(exchange: Exchange) -> str:
    """The answer in a few words, from its status and content type only."""
    status = exchange.status
    if 300 <= (status or 0) < 400:
        location = exchange.response_headers.get("location")
        return f"a redirect ({status})" + (f" to {strip_url(location)}" if location else "")
    if _is_page(exchange):
        return f"an HTML page ({status})"
    if status in (404, 405):
        return str(status)
    kind = exchange.content_type or "no content type"
    return f"{status}, {kind}, not an API's error"


def _proxy_auth_line(proxy: str | None) -> str:
    """A 407 comes from a proxy, never from an image API: the run's own way out is at fault."""
    if proxy:
        return (
            "the proxy asks for credentials (407 Proxy Authentication Required): give them in "
            "--proxy's URL, http://USER:PASSWORD@HOST:PORT"
        )
    return (
        "a proxy between here and the target asks for credentials (407 Proxy Authentication "
        "Required): pass it with --proxy http://USER:PASSWORD@HOST:PORT"
    )


def _refused_line(transport: TargetClient, answer: Exchange) -> str:
    endpoint = redactor().text(strip_url(transport.config.endpoint))
    extra = " (and that the key may generate images)" if answer.status == 403 else ""
    return (
        f"the target refused the API key ({answer.status} at {endpoint}): "
        f"check --api-key or OPENAI_API_KEY{extra}"
    )


async def _wrong_path_line(
    transport: TargetClient, config: TransportConfig, answer: Exchange
) -> str:
    endpoint = redactor().text(strip_url(config.endpoint))
    head = f"no image endpoint at {endpoint} ({redactor().text(_what(answer))})"
    for base in _neighbours(config):
        if await _answers_like_the_api(replace(config, base_url=base)):
            return f"{head}: did you mean --base-url {redactor().text(strip_url(base))}?"
    if _lists_models(await transport.get("/models")):
        return (
            f"{head}, though {redactor().text(strip_url(config.url('/models')))} "
            "answers: does the target generate images, and at this path?"
        )
    return f"{head}: check --base-url (the API base as the OpenAI SDK takes it, e.g. …/v1)"


def _neighbours(config: TransportConfig) -> list[str]:
    """Base URLs a user likely meant: without the endpoint's own path (the whole endpoint
    given as the base), and with ``/v1`` added where it is missing."""
    parts = urlsplit(config.base_url)
    root = parts.path.rstrip("/")
    own = config.path.rstrip("/")
    paths = []
    if own and root.endswith(own):
        root = root[: -len(own)]
        paths.append(root)
    if not root.rstrip("/").endswith("/v1"):
        paths.append(root.rstrip("/") + "/v1")
    # On the URL's path: its query (an api-version) stays where it is.
    return [urlunsplit(parts._replace(path=path, fragment="")) for path in paths]


async def _answers_like_the_api(config: TransportConfig) -> bool:
    """One or two more requests that cannot bill: does this base URL look like OpenAI's API?"""
    async with TargetClient(config) as transport:
        endpoint, models = await asyncio.gather(
            transport.send(_not_json_case()), transport.get("/models")
        )
    return classify(endpoint) in (ENDPOINT, REFUSED) or _lists_models(models)


# --- the first answers ---------------------------------------------------------------------


class AuthWatch:
    """Stops a run whose first valid requests are all refused with 401/403.

    A server may read the body before the key, so the pre-flight's not-JSON body can pass
    with a wrong key. The first ``batch`` valid requests answered then settle it: all refused
    means the key is, and the rest of the plan would only repeat it. One that is not refused
    ends the watch.
    """

    def __init__(self, batch: int, endpoint: str) -> None:
        self.batch = batch
        self.endpoint = endpoint
        self.message: str | None = None
        self._refused: list[int] = []
        self._done = batch <= 0

    @classmethod
    def for_plan(cls, cases: Iterable[Case], concurrency: int, endpoint: str) -> AuthWatch:
        """Watching the first ``concurrency`` valid requests of a plan (fewer if it has fewer)."""
        valid = sum(1 for case in cases if case.kind == "valid" and case.auth == "valid")
        return cls(min(concurrency, valid), endpoint)

    def observe(self, case: Case, exchange: Exchange) -> str | None:
        """The set-up error once the first batch is all refused, else None."""
        if self._done or case.kind != "valid" or case.auth != "valid" or exchange.status is None:
            return None
        if exchange.status not in _REFUSED:
            self._done = True
            return None
        self._refused.append(exchange.status)
        if len(self._refused) < self.batch:
            return None
        self._done = True
        statuses = "/".join(str(s) for s in sorted(set(self._refused)))
        self.message = (
            f"the target refused the API key ({statuses} on all of the first {self.batch} valid "
            f"requests at {self.endpoint}): check --api-key or OPENAI_API_KEY, and that the key "
            "may use these models (--models)"
        )
        return self.message
