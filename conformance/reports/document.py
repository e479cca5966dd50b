"""``report.json``: the source of truth of a run, from which every other format is rendered.

The document is described by ``schemas/report.schema.json``. It is built from a
:class:`~conformance.engine.results.RunResult` alone, so a replayed recording and a live run give the
same document. Its centre is the *matrix*: one entry per rule x model that the run exercised
(or meant to), with the worst status any case gave it. JUnit test cases, the Markdown table,
the HTML matrix and the regression diff are all views of that one list, so their counts agree.

Everything that came from the server is excerpted (base64 and long strings elided) and scrubbed
of anything key-like before it is written: a report is meant to be shared.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..contract.loader import GENERATIONS, Rule
from ..engine.multipart import request_summary
from ..engine.results import CaseResult, Exchange, Outcome, RunResult
from ..engine.verdict import CELL_RANK, decide, endpoint_catalogue, run_matrix
from ..generation.cases import ANY_MODEL, Case, elide
from ..generation.coverage import coverage_summary
from ..redact import scrub_text, strip_url
from .reproducer import curl_command

__all__ = [
    "FORMAT",
    "STATUS_RANK",
    "ReplayInfo",
    "build_report",
    "clean_text",
    "column",
    "elide",
    "model_label",
    "response_excerpt",
]

FORMAT = "imgconf-report/1"
#: How bad a status is; a rule x model takes the worst status of its cases.
STATUS_RANK = CELL_RANK
#: Strings longer than this are elided from request bodies in the report.
EXCERPT_CHARS = 1600
_B64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}={0,2}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class ReplayInfo:
    """Where a replayed run came from, and what it could not judge again."""

    file: str
    recorded: Mapping[str, Any]
    #: rule id -> number of cases where it could not be judged again (images elided).
    not_rejudged: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "recorded": dict(self.recorded),
            "not_rejudged": dict(self.not_rejudged),
        }


def column(item: Mapping[str, Any]) -> str:
    """The matrix column of an entry (a cell, a case): its model, as reports always named it,
    for generations; ``<endpoint>/<model>`` for another endpoint, whose cells are its own."""
    endpoint = item.get("endpoint") or GENERATIONS
    return item["model"] if endpoint == GENERATIONS else f"{endpoint}/{item['model']}"


def model_label(model: str, aliases: Mapping[str, str] | None = None) -> str:
    """How a report names a model (rules that hold for any model are grouped under ``*``; a
    model asked by the vendor's name shows both: ``my-dalle3 (dall-e-3)``)."""
    if model == ANY_MODEL:
        return "any model"
    endpoint, slash, bare = model.partition("/")
    if slash:  # a column of another endpoint than generations, named as the verdict names it
        return f"{model_label(bare, aliases)} ({endpoint})"
    alias = (aliases or {}).get(model)
    return f"{alias} ({model})" if alias else model


def response_excerpt(body: bytes, limit: int = EXCERPT_CHARS) -> str:
    """A readable start of an answer: base64 runs elided, control characters shown, cut."""
    if not body:
        return ""
    text = body[: 256 * 1024].decode("utf-8", "replace")
    text = _B64_RUN.sub(lambda m: f"<{len(m.group(0))} base64 characters>", text)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)
    if len(text) > limit:
        text = text[:limit] + f"…[{len(body)} bytes in all]"
    elif len(body) > 256 * 1024:
        text += f"…[{len(body)} bytes in all]"
    return scrub_text(text)


def clean_text(text: str) -> str:
    """Server-derived text made safe to show: control characters visible, key-like tokens gone."""
    return scrub_text(_CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text))


def _iso(timestamp: float) -> str | None:
    """An ISO 8601 time for a wall-clock timestamp; None for a monotonic clock reading."""
    if timestamp < 1e9:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


def _case_url(run: RunResult, result: CaseResult) -> str:
    if result.exchange is not None and result.exchange.url:
        return result.exchange.url
    return (
        run.target.rstrip("/") + endpoint_path(run, result.case.endpoint) + result.case.path_suffix
    )


def endpoint_path(run: RunResult, endpoint: str) -> str:
    """The path of an endpoint at the run's target: the profile's own for generations, the
    contract's for another one, under the same prefix as the profile's."""
    if endpoint == GENERATIONS:
        return run.path
    generations = run.contract().endpoint(GENERATIONS).path
    prefix = run.path[: -len(generations)] if run.path.endswith(generations) else ""
    return prefix + run.contract().endpoint(endpoint).path


