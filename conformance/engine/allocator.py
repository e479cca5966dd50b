"""Large buffers given back to the system when freed (glibc only; elsewhere nothing is done).

Judging holds a few buffers per answer the size of an image (the answer's text, the decoded
file, its pixels: 2-35 MB each at 4K). glibc serves an allocation that large with ``mmap`` and
returns it on ``free``, until the first such free: then it raises its threshold to that size
(up to 32 MiB), and the next ones come from the heap of whichever thread asked, where freed
space is kept and fragments. With an answer judged in one thread and read in another, a run's
resident memory then grows well past what it holds. Fixing the threshold at
:data:`MMAP_THRESHOLD` keeps image-sized buffers in ``mmap``; the heap's top is trimmed only
past :data:`TRIM_THRESHOLD` (fixing one threshold fixes both, and the default of 128 KiB would
trim, then grow back, the heap after nearly every answer).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "return_large_buffers"]

MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 32 * 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_done = False


def return_large_buffers() -> bool:
    """Set glibc's thresholds once per process; False where there is no glibc ``mallopt``."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(
            _M_TRIM_THRESHOLD, TRIM_THRESHOLD
        ):
            _done = True
    return _done
