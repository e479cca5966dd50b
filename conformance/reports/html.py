"""``report.html``: one self-contained page a person reads to see what passed and what to fix.

No network at all: the CSS is inline, there is no script, and the gallery's thumbnails are
``data:`` URIs (PNG files that imgconf re-encoded itself, never the server's bytes). Everything
from the server — messages, bodies, headers, URLs — is hostile input and goes through
:func:`html.escape`; nothing from it ever lands in an attribute unescaped or in a link.

The page reads top-down: a verdict banner, the model x rule matrix coloured by outcome, each
failure with its rule and source, request, answer and a ``curl`` reproducer, the warnings folded,
a gallery of what the server produced, coverage, and every case.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..generation.cases import ANY_MODEL
from ..settings import GALLERY_BYTES, GALLERY_IMAGES
from .document import column, model_label
from .inputs_gallery import edit_gallery

__all__ = ["GALLERY_BYTES", "GALLERY_IMAGES", "Thumbnail", "render_html"]

#: Cases listed in the full table at the end.
CASE_ROWS = 3000
#: (case id, image index, thumbnail bytes): what the gallery may show.
Thumbnail = tuple[str, int, bytes]

CSS = """
:root{--pass:#1a7f37;--fail:#cf222e;--warn:#9a6700;--inc:#8250df;--skip:#6e7781;
--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--code:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1320px;margin:0 auto;padding:0 24px 48px}
h2{margin:32px 0 8px;font-size:20px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{margin:0 0 6px;font-size:16px}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:var(--code);border:1px solid var(--line);border-radius:6px;padding:8px 10px;
overflow-x:auto;white-space:pre-wrap;word-break:break-all;max-height:320px;margin:4px 0 10px}
.banner{color:#fff;padding:22px 24px;margin:0 0 16px}
.banner.pass{background:var(--pass)}.banner.fail{background:var(--fail)}
.banner.incomplete{background:var(--warn)}
.banner .big{font-size:30px;font-weight:700;letter-spacing:.5px}
.banner .headline{font-size:17px;margin-top:4px}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:8px 24px;
max-width:1320px;margin:0 auto;padding:0 24px}
.facts div{border-left:3px solid var(--line);padding-left:8px}
.facts b{display:block;font-size:11px;text-transform:uppercase;color:var(--muted)}
.legend span{display:inline-block;margin-right:14px}
table{border-collapse:collapse}
.matrix th,.matrix td{border:1px solid var(--line);padding:2px 6px;text-align:center}
.matrix th.rule,.matrix td.rule{text-align:left;white-space:nowrap}
.matrix thead th{position:sticky;top:0;background:#fff;font-size:12px}
.matrix tr.family td{background:#eef1f4;font-weight:600;text-align:left}
.matrix td.c{min-width:64px;font-weight:600}
.c a{color:inherit;text-decoration:none;display:block}
.s-pass{background:#dafbe1;color:var(--pass)}.s-fail{background:#ffebe9;color:var(--fail)}
.s-warn{background:#fff8c5;color:var(--warn)}.s-blocked{background:#fbefff;color:var(--inc)}
.s-not_observed{background:#f6f8fa;color:var(--skip)}.s-none{color:#c0c6cc}
.lvl{font-size:11px;color:var(--muted)}
.card{border:1px solid var(--line);border-left:5px solid var(--fail);border-radius:6px;
padding:12px 14px;margin:12px 0}
.card.warn{border-left-color:var(--warn)}.card.not_observed{border-left-color:var(--inc)}
.card .meta{color:var(--muted);font-size:12px}
.card ul{margin:4px 0 8px;padding-left:20px}
.two{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.two>div{min-width:0}
.label{font-size:12px;color:var(--muted);margin-top:8px}
.fix ol{margin:4px 0;padding-left:22px}.fix li{margin:2px 0}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px;font-size:12px}
figure.bad{border:2px solid var(--fail)}
figure .img{height:160px;display:flex;align-items:center;justify-content:center;
background:repeating-conic-gradient(#e8e8e8 0 25%,#fff 0 50%) 0 0/16px 16px}
figure img{max-width:160px;max-height:160px}
figcaption{margin-top:4px;word-break:break-all}
.ok{color:var(--pass);font-weight:600}.bad-t{color:var(--fail);font-weight:600}
.cases td,.cases th{border-bottom:1px solid var(--line);padding:2px 8px;text-align:left;
font-size:12px;vertical-align:top}
details>summary{cursor:pointer;font-weight:600;margin:8px 0}
.muted{color:var(--muted)}
"""

STATUS_TEXT = {
    "pass": "✓ pass",
    "fail": "✗ fail",
    "warn": "! warn",
    "not_observed": "– not observed",
}
CELL_SYMBOL = {"pass": "✓", "fail": "✗", "warn": "!", "not_observed": "–", "blocked": "?"}
_ANCHOR = re.compile(r"[^A-Za-z0-9_.-]")


def e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _anchor(rule: str, model: str) -> str:
    return "f-" + _ANCHOR.sub("_", f"{rule}--{model}")


def _banner(report: dict[str, Any]) -> str:
    verdict = report["verdict"]
    word = {"pass": "PASS", "fail": "FAIL", "incomplete": "INCOMPLETE"}[verdict["status"]]
    meaning = {
        "pass": "No MUST rule of the contract failed, and everything a PASS needs was observed.",
        "fail": "At least one MUST rule failed: the target is not conformant.",
        "incomplete": "No MUST rule failed, but imgconf could not observe what a PASS needs: "
        "not a pass.",
    }[verdict["status"]]
    return (
        f'<header class="banner {e(verdict["status"])}"><div class="big">{word}</div>'
        f'<div class="headline">{e(verdict["headline"])}</div>'
        f'<div class="headline">{e(meaning)} Exit status {e(verdict["exit_code"])}.</div>'
        + _tls_note(report)
        + "</header>"
    )


def _tls_note(report: dict[str, Any]) -> str:
    """A visible line when the target's TLS certificate was not verified (``--insecure``)."""
    if (report.get("tls") or {}).get("verify") is not False:
        return ""
    return (
        '<div class="headline"><strong>TLS not verified</strong> (--insecure): the '
        "target's certificate was not checked.</div>"
    )


def _facts(report: dict[str, Any]) -> str:
    budget = report["budget"]
    outcomes = report["summary"]["outcomes"]
    spent = budget["spent"]
    cost = f"${spent['cost']:.2f}" if isinstance(spent.get("cost"), int | float) else "unknown"
    limits = []
    if budget["requested"]["max_cost"] is not None:
        limits.append(f"max ${budget['requested']['max_cost']}")
    if budget["requested"]["max_images"] is not None:
        limits.append(f"max {budget['requested']['max_images']} images")
    facts = [
        ("target", report["target"]),
        ("profile", report["profile"]),
        ("models", ", ".join(model_label(m, report.get("aliases")) for m in report["models"])),
        ("seed", report["seed"]),
        ("cases", ", ".join(f"{n} {k}" for k, n in outcomes.items() if n) or "none"),
        (
            "images / cost",
            f"{spent['images']} images, {cost}" + (f" ({', '.join(limits)})" if limits else ""),
        ),
        (
            "duration",
            f"{report['timing']['duration']:.2f} s"
            + (f", started {report['timing']['started']}" if report["timing"]["started"] else ""),
        ),
        (
            "imgconf",
            report["tool"]["version"]
            + (" (replay of a recording)" if report["mode"] == "replay" else ""),
        ),
    ]
    return (
        '<section class="facts">'
        + "".join(f"<div><b>{e(k)}</b>{e(v)}</div>" for k, v in facts)
        + "</section>"
    )


def _columns(report: dict[str, Any]) -> list[str]:
    """The matrix's columns: generations' models as always, then each other endpoint's."""
    present = {column(i) for i in report["matrix"]}
    models = [m for m in [ANY_MODEL, *report["models"]] if m in present]
    models += sorted(m for m in present - set(models) if "/" not in m)
    rank = {m: i for i, m in enumerate([ANY_MODEL, *report["models"]])}
    endpoints = list(dict.fromkeys(i["endpoint"] for i in report["matrix"] if "endpoint" in i))
    others = sorted(
        (m for m in present if "/" in m),
        key=lambda m: (endpoints.index(m.split("/", 1)[0]), rank.get(m.split("/", 1)[1], 99), m),
    )
    return models + others


def _matrix(report: dict[str, Any]) -> str:
    cells = {(i["rule"], column(i)): i for i in report["matrix"]}
    models = _columns(report)
    head = "".join(f"<th>{e(model_label(m, report.get('aliases')))}</th>" for m in models)
    rows = []
    family = None
    families: dict[str, int] = {}
    for rule in report["rules"]:
        families.setdefault(rule["family"], len(families))
    ordered = sorted(
        report["rules"], key=lambda r: families[r["family"]]
    )  # stable: catalogue order
    for rule in ordered:
        if rule["family"] != family:
            family = rule["family"]
            rows.append(f'<tr class="family"><td colspan="{len(models) + 1}">{e(family)}</td></tr>')
        tds = []
        for model in models:
            item = cells.get((rule["id"], model))
            if item is None:
                tds.append('<td class="c s-none">·</td>')
                continue
            status = item["status"]
            title = f"{rule['id']} on {model_label(model)}: {status.replace('_', ' ')}"
            if status == "not_observed":
                title += f" ({', '.join(item['reasons'])})"
                status = "blocked" if item["blocking"] else status
            else:
                title += f", {item['cases']} cases"
            if item["messages"]:
                title += " — " + item["messages"][0][:200]
            symbol = CELL_SYMBOL[status]
            if status in ("fail", "warn", "blocked"):
                symbol = f'<a href="#{_anchor(rule["id"], model)}">{symbol}</a>'
            tds.append(f'<td class="c s-{status}" title="{e(title)}">{symbol}</td>')
        rows.append(
            f'<tr><td class="rule" title="{e(rule["description"])}"><code>{e(rule["id"])}</code> '
            f'<span class="lvl">{e(rule["level"])}</span></td>{"".join(tds)}</tr>'
        )
    legend = "".join(
        f'<span><span class="s-{s}">&nbsp;{CELL_SYMBOL[s]}&nbsp;</span> {e(t)}</span>'
        for s, t in (
            ("pass", "held"),
            ("fail", "MUST broken"),
            ("warn", "SHOULD warning"),
            ("blocked", "not observed: throttled, refused key, no control, ... (blocks a PASS)"),
            ("not_observed", "not observed: budget or not applicable"),
        )
    )
    return (
        f'<p class="legend">{legend}<span class="s-none">· not applicable</span></p>'
        f'<table class="matrix"><thead><tr><th class="rule">rule</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _json_block(value: Any) -> str:
    return f"<pre>{e(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"


def _grouped(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Matrix entries grouped by rule (one card per rule, listing its models), in order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(item["rule"], []).append(item)
    return list(groups.values())


def _card(items: list[dict[str, Any]], rules: Mapping[str, Any], cases: Mapping[str, Any]) -> str:
    """One rule's card: what it says and where from, where it broke, an example and a reproducer."""
    first = items[0]
    rule = rules.get(first["rule"], {})
    status = first["status"]
    klass = {"fail": "", "warn": "warn", "not_observed": "not_observed"}.get(status, "")
    models = [model_label(column(i)) for i in items]
    ids = [c for i in items for c in (i["failed_cases"] or i["warned_cases"])]
    messages: list[str] = []
    for item in items:
        messages += [m for m in item["messages"] if m not in messages]
    anchors = "".join(f'<span id="{_anchor(first["rule"], column(i))}"></span>' for i in items)
    where = (
        "on " + ", ".join(models)
        if len(models) < 4
        else f"on {len(models)} models: " + ", ".join(models)
    )
    parts = [
        f'<div class="card {klass}">{anchors}',
        f"<h3>{e(STATUS_TEXT[status])} · <code>{e(first['rule'])}</code> "
        f'<span class="lvl">{e(first["level"])}</span> {e(where)}</h3>',
        f"<div>{e(rule.get('description', ''))}</div>",
        f'<div class="meta">Source: {e(rule.get("source", "")) or "—"}</div>',
        "<ul>" + "".join(f"<li>{e(m)}</li>" for m in messages[:8]) + "</ul>",
    ]
    if len(messages) > 8:
        parts.append(f'<div class="meta">…and {len(messages) - 8} more messages</div>')
    if len(ids) > 1:
        shown = ", ".join(ids[:12]) + (" …" if len(ids) > 12 else "")
        parts.append(f'<div class="meta">{len(ids)} cases: {e(shown)}</div>')
    example = cases.get(first["example"] or "")
    if example:
        response = example.get("response") or {}
        answered = example["status"] if example["status"] is not None else "no answer"
        if response.get("error"):
            answered = f"{answered} ({response['error']})"
        request = example["request"].get("body", example["request"].get("raw"))
        if "parts" in example["request"]:
            request = example["request"]["parts"]
        parts += [
            f'<div class="label">Example: case <code>{e(example["id"])}</code> on '
            f"<code>{e(model_label(column(example)))}</code> · {e(example['title'] or example['kind'])}"
            f" · expected: {e(example['expect'])}</div>",
            '<div class="two"><div>',
            f'<div class="label">Request: POST <code>{e(example["url"])}</code> (long strings elided)</div>',
            _json_block(request) if not isinstance(request, str) else f"<pre>{e(request)}</pre>",
            "</div><div>",
            f'<div class="label">Answer: <b>{e(answered)}</b> {e(response.get("content_type") or "")}'
            f" · {e(response.get('bytes', 0))} bytes</div>",
            f"<pre>{e(response.get('excerpt') or '(empty)')}</pre>",
            "</div></div>",
        ]
        if example.get("reproducer"):
            parts += [
                '<div class="label">Reproduce (with OPENAI_API_KEY set):</div>',
                f"<pre>{e(example['reproducer'])}</pre>",
            ]
    parts.append("</div>")
    return "".join(parts)


def _fix_list(report: dict[str, Any]) -> str:
    """The broken MUST rules in one short list at the top, each linked to its card."""
    failed = [i for i in report["matrix"] if i["status"] == "fail"]
    if not failed:
        return ""
    rules = {r["id"]: r for r in report["rules"]}
    items = []
    for group in _grouped(failed):
        first = group[0]
        models = ", ".join(model_label(column(i)) for i in group)
        cases = sum(len(i["failed_cases"]) for i in group)
        items.append(
            f'<li><a href="#{_anchor(first["rule"], column(first))}"><code>{e(first["rule"])}</code></a>'
            f" — {e(rules.get(first['rule'], {}).get('description', ''))} "
            f'<span class="muted">({cases} cases; {e(models)})</span></li>'
        )
    return f'<section class="fix"><h2>What to fix</h2><ol>{"".join(items)}</ol></section>'


def _findings(report: dict[str, Any]) -> str:
    rules = {r["id"]: r for r in report["rules"]}
    cases = {c["id"]: c for c in report["cases"]}
    failed = [i for i in report["matrix"] if i["status"] == "fail"]
    warned = [i for i in report["matrix"] if i["status"] == "warn"]
    unsure = [i for i in report["matrix"] if i["blocking"]]
    out = [f"<h2>Failures: {len(_grouped(failed))} MUST rules ({len(failed)} rule × model)</h2>"]
    if failed:
        out += [_card(group, rules, cases) for group in _grouped(failed)]
    else:
        out.append('<p class="muted">No MUST rule failed.</p>')
    if warned:
        out.append(
            f"<details><summary>Warnings: {len(_grouped(warned))} SHOULD rules "
            f"({len(warned)} rule × model; not failures: grey areas where OpenAI's behaviour "
            "is the default)</summary>"
            + "".join(_card(group, rules, cases) for group in _grouped(warned))
            + "</details>"
        )
    if unsure:
        out.append(
            f"<details open><summary>Not observed: {len(unsure)} MUST or SHOULD rule × model, "
            "for reasons that keep a run from PASS</summary>"
            + "".join(_card(group, rules, cases) for group in _grouped(unsure))
            + "</details>"
        )
    return "".join(out)


def _gallery_order(report: dict[str, Any], thumbnails: Sequence[Thumbnail]) -> list[Thumbnail]:
    """Broken images first, then one of each kind (model, format, size, alpha), then the rest."""
    facts = {
        (c["id"], i["index"], i["source"] != "partial"): (c, i)
        for c in report["cases"]
        for i in c["images"]
    }
    lookup = {(cid, idx): v for (cid, idx, final), v in facts.items() if final}
    bad, first, rest, seen = [], [], [], set()
    for thumb in thumbnails:
        found = lookup.get((thumb[0], thumb[1]))
        if found is None:
            continue
        case, image = found
        kind = (case["model"], image["format"], image["width"], image["height"], image["has_alpha"])
        if not image["ok"]:
            bad.append(thumb)
        elif kind not in seen:
            seen.add(kind)
            first.append(thumb)
        else:
            rest.append(thumb)
    return bad + first + rest


def _data_uri(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        mime = "image/png"
    elif data.startswith(b"\xff\xd8\xff"):
        mime = "image/jpeg"
    else:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _gallery(report: dict[str, Any], thumbnails: Sequence[Thumbnail]) -> str:
    cases = {c["id"]: c for c in report["cases"]}
    total_images = sum(1 for c in report["cases"] for i in c["images"] if i["source"] != "partial")
    figures, used = [], 0
    ordered = _gallery_order(report, thumbnails)
    for case_id, index, data in ordered:
        if len(figures) >= GALLERY_IMAGES or used + len(data) > GALLERY_BYTES:
            break
        uri = _data_uri(data)
        if uri is None:
            continue
        case = cases[case_id]
        image = next(i for i in case["images"] if i["index"] == index and i["source"] != "partial")
        used += len(data)
        size = f"{image['width']}×{image['height']}" if image["width"] else "?"
        alpha = {True: "alpha", False: "no alpha", None: "alpha ?"}[image["has_alpha"]]
        verdict = (
            '<span class="ok">✓ matches the request</span>'
            if image["ok"]
            else '<span class="bad-t">✗ '
            + e("; ".join(image["problems"]) or "does not match")
            + "</span>"
        )
        asked = case["request"].get("body")
        asked_text = ""
        if isinstance(asked, dict):
            keys = ("size", "quality", "output_format", "background", "response_format")
            asked_text = ", ".join(f"{k}={asked[k]}" for k in keys if asked.get(k) is not None)
        figures.append(
            f'<figure class="{"" if image["ok"] else "bad"}"><div class="img">'
            f'<img alt="{e(case_id)} image {index}" src="{uri}"></div><figcaption>'
            f"<b>{e(model_label(case['model']))}</b> · {e(size)} · {e(image['format'] or '?')} · "
            f"{e(alpha)} · {e(image['bytes'])} B<br>{verdict}<br>"
            f'<span class="muted">{e(case_id)} {e(asked_text)}</span></figcaption></figure>'
        )
    if not figures:
        note = (
            "No thumbnails were kept for this run."
            if total_images
            else "The target returned no images."
        )
        return f'<h2>Gallery</h2><p class="muted">{e(note)}</p>'
    more = total_images - len(figures)
    caption = f"{len(figures)} of {total_images} returned images, broken ones first" + (
        f"; {more} more not shown" if more > 0 else ""
    )
    return (
        f'<h2>Gallery</h2><p class="muted">{e(caption)}. Thumbnails re-drawn by imgconf; '
        f"the checkerboard shows through transparent pixels.</p>"
        f'<div class="gallery">{"".join(figures)}</div>'
    )


def _coverage(report: dict[str, Any]) -> str:
    coverage = report["coverage"]
    rows = "".join(
        f"<tr><td>{e(model_label(model))}</td>"
        f"<td>{c['must']['observed']} / {c['must']['in_scope']}</td>"
        f"<td>{e(', '.join(c['must']['missing'])) or '—'}</td></tr>"
        for model, c in [
            *coverage["per_model"].items(),
            *(
                (f"{endpoint}/{model}", facts)
                for endpoint, found in (coverage.get("endpoints") or {}).items()
                for model, facts in found["per_model"].items()
            ),
        ]
    )
    origins = "".join(
        f"<tr><td>{e(origin)}</td><td>{c['sent']}</td><td>{c['skipped']}</td></tr>"
        for origin, c in coverage["by_origin"].items()
    )
    out = [
        "<h2>Coverage</h2>",
        '<table class="cases"><tr><th>model</th><th>MUST rules observed</th>'
        f"<th>not observed</th></tr>{rows}</table>",
        '<div class="label">cases by origin</div>',
        f'<table class="cases"><tr><th>origin</th><th>sent</th><th>not sent</th></tr>{origins}</table>',
    ]
    pairs = {m: p for m, p in (coverage.get("pairwise") or {}).items() if p}
    if pairs:
        out += [
            '<div class="label">pairwise coverage: value pairs the cases sent meet</div>',
            '<table class="cases"><tr><th>model</th><th>pairs covered</th></tr>'
            + "".join(
                f"<tr><td>{e(m)}</td><td>{p['covered']} / {p['total']}</td></tr>"
                for m, p in pairs.items()
            )
            + "</table>",
        ]
    if coverage.get("budget_cut"):
        out += ['<div class="label">cut by the budget</div>', _json_block(coverage["budget_cut"])]
    replay = report.get("replay")
    if replay and replay["not_rejudged"]:
        out.append(
            '<div class="label">not judged again (left out of the recording: images, or bodies '
            "over its caps)</div><ul>"
            + "".join(
                f"<li><code>{e(r)}</code>: {n} cases</li>"
                for r, n in replay["not_rejudged"].items()
            )
            + "</ul>"
        )
    return "".join(out)


def _case_table(report: dict[str, Any]) -> str:
    rows = []
    for case in report["cases"][:CASE_ROWS]:
        wrong = "; ".join(f"{f['rule']}: {f['message']}" for f in case["findings"])[:300]
        rows.append(
            f"<tr><td><code>{e(case['id'])}</code></td><td>{e(model_label(column(case)))}</td>"
            f'<td><code>{e(case["rule"])}</code></td><td class="s-{e(case["outcome"])}">'
            f"{e(case['outcome'])}</td><td>{e(case['status'] if case['status'] is not None else '—')}</td>"
            f"<td>{case['elapsed']:.3f}</td><td>{e(case['title'])}</td><td>{e(wrong or case['note'])}</td></tr>"
        )
    more = len(report["cases"]) - CASE_ROWS
    tail = f'<p class="muted">{more} more cases in report.json.</p>' if more > 0 else ""
    return (
        f"<details><summary>All {len(report['cases'])} cases</summary>"
        '<table class="cases"><tr><th>case</th><th>model</th><th>rule</th><th>outcome</th>'
        "<th>status</th><th>s</th><th>what</th><th>what was wrong</th></tr>"
        f"{''.join(rows)}</table>{tail}</details>"
    )


def render_html(report: dict[str, Any], thumbnails: Sequence[Thumbnail] = ()) -> str:
    """The HTML page of a report.json document and the thumbnails the run kept."""
    title = f"imgconf {report['verdict']['status'].upper()} — {report['target']}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>"
        f"{_banner(report)}{_facts(report)}<main>{_fix_list(report)}"
        f"<h2>Rules × models</h2>{_matrix(report)}"
        f"{_findings(report)}{_gallery(report, thumbnails)}{edit_gallery(report, thumbnails)}"
        f"{_coverage(report)}"
        f"<h2>Cases</h2>{_case_table(report)}"
        "</main></body></html>\n"
    )
