"""What a run observed and concluded: exchanges, findings, case results, the run.

The transport fills :class:`Exchange`, the checks turn an exchange into a :class:`CaseResult`,
the runner gathers them in a :class:`RunResult`, and every report format, the HAR recorder and
the regression diff read only these types. Nothing here holds the API key: the transport
redacts it before an exchange is built.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..contract.levels import Level
from ..generation.cases import Case

if TYPE_CHECKING:
    from ..contract.loader import Contract, Rule
    from ..contract.profiles import Profile
    from ..contract.reach import AuthStyle
    from .verdict import RunVerdict

__all__ = [
    "BudgetFacts",
    "CaseResult",
    "Exchange",
    "Finding",
    "ImageInfo",
    "Level",
    "Outcome",
    "PlanFacts",
    "Reason",
    "RunResult",
    "TlsFacts",
    "TransportFailure",
    "blocks",
    "judged_outcome",
    "release",
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
    OVER_LIMIT = "over_limit"


class TransportFailure(StrEnum):
    """Why an exchange has no complete answer (:attr:`Exchange.error`)."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    PROTOCOL = "protocol"
    TOO_LARGE = "too_large"
    ENCODING = "encoding"
    BLOCKED_ADDRESS = "blocked_address"
    SCHEME = "scheme"


#: The failures that say the target itself stopped answering (a streak of them stops a run).
TARGET_SILENT = frozenset(
    {
        TransportFailure.TIMEOUT,
        TransportFailure.CONNECTION,
        TransportFailure.PROTOCOL,
        TransportFailure.TOO_LARGE,
    }
)


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
    if any(f.level == Level.MUST for f in findings):
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
    ``error`` names a :class:`TransportFailure` when there is no complete answer.
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
    error: TransportFailure | str | None = None
    truncated: bool = False
    #: The bound a cut body passed (``too_large``): its ``--limit`` name and its bytes.
    cut_at: tuple[str, int] | None = None
    #: False only when the request surely never reached the server (the connection could not
    #: be made): what the budget may give back.
    sent: bool = True
    #: Image URLs fetched for this exchange (without the key).
    fetches: list[Exchange] = field(default_factory=list)
    #: Bytes of the answer as read, kept when ``response_body`` is trimmed to an excerpt once
    #: judged (None: never trimmed, ``response_body`` is all of it).
    body_size: int | None = None
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
        return [f.rule for f in self.findings if f.level == Level.MUST]


#: What a passing case keeps of its answer once judged (the reports show it no excerpt).
PASSING_EXCERPT = 512


#: What a passing case's exchange keeps of its headers (names lower-cased, as recorded): the
#: content type report.json shows, and the content coding the answer was read with.
PASSING_HEADERS = frozenset({"content-type", "content-encoding"})


