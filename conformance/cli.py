"""The ``imgconf`` command line.

Each command parses its flags here and hands them to the module that does the job; those
modules are imported lazily so that ``imgconf --help`` stays instant. Bad input to the tool ends
in one line on stderr and exit status 2 (``SetupError``, click's usage errors); a broken server
under test never does: it is a finding in the report.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__
from .errors import SetupError

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def _die(message: str) -> NoReturn:
    from .redact import printable

    click.echo(f"imgconf: error: {printable(message)}", err=True)
    sys.exit(EXIT_USAGE)


def _models_option(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(m.strip() for m in value.split(",") if m.strip())


def _call(target: Callable[..., int], **kwargs: Any) -> NoReturn:
    """Run a command's job and exit with its status; SetupError becomes one line and exit 2."""
    try:
        status = target(**kwargs)
    except SetupError as exc:
        _die(str(exc))
    sys.exit(status)


# Options that several commands share, defined once so that they read the same everywhere.
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
    callback=lambda _ctx, _param, value: _models_option(value),
    help="Only these models of the profile (default: all of them).",
)
seed_option = click.option(
    "--seed", type=int, default=0, show_default=True, help="The plan's seed."
)
max_cost_option = click.option(
    "--max-cost",
    type=click.FloatRange(min=0),
    default=None,
    metavar="USD",
    help="Spend at most this, at the profile's prices.",
)
max_images_option = click.option(
    "--max-images",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Generate at most N images.",
)
explore_option = click.option(
    "--explore",
    type=click.IntRange(min=0),
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


def fail_on_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--fail-on",
        type=click.Choice(["must", "should"]),
        default="must",
        show_default=True,
        help=help_text,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="imgconf")
def main() -> None:
    """Conformance tests for OpenAI-compatible POST /v1/images/generations endpoints.

    Run `imgconf run` with no flags to test the embedded reference server and write a report.
    """


# --- contract ------------------------------------------------------------------------------


@main.command("rules")
@profile_option
@click.option("--model", "model", default=None, help="Only the rules that apply to this model.")
@click.option("--level", type=click.Choice(["MUST", "SHOULD"]), default=None)
def rules_command(profile: str, model: str | None, level: str | None) -> None:
    """List the contract's rules as a profile holds them."""
    from .contract.profiles import load_profile

    try:
        prof = load_profile(profile)
    except SetupError as exc:
        _die(str(exc))
    if model and model not in prof.models:
        _die(f"--model: {model!r} is not a model of profile {prof.name} ({', '.join(prof.models)})")
    for rule in prof.rules().values():
        if (
            (model and model not in rule.models)
            or (level and rule.level != level)
            or not rule.models
        ):
            continue
        scope = ",".join(rule.models) if len(rule.models) < len(prof.models) else "*"
        click.echo(f"{rule.id:40} {rule.level:6} {scope:30} {rule.description}")


@main.command("profiles")
def profiles_command() -> None:
    """List the built-in profiles."""
    from .contract.profiles import builtin_profiles, load_profile

    for name in builtin_profiles():
        prof = load_profile(name)
        click.echo(f"{name:14} {len(prof.models)} models  {prof.title}")


