"""The reference server: an OpenAI-like ``POST /v1/images/generations`` on Starlette.

It answers the way OpenAI does and reads every rule from the contract data: which requests to
refuse is decided by :func:`conformance.contract.oracle.request_violations`, never by limits typed
here. Strict mode (the default) refuses a request on its first violation of any level, as OpenAI
does; lenient mode refuses only MUST violations and quietly drops what it does not use, the other
way a conformant vendor may behave. Quirks (:mod:`conformance.server.quirks`) bend it on purpose.

Routes: ``POST /v1/images/generations`` (with or without a trailing slash) and
``GET /files/{token}.{ext}``, the images handed out as URLs, which need no key and expire.
Served for a profile (:meth:`ServerConfig.for_profile`), the endpoint is where the profile
says (its ``base_url``'s path, placeholders such as ``{deployment}`` matching any segment, then
its ``path``), the key is checked in the profile's auth style, and a request that lacks one of
the profile's ``query`` parameters is answered 404, as a URL that names no resource.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..contract.features import features_used
from ..contract.loader import Contract, ModelSpec, load_contract, parse_wxh, serving
from ..contract.oracle import Violation, parse_body, request_violations, resolve_model
from ..contract.profiles import Profile
from ..contract.reach import AuthStyle
from ..settings import MAX_DRAWN_EDGE
from .choices import own_choice, own_choices
from .edits import multipart_routes
from .pictures import (
    SHAPES,
    ImageCache,
    ImageSpec,
    Picture,
    spec_for_prompt,
    truncate_jpeg,
    truncate_png,
    truncate_webp,
)
from .quirks import SERVER_QUIRKS, ActiveQuirks

__all__ = ["ServerConfig", "create_app", "hide_dropped_connection_logs"]

GENERATIONS_PATH = "/v1/images/generations"
#: What the ``corrupt-image`` quirk sends instead of an image.
CORRUPT_IMAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
#: The quirk that damages each format's pictures, and how.
_DAMAGE = {
    "png": ("truncated-png-iend", truncate_png),
    "jpeg": ("truncated-jpeg", truncate_jpeg),
    "webp": ("truncated-webp", truncate_webp),
}
_DROP_MESSAGE = "ASGI callable returned without completing response."


@dataclass(frozen=True)
class ServerConfig:
    """How one reference server behaves."""

    api_key: str
    lenient: bool = False
    quirks: ActiveQuirks = field(default_factory=ActiveQuirks)
    #: Seconds an image URL stays valid (OpenAI: 60 minutes).
    url_ttl: float = 3600.0
    #: How clients send the key (a profile's ``auth:``): ``Authorization: Bearer`` by default.
    auth: AuthStyle = field(default_factory=AuthStyle)
    #: Where the endpoint is: the API base's path (Starlette placeholders such as
    #: ``{deployment}`` match any one segment) and the endpoint's path under it.
    base_path: str = "/v1"
    path: str = "/images/generations"
    #: Query parameters every request must carry with these values (``api-version``): one that
    #: lacks one, or has another value, is answered 404, as a URL that names no resource.
    query: Mapping[str, str] = field(default_factory=dict)
    #: Photographic-like pictures of 1-4 MB (for benchmarks; see :mod:`conformance.server.pictures`).
    realistic_images: bool = False
    #: The contract it serves: a profile's, with the models it declares (None: the contract).
    contract: Contract | None = field(default=None, compare=False, repr=False)
    #: Azure's deployments (a profile's ``deployments:``), deployment -> the model it serves:
    #: the endpoint is then ``base_path/deployments/NAME/path``, an unknown NAME answered 404.
    deployments: Mapping[str, str] = field(default_factory=dict)
    #: The features of ``rules.yaml`` the profile says it does not offer (``unsupported:``):
    #: a valid request using one is refused, as the profile's vendor does.
    unsupported: frozenset[str] = frozenset()

    @classmethod
    def for_profile(cls, profile: Profile, **options: Any) -> ServerConfig:
        """A server that is reached the profile's way: its auth style, base path (from the
        profile's ``base_url``, ``/v1`` without one), path and required query."""
        base_path = urlsplit(profile.base_url).path.rstrip("/") if profile.base_url else "/v1"
        return cls(
            auth=profile.auth,
            base_path=base_path,
            path=profile.path,
            query=dict(profile.query),
            contract=_served_contract(profile),
            deployments={d: m for m, d in profile.deployments.items()},
            unsupported=profile.unsupported,
            **options,
        )

    @property
    def routes(self) -> tuple[str, ...]:
        """The endpoint's path, with and without a trailing slash."""
        base = self.base_path.rstrip("/")
        if self.deployments:
            base += "/deployments/{deployment}"
        path = base + "/" + self.path.strip("/")
        return (path, path + "/")


