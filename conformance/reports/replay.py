"""``imgconf replay FILE.har``: judge a recording again with today's rules, calling no one.

Each recorded case is judged by the same :func:`~conformance.engine.checks.judge` as a live run, under
the profile the recording names (or ``--profile``), and the four reports are written. A replay
answers "would this recorded server pass today's imgconf?" and lets a rule change be tried on
real answers without paying for them again.

A recording made without images cannot prove anything about the images: for those cases the
image checks (and URL fetches) are left out, the case is judged on the rest, and the report and
the command's output say which rules were not judged again. The same holds for an answer whose
body the recording left out (over its caps, see :mod:`conformance.reports.har`): it was not observed, so
every rule that reads the body is left out for that case and said so.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path

from .. import settings
from ..contract.profiles import Profile, load_profile
from ..engine.checks import RESPONSE_URL_FETCH, WELL_FORMED, conclude
from ..engine.results import CaseResult, Exchange, PlanFacts, Reason, RunResult
from ..generation.cases import Case
from ..generation.showing import endpoint_rules, showings
from .document import ReplayInfo
from .har import read_har

__all__ = ["body_rules", "replay", "unjudgeable_rules"]

#: Rules judged on the status or a header alone: an answer without its body still shows them.
_NOT_ON_THE_BODY = frozenset(rule for rule, s in showings().items() if s.reads != "body")


def _asked_for(rule_id: str, body: dict) -> bool:
    """Whether the request asks the values the rule needs (``image.alpha``: a transparent
    background), as ``shown_by.asks`` declares them."""
    showing = showings().get(rule_id)
    return showing is None or showing.carries(body)


def unjudgeable_rules(profile: Profile, case: Case, had_fetches: bool) -> list[str]:
    """The rules a case without its image bytes cannot be judged on (its endpoint's)."""
    rules = endpoint_rules(profile, case.endpoint)
    body = case.body if isinstance(case.body, dict) else {}
    out = [
        r.id
        for r in rules.values()
        if r.kind == "image"
        and (case.model in rules[r.id].models or case.model not in profile.models)
        # alpha is judged only where a transparent background was asked
        and _asked_for(r.id, body)
    ]
    if had_fetches:
        out.append(RESPONSE_URL_FETCH.id)
    return out


def body_rules(profile: Profile, case: Case, exchange: Exchange) -> list[str]:
    """The rules an answer whose body was not recorded cannot be judged on: what an accepted
    answer's body (or stream) shows, or an error's envelope, and whether it was well formed."""
    accepted = exchange.status is not None and 200 <= exchange.status < 300
    kinds = ({"stream", "image"} if case.stream else {"answer", "image"}) if accepted else {"error"}
    rules = endpoint_rules(profile, case.endpoint)
    body = case.body if isinstance(case.body, dict) else {}
    return [
        r.id
        for r in rules.values()
        if (r.kind in kinds or r.id == WELL_FORMED.id)
        and r.id not in _NOT_ON_THE_BODY
        and (r.id not in rules or case.model in rules[r.id].models or not rules[r.id].models)
        and _asked_for(r.id, body)
    ]


def _without(
    result: CaseResult, rules: list[str], why: str = "images elided from the recording"
) -> CaseResult:
    """The result with the given rules neither checked nor found broken, outcome recomputed."""
    result.findings = [f for f in result.findings if f.rule not in rules]
    result.checked = [r for r in result.checked if r not in rules]
    result.images = []
    for rule in rules:
        result.unobserved[rule] = Reason.NOT_RECORDED
    conclude(result)
    result.note = (result.note + "; " if result.note else "") + (
        f"{why}: not judged on " + ", ".join(rules)
    )
    return result


def _relevel(case: Case, profile: Profile) -> Case:
    """The case with its rule's level as this profile holds it today."""
    rule = profile.rules().get(case.rule)
    if rule is None or rule.level == case.level:
        return case
    return dataclasses.replace(case, level=rule.level)


def replay(
    path: Path,
    *,
    profile: str | None = None,
    fail_on: str = "must",
    thumbnails: int = settings.REPLAY_THUMBNAILS,
) -> tuple[RunResult, ReplayInfo]:
    """Judge every recorded exchange again; the run it makes and what could not be redone."""
    from ..engine.checks import judge, settle_controls

    meta, pairs = read_har(path)
    prof = load_profile(profile or str(meta.get("profile") or "openai"))
    elided = set(meta.get("elided") or ())
    body_elided = set(meta.get("body_elided") or ())
    results: list[CaseResult] = []
    not_rejudged: Counter[str] = Counter()
    started = time.time()
    for case, exchange in pairs:
        case = _relevel(case, prof)
        result = judge(case, exchange, prof, thumbnails=thumbnails > 0 and case.expect != "reject")
        if any(i.thumbnail for i in result.images):
            thumbnails -= 1
        if case.id in elided:
            rules = unjudgeable_rules(prof, case, _had_fetches(exchange, case))
            not_rejudged.update(rules)
            result = _without(result, rules)
        if case.id in body_elided:
            rules = body_rules(prof, case, exchange)
            not_rejudged.update(rules)
            result = _without(result, rules, "answer's body not in the recording (its caps)")
        results.append(result)
    settle_controls(results)
    recorded_models = [str(m) for m in meta.get("models") or ()]
    run = RunResult.begin(
        prof,
        target=str(meta.get("target") or ""),
        models=recorded_models or sorted({c.model for c, _ in pairs if c.model in prof.models}),
        seed=int(meta.get("seed") or 0),
        plan=PlanFacts(cases=len(pairs), recording=str(path)),
        fail_on=fail_on,
        started=started,
        endpoints=_endpoints(meta, pairs),
    ).finish(results)
    recorded = {k: v for k, v in meta.items() if k not in ("elided", "body_elided")}
    return run, ReplayInfo(file=str(path), recorded=recorded, not_rejudged=dict(not_rejudged))


def _endpoints(meta: dict, pairs: list[tuple[Case, Exchange]]) -> tuple[str, ...]:
    """The endpoints the recorded run tested: as it says (``endpoints``), else those its cases
    went to (a recording made before edits: generations)."""
    recorded = [str(e) for e in meta.get("endpoints") or ()]
    seen = [c.endpoint for c, _ in pairs]
    return tuple(dict.fromkeys([*recorded, *seen])) or ("generations",)


def _had_fetches(exchange: Exchange, case: Case) -> bool:
    body = case.body if isinstance(case.body, dict) else {}
    return bool(exchange.fetches) or body.get("response_format") == "url"
