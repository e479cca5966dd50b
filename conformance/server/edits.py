"""The reference server's multipart endpoints: ``POST /images/edits`` and ``/images/variations``.

Both read their contract as data (:meth:`Contract.endpoint`): a form is gathered the way the
edits schema describes it (text parts decoded as the field's type, the parts of one field
gathered, each file part read into its facts: the format its bytes tell, its length, width,
height and alpha), then held to the endpoint's request schema and its models' file facts; a
break is answered 400 with the error code its rule states and ``param`` naming the field.

It edits for real, cheaply, so that a judge can see whether a proxy passed every part on: the
output is the first input image resized to the asked size with the mask's fully transparent
pixels blended with the prompt's colour (every pixel when no mask came), one small square mark
per input image (coloured by its digest), and a **stamp**: a metadata chunk holding JSON of what
the server received (:func:`stamp`; a PNG ``tEXt`` chunk, an EXIF ``ImageDescription`` in JPEG
and WebP, both under :data:`STAMP_KEY`). A variation is the input resized and hue-shifted
(its channels rotated), stamped the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio.to_thread
from jsonschema.exceptions import best_match
from PIL import Image, ImageChops, PngImagePlugin
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message

from ..contract import stamp as codec
from ..contract.loader import Endpoint, FileInput, ModelSpec, Rule, json_type, parse_wxh
from ..contract.stamp import DIGEST_CHARS, EXIF_DESCRIPTION, STAMP_KEY, read_stamp, stamp_json
from ..settings import (
    EDIT_BODY_CAP,
    EDIT_MARK_FRACTION,
    EDIT_MAX_PARTS,
    EDIT_TEXT_PART_CAP,
    MAX_PIXELS,
)
from .choices import own_choice
from .pictures import FORMATS, PALETTE, Picture, spec_for_prompt

__all__ = [
    "STAMP_KEY",
    "FileFacts",
    "MultipartEndpoints",
    "file_facts",
    "multipart_routes",
    "read_stamp",
]

#: The magic bytes that tell an image's format, as ``$defs/file`` of the edits schema names it.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
#: A JSON Schema keyword's break, as the error code the rules state for it.
_KEYWORD_CODES = {
    "required": "missing_required_parameter",
    "type": "invalid_type",
    "maxLength": "string_above_max_length",
    "minLength": "empty_string",
    "minimum": "integer_below_min_value",
    "exclusiveMinimum": "integer_below_min_value",
    "maximum": "integer_above_max_value",
    "exclusiveMaximum": "integer_above_max_value",
}
_CHUNK = 1 << 20


class Refusal(Exception):
    """A request answered with an error: status, message, param, code, and the rule (if any)."""

    def __init__(
        self, status: int, message: str, param: str | None, code: str | None, rule: Rule | None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.rule = (
            status,
            message,
            param,
            code,
            rule,
        )


# --- reading a form -------------------------------------------------------------------------


@dataclass
class FileFacts:
    """One file part as the contract describes it (``$defs/file``), with its digest and bytes."""

    part: str
    filename: str | None
    content_type: str | None
    format: str
    bytes: int
    sha256: str
    width: int | None = None
    height: int | None = None
    alpha: bool = False
    upload: UploadFile | None = field(default=None, repr=False)

    @property
    def digest(self) -> str:
        return self.sha256[:DIGEST_CHARS]

    def open(self) -> Image.Image:
        """The decoded image (its declared pixels were bounded when its facts were read)."""
        assert self.upload is not None
        self.upload.file.seek(0)
        image = Image.open(self.upload.file)
        image.load()
        return image


def _format_of(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def file_facts(part: str, upload: UploadFile) -> FileFacts:
    """Read one file part's facts: its digest and length in one pass over the (spooled) file,
    its format from the magic bytes, its size and alpha from the header alone (no decoding).
    Bytes that are no image (or declare more than MAX_PIXELS) read as format ``none``."""
    stream = upload.file
    stream.seek(0)
    digest = hashlib.sha256()
    length = 0
    head = b""
    while chunk := stream.read(_CHUNK):
        if not head:
            head = chunk[:16]
        digest.update(chunk)
        length += len(chunk)
    facts = FileFacts(
        part=part,
        filename=upload.filename,
        content_type=upload.content_type,
        format="none",
        bytes=length,
        sha256=digest.hexdigest(),
        upload=upload,
    )
    stream.seek(0)
    try:
        with Image.open(stream) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                return facts
            image.verify()
            alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
                "transparency" in image.info
            )
    except Exception:  # any undecodable file is a fact, not an error of the server
        return facts
    facts.format = _format_of(head) or "other"
    facts.width, facts.height, facts.alpha = width, height, alpha
    return facts


class _Capped:
    """An ASGI ``receive`` that refuses a body beyond ``cap`` bytes while it streams in."""

    def __init__(self, receive: Any, cap: int) -> None:
        self.receive, self.cap, self.seen = receive, cap, 0

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.cap:
                raise Refusal(
                    400,
                    f"The request body is larger than this server reads ({self.cap} bytes).",
                    "image",
                    "invalid_value",
                    None,
                )
        return message


async def read_form(request: Request) -> FormData:
    """The form, read with Starlette's parser within the server's caps (file parts beyond a
    MiB spooled to disk; the caller closes it); a body that is not multipart or does not parse
    is refused (no rule's error code: a 4xx)."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise Refusal(
            400,
            f"This endpoint takes a multipart/form-data body (got {ctype[:60] or 'none'!r}).",
            None,
            None,
            None,
        )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > EDIT_BODY_CAP:
        raise Refusal(
            400,
            f"The request body is larger than this server reads ({EDIT_BODY_CAP} bytes).",
            "image",
            "invalid_value",
            None,
        )
    capped = Request(request.scope, _Capped(request.receive, EDIT_BODY_CAP))
    try:
        form = await capped.form(
            max_files=EDIT_MAX_PARTS, max_fields=EDIT_MAX_PARTS, max_part_size=EDIT_TEXT_PART_CAP
        )
    except MultiPartException as exc:
        raise Refusal(
            400, f"The multipart body does not parse: {exc.message}", None, None, None
        ) from None
    return form


