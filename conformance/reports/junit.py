"""``junit.xml``: one test case per rule x model, for CI test viewers and gates.

Each entry of the report's matrix becomes ``<testcase classname="imgconf.<model>" name="<rule>">``
so that viewers group by model and a test's name is the rule id; a cell of another endpoint than
generations says it in both (``imgconf.edits.<model>``, ``edits/<rule>``), while generations'
names stay as they were, so that older junit.xml files still compare. A broken MUST rule is a
``<failure>`` whose text holds the messages and a ``curl`` reproducer. A SHOULD warning, an
inconclusive rule (rate-limited) and a rule the run never sent are ``<skipped>`` with a message
that says which: CI viewers show skipped tests with their message, and a warning must not fail a
build unless ``--fail-on should`` asked for it (then it is a failure too).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from ..generation.cases import ANY_MODEL
from .document import column

__all__ = ["junit_counts", "render_junit", "testcase_name"]

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
#: The model key of rules that do not depend on a model.
ANY_MODEL_CLASS = "any-model"


def _clean(text: str) -> str:
    """Text XML 1.0 can carry (a server's control characters would make the file unparsable)."""
    return _XML_INVALID.sub("\ufffd", text)


def _classname(model: str, endpoint: str | None = None) -> str:
    name = ANY_MODEL_CLASS if model == ANY_MODEL else model
    return f"imgconf.{endpoint}.{name}" if endpoint else f"imgconf.{name}"


def testcase_name(item: dict[str, Any]) -> tuple[str, str]:
    """The (classname, name) of a matrix entry's test case."""
    endpoint = item.get("endpoint")
    name = f"{endpoint}/{item['rule']}" if endpoint else item["rule"]
    return _classname(item["model"], endpoint), name


def junit_kind(item: dict[str, Any], fail_on: str) -> str:
    """``failure``, ``skipped`` or ``passed`` for a matrix entry."""
    if item["status"] == "fail" or (item["status"] == "warn" and fail_on == "should"):
        return "failure"
    if item["status"] in ("warn", "not_observed"):
        return "skipped"
    return "passed"


def junit_counts(report: dict[str, Any]) -> dict[str, int]:
    """Tests, failures and skipped as ``render_junit`` writes them for this report."""
    fail_on = report["verdict"]["fail_on"]
    kinds = [junit_kind(item, fail_on) for item in report["matrix"]]
    if report["verdict"]["status"] == "incomplete":
        kinds.append("failure")  # the synthetic verdict test case
    return {
        "tests": len(kinds),
        "failures": kinds.count("failure"),
        "skipped": kinds.count("skipped"),
    }


def _details(item: dict[str, Any], cases: dict[str, dict[str, Any]]) -> str:
    lines = [f"{item['level']} {item['rule']} on {column(item)}: {item['status']}"]
    lines += [f"- {m}" for m in item["messages"]]
    ids = item["failed_cases"] or item["warned_cases"]
    if ids:
        shown = ", ".join(ids[:10]) + (f" (+{len(ids) - 10} more)" if len(ids) > 10 else "")
        lines.append(f"cases: {shown}")
    example = cases.get(item["example"] or "")
    if example is not None:
        lines.append(f"example case {example['id']}: {example['title'] or example['rule']}")
        if example.get("response") and example["response"].get("excerpt"):
            status = example["status"]
            lines.append(f"answer ({status}): {example['response']['excerpt'][:600]}")
        if example.get("reproducer"):
            lines += ["reproduce with:", example["reproducer"]]
    return "\n".join(lines)


def render_junit(report: dict[str, Any]) -> bytes:
    """The JUnit XML document (UTF-8 bytes with an XML declaration)."""
    fail_on = report["verdict"]["fail_on"]
    counts = junit_counts(report)
    cases = {c["id"]: c for c in report["cases"]}
    suites = ET.Element(
        "testsuites",
        name="imgconf",
        tests=str(counts["tests"]),
        failures=str(counts["failures"]),
        errors="0",
        skipped=str(counts["skipped"]),
        time=f"{report['timing']['duration']:.3f}",
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"imgconf {report['profile']} {report['target']}",
        tests=str(counts["tests"]),
        failures=str(counts["failures"]),
        errors="0",
        skipped=str(counts["skipped"]),
        time=f"{report['timing']['duration']:.3f}",
    )
    if report["timing"]["started"]:
        suite.set("timestamp", report["timing"]["started"])
    properties = ET.SubElement(suite, "properties")
    for name in ("target", "profile", "seed"):
        ET.SubElement(properties, "property", name=name, value=_clean(str(report[name])))
    ET.SubElement(properties, "property", name="verdict", value=report["verdict"]["headline"])
    elapsed = {c["id"]: c["elapsed"] for c in report["cases"]}
    for item in report["matrix"]:
        ids = item["failed_cases"] or item["warned_cases"] or []
        time = sum(elapsed.get(i, 0.0) for i in ids) if ids else 0.0
        classname, name = testcase_name(item)
        testcase = ET.SubElement(suite, "testcase", classname=classname, name=name)
        testcase.set("time", f"{time:.3f}")
        kind = junit_kind(item, fail_on)
        first = item["messages"][0] if item["messages"] else item["status"]
        if kind == "failure":
            element = ET.SubElement(
                testcase,
                "failure",
                message=_clean(f"{item['level']} {item['rule']}: {first}")[:1000],
                type=f"{item['level']}.{item['status']}",
            )
            element.text = _clean(_details(item, cases))
        elif kind == "skipped":
            label = (
                "SHOULD warning"
                if item["status"] == "warn"
                else f"not observed ({', '.join(item['reasons'])})"
            )
            element = ET.SubElement(testcase, "skipped", message=_clean(f"{label}: {first}")[:1000])
            element.text = _clean(_details(item, cases))
    verdict = report["verdict"]
    if verdict["status"] == "incomplete":
        testcase = ET.SubElement(suite, "testcase", classname="imgconf", name="verdict", time="0")
        element = ET.SubElement(
            testcase,
            "failure",
            message=_clean(verdict["headline"])[:1000],
            type="INCOMPLETE",
        )
        element.text = _clean("\n".join(verdict.get("incomplete_reasons", [])))
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
