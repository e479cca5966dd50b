"""Memory given back to the system once freed (glibc only; elsewhere nothing is done).

Judging holds a few buffers per answer the size of an image (the answer's text, the decoded
file, its pixels: 2-35 MB each at 4K). glibc serves an allocation that large with ``mmap`` and
returns it on ``free``, until the first such free: then it raises its threshold to that size
(up to 32 MiB), and the next ones come from the heap of whichever thread asked, where freed
space is kept and fragments. With an answer judged in one thread and read in another, a run's
resident memory then grows well past what it holds. Fixing the threshold at
:data:`MMAP_THRESHOLD` keeps image-sized buffers in ``mmap``; the heap's top is trimmed only
past :data:`TRIM_THRESHOLD` (fixing one threshold fixes both, and the default of 128 KiB would
trim, then grow back, the heap after nearly every answer). All threads share one heap
(:data:`ARENAS`), and :func:`give_back_free_memory` returns its free pages after a burst.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import Any

__all__ = [
    "ARENAS",
    "MMAP_THRESHOLD",
    "TRIM_THRESHOLD",
    "configure",
    "give_back_free_memory",
]

MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 32 * 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: Heaps shared by all threads: one. glibc would give each thread its own (up to eight per
#: core), and memory freed in one stays that heap's; the threads here (judging, making drawn
#: cases) allocate little outside Python's own allocator, so they do not contend for it.
ARENAS = 1

_done = False


@functools.cache
def _libc() -> Any:
    """glibc, through ctypes (imported here: a run that judges no image never needs it)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def configure() -> bool:
    """Set glibc's thresholds and heaps once per process (a run's first runner does);
    False where there is no glibc ``mallopt``."""
    global _done
    if _done:
        return True
    libc = _libc()
    if libc is None:
        return False
    with contextlib.suppress(AttributeError):
        mallopt = libc.mallopt
        if (
            mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            and mallopt(_M_ARENA_MAX, ARENAS)
        ):
            _done = True
    return _done


def give_back_free_memory() -> None:
    """Return the free pages of every heap to the system (glibc's ``malloc_trim``).

    For after a burst of allocation in another thread: glibc gives each thread a heap of its
    own, and what is freed there stays that heap's. Drawn cases are made in a worker thread, a
    line's worth at a time (hundreds of prompts), and let go of once judged; without this, each
    batch would leave its pages behind.
    """
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(AttributeError):
            libc.malloc_trim(0)
