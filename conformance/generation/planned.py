"""The rules the planner writes cases for itself, one registry entry each.

Most request rules get their cases from the request oracle's breakers: the planner asks for a
body that breaks one rule and no other. The rules below are not broken that way: the valid
cases and the control, the probes of fields a model does not take, the model-independent probes
(bodies that are not JSON or not an object, unknown or omitted models, missing or wrong keys, a
trailing slash). Each is registered here once under its declared id, so the planner and the
pre-flight name them through these entries and never type an id.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contract.registry import Registry

__all__ = [
    "AUTH_MISSING",
    "AUTH_WRONG",
    "BODY_NOT_JSON",
    "BODY_NOT_OBJECT",
    "MODEL_DEFAULT",
    "MODEL_UNKNOWN",
    "PLANNED",
    "TRAILING_SLASH",
    "UNSUPPORTED_PARAM",
    "VALID_ACCEPTED",
    "PlannedRule",
]


@dataclass(frozen=True)
class PlannedRule:
    """A rule whose cases the planner writes, and which cases those are."""

    id: str
    cases: str


#: Every rule the planner writes cases for itself, by id.
PLANNED: Registry[PlannedRule] = Registry("generation")


def _planned(rule_id: str, cases: str) -> PlannedRule:
    return PLANNED.add(rule_id, PlannedRule(rule_id, cases))


VALID_ACCEPTED = _planned("request.valid.accepted", "the control and every valid case")
UNSUPPORTED_PARAM = _planned(
    "request.unsupported_param", "a value for each field the model does not take"
)
BODY_NOT_JSON = _planned("request.body.not_json", "a truncated and a form-encoded body")
BODY_NOT_OBJECT = _planned("request.body.not_object", "an array, a string and a number")
MODEL_UNKNOWN = _planned("request.model.unknown", "a model name no one serves, and a number")
MODEL_DEFAULT = _planned("request.model.default", "a request without `model`")
AUTH_MISSING = _planned("auth.missing", "no Authorization header, per model and once")
AUTH_WRONG = _planned("auth.wrong", "a wrong key and malformed credentials, per model and once")
TRAILING_SLASH = _planned("transport.trailing_slash", "the path with a trailing slash")