def _only(headers: dict[str, str], names: frozenset[str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name in names}


def release(result: CaseResult) -> None:
    """Keep of a judged case's exchange only what the reports need, so that a run's memory
    grows by little more than its verdicts: a passing case gives up its request body, its
    headers but :data:`PASSING_HEADERS`, all but the start of its answer's excerpt, and its
    case's body but what report.json shows of it
    (:meth:`~conformance.generation.cases.Case.shed`). Failed, warned and unobserved cases keep
    all of it, as the reports show them (the reproducer, the excerpt)."""
    exchange = result.exchange
    if exchange is None or result.outcome is not Outcome.PASS:
        return
    result.case = result.case.shed()
    if exchange.body_size is None:
        exchange.body_size = len(exchange.response_body)
    exchange.request_body = b""
    for kept in (exchange, *exchange.fetches):
        kept.request_headers = _only(kept.request_headers, PASSING_HEADERS)
        kept.response_headers = _only(kept.response_headers, PASSING_HEADERS)
    if len(exchange.response_body) > PASSING_EXCERPT:
        exchange.response_body = exchange.response_body[:PASSING_EXCERPT] + b"...<cut>"


@dataclass
class PlanFacts:
    """What the run set out to do: report.json's ``plan`` section.

    A live run fills every field from its plan; a replay names its recording; the pytest plugin
    gives the counts. A field left ``None`` is not written.
    """

    #: Cases in the plan (a replay: cases in the recording).
    cases: int
    #: Cases by origin (``control``, ``boundary``, ``pairwise``, ...).
    by_origin: dict[str, int] | None = None
    #: The plan's estimate if the server behaves: images, dollars, images of unknown price.
    images: int | None = None
    cost: float | None = None
    cost_unknown_images: int | None = None
    #: Pairwise coverage reached, by model.
    pairwise: dict[str, Any] | None = None
    #: The coverage the plan predicts (:func:`~conformance.generation.planning.predicted_coverage`).
    coverage: dict[str, Any] | None = None
    #: Ids of the cases the budget cut.
    cut: list[str] | None = None
    #: Why the run stopped early, in words.
    stopped: str | None = None
    #: The recording a replay judged.
    recording: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class BudgetFacts:
    """The budget as asked and as spent: report.json's ``budget`` section."""

    max_cost: float | None = None
    max_images: int | None = None
    images: int = 0
    cost: float = 0.0
    cost_unknown_images: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TlsFacts:
    """How the target's TLS was verified: report.json's ``tls`` section."""

    verify: bool
    #: The CA file given with ``--ca-bundle`` (None: the system's CAs).
    ca_bundle: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    """A whole run: where, with what, what it cost, and every case's result.

    Made by :meth:`begin` from the run's profile, which gives it everything a report needs of
    the profile (its rules, endpoint path and auth style): no reader loads the profile again.
    """

    target: str
    profile: str
    models: list[str]
    seed: int
    started: float
    #: The rules as the run's profile holds them.
    rules: Mapping[str, Rule]
    #: The profile's endpoint path and how its key is sent (for the reproducers).
    path: str
    auth: AuthStyle
    plan: PlanFacts
    tool_version: str = __version__
    finished: float = 0.0
    results: list[CaseResult] = field(default_factory=list)
    #: The budget as asked and as spent (None: not known, as in a replay).
    budget: BudgetFacts | None = None
    #: True when the run stopped early (Ctrl-C, SIGTERM, the target stopped answering).
    incomplete: bool = False
    #: Why it stopped early, in words.
    stopped: str | None = None
    #: Set by a ``--fail-on should`` gate: warnings then fail too.
    fail_on: str = "must"
    #: How the target's TLS was verified (None: not known, as in a replay).
    tls: TlsFacts | None = None
    #: The contract the profile judges by, its declared models in it (None: the contract).
    judged_by: Contract | None = None
    #: The endpoints the run tests (``generations``, ``edits``, ``variations``), and the rules
    #: of each beside generations as the profile holds them (:meth:`catalogues`).
    endpoints: tuple[str, ...] = ("generations",)
    endpoint_rules: Mapping[str, Mapping[str, Rule]] = field(default_factory=dict)

    @classmethod
    def begin(
        cls,
        profile: Profile,
        *,
        target: str,
        models: Sequence[str],
        seed: int,
        plan: PlanFacts,
        fail_on: str = "must",
        tls: TlsFacts | None = None,
        started: float | None = None,
        endpoints: Sequence[str] = ("generations",),
    ) -> RunResult:
        """The one way a run (live, replayed or a pytest session) is made; ``endpoints``: those
        it tests (a model in scope is a model x endpoint)."""
        from ..generation.showing import endpoint_rules

        return cls(
            target=target,
            profile=profile.name,
            models=list(models),
            seed=seed,
            started=time.time() if started is None else started,
            rules=profile.rules(),
            path=profile.path,
            auth=profile.auth,
            plan=plan,
            fail_on=fail_on,
            tls=tls,
            judged_by=profile.contract,
            endpoints=tuple(endpoints),
            endpoint_rules={
                name: endpoint_rules(profile, name) for name in endpoints if name != "generations"
            },
        )

    def finish(
        self,
        results: list[CaseResult],
        *,
        budget: BudgetFacts | None = None,
        stopped: str | None = None,
        incomplete: bool = False,
    ) -> RunResult:
        """Close the run with its (settled) results; ``stopped`` says why it ended early."""
        self.results = results
        self.finished = time.time()
        self.budget = budget
        if stopped is not None:
            self.stopped = self.plan.stopped = stopped
        self.incomplete = incomplete or stopped is not None
        return self

    def catalogue(self) -> Mapping[str, Rule]:
        """The rules as the run's profile holds them."""
        return self.rules

    def catalogues(self) -> Mapping[str, Mapping[str, Rule]]:
        """The rules of each endpoint beside generations as the run's profile holds them."""
        return self.endpoint_rules

    def contract(self) -> Contract:
        """The contract the run's profile judges by: the models it declares are in it."""
        from ..contract.loader import load_contract

        return self.judged_by if self.judged_by is not None else load_contract()

    @property
    def must_failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.outcome is Outcome.FAIL]

    @property
    def warnings(self) -> list[CaseResult]:
        return [r for r in self.results if r.outcome is Outcome.WARN]

    def verdict(self) -> RunVerdict:
        """The run's verdict (decided from its cells)."""
        from .verdict import decide

        return decide(self)

    @property
    def passed(self) -> bool:
        """PASS: no MUST rule failed, every model in scope judged, nothing blocking unseen."""
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        return self.verdict().exit_code