def form_parts(case: Case) -> list[dict[str, Any]]:
    """A multipart body part by part in the order sent, as the exchange's summary states it
    (:func:`~conformance.engine.multipart.request_summary`): text values (long ones elided), and
    each file as its recipe, name, type, length and digest (its bytes are made from the recipe,
    never stored)."""
    parts = request_summary(case)["parts"]
    return [{**p, "value": elide(p["value"])} if "value" in p else p for p in parts]


def _request(case: Case) -> dict[str, Any]:
    out: dict[str, Any] = {"auth": case.auth, "path_suffix": case.path_suffix}
    if case.parts:
        out["parts"] = form_parts(case)
        out["bytes"] = case.content_length()
    elif case.raw is not None:
        out["raw"] = response_excerpt(case.raw, 400)
        out["bytes"] = len(case.raw)
    else:
        out["body"] = elide(case.body)
        out["bytes"] = case.sent_bytes if case.sent_bytes is not None else len(case.content())
    return out


def _response(exchange: Exchange | None, detailed: bool) -> dict[str, Any] | None:
    if exchange is None:
        return None
    out: dict[str, Any] = {
        "content_type": exchange.content_type or None,
        "bytes": (
            exchange.body_size if exchange.body_size is not None else len(exchange.response_body)
        ),
        "truncated": exchange.truncated,
        "error": exchange.error,
        "retries": exchange.retries,
    }
    if detailed:
        out["excerpt"] = response_excerpt(exchange.response_body)
        out["headers"] = {k: scrub_text(v) for k, v in exchange.response_headers.items()}
    return out


def _case_entry(run: RunResult, result: CaseResult) -> dict[str, Any]:
    case = result.case
    detailed = result.outcome is not Outcome.PASS and result.exchange is not None
    url = _case_url(run, result)
    entry: dict[str, Any] = {
        "id": case.id,
        "model": case.model,
        **({"endpoint": case.endpoint} if case.endpoint != GENERATIONS else {}),
        "kind": case.kind,
        "rule": case.rule,
        "level": case.level,
        "expect": case.expect,
        "origin": case.origin,
        "title": case.title,
        "outcome": result.outcome.value,
        "reason": result.reason,
        "status": result.status,
        "elapsed": round(result.elapsed, 4),
        "url": strip_url(url),
        "request": _request(case),
        "response": _response(result.exchange, detailed),
        "findings": [
            {"rule": f.rule, "level": f.level, "message": clean_text(f.message)}
            for f in result.findings
        ],
        "checked": list(result.checked),
        "unobserved": dict(result.unobserved),
        "images": [
            {
                "index": image.index,
                "source": image.source,
                "format": image.format,
                "width": image.width,
                "height": image.height,
                "has_alpha": image.has_alpha,
                "bytes": image.byte_size,
                "ok": image.ok,
                "problems": [clean_text(p) for p in image.problems],
                "url": strip_url(image.url) if image.url else None,
            }
            for image in result.images
        ],
        "note": clean_text(result.note),
    }
    if detailed:
        content_type = None
        if result.exchange is not None:
            content_type = result.exchange.request_headers.get("content-type")
        entry["reproducer"] = curl_command(
            case, url, None if case.parts else content_type or "application/json", auth=run.auth
        )
    return entry


def build_matrix(run: RunResult, catalogue: Mapping[str, Rule]) -> list[dict[str, Any]]:
    """One entry per rule x model, an endpoint's beside generations marked ``endpoint`` (see
    :mod:`conformance.engine.verdict`), its messages made safe."""
    matrix = run_matrix(run)
    for item in matrix:
        item["messages"] = [clean_text(m) for m in item["messages"]]
    return matrix


def endpoint_rules(run: RunResult, endpoint: str) -> Mapping[str, Rule]:
    """The rules an endpoint's exchanges are judged by, as the run's profile holds them."""
    if endpoint == GENERATIONS:
        return run.catalogue()
    return run.catalogues().get(endpoint) or endpoint_catalogue(
        endpoint, run.models, run.contract()
    )


def _known_rules(run: RunResult, matrix: list[dict[str, Any]]) -> dict[str, Rule]:
    """Every rule a cell of the matrix may name, generations' as the run holds them first."""
    known: dict[str, Rule] = {}
    for endpoint in dict.fromkeys(i.get("endpoint") or GENERATIONS for i in matrix):
        if endpoint != GENERATIONS:
            known.update(endpoint_rules(run, endpoint))
    return {**known, **run.catalogue()}


