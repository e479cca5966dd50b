"""A test case: one request the suite sends, and what a conformant server does with it.

Cases are made by the planner (and the Hypothesis strategies behind it), sent by the runner,
judged by the checks, recorded in HAR files and listed in reports. They are plain, frozen data
so that a plan is deterministic, comparable and serialisable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import httpx

from .inputs import InputFile

__all__ = [
    "ANY_MODEL",
    "CONTROL_ORIGIN",
    "MALFORMED_AUTH",
    "WRONG_KEY",
    "Auth",
    "Case",
    "Expect",
    "FormPart",
    "Kind",
]

#: The model of a case that does not depend on one (a non-JSON body, a missing key).
ANY_MODEL = "*"
#: The key sent by ``auth: wrong`` cases (and shown in their reproducers): plainly not a real
#: key.
WRONG_KEY = "sk-imgconf-wrong-key-0000000000000000"
#: The origin of a model's *control*: its plain valid request, sent first. A refusal proves a
#: request rule only when the same target accepted the control in the same run.
CONTROL_ORIGIN = "control"

Kind = Literal["valid", "invalid", "probe"]
Expect = Literal["accept", "reject", "either"]
#: How a case authenticates: ``valid`` sends the key as ``Bearer <key>``; ``missing`` sends no
#: Authorization header; ``wrong`` a wrong key; ``blank-bearer`` the Bearer scheme with no token;
#: ``other-scheme`` the key under another scheme than Bearer.
Auth = Literal["valid", "missing", "wrong", "blank-bearer", "other-scheme"]
#: The malformed Authorization headers: a server MUST refuse them (any 4xx), 401 is the SHOULD.
MALFORMED_AUTH: tuple[Auth, ...] = ("blank-bearer", "other-scheme")


@dataclass(frozen=True)
class FormPart:
    """One part of a multipart body: a text field (``value``) or a file (``file``, a recipe
    whose bytes are made when sent). Text parts are sent first, then files, each in order (as
    the OpenAI SDKs' encoder does). A text part may carry a file's name
    (``image[]``): that is how a proxy that stringifies files looks, and a case sends it so."""

    name: str
    value: str | None = None
    file: InputFile | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.file is not None:
            return {"name": self.name, "file": self.file.to_dict()}
        return {"name": self.name, "value": self.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FormPart:
        file = data.get("file")
        return cls(
            name=str(data["name"]),
            value=data.get("value"),
            file=InputFile.from_dict(file) if isinstance(file, dict) else None,
        )


#: Strings longer than this are shortened where a body is kept for a report.
LONG_STRING = 160


def elide(value: Any, limit: int = LONG_STRING) -> Any:
    """A JSON value with long strings (prompts, base64) shortened to a stated excerpt."""
    if isinstance(value, str):
        if len(value) <= limit:
            return value
        return f"{value[:48]}…[{len(value)} characters elided]"
    if isinstance(value, dict):
        return {str(k): elide(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [elide(v, limit) for v in value]
    return value


@dataclass(frozen=True)
class Case:
    """One request and its expectation.

    ``kind`` is ``valid`` (every MUST-accept combination; the server must answer 2xx and
    correctly), ``invalid`` (breaks exactly ``rule``; the server must answer 4xx, or 400 for
    SHOULD rules) or ``probe`` (a grey area judged at the rule's level: unsupported parameters,
    the model default, a trailing slash).
    """

    id: str
    model: str
    kind: Kind
    #: The rule this case exercises: the broken rule of an invalid case,
    #: ``request.valid.accepted`` for a valid one.
    rule: str
    #: The rule's level under the profile in use (MUST or SHOULD).
    level: str
    expect: Expect
    #: The JSON body; ignored when ``raw`` is set.
    body: Any = None
    #: Exact bytes to send instead of ``json.dumps(body)`` (for bodies that are not JSON).
    raw: bytes | None = None
    #: How the request authenticates (see :data:`Auth`).
    auth: Auth = "valid"
    #: Appended to the endpoint path (``"/"`` for the trailing-slash probe).
    path_suffix: str = ""
    #: How the planner came to it: must-reject, should-reject, boundary, each-choice,
    #: pairwise, probe, explore.
    origin: str = "plan"
    #: Images the server generates if it accepts the request (also for invalid cases that a
    #: broken server might wrongly accept): what the budget counts.
    images: int = 0
    #: Estimated USD if accepted, or None when the profile has no price for it.
    cost: float | None = 0.0
    #: A short human description ("n=11", "size=1000x1000").
    title: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    #: The endpoint the case is sent to: ``generations`` (a JSON body), ``edits`` or
    #: ``variations`` (a multipart body made of ``parts``).
    endpoint: str = "generations"
    #: The multipart body, part by part in order (``body`` and ``raw`` are then unused).
    parts: tuple[FormPart, ...] = ()
    #: The Content-Type ``raw`` is sent with (None: application/json): a body of a type the
    #: endpoint does not take, or a multipart body that does not parse.
    raw_type: str | None = None
    #: Bytes of the body as sent, once :meth:`shed` has shortened the body (None: the body is
    #: whole, and :meth:`content` says).
    sent_bytes: int | None = None

    @property
    def stream(self) -> bool:
        if self.parts:
            return any(p.name == "stream" and p.value == "true" for p in self.parts)
        return isinstance(self.body, dict) and self.body.get("stream") is True

    @property
    def multipart(self) -> bool:
        return bool(self.parts)

    @property
    def sent_parts(self) -> tuple[FormPart, ...]:
        """The parts in the order they are sent: text parts first, then files, each in order."""
        return tuple(p for p in self.parts if p.file is None) + tuple(
            p for p in self.parts if p.file is not None
        )

    @property
    def boundary(self) -> str:
        """The multipart boundary: fixed per case, so that the bytes sent, recorded and
        replayed are the same every time."""
        return "imgconf-" + format(hash_text(self.id), "016x")

    @property
    def content_type(self) -> str:
        if self.parts:
            return f"multipart/form-data; boundary={self.boundary}"
        if self.raw is not None and self.raw_type is not None:
            return self.raw_type
        return "application/json"

    def body_stream(self) -> httpx.Request:
        """The request whose ``stream`` yields the body in pieces: a multipart body's files
        are read from their recipes while it is sent, never held whole."""
        texts = [(p.name, p.value or "") for p in self.parts if p.file is None]
        files: list[tuple[str, Any]] = [
            (p.name, (p.file.filename, p.file.open(), p.file.media_type))
            for p in self.parts
            if p.file is not None
        ]
        if not files:
            # A form without a file is still multipart: its text parts go as parts without a
            # file name (httpx would send text fields alone url-encoded).
            files, texts = [(name, (None, value)) for name, value in texts], []
        return httpx.Request(
            "POST",
            "http://imgconf.invalid/",
            headers={"content-type": self.content_type},
            data=_grouped(texts),
            files=files,
        )

    def content_length(self) -> int:
        if not self.parts:
            return len(self.content())
        return int(self.body_stream().headers["content-length"])

    def iter_content(self) -> Iterator[bytes]:
        """The body in pieces, as sent."""
        if not self.parts:
            yield self.content()
            return
        yield from self.body_stream().stream  # type: ignore[misc]

    def content(self) -> bytes:
        """The request body bytes exactly as they are sent (a multipart body whole: for small
        bodies; sending streams it through :meth:`iter_content`)."""
        if self.parts:
            return b"".join(self.iter_content())
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, ensure_ascii=False).encode()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["raw"] = self.raw.decode("utf-8", "replace") if self.raw is not None else None
        data["tags"] = list(self.tags)
        data["parts"] = [p.to_dict() for p in self.parts]
        if self.raw_type is None:
            del data["raw_type"]  # the plans of JSON cases stay as they were
        if self.sent_bytes is None:
            del data["sent_bytes"]
        return data

    def shed(self) -> Case:
        """The case as a report keeps it once it has passed: its JSON body's long strings
        shortened (as report.json shows them) and the length of what was sent, so that a run of
        thousands of drawn cases does not hold every prompt. (A form's parts are recipes and a
        raw body is short: those cases are kept whole.)"""
        if self.parts or self.raw is not None or self.sent_bytes is not None:
            return self
        return replace(self, body=elide(self.body), sent_bytes=len(self.content()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        data = dict(data)
        raw = data.get("raw")
        data["raw"] = raw.encode() if isinstance(raw, str) else None
        data["tags"] = tuple(data.get("tags", ()))
        data["parts"] = tuple(FormPart.from_dict(p) for p in data.get("parts") or ())
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def hash_text(text: str) -> int:
    """A stable 64-bit number of a text (Python's ``hash`` changes per process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Text fields as httpx takes them: a repeated name's values as a list, in order."""
    out: dict[str, str | list[str]] = {}
    for name, value in pairs:
        if name in out:
            previous = out[name]
            out[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[name] = value
    return out
