"""How many bytes of decoded pixels the judging threads hold at once.

The runner admits answers to be judged by their size in bytes (:class:`JudgingGate`), but what a
decode costs is set by the pixels an image declares, not by its file: a few kilobytes of flat
WebP can declare 2032x2032 pixels, three copies of 16 MB while libwebp, Pillow and the check
hold them. Each decode asks :data:`PIXELS` for its estimate first; decodes run together while
their estimates fit within the limit, one larger than the limit runs alone, and they are served
first come, first served (a large one is not passed over forever by small ones).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator

from ..settings import PIXEL_MEMORY

__all__ = ["PIXELS", "PixelMemory"]


class PixelMemory:
    """A budget of bytes shared by threads, granted in the order asked."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._holders = 0
        self._tickets = itertools.count()
        self._queue: list[int] = []
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Wait until ``size`` bytes fit (or nothing else is held), then hold them for the
        block. A size of 0 holds nothing and never waits."""
        if size <= 0:
            yield
            return
        with self._changed:
            ticket = next(self._tickets)
            self._queue.append(ticket)
            self._changed.wait_for(lambda: self._queue[0] == ticket and self._fits(size))
            self._queue.pop(0)
            self.held += size
            self._holders += 1
            self._changed.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._changed:
                self.held -= size
                self._holders -= 1
                self._changed.notify_all()

    def _fits(self, size: int) -> bool:
        return not self._holders or self.held + size <= self.limit


#: The process's budget: one per process, since the judging threads of every run share memory.
PIXELS = PixelMemory(PIXEL_MEMORY)