def _rule_summaries(
    matrix: list[dict[str, Any]], catalogue: Mapping[str, Rule]
) -> list[dict[str, Any]]:
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for item in matrix:
        by_rule.setdefault(item["rule"], []).append(item)
    out = []
    for rule_id, items in by_rule.items():
        known = catalogue.get(rule_id)
        out.append(
            {
                "id": rule_id,
                "level": items[0]["level"],
                "family": rule_id.split(".", 1)[0],
                "description": known.description if known else "",
                "source": known.source if known else "",
                "status": max((i["status"] for i in items), key=STATUS_RANK.__getitem__),
                "models": {column(i): i["status"] for i in items},
                "cases": sum(i["cases"] for i in items),
                "failed_cases": sum(len(i["failed_cases"]) for i in items),
                "warned_cases": sum(len(i["warned_cases"]) for i in items),
            }
        )
    return out


def _case_column(case: Case) -> str:
    return column({"model": case.model, "endpoint": case.endpoint})


def _model_summaries(run: RunResult, matrix: list[dict[str, Any]]) -> dict[str, Any]:
    """By column: a model's generations cases under its name, another endpoint's under
    ``<endpoint>/<model>``."""
    models = (
        [ANY_MODEL, *run.models]
        if any(r.case.model == ANY_MODEL and r.case.endpoint == GENERATIONS for r in run.results)
        else list(run.models)
    )
    for result in run.results:
        if _case_column(result.case) not in models:
            models.append(_case_column(result.case))
    out: dict[str, Any] = {}
    for model in models:
        results = [r for r in run.results if _case_column(r.case) == model]
        statuses = Counter(i["status"] for i in matrix if column(i) == model)
        out[model] = {
            "cases": len(results),
            "outcomes": {o.value: sum(r.outcome is o for r in results) for o in Outcome},
            "rules": {s: statuses.get(s, 0) for s in STATUS_RANK},
            "images": sum(1 for r in results for i in r.images if i.source != "partial"),
            "elapsed": round(sum(r.elapsed for r in results), 3),
        }
    return out


def _coverage(
    run: RunResult, matrix: list[dict[str, Any]], catalogue: Mapping[str, Rule]
) -> dict[str, Any]:
    observed: dict[str, set[str]] = {}
    for item in matrix:
        if item["status"] != "not_observed":
            observed.setdefault(column(item), set()).add(item["rule"])
    generations = not matrix or any("endpoint" not in i for i in matrix)
    per_model = coverage_summary(observed, run.models, catalogue) if generations else {}
    # Another endpoint's coverage beside generations', each in per_model's shape.
    endpoints: dict[str, Any] = {}
    for endpoint in dict.fromkeys(i["endpoint"] for i in matrix if "endpoint" in i):
        models = [m for m in run.models if any(column(i) == f"{endpoint}/{m}" for i in matrix)]
        mine = {m: observed.get(f"{endpoint}/{m}", ()) for m in (ANY_MODEL, *models)}
        summary = coverage_summary(mine, models, endpoint_rules(run, endpoint))
        endpoints[endpoint] = {"per_model": summary}
    by_origin: dict[str, dict[str, int]] = {}
    cut: list[dict[str, Any]] = []
    for result in run.results:
        counts = by_origin.setdefault(result.case.origin or "plan", {"sent": 0, "skipped": 0})
        if result.exchange is None:
            counts["skipped"] += 1
            cut.append(
                {
                    "id": result.case.id,
                    "model": result.case.model,
                    "rule": result.case.rule,
                    "origin": result.case.origin,
                    "reason": result.reason,
                    "note": clean_text(result.note),
                }
            )
        else:
            counts["sent"] += 1
    return {
        "per_model": per_model,
        **({"endpoints": endpoints} if endpoints else {}),
        "by_origin": by_origin,
        "pairwise": run.plan.pairwise,
        "budget_cut": run.plan.cut,
        "not_sent": cut,
    }


def _budget(run: RunResult) -> dict[str, Any]:
    """The budget as asked, as spent and as estimated (a replay knows only the images it saw)."""
    budget, plan = run.budget, run.plan
    if budget is None:
        spent_images = sum(1 for r in run.results for i in r.images if i.source != "partial")
        requested = {"max_cost": None, "max_images": None}
        spent = {"images": spent_images, "cost": None, "cost_unknown_images": 0}
    else:
        requested = {"max_cost": budget.max_cost, "max_images": budget.max_images}
        spent = {
            "images": budget.images,
            "cost": budget.cost,
            "cost_unknown_images": budget.cost_unknown_images,
        }
    return {
        "requested": requested,
        "spent": spent,
        "estimate": {"images": plan.images, "cost": plan.cost},
        "details": budget.to_dict() if budget is not None else {},
    }


