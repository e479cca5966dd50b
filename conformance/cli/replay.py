"""``imgconf replay FILE.har``: a recording judged again with today's rules, calling no one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from .common import VERDICT_WORDS, call, fail_on_option, report_dir_option

__all__ = ["replay", "replay_command"]


def replay(
    file: Path,
    report_dir: Path,
    profile: str | None,
    fail_on: str,
    say: Callable[[str], None] = print,
) -> int:
    """Judge the recording, write the reports; the exit status of the verdict (0, 1 or 3)."""
    from ..engine.run_settings import check_fail_on
    from ..reports import replay as replaying
    from ..reports.writer import failure_lines, outcome_counts, write_reports

    check_fail_on(fail_on)
    run, info = replaying.replay(file, profile=profile, fail_on=fail_on)
    write_reports(run, report_dir, replay=info)
    say(
        f"imgconf replay: {len(run.results)} recorded cases judged again under profile "
        f"{run.profile}: {outcome_counts(run)}"
    )
    if info.not_rejudged:
        say(
            "imgconf replay: parts of the recording were elided (images, or bodies over its "
            "caps); not judged again: "
            + ", ".join(f"{rule} ({n} cases)" for rule, n in sorted(info.not_rejudged.items()))
        )
    for line in failure_lines(run):
        say(line)
    status = run.exit_code
    say(f"imgconf replay: {VERDICT_WORDS[status]}; reports in {report_dir}/")
    return status


@click.command("replay")
@click.argument("file", metavar="FILE.har", type=click.Path(dir_okay=False, path_type=Path))
@report_dir_option
@click.option(
    "--profile",
    default=None,
    metavar="NAME|FILE",
    help="Judge under this profile (default: the recording's).",
)
@fail_on_option("Fail on MUST failures only, or on SHOULD warnings too.")
def replay_command(file: Path, report_dir: Path, profile: str | None, fail_on: str) -> None:
    """Judge a recording (imgconf run --record) again with today's rules, calling no one.

    Exit 0 (PASS), 1 when a MUST rule failed, 3 when the recording cannot show what a PASS needs
    (INCOMPLETE: images left out of it, cases not answered), 2 when the file cannot be read.
    """
    call(replay, file=file, report_dir=report_dir, profile=profile, fail_on=fail_on)
