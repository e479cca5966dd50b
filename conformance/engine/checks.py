"""Judging one exchange: which rules of the contract the answer kept and which it broke.

:func:`judge` is pure: it reads the case, the exchange (with image URLs already fetched into
``exchange.fetches`` by the transport) and the profile, and returns a
:class:`~conformance.engine.results.CaseResult`. No I/O, so a recording can be re-judged later with
the rules of the day. Each answer rule is registered once in :data:`ANSWER_CHECKS` under its id
in ``schemas/rules.yaml``, with the catalogue's ``shown_by`` declaration of which answers show
it beside it; each rule family has one function here that judges its rules through those
entries. Rules are reported at the level the *profile* holds them, so a vendor profile that
raises a SHOULD to a MUST changes the verdict without changing the code.

Every rule judged is listed in ``CaseResult.checked`` (held or not): that is the coverage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..contract.levels import Level
from ..contract.loader import (
    GENERATIONS,
    SERVER_CHOICE,
    ContractError,
    ModelSpec,
    Rule,
    load_contract,
    parse_wxh,
)
from ..contract.profiles import Profile
from ..contract.registry import Registry
from ..generation.cases import ANY_MODEL, CONTROL_ORIGIN, MALFORMED_AUTH, Case
from ..generation.coverage import (
    aimed_rules,
    answering_model,
    case_spec,
    expected_param,
)
from ..generation.showing import (
    BASE64,
    URL,
    Answer,
    Showing,
    delivery,
    rule_applies,
    showings,
    streams,
)
from ..settings import (
    MAX_EVENTS,
    MAX_ITEMS,
    MAX_JSON_CONTAINERS,
    MAX_STREAM_EVENTS,
    STREAM_EVENT_CAP,
)
from .answer_size import AnswerSize
from .base64_strict import decode_base64
from .image_facts import GalleryOffer, GalleryPicks, inspect_image
from .json_text import container_bound, loads_lifting_base64
from .results import (
    CaseResult,
    Exchange,
    Finding,
    ImageInfo,
    Outcome,
    Reason,
    TransportFailure,
    judged_outcome,
)

__all__ = [
    "ANSWER_CHECKS",
    "ANSWER_RULES",
    "AnswerCheck",
    "SSEParser",
    "judge",
    "judge_exchange",
]

# --- the answer rules ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AnswerCheck:
    """One answer rule the judge holds answers to, and when it applies.

    ``showing`` is the rule's ``shown_by`` declaration in ``rules.yaml``: which answers show it
    and to which requests. The plan predicts its coverage from the same declaration, so the
    rules a case is expected to show and the rules the judge checks cannot drift apart.
    """

    id: str
    showing: Showing

    def applies(self, asked: _Asked, rules: Mapping[str, Rule], model: str | None) -> bool:
        """Whether the rule is held for this request: the model's rule, and the request asks
        what it needs (``image.alpha`` a transparent background, say)."""
        return rule_applies(rules, self.id, model) and self.showing.asked_by(asked.body, asked.spec)


#: Every answer rule :func:`judge` implements, by id: one entry each, declared in rules.yaml.
ANSWER_CHECKS: Registry[AnswerCheck] = Registry("engine")


def _answer_rule(rule_id: str) -> AnswerCheck:
    """Register the check of ``rule_id``, with the applicability the catalogue declares."""
    showing = showings().get(rule_id)
    if showing is None:
        raise ContractError(f"answer rule {rule_id!r} has no shown_by in rules.yaml")
    return ANSWER_CHECKS.add(rule_id, AnswerCheck(rule_id, showing))


# The case's own rules, judged on the answer's status (:func:`check_status`).
VALID_ACCEPTED = _answer_rule("request.valid.accepted")
UNSUPPORTED_PARAM = _answer_rule("request.unsupported_param")
MODEL_DEFAULT = _answer_rule("request.model.default")
AUTH_MISSING = _answer_rule("auth.missing")
AUTH_WRONG = _answer_rule("auth.wrong")
AUTH_STATUS_401 = _answer_rule("auth.status_401")
# A 2xx JSON answer and its items.
RESPONSE_CONTENT_TYPE = _answer_rule("response.content_type")
RESPONSE_SCHEMA = _answer_rule("response.schema")
RESPONSE_DATA_COUNT = _answer_rule("response.data.count")
RESPONSE_B64_JSON = _answer_rule("response.b64_json")
RESPONSE_URL = _answer_rule("response.url")
RESPONSE_URL_FETCH = _answer_rule("response.url.fetch")
# Each image, in a JSON answer or a stream.
IMAGE_DECODES = _answer_rule("image.decodes")
IMAGE_FORMAT = _answer_rule("image.format")
IMAGE_SIZE = _answer_rule("image.size")
IMAGE_ALPHA = _answer_rule("image.alpha")
# A 2xx event stream.
STREAM_CONTENT_TYPE = _answer_rule("stream.content_type")
STREAM_EVENT_SCHEMA = _answer_rule("stream.event.schema")
STREAM_PARTIAL_COUNT = _answer_rule("stream.partial.count")
STREAM_COMPLETED = _answer_rule("stream.completed")
# What a JSON answer (or a stream's completed events) carries beyond the images.
USAGE_SCHEMA = _answer_rule("response.usage.schema")
USAGE_PRESENT = _answer_rule("response.usage.present")
USAGE_TOTAL = _answer_rule("response.usage.total")
REVISED_PROMPT = _answer_rule("response.revised_prompt")
ECHO = _answer_rule("response.echo")
NULLS = _answer_rule("response.nulls")
# Refusals.
ERROR_ENVELOPE = _answer_rule("error.envelope")
ERROR_STATUS_400 = _answer_rule("error.status_400")
ERROR_FIELDS = _answer_rule("error.fields")
ERROR_PARAM = _answer_rule("error.param")
# Every exchange: the faults it must not have.
NO_5XX = _answer_rule("transport.no_5xx")
WELL_FORMED = _answer_rule("transport.well_formed")
CONNECTION = _answer_rule("transport.connection")
TIMEOUT = _answer_rule("transport.timeout")
TRAILING_SLASH = _answer_rule("transport.trailing_slash")
RETRY_AFTER = _answer_rule("transport.retry_after")
CONTENT_ENCODING = _answer_rule("transport.content_encoding")

#: The rules about answers that :func:`judge` implements, by id (the test suite holds this
#: list and the catalogue to each other).
ANSWER_RULES = tuple(ANSWER_CHECKS)
#: The rules every completed exchange holds (it breaks at most the one naming its fault).
_ABSENCES = tuple(c for _, c in ANSWER_CHECKS.items() if Answer.EXCHANGE in c.showing.answers)

_TRANSPORT_ERRORS = {
    TransportFailure.TIMEOUT: (TIMEOUT, "no complete answer within the timeout"),
    TransportFailure.CONNECTION: (CONNECTION, "the connection was refused or dropped"),
    TransportFailure.PROTOCOL: (WELL_FORMED, "the answer is not valid HTTP"),
    TransportFailure.TOO_LARGE: (WELL_FORMED, "the answer body exceeds the size cap"),
    TransportFailure.SCHEME: (WELL_FORMED, "the request URL is not http(s)"),
    TransportFailure.ENCODING: (
        WELL_FORMED,
        "the answer's Content-Encoding is stacked, unknown or does not decode",
    ),
    TransportFailure.BLOCKED_ADDRESS: (
        RESPONSE_URL_FETCH,
        "it reaches a loopback, private, link-local or metadata address and the target is not "
        "on one (--allow-private-urls fetches it)",
    ),
}


# --- profile rules, cached ---------------------------------------------------------------

_RULES_CACHE: dict[int, tuple[Profile, dict[str, Rule]]] = {}


def _profile_rules(profile: Profile) -> dict[str, Rule]:
    """The profile's rules; cached by identity since profiles are loaded once and kept."""
    entry = _RULES_CACHE.get(id(profile))
    if entry is None or entry[0] is not profile:
        entry = (profile, profile.rules())
        _RULES_CACHE[id(profile)] = entry
    return entry[1]


