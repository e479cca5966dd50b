"""The facts of images already judged, by the digest of their bytes.

Servers repeat images: a placeholder, a blank or filtered picture, a mock's or a reference
server's flat test image asked again at the same size. What :func:`inspect_image
<conformance.engine.image_facts.inspect_image>` finds, and the report's thumbnail, depend on the
bytes alone, so a repeat can be answered from memory instead of inflating or decoding its pixels
again.

Only images that compress well are remembered: hashing costs their bytes, a decode costs their
pixels, and a file of at most :data:`~conformance.settings.SEEN_BYTES_PER_PIXEL` bytes per
declared pixel costs a small fraction of its decode to hash (SHA-256 runs at about 1.7 GB/s;
inflating or decoding runs at well under a byte per nanosecond of pixels). A photograph, which
a real vendor never sends twice, is never hashed. The digest is SHA-256, so no server can make
two different files share one set of facts.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from ..settings import SEEN_BYTES_PER_PIXEL, SEEN_IMAGES

__all__ = ["SeenImages", "seen_key"]

T = TypeVar("T")


def seen_key(data: bytes, pixels: int, *questions: object) -> tuple[bytes, tuple] | None:
    """The memory's key for ``data`` asked ``questions`` (what the facts were asked to hold:
    alpha or not, or a thumbnail), or None when the image is not worth remembering (see the
    module's docstring)."""
    if len(data) > pixels * SEEN_BYTES_PER_PIXEL:
        return None
    return hashlib.sha256(data).digest(), questions


class SeenImages(Generic[T]):
    """A bounded, thread-safe, least-recently-used map from :func:`seen_key` to facts.

    Shared by the judging threads; two threads judging the same new image at once both decode
    it, which costs time once and is never wrong.
    """

    def __init__(self, limit: int = SEEN_IMAGES) -> None:
        self.limit = limit
        self.hits = 0
        self._entries: OrderedDict[object, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: object) -> T | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return found

    def put(self, key: object, facts: T) -> None:
        with self._lock:
            self._entries[key] = facts
            self._entries.move_to_end(key)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
