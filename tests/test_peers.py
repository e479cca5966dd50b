"""imgconf against real servers nobody here wrote, and the README's compatibility table.

Slow and networked for the installs: marked ``peers``, excluded by default. Run with
``pytest -m peers`` (all four) or ``pytest -m peers -k llmock``. Each test installs its peer
(once, under /tmp/imgconf-peers), runs ``tools/peers.py`` for it, and checks that the
rules it broke are exactly the ones the README's table lists for it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "peers.py"
README = ROOT / "README.md"
PEERS = ("litellm", "llmock", "mock-ai-api", "prism")

pytestmark = pytest.mark.peers


def table_rows() -> dict[str, dict[str, object]]:
    """The compatibility table: peer -> verdict, MUST rules, SHOULD rules, intermittent rules.

    A rule id in backticks is a broken rule; one followed by a dagger (``†``) breaks only in
    some runs (it depends on which request a crashed connection takes down).
    """
    text = README.read_text()
    section = text.split("## Compatibility with real servers", 1)[1]
    rows: dict[str, dict[str, object]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] not in PEERS:
            continue
        must, should = cells[3], cells[4]
        rows[cells[0]] = {
            "version": cells[1],
            "verdict": cells[2].strip("*").lower(),
            "must": set(re.findall(r"`([a-z0-9_.\-]+)`", must)),
            "should": set(re.findall(r"`([a-z0-9_.\-]+)`", should)),
            "intermittent": set(re.findall(r"`([a-z0-9_.\-]+)`\s*†", must + should)),
        }
    return rows


def test_the_table_lists_every_peer() -> None:
    assert set(table_rows()) == set(PEERS)


@pytest.mark.parametrize("peer", PEERS)
def test_peer_run_matches_the_compatibility_table(peer: str, tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--peer",
            peer,
            "--report-root",
            str(tmp_path),
            "--summary-json",
            str(summary_file),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (run,) = json.loads(summary_file.read_text())
    assert (tmp_path / peer / "report.json").is_file()
    row = table_rows()[peer]
    assert run["version"] == row["version"]
    assert run["verdict"] == row["verdict"]
    intermittent = row["intermittent"]
    assert set(run["must_failures"]) - intermittent == row["must"] - intermittent
    assert set(run["should_warnings"]) - intermittent == row["should"] - intermittent