class _Judgement:
    """Collects checked rules and findings for one case, at the profile's levels."""

    def __init__(self, case: Case, rules: Mapping[str, Rule], model: str | None) -> None:
        self.case = case
        self.rules = rules
        self.model = model
        self.checked: dict[str, None] = {}
        self.findings: list[Finding] = []
        self.images: list[ImageInfo] = []
        self.note = ""
        #: Why the answer cannot show the rules the case aims at (None: it can).
        self.blocked: Reason | None = None
        #: Called with each final image's index and bytes as it is judged (edits read their
        #: stamp and pixels so, without decoding the answer twice).
        self.on_output: Callable[[int, bytes], None] | None = None

    def level(self, rule_id: str) -> str:
        rule = self.rules.get(rule_id)
        if rule is not None:
            return rule.level_for(self.model)
        return self.case.level if rule_id == self.case.rule else Level.MUST

    def applies(self, check: AnswerCheck) -> bool:
        """Whether the case's model is held to the rule under the profile."""
        return rule_applies(self.rules, check.id, self.model)

    def held_to(self, check: AnswerCheck, asked: _Asked) -> bool:
        """Whether the answer to this request is held to the rule (its model, what it asks)."""
        return check.applies(asked, self.rules, self.model)

    def check(self, rule: AnswerCheck | str, ok: bool, message: str = "") -> bool:
        """Record ``rule`` as judged, held or broken. A plain id is the case's own rule.

        An answer rule the case's model is not held to under the profile (a declared model
        whose facts do not imply it) is neither judged nor recorded: a profile's claims, not
        the contract's defaults, say what its models must show.
        """
        if not isinstance(rule, str) and not self.applies(rule):
            return True
        rule_id = rule if isinstance(rule, str) else rule.id
        self.checked[rule_id] = None
        if not ok:
            self.findings.append(Finding(rule_id, self.level(rule_id), message))
        return ok


# --- what the request asked for ---------------------------------------------------------


@dataclass(frozen=True)
class _Asked:
    """What a correct answer to the request looks like."""

    spec: ModelSpec
    n: int
    #: The answer item field the images come in (:data:`BASE64` or :data:`URL`).
    delivery: str
    output_format: str
    size: tuple[int, int] | None
    stream: bool
    partial_images: int
    body: Mapping[str, Any]

    @property
    def answer_size(self) -> AnswerSize:
        """The most a conformant answer to this request holds (what tells a body cut by the
        run's own bounds from an oversized answer)."""
        return AnswerSize.of(
            self.spec,
            self.size,
            n=self.n,
            stream=self.stream,
            partial_images=self.partial_images,
            inline=self.delivery == BASE64,
        )


#: What a request of unknown shape may be answered with at most: ten of the largest images
#: imgconf reads, in base64 (a cut below that is never held against the target).
_ANY_ANSWER = AnswerSize.of(None, None, n=10, stream=False, partial_images=0, inline=True)


def _answering_model(case: Case, profile: Profile) -> str:
    return answering_model(case, profile.models, profile.contract)


def _asked(case: Case, profile: Profile, model: str | None = None) -> _Asked:
    contract = profile.contract
    spec = contract.models[model or _answering_model(case, profile)]
    body: Mapping[str, Any] = case.body if isinstance(case.body, dict) else {}

    def value(name: str) -> Any:
        """The field as asked; where the body or the model leaves it out (a field it does not
        take, or ignores, means nothing), what the model always uses, else its default."""
        got = body.get(name) if spec.takes(name) else None
        return spec.fixed.get(name, spec.default(name, contract)) if got is None else got

    n = body.get("n") if spec.takes("n") else None
    n = int(n) if isinstance(n, int | float) and not isinstance(n, bool) else 1
    fmt = value("output_format")
    size = body.get("size") if spec.takes("size") else None
    if "size" in spec.ignores and "size" in body:
        # Answered as if left out: the model's default size (a declared model's ``ignores``).
        size = spec.default_size
    wxh = parse_wxh(size) if isinstance(size, str) else None
    partial = value("partial_images") if spec.takes("partial_images") else 0
    return _Asked(
        spec=spec,
        n=n,
        delivery=delivery(body, spec),
        output_format=str(fmt),
        size=wxh,
        stream=streams(body, spec),
        partial_images=partial if isinstance(partial, int) else 0,
        body=body,
    )


# --- small helpers ----------------------------------------------------------------------