def _served_contract(profile: Profile) -> Contract:
    """The profile's contract, each model given the capabilities by which the server shows the
    answer rules the profile holds it to (a vendor that documents ``usage`` on every answer
    raises that rule for every model: the server then reports usage for each)."""
    contract = profile.contract
    models = dict(contract.models)
    for rule in profile.rules().values():
        if rule.served_by is None:
            continue
        for name in rule.models:
            if name in models:
                models[name] = serving(models[name], rule.served_by)
    return replace(contract, models=models) if models != dict(contract.models) else contract


@dataclass(frozen=True)
class Generation:
    """A request resolved into exactly what to draw and how to answer."""

    model: ModelSpec
    prompt: str
    n: int
    width: int
    height: int
    quality: str
    output_format: str
    background: str
    compression: int | None
    response_format: str
    stream: bool
    partial_images: int
    style: str | None

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


class RequestRefused(Exception):
    """A request the server answers with an error (already in OpenAI's terms)."""

    def __init__(self, status: int, message: str, param: str | None, code: str | None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def _violation_error(violation: Violation, contract: Contract) -> RequestRefused:
    """The refusal of a broken rule, with the error code the rule states."""
    code = contract.rules[violation.rule].error_code
    return RequestRefused(400, violation.message, violation.param, code)


class UrlStore:
    """Images handed out as URLs: token -> picture, until they expire (bounded in number)."""

    def __init__(self, max_items: int = 20_000) -> None:
        self._items: OrderedDict[str, tuple[Picture, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_items = max_items

    def put(self, picture: Picture, ttl: float) -> str:
        token = secrets.token_urlsafe(18)
        now = time.monotonic()
        with self._lock:
            self._items[token] = (picture, now + ttl)
            while self._items and (
                len(self._items) > self.max_items or next(iter(self._items.values()))[1] <= now
            ):
                self._items.popitem(last=False)
        return token

    def get(self, token: str) -> Picture | None:
        with self._lock:
            entry = self._items.get(token)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]


class ReferenceServer:
    """The request handling behind the app (one instance per app)."""

    def __init__(self, config: ServerConfig, contract: Contract | None = None) -> None:
        self.config = config
        self.quirks = config.quirks
        self.contract = contract or load_contract()
        self.images = ImageCache()
        self.urls = UrlStore()
        self._tolerated = self.quirks.tolerated_rules()
        self._drop_rules = frozenset(
            r.id for r in self.contract.request_rules.values() if r.when_ignored == "drop"
        )
        fields = self.contract.request_fields
        self._defaults: dict[str, Any] = {k: v.get("default") for k, v in fields.items()}
        # An omitted model with fields the default model does not know: the server serves the
        # first model that takes them all (the spec leaves open which).
        self._implicit_model = self.contract.model_taking(self.contract.omitted_model_fields)

    # --- the generations endpoint ---------------------------------------------------------

    async def generations(self, request: Request) -> Response:
        if "slow" in self.quirks:
            await asyncio.sleep(self.quirks.value("slow") or 0)
        try:
            raw = await request.body()
            self._check_query(request)
            self._authorize(request, raw)
            generation = self._resolve(raw, self._deployed(request))
        except RequestRefused as refused:
            return self._error(refused)
        if generation.stream and "stream-as-json" not in self.quirks:
            return StreamingResponse(
                self._events(generation),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        return await self._answer(request, generation)

    def _authorize(self, request: Request, body: bytes | None = None) -> None:
        """Refuse a missing, malformed (Bearer with no token, another scheme) or wrong key;
        ``body`` is the request's, for the quirk that lets streamed requests through."""
        if "no-auth" in self.quirks:
            return
        if "auth-skipped-for-stream" in self.quirks and body is not None and _asks_stream(body):
            return
        status = 403 if "auth-403" in self.quirks else 401
        style = self.config.auth
        if not style.is_bearer:
            key = self._styled_key(request, status)
            if key is None:
                return
        else:
            key = self._bearer_key(request, status)
            if key is None:
                return
        if "any-key" not in self.quirks and not secrets.compare_digest(
            key.strip().encode(), self.config.api_key.encode()
        ):
            raise RequestRefused(status, "Incorrect API key provided.", None, "invalid_api_key")

    def _bearer_key(self, request: Request, status: int) -> str | None:
        """The key of an ``Authorization: Bearer`` header (None: let through by a quirk)."""
        header = request.headers.get("authorization")
        if not header:
            raise RequestRefused(
                status,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                None,
                "invalid_api_key",
            )
        scheme, _, key = header.partition(" ")
        blank_bearer = scheme.lower() == "bearer" and not key.strip()
        if blank_bearer and "blank-bearer-accepted" in self.quirks:
            return None
        if scheme.lower() != "bearer" or blank_bearer:
            raise RequestRefused(
                status, "The Authorization header must be 'Bearer <key>'.", None, "invalid_api_key"
            )
        return key

    def _styled_key(self, request: Request, status: int) -> str | None:
        """The key of the profile's header or query parameter (None: let through by a quirk)."""
        style = self.config.auth
        source = request.query_params if style.style == "query" else request.headers
        value = source.get(style.name)
        where = style.where()
        if value is None:
            raise RequestRefused(
                status, f"You didn't provide an API key (the {where}).", None, "invalid_api_key"
            )
        if not value.strip():
            if "blank-bearer-accepted" in self.quirks:
                return None
            raise RequestRefused(status, f"The {where} is empty.", None, "invalid_api_key")
        return value

    def _check_query(self, request: Request) -> None:
        """Refuse a request without the query parameters the endpoint's URL needs."""
        for name, value in self.config.query.items():
            if request.query_params.get(name) != value:
                raise RequestRefused(
                    404,
                    f"Resource not found: the URL needs the query parameter {name}={value}.",
                    None,
                    "not_found",
                )

    # --- deciding what a request means ----------------------------------------------------

    def _blocking(self, violations: list[Violation]) -> list[Violation]:
        rules = self.contract.rules
        return [
            v
            for v in violations
            if v.rule not in self._tolerated
            and not (self.config.lenient and not rules[v.rule].is_must)
        ]

    def _deployed(self, request: Request) -> str | None:
        """The model the request's deployment serves (None: the server has no deployments);
        a deployment it does not have is answered 404, as Azure does."""
        if not self.config.deployments:
            return None
        name = request.path_params.get("deployment", "")
        model = self.config.deployments.get(name)
        if model is None:
            raise RequestRefused(
                404,
                "The API deployment for this resource does not exist.",
                None,
                "DeploymentNotFound",
            )
        return model

    def _resolve(self, raw: bytes, deployed: str | None = None) -> Generation:
        body, broken = parse_body(raw)
        if broken is not None:
            raise _violation_error(broken, self.contract)
        if deployed and isinstance(body, dict) and body.get("model") is None:
            body = {**body, "model": deployed}  # the deployment's model, as Azure serves it
        named = resolve_model(body, self.contract) if isinstance(body, dict) else None
        if deployed and named in self.contract.models and named != deployed:
            raise RequestRefused(
                400, f"This deployment serves {deployed}, not {named}.", "model", None
            )
        if isinstance(body, dict) and "reject-null" in self.quirks:
            for key, value in body.items():
                if value is None and key != "prompt":
                    raise RequestRefused(
                        400, f"{key}: none is not an allowed value", key, "invalid_type"
                    )
        if (
            isinstance(body, dict)
            and body.get("model") is None
            and resolve_model(body, self.contract) is None
        ):
            # `model` omitted with fields the default model does not know: validate it as the
            # model the server serves then.
            body = {**body, "model": self._implicit_model}
        for _ in range(2):
            violations = request_violations(body, self.contract)
            blocking = self._blocking(violations)
            if blocking:
                raise _violation_error(blocking[0], self.contract)
            if not violations:
                break
            body = self._drop_ignored(body, violations)
        assert isinstance(body, dict)
        self._refuse_unsupported(body)
        return self._generation(body)

    def _refuse_unsupported(self, body: dict[str, Any]) -> None:
        """A valid request using a feature the served profile does not offer is refused."""
        if not self.config.unsupported:
            return
        spec = self.contract.models.get(resolve_model(body, self.contract) or "")
        used = features_used(body, spec, sorted(self.config.unsupported))
        if used:
            param = used[0].split("=")[0].split(">")[0]
            raise RequestRefused(
                400, f"This server does not offer {used[0]}.", param, "unsupported_value"
            )

    def _drop_ignored(self, body: dict[str, Any], violations: list[Violation]) -> dict[str, Any]:
        """Drop the fields whose (tolerated) violations a sloppy or lenient server ignores."""
        body = dict(body)
        for violation in violations:
            if violation.rule in self._drop_rules and violation.param is not None:
                body.pop(violation.param, None)
        return body

    def _generation(self, body: Mapping[str, Any]) -> Generation:
        model_name = resolve_model(body, self.contract)
        if model_name not in self.contract.models:
            # Fields the default model does not know, with the model left out (or dropped as
            # unknown by a quirk).
            model_name = self._implicit_model
        spec = self.contract.models[model_name]
        prompt = body.get("prompt")
        prompt = prompt if isinstance(prompt, str) else ("" if prompt is None else str(prompt))
        limit = spec.prompt_max_chars
        if "byte-counted-prompt" in self.quirks and limit and len(prompt.encode()) > limit:
            raise RequestRefused(
                400,
                f"'prompt' is too long: at most {spec.prompt_max_chars} allowed.",
                "prompt",
                "string_above_max_length",
            )

        def pick(name: str) -> Any:
            """The field's value: the body's, else the model's fixed one for a field it does
            not take, else the default; then the server's own choice for ``auto``."""
            value = body.get(name) if spec.takes(name) else None
            if value is None:
                value = spec.fixed.get(name, spec.defaults.get(name, self._defaults.get(name)))
            return own_choice(name, value, spec)

        # ignore-size: whatever size is asked, the model's default one.
        width, height = self._size(None if "ignore-size" in self.quirks else pick("size"), spec)
        output_format = pick("output_format")
        compression = None
        if spec.takes("output_compression") and output_format in self._lossy_formats:
            compression = body.get("output_compression")
        if compression is not None:
            lo, hi = self._bounds("output_compression")
            compression = max(lo, min(hi, _as_int(compression, hi)))
        lo, hi = self._bounds("partial_images")
        partial_images = max(lo, min(hi, _as_int(pick("partial_images"), lo)))
        lo, hi = self._bounds("n")
        n = lo if "ignore-n" in self.quirks else max(lo, min(hi, _as_int(pick("n"), lo)))
        return Generation(
            model=spec,
            prompt=prompt,
            n=n,
            width=width,
            height=height,
            quality=pick("quality"),
            output_format=output_format,
            background=pick("background"),
            compression=compression,
            response_format=pick("response_format"),
            stream=spec.takes("stream") and _truthy(body.get("stream")),
            partial_images=partial_images,
            style=pick("style") if spec.takes("style") else None,
        )

    def _bounds(self, name: str) -> tuple[int, int]:
        bounds = self.contract.bounds(name)
        assert bounds is not None, name
        return bounds

    @cached_property
    def _lossy_formats(self) -> frozenset[Any]:
        """Output formats that take ``output_compression`` (the schema's cross-field rules)."""
        bounds = self._bounds("output_compression")
        return frozenset(
            fmt
            for fmt in self.contract.enum_fields.get("output_format", ())
            if all(
                c.holds({"output_format": fmt, "output_compression": bounds[1]})
                for c in self.contract.cross_fields
            )
        )

    def _size(self, size: Any, spec: ModelSpec) -> tuple[int, int]:
        """The asked ``WxH``; for ``auto`` (which parses as no size), a size too big to draw or
        anything an ``accept`` quirk let through, the model's default, else its first ``WxH``."""
        parsed = parse_wxh(size) if isinstance(size, str) else None
        if parsed is None or max(parsed) > MAX_DRAWN_EDGE:
            parsed = parse_wxh(spec.default_size)
        return parsed or next(wxh for s in spec.sizes if (wxh := parse_wxh(s)))

    # --- drawing ----------------------------------------------------------------------------

    def _image_spec(self, gen: Generation, index: int, detail: int) -> ImageSpec:
        width, height = gen.width, gen.height
        if "wrong-size" in self.quirks:
            width, height = max(width // 2, 1), max(height // 2, 1)
        fmt = "png" if "wrong-format" in self.quirks else gen.output_format
        transparent = gen.background == "transparent" and fmt != "jpeg"
        if "lost-alpha" in self.quirks:
            transparent = False
        spec = spec_for_prompt(
            gen.prompt,
            width,
            height,
            index=index,
            format=fmt,
            transparent=transparent,
            compression=gen.compression,
            detail=detail,
            opaque_alpha=transparent and "opaque-alpha" in self.quirks,
        )
        if self.config.realistic_images:
            # One picture per size, format and background, whatever the prompt: cached once.
            spec = replace(spec, colour=0, shape=0, realistic=True)
        return spec

    async def _pictures(self, gen: Generation, indexes: range, detail: int = 0) -> list[Picture]:
        """The pictures of items ``indexes``; drawing (when not cached) runs in a worker thread
        so that the event loop keeps serving other requests meanwhile."""
        if "corrupt-image" in self.quirks:
            return [Picture(CORRUPT_IMAGE, gen.output_format) for _ in indexes]
        specs = [self._image_spec(gen, index, detail) for index in indexes]
        cached = [self.images.peek(spec) for spec in specs]
        if any(picture is None for picture in cached):
            cached = await anyio.to_thread.run_sync(
                lambda: [self.images.get(spec) for spec in specs]
            )
        return [self._damaged(picture) for picture in cached]  # type: ignore[arg-type]

    def _damaged(self, picture: Picture) -> Picture:
        """The picture as a truncating quirk sends it (itself when none applies)."""
        damage = _DAMAGE.get(picture.format)
        if damage is None or damage[0] not in self.quirks:
            return picture
        return Picture(damage[1](picture.data), picture.format)

    # --- answers ----------------------------------------------------------------------------

    def _usage(self, gen: Generation, images: int) -> dict[str, Any]:
        output = own_choices().output_tokens(gen.quality, gen.width * gen.height) * images
        text = max(1, math.ceil(len(gen.prompt) / 4))
        usage: dict[str, Any] = {
            "input_tokens": text,
            "input_tokens_details": {"text_tokens": text, "image_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"image_tokens": output, "text_tokens": 0},
            "total_tokens": text + output,
        }
        if "usage-strings" in self.quirks:
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                usage[key] = str(usage[key])
        return usage

    def _count(self, gen: Generation) -> int:
        """How many images an answer or stream carries (one fewer under ``wrong-count``)."""
        return max(gen.n - 1, 0) if "wrong-count" in self.quirks else gen.n

    async def _answer(self, request: Request, gen: Generation) -> Response:
        count = self._count(gen)
        pictures = await self._pictures(gen, range(count))
        as_url = gen.response_format == "url"
        if "b64-instead-of-url" in self.quirks:
            as_url = False
        if "url-instead-of-b64" in self.quirks:
            as_url = True
        ttl = 0.0 if "expired-urls" in self.quirks else self.config.url_ttl
        base = str(request.base_url).rstrip("/")
        items: list[dict[str, Any]] = []
        for index, picture in enumerate(pictures):
            if as_url:
                token = self.urls.put(picture, ttl)
                item: dict[str, Any] = {"url": f"{base}/files/{token}.{picture.format}"}
            else:
                item = {"b64_json": picture.b64}
            if gen.model.takes("style"):
                item["revised_prompt"] = self._revised_prompt(gen, index)
            items.append(item)
        answer: dict[str, Any] = {"created": int(time.time()), "data": items}
        if "missing-created" in self.quirks:
            del answer["created"]
        elif "string-created" in self.quirks:
            answer["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        answer.update({name: getattr(gen, name) for name in gen.model.echoes})
        if gen.model.reports_usage:
            answer["usage"] = self._usage(gen, count)
        content = json.dumps(answer, separators=(",", ":")).encode()
        if "truncated-json" in self.quirks:
            content = content[: len(content) // 2]
        media_type = "text/plain" if "wrong-content-type" in self.quirks else "application/json"
        return Response(content, media_type=media_type)

    def _revised_prompt(self, gen: Generation, index: int) -> str:
        spec = spec_for_prompt(gen.prompt, gen.width, gen.height, index=index)
        style = gen.style or self._defaults["style"]
        return f"{gen.prompt} (drawn {style}: a flat {SHAPES[spec.shape]}, palette colour {spec.colour})"

    async def _events(self, gen: Generation) -> AsyncIterator[bytes]:
        created = int(time.time())
        common = {
            "created_at": created,
            "size": gen.size,
            "quality": gen.quality,
            "background": gen.background,
            "output_format": gen.output_format,
        }
        partials = gen.partial_images + (1 if "too-many-partials" in self.quirks else 0)
        for index in range(self._count(gen)):
            for k in range(partials):
                # The first partial is the coarsest: detail counts down towards the final image.
                (picture,) = await self._pictures(gen, range(index, index + 1), partials - k)
                yield self._event(
                    "image_generation.partial_image",
                    {"b64_json": picture.b64, **common, "partial_image_index": k},
                )
            if "broken-stream" in self.quirks:
                return
            (picture,) = await self._pictures(gen, range(index, index + 1))
            yield self._event(
                "image_generation.completed",
                {"b64_json": picture.b64, **common, "usage": self._usage(gen, 1)},
            )

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        event = {"type": kind, **fields}
        data = (
            repr(event)
            if "stream-bad-json" in self.quirks
            else json.dumps(event, separators=(",", ":"))
        )
        return f"event: {kind}\ndata: {data}\n\n".encode()

    # --- errors -----------------------------------------------------------------------------

    def _error(self, refused: RequestRefused) -> Response:
        status = refused.status
        validation = status == 400
        if validation and "500-on-bad-input" in self.quirks:
            status = 500
        if validation and "throttle-invalid" in self.quirks:
            response = error_response(429, "Rate limit reached.", None, "rate_limit_exceeded")
            response.headers["retry-after"] = "0"
            return response
        if "relay-errors-as-502" in self.quirks:
            status = 502
        if "plain-text-errors" in self.quirks:
            return PlainTextResponse(f"{status} error: {refused.message}", status_code=status)
        if "detail-422" in self.quirks:
            if validation:
                detail: Any = [
                    {
                        "loc": ["body", refused.param or "body"],
                        "msg": refused.message,
                        "type": "value_error",
                    }
                ]
                return _json({"detail": detail}, 422)
            return _json({"detail": refused.message}, status)
        return error_response(status, refused.message, refused.param, refused.code)

    # --- image URLs -------------------------------------------------------------------------

    async def image_file(self, request: Request) -> Response:
        if "url-needs-key" in self.quirks:
            try:
                self._authorize(request)
            except RequestRefused as refused:
                return self._error(refused)
        picture = self.urls.get(request.path_params["token"])
        if picture is None or request.path_params["ext"] != picture.format:
            return error_response(
                404, "This image does not exist or has expired.", None, "not_found"
            )
        return Response(picture.data, media_type=picture.media_type)


def _asks_stream(body: bytes) -> bool:
    """Whether a request body is a JSON object with ``stream: true``."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("stream") is True


def _truthy(value: Any) -> bool:
    """``stream`` as a boolean, from whatever an ``accept`` quirk let through ("true", 1)."""
    return value is True or (
        not isinstance(value, bool) and str(value).strip().lower() in ("true", "1", "yes")
    )


def _as_int(value: Any, fallback: int) -> int:
    """An integer from whatever an ``accept`` quirk let through ("2", 1.5, True)."""
    if isinstance(value, bool):
        return int(value)
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return fallback


def _json(body: Any, status: int) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def error_response(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    kind: str = "invalid_request_error",
) -> Response:
    """OpenAI's error envelope."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return _json(body, status)


class _DropConnection:
    """An ASGI app that sends a status line and headers, then returns without a body: the
    server closes the connection mid-answer, which the client sees as a dropped connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )


def hide_dropped_connection_logs() -> None:
    """Keep uvicorn from logging the ``reset`` quirk's deliberate drops as errors."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropFilter) for f in logger.filters):
        logger.addFilter(_DropFilter())


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_MESSAGE


def create_app(config: ServerConfig) -> Starlette:
    """The ASGI app for one configuration."""
    unknown = [name for name in config.quirks if name not in SERVER_QUIRKS]
    if unknown:
        raise ValueError(f"unknown quirks: {unknown}")
    server = ReferenceServer(config, config.contract)
    drop = _DropConnection()

    async def generations(request: Request) -> Response:
        if "reset" in server.quirks:
            await request.body()
            return drop  # type: ignore[return-value]
        return await server.generations(request)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, str(exc.detail), None, None)

    routes = [
        *(Route(path, generations, methods=["POST"]) for path in config.routes),
        *multipart_routes(server, config.base_path),
        Route("/files/{token}.{ext}", server.image_file, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.server = server
    return app
