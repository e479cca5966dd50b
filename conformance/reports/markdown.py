"""``report.md``: the verdict and what to fix, short enough for a PR comment or a CI step summary.

GitHub caps a comment at 65536 characters, so the document is built in order of importance —
verdict, the model x rule-family table, the failures with reproducers, the warnings folded in
``<details>`` — and stops adding failures and warnings when it nears the cap, saying how many it
left out (they are all in report.json and report.html).
"""

from __future__ import annotations

from typing import Any

from ..generation.cases import ANY_MODEL
from ..settings import MARKDOWN_MAX_CHARS as MAX_CHARS
from .document import column, model_label

__all__ = ["render_markdown"]

ICON = {"pass": "✅", "fail": "❌", "warn": "⚠️", "not_observed": "⏭️"}
VERDICT_ICON = {"pass": "✅", "fail": "❌", "incomplete": "⏸️"}


_MARKUP = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "|": "\\|",
        "`": "\\`",
        "[": "\\[",
        "]": "\\]",
        "!": "\\!",
        "*": "\\*",
        "_": "\\_",
        "\\": "\\\\",
        "\n": " ",
        "\r": " ",
    }
)


def _cell(text: str) -> str:
    """Plain text that renders as itself: a server's markup, links and images stay inert."""
    return str(text).translate(_MARKUP)


def _code(text: str) -> str:
    """An inline code span (its content is never rendered as markup)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def _fence(text: str, lang: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{lang}\n{text}\n{fence}"


def _family_table(report: dict[str, Any]) -> list[str]:
    families: list[str] = []
    for rule in report["rules"]:
        if rule["family"] not in families:
            families.append(rule["family"])
    models: list[str] = []
    for item in report["matrix"]:
        if column(item) not in models:
            models.append(column(item))
    ordered = [m for m in [ANY_MODEL, *report["models"]] if m in models]
    ordered += [m for m in models if m not in ordered]
    lines = [
        "| model | " + " | ".join(families) + " |",
        "|---|" + "---|" * len(families),
    ]
    for model in ordered:
        cells = []
        for family in families:
            items = [
                i
                for i in report["matrix"]
                if column(i) == model and i["rule"].split(".", 1)[0] == family
            ]
            judged = [i for i in items if i["status"] in ("pass", "fail", "warn")]
            fails = sum(i["status"] == "fail" for i in items)
            warns = sum(i["status"] == "warn" for i in items)
            blocked = sum(i["status"] == "not_observed" and i["blocking"] for i in items)
            unseen = sum(i["status"] == "not_observed" and not i["blocking"] for i in items)
            if not items:
                cells.append("·")
                continue
            parts = []
            if fails:
                parts.append(f"❌ {fails}/{len(judged)}")
            elif warns:
                parts.append(f"⚠️ {warns}/{len(judged)}")
            elif judged:
                parts.append(f"✅ {len(judged)}")
            if blocked:
                parts.append(f"⏸️ {blocked}")
            if unseen:
                parts.append(f"⏭️ {unseen}")
            cells.append(" ".join(parts))
        lines.append(f"| {model_label(model, report.get('aliases'))} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Cells count rules per model: ✅ held, ❌ MUST rules broken / observed, "
        "⚠️ SHOULD rules warned / observed, ⏸️ not observed for a reason that blocks a PASS "
        "(throttled, refused key, no control, ...), ⏭️ not observed (budget, not applicable), "
        "· none."
    )
    return lines


def _item_block(item: dict[str, Any], report: dict[str, Any], cases: dict[str, Any]) -> str:
    rules = {r["id"]: r for r in report["rules"]}
    rule = rules.get(item["rule"], {})
    lines = [
        f"#### {ICON[item['status']]} `{item['rule']}` on "
        + ", ".join(_code(model_label(m, report.get("aliases"))) for m in item["models"])
        + f" ({item['level']})",
        "",
    ]
    if rule.get("description"):
        lines.append(f"{_cell(rule['description'])}  ")
    if rule.get("source"):
        lines.append(f"Source: {_cell(rule['source'])}")
    lines.append("")
    lines += [f"- {_cell(m)}" for m in item["messages"]]
    ids = item["failed_cases"] or item["warned_cases"]
    if len(ids) > 1:
        shown = ", ".join(f"`{i}`" for i in ids[:8])
        lines.append(f"- {len(ids)} cases: {shown}" + (" …" if len(ids) > 8 else ""))
    example = cases.get(item["example"] or "")
    if example:
        lines.append("")
        lines.append(
            f"Example `{example['id']}` ({_cell(example['title'] or example['kind'])}): "
            f"answered **{example['status'] if example['status'] is not None else 'nothing'}**"
            + (
                f" ({example['response']['error']})"
                if (example.get("response") or {}).get("error")
                else ""
            )
        )
        excerpt = (example.get("response") or {}).get("excerpt")
        if excerpt:
            lines += ["", _fence(excerpt[:800], "text")]
        if example.get("reproducer"):
            lines += ["", _fence(example["reproducer"], "sh")]
    return "\n".join(lines) + "\n"


def _by_rule(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Matrix entries merged per rule: one block lists every model the rule broke on."""
    merged: dict[str, dict[str, Any]] = {}
    for item in items:
        into = merged.setdefault(
            item["rule"],
            {**item, "models": [], "messages": [], "failed_cases": [], "warned_cases": []},
        )
        into["models"].append(column(item))
        into["messages"] += [m for m in item["messages"] if m not in into["messages"]][:5]
        into["failed_cases"] += item["failed_cases"]
        into["warned_cases"] += item["warned_cases"]
    return list(merged.values())


