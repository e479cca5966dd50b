"""How much a rule binds, as ``schemas/rules.yaml`` declares it."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Level"]


class Level(StrEnum):
    """A broken MUST rule fails a run; a broken SHOULD rule warns (``--fail-on should``: fails)."""

    MUST = "MUST"
    SHOULD = "SHOULD"
