"""From case results to rule x model cells and the run's verdict: the one place that decides.

Every report format, the console and the pytest plugin show these cells and this verdict, so a
✓ means the same everywhere: an answer showed the rule held.

A cell is **held** (``pass``) when some answer showed the rule kept and none broke it,
**broken** (``fail`` for a MUST rule, ``warn`` for a SHOULD one) when an answer broke it, and
otherwise **not observed** (``not_observed``), with every reason its cases gave (``budget``,
``throttled``, ...; ``schemas/rules.yaml`` says which reasons block a PASS). A rule in scope that
no case of the run aimed at is not observed as ``not_applicable``.

The verdict: **FAIL** (exit 1) when a MUST rule broke, whatever else; otherwise **INCOMPLETE**
(exit 3) when a model in scope had no valid request judged, or a MUST rule went unobserved for
a blocking reason, or the run was stopped; otherwise **PASS** (exit 0), listing what the budget
left unobserved. ``--fail-on should`` makes a SHOULD warning a FAIL too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..contract.loader import GENERATIONS, Contract, Rule, load_contract
from ..generation.cases import ANY_MODEL
from ..generation.coverage import aimed_rules, case_spec
from .results import CaseResult, Level, Reason, RunResult, blocks

__all__ = [
    "CELL_RANK",
    "EXIT_CODES",
    "RunVerdict",
    "VerdictStatus",
    "build_matrix",
    "case_rules",
    "decide",
    "endpoint_catalogue",
    "in_scope",
    "run_matrix",
]

#: How much a cell's status says; a cell takes the strongest of its cases.
CELL_RANK = {"not_observed": 0, "pass": 1, "warn": 2, "fail": 3}


class VerdictStatus(StrEnum):
    """What a run may claim."""

    PASS = "pass"
    FAIL = "fail"
    INCOMPLETE = "incomplete"


EXIT_CODES = {VerdictStatus.PASS: 0, VerdictStatus.FAIL: 1, VerdictStatus.INCOMPLETE: 3}
#: Distinct messages kept per cell.
MESSAGES_PER_CELL = 5


def case_rules(
    result: CaseResult,
    catalogue: Mapping[str, Rule],
    models: Sequence[str] = (),
    contract: Contract | None = None,
) -> dict[str, str]:
    """Each rule the case touched: ``pass``, ``fail``/``warn`` (by the finding's level) or a
    not-observed reason. A case never judged counts every rule it aimed at, with its reason."""
    out: dict[str, str] = {}
    if result.reason and not result.checked and not result.findings and not result.unobserved:
        contract = contract or load_contract()
        spec = case_spec(result.case, models or list(contract.models), contract)
        for rule in aimed_rules(result.case, spec, catalogue, contract):
            out[rule] = result.reason
        out[result.case.rule] = result.reason
        return out
    for rule, reason in result.unobserved.items():
        out[rule] = reason
    for rule in result.checked:
        out[rule] = "pass"
    for finding in result.findings:
        status = "fail" if finding.level == Level.MUST else "warn"
        if out.get(finding.rule) != "fail":
            out[finding.rule] = status
    return out


def in_scope(models: Iterable[str], catalogue: Mapping[str, Rule]) -> list[tuple[str, str]]:
    """The (model, rule) cells a run over ``models`` is meant to observe: every rule that holds
    for each model, and the model-independent rules once, under ``*``."""
    cells = [
        (model, rule.id)
        for model in models
        for rule in catalogue.values()
        if rule.per_model and model in rule.models
    ]
    cells += [(ANY_MODEL, r.id) for r in catalogue.values() if not r.per_model and r.models]
    return cells


def endpoint_catalogue(
    name: str, models: Iterable[str], contract: Contract | None = None
) -> dict[str, Rule]:
    """An endpoint's rules (its own, then the generations rules it reuses) for ``models``, at
    the contract's levels: what a matrix holds a multipart endpoint's cases to when the run
    gives no catalogue of its own for it (a run's are its profile's: ``RunResult.catalogues``)."""
    import dataclasses

    contract = contract or load_contract()
    endpoint = contract.endpoint(name) if name in contract.endpoints else None
    endpoint = endpoint or load_contract().endpoint(name)
    wanted = set(models)
    return {
        rule.id: dataclasses.replace(rule, models=tuple(m for m in rule.models if m in wanted))
        for rule in endpoint.all_rules.values()
    }


def build_matrix(
    results: Iterable[CaseResult],
    models: Iterable[str],
    catalogue: Mapping[str, Rule],
    contract: Contract | None = None,
    *,
    endpoints: Iterable[str] | None = None,
    catalogues: Mapping[str, Mapping[str, Rule]] | None = None,
) -> list[dict[str, Any]]:
    """One entry per rule x model x endpoint: its status, reasons when not observed, and which
    cases (``contract``: the profile's, which knows its declared models).

    ``catalogue`` holds the generations cases; ``catalogues`` the other endpoints' (each made
    from the contract when not given). ``endpoints`` are those in scope (default: generations
    and every endpoint a case went to). An entry of another endpoint than generations names it
    (``"endpoint": "edits"``); a generations entry is as it always was."""
    models = list(models)
    results = list(results)
    scope = list(endpoints) if endpoints is not None else [GENERATIONS]
    for result in results:
        if result.case.endpoint not in scope:
            scope.append(result.case.endpoint)
    books: dict[str, Mapping[str, Rule]] = {GENERATIONS: catalogue}
    for name in scope:
        if name != GENERATIONS:
            given = (catalogues or {}).get(name)
            books[name] = given if given is not None else endpoint_catalogue(name, models, contract)
    entries: dict[tuple[str, str, str], dict[str, Any]] = {}

    def entry(model: str, rule: str, level: str, endpoint: str = GENERATIONS) -> dict[str, Any]:
        key = (endpoint, model, rule)
        if key not in entries:
            known = books[endpoint].get(rule)
            entries[key] = {
                **({} if endpoint == GENERATIONS else {"endpoint": endpoint}),
                "model": model,
                "rule": rule,
                "level": known.level_for(model) if known else level,
                "status": "not_observed",
                "reasons": [],
                "blocking": False,
                "cases": 0,
                "failed_cases": [],
                "warned_cases": [],
                "messages": [],
                "example": None,
            }
        return entries[key]

    for result in results:
        case = result.case
        statuses = case_rules(result, books[case.endpoint], models, contract)
        messages = {f.rule: f.message for f in reversed(result.findings)}
        for rule, status in statuses.items():
            level = case.level if rule == case.rule else Level.MUST
            item = entry(case.model, rule, level, case.endpoint)
            if status in CELL_RANK:
                item["cases"] += 1
                if status != "pass":
                    item["level"] = Level.MUST if status == "fail" else Level.SHOULD
                    bucket = item["failed_cases" if status == "fail" else "warned_cases"]
                    if case.id not in bucket:
                        bucket.append(case.id)
                    _message(item, messages.get(rule, ""))
                    if item["example"] is None or (
                        status == "fail" and item["example"] not in item["failed_cases"]
                    ):
                        item["example"] = case.id
                if CELL_RANK[status] > CELL_RANK[item["status"]]:
                    item["status"] = status
            elif status not in item["reasons"]:
                item["reasons"].append(status)
                if rule == case.rule and result.note:
                    _message(item, result.note)
                if item["example"] is None:
                    item["example"] = case.id
    for name in scope:
        book = books[name]
        for model, rule in in_scope(models, book):
            item = entry(model, rule, book[rule].level_for(model), name)
            if item["status"] == "not_observed" and not item["reasons"]:
                item["reasons"].append(Reason.NOT_APPLICABLE.value)
    for item in entries.values():
        if item["status"] != "not_observed":
            item["reasons"] = []
        item["reasons"].sort(key=lambda r: (not blocks(r), r))
        # Only a MUST rule unobserved keeps a run from PASS (a SHOULD one never fails it).
        item["blocking"] = (
            item["status"] == "not_observed"
            and item["level"] == Level.MUST
            and any(blocks(r) for r in item["reasons"])
        )
    orders = {name: {rule: i for i, rule in enumerate(book)} for name, book in books.items()}
    rank = {m: i for i, m in enumerate([ANY_MODEL, *models])}
    place = {name: i for i, name in enumerate([GENERATIONS, *scope])}

    def key(e: Mapping[str, Any]) -> tuple[Any, ...]:
        name = e.get("endpoint", GENERATIONS)
        order = orders[name]
        rule_rank = order.get(e["rule"], len(order))
        return (place[name], rule_rank, e["rule"], rank.get(e["model"], 99))

    return sorted(entries.values(), key=key)


def run_matrix(run: RunResult) -> list[dict[str, Any]]:
    """The matrix of a run: every endpoint it tested, each held to the run's profile's rules
    for it. What :func:`decide` decides from, and what every report shows."""
    return build_matrix(
        run.results,
        run.models,
        run.catalogue(),
        run.contract(),
        endpoints=run.endpoints,
        catalogues=run.catalogues(),
    )


def _message(item: dict[str, Any], message: str) -> None:
    if message and message not in item["messages"] and len(item["messages"]) < MESSAGES_PER_CELL:
        item["messages"].append(message)


@dataclass
class RunVerdict:
    """What a run may claim, and why."""

    status: VerdictStatus
    fail_on: str = "must"
    #: "rule @ model" of every broken MUST cell (and SHOULD cell under ``--fail-on should``).
    failed: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    #: Why the run is INCOMPLETE, one line each.
    incomplete_reasons: list[str] = field(default_factory=list)
    #: "rule @ model (reasons)" of every MUST cell not observed for a reason that does not block.
    not_observed: list[str] = field(default_factory=list)
    #: Models in scope without one valid request judged.
    models_unjudged: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def _label(item: Mapping[str, Any]) -> str:
    """``rule @ model``, and the endpoint beside generations: ``rule @ model (edits)``."""
    endpoint = item.get("endpoint")
    return f"{item['rule']} @ {item['model']}" + (f" ({endpoint})" if endpoint else "")


def _in_scope_label(model: str, endpoint: str) -> str:
    return model if endpoint == GENERATIONS else f"{model} ({endpoint})"


def _valid_judged(results: Iterable[CaseResult]) -> set[tuple[str, str]]:
    """(model, endpoint) pairs with a valid request whose acceptance was seen (held or
    broken)."""
    judged = set()
    for result in results:
        case = result.case
        if case.kind != "valid" or case.expect != "accept":
            continue
        if case.rule in result.checked or any(f.rule == case.rule for f in result.findings):
            judged.add((case.model, case.endpoint))
    return judged


def _models_in_scope(run: RunResult) -> list[tuple[str, str]]:
    """The models in scope: each model of the run on each endpoint the run tests that serves
    it (a model x endpoint; generations serves every model of the run)."""
    endpoints = list(run.endpoints)
    endpoints += [
        e for e in dict.fromkeys(r.case.endpoint for r in run.results) if e not in endpoints
    ]
    pairs = []
    for endpoint in endpoints:
        for model in run.models:
            if endpoint == GENERATIONS or model in run.contract().endpoint(endpoint).models:
                pairs.append((model, endpoint))
    return pairs


def decide(
    run: RunResult,
    matrix: list[dict[str, Any]] | None = None,
    catalogue: Mapping[str, Rule] | None = None,
) -> RunVerdict:
    """The verdict of a run (its matrix is built when not given)."""
    catalogue = catalogue if catalogue is not None else run.catalogue()
    if matrix is None:
        matrix = build_matrix(
            run.results,
            run.models,
            catalogue,
            run.contract(),
            endpoints=run.endpoints,
            catalogues=run.catalogues(),
        )
    verdict = RunVerdict(status=VerdictStatus.PASS, fail_on=run.fail_on)
    verdict.failed = [_label(i) for i in matrix if i["status"] == "fail"]
    verdict.warned = [_label(i) for i in matrix if i["status"] == "warn"]
    must_unseen = [i for i in matrix if i["status"] == "not_observed" and i["level"] == Level.MUST]
    blocked = [i for i in must_unseen if i["blocking"]]
    verdict.not_observed = [
        f"{_label(i)} ({', '.join(i['reasons'])})" for i in must_unseen if not i["blocking"]
    ]
    judged = _valid_judged(run.results)
    verdict.models_unjudged = [
        _in_scope_label(model, endpoint)
        for model, endpoint in _models_in_scope(run)
        if (model, endpoint) not in judged
    ]
    if verdict.failed:
        verdict.status = VerdictStatus.FAIL
        return verdict
    if run.incomplete:
        verdict.incomplete_reasons.append(f"the run stopped early: {run.stopped or 'interrupted'}")
    if verdict.models_unjudged:
        verdict.incomplete_reasons.append(
            "no valid request judged for " + ", ".join(verdict.models_unjudged)
        )
    by_reason: dict[str, list[str]] = {}
    for item in blocked:
        for reason in item["reasons"]:
            if blocks(reason):
                by_reason.setdefault(reason, []).append(_label(item))
    for reason, labels in by_reason.items():
        shown = ", ".join(labels[:4]) + (f" and {len(labels) - 4} more" if len(labels) > 4 else "")
        verdict.incomplete_reasons.append(
            f"{len(labels)} MUST rule x model not observed ({reason}): {shown}"
        )
    if run.fail_on == "should" and verdict.warned:
        verdict.status = VerdictStatus.FAIL
    elif verdict.incomplete_reasons:
        verdict.status = VerdictStatus.INCOMPLETE
    return verdict