def _answer_schema(check: AnswerCheck) -> str:
    """The response schema's ``$defs`` entry a rule is judged by (its ``answer_schema``)."""
    name = check.showing.answer_schema
    if name is None:
        raise ContractError(f"rule {check.id}: shown_by names no answer_schema")
    return name


@cache
def _echo_fields() -> tuple[str, ...]:
    """The request fields an answer states as resolved: what the echo rule's schema requires,
    but ``usage`` (a rule of its own)."""
    required = load_contract().schemas["response"]["$defs"][_answer_schema(ECHO)]["required"]
    return tuple(name for name in required if name != "usage")


def _json(body: bytes) -> tuple[Any, bool]:
    """The body parsed, or (None, False). Bounded: too deep a nesting ends in RecursionError,
    and Python refuses integers of more than a few thousand digits."""
    try:
        return json.loads(body), True
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, False


def _text_excerpt(body: bytes, limit: int = 80) -> str:
    """The start of a body as text (not a bytes literal): what a reader of a finding sees."""
    text = body[: limit * 4].decode("utf-8", "replace")
    return repr(text[:limit]) if text else "(empty)"


def _error_message(body: bytes) -> str:
    data, ok = _json(body)
    if ok and isinstance(data, dict) and isinstance(data.get("error"), dict):
        message = data["error"].get("message")
        if isinstance(message, str):
            return message[:200]
    return _text_excerpt(body, 120)


def _path(error: Any) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(root)"


def _first(errors: list[Any]) -> str:
    error = errors[0]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{_path(error)}: {error.message[:200]}{more}"


# --- null in optional fields ----------------------------------------------------------------


