"""The reference server's own choices where the contract leaves the choice to the server.

They are data (``schemas/reference-server.yaml``), marked as the server's: what ``auto``
becomes and how many tokens an image counts. The suite's checks never read them, so a
conformant server choosing otherwise is never a finding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..contract.loader import ModelSpec, read_data_file, schemas_dir

__all__ = ["OwnChoices", "own_choice", "own_choices"]

CHOICES_FILE = "reference-server.yaml"


@dataclass(frozen=True)
class OwnChoices:
    """The server's choices, as its data file states them."""

    #: field -> value left to the server -> what it becomes, in order of preference.
    choices: Mapping[str, Mapping[str, tuple[str, ...]]]
    #: Output tokens of one 1024x1024 image by quality.
    tokens_1024: Mapping[str, int]
    #: The quality whose token count any other quality takes.
    default_quality: str

    def output_tokens(self, quality: str | None, pixels: int) -> int:
        """Output tokens of one image of ``pixels`` pixels at ``quality``, scaled by area."""
        per_image = self.tokens_1024.get(quality or "", self.tokens_1024[self.default_quality])
        return max(1, round(per_image * pixels / (1024 * 1024)))


@cache
def own_choices() -> OwnChoices:
    """The server's choices, read once."""
    raw = read_data_file(schemas_dir() / CHOICES_FILE)
    usage = raw["usage"]
    return OwnChoices(
        choices={
            name: {value: tuple(options) for value, options in table.items()}
            for name, table in raw["own_choices"].items()
        },
        tokens_1024=dict(usage["output_tokens_1024"]),
        default_quality=str(usage["default_quality"]),
    )


def own_choice(name: str, value: Any, spec: ModelSpec) -> Any:
    """What the server makes of a value it chooses for, else the value itself."""
    options = own_choices().choices.get(name, {}).get(value) if isinstance(value, str) else None
    if not options:
        return value
    taken = [o for o in options if o in spec.values(name)]
    return (taken or list(options))[0]
