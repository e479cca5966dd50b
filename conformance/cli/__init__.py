"""The ``imgconf`` command line: one module per command, each holding its flags and its job.

The commands import what does the work lazily, so that ``imgconf --help`` stays instant. Bad
input to the tool ends in one line on stderr and exit status 2 (``SetupError``, click's usage
errors); a broken server under test never does: it is a finding in the report.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from .. import __version__
from ..errors import SetupError
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE
from .diff import diff_command
from .plan import plan_command
from .profile_draft import profile_group
from .profiles import profiles_command, rules_command
from .replay import replay_command
from .run import run_command
from .serve import serve_command
from .spec_diff import spec_diff_command

__all__ = ["EXIT_FINDINGS", "EXIT_OK", "EXIT_USAGE", "main", "main_entry", "run"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="imgconf")
def main() -> None:
    """Conformance tests for OpenAI-compatible POST /v1/images/generations endpoints.

    Run `imgconf run` with no flags to test the embedded reference server and write a report.
    """


for _command in (
    rules_command,
    profiles_command,
    spec_diff_command,
    run_command,
    serve_command,
    plan_command,
    replay_command,
    diff_command,
    profile_group,
):
    main.add_command(_command)


def main_entry(argv: Sequence[str] | None = None) -> int:
    """Entry point that turns click's usage errors into one line and exit 2."""
    try:
        main.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("imgconf: aborted", err=True)
        return 130
    except click.UsageError as exc:
        hint = f" (see 'imgconf {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else ""
        click.echo(f"imgconf: error: {exc.format_message()}{hint}", err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"imgconf: error: {exc.format_message()}", err=True)
        return EXIT_USAGE
    except SetupError as exc:
        from ..redact import printable

        click.echo(f"imgconf: error: {printable(str(exc))}", err=True)
        return EXIT_USAGE
    except SystemExit as exc:  # commands exit with their status through call and die
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else 1)
    return EXIT_OK


def run() -> NoReturn:
    """The ``imgconf`` console script."""
    # httpx imports its own command-line client whenever click, rich and pygments are installed
    # (about 40 ms of every start); the command never runs it.
    sys.modules.setdefault("httpx._main", None)
    sys.exit(main_entry())