def render_markdown(report: dict[str, Any]) -> str:
    """The Markdown summary of a report.json document."""
    verdict = report["verdict"]
    summary = report["summary"]
    budget = report["budget"]
    cases = {c["id"]: c for c in report["cases"]}
    head = [
        f"## {VERDICT_ICON[verdict['status']]} imgconf: {verdict['headline']}",
        "",
        f"Target {_code(report['target'])} · profile {_code(report['profile'])} · "
        f"seed {report['seed']} · imgconf {report['tool']['version']}"
        + (" · replayed from a recording" if report["mode"] == "replay" else ""),
        "",
        "Cases: "
        + ", ".join(f"{n} {name}" for name, n in summary["outcomes"].items() if n)
        + f" · images {budget['spent']['images']}"
        + (f" · cost ≈ ${budget['spent']['cost']:.2f}" if budget["spent"]["cost"] else "")
        + f" · {report['timing']['duration']:.1f} s",
        "",
    ]
    if (report.get("tls") or {}).get("verify") is False:
        head += [
            "> **TLS not verified** (`--insecure`): the target's certificate was not checked.",
            "",
        ]
    if report.get("replay") and report["replay"]["not_rejudged"]:
        rules = ", ".join(f"`{r}`" for r in report["replay"]["not_rejudged"])
        head += [
            "> Parts of the recording were left out (images, or bodies over its caps): "
            f"not judged again: {rules}.",
            "",
        ]
    parts = ["\n".join(head), "\n".join(_family_table(report)) + "\n"]
    if verdict["status"] == "incomplete":
        reasons = [_cell(r) for r in verdict.get("incomplete_reasons", [])]
        parts.append(
            "### Why not a PASS\n\n"
            "No MUST rule failed, but imgconf could not observe what a PASS needs:\n\n"
            + "\n".join(f"- {reason}" for reason in reasons)
            + "\n"
        )
    failed = _by_rule([i for i in report["matrix"] if i["status"] == "fail"])
    warned = _by_rule([i for i in report["matrix"] if i["status"] == "warn"])
    size = sum(len(p) for p in parts)
    if failed:
        parts.append(f"### Failures ({len(failed)} MUST rules)\n")
        for index, item in enumerate(failed):
            block = _item_block(item, report, cases)
            if size + len(block) > MAX_CHARS * 0.75:
                parts.append(
                    f"_…and {len(failed) - index} more failures: see report.html or report.json._\n"
                )
                break
            parts.append(block)
            size += len(block)
    if warned:
        inner = []
        for index, item in enumerate(warned):
            block = _item_block(item, report, cases)
            if size + len(block) > MAX_CHARS:
                inner.append(f"_…and {len(warned) - index} more warnings: see report.html._\n")
                break
            inner.append(block)
            size += len(block)
        parts.append(
            f"<details><summary>⚠️ {len(warned)} SHOULD rules warned</summary>\n\n"
            + "\n".join(inner)
            + "\n</details>\n"
        )
    not_sent = report["coverage"]["not_sent"]
    if not_sent:
        reasons: dict[str, int] = {}
        for item in not_sent:
            why = item.get("note") or item["reason"] or "not sent"
            reasons[why] = reasons.get(why, 0) + 1
        parts.append(
            "### Not sent\n\n"
            + "\n".join(f"- {n} cases: {_cell(reason)}" for reason, n in reasons.items())
            + "\n"
        )
    return "\n".join(parts)
