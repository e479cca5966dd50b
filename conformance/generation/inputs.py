"""Input files of multipart cases, made on the fly from a recipe.

An edit or variation case uploads images and masks. Storing them would make a plan large and a
report larger, so a case carries a :class:`InputFile` *recipe* instead: what the file is (a
picture or a mask, its size, format and alpha, a seed, and optionally an exact byte length),
from which the same bytes are made every time — when the case is sent, judged, recorded or
replayed. A reproducer or HAR entry therefore needs only the recipe to be exact.

Files near the spec's byte limits (4 MB, 50 MB, and one byte over) are never built whole: the
padding that brings a small picture to its length is a private PNG chunk of zeros, read in
pieces through :meth:`InputFile.open`, a seekable file whose length is known without reading,
so a multipart encoder streams it and nothing holds it twice.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal

from PIL import Image

__all__ = [
    "FileFormat",
    "InputFile",
    "LazyFile",
]

#: What an input's bytes are: the image formats the endpoints name, a format they do not take
#: (``gif``) and something that is not an image at all (``text``).
FileFormat = Literal["png", "jpeg", "webp", "gif", "text"]

_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"}
_MEDIA_TYPE = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "text": "text/plain",
}
_SUFFIX = {"png": "png", "jpeg": "jpg", "webp": "webp", "gif": "gif", "text": "txt"}
#: The type of the padding chunk: ancillary (lower-case first letter, so decoders skip it),
#: private (lower-case second) and safe to copy.
_PAD_TYPE = b"prVt"
_PAD_BLOCK = 1 << 20
#: The bytes of one digest as the reference server's stamp writes them (hex characters).
DIGEST_CHARS = 16


@dataclass(frozen=True)
class InputFile:
    """A recipe for one uploaded file.

    ``role`` is ``picture`` (an image to edit: gradients with detail everywhere, so that a
    resize or an edit shows, and a colour from ``seed`` so that two inputs differ) or ``mask``
    (opaque everywhere but ``box``, whose pixels are fully transparent: the area to edit).
    ``length`` pads a PNG to exactly that many bytes; ``truncate`` cuts the encoded file to that
    many bytes (a file that does not decode).
    """

    role: Literal["picture", "mask"] = "picture"
    width: int = 256
    height: int = 256
    format: FileFormat = "png"
    alpha: bool = False
    seed: int = 0
    #: The transparent box of a mask, ``(left, top, right, bottom)`` in its own pixels.
    box: tuple[int, int, int, int] | None = None
    length: int | None = None
    truncate: int | None = None

    @property
    def filename(self) -> str:
        return f"{self.role}-{self.seed}.{_SUFFIX[self.format]}"

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPE[self.format]

    def encoded(self) -> bytes:
        """The file before padding (small: at most a few hundred KB)."""
        return _encode(self)

    def size(self) -> int:
        """The file's length in bytes, without building it."""
        if self.length is not None:
            return self.length
        if self.truncate is not None:
            return min(self.truncate, len(self.encoded()))
        return len(self.encoded())

    def open(self) -> LazyFile:
        """A fresh seekable, read-only file of the bytes (padding made as it is read)."""
        return LazyFile(self)

    def read(self) -> bytes:
        """All the bytes at once: for small files, and for judging (never for sending)."""
        with self.open() as handle:
            return handle.read()

    def digest(self) -> str:
        """The SHA-256 of the bytes, in the stamp's short hex form, read in pieces."""
        return _digest(self)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.box is not None:
            data["box"] = list(self.box)
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputFile:
        data = dict(data)
        if data.get("box") is not None:
            data["box"] = tuple(data["box"])
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


class LazyFile(io.RawIOBase):
    """An :class:`InputFile`'s bytes as a seekable file: the encoded picture, then (when padded)
    a private chunk of zeros and its CRC, then the picture's ``IEND``. Only the small encoded
    part is held; zeros are made per read."""

    def __init__(self, recipe: InputFile) -> None:
        super().__init__()
        encoded = recipe.encoded()
        if recipe.truncate is not None:
            encoded = encoded[: recipe.truncate]
        self._pieces = _layout(recipe, encoded)
        self._length = sum(len(p) if isinstance(p, bytes) else p for p in self._pieces)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(0, self._length - self._position))
        written = 0
        start = 0
        for piece in self._pieces:
            size = len(piece) if isinstance(piece, bytes) else piece
            end = start + size
            if written < wanted and self._position + written < end:
                offset = self._position + written - start
                count = min(size - offset, wanted - written)
                if isinstance(piece, bytes):
                    view[written : written + count] = piece[offset : offset + count]
                else:
                    view[written : written + count] = bytes(count)
                written += count
            start = end
        self._position += written
        return written

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._length - self._position
        buffer = bytearray(min(size, max(0, self._length - self._position)))
        count = self.readinto(buffer)
        return bytes(buffer[:count])


def _layout(recipe: InputFile, encoded: bytes) -> list[bytes | int]:
    """The file as pieces: bytes held, or a count of zeros made when read."""
    if recipe.length is None or recipe.length == len(encoded):
        return [encoded]
    if recipe.format != "png" or recipe.truncate is not None:
        raise ValueError("only a whole PNG can be padded to a length")
    filler = recipe.length - len(encoded) - 12
    if filler < 0:
        raise ValueError(f"a {recipe.width}x{recipe.height} PNG is over {recipe.length} bytes")
    iend = encoded.rindex(b"IEND") - 4
    head = encoded[:iend] + struct.pack(">I", filler) + _PAD_TYPE
    tail = struct.pack(">I", _zeros_crc(filler)) + encoded[iend:]
    return [head, filler, tail]


@lru_cache(maxsize=16)
def _zeros_crc(count: int) -> int:
    crc = zlib.crc32(_PAD_TYPE)
    block = bytes(min(count, _PAD_BLOCK))
    left = count
    while left:
        step = min(left, len(block))
        crc = zlib.crc32(block[:step], crc)
        left -= step
    return crc


@lru_cache(maxsize=64)
def _digest(recipe: InputFile) -> str:
    digest = hashlib.sha256()
    with recipe.open() as handle:
        while block := handle.read(_PAD_BLOCK):
            digest.update(block)
    return digest.hexdigest()[:DIGEST_CHARS]


@lru_cache(maxsize=64)
def _encode(recipe: InputFile) -> bytes:
    if recipe.format == "text":
        return f"not an image ({recipe.seed})\n".encode()
    image = _mask(recipe) if recipe.role == "mask" else _picture(recipe)
    out = io.BytesIO()
    if recipe.format == "jpeg":
        image = image.convert("RGB")
    elif recipe.format == "gif":
        image = image.convert("P")
    image.save(out, _PIL_FORMAT[recipe.format])
    return out.getvalue()


def _picture(recipe: InputFile) -> Image.Image:
    size = (recipe.width, recipe.height)
    ramp = Image.linear_gradient("L").resize(size)
    across = Image.linear_gradient("L").rotate(90).resize(size)
    level = (recipe.seed * 97 + 31) % 256
    image = Image.merge("RGB", (ramp, across, Image.new("L", size, level)))
    if recipe.alpha:
        # Real alpha variation, never fully transparent: an input, not a mask.
        image.putalpha(across.point(lambda a: 128 + a // 2))
    return image


def _mask(recipe: InputFile) -> Image.Image:
    mask = Image.new("RGBA", (recipe.width, recipe.height), (0, 0, 0, 255))
    if recipe.box is not None:
        mask.paste((0, 0, 0, 0), recipe.box)
    return mask if recipe.alpha else mask.convert("RGB")
