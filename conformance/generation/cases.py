"""A test case: one request the suite sends, and what a conformant server does with it.

Cases are made by the planner (and the Hypothesis strategies behind it), sent by the runner,
judged by the checks, recorded in HAR files and listed in reports. They are plain, frozen data
so that a plan is deterministic, comparable and serialisable.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "ANY_MODEL",
    "CONTROL_ORIGIN",
    "MALFORMED_AUTH",
    "WRONG_KEY",
    "Auth",
    "Case",
    "Expect",
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

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True

    def content(self) -> bytes:
        """The request body bytes exactly as they are sent."""
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, ensure_ascii=False).encode()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["raw"] = self.raw.decode("utf-8", "replace") if self.raw is not None else None
        data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        data = dict(data)
        raw = data.get("raw")
        data["raw"] = raw.encode() if isinstance(raw, str) else None
        data["tags"] = tuple(data.get("tags", ()))
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})