def _subschemas(schema: Any, root: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The schema and every schema it combines (local ``$ref``, ``allOf``/``anyOf``/``oneOf``)."""
    found: list[Mapping[str, Any]] = []
    pending = [schema]
    while pending:
        node = pending.pop()
        if not isinstance(node, Mapping):
            continue
        found.append(node)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part) if isinstance(target, Mapping) else None
            pending.append(target)
        for combinator in ("allOf", "anyOf", "oneOf"):
            pending.extend(node.get(combinator, ()))
    return found


def _drop_optional_nulls(
    instance: Any, schema: Any, root: Mapping[str, Any], path: str, found: list[str]
) -> Any:
    """The instance with every ``null`` in a field its schema declares but does not require
    left out, as the SDKs read it; ``found`` gets where each was (items as ``*``).

    A field that any branch of the schema requires keeps its null, so that a null where a
    value is required is still judged by the schema.
    """
    if isinstance(instance, dict):
        parts = _subschemas(schema, root)
        required = {name for part in parts for name in part.get("required", ())}
        declared: dict[str, list[Any]] = {}
        for part in parts:
            for name, sub in part.get("properties", {}).items():
                declared.setdefault(name, []).append(sub)
        out = {}
        for name, value in instance.items():
            where = f"{path}/{name}" if path else name
            if value is None and name in declared and name not in required:
                if where not in found:
                    found.append(where)
                continue
            subs = declared.get(name)
            out[name] = (
                _drop_optional_nulls(value, {"allOf": subs}, root, where, found) if subs else value
            )
        return out
    if isinstance(instance, list):
        items = [part["items"] for part in _subschemas(schema, root) if "items" in part]
        if not items:
            return instance
        where = f"{path}/*" if path else "*"
        return [
            _drop_optional_nulls(item, {"allOf": items}, root, where, found) for item in instance
        ]
    return instance


def without_optional_nulls(answer: Any, schema_name: str) -> tuple[Any, list[str]]:
    """An answer (or stream event) with its null optional fields read as absent, and their
    paths. Only the first :data:`MAX_ITEMS` items of ``data`` are looked at; the rest are kept
    as they are (they are judged on their count alone)."""
    root = load_contract().schemas[schema_name]
    found: list[str] = []
    if isinstance(answer, dict) and isinstance(answer.get("data"), list):
        data = answer["data"]
        if len(data) > MAX_ITEMS:
            head = _drop_optional_nulls({**answer, "data": data[:MAX_ITEMS]}, root, root, "", found)
            if isinstance(head.get("data"), list):
                head["data"] = head["data"] + data[MAX_ITEMS:]
            return head, found
    return _drop_optional_nulls(answer, root, root, "", found), found


def check_nulls(v: _Judgement, found: list[str]) -> None:
    """response.nulls: optional fields are left out, not set to null (SHOULD)."""
    shown = ", ".join(found[:6]) + (f" (+{len(found) - 6} more)" if len(found) > 6 else "")
    v.check(NULLS, not found, f"optional fields set to null: {shown}")


# --- rule families ------------------------------------------------------------------------


def check_transport(
    v: _Judgement, exchange: Exchange, size: Callable[[], AnswerSize] | None = None
) -> bool:
    """transport.*: a complete HTTP answer within the timeout and the cap; no 5xx.

    These are absences: every exchange that completed holds them, and one that did not breaks
    the one it names (the others are then not observed, ``transport``). A body cut at a bound of
    the run that a conformant answer may pass (``size``: what one can hold) breaks nothing: the
    case is not observed, ``over_limit`` (:mod:`~conformance.engine.answer_size`). A 503 is read
    as throttling (it is retried like a 429), so it neither holds nor breaks
    ``transport.no_5xx``.
    """
    if exchange.error is not None:
        rule, message = _TRANSPORT_ERRORS.get(exchange.error, (WELL_FORMED, exchange.error))
        if exchange.error == TransportFailure.TOO_LARGE and exchange.cut_at is not None:
            most = _answer_size(size)
            if _cut_by_the_run(v, exchange, most):
                return False
            name, cap = exchange.cut_at
            message = (
                f"the answer body passed --limit {name} ({_mib(cap)}), more than a conformant "
                f"answer to this request can hold ({_mib(most.within(name, exchange.status))})"
            )
        v.check(rule, False, message)
        v.blocked = Reason.TRANSPORT
        return False
    status = exchange.status or 0
    encoding = exchange.content_encoding
    for rule in _ABSENCES:
        if rule is NO_5XX:
            if status != 503:
                v.check(rule, not 500 <= status < 600, f"answered {status} (a server error)")
        elif rule is CONTENT_ENCODING:
            v.check(rule, not encoding, f"the answer is {encoding}-encoded; identity was asked")
        else:
            v.check(rule, True)
    return True


def _answer_size(size: Callable[[], AnswerSize] | None) -> AnswerSize:
    """What a conformant answer holds at most; the bound of any answer when the request cannot
    tell (a judge that never asked, or a body too odd to read)."""
    if size is None:
        return _ANY_ANSWER
    try:
        return size()
    except Exception:  # a request of odd shape: assume the largest answer, blame nothing
        return _ANY_ANSWER


def _cut_by_the_run(v: _Judgement, exchange: Exchange, most: AnswerSize) -> bool:
    """Whether the body of ``exchange`` (an answer, or an image fetched for it) was cut at a
    bound of the run that a conformant one may pass (``most``): then nothing is held against
    the target, what it would have shown is not observed (``over_limit``), and the case says
    which bound to raise."""
    cut_at = exchange.cut_at
    if exchange.error != TransportFailure.TOO_LARGE or cut_at is None:
        return False
    if not most.cut_by_the_run(cut_at, exchange.status):
        return False
    name, cap = cut_at
    v.blocked = Reason.OVER_LIMIT
    v.note = (
        f"not judged: the answer passed --limit {name} ({_mib(cap)}), below what a conformant "
        f"answer may hold ({_mib(most.within(name, exchange.status))}); raise it to judge"
    )
    return True


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} bytes"


def check_retry_after(v: _Judgement, exchange: Exchange) -> None:
    """transport.retry_after: every 429 seen carries Retry-After (SHOULD)."""
    seen = [a for a in exchange.attempts if a.get("status") == 429]
    missing = [a for a in seen if a.get("retry_after") is None]
    if exchange.status == 429:
        seen.append({})
        if "retry-after" not in exchange.response_headers:
            missing.append({})
    if seen:
        v.check(RETRY_AFTER, not missing, "a 429 answer carries no Retry-After")


def check_error(v: _Judgement, exchange: Exchange, expected_param: str | None, *, validation: bool):
    """error.*: the envelope (MUST); 400, the OpenAI fields and param (SHOULD)."""
    contract = load_contract()
    data, ok = _json(exchange.response_body)
    if not v.check(
        ERROR_ENVELOPE,
        ok and not list(contract.validator("error").iter_errors(data)),
        'the error body is not {"error": {"message": "..."}}'
        + ("" if ok else " (not JSON)")
        + f": {_text_excerpt(exchange.response_body)}",
    ):
        return
    if validation:
        v.check(
            ERROR_STATUS_400,
            exchange.status == 400,
            f"a validation error is answered {exchange.status}, not 400",
        )
    missing = [e.message for e in contract.sub_validator("error", "openai-error").iter_errors(data)]
    v.check(ERROR_FIELDS, not missing, f"the error object lacks keys: {'; '.join(missing)}")
    if validation and expected_param is not None:
        got = data["error"].get("param")
        v.check(
            ERROR_PARAM,
            got == expected_param,
            f"error.param is {got!r}, expected {expected_param!r}",
        )


#: Statuses that refuse the *key*, not the request: a refusal proves no request rule.
AUTH_REFUSALS = frozenset({401, 403})


def check_status(v: _Judgement, exchange: Exchange, expected_param: str | None) -> bool:
    """The case's own rule: accepted, rejected, 401, or either, as the case expects.

    Judged as if the run's control request had been accepted; :func:`settle_controls` takes
    back what the control's own answer leaves unproven. Returns True when the answer is a 2xx
    whose body should be judged.
    """
    case = v.case
    status = exchange.status or 0
    accepted = 200 <= status < 300
    rejected = 400 <= status < 500
    if status >= 500:
        due = {"reject": "a refusal", "accept": "an answer"}.get(case.expect, "a 400 or an answer")
        if case.auth != "valid":
            due = "a refusal"
        v.check(case.rule, False, f"answered {status} where {due} was due")
        return False
    if case.auth in MALFORMED_AUTH:
        what = f"with a malformed credential ({case.title})"
        if v.check(
            case.rule, rejected, f"a request {what} is answered {status}, not refused with a 4xx"
        ):
            v.check(AUTH_STATUS_401, status == 401, f"a request {what} is answered {status}")
            check_error(v, exchange, None, validation=False)
        return False
    if case.auth != "valid":
        what = "without a key" if case.auth == "missing" else "with a wrong key"
        v.check(case.rule, status == 401, f"a request {what} is answered {status}, not 401")
        if rejected:
            check_error(v, exchange, None, validation=False)
        return False
    if status in AUTH_REFUSALS:
        # The key was refused: the answer says nothing of the request's own rule.
        v.blocked = Reason.AUTH_REFUSED
        check_error(v, exchange, None, validation=False)
        if case.expect == "accept":
            v.check(
                case.rule,
                False,
                f"refused a valid request ({status}): {_error_message(exchange.response_body)}",
            )
        return False
    if case.expect == "reject":
        if accepted:
            v.check(case.rule, False, f"accepted ({status}) a request that breaks it: {case.title}")
            return False
        v.check(case.rule, rejected, f"answered {status}; a 4xx with an error body is required")
        if rejected:
            check_error(v, exchange, expected_param, validation=True)
        return False
    if case.expect == "either":
        if accepted:
            v.check(case.rule, True)
            return True
        v.check(
            case.rule,
            status == 400,
            f"answered {status}: the request is rejected with 400 or served, nothing else",
        )
        if rejected:
            check_error(v, exchange, expected_param, validation=True)
        return False
    # expect accept
    if accepted:
        v.check(case.rule, True)
        return True
    detail = _error_message(exchange.response_body) if exchange.response_body else ""
    v.check(
        case.rule,
        False,
        f"refused a valid request ({status}){': ' + detail if detail else ''}",
    )
    if rejected:
        check_error(v, exchange, None, validation=False)
    return False


def _size_ok(asked: _Asked, width: int | None, height: int | None) -> bool:
    """The asked size; with ``auto`` or no size, one of the model's own sizes (for a model with
    custom sizes, one that keeps their rules; for a declared model that takes no size, its
    default one)."""
    if width is None or height is None:
        return False
    if asked.size is not None:
        return (width, height) == asked.size
    spec = asked.spec
    if f"{width}x{height}" in (spec.sizes or (spec.default_size,)):
        return True
    return spec.custom_sizes is not None and spec.custom_sizes.broken_limit(width, height) is None


def check_image(
    v: _Judgement,
    asked: _Asked,
    data: bytes | None,
    index: int,
    source: str,
    *,
    thumbnails: bool | GalleryPicks,
    url: str | None = None,
) -> ImageInfo:
    """image.*: decodes, in the asked format, at the asked size, with alpha when transparent.

    ``thumbnails``: True makes one for every image; a :class:`GalleryPicks` only for the images
    the gallery shows, decided once the image is judged (the decode the check made is kept
    until then, so a picked image is not decoded twice).
    """
    info = ImageInfo(index=index, source=source, byte_size=len(data or b""), url=url)
    where = f"image {index}" + (" (partial)" if source == "partial" else "")
    if data is None:
        v.check(IMAGE_DECODES, False, f"{where}: b64_json is not valid base64")
        info.ok, info.problems = False, ["not valid base64"]
        v.images.append(info)
        return info
    partial = source == "partial"
    want_alpha = not partial and v.held_to(IMAGE_ALPHA, asked)
    picks = thumbnails if isinstance(thumbnails, GalleryPicks) and not partial else None
    facts = inspect_image(
        data,
        check_alpha=want_alpha,
        thumbnail=thumbnails is True and not partial,
        keep_pixels=picks is not None,
    )
    info.format, info.width, info.height = facts.format, facts.width, facts.height
    info.has_alpha, info.thumbnail = facts.has_alpha, facts.thumbnail
    problems: list[str] = []
    if not v.check(IMAGE_DECODES, facts.decodes, f"{where}: {facts.problem}"):
        problems.append(facts.problem or "does not decode")
    elif not partial:
        if not v.check(
            IMAGE_FORMAT,
            facts.format == asked.output_format,
            f"{where}: is {facts.format or 'of unknown format'}, {asked.output_format} was asked",
        ):
            problems.append(f"format {facts.format}, asked {asked.output_format}")
        if not v.check(
            IMAGE_SIZE,
            _size_ok(asked, facts.width, facts.height),
            f"{where}: is {facts.width}x{facts.height}, "
            + (
                f"{asked.size[0]}x{asked.size[1]} was asked"
                if asked.size is not None
                else f"not one of {asked.spec.name}'s sizes (size auto or omitted)"
            ),
        ):
            problems.append(f"size {facts.width}x{facts.height}")
        see_through = facts.min_alpha is not None and facts.min_alpha < 255
        if want_alpha and not v.check(
            IMAGE_ALPHA,
            bool(facts.has_alpha) and see_through,
            f"{where}: "
            + (
                "has an alpha channel but every pixel is opaque"
                if facts.has_alpha
                else "has no alpha channel"
            )
            + "; background=transparent was asked",
        ):
            problems.append("opaque alpha" if facts.has_alpha else "no alpha channel")
    info.ok = not problems
    info.problems = problems
    if v.on_output is not None and not partial and facts.decodes:
        v.on_output(index, data)
    if picks is not None and facts.decodes:
        picks.offer(GalleryOffer(v.model, info, data, facts))
    v.images.append(info)
    return info


def _split_schema_errors(v: _Judgement, answer: Any) -> dict[str, list[Any]]:
    """Schema errors of the answer, by the rule that owns the field they are about."""
    contract = load_contract()
    echo = v.applies(ECHO)
    owners: dict[str, list[Any]] = {}
    if isinstance(answer, dict) and isinstance(answer.get("data"), list):
        data = answer["data"]
        if len(data) > MAX_ITEMS:
            # The count rule already fails such an answer; a sample keeps validation bounded.
            answer = {**answer, "data": data[:MAX_ITEMS]}
    for error in contract.validator("response").iter_errors(answer):
        top = error.absolute_path[0] if error.absolute_path else None
        if top == "usage":
            rule = USAGE_SCHEMA
        elif top in _echo_fields() and echo:
            rule = ECHO
        else:
            rule = RESPONSE_SCHEMA
        owners.setdefault(rule, []).append(error)
    return owners


def check_usage(v: _Judgement, answer: Mapping[str, Any], errors: list[Any] | None) -> None:
    """response.usage.*: present (where the profile asks), valid, totals adding up."""
    if v.applies(USAGE_PRESENT):
        v.check(USAGE_PRESENT, "usage" in answer, "the answer carries no `usage`")
    if "usage" not in answer:
        return
    v.check(USAGE_SCHEMA, not errors, (errors and f"usage: {_first(errors)}") or "")
    check_usage_total(v, answer["usage"])


def check_usage_total(v: _Judgement, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    parts = [usage.get(k) for k in ("input_tokens", "output_tokens", "total_tokens")]
    if all(isinstance(p, int) and not isinstance(p, bool) for p in parts):
        v.check(
            USAGE_TOTAL,
            parts[0] + parts[1] == parts[2],
            f"usage.total_tokens is {parts[2]}, input + output is {parts[0] + parts[1]}",
        )


def check_echo(v: _Judgement, asked: _Asked, answer: Mapping[str, Any], errors: list[Any]) -> None:
    """response.echo: GPT answers state background, output_format, size, quality as resolved."""
    if not v.applies(ECHO):
        return
    contract = load_contract()
    problems = [f"{_path(e)}: {e.message[:120]}" for e in errors]
    for error in contract.sub_validator("response", _answer_schema(ECHO)).iter_errors(answer):
        # A missing usage is response.usage.present's business, not an echo's.
        if error.validator == "required" and "'usage'" not in error.message:
            problems.append(error.message)
    for name in _echo_fields():
        want = asked.body.get(name)
        got = answer.get(name)
        if want in (None, SERVER_CHOICE) or got is None:
            continue
        if got != want:
            problems.append(f"{name} is {got!r}, {want!r} was asked")
    v.check(ECHO, not problems, "; ".join(problems))


def check_revised_prompt(v: _Judgement, answer: Mapping[str, Any]) -> None:
    if not v.applies(REVISED_PROMPT):
        return
    contract = load_contract()
    missing = [
        e
        for e in contract.sub_validator("response", _answer_schema(REVISED_PROMPT)).iter_errors(
            answer
        )
        if e.validator == "required" and "revised_prompt" in e.message
    ]
    v.check(
        REVISED_PROMPT,
        not missing,
        f"{len(missing)} item(s) carry no revised_prompt",
    )


def check_json_answer(
    v: _Judgement, exchange: Exchange, asked: _Asked, *, thumbnails: bool | GalleryPicks
):
    """response.*: a JSON ImagesResponse with exactly n images delivered as asked."""
    v.check(
        RESPONSE_CONTENT_TYPE,
        exchange.content_type == "application/json",
        f"Content-Type is {exchange.content_type or 'missing'!r}, not application/json",
    )
    containers = container_bound(exchange.response_body)
    if not v.check(
        RESPONSE_SCHEMA,
        containers <= MAX_JSON_CONTAINERS,
        f"the answer holds about {containers} JSON objects and arrays (a conformant one holds "
        f"a few dozen): not parsed",
    ):
        return
    try:
        answer, images = loads_lifting_base64(exchange.response_body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        answer, images = None, None
    if not v.check(WELL_FORMED, images is not None, "the 2xx body is not JSON"):
        return
    # A null optional field is read as absent, as the SDKs do: a SHOULD of its own, not a
    # schema failure. A required field that is null still fails the schema.
    answer, nulls = without_optional_nulls(answer, "response")
    check_nulls(v, nulls)
    owners = _split_schema_errors(v, answer)
    schema_errors = owners.get(RESPONSE_SCHEMA, [])
    v.check(RESPONSE_SCHEMA, not schema_errors, (schema_errors and _first(schema_errors)) or "")
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
        return
    data = answer["data"]
    v.check(
        RESPONSE_DATA_COUNT,
        len(data) == asked.n,
        f"data holds {len(data)} items, n={asked.n} was asked",
    )
    check_items(v, exchange, asked, data[: max(asked.n, MAX_ITEMS)], images, thumbnails=thumbnails)
    check_revised_prompt(v, answer)
    check_usage(v, answer, owners.get(USAGE_SCHEMA))
    check_echo(v, asked, answer, owners.get(ECHO, []))


def check_items(
    v: _Judgement,
    exchange: Exchange,
    asked: _Asked,
    data: list[Any],
    images: dict[str, bytes],
    *,
    thumbnails: bool | GalleryPicks,
) -> None:
    """response.b64_json / response.url / response.url.fetch, then each image (``images``: the
    base64 values already decoded while parsing, by the token that stands for each)."""
    fetches = iter(exchange.fetches)
    fetched_all = len(exchange.fetches) >= sum(
        1 for item in data if isinstance(item, dict) and isinstance(item.get(URL), str)
    )
    for index, item in enumerate(data):
        item = item if isinstance(item, dict) else {}
        url = item.get(URL)
        fetch = next(fetches, None) if isinstance(url, str) else None
        if asked.delivery == BASE64:
            b64 = item.get(BASE64)
            if v.check(
                RESPONSE_B64_JSON,
                isinstance(b64, str) and bool(b64),
                f"item {index} has no b64_json" + (" (it has a url)" if url else ""),
            ):
                image = images.pop(b64) if b64 in images else decode_base64(b64)
                check_image(v, asked, image, index, "b64", thumbnails=thumbnails)
                del image  # judged: not held while the next one is
            continue
        if not v.check(
            RESPONSE_URL,
            isinstance(url, str) and url.lower().startswith(("http://", "https://")),
            f"item {index} has no http(s) url"
            + (f" (got {str(url)[:60]!r})" if url else "")
            + (" (it has b64_json)" if BASE64 in item else ""),
        ):
            continue
        if fetch is None or not fetched_all:
            continue  # not fetched (a recording without images): not judged
        if fetch.error is not None:
            if _cut_by_the_run(v, fetch, asked.answer_size):
                continue
            _rule, reason = _TRANSPORT_ERRORS.get(fetch.error, ("", fetch.error))
            v.check(RESPONSE_URL_FETCH, False, f"item {index}: fetching the url failed: {reason}")
            continue
        if not v.check(
            RESPONSE_URL_FETCH,
            fetch.status == 200 and bool(fetch.response_body),
            f"item {index}: fetching the url without the key gave {fetch.status}",
        ):
            continue
        check_image(
            v, asked, fetch.response_body, index, "url", thumbnails=thumbnails, url=fetch.url
        )


class SSEParser:
    """An incremental text/event-stream parser (WHATWG rules: data lines, blank-line dispatch).

    Fed bytes in any chunking; yields the ``data`` of each complete event. An event larger than
    the cap raises ValueError instead of growing without bound.
    """

    def __init__(self, cap: int = STREAM_EVENT_CAP) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._size = 0
        self._cap = cap

    def feed(self, chunk: bytes) -> Iterator[str]:
        # Lines are cut from one buffer by position, so a chunk of many short lines is scanned
        # once (slicing the rest off after each line would copy it once per line).
        buffer, self._buffer = self._buffer, b""
        search = max(0, len(buffer) - 1)  # the kept tail has no line end but a final CR
        buffer += chunk
        start = 0
        while True:
            lf = buffer.find(b"\n", search)
            cr = buffer.find(b"\r", search, len(buffer) if lf == -1 else lf)
            if cr != -1:
                if cr + 1 == len(buffer):
                    break  # a CR at the end may be half of CRLF
                end, skip = cr, 2 if buffer[cr + 1 : cr + 2] == b"\n" else 1
            elif lf != -1:
                end, skip = lf, 1
            else:
                break
            line, start = buffer[start:end], end + skip
            search = start
            event = self._line(line)
            if event is not None:
                yield event
        self._buffer = buffer[start:]
        if len(self._buffer) > self._cap:
            raise ValueError("an event line exceeds the cap")

    def close(self) -> Iterator[str]:
        """Flush: an event without its final blank line still counts (some servers end so)."""
        if self._buffer:
            event = self._line(self._buffer)
            self._buffer = b""
            if event is not None:
                yield event
        if self._data:
            yield self._dispatch()

    def _line(self, line: bytes) -> str | None:
        if not line:
            return self._dispatch() if self._data else None
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._size += len(value)
            if self._size > self._cap:
                raise ValueError("an event exceeds the cap")
            self._data.append(value)
        return None

    def _dispatch(self) -> str:
        data = b"\n".join(self._data).decode("utf-8", "replace")
        self._data, self._size = [], 0
        return data


@dataclass(frozen=True)
class StreamKinds:
    """What an endpoint's event stream is made of: its event types, the schema its events are
    held to, and the rules of that schema and of the completed events (generations' own, or
    an edit stream's, whose events differ by type only)."""

    partial: str
    completed: str
    validator: Any
    schema_rule: AnswerCheck
    completed_rule: AnswerCheck


def generation_stream() -> StreamKinds:
    return StreamKinds(
        partial="image_generation.partial_image",
        completed="image_generation.completed",
        validator=load_contract().validator("stream_event"),
        schema_rule=STREAM_EVENT_SCHEMA,
        completed_rule=STREAM_COMPLETED,
    )


def check_stream(
    v: _Judgement,
    exchange: Exchange,
    asked: _Asked,
    *,
    thumbnails: bool | GalleryPicks,
    kinds: StreamKinds | None = None,
) -> None:
    """stream.*: an event stream of valid events, few enough partials, one completed per image."""
    kinds = kinds or generation_stream()
    if not v.check(
        STREAM_CONTENT_TYPE,
        exchange.content_type == "text/event-stream",
        f"a stream: true request is answered {exchange.content_type or 'without Content-Type'}",
    ):
        return
    validator = kinds.validator
    parser = SSEParser()
    # Events are counted as they arrive: the first MAX_EVENTS are kept and judged one by one,
    # later ones only counted by type (a legal stream has at most 4 per image), and reading
    # stops at MAX_STREAM_EVENTS, so a flood costs bounded time and memory.
    events: list[str] = []
    bad: list[str] = []
    nulls: list[str] = []
    partials = completed = seen = 0
    last_type = None
    body = exchange.response_body

    def arriving() -> Iterator[str]:
        for start in range(0, len(body), 1 << 16):
            yield from parser.feed(body[start : start + (1 << 16)])
        yield from parser.close()

    try:
        for raw in arriving():
            seen += 1
            if seen > MAX_STREAM_EVENTS:
                bad.append(
                    f"more than {MAX_STREAM_EVENTS} events (a stream has at most "
                    f"{4 * max(1, asked.n)} here): not read further"
                )
                break
            if len(events) < MAX_EVENTS:
                events.append(raw)
            elif kinds.partial in raw:
                partials, last_type = partials + 1, kinds.partial
            elif kinds.completed in raw:
                completed, last_type = completed + 1, kinds.completed
    except ValueError as exc:
        v.check(WELL_FORMED, False, f"the event stream is malformed: {exc}")
        return
    tail_type = last_type
    for number, raw in enumerate(events):
        if raw.strip() == "[DONE]":
            continue
        event, ok = _json(raw.encode())
        if not ok:
            bad.append(f"event {number} is not JSON: {raw[:60]!r}")
            continue
        event, found = without_optional_nulls(event, "stream_event")
        nulls.extend(f"event {number}: {where}" for where in found)
        errors = list(validator.iter_errors(event))
        if errors:
            bad.append(f"event {number}: {_first(errors)}")
            continue
        last_type = event["type"]
        data = decode_base64(event[BASE64])
        if last_type == kinds.partial:
            check_image(v, asked, data, partials, "partial", thumbnails=False)
            partials += 1
        else:
            check_image(v, asked, data, completed, "stream", thumbnails=thumbnails)
            completed += 1
            check_usage_total(v, event.get("usage"))
    last_type = tail_type or last_type
    v.check(kinds.schema_rule, not bad, "; ".join(bad[:3]))
    check_nulls(v, nulls)
    allowed = asked.partial_images * asked.n
    v.check(
        STREAM_PARTIAL_COUNT,
        partials <= allowed,
        f"{partials} partial events; partial_images={asked.partial_images} allows {allowed}",
    )
    v.check(
        kinds.completed_rule,
        completed == asked.n and last_type == kinds.completed,
        f"{completed} completed events for n={asked.n}"
        + ("" if last_type == kinds.completed else "; the stream does not end so"),
    )


# --- the judge ----------------------------------------------------------------------------


def judge(
    case: Case, exchange: Exchange, profile: Profile, *, thumbnails: bool | GalleryPicks = False
) -> CaseResult:
    """The verdict on one exchange. Pure: no network, no files; safe to re-run on a recording.

    Every rule the case aims at (:func:`~conformance.generation.coverage.aimed_rules`) ends held, broken,
    or not observed with a reason. A request without ``model`` may be answered as any model of
    the profile: the answer is judged as the first model it is valid for, and which model that
    is (the documented default or another) is the SHOULD rule ``request.model.default``.
    """
    if case.endpoint != GENERATIONS:
        from .edit_checks import judge_form

        return judge_form(case, exchange, profile, thumbnails=thumbnails)
    rules = _profile_rules(profile)
    if case.expect == "accept" and _omits_model(case):
        default = _answering_model(case, profile)
        candidates = [default, *(m for m in profile.models if m != default)]
        first = None
        for model in candidates:
            result = _judge_as(case, exchange, profile, rules, model, thumbnails=thumbnails)
            first = first or result
            if not result.failed_rules:
                if model != default:
                    result.findings.append(
                        Finding(
                            case.rule,
                            rules[case.rule].level if case.rule in rules else case.level,
                            f"answered as {model}, not as the default model {default}",
                        )
                    )
                    conclude(result)
                return result
        assert first is not None
        return first
    spec = case_spec(case, profile.models, profile.contract)
    model = spec.name if spec is not None else None
    return _judge_as(case, exchange, profile, rules, model, thumbnails=thumbnails)


def _omits_model(case: Case) -> bool:
    return isinstance(case.body, dict) and case.body.get("model") is None


def _judge_as(
    case: Case,
    exchange: Exchange,
    profile: Profile,
    rules: Mapping[str, Rule],
    model: str | None,
    *,
    thumbnails: bool | GalleryPicks,
) -> CaseResult:
    def answer(v: _Judgement) -> None:
        asked = _asked(case, profile, model)
        if asked.stream:
            check_stream(v, exchange, asked, thumbnails=thumbnails)
        else:
            check_json_answer(v, exchange, asked, thumbnails=thumbnails)

    spec = profile.contract.models.get(model) if model else None
    return judge_exchange(
        case,
        exchange,
        rules,
        model,
        param=expected_param(case, rules, profile.contract),
        aimed=aimed_rules(case, spec, rules, profile.contract),
        answer=answer,
        size=lambda: _asked(case, profile, model).answer_size,
    )


def judge_exchange(
    case: Case,
    exchange: Exchange,
    rules: Mapping[str, Rule],
    model: str | None,
    *,
    param: str | None,
    aimed: set[str],
    answer: Callable[[_Judgement], None],
    size: Callable[[], AnswerSize] | None = None,
) -> CaseResult:
    """The judging every endpoint shares: the transport, then throttling, then the status
    (naming ``param`` when a refusal is due); ``answer`` judges an answer that is due. Rules in
    ``aimed`` that nothing checked are unobserved, for the reason that blocked them. ``size``:
    what a conformant answer to the case holds at most (asked only of a body cut at a bound)."""
    v = _Judgement(case, rules, model)
    result = CaseResult(
        case=case,
        outcome=Outcome.PASS,
        status=exchange.status,
        elapsed=exchange.elapsed,
        exchange=exchange,
    )
    if check_transport(v, exchange, size):
        check_retry_after(v, exchange)
        if exchange.status in (429, 503):
            v.blocked = Reason.THROTTLED
            result.note = (
                f"answered {exchange.status} after {exchange.retries} retr"
                f"{'y' if exchange.retries == 1 else 'ies'}"
            )
        elif check_status(v, exchange, param):
            answer(v)
        elif (exchange.status or 0) >= 500:
            v.blocked = Reason.SERVER_ERROR
    result.findings = v.findings
    result.checked = list(v.checked)
    result.images = v.images
    result.note = result.note or v.note
    unseen = v.blocked or Reason.NOT_APPLICABLE
    result.unobserved = {rule: unseen for rule in sorted(aimed) if rule not in v.checked}
    return conclude(result)


def conclude(result: CaseResult) -> CaseResult:
    """Set a judged case's outcome and reason from its findings and unobserved rules."""
    result.reason = result.unobserved.get(result.case.rule)
    result.outcome = judged_outcome(result.findings)
    if result.outcome is Outcome.PASS and result.reason is not None:
        result.outcome = Outcome.NOT_OBSERVED
    return result


# --- controls ---------------------------------------------------------------------------------


def _control_reason(result: CaseResult | None) -> Reason | None:
    """None when the control was accepted; else why refusals leaning on it prove nothing."""
    if result is None:
        return Reason.NO_CONTROL
    status = result.status
    if status is not None and 200 <= status < 300:
        return None
    if result.outcome is Outcome.NOT_OBSERVED and result.reason in (
        Reason.BUDGET,
        Reason.INTERRUPTED,
        Reason.INTERNAL_ERROR,
        Reason.THROTTLED,
        Reason.TRANSPORT,
    ):
        return Reason(result.reason)
    if status is None:
        return Reason.TRANSPORT
    if status in AUTH_REFUSALS:
        return Reason.AUTH_REFUSED
    if status in (429, 503):
        return Reason.THROTTLED
    if status == 404:
        return Reason.NOT_FOUND
    if status >= 500:
        return Reason.SERVER_ERROR
    return Reason.NO_CONTROL


def _is_control(case: Case) -> bool:
    return case.origin == CONTROL_ORIGIN


def settle_controls(results: list[CaseResult]) -> list[CaseResult]:
    """Take back what a case's answer proves only if its control was accepted.

    A refusal proves a rule only when the same target accepted the model's control (its plain
    valid request, same key, path and endpoint) in the same run; a model-independent probe
    leans on any accepted valid request. When the control was not accepted, a refusal, a 5xx
    and a refused valid request all say something about the whole target, not the case's own
    rule: that rule is then not observed, with the control's reason. Cases that broke their
    rule by *accepting* (a 2xx to an invalid request) need no control. Mutates and returns
    ``results``.
    """
    # Each endpoint has its own controls: a gateway may serve generations and not edits.
    controls: dict[tuple[str, str], CaseResult] = {}
    for result in results:
        if _is_control(result.case):
            controls.setdefault((result.case.endpoint, result.case.model), result)
    reasons = {key: _control_reason(result) for key, result in controls.items()}
    anywhere = {
        endpoint: _anywhere(results, reasons, endpoint)
        for endpoint in dict.fromkeys(r.case.endpoint for r in results)
    }
    for result in results:
        case = result.case
        if _is_control(case) and result.status in AUTH_REFUSALS:
            # The key is refused for this model: no verdict on whether the model is served.
            _unprove(result, Reason.AUTH_REFUSED)
        if _is_control(case) or (result.exchange is None and result.reason):
            continue  # the controls themselves, and cases never answered
        status = result.status
        if status is None or 200 <= status < 300 or status in (429, 503):
            continue
        if case.model == ANY_MODEL:
            reason = anywhere[case.endpoint]
        else:
            reason = reasons.get((case.endpoint, case.model), Reason.NO_CONTROL)
        if reason is None:
            continue
        leans = (
            case.expect == "reject"
            or case.auth != "valid"
            or status >= 500
            or (case.expect == "accept" and status in (*AUTH_REFUSALS, 404))
        )
        if leans:
            _unprove(result, reason)
    return results


def _anywhere(
    results: list[CaseResult], reasons: Mapping[tuple[str, str], Reason | None], endpoint: str
) -> Reason | None:
    """What a model-independent case of ``endpoint`` leans on: None when any valid request to
    the endpoint was accepted, else the most common failure among its controls."""
    accepted_any = any(
        r.case.endpoint == endpoint
        and r.case.kind == "valid"
        and r.case.auth == "valid"
        and not r.case.path_suffix
        and r.status is not None
        and 200 <= r.status < 300
        for r in results
    )
    if accepted_any:
        return None
    seen = [reason for key, reason in reasons.items() if key[0] == endpoint and reason is not None]
    # The most common failure among the controls (ties broken by name, so runs agree).
    common = sorted(set(seen), key=lambda r: (-seen.count(r), r))
    return common[0] if common else Reason.NO_CONTROL


def _unprove(result: CaseResult, reason: Reason) -> None:
    """The case's own rule (and what its answer could not show) becomes not observed."""
    rule = result.case.rule
    result.findings = [f for f in result.findings if f.rule != rule]
    result.checked = [r for r in result.checked if r != rule]
    result.unobserved = {r: reason for r in result.unobserved}
    result.unobserved[rule] = reason
    conclude(result)
