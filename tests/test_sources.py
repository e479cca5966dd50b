"""Every rule cites where it comes from, and what it cites exists.

A source is ``openai-spec <file> <schema path>`` (a file of OpenAI's OpenAPI spec),
``POLICY.md#<section>`` (the suite's own policy, kept beside rules.yaml), a vendor page (an
``https://`` address), or an RFC; several are joined with ``; ``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conformance.contract.loader import load_contract, schemas_dir

REPO = Path(__file__).resolve().parents[1]
#: OpenAI's spec files, when present (set IMGCONF_OPENAI_SPEC to its openapi.yaml).
SPEC_DIR = Path(
    os.environ.get("IMGCONF_OPENAI_SPEC", REPO.parent / "shared" / "openai-spec" / "openapi.yaml")
).parent
_PART = re.compile(
    r"^(openai-spec (?P<files>\S+\.yaml(?:, \S+\.yaml)*)\b"
    r"|POLICY\.md#(?P<section>[a-z0-9-]+)$|https://|RFC \d+)"
)


def _policy_sections() -> set[str]:
    text = (schemas_dir() / "POLICY.md").read_text(encoding="utf-8")
    return {m.lower().replace(" ", "-") for m in re.findall(r"^## (.+)$", text, re.M)}


def _parts(source: str) -> list[str]:
    return [part.strip() for part in source.split("; ") if part.strip()]


def _every_rule() -> list:
    """Every rule of every endpoint (generations' are ``load_contract().rules``)."""
    return [rule for ep in load_contract().endpoints.values() for rule in ep.rules.values()]


@pytest.mark.parametrize("rule", sorted(_every_rule(), key=lambda r: r.id), ids=lambda r: r.id)
def test_every_source_part_is_a_spec_file_a_policy_section_or_a_page(rule) -> None:
    sections = _policy_sections()
    for part in _parts(rule.source):
        match = _PART.match(part)
        assert match, f"{rule.id}: source part {part!r} cites nothing this test knows"
        if match["section"]:
            assert match["section"] in sections, f"{rule.id}: POLICY.md has no section {part!r}"


def test_every_cited_spec_file_exists() -> None:
    if not (SPEC_DIR / "openapi.yaml").is_file():
        pytest.skip(f"OpenAI's spec not found in {SPEC_DIR} (set IMGCONF_OPENAI_SPEC to its path)")
    cited = {
        name
        for rule in _every_rule()
        for part in _parts(rule.source)
        if (m := _PART.match(part)) and m["files"]
        for name in m["files"].split(", ")
    }
    assert cited, "no rule cites a spec file"
    missing = sorted(f for f in cited if not (SPEC_DIR / f).is_file())
    assert not missing, f"cited spec files not in {SPEC_DIR}: {missing}"


def test_every_policy_section_is_cited() -> None:
    cited = {
        part.split("#", 1)[1]
        for rule in _every_rule()
        for part in _parts(rule.source)
        if part.startswith("POLICY.md#")
    }
    assert _policy_sections() <= cited
