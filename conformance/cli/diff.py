"""``imgconf diff``: two report.json files compared, rule x model by rule x model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from .common import call, fail_on_option

__all__ = ["diff", "diff_command"]


def diff(old: Path, new: Path, fail_on: str = "must", say: Callable[[str], None] = print) -> int:
    """Print the diff; exit 1 on a new MUST failure (see ``RegressionDiff.exit_code``)."""
    from ..reports.diff import compare, format_diff, load_comparable

    changes = compare(load_comparable(old, "OLD"), load_comparable(new, "NEW"), ("OLD", "NEW"))
    say(format_diff(changes))
    return changes.exit_code(fail_on)


@click.command("diff")
@click.argument("old", metavar="OLD.json", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", metavar="NEW.json", type=click.Path(dir_okay=False, path_type=Path))
@fail_on_option("Exit 1 on a new MUST failure only, or on a new SHOULD warning too.")
def diff_command(old: Path, new: Path, fail_on: str) -> None:
    """Compare two report.json files: new failures, fixed ones, changed warnings.

    Exit 1 on a new MUST failure (or a new warning with --fail-on should), else 3 when the new
    run is INCOMPLETE, else 0; 2 when a file cannot be read.
    """
    call(diff, old=old, new=new, fail_on=fail_on)
