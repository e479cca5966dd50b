"""``imgconf spec-diff``: an OpenAI OpenAPI file against imgconf's contract."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import call

__all__ = ["spec_diff", "spec_diff_command"]


def spec_diff(openapi_file: Path, as_json: bool = False) -> int:
    """Print the comparison; 0 when they agree, 1 when they differ."""
    from ..contract.loader import load_contract
    from ..contract.specdiff import diff_spec, load_openapi

    result = diff_spec(load_openapi(openapi_file), load_contract(), str(openapi_file))
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        click.echo(result.render())
    return 1 if result.differences else 0


@click.command("spec-diff")
@click.argument("openapi_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def spec_diff_command(openapi_file: Path, as_json: bool) -> None:
    """Compare an OpenAI OpenAPI file with imgconf's contract (models, enums, bounds, fields).

    Exit 0 when they agree, 1 when they differ, 2 when the file cannot be read.
    """
    call(spec_diff, openapi_file=openapi_file, as_json=as_json)