# --- the contract of one form ----------------------------------------------------------------


def _json_types(schema: Any) -> set[str]:
    """Every JSON type a (ref-inlined) field schema names, through anyOf/oneOf."""
    if not isinstance(schema, Mapping):
        return set()
    out: set[str] = set()
    kind = schema.get("type")
    out.update([kind] if isinstance(kind, str) else kind or ())
    if "enum" in schema:
        out.update(json_type(v) for v in schema["enum"])
    if "const" in schema:
        out.add(json_type(schema["const"]))
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, ()):
            out |= _json_types(branch)
    return out


def decode_text(value: str, schema: Mapping[str, Any]) -> Any:
    """A text part as its field's type: ``"2"`` is 2 for an integer field, ``"true"`` is true
    for a boolean one; anything else stays the string it is (and breaks the field's type)."""
    types = _json_types(schema)
    text = value.strip()
    if "integer" in types and text.lstrip("-").isdigit():
        return int(text)
    if "boolean" in types and text in ("true", "false"):
        return text == "true"
    return value


@dataclass
class Form:
    """A form as the suite reads it: text fields decoded, file fields as facts (a list per
    field, in order), text parts sent where a file must be, and parts the schema does not know."""

    text: dict[str, Any] = field(default_factory=dict)
    files: dict[str, list[FileFacts]] = field(default_factory=dict)
    #: File fields that came (also) as text parts: field -> the part's name.
    text_for_file: dict[str, str] = field(default_factory=dict)
    #: The part names each file field came under.
    forms: dict[str, set[str]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)


