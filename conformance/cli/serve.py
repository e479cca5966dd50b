"""``imgconf serve``: the reference server in the foreground, and ``--list-quirks``."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import click

from ..errors import SetupError
from .common import call

__all__ = ["list_quirks", "serve", "serve_command"]


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    lenient: bool = False,
    quirks: Iterable[str] = (),
    url_ttl: float = 3600.0,
    profile: str | None = None,
    realistic_images: bool = False,
) -> int:
    """Run in the foreground until Ctrl-C or SIGTERM; print the URL first.

    A key the user gave is shown redacted; a generated one in full, since the user needs it.
    With ``profile``, the server is reached the profile's way (path, auth style, query); the
    line printed says how.
    """
    from ..server.launcher import bind_socket, profile_file_of, reached_at, uvicorn_server
    from ..server.quirks import parse_quirks

    active = parse_quirks(quirks)
    if url_ttl < 0:
        raise SetupError("--url-ttl must not be negative")
    key = api_key or f"sk-imgconf-{secrets.token_hex(16)}"
    shown = key if not api_key else f"{key[:3]}...{key[-2:]}" if len(key) > 8 else "***"
    profile_file = profile_file_of(profile)
    sock = bind_socket(host, port)
    config = {
        "api_key": key,
        "lenient": lenient,
        "quirks": list(active.spec()),
        "url_ttl": url_ttl,
        "profile": profile_file,
        "realistic_images": realistic_images,
    }
    server = uvicorn_server(config, in_thread=False, log_level="info")
    base, how = reached_at(host, sock.getsockname()[1], profile, profile_file)
    mode = "lenient" if lenient else "strict"
    extra = f", quirks: {', '.join(active.spec())}" if active else ""
    extra += ", realistic images" if realistic_images else ""
    print(
        f"imgconf reference server ({mode}{extra}{how}) at {base}  key: {shown}",
        flush=True,
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def list_quirks() -> int:
    """Name, the verdict it must produce (the rules it breaks, or INCOMPLETE and why), what it
    does."""
    from ..server.quirks import QUIRKS

    for quirk in QUIRKS.values():
        name = f"{quirk.name}[:{quirk.parameter}]" if quirk.parameter else quirk.name
        verdict = (
            ",".join(quirk.breaks)
            if quirk.verdict == "fail"
            else f"INCOMPLETE ({','.join(quirk.reasons)})"
        )
        print(f"{name:26} {verdict:45} {quirk.description}")
    return 0


@click.command("serve")
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
@click.option(
    "--list-quirks", "show_quirks", is_flag=True, help="List the quirks and the rules they break."
)
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
    help="Serve this profile: its models (declared ones included), parameters and quirks, "
    "reached its way (base path and path, auth style, required query).",
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
    show_quirks: bool,
    url_ttl: float,
    profile: str | None,
    realistic_images: bool,
) -> None:
    """Run the reference server: an OpenAI-like POST /v1/images/generations on loopback."""
    if show_quirks:
        call(list_quirks)
    call(
        serve,
        host=host,
        port=port,
        api_key=api_key,
        lenient=lenient,
        quirks=quirks,
        url_ttl=url_ttl,
        profile=profile,
        realistic_images=realistic_images,
    )