@main.command("spec-diff")
@click.argument("openapi_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def spec_diff_command(openapi_file: Path, as_json: bool) -> None:
    """Compare an OpenAI OpenAPI file with imgconf's contract (models, enums, bounds, fields).

    Exit 0 when they agree, 1 when they differ, 2 when the file cannot be read.
    """
    from .contract.specdiff import spec_diff_cli

    _call(spec_diff_cli, openapi_file=openapi_file, as_json=as_json)


# --- running --------------------------------------------------------------------------------


@main.command("run")
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="The target, as the OpenAI SDK takes it (.../v1). Default: the embedded reference server.",
)
@click.option(
    "--api-key",
    default=None,
    metavar="KEY",
    help="The target's key. Default: $OPENAI_API_KEY. Never written anywhere.",
)
@models_option
@profile_option
@report_dir_option
@seed_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Seconds one request may take, connection to last byte.",
)
@click.option(
    "--rate",
    default=None,
    metavar="REQUESTS[,IMAGES]",
    help="Keep to this many requests (and images) per minute, e.g. 50,5 (default: the "
    "profile's rate, else none).",
)
@click.option(
    "--max-duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="S",
    help="Stop sending after S seconds; the run is then INCOMPLETE (exit 3 unless a MUST broke).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Requests in flight at once.",
)
@max_cost_option
@max_images_option
@explore_option
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.har",
    help="Record every exchange as HAR 1.2 (key redacted).",
)
@click.option(
    "--record-cap",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    metavar="MIB",
    help="The recording's largest size; bodies past it are left out, each entry saying so.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="OLD.json",
    help="Compare with an earlier report.json; exit 1 on a new MUST failure.",
)
@click.option(
    "--from",
    "from_report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="REPORT.json",
    help="Send again cases of an earlier run (same bodies: its profile, models and seed).",
)
@click.option(
    "--only",
    default="failed,unobserved",
    show_default=True,
    metavar="failed,warned,unobserved",
    help="With --from: which of its cases to send again.",
)
@click.option(
    "--allow-private-urls",
    is_flag=True,
    help="Fetch image URLs on loopback, private, link-local or metadata addresses even when "
    "the target is not on one.",
)
@click.option(
    "--limit",
    "limits",
    multiple=True,
    metavar="NAME=VALUE",
    help="Raise or lower a bound (repeatable): body_cap, error_cap, fetch_cap, inflight_cap "
    "(bytes, or with KiB/MiB/GiB), retries, max_retry_wait, retry_budget (seconds), "
    "retry_budget_count.",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Send this header to the target on every request (repeatable). A VALUE written "
    "env:VAR is read from $VAR and redacted everywhere, like the key.",
)
@click.option(
    "--ca-bundle",
    default=None,
    metavar="FILE",
    help="Verify the target's TLS certificate with the CAs of this PEM file.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Do not verify the target's TLS certificate (noted on stderr and in every report).",
)
@click.option(
    "--proxy",
    default=None,
    metavar="URL",
    help="Send the target's traffic through this http(s) proxy (image URLs are fetched directly).",
)
@fail_on_option("Fail the run on MUST failures only, or on SHOULD warnings too.")
def run_command(allow_private_urls: bool, limits: tuple[str, ...], **options: Any) -> None:
    """Send the plan to an endpoint, judge every answer, write the reports.

    Exit 0 (PASS) when no MUST rule failed and everything a PASS needs was observed, 1 (FAIL)
    when a MUST rule broke, 3 (INCOMPLETE) when something in scope could not be observed
    (throttled, refused key, no accepted control, interrupted, ...), 2 for a usage or set-up
    error.
    """
    from .engine.runner import run_cli

    options["extra"] = {"allow_private_urls": True} if allow_private_urls else {}
    options["limits"] = limits
    _call(run_cli, **options)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port (default: a free one)."
)
@click.option(
    "--api-key",
    envvar="OPENAI_API_KEY",
    default=None,
    help="The key clients must send (default: OPENAI_API_KEY, else a random one, printed).",
)
@click.option("--lenient", is_flag=True, help="Ignore what the server does not use (SHOULD rules).")
@click.option(
    "--quirk",
    "quirks",
    multiple=True,
    metavar="NAME[:VALUE]",
    help="Break the contract on purpose (repeatable; see --list-quirks).",
)
@click.option("--list-quirks", is_flag=True, help="List the quirks and the rules they break.")
@click.option(
    "--url-ttl",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Seconds an image URL stays valid.",
)
@click.option(
    "--profile",
    default=None,
    metavar="NAME|FILE",
    help="Be reached this profile's way: its base path and path, auth style, required query.",
)
@click.option(
    "--realistic-images",
    is_flag=True,
    help="Answer photographic-like pictures of 1-4 MB, as real vendors do (for benchmarks).",
)
def serve_command(
    host: str,
    port: int,
    api_key: str | None,
    lenient: bool,
    quirks: tuple[str, ...],
    list_quirks: bool,
    url_ttl: float,
    profile: str | None,
    realistic_images: bool,
) -> None:
    """Run the reference server: an OpenAI-like POST /v1/images/generations on loopback."""
    from .server.launcher import list_quirks as print_quirks
    from .server.launcher import serve_forever

    if list_quirks:
        _call(print_quirks)
    _call(
        serve_forever,
        host=host,
        port=port,
        api_key=api_key,
        lenient=lenient,
        quirks=quirks,
        url_ttl=url_ttl,
        profile=profile,
        realistic_images=realistic_images,
    )


@main.command("plan")
@models_option
@profile_option
@seed_option
@max_cost_option
@max_images_option
@explore_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan_command(
    models: tuple[str, ...] | None,
    profile: str,
    seed: int,
    max_cost: float | None,
    max_images: int | None,
    explore: int,
    as_json: bool,
) -> None:
    """Show the cases a run would send, the images and cost, and what the budget cuts."""
    from .generation.planning import plan_cli

    _call(
        plan_cli,
        profile=profile,
        models=models,
        seed=seed,
        max_cost=max_cost,
        max_images=max_images,
        explore=explore,
        as_json=as_json,
    )


# --- recordings and regressions ------------------------------------------------------------


@main.command("replay")
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
    from .reports.replay import replay_cli

    _call(replay_cli, file=file, report_dir=report_dir, profile=profile, fail_on=fail_on)


@main.command("diff")
@click.argument("old", metavar="OLD.json", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", metavar="NEW.json", type=click.Path(dir_okay=False, path_type=Path))
@fail_on_option("Exit 1 on a new MUST failure only, or on a new SHOULD warning too.")
def diff_command(old: Path, new: Path, fail_on: str) -> None:
    """Compare two report.json files: new failures, fixed ones, changed warnings.

    Exit 1 on a new MUST failure (or a new warning with --fail-on should), else 3 when the new
    run is INCOMPLETE, else 0; 2 when a file cannot be read.
    """
    from .reports.diff import diff_cli

    _call(diff_cli, old=old, new=new, fail_on=fail_on)


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
        from .redact import printable

        click.echo(f"imgconf: error: {printable(str(exc))}", err=True)
        return EXIT_USAGE
    except SystemExit as exc:  # commands exit with their status through _call and _die
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else 1)
    return EXIT_OK


def run() -> NoReturn:
    sys.exit(main_entry())
