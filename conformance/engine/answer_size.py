"""How large a conformant answer can be: what tells a target's oversized answer from a bound of
the run set too low.

The run reads every body within a bound (``--limit body_cap``, ``error_cap``, ``fetch_cap``,
and each case's share of ``inflight_cap``). A body cut there breaks ``transport.well_formed``
only when no conformant answer to the request could be that large. Below that size the cut is
the run's own doing (a user who lowered a cap, a default smaller than ten 4K images), and what
the answer would have shown is not observed (``over_limit``), never a finding against the
target.

An image holds at most :data:`~conformance.settings.IMAGE_BYTES_PER_PIXEL` bytes a pixel and
:data:`~conformance.settings.IMAGE_SLACK` for its container; an answer holds each image it may
carry (``n``, clamped to the model's most, and each partial image of a stream) in base64, or a
URL to it, with room for the JSON around them. An error body is at most the run's default error
cap: no conformant error comes near a mebibyte.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contract.loader import ModelSpec, parse_wxh
from ..settings import (
    ANSWER_SLACK,
    ERROR_CAP,
    IMAGE_BYTES_PER_PIXEL,
    IMAGE_SLACK,
    ITEM_SLACK,
    MAX_PIXELS,
)

__all__ = ["AnswerSize", "largest_pixels"]


def largest_pixels(spec: ModelSpec | None, size: tuple[int, int] | None) -> int:
    """The pixels of an image answering ``size``; for a size left to the model (``auto``, left
    out, ignored), the largest it lists or its custom sizes allow (without a model: the largest
    image imgconf reads at all)."""
    if size is not None:
        return size[0] * size[1]
    if spec is None:
        return MAX_PIXELS
    listed = [w * h for w, h in filter(None, (parse_wxh(s) for s in spec.sizes))]
    if spec.custom_sizes is not None:
        listed.append(spec.custom_sizes.max_pixels)
    return max(listed, default=MAX_PIXELS)


@dataclass(frozen=True)
class AnswerSize:
    """The most bytes a conformant answer to one request holds, under each bound of the run."""

    #: Pixels of the largest image that may answer.
    pixels: int
    #: Images the answer may carry (partial images of a stream included).
    images: int
    #: Whether they come in the body (base64) rather than as URLs fetched apart.
    inline: bool

    @classmethod
    def of(
        cls,
        spec: ModelSpec | None,
        size: tuple[int, int] | None,
        *,
        n: int,
        stream: bool,
        partial_images: int,
        inline: bool,
    ) -> AnswerSize:
        most = spec.n_max if spec is not None else 10
        images = max(1, min(n, most)) * (1 + max(0, min(partial_images, 3)) if stream else 1)
        return cls(largest_pixels(spec, size), images, inline)

    @property
    def image(self) -> int:
        """One image's file at most (what a URL fetch reads)."""
        return self.pixels * IMAGE_BYTES_PER_PIXEL + IMAGE_SLACK

    def body(self, status: int | None) -> int:
        """The answer body at most: an error's for a status other than 2xx."""
        if status is None or not 200 <= status < 300:
            return ERROR_CAP
        per_item = ITEM_SLACK + ((self.image * 4 + 2) // 3 if self.inline else 0)
        return ANSWER_SLACK + self.images * per_item

    def within(self, bound: str, status: int | None) -> int:
        """What a conformant answer holds under the run's bound named ``bound``: its body
        (``body_cap``, ``error_cap``), one fetched image (``fetch_cap``), or the body and every
        image fetched for it together (``inflight_cap``, the case's share of the bytes held)."""
        if bound == "fetch_cap":
            return self.image
        fetched = 0 if self.inline else self.images * self.image
        return self.body(status) + (fetched if bound == "inflight_cap" else 0)

    def cut_by_the_run(self, cut_at: tuple[str, int] | None, status: int | None) -> bool:
        """Whether a body cut at ``cut_at`` (the bound's name, its bytes) may have been a
        conformant answer: the bound lies below what one can hold."""
        if cut_at is None:
            return False
        name, cap = cut_at
        return cap < self.within(name, status)
