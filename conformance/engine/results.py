"""What a run observed and concluded: exchanges, findings, case results, the run.

The transport fills :class:`Exchange`, the checks turn an exchange into a :class:`CaseResult`,
the runner gathers them in a :class:`RunResult`, and every report format, the HAR recorder and
the regression diff read only these types. Nothing here holds the API key: the transport
redacts it before an exchange is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..generation.cases import Case

__all__ = [
    "CaseResult",
    "Exchange",
    "Finding",
    "ImageInfo",
    "Outcome",
    "Reason",
    "RunResult",
    "blocks",
    "judged_outcome",
]


class Outcome(StrEnum):
    """A case's verdict. FAIL means a MUST rule broke; WARN only SHOULD rules; PASS that the
    case's own rule was seen held; NOT_OBSERVED that it was not seen at all (with a
    :class:`Reason`): cut by the budget, throttled, refused auth, interrupted, ..."""

    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    NOT_OBSERVED = "not_observed"


class Reason(StrEnum):
    """Why a rule or a case was not observed. ``schemas/rules.yaml`` (``not_observed``) declares
    each with whether it blocks a PASS; the contract loader holds the two to each other."""

    BUDGET = "budget"
    NOT_APPLICABLE = "not_applicable"
    THROTTLED = "throttled"
    AUTH_REFUSED = "auth_refused"
    NOT_FOUND = "not_found"
    SERVER_ERROR = "server_error"
    TRANSPORT = "transport"
    NO_CONTROL = "no_control"
    NOT_RECORDED = "not_recorded"
    INTERNAL_ERROR = "internal_error"
    INTERRUPTED = "interrupted"


def blocks(reason: str) -> bool:
    """Whether a MUST rule unobserved for this reason keeps a run from PASS."""
    from ..contract.loader import load_contract

    declared = load_contract().reasons.get(reason)
    return True if declared is None else declared.blocks


@dataclass
class Finding:
    """One broken rule in one answer."""

    rule: str
    level: str
    message: str


def judged_outcome(findings: Sequence[Finding]) -> Outcome:
    """The outcome of a case's findings: FAIL on a MUST finding, WARN on others only, else PASS
    (``checks.conclude`` then makes a PASS whose own rule went unobserved NOT_OBSERVED).

    One place, so a live run and a replay that leaves some rules out conclude alike.
    """
    if any(f.level == "MUST" for f in findings):
        return Outcome.FAIL
    return Outcome.WARN if findings else Outcome.PASS


@dataclass
class ImageInfo:
    """What one returned image turned out to be (read from its header; pixels only for alpha)."""

    index: int
    #: ``b64``, ``url`` or ``stream`` (a completed stream event); ``partial`` for partial images.
    source: str
    format: str | None = None
    width: int | None = None
    height: int | None = None
    has_alpha: bool | None = None
    byte_size: int = 0
    #: True when every image rule held for it.
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    #: A small PNG/JPEG thumbnail for the report gallery (None when not kept).
    thumbnail: bytes | None = None
    url: str | None = None


@dataclass
class Exchange:
    """One HTTP exchange as sent and received, with the key already redacted.

    ``response_body`` is what was read, at most the body cap; ``truncated`` says it was cut.
    ``error`` names a transport failure (``timeout``, ``connection``, ``too_large``,
    ``protocol``) when there is no complete answer.
    """

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    started: float = 0.0
    elapsed: float = 0.0
    error: str | None = None
    truncated: bool = False
    #: False only when the request surely never reached the server (the connection could not
    #: be made): what the budget may give back.
    sent: bool = True
    #: Image URLs fetched for this exchange (without the key).
    fetches: list[Exchange] = field(default_factory=list)
    #: Earlier attempts answered 429/503 and retried.
    retries: int = 0
    #: Those earlier attempts: ``{"status": 429, "retry_after": seconds or None}`` each; and
    #: ``{"error": "connection", "reconnected": True, ...}`` when a kept-alive connection
    #: dropped the request before any answer and it was sent again on a fresh one.
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.response_headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def content_encoding(self) -> str:
        """The content codings the answer says it applied, in order ("" for none).

        The suite asks for ``identity``; a coding applied anyway is undone by the transport
        (``response_body`` is decoded), and this keeps the fact for the judge and a replay.
        """
        codings = self.response_headers.get("content-encoding", "").lower().split(",")
        return ", ".join(c.strip() for c in codings if c.strip() not in ("", "identity"))


@dataclass
class CaseResult:
    """The verdict on one case: outcome, the findings behind it, and what was checked."""

    case: Case
    outcome: Outcome
    findings: list[Finding] = field(default_factory=list)
    #: Rule ids that were checked on this answer (held or not): the coverage of the case.
    checked: list[str] = field(default_factory=list)
    #: Rules the case was meant to show but did not, each with its :class:`Reason`.
    unobserved: dict[str, str] = field(default_factory=dict)
    #: Why the case's own rule was not observed (set with outcome NOT_OBSERVED).
    reason: str | None = None
    status: int | None = None
    elapsed: float = 0.0
    images: list[ImageInfo] = field(default_factory=list)
    exchange: Exchange | None = None
    #: Why a case was not observed, in words (its :attr:`reason` names the kind).
    note: str = ""

    @property
    def failed_rules(self) -> list[str]:
        return [f.rule for f in self.findings if f.level == "MUST"]


@dataclass
class RunResult:
    """A whole run: where, with what, what it cost, and every case's result."""

    tool_version: str
    target: str
    profile: str
    models: list[str]
    seed: int
    started: float
    finished: float = 0.0
    results: list[CaseResult] = field(default_factory=list)
    #: Budget as asked and as spent: max_cost, max_images, images, cost, cost_unknown_images.
    budget: dict[str, Any] = field(default_factory=dict)
    #: Plan facts: case counts by origin, pairwise coverage, what the budget cut.
    plan: dict[str, Any] = field(default_factory=dict)
    #: True when the run stopped early (Ctrl-C, SIGTERM, the target stopped answering).
    incomplete: bool = False
    #: Why it stopped early, in words.
    stopped: str | None = None
    #: Set by a ``--fail-on should`` gate: warnings then fail too.
    fail_on: str = "must"
    #: The rules as the run's profile holds them (loaded by the profile's name when not set).
    rules: Mapping[str, Any] | None = None
    #: How the target's TLS was verified: ``{"verify": bool, "ca_bundle": path or None}``
    #: (None: not known, as in a replay).
    tls: dict[str, Any] | None = None
    #: How the key was sent (a :class:`~conformance.contract.reach.AuthStyle`), for the reproducers
    #: (None: the profile's, loaded by its name).
    auth: Any = None
    #: The contract the profile judges by, its declared models in it (None: loaded by the
    #: profile's name, see :meth:`contract`).
    judged_by: Any = None

    def catalogue(self) -> Mapping[str, Any]:
        """The rules as the run's profile holds them.

        A replay of a recording made with a profile file that is gone falls back to the plain
        contract.
        """
        if self.rules is None:
            from ..contract.loader import load_contract
            from ..contract.profiles import load_profile
            from ..errors import SetupError

            try:
                self.rules = load_profile(self.profile).rules()
            except (SetupError, OSError):
                self.rules = dict(load_contract().rules)
        return self.rules

    def contract(self) -> Any:
        """The contract the run's profile judges by (its declared models in it); the plain
        contract when the profile is gone, as :meth:`catalogue` falls back."""
        if self.judged_by is not None:
            return self.judged_by
        from ..contract.loader import load_contract
        from ..contract.profiles import load_profile
        from ..errors import SetupError

        try:
            return load_profile(self.profile).contract
        except (SetupError, OSError):
            return load_contract()

    @property
    def must_failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.outcome is Outcome.FAIL]

    @property
    def warnings(self) -> list[CaseResult]:
        return [r for r in self.results if r.outcome is Outcome.WARN]

    def verdict(self) -> Any:
        """The run's :class:`~conformance.engine.verdict.RunVerdict` (decided from its cells)."""
        from .verdict import decide

        return decide(self)

    @property
    def passed(self) -> bool:
        """PASS: no MUST rule failed, every model in scope judged, nothing blocking unseen."""
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        return self.verdict().exit_code
