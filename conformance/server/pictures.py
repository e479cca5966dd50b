"""The reference server's pictures: a flat colour and a shape derived from the prompt.

With ``realistic`` (``imgconf serve --realistic-images``, for benchmarks) a picture is instead
photographic-like: noise over colour gradients, with an alpha channel that varies across the
whole range on a transparent background. Such pictures do not compress, so a 1024-class image is
1-4 MB of base64 as real vendors send; they ignore the prompt and are cached per size, format and
background, so that after the first request the server's CPU does not compete with its client's.

The images must be real (they decode, at the asked size and format, with true transparency) and
visibly tied to the prompt, yet cheap: a full default run asks for hundreds of images up to
2048 pixels a side in well under a second of server CPU each. So the variety is deliberately
small (a palette of 16 colours times 4 shapes, picked by a hash of the prompt), drawing uses flat
fills that the encoders compress quickly, the encoders run at their fastest settings, and every
encoded image is kept in a byte-bounded LRU cache keyed by everything that changes its bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

# WebP's plugin imported here: saving a format Pillow has not registered yet imports every
# plugin it has (about 50 ms of the server's start).
from PIL import Image, ImageChops, ImageDraw, WebPImagePlugin  # noqa: F401

__all__ = [
    "FORMATS",
    "ImageCache",
    "ImageSpec",
    "Picture",
    "render",
    "spec_for_prompt",
    "truncate_jpeg",
    "truncate_png",
    "truncate_webp",
]

#: Output formats the server encodes, with the Pillow format name and the media type.
FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}

#: Sixteen well-separated background colours (a flat fill compresses to almost nothing).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 57, 70),
    (241, 143, 1),
    (255, 209, 102),
    (6, 214, 160),
    (17, 138, 178),
    (7, 59, 76),
    (131, 56, 236),
    (255, 0, 110),
    (58, 134, 255),
    (251, 86, 7),
    (42, 157, 143),
    (233, 196, 106),
    (38, 70, 83),
    (244, 162, 97),
    (142, 202, 230),
    (106, 153, 78),
)
SHAPES = ("circle", "square", "triangle", "diamond")


@dataclass(frozen=True)
class ImageSpec:
    """Everything that changes an image's bytes; the cache key.

    ``detail`` is 0 for a finished image; a partial image of a stream has ``detail`` k > 0 and is
    drawn at 1/2**(k+2) of the size and scaled back up, so lower k means a finer picture.
    """

    colour: int
    shape: int
    width: int
    height: int
    format: str = "png"
    transparent: bool = False
    #: ``output_compression`` (0-100) for jpeg and webp; None for the encoder's default.
    compression: int | None = None
    detail: int = 0
    #: A transparent picture whose alpha is then set to 255 everywhere (the ``opaque-alpha`` quirk).
    opaque_alpha: bool = False
    #: Photographic-like (noise over gradients) instead of a flat shape: see the module's doc.
    realistic: bool = False


def spec_for_prompt(prompt: str, width: int, height: int, *, index: int = 0, **kw) -> ImageSpec:
    """The picture for a prompt: colour and shape from a hash of it (item ``index`` of a batch
    gets the next shape, so that the n images of one answer differ)."""
    digest = hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=4).digest()
    return ImageSpec(
        colour=digest[0] % len(PALETTE),
        shape=(digest[1] + index) % len(SHAPES),
        width=width,
        height=height,
        **kw,
    )


class Picture:
    """One encoded image; the base64 text is computed once, on first use."""

    __slots__ = ("__dict__", "data", "format", "media_type")

    def __init__(self, data: bytes, fmt: str) -> None:
        self.data = data
        self.format = fmt
        self.media_type = FORMATS[fmt][1]

    @cached_property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


def _draw(spec: ImageSpec, width: int, height: int) -> Image.Image:
    """The picture itself. Opaque pictures are palette images: three colours need one byte a
    pixel, which makes PNG encoding about ten times faster than RGB for the same look."""
    base = PALETTE[spec.colour]
    # The shape takes the colour half the palette away, so it always shows.
    ink = PALETTE[(spec.colour + len(PALETTE) // 2) % len(PALETTE)]
    if spec.transparent:
        image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        fill, band_fill = (*ink, 255), (*base, 255)
    else:
        image = Image.new("P", (width, height), 0)
        image.putpalette([*base, *ink])
        fill = band_fill = 1
    draw = ImageDraw.Draw(image)
    half = max(min(width, height) * 3 // 8, 1)
    cx, cy = width // 2, height // 2
    shape = SHAPES[spec.shape]
    if shape == "circle":
        draw.ellipse((cx - half, cy - half, cx + half, cy + half), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=fill)
    else:
        draw.polygon(
            [(cx, cy - half), (cx + half, cy), (cx, cy + half), (cx - half, cy)], fill=fill
        )
    if spec.transparent:
        # A band in the base colour keeps the prompt's colour visible on a see-through canvas.
        band = max(height // 16, 1)
        draw.rectangle((0, height - band, width, height), fill=band_fill)
    return image


#: Standard deviation (8-bit levels) of the realistic pictures' noise: faint for lossless
#: encodings, strong for lossy ones, so that 1024-class images are 1-4 MB of base64 in each.
LOSSLESS_NOISE, LOSSY_NOISE = 1.25, 64.0


def _lossy(spec: ImageSpec) -> bool:
    return spec.format == "jpeg" or (
        spec.format == "webp" and spec.compression is not None and spec.compression < 100
    )


def _photo(spec: ImageSpec, width: int, height: int) -> Image.Image:
    """Noise over three gradients (one a channel), as incompressible as a photograph; on a
    transparent background the alpha is a noisy radial fade, so every level from clear to
    opaque occurs and an alpha check has real values to read."""
    sigma = LOSSY_NOISE if _lossy(spec) else LOSSLESS_NOISE
    size = (width, height)
    ramp = Image.linear_gradient("L")
    bases = [
        ramp.resize(size),
        ramp.rotate(90).resize(size),
        Image.radial_gradient("L").resize(size),
    ]
    if spec.transparent:
        bases.append(ImageChops.invert(Image.radial_gradient("L").resize(size)))
    # effect_noise is centred on 128: add it with an offset of -128 to keep each base's level.
    bands = [ImageChops.add(base, Image.effect_noise(size, sigma), 1.0, -128) for base in bases]
    return Image.merge("RGBA" if spec.transparent else "RGB", bands)


def render(spec: ImageSpec) -> Picture:
    """Draw and encode one image (no cache)."""
    draw = _photo if spec.realistic else _draw
    if spec.detail > 0:
        scale = 2 ** (spec.detail + 2)
        small = draw(spec, max(spec.width // scale, 1), max(spec.height // scale, 1))
        image = small.resize((spec.width, spec.height), Image.Resampling.NEAREST)
    else:
        image = draw(spec, spec.width, spec.height)
    if spec.opaque_alpha and image.mode == "RGBA":
        image.putalpha(255)
    pil_format = FORMATS[spec.format][0]
    out = io.BytesIO()
    if spec.format == "png":
        image.save(out, pil_format, compress_level=1)
        return Picture(out.getvalue(), spec.format)
    if image.mode == "P":
        image = image.convert("RGB")
    # output_compression (0-100, OpenAI's default 100 is its best output) acts as the encoder's
    # quality; for webp, 100 means lossless, which with method 0 is also the fastest encoding.
    if spec.format == "jpeg":
        if image.mode != "RGB":
            image = image.convert("RGB")
        quality = 90 if spec.compression is None else max(1, min(spec.compression, 95))
        image.save(out, pil_format, quality=quality)
    elif spec.compression is None or spec.compression >= 100:
        image.save(out, pil_format, lossless=True, quality=0, method=0)
    else:
        image.save(out, pil_format, quality=spec.compression, method=0)
    return Picture(out.getvalue(), spec.format)


# --- damaged pictures (quirks): what a proxy that gives up mid-body and "repairs" the end sends ---


def truncate_png(data: bytes) -> bytes:
    """Cut half-way through the image data (IDAT chunks), then append an IEND chunk."""
    start = data.index(b"IDAT") + 4
    end = data.rindex(b"IEND") - 8  # before the last IDAT's CRC and IEND's length field
    cut = data[: (start + end) // 2]
    return cut + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def truncate_jpeg(data: bytes) -> bytes:
    """Cut half-way through the scan data, then append an EOI marker."""
    start = data.index(b"\xff\xda")
    cut = data[: (start + len(data)) // 2].rstrip(b"\xff")
    return cut + b"\xff\xd9"


def truncate_webp(data: bytes) -> bytes:
    """Cut the file in half and patch the RIFF size to match (the chunk sizes still tell)."""
    cut = bytearray(data[: len(data) // 2])
    cut[4:8] = struct.pack("<I", len(cut) - 8)
    return bytes(cut)


class ImageCache:
    """A thread-safe LRU of encoded pictures, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int = 128 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[ImageSpec, Picture] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def peek(self, spec: ImageSpec) -> Picture | None:
        """The cached picture, or None (never draws)."""
        with self._lock:
            picture = self._items.get(spec)
            if picture is not None:
                self._items.move_to_end(spec)
            return picture

    def get(self, spec: ImageSpec) -> Picture:
        """The cached picture, drawn and kept first if it is not there."""
        picture = self.peek(spec)
        if picture is not None:
            return picture
        # Drawn outside the lock: two threads may draw the same picture once each, which is
        # cheaper than making every other request wait behind one encoder.
        picture = render(spec)
        with self._lock:
            if spec not in self._items:
                self._items[spec] = picture
                self._bytes += len(picture.data)
                while self._bytes > self.max_bytes and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= len(old.data)
        return picture
