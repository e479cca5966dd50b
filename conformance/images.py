"""What a returned image is, read as cheaply as the question allows.

Format comes from magic bytes (not from what the server says), dimensions from the header via
Pillow's lazy ``Image.open`` (no pixels decoded), and the pixels are decoded only when the
answer must show an alpha channel or a thumbnail is wanted for the report. A hostile image
(a decompression bomb, a truncated file) is a problem of that image, never a crash.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

__all__ = [
    "ImageFacts",
    "decode_base64",
    "inspect_image",
    "sniff_format",
]

#: Pixels we are willing to decode (alpha check, thumbnail): well above the contract's largest
#: size (3840x2160), well below a decompression bomb.
MAX_DECODE_PIXELS = 16_777_216
THUMBNAIL_SIDE = 160

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La", "I;16A"})


@dataclass
class ImageFacts:
    """The facts the checks compare with the request."""

    format: str | None
    width: int | None = None
    height: int | None = None
    has_alpha: bool | None = None
    decodes: bool = False
    #: Why it does not decode (or what decoding refused), for the report.
    problem: str | None = None
    thumbnail: bytes | None = None


def sniff_format(data: bytes) -> str | None:
    """The format told by the first bytes: png, jpeg, webp, gif, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def decode_base64(value: str) -> bytes | None:
    """Strict base64 (the standard alphabet, padding required); None when it is not."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _alpha_from_header(image: Image.Image) -> bool:
    if image.mode in _ALPHA_MODES:
        return True
    return "transparency" in image.info


def inspect_image(data: bytes, *, check_alpha: bool = False, thumbnail: bool = False) -> ImageFacts:
    """Read one image's format, size and (when asked) alpha and a thumbnail.

    ``decodes`` means Pillow recognises the file and, for PNG, that every chunk's checksum holds
    (cheap: no inflation); pixels are decoded only for ``check_alpha`` or ``thumbnail``.
    """
    facts = ImageFacts(format=sniff_format(data))
    if not data:
        facts.problem = "empty image"
        return facts
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            facts.width, facts.height = image.size
            facts.has_alpha = _alpha_from_header(image)
            if facts.format == "png":
                image.verify()  # chunk CRCs, no pixels; the image must be reopened after this
                image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        facts.problem = "not a readable image" if facts.format is None else "corrupt image data"
        return facts
    except Exception as exc:  # Pillow raises a variety for hostile data; all mean the same here
        facts.problem = f"not a readable image ({exc.__class__.__name__})"
        return facts
    facts.decodes = True
    if not (check_alpha or thumbnail):
        return facts
    if (facts.width or 0) * (facts.height or 0) > MAX_DECODE_PIXELS:
        facts.problem = f"{facts.width}x{facts.height} is too large to decode"
        return facts
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if thumbnail and image.format == "JPEG":
                image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            image.load()
            # Decoded modes are authoritative (webp, palette images with a tRNS chunk).
            facts.has_alpha = _alpha_from_header(image)
            if thumbnail:
                facts.thumbnail = _thumbnail(image)
    except Exception as exc:  # truncated or corrupt pixel data
        facts.decodes = False
        facts.problem = f"pixel data does not decode ({exc.__class__.__name__})"
    return facts


def _thumbnail(image: Image.Image) -> bytes:
    small = image.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    if small.mode not in ("RGB", "RGBA", "L", "LA"):
        small = small.convert("RGBA" if _alpha_from_header(small) else "RGB")
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=False)
    return out.getvalue()
