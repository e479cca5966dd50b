"""Fault injection for the reference server: named, documented deviations from the contract.

Each quirk is one mistake a real vendor or proxy might make, and names the MUST rules of
``schemas/rules.yaml`` that a correct judge reports against it (it may report more, as
consequences). imgconf's own end-to-end tests iterate over :data:`QUIRKS`: against every quirk,
``imgconf run`` must exit 1 and name those rules. Quirks combine freely.

The registry is data; the reference server implements each quirk by name. Quirks of kind
``accept`` are generic: the server simply stops enforcing the rules the quirk breaks (and makes
the best of the odd value instead, as a sloppy vendor would).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import SetupError

__all__ = ["QUIRKS", "ActiveQuirks", "Quirk", "parse_quirks"]

KINDS = ("accept", "reject", "answer", "image", "error", "auth", "stream", "transport")


@dataclass(frozen=True)
class Quirk:
    """One deviation: its name, what it does, and the MUST rule ids it breaks.

    A quirk with a ``parameter`` takes a value as ``name:VALUE`` (``slow:2.5``), else
    ``default``.
    """

    name: str
    kind: str
    description: str
    breaks: tuple[str, ...]
    parameter: str | None = None
    default: float | None = None
    #: The verdict a correct judge reaches against it: ``fail`` (naming ``breaks``) or
    #: ``incomplete`` (naming ``reasons``: the server hides what the rules need to be seen).
    verdict: str = "fail"
    reasons: tuple[str, ...] = ()


_QUIRK_LIST = (
    # --- accepting what must be rejected ---------------------------------------------------
    Quirk(
        "accept-n-out-of-range",
        "accept",
        "Accepts n=0 and n=11 and clamps them into 1..10 instead of rejecting them.",
        ("request.n.min", "request.n.max"),
    ),
    Quirk(
        "accept-n-type",
        "accept",
        'Accepts a non-integer n ("2", 1.5, true) and coerces it to an integer.',
        ("request.n.type",),
    ),
    Quirk(
        "dall-e-3-multi",
        "accept",
        "Lets dall-e-3 generate more than one image (n up to 10).",
        ("request.n.max.dall-e-3",),
    ),
    Quirk(
        "accept-long-prompt",
        "accept",
        "Does not check the prompt's length at all.",
        ("request.prompt.max_length",),
    ),
    Quirk(
        "accept-prompt-type",
        "accept",
        "Turns a non-string prompt into text, and a missing one into an empty prompt.",
        ("request.prompt.type", "request.prompt.required"),
    ),
    Quirk(
        "accept-any-size",
        "accept",
        "Draws any WxH it is given (and the default size for anything else).",
        (
            "request.size.enum",
            "request.size.custom.divisible",
            "request.size.custom.aspect",
            "request.size.custom.max",
        ),
    ),
    Quirk(
        "accept-bad-enums",
        "accept",
        "Replaces enum values it does not know by the field's default instead of rejecting them.",
        (
            "request.quality.enum",
            "request.style.enum",
            "request.response_format.enum",
            "request.output_format.enum",
            "request.background.enum",
            "request.moderation.enum",
        ),
    ),
    Quirk(
        "accept-out-of-range",
        "accept",
        "Clamps output_compression and partial_images into range instead of rejecting them.",
        ("request.output_compression.range", "request.partial_images.range"),
    ),
    Quirk(
        "accept-transparent-jpeg",
        "accept",
        "Accepts a transparent background with jpeg output (and silently drops the alpha).",
        ("request.background.transparent_jpeg",),
    ),
    Quirk(
        "accept-stream-type",
        "accept",
        'Takes any truthy stream value ("true", 1) as true.',
        ("request.stream.type",),
    ),
    Quirk(
        "unknown-model-fallback",
        "accept",
        "Serves an unknown model with the default model instead of rejecting it.",
        ("request.model.unknown",),
    ),
    # --- rejecting what must be accepted ---------------------------------------------------
    Quirk(
        "reject-null",
        "reject",
        "Rejects an explicit null in an optional field (a typed model without Optional).",
        ("request.valid.accepted",),
    ),
    Quirk(
        "byte-counted-prompt",
        "reject",
        "Counts the prompt's limit in UTF-8 bytes, so it rejects valid multi-byte prompts.",
        ("request.valid.accepted",),
    ),
    # --- wrong answers ---------------------------------------------------------------------
    Quirk(
        "wrong-count",
        "answer",
        "Returns one image fewer than asked.",
        ("response.data.count",),
    ),
    Quirk(
        "missing-created",
        "answer",
        "Leaves `created` out of the answer.",
        ("response.schema",),
    ),
    Quirk(
        "string-created",
        "answer",
        "Gives `created` as an ISO 8601 string instead of an integer.",
        ("response.schema",),
    ),
    Quirk(
        "wrong-content-type",
        "answer",
        "Sends its JSON answers as text/plain.",
        ("response.content_type",),
    ),
    Quirk(
        "truncated-json",
        "answer",
        "Cuts every JSON answer off in the middle.",
        ("transport.well_formed",),
    ),
    Quirk(
        "b64-instead-of-url",
        "answer",
        "Returns b64_json when dall-e is asked for URLs.",
        ("response.url",),
    ),
    Quirk(
        "url-instead-of-b64",
        "answer",
        "Returns URLs even where base64 is due (GPT models, dall-e with b64_json).",
        ("response.b64_json",),
    ),
    Quirk(
        "url-needs-key",
        "answer",
        "Serves image URLs only to requests that carry the API key.",
        ("response.url.fetch",),
    ),
    Quirk(
        "expired-urls",
        "answer",
        "Image URLs are already expired when they are handed out (404).",
        ("response.url.fetch",),
    ),
    Quirk(
        "usage-strings",
        "answer",
        "Gives usage token counts as strings.",
        ("response.usage.schema",),
    ),
    # --- wrong images ----------------------------------------------------------------------
    Quirk(
        "wrong-size",
        "image",
        "Draws every image at half the asked width and height.",
        ("image.size",),
    ),
    Quirk(
        "wrong-format",
        "image",
        "Always encodes png, whatever output_format asks.",
        ("image.format",),
    ),
    Quirk(
        "lost-alpha",
        "image",
        "Drops the alpha channel: transparent backgrounds come back opaque.",
        ("image.alpha",),
    ),
    Quirk(
        "corrupt-image",
        "image",
        "Puts bytes that are not an image (an HTML error page) into b64_json and URLs.",
        ("image.decodes",),
    ),
    Quirk(
        "opaque-alpha",
        "image",
        "Answers a transparent background with RGBA images whose alpha is 255 everywhere.",
        ("image.alpha",),
    ),
    Quirk(
        "truncated-png-iend",
        "image",
        "Cuts PNG images in the middle of their image data and appends an IEND chunk.",
        ("image.decodes",),
    ),
    Quirk(
        "truncated-jpeg",
        "image",
        "Cuts JPEG images in the middle of their scan data and appends an EOI marker.",
        ("image.decodes",),
    ),
    Quirk(
        "truncated-webp",
        "image",
        "Cuts WebP images in half and patches the RIFF size to the shorter file.",
        ("image.decodes",),
    ),
    # --- wrong errors ----------------------------------------------------------------------
    Quirk(
        "plain-text-errors",
        "error",
        "Answers errors with a text/plain line instead of the JSON envelope.",
        ("error.envelope",),
    ),
    Quirk(
        "detail-422",
        "error",
        'Answers validation errors 422 with {"detail": [...]} (a FastAPI default).',
        ("error.envelope",),
    ),
    Quirk(
        "500-on-bad-input",
        "error",
        "Answers every invalid request with 500 instead of 400.",
        ("transport.no_5xx", "request.n.max", "request.size.enum"),
    ),
    Quirk(
        "relay-errors-as-502",
        "error",
        "Relays every refusal (validation and auth alike) as 502, as a broken gateway does.",
        ("transport.no_5xx", "auth.missing", "auth.wrong", "request.n.max", "request.size.enum"),
    ),
    Quirk(
        "throttle-invalid",
        "error",
        "Answers every request it would refuse as invalid with 429 (Retry-After: 0), so no "
        "refusal can be seen.",
        (),
        verdict="incomplete",
        reasons=("throttled",),
    ),
    # --- authentication --------------------------------------------------------------------
    Quirk(
        "no-auth",
        "auth",
        "Does not check the Authorization header at all.",
        ("auth.missing", "auth.wrong"),
    ),
    Quirk(
        "any-key",
        "auth",
        "Accepts any bearer key; only a missing header is refused.",
        ("auth.wrong",),
    ),
    Quirk(
        "auth-403",
        "auth",
        "Refuses a missing or wrong key with 403 instead of 401.",
        ("auth.missing", "auth.wrong"),
    ),
    Quirk(
        "blank-bearer-accepted",
        "auth",
        "Accepts 'Authorization: Bearer' with no token, as if the key were not needed.",
        ("auth.wrong",),
    ),
    # --- streams ---------------------------------------------------------------------------
    Quirk(
        "auth-skipped-for-stream",
        "stream",
        "Serves stream: true requests without checking the key (missing or wrong).",
        ("auth.missing", "auth.wrong"),
    ),
    Quirk(
        "stream-as-json",
        "stream",
        "Answers stream: true with the ordinary JSON answer.",
        ("stream.content_type",),
    ),
    Quirk(
        "broken-stream",
        "stream",
        "Ends the stream before any completed event.",
        ("stream.completed",),
    ),
    Quirk(
        "stream-bad-json",
        "stream",
        "Sends event data that is not JSON (a Python repr).",
        ("stream.event.schema",),
    ),
    Quirk(
        "too-many-partials",
        "stream",
        "Sends one partial image more per image than partial_images asks.",
        ("stream.partial.count",),
    ),
    # --- transport -------------------------------------------------------------------------
    Quirk(
        "slow",
        "transport",
        "Answers image requests only after SECONDS (default 600), beyond any client timeout.",
        ("transport.timeout",),
        parameter="SECONDS",
        default=600.0,
    ),
    Quirk(
        "reset",
        "transport",
        "Drops the connection after the status line of every image request.",
        ("transport.connection",),
    ),
)

#: Every quirk by name, in a stable order.
QUIRKS: Mapping[str, Quirk] = MappingProxyType({q.name: q for q in _QUIRK_LIST})


@dataclass(frozen=True)
class ActiveQuirks:
    """The quirks a server runs with, and their parameter values."""

    values: Mapping[str, float | None] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __bool__(self) -> bool:
        return bool(self.values)

    def __iter__(self):
        return iter(self.values)

    def value(self, name: str) -> float | None:
        return self.values.get(name)

    def tolerated_rules(self) -> frozenset[str]:
        """The rules the server stops enforcing (those of its ``accept`` quirks)."""
        return frozenset(
            rule
            for name in self.values
            if QUIRKS[name].kind == "accept"
            for rule in QUIRKS[name].breaks
        )

    def spec(self) -> tuple[str, ...]:
        """The quirks as ``name`` or ``name:VALUE`` strings (what parse_quirks reads back)."""
        return tuple(
            name if value is None or value == QUIRKS[name].default else f"{name}:{value:g}"
            for name, value in self.values.items()
        )


def parse_quirks(names: Iterable[str]) -> ActiveQuirks:
    """``["wrong-count", "slow:2"]`` -> ActiveQuirks; an unknown name is a SetupError."""
    values: dict[str, float | None] = {}
    for raw in names:
        name, _, arg = raw.strip().partition(":")
        quirk = QUIRKS.get(name)
        if quirk is None:
            raise SetupError(
                f"unknown quirk {name!r} (see 'imgconf serve --list-quirks' for the names)"
            )
        if arg and quirk.parameter is None:
            raise SetupError(f"quirk {name!r} takes no value (got {raw!r})")
        if quirk.parameter is None:
            values[name] = None
            continue
        try:
            value = float(arg) if arg else quirk.default
        except ValueError:
            raise SetupError(
                f"quirk {name!r}: {quirk.parameter} must be a number (got {arg!r})"
            ) from None
        if value is None or value < 0:
            raise SetupError(f"quirk {name!r}: {quirk.parameter} must not be negative")
        values[name] = value
    return ActiveQuirks(MappingProxyType(values))