class MultipartEndpoints:
    """Edits and variations for one :class:`~conformance.server.app.ReferenceServer`."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.quirks = server.quirks
        self.contract = server.contract
        self._validators: dict[tuple[str, str, str], Any] = {}

    # --- the routes -----------------------------------------------------------------------

    async def edits(self, request: Request) -> Response:
        return await self._handle(request, self.contract.endpoint("edits"))

    async def variations(self, request: Request) -> Response:
        return await self._handle(request, self.contract.endpoint("variations"))

    async def _handle(self, request: Request, endpoint: Endpoint) -> Response:
        from .app import RequestRefused

        try:
            self.server._check_query(request)
            self.server._authorize(request)
            form = await read_form(request)
        except Refusal as refused:
            return self._refusal(refused)
        except RequestRefused as refused:
            return self.server._error(refused)
        try:
            # Reading the files' facts and decoding the inputs runs in a worker thread; once the
            # job holds the decoded inputs, the spooled parts are closed.
            job = await anyio.to_thread.run_sync(
                lambda: self._resolve(self._gather(form.multi_items(), endpoint), endpoint)
            )
        except Refusal as refused:
            return self._refusal(refused)
        finally:
            await form.close()
        if self._quirk("edits-500-with-mask") and job.mask is not None:
            return _error_response(500, "Internal server error.", None, None, "server_error")
        if job.stream:
            return StreamingResponse(
                self._events(job, endpoint),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        pictures = await anyio.to_thread.run_sync(lambda: [render(job, i) for i in range(job.n)])
        return self._answer(request, job, pictures)

    def _refusal(self, refused: Refusal) -> Response:
        from .app import RequestRefused

        return self.server._error(
            RequestRefused(refused.status, refused.message, refused.param, refused.code)
        )

    def _quirk(self, name: str) -> bool:
        return name in self.quirks

    # --- gathering and validating ----------------------------------------------------------

    def _gather(self, parts: Iterable[tuple[str, str | UploadFile]], endpoint: Endpoint) -> Form:
        """The parts gathered by field: each file field from every part name it takes."""
        part_field = {
            part: name
            for files in endpoint.files.values()
            for name, spec in files.items()
            for part in spec.parts
        }
        form = Form()
        for name, value in parts:
            file_field = part_field.get(name)
            if file_field is not None and name.endswith("[]"):
                if self._quirk("edits-brackets-refused"):
                    raise Refusal(
                        400, f"Unknown parameter: '{name}'.", name, "unknown_parameter", None
                    )
                if self._quirk("edits-brackets-stringified"):
                    value = str(value)  # the object forwarded as its text
            if file_field is not None:
                form.forms.setdefault(file_field, set()).add(name)
                if isinstance(value, str):
                    form.text_for_file.setdefault(file_field, name)
                else:
                    form.files.setdefault(file_field, []).append(file_facts(name, value))
            elif name in endpoint.request_fields:
                if isinstance(value, str):
                    form.text[name] = decode_text(value, endpoint.request_fields[name])
                else:
                    form.text[name] = value.filename or ""
            else:
                form.unknown.append(name)
        return form

    def _resolve(self, form: Form, endpoint: Endpoint) -> Job:
        """The form held to the contract (refused at its first blocking break), then what to
        make of it."""
        model_name = form.text.get("model")
        if model_name is None:
            model_name = endpoint.default_model
        if not isinstance(model_name, str) or model_name not in endpoint.models:
            rule = _rule_for(endpoint, "model", "model_not_found", None)
            raise Refusal(
                400, f"Unknown model: {model_name!r:.80}.", "model", "model_not_found", rule
            )
        spec = endpoint.models[model_name]
        for violation in self._violations(form, endpoint, spec):
            rule = violation.rule
            if rule is not None and self.server.config.lenient and not rule.is_must_for(spec.name):
                continue
            raise violation
        return self._job(form, endpoint, spec)

    def _violations(self, form: Form, endpoint: Endpoint, spec: ModelSpec) -> Iterable[Refusal]:
        """Every break, in the order a server meets them: unknown parts, files, text fields,
        then the rules between fields."""
        for name in form.unknown:
            rule = _rule_for(endpoint, None, "unknown_parameter", spec.name)
            yield Refusal(400, f"Unknown parameter: '{name:.80}'.", name, "unknown_parameter", rule)
        for facts in endpoint.files[spec.name].values():
            yield from self._file_violations(form, endpoint, spec, facts)
        files = endpoint.files[spec.name]
        for name in endpoint.schemas["request"].get("required", ()):
            if name not in files and name not in form.text:
                rule = _rule_for(endpoint, name, "missing_required_parameter", spec.name)
                message = f"Missing required parameter: '{name}'."
                yield Refusal(400, message, name, "missing_required_parameter", rule)
        for name, value in form.text.items():
            if name == "model":
                continue
            found = self._text_violation(endpoint, spec, name, value)
            if found is not None:
                yield found
        for cross in endpoint.cross_fields:
            present = all(form.text.get(f) is not None for f in (*cross.when, *cross.then))
            if present and not cross.holds(form.text):
                rule = endpoint.rules.get(cross.rule)
                param = rule.param if rule else None
                code = rule.error_code if rule else "invalid_value"
                yield Refusal(400, cross.message, param, code, rule)

    def _file_violations(
        self, form: Form, endpoint: Endpoint, spec: ModelSpec, facts: FileInput
    ) -> Iterable[Refusal]:
        name = facts.field
        files = form.files.get(name, [])

        def refusal(facet: str, message: str) -> Refusal:
            rule = _file_rule(endpoint, name, facet, spec.name)
            code = rule.error_code if rule else "invalid_value"
            return Refusal(400, message, name, code, rule)

        if name in form.text_for_file:
            part = form.text_for_file[name]
            yield refusal("file", f"Invalid type for '{part}': expected a file, but got a string.")
            return
        if not files:
            if facts.required:
                yield refusal("required", f"Missing required parameter: '{name}'.")
            return
        if len(files) > facts.max_count:
            yield refusal(
                "count",
                f"'{name}': {len(files)} files; {spec.name} takes at most {facts.max_count}.",
            )
        for one in files:
            if one.format == "none":
                yield refusal(
                    "decodes", f"'{name}' ({one.filename}) is not a supported image file."
                )
            elif one.format not in facts.formats:
                yield refusal(
                    "format",
                    f"'{name}' is {one.format}; {spec.name} takes {', '.join(facts.formats)}.",
                )
            elif facts.max_bytes is not None and one.bytes >= facts.max_bytes:
                yield refusal(
                    "bytes", f"'{name}' is {one.bytes} bytes; it must be under {facts.max_bytes}."
                )
            elif facts.square and one.width != one.height:
                yield refusal("square", f"'{name}' is {one.width}x{one.height}; it must be square.")
            elif facts.needs_alpha and not one.alpha:
                yield refusal("alpha", f"'{name}' has no alpha channel to mark the edit area.")
        other = form.files.get(facts.same_dimensions_as or "", [])
        readable = other and files[0].format != "none" and other[0].format != "none"
        if readable and (files[0].width, files[0].height) != (other[0].width, other[0].height):
            yield refusal(
                "dimensions",
                f"'{name}' is {files[0].width}x{files[0].height}; it must have the "
                f"dimensions of '{facts.same_dimensions_as}' "
                f"({other[0].width}x{other[0].height}).",
            )

    def _text_violation(
        self, endpoint: Endpoint, spec: ModelSpec, name: str, value: Any
    ) -> Refusal | None:
        """One text field's break, held to the model's schema by the endpoint's validator."""
        required = name in endpoint.schemas["request"].get("required", ())
        if value is None and not required:
            return None
        if not spec.takes(name) and not required:
            rule = _rule_for(endpoint, None, "unsupported_parameter", spec.name)
            return Refusal(
                400,
                f"'{name}' is not supported with model {spec.name}.",
                name,
                "unsupported_parameter",
                rule,
            )
        if spec.accepts_custom(name, value) and spec.custom_sizes is not None:
            wxh = parse_wxh(value)
            assert wxh is not None
            limit = spec.custom_sizes.broken_limit(*wxh)
            if limit is None:
                return None
            rule = _rule_for(endpoint, name, "invalid_value", spec.name, limit=limit)
            return Refusal(
                400, f"Invalid {name} {value!r} for {spec.name}.", name, "invalid_value", rule
            )
        validator = self._field_validator(endpoint, spec.name, name)
        error = best_match(validator.iter_errors({name: value}))
        while error is not None and error.context:
            error = best_match(error.context)
        if error is None:
            return None
        code = _KEYWORD_CODES.get(str(error.validator), "invalid_value")
        rule = _rule_for(endpoint, name, code, spec.name) or _rule_for(
            endpoint, name, None, spec.name
        )
        code = rule.error_code if rule is not None else code
        return Refusal(400, f"Invalid value for '{name}': {error.message:.160}", name, code, rule)

    def _field_validator(self, endpoint: Endpoint, model: str, name: str) -> Any:
        """A validator of one field as one model takes it: the field's own schema and the
        model's definition, over a form holding that field alone (cached)."""
        key = (endpoint.name, model, name)
        if key not in self._validators:
            base = endpoint.schemas["request"]["$id"]
            self._validators[key] = endpoint.validator().evolve(
                schema={
                    "properties": {name: endpoint.schemas["request"]["properties"][name]},
                    "allOf": [{"$ref": f"{base}#/$defs/model.{model}"}],
                    "$id": f"{base}/field",
                }
            )
        return self._validators[key]

    # --- what to make -----------------------------------------------------------------------

    def _job(self, form: Form, endpoint: Endpoint, spec: ModelSpec) -> Job:
        defaults = {k: v.get("default") for k, v in endpoint.request_fields.items()}

        def pick(name: str) -> Any:
            value = form.text.get(name) if spec.takes(name) else None
            if value is None:
                value = spec.fixed.get(name, spec.defaults.get(name, defaults.get(name)))
            return own_choice(name, value, spec)

        size = pick("size")
        wxh = parse_wxh(size) if isinstance(size, str) else None
        width, height = wxh or parse_wxh(spec.default_size) or (1024, 1024)
        if endpoint.name == "variations" and self._quirk("variations-wrong-size"):
            width, height = max(width // 2, 1), max(height // 2, 1)
        fields = endpoint.files[spec.name].values()
        images = [f for i in fields if i.required for f in form.files.get(i.field, [])]
        masks = [f for i in fields if i.edit_area for f in form.files.get(i.field, [])]
        mask = masks[0] if masks else None
        if self._quirk("edits-first-image-only"):
            images = images[:1]
        if self._quirk("edits-mask-counted-twice") and mask is not None:
            images = [*images, mask]
        if self._quirk("edits-mask-ignored"):
            mask = None
        output_format = pick("output_format") if spec.takes("output_format") else "png"
        compression = (
            form.text.get("output_compression") if spec.takes("output_compression") else None
        )
        if output_format not in self.server._lossy_formats:
            compression = None
        stream = spec.takes("stream") and form.text.get("stream") is True
        n = pick("n")
        partials = pick("partial_images")
        return Job(
            endpoint=endpoint.name,
            model=spec,
            prompt=str(form.text.get("prompt") or ""),
            n=n if isinstance(n, int) else 1,
            width=width,
            height=height,
            quality=pick("quality"),
            background=pick("background"),
            output_format=str(output_format),
            compression=compression if isinstance(compression, int) else None,
            response_format=str(pick("response_format")),
            stream=bool(stream),
            partial_images=partials if isinstance(partials, int) else 0,
            images=images,
            mask=mask,
            first=images[0].open().convert("RGBA"),
            mask_alpha=mask.open().convert("RGBA").getchannel("A") if mask is not None else None,
        )

    # --- answers ----------------------------------------------------------------------------

    def _generation(self, job: Job) -> Any:
        """The job in the generations endpoint's terms, for its usage and URL code."""
        from .app import Generation

        return Generation(
            model=job.model,
            prompt=job.prompt,
            n=job.n,
            width=job.width,
            height=job.height,
            quality=job.quality,
            output_format=job.output_format,
            background=job.background,
            compression=job.compression,
            response_format=job.response_format,
            stream=job.stream,
            partial_images=job.partial_images,
            style=None,
        )

    def _answer(self, request: Request, job: Job, pictures: list[Picture]) -> Response:
        as_url = not job.model.is_gpt and job.response_format == "url"
        base = str(request.base_url).rstrip("/")
        items: list[dict[str, Any]] = []
        for picture in pictures:
            if as_url:
                token = self.server.urls.put(picture, self.server.config.url_ttl)
                items.append({"url": f"{base}/files/{token}.{picture.format}"})
            else:
                items.append({"b64_json": picture.b64})
        answer: dict[str, Any] = {"created": int(time.time()), "data": items}
        for name in job.model.echoes:
            answer[name] = job.size if name == "size" else getattr(job, name)
        if job.model.reports_usage:
            answer["usage"] = self.server._usage(self._generation(job), len(pictures))
        return Response(json.dumps(answer, separators=(",", ":")), media_type="application/json")

    async def _events(self, job: Job, endpoint: Endpoint) -> AsyncIterator[bytes]:
        kinds = _event_types(endpoint)
        common = {
            "created_at": int(time.time()),
            "size": job.size,
            "quality": job.quality,
            "background": job.background,
            "output_format": job.output_format,
        }
        for index in range(job.n):
            for k in range(job.partial_images):
                detail = job.partial_images - k
                picture = await anyio.to_thread.run_sync(partial(render, job, index, detail))
                yield _sse(
                    kinds["partial_image"],
                    {"b64_json": picture.b64, **common, "partial_image_index": k},
                )
            picture = await anyio.to_thread.run_sync(partial(render, job, index))
            usage = self.server._usage(self._generation(job), 1)
            yield _sse(kinds["completed"], {"b64_json": picture.b64, **common, "usage": usage})


def _event_types(endpoint: Endpoint) -> dict[str, str]:
    """The stream events' ``type`` values, from the endpoint's stream-event schema."""
    defs = endpoint.schemas["stream_event"]["$defs"]
    return {name: defs[name]["properties"]["type"]["const"] for name in defs}


def _sse(kind: str, fields: Mapping[str, Any]) -> bytes:
    data = json.dumps({"type": kind, **fields}, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n".encode()


def _error_response(
    status: int, message: str, param: str | None, code: str | None, kind: str
) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def _rule_for(
    endpoint: Endpoint, param: str | None, code: str | None, model: str | None, limit: Any = None
) -> Rule | None:
    """The endpoint's request rule about ``param`` with error code ``code`` (any code: None)
    that holds for ``model``; a custom-size limit picks among the size rules."""
    for rule in endpoint.rules.values():
        if rule.param != param or rule.kind not in ("reject", "either"):
            continue
        if code is not None and rule.error_code != code:
            continue
        if model is not None and model not in rule.models:
            continue
        if rule.limit == limit:
            return rule
    return None


def _file_rule(endpoint: Endpoint, name: str, facet: str, model: str) -> Rule | None:
    """The rule of one fact of a file field: ids are ``<endpoint>.<field>.<fact>``, a model's
    own variant after one more dot."""
    stem = f"{endpoint.name}.{name}.{facet}"
    for rule in endpoint.rules.values():
        if (rule.id == stem or rule.id.startswith(stem + ".")) and model in rule.models:
            return rule
    return None


# --- the pictures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """A valid edit or variation request, resolved."""

    endpoint: str
    model: ModelSpec
    prompt: str
    n: int
    width: int
    height: int
    quality: Any
    background: Any
    output_format: str
    compression: int | None
    response_format: str
    stream: bool
    partial_images: int
    images: list[FileFacts]
    mask: FileFacts | None
    #: The first input image and the mask's alpha, decoded (the parts are closed by then).
    first: Image.Image = field(repr=False)
    mask_alpha: Image.Image | None = field(repr=False)

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


def _marks(count: int, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """One square per input, in rows from the top-left corner: (x0, y0, x1, y1), x1/y1 excluded."""
    side = max(min(width, height) // EDIT_MARK_FRACTION, 2)
    gap = max(side // 2, 1)
    per_row = max((width - gap) // (side + gap), 1)
    out = []
    for index in range(count):
        row, col = divmod(index, per_row)
        x0, y0 = gap + col * (side + gap), gap + row * (side + gap)
        out.append((x0, y0, min(x0 + side, width), min(y0 + side, height)))
    return out


def render(job: Job, index: int, detail: int = 0) -> Picture:
    """Item ``index`` of the answer (``detail`` > 0: a coarser partial image of it)."""
    if job.endpoint == "variations":
        image, stamp = _variation(job, index)
    else:
        image, stamp = _edit(job)
    if detail > 0:
        scale = 2 ** (detail + 1)
        small = image.resize((max(job.width // scale, 1), max(job.height // scale, 1)))
        image = small.resize((job.width, job.height), Image.Resampling.NEAREST)
    return encode(image, job.output_format, job.compression, stamp)


def _edit(job: Job) -> tuple[Image.Image, dict[str, Any]]:
    size = (job.width, job.height)
    out = job.first.resize(size, Image.Resampling.BICUBIC)
    colour = PALETTE[spec_for_prompt(job.prompt, 1, 1).colour]
    if job.mask_alpha is not None:
        alpha = job.mask_alpha.resize(size, Image.Resampling.NEAREST)
        area = alpha.point(lambda a: 255 if a == 0 else 0)
    else:
        area = Image.new("L", size, 255)
    tinted = Image.blend(out, Image.new("RGBA", size, (*colour, 255)), 0.5)
    tinted.putalpha(255)
    out.paste(tinted, (0, 0), area)
    marks = _marks(len(job.images), *size)
    # Asked for a transparent background, the marks are see-through (half alpha): the answer
    # then shows alpha wherever the mask put the edit, the pixels outside it staying exact.
    opacity = 128 if job.background == "transparent" else 255
    for facts, box in zip(job.images, marks, strict=True):
        shade = bytes.fromhex(facts.sha256[:6])
        out.paste((*shade, opacity), box)
    stamp = {
        codec.ENDPOINT_FIELD: job.endpoint,
        codec.INPUTS_FIELD: len(job.images),
        codec.IMAGES_FIELD: [f.digest for f in job.images],
        codec.MASK_FIELD: job.mask.digest if job.mask is not None else None,
        codec.REGION_FIELD: list(area.getbbox() or ()) or None,
        codec.SIZE_FIELD: list(size),
        codec.MARKS_FIELD: [list(box) for box in marks],
        codec.RESAMPLE_FIELD: "bicubic",
    }
    return out, stamp


def _variation(job: Job, index: int) -> tuple[Image.Image, dict[str, Any]]:
    size = (job.width, job.height)
    source = job.images[0]
    image = job.first.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    red, green, blue = image.split()
    # Item k rotates the channels once or twice: a visible hue shift, and the n items differ.
    bands = (green, blue, red) if index % 2 == 0 else (blue, red, green)
    out = Image.merge("RGB", bands)
    stamp = {
        codec.ENDPOINT_FIELD: job.endpoint,
        codec.INPUTS_FIELD: 1,
        codec.IMAGES_FIELD: [source.digest],
        codec.MASK_FIELD: None,
        codec.REGION_FIELD: [0, 0, *size],
        codec.SIZE_FIELD: list(size),
        codec.MARKS_FIELD: [],
        "variant": index,
    }
    return ImageChops.duplicate(out), stamp


def encode(
    image: Image.Image, fmt: str, compression: int | None, stamp: Mapping[str, Any]
) -> Picture:
    """The image in ``fmt`` with the stamp: a PNG text chunk, else the EXIF description."""
    text = stamp_json(stamp)
    out = io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text(STAMP_KEY, text)
        image.save(out, "PNG", pnginfo=info, compress_level=1)
        return Picture(out.getvalue(), fmt)
    exif = Image.Exif()
    exif[EXIF_DESCRIPTION] = stamp_json({STAMP_KEY: stamp})
    if fmt == "jpeg":
        quality = 90 if compression is None else max(1, min(compression, 95))
        image.convert("RGB").save(out, "JPEG", quality=quality, exif=exif.tobytes())
    elif compression is None or compression >= 100:
        image.save(out, FORMATS[fmt][0], lossless=True, quality=0, method=0, exif=exif.tobytes())
    else:
        image.save(out, FORMATS[fmt][0], quality=compression, method=0, exif=exif.tobytes())
    return Picture(out.getvalue(), fmt)


def multipart_routes(server: Any, base_path: str) -> list[Route]:
    """The edits and variations routes under the API's base path (each with and without a
    trailing slash), at the paths their contracts state."""
    endpoints = MultipartEndpoints(server)
    handlers = {"edits": endpoints.edits, "variations": endpoints.variations}
    routes = []
    for name, handler in handlers.items():
        path = base_path.rstrip("/") + "/" + server.contract.endpoint(name).path.strip("/")
        routes += [Route(p, handler, methods=["POST"]) for p in (path, path + "/")]
    return routes
