"""``imgconf profile draft``: probe a live endpoint and write a profile of what it answered.

The probing is :mod:`conformance.engine.drafting`'s; this module reads the flags, reaches the
target the way ``imgconf run`` does (the profile's auth style, path and query, ``--header``,
TLS, proxy), checks it once with the pre-flight (which cannot bill), lists the models, and
writes the draft.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any

import click

from .common import (
    Ints,
    api_key_option,
    call,
    echo,
    profile_option,
    reach_options,
    timeout_option,
)

__all__ = ["draft", "profile_group"]


def draft(
    *,
    base_url: str,
    api_key: str | None,
    models: tuple[str, ...] | None,
    max_images: int,
    out: Path,
    name: str,
    profile: str,
    timeout: float,
    headers: tuple[str, ...],
    ca_bundle: str | None,
    insecure: bool,
    proxy: str | None,
) -> int:
    """The ``imgconf profile draft`` job: returns the exit status; raises SetupError."""
    from ..contract.profiles import load_profile
    from ..engine.drafting import draft_document, draft_text, summary_lines
    from ..engine.preflight import check_target
    from ..engine.run_settings import RunSettings, check_key, transport_config
    from ..engine.transport import is_http_url
    from ..errors import SetupError
    from ..redact import printable, register_secrets, strip_url

    register_secrets(api_key, os.environ.get("OPENAI_API_KEY"))
    if not is_http_url(base_url):
        raise SetupError(f"--base-url must be an http(s) URL (got {strip_url(base_url)!r})")
    if max_images < 1:
        raise SetupError("--max-images must be at least 1: drafting needs images to look at")
    if out.is_dir():
        raise SetupError(f"--out: {out} is a directory, not a file")
    chosen = load_profile(profile)
    settings = RunSettings(
        base_url=base_url,
        api_key=api_key,
        profile=profile,
        timeout=timeout,
        max_images=max_images,
        headers=headers,
        ca_bundle=ca_bundle,
        insecure=insecure,
        proxy=proxy,
    )
    key = check_key(api_key or os.environ.get("OPENAI_API_KEY"))
    # Probes are never retried: a 429/503 answer is what the probe saw.
    config = dataclasses.replace(transport_config(settings, chosen, base_url, key), retries=0)
    if insecure:
        warning = f"imgconf: warning: TLS is not verified for {strip_url(base_url)} (--insecure)"
        click.echo(printable(warning), err=True)
    asyncio.run(check_target(config))
    drafts, spent, sent = asyncio.run(_probe(config, chosen.contract, models, max_images))
    reach = _reach(chosen)
    doc = draft_document(
        drafts,
        name=name,
        base_url=base_url,
        contract=chosen.contract,
        path=chosen.path,
        reach=reach,
    )
    notes = []
    if headers:
        notes.append(
            "The --header values sent are not written: add them under `headers:` (a secret "
            "as env:VAR)."
        )
    text = draft_text(drafts, doc, notes)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SetupError(f"--out: cannot write {out} ({exc.strerror or exc})") from None
    for line in summary_lines(drafts):
        echo(f"imgconf: {line}")
    echo(f"imgconf: {sent} probes sent, {spent} of {max_images} images spent at most")
    if not doc["models"]:
        echo(f"imgconf: no model answered a plain request: {out} lists none (see its comments)")
        return 1
    echo(f"imgconf: draft written to {out}: review it, then raise what the vendor documents")
    return 0


async def _probe(
    config: Any, contract: Any, models: tuple[str, ...] | None, max_images: int
) -> tuple[list[Any], int, int]:
    """List the models (or take ``--models``) and draft each one within the budget."""
    from ..engine.drafting import MAX_LISTED_MODELS, Drafter, listed_models
    from ..engine.runner import Budget
    from ..engine.transport import TargetClient
    from ..errors import SetupError
    from ..redact import strip_url

    budget = Budget(max_images=max_images)
    async with TargetClient(config) as client:
        names = list(models or ())
        if not names:
            listing = await client.get("/models")
            names = listed_models(listing) or []
            if not names:
                where = strip_url(config.url("/models"))
                answered = listing.status if listing.status is not None else "no answer"
                raise SetupError(
                    f"the target lists no models at {where} ({answered}): name them with "
                    "--models a,b"
                )
            if len(names) > MAX_LISTED_MODELS:
                echo(
                    f"imgconf: the target lists {len(names)} models; drafting the first "
                    f"{MAX_LISTED_MODELS} (name others with --models)"
                )
                names = names[:MAX_LISTED_MODELS]
        drafter = Drafter(client, budget, contract)
        drafts = [await drafter.draft_model(name) for name in names]
    return drafts, budget.images, drafter.sent


def _reach(profile: Any) -> dict[str, Any]:
    """How the target was reached, as profile fields (the auth style and query; never a
    header's value, which may be a secret: add those as env:VAR)."""
    out: dict[str, Any] = {}
    if not profile.auth.is_bearer:
        out["auth"] = {"style": profile.auth.style, "name": profile.auth.name}
    if profile.query:
        out["query"] = dict(profile.query)
    return out


@click.group("profile")
def profile_group() -> None:
    """Work with profiles: draft one from a live endpoint."""


@profile_group.command("draft")
@click.option(
    "--base-url",
    required=True,
    metavar="URL",
    help="The target, as the OpenAI SDK takes it (.../v1).",
)
@api_key_option
@click.option(
    "--models",
    default=None,
    metavar="M1,M2",
    callback=lambda _ctx, _param, value: (
        tuple(m.strip() for m in (value or "").split(",") if m.strip()) or None
    ),
    help="The models to draft (default: those GET .../models lists; needed without it).",
)
@click.option(
    "--max-images",
    type=Ints(min=1),
    required=True,
    metavar="N",
    help="Generate at most N images (every probe reserves its worst case first).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("profile-draft.yaml"),
    show_default=True,
    metavar="FILE",
    help="Where the draft profile is written.",
)
@click.option("--name", default="draft", show_default=True, help="The drafted profile's name.")
@profile_option
@timeout_option
@reach_options
def draft_command(**options: Any) -> None:
    """Draft a profile from a live endpoint, within an image budget.

    Lists the models (GET .../models, else --models), probes what each one takes, refuses and
    ignores, and writes a profile whose every fact is SHOULD with what was observed. The
    profile given with --profile says how to reach the target (auth style, path, query).

    Exit 0 when the draft was written, 1 when no model answered a plain request (the draft
    then lists none), 2 for a usage or set-up error.
    """
    call(draft, **options)