def _jsonable(value: Any) -> Any:
    """The value as plain JSON (coverage facts may hold tuples)."""
    return json.loads(json.dumps(value, default=str))


def _verdict(
    run: RunResult, matrix: list[dict[str, Any]], catalogue: Mapping[str, Rule]
) -> dict[str, Any]:
    verdict = decide(run, matrix, catalogue)
    sent = [r for r in run.results if r.exchange is not None]
    models = len({r.case.model for r in sent if r.case.model != ANY_MODEL})
    broken = list(dict.fromkeys(label.split(" @ ")[0] for label in verdict.failed))
    names = ", ".join(broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")
    must_failures = len(run.must_failures)
    if verdict.status == "fail" and verdict.failed:
        headline = (
            f"FAIL: {len(broken)} MUST rule{'s' if len(broken) > 1 else ''} broken ({names}) "
            f"on {len(verdict.failed)} rule x model, in {must_failures} of {len(sent)} cases"
        )
    elif verdict.status == "fail":
        headline = (
            f"FAIL (--fail-on should): {len(verdict.warned)} SHOULD rule x model warned "
            f"in {len(run.warnings)} of {len(sent)} cases"
        )
    elif verdict.status == "incomplete":
        headline = "INCOMPLETE: " + "; ".join(verdict.incomplete_reasons)
    else:
        headline = f"PASS: no MUST rule failed in {len(sent)} cases on {models} models" + (
            f" ({len(verdict.warned)} SHOULD rule x model warned)" if verdict.warned else ""
        )
        budget = [label for label in verdict.not_observed if "(budget" in label]
        if budget:
            headline += f"; {len(budget)} MUST rule x model left unobserved by the budget"
    return {
        "status": verdict.status,
        "passed": verdict.status == "pass",
        "exit_code": verdict.exit_code,
        "fail_on": run.fail_on,
        "incomplete": run.incomplete,
        "headline": headline,
        "failed": verdict.failed,
        "warned": verdict.warned,
        "incomplete_reasons": verdict.incomplete_reasons,
        "not_observed": verdict.not_observed,
        "models_unjudged": verdict.models_unjudged,
    }


def _aliases(run: RunResult) -> dict[str, Any]:
    """``aliases``: model -> the vendor's name it was asked by (absent when there are none)."""
    names = {m: a for a, m in run.contract().aliases.items() if m in run.models}
    return {"aliases": names} if names else {}


def build_report(run: RunResult, *, replay: ReplayInfo | None = None) -> dict[str, Any]:
    """The report.json document of a run (see ``schemas/report.schema.json``)."""
    catalogue = run.catalogue()
    matrix = build_matrix(run, catalogue)
    outcomes = Counter(r.outcome.value for r in run.results)
    finished = run.finished or run.started
    return {
        "format": FORMAT,
        "tool": {"name": "imgconf", "version": run.tool_version},
        "target": strip_url(run.target),
        "profile": run.profile,
        "models": list(run.models),
        **_aliases(run),
        "seed": run.seed,
        "mode": "replay" if replay else "run",
        "replay": replay.to_dict() if replay else None,
        "verdict": _verdict(run, matrix, catalogue),
        "timing": {
            "started": _iso(run.started),
            "finished": _iso(finished),
            "duration": round(max(0.0, finished - run.started), 3),
            "requests": round(sum(r.elapsed for r in run.results), 3),
        },
        "budget": _budget(run),
        "plan": _jsonable(run.plan.to_dict()),
        "summary": {
            "cases": len(run.results),
            "outcomes": {o.value: outcomes.get(o.value, 0) for o in Outcome},
            "matrix": {s: sum(1 for i in matrix if i["status"] == s) for s in STATUS_RANK},
        },
        "rules": _rule_summaries(matrix, _known_rules(run, matrix)),
        "model_summary": _model_summaries(run, matrix),
        "coverage": _coverage(run, matrix, catalogue),
        "matrix": matrix,
        "cases": [_case_entry(run, r) for r in run.results],
        **({"tls": run.tls.to_dict()} if run.tls is not None else {}),
    }
