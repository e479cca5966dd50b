"""What every command shares: how a job ends, and the options several commands take.

Bad input to the tool ends in one line on stderr and exit status 2 (``SetupError``, click's
usage errors); a broken server under test never does: it is a finding in the report.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from ..errors import SetupError
from ..settings import DEFAULT_CONCURRENCY, DEFAULT_RECORD_CAP_MIB, DEFAULT_TIMEOUT

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_RECORD_CAP_MIB",
    "DEFAULT_TIMEOUT",
    "EXIT_FINDINGS",
    "EXIT_OK",
    "EXIT_USAGE",
    "VERDICT_WORDS",
    "Floats",
    "Ints",
    "call",
    "die",
    "echo",
]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
#: The console's word for an exit status.
VERDICT_WORDS = {0: "PASS", 1: "FAIL", 2: "ERROR", 3: "INCOMPLETE"}


def die(message: str) -> NoReturn:
    """One line on stderr and exit 2: bad input to the tool."""
    from ..redact import printable

    click.echo(f"imgconf: error: {printable(message)}", err=True)
    sys.exit(EXIT_USAGE)


def echo(line: str) -> None:
    """A console line, made printable (server text may hold anything)."""
    from ..redact import printable

    print(printable(line), flush=True)


def call(target: Callable[..., int], **kwargs: Any) -> NoReturn:
    """Run a command's job and exit with its status; SetupError becomes one line and exit 2."""
    try:
        status = target(**kwargs)
    except SetupError as exc:
        die(str(exc))
    sys.exit(status)


def _models(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(m.strip() for m in value.split(",") if m.strip())


class Floats(click.FloatRange):
    """A number whose bounds ``--help`` shows; the run's settings check them, so that a bad
    value gets the same message from every front end
    (:func:`~conformance.engine.run_settings.check_settings`)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return click.FLOAT.convert(value, param, ctx)


class Ints(click.IntRange):
    """A whole number whose bounds ``--help`` shows (see :class:`Floats`)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return click.INT.convert(value, param, ctx)


profile_option = click.option(
    "--profile",
    default="openai",
    show_default=True,
    metavar="NAME|FILE",
    help="A built-in profile (see `imgconf profiles`) or a profile file.",
)
models_option = click.option(
    "--models",
    default=None,
    metavar="M1,M2",
    callback=lambda _ctx, _param, value: _models(value),
    help="Only these models of the profile (default: all of them).",
)
endpoints_option = click.option(
    "--endpoint",
    "endpoints",
    default=None,
    metavar="generations,edits,variations",
    callback=lambda _ctx, _param, value: _models(value),
    help="Only these endpoints (default: every one the profile serves, its `endpoints:`).",
)
seed_option = click.option(
    "--seed", type=int, default=0, show_default=True, help="The plan's seed."
)
max_cost_option = click.option(
    "--max-cost",
    type=Floats(min=0),
    default=None,
    metavar="USD",
    help="Spend at most this, at the profile's prices.",
)
max_images_option = click.option(
    "--max-images",
    type=Ints(min=0),
    default=None,
    metavar="N",
    help="Generate at most N images.",
)
explore_option = click.option(
    "--explore",
    type=Ints(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Draw N more cases per model from the strategies (within the budget).",
)
report_dir_option = click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Where report.json, junit.xml, report.md and report.html go.",
)


api_key_option = click.option(
    "--api-key",
    default=None,
    metavar="KEY",
    help="The target's key. Default: $OPENAI_API_KEY. Never written anywhere.",
)
timeout_option = click.option(
    "--timeout",
    type=Floats(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds one request may take, connection to last byte.",
)


def reach_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """How the target is reached, for every command that sends to one: extra headers (an
    ``env:VAR`` value read from the environment and redacted like the key), TLS and a proxy."""
    for option in reversed(
        (
            click.option(
                "--header",
                "headers",
                multiple=True,
                metavar="'NAME: VALUE'",
                help="Send this header to the target on every request (repeatable). A VALUE "
                "written env:VAR is read from $VAR and redacted everywhere, like the key.",
            ),
            click.option(
                "--ca-bundle",
                default=None,
                metavar="FILE",
                help="Verify the target's TLS certificate with the CAs of this PEM file.",
            ),
            click.option(
                "--insecure",
                is_flag=True,
                help="Do not verify the target's TLS certificate (noted on stderr, and in every "
                "report of a run).",
            ),
            click.option(
                "--proxy",
                default=None,
                metavar="URL",
                help="Send the target's traffic through this http(s) proxy (image URLs are "
                "fetched directly).",
            ),
        )
    ):
        function = option(function)
    return function


def fail_on_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--fail-on",
        type=click.Choice(["must", "should"]),
        default="must",
        show_default=True,
        help=help_text,
    )
