"""What a returned image is, and whether all of it is there, read as cheaply as the question allows.

Only PNG, JPEG and WebP are read. The format comes from the magic bytes (not from what the server
says) and Pillow is handed that format's decoder alone, so no other Pillow decoder is reachable
from server bytes.

Every image is checked whole, whatever the run order or the report's thumbnail slots:

1. **Structure**, in Python and without decoding: PNG chunks (length and CRC of each) up to
   IEND; JPEG marker segments through EOI, with each scan's entropy data; the WebP RIFF size
   against the file and every chunk's size against the RIFF. The walk also reads the declared
   size and refuses, before anything is decoded, what would cost too much (the bounds below).
2. **Completeness where structure cannot tell.**
   PNG: the IDAT stream must inflate to exactly the size IHDR declares and end there, so a file
   cut on a chunk boundary with IEND appended is caught: in one libdeflate call into a buffer of
   that size where it is small enough, else in bounded steps of zlib-ng's, which also say why a
   stream libdeflate refused is wrong. (Nothing is kept unless the pixels are wanted; step 3.)
   JPEG: libjpeg zero-fills a scan cut short by an appended EOI with no more than a warning,
   which Pillow drops. A Huffman-coded JPEG of LIBJPEG_CHECK_BYTES and more is decoded once by
   libjpeg-turbo at an eighth of its size (simplejpeg, every coefficient still read) with that
   warning made an error: one that decodes without a warning is whole. Otherwise (a warning,
   arithmetic coding, anything it cannot read, a small file) the image is decoded twice by
   Pillow, the second time with filler bytes before the EOI: a complete scan never reads them,
   a cut one decodes them as its missing blocks and the pixels differ, and that is the verdict.
   WebP: libwebp refuses a bitstream that ends early, so one decode suffices.
3. **Pixels beyond that only to answer a question**: the alpha band's extrema when
   ``background: transparent`` was asked, a thumbnail for the report. A decode made for the
   check (JPEG, WebP) or for alpha also serves the thumbnail; a PNG is decoded for a thumbnail
   only once the gallery has picked it (:class:`GalleryPicks`, :func:`thumbnail_of`). A PNG's
   pixels are decoded from step 2's inflate, not from the file: Pillow's decoder cannot replace
   step 2 (it stops at the last row, so it accepts a stream that lacks its end, the Adler-32,
   or holds fewer rows than IHDR declares), and two inflates would cost twice.

The facts of a file that compresses well are remembered by its digest, so a repeat of it is not
inflated or decoded again (:mod:`conformance.engine.seen_images`).

A hostile image is a problem of that image (``decodes`` False, with a ``problem``), never a
crash or a hang.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import io
import re
import struct
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import deflate
from PIL import Image, ImageChops, JpegImagePlugin, PngImagePlugin, WebPImagePlugin  # noqa: F401
from zlib_ng import zlib_ng as zlib  # zlib's API, inflating about 1.8 times faster

from ..settings import (
    INFLATE_STEP,
    LIBJPEG_CHECK_BYTES,
    MAX_CHUNKS,
    MAX_JPEG_SCANS,
    MAX_PIXELS,
    PILLOW_CALL_BYTES,
    PIXEL_CALL_BYTES,
    PIXEL_MEMORY,
    PIXEL_PEAK,
    REWRAP_LIMIT,
    THUMBNAIL_SIDE,
    WHOLE_INFLATE_LIMIT,
)
from .pixel_memory import PIXELS
from .seen_images import SeenImages, seen_key

__all__ = [
    "DECODERS",
    "MAX_CHUNKS",
    "MAX_JPEG_SCANS",
    "MAX_PIXELS",
    "GalleryLater",
    "GalleryOffer",
    "GalleryPicks",
    "ImageFacts",
    "PixelsWanted",
    "decode_seconds",
    "forget_seen_images",
    "inspect_image",
    "no_pixel_work",
    "read_in_few_calls",
    "sniff_format",
    "thumbnail_of",
]

# --- bounds: every limit on the work one image may cost, in one place -------------------------

#: The Pillow decoder for each format the contract allows; Pillow is never offered another.
#: Their plugins are imported above: a format Pillow has not registered yet (WebP is not among
#: the few it loads first) makes ``Image.open`` import every plugin it has, about 50 ms.
DECODERS: dict[str, str] = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


# ---------------------------------------------------------------------------------------------


class _DecodeClock:
    """CPU seconds this process spent on pixel work (decodes, the PNG inflate, thumbnails), by
    every judging thread (``time.thread_time``): what a benchmark reports apart from the rest
    of judging, since it is the part a rule's question sets, not the tool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds = 0.0

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        started = time.thread_time()
        try:
            yield
        finally:
            spent = time.thread_time() - started
            with self._lock:
                self._seconds += spent

    @property
    def seconds(self) -> float:
        return self._seconds


_CLOCK = _DecodeClock()


def decode_seconds() -> float:
    """CPU seconds this process has spent decoding image data so far (see :class:`_DecodeClock`)."""
    return _CLOCK.seconds


_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La", "I;16A"})


@dataclass
class ImageFacts:
    """The facts the checks compare with the request."""

    format: str | None
    width: int | None = None
    height: int | None = None
    #: Whether the image has an alpha channel (or a transparent colour).
    has_alpha: bool | None = None
    #: The lowest alpha of any pixel (255: every pixel opaque); read only when alpha is asked
    #: for, None when the image has no alpha channel.
    min_alpha: int | None = None
    decodes: bool = False
    #: Why it does not decode (or what decoding refused), for the report.
    problem: str | None = None
    thumbnail: bytes | None = None
    #: The image as decoded for the check or for alpha, kept (``keep_pixels``) so that a
    #: thumbnail asked for afterwards needs no second decode; None when nothing was decoded.
    pixels: Image.Image | None = field(default=None, repr=False, compare=False)


class PixelsWanted(Exception):
    """An image wants pixel work (an inflate, a decode) where :func:`no_pixel_work` forbade it."""


_PIXEL_WORK: contextvars.ContextVar[bool] = contextvars.ContextVar("pixel_work", default=True)


@contextlib.contextmanager
def no_pixel_work() -> Iterator[None]:
    """Within the block, an image whose facts are not remembered raises :class:`PixelsWanted`
    instead of being inflated or decoded (its structure is still walked: bounded, and cheap).

    The runner judges a small answer on the event loop this way (most of a mock's or a test
    server's answers repeat images already judged), and off it, in a thread, when pixels are
    wanted: a judgement costs a thread's hand-over only where the pixel work is worth one.
    """
    token = _PIXEL_WORK.set(False)
    try:
        yield
    finally:
        _PIXEL_WORK.reset(token)


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


def inspect_image(
    data: bytes,
    *,
    check_alpha: bool = False,
    thumbnail: bool = False,
    keep_pixels: bool = False,
) -> ImageFacts:
    """Read one image's format and size, check that all of it is there, and (when asked) its
    lowest alpha and a thumbnail.

    ``decodes`` means the file is a PNG, JPEG or WebP within the bounds, structurally sound and
    complete (see the module's docstring for how each format is checked). ``keep_pixels`` keeps
    whatever decode the check made in ``facts.pixels``, for :func:`thumbnail_of` later.
    """
    facts = ImageFacts(format=sniff_format(data))
    if not data:
        facts.problem = "empty image"
        return facts
    read_layout = _LAYOUT_READERS.get(facts.format or "")
    if facts.format is None or read_layout is None:
        facts.problem = (
            f"a {facts.format.upper()} image; only PNG, JPEG and WebP are read"
            if facts.format
            else "not a PNG, JPEG or WebP image"
        )
        return facts
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layout = read_layout(data)
    except _Refused as refused:
        facts.problem = str(refused)
        return facts
    except Exception as exc:  # a walk of hostile bytes may fail in many ways; all mean one thing
        facts.problem = f"pixel data does not decode ({exc.__class__.__name__}: {exc})"
        return facts
    facts.width, facts.height, facts.has_alpha = layout.width, layout.height, layout.alpha
    # A thumbnail is the image's own product, not a fact shared by its repeats.
    key = None if thumbnail else seen_key(data, layout.width * layout.height, check_alpha)
    if key is not None and (known := _SEEN.get(key)) is not None:
        return dataclasses.replace(known)
    if not _PIXEL_WORK.get():
        raise PixelsWanted(
            f"a {facts.format} image of {facts.width}x{facts.height} not seen before"
        )
    settled = _check_pixels_of(facts, data, layout, check_alpha, thumbnail, keep_pixels)
    if key is not None and settled:
        _SEEN.put(key, dataclasses.replace(facts, pixels=None))
    return facts


def _check_pixels_of(
    facts: ImageFacts,
    data: bytes,
    layout: _Layout,
    check_alpha: bool,
    thumbnail: bool,
    keep_pixels: bool,
) -> bool:
    """Steps 2 and 3 of the module's docstring, on an image whose structure was walked: fills in
    ``decodes`` or ``problem``, and what was asked of the pixels. False when the verdict is not
    the bytes' own (memory ran out), so that it is not remembered for them."""
    fmt = facts.format or ""
    want_pixels = check_alpha or thumbnail
    decodes = want_pixels or fmt != "png"  # a PNG's check only inflates
    pixels = layout.width * layout.height * PIXEL_PEAK if decodes else _inflate_memory(layout)
    with PIXELS.hold(pixels):
        try:
            with warnings.catch_warnings(), _CLOCK.timing():
                warnings.simplefilter("ignore")
                image = _CHECK_WHOLE[fmt](data, layout, want_pixels, keep_pixels)
                if want_pixels:
                    image = image or _decode(data, fmt)
                    facts.has_alpha = _alpha_from_header(image)
                    if check_alpha:
                        facts.min_alpha = _min_alpha(image)
        except _Refused as refused:
            facts.problem = str(refused)
            return True
        except Exception as exc:  # Pillow raises a variety for hostile data; all mean the same
            facts.problem = f"pixel data does not decode ({exc.__class__.__name__}: {exc})"
            return not isinstance(exc, MemoryError)
        facts.decodes = True
        if thumbnail:
            with _CLOCK.timing():
                facts.thumbnail = _thumbnail(image)
        elif keep_pixels:
            facts.pixels = image
    return True


_SEEN: SeenImages[ImageFacts] = SeenImages()


def forget_seen_images() -> None:
    """Forget every image remembered so far, as a new process starts: for a measurement that
    runs a plan more than once in one process."""
    global _SEEN
    _SEEN = SeenImages()


def thumbnail_of(data: bytes, facts: ImageFacts) -> bytes | None:
    """A thumbnail of an image ``inspect_image`` found whole: from the decode it kept, else from
    one decode now (JPEG at a reduced scale through ``draft``), else, for a repeat of an image
    that compresses well, the one made before. None when it does not decode."""
    if not facts.decodes or facts.format not in DECODERS:
        return None
    image, facts.pixels = facts.pixels, None
    key = seen_key(data, (facts.width or 0) * (facts.height or 0), "thumbnail")
    if key is not None and (known := _SEEN.get(key)) is not None:
        return known.thumbnail
    if not _PIXEL_WORK.get():
        raise PixelsWanted(f"a thumbnail of a {facts.format} image not made before")
    pixels = (facts.width or 0) * (facts.height or 0) * PIXEL_PEAK if image is None else 0
    with PIXELS.hold(pixels), _CLOCK.timing():
        if image is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    image = Image.open(io.BytesIO(data), formats=(DECODERS[facts.format],))
                    read_in_few_calls(image)
            except Exception:  # checked whole already; a surprise costs the thumbnail only
                return None
        thumbnail = _thumbnail(image)
    if key is not None and thumbnail is not None:
        _SEEN.put(key, ImageFacts(format=facts.format, decodes=True, thumbnail=thumbnail))
    return thumbnail


class GalleryPicks:
    """Which images get a thumbnail: the ones the report's gallery shows, decided as each image
    is judged so that no other is made. Every broken image (one that decodes but does not match
    the request) up to ``broken``, and one image that matches per model and format.

    Shared by the judging threads, hence the lock.
    """

    def __init__(self, broken: int) -> None:
        self.broken_left = broken
        self._kinds: set[tuple[str | None, str | None]] = set()
        self._lock = threading.Lock()

    def take(self, model: str | None, fmt: str | None, ok: bool) -> bool:
        """Whether this image gets a thumbnail (its slot taken if so)."""
        with self._lock:
            if not ok:
                if self.broken_left <= 0:
                    return False
                self.broken_left -= 1
                return True
            if (model, fmt) in self._kinds:
                return False
            self._kinds.add((model, fmt))
            return True

    def offer(self, offer: GalleryOffer) -> None:
        """Give the offered image its thumbnail if the gallery picks it."""
        if self.take(offer.model, offer.facts.format, offer.image.ok):
            offer.image.thumbnail = thumbnail_of(offer.data, offer.facts)


class _Shown(Protocol):
    """What the gallery reads of a judged image, and writes: its thumbnail."""

    ok: bool
    thumbnail: bytes | None


@dataclass
class GalleryOffer:
    """A judged image that decodes, offered to the gallery."""

    model: str | None
    image: _Shown
    data: bytes = field(repr=False)
    facts: ImageFacts


class GalleryLater(GalleryPicks):
    """A gallery that decides nothing yet: it keeps each image offered while an answer is judged
    on the event loop, for the runner to offer to the run's gallery once the judgement is done
    (a judgement given up for pixel work has then taken no slot)."""

    def __init__(self) -> None:
        super().__init__(broken=0)
        self.offers: list[GalleryOffer] = []

    def offer(self, offer: GalleryOffer) -> None:
        self.offers.append(offer)


class _Refused(Exception):
    """The image is not whole, or would cost more than the bounds allow; the message says why."""


@dataclass
class _Layout:
    """What the structural walk learnt: the declared size and whether there is alpha."""

    width: int
    height: int
    alpha: bool


def _check_pixels(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise _Refused(f"declares a size of {width}x{height}")
    if width * height > MAX_PIXELS:
        raise _Refused(
            f"declares {width}x{height} pixels, more than the {MAX_PIXELS} imgconf decodes"
        )


def _count_chunk(count: int, what: str) -> int:
    count += 1
    if count > MAX_CHUNKS:
        raise _Refused(f"has more than {MAX_CHUNKS} {what}; refused unread")
    return count


def _decode(data: bytes, fmt: str) -> Image.Image:
    """Every pixel, by the one decoder of ``fmt``, in as few calls as :func:`read_in_few_calls`
    allows."""
    image = Image.open(io.BytesIO(data), formats=(DECODERS[fmt],))
    read_in_few_calls(image)
    image.load()
    return image


def read_in_few_calls(image: Image.Image) -> None:
    """Have Pillow hand ``image``'s decoder few, large reads: each call into the decoder lets go
    of the GIL and waits to take it back (up to the switch interval, 5 ms, beside a busy event
    loop). A PNG or JPEG is read PILLOW_CALL_BYTES at a time, each piece a copy (a PNG a chunk
    at a time whatever this is). A WebP's frame, decoded into memory by libwebp and read back
    from there, is read whole: all of a buffer from its start is the buffer itself, no copy."""
    image.decodermaxblock = sys.maxsize if image.format == "WEBP" else PILLOW_CALL_BYTES


# --- PNG --------------------------------------------------------------------------------------

#: Allowed bit depths and channels per PNG colour type.
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 passes: first column, first row, column step, row step.
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
_PNG_FILTERS = bytes(range(5))


@dataclass
class _PngLayout(_Layout):
    #: (start, end) of each IDAT chunk's data, in order.
    idat: list[tuple[int, int]] = field(default_factory=list)
    #: Bytes the IDAT stream must inflate to (rows with their filter bytes).
    raw_size: int = 0
    #: Bytes of one row with its filter byte; 0 for an interlaced image (rows vary by pass).
    row_bytes: int = 0
    needs_palette: bool = False


def _png_layout(data: bytes) -> _PngLayout:
    """Walk the chunks up to IEND: each one's length within the file and its CRC right."""
    view = memoryview(data)
    pos, count, previous = 8, 0, b""
    layout: _PngLayout | None = None
    has_palette = False
    while True:
        if pos + 12 > len(data):
            raise _Refused(f"the file ends at byte {len(data)} before IEND")
        length, kind = struct.unpack_from(">I4s", data, pos)
        count = _count_chunk(count, "chunks")
        name = kind.decode("latin-1")
        end = pos + 8 + length
        if not kind.isalpha() or length > 0x7FFFFFFF:
            raise _Refused(f"no valid chunk at byte {pos}")
        if end + 4 > len(data):
            raise _Refused(f"chunk {name} at byte {pos} runs past the end of the file")
        if zlib.crc32(view[pos + 4 : end]) != struct.unpack_from(">I", data, end)[0]:
            raise _Refused(f"chunk {name} at byte {pos} fails its CRC")
        if layout is None:
            if kind != b"IHDR":
                raise _Refused("the first chunk is not IHDR")
            layout = _png_header(data[pos + 8 : end])
        elif kind == b"IDAT":
            if layout.idat and previous != b"IDAT":
                raise _Refused("its IDAT chunks are not consecutive")
            layout.idat.append((pos + 8, end))
        elif kind == b"PLTE":
            has_palette = True
        elif kind == b"tRNS":
            layout.alpha = True
        elif kind == b"IEND":
            break
        previous, pos = kind, end + 4
    if not layout.idat:
        raise _Refused("it has no IDAT chunk")
    if layout.needs_palette and not has_palette:
        raise _Refused("a palette image without a PLTE chunk")
    return layout


def _png_header(ihdr: bytes) -> _PngLayout:
    if len(ihdr) != 13:
        raise _Refused("its IHDR chunk is not 13 bytes")
    width, height, depth, colour, compression, filters, interlace = struct.unpack(">IIBBBBB", ihdr)
    _check_pixels(width, height)
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filters or interlace > 1:
        raise _Refused(
            f"its IHDR is invalid (depth {depth}, colour type {colour}, "
            f"compression {compression}, filter {filters}, interlace {interlace})"
        )
    bits = depth * _PNG_CHANNELS[colour]

    def rows(w: int, h: int) -> int:
        return h * (1 + (w * bits + 7) // 8) if w and h else 0

    if interlace:
        raw = sum(
            rows((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy)
            for x0, y0, dx, dy in _ADAM7
        )
        row_bytes = 0
    else:
        raw, row_bytes = rows(width, height), 1 + (width * bits + 7) // 8
    return _PngLayout(
        width,
        height,
        colour in (4, 6),
        raw_size=raw,
        row_bytes=row_bytes,
        needs_palette=colour == 3,
    )


def _check_png(
    data: bytes, layout: _PngLayout, want_pixels: bool, keep: bool = False
) -> Image.Image | None:
    """The IDAT stream inflates to exactly the declared rows, each with a valid filter byte
    (checked for non-interlaced images, whose rows all have one length).

    When the pixels are wanted (and the raw data within REWRAP_LIMIT), the inflated rows are
    also stored into a zlib stream of uncompressed blocks and the image decoded from that: the
    same rows, with no second inflate. (A thumbnail alone, ``keep``, decodes nothing here: the
    gallery may not pick the image.)
    """
    rows = _inflated_at_once(data, layout)
    if rows is None:
        return _check_png_in_steps(data, layout, want_pixels)
    if _unknown_filter(rows, 0, layout.row_bytes):
        raise _Refused(_UNKNOWN_FILTER)
    if not want_pixels or layout.raw_size > REWRAP_LIMIT:
        return None  # beyond the re-wrap's bound, Pillow inflates the file again
    # libdeflate at level 0 writes stored blocks in one call, so one hand-over of the GIL: zlib's
    # compressobj let it go and waited to take it back for each piece of output it grew (a
    # 1536x1024 RGBA picture's rows: 37 ms beside a busy event loop, now 7).
    blocks = [deflate.zlib_compress(rows, 0)]
    del rows  # in ``blocks`` now: no third copy while re-wrapping
    return _decode_stored(data, layout, blocks)


_UNKNOWN_FILTER = "a row of its image data has an unknown filter type"


def _inflate_memory(layout: _Layout) -> int:
    """Bytes a check that decodes nothing holds: a PNG inflated at once holds its rows and its
    joined stream; one inflated in steps, or a header, next to nothing."""
    if isinstance(layout, _PngLayout) and layout.raw_size <= WHOLE_INFLATE_LIMIT:
        return 2 * layout.raw_size
    return 0


def _inflated_at_once(data: bytes, layout: _PngLayout) -> bytearray | None:
    """The image data inflated by one libdeflate call into a buffer of the declared size, when
    that is within WHOLE_INFLATE_LIMIT. None when it is larger, and when libdeflate refuses the
    stream (corrupt, cut, longer than declared, a bad Adler-32) or it inflates to fewer bytes:
    the inflate in steps then gives the verdict, and says why."""
    if not 0 < layout.raw_size <= WHOLE_INFLATE_LIMIT:
        return None
    view = memoryview(data)
    spans = layout.idat
    stream = view[slice(*spans[0])] if len(spans) == 1 else b"".join(view[a:b] for a, b in spans)
    try:
        rows = deflate.zlib_decompress(stream, layout.raw_size)
    except deflate.DeflateError:
        return None
    return rows if len(rows) == layout.raw_size else None


def _check_png_in_steps(data: bytes, layout: _PngLayout, want_pixels: bool) -> Image.Image | None:
    """:func:`_check_png` by zlib-ng, INFLATE_STEP bytes at a time: the check's memory whatever
    the image's size, and the reason a stream is refused."""
    inflater = zlib.decompressobj()
    stored = zlib.compressobj(0) if want_pixels and layout.raw_size <= REWRAP_LIMIT else None
    blocks: list[bytes] = []
    produced = 0
    try:
        for piece in _inflate(inflater, memoryview(data), layout.idat):
            if _unknown_filter(piece, produced, layout.row_bytes):
                raise _Refused(_UNKNOWN_FILTER)
            produced += len(piece)
            if produced > layout.raw_size:
                raise _Refused(
                    f"its image data inflates beyond the {layout.raw_size} bytes "
                    "its header declares"
                )
            if stored is not None:
                blocks.append(stored.compress(piece))
    except zlib.error as exc:
        raise _Refused(f"its image data does not inflate ({exc})") from None
    if produced < layout.raw_size:
        raise _Refused(
            f"its image data ends early ({produced} of {layout.raw_size} bytes): the file was cut"
        )
    if not inflater.eof:
        raise _Refused("its compressed image data does not end (the file was cut)")
    if stored is None:
        return None
    blocks.append(stored.flush())
    return _decode_stored(data, layout, blocks)


def _decode_stored(data: bytes, layout: _PngLayout, blocks: list[bytes]) -> Image.Image:
    """The PNG decoded from its inflated rows, stored in ``blocks`` (uncompressed deflate
    blocks, emptied here once re-wrapped: no third copy of the rows while decoding)."""
    rewrapped = _png_with_idat(data, layout, blocks)
    blocks.clear()
    return _decode(rewrapped, "png")


def _png_with_idat(data: bytes, layout: _PngLayout, stream: list[bytes]) -> bytes:
    """The PNG's chunks before its image data, then ``stream`` as one IDAT chunk, then IEND.
    (Chunks after the image data tell nothing about the pixels.)"""
    size = sum(len(block) for block in stream)
    crc = zlib.crc32(b"IDAT")
    for block in stream:
        crc = zlib.crc32(block, crc)
    head = data[: layout.idat[0][0] - 8]
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    idat = struct.pack(">I", size) + b"IDAT"
    return b"".join([head, idat, *stream, struct.pack(">I", crc), iend])


def _inflate(
    inflater: zlib._Decompress, view: memoryview, spans: list[tuple[int, int]]
) -> Iterator[bytes]:
    """The inflated stream of the chunk data at ``spans``, at most INFLATE_STEP bytes a piece."""
    for batch in _batches(view, spans):
        pending: bytes | memoryview = batch
        while pending and not inflater.eof:
            yield inflater.decompress(pending, INFLATE_STEP)
            pending = inflater.unconsumed_tail
    while not inflater.eof:  # what zlib still holds when a full step used up the input
        piece = inflater.decompress(b"", INFLATE_STEP)
        if not piece:
            return
        yield piece


def _batches(view: memoryview, spans: list[tuple[int, int]]) -> Iterator[bytes | memoryview]:
    """The data at ``spans``, consecutive chunks joined up to PIXEL_CALL_BYTES: zlib is called
    once a batch, not once per chunk (an encoder may write a chunk every 8 KiB)."""
    group: list[memoryview] = []
    held = 0
    for start, end in spans:
        group.append(view[start:end])
        held += end - start
        if held >= PIXEL_CALL_BYTES:
            yield group[0] if len(group) == 1 else b"".join(group)
            group, held = [], 0
    if group:
        yield group[0] if len(group) == 1 else b"".join(group)


def _unknown_filter(piece: bytes, offset: int, row_bytes: int) -> bool:
    """Whether a filter byte (the first of each row) in ``piece``, which starts ``offset``
    bytes into the inflated stream, is not one of the five PNG filters."""
    if not row_bytes:
        return False
    return bool(piece[(-offset) % row_bytes :: row_bytes].translate(None, _PNG_FILTERS))


# --- JPEG -------------------------------------------------------------------------------------

_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_HUFFMAN_SOF = frozenset({0xC0, 0xC1, 0xC2})
#: The end of a scan's entropy data: a marker other than a stuffed 0xFF00, a restart or fill.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
#: Entropy-coded filler put before the EOI for the second decode: no 0xFF (so never a marker),
#: irregular, and fixed so that a verdict is reproducible.
_JPEG_FILLER = bytes((i * 167 + 13) % 255 for i in range(512))


@dataclass
class _JpegLayout(_Layout):
    #: Offset of the EOI marker (of its first 0xFF, fill bytes included).
    eoi: int = 0
    #: Whether its frame is Huffman-coded, baseline or progressive (SOF0-SOF2): libjpeg warns
    #: when such a scan ends early.
    huffman: bool = False


@dataclass
class _JpegScans:
    """Which components and coefficients the scans so far have started and finished."""

    components: tuple[int, ...]
    progressive: bool
    count: int = 0
    seen: set[int] = field(default_factory=set)
    #: Progressive JPEGs: per component, a bit per coefficient first sent (Ah=0) and completed
    #: (Al=0, its last refinement).
    started: dict[int, int] = field(default_factory=dict)
    finished: dict[int, int] = field(default_factory=dict)

    def add(self, header: bytes) -> None:
        self.count += 1
        if self.count > MAX_JPEG_SCANS:
            raise _Refused(f"has more than {MAX_JPEG_SCANS} scans; refused undecoded")
        count = header[0] if header else 0
        if not count or len(header) != 4 + 2 * count:
            raise _Refused("a scan header is malformed")
        ids = header[1 : 1 + 2 * count : 2]
        first, last, approximation = header[1 + 2 * count : 4 + 2 * count]
        if any(c not in self.components for c in ids) or first > last or last > 63:
            raise _Refused("a scan header names components or coefficients the frame lacks")
        self.seen.update(ids)
        coefficients = (1 << (last + 1)) - (1 << first)
        for c in ids:
            if approximation >> 4 == 0:
                self.started[c] = self.started.get(c, 0) | coefficients
            if approximation & 15 == 0:
                self.finished[c] = self.finished.get(c, 0) | coefficients

    def check_complete(self) -> None:
        """A cut at a scan boundary leaves a component unscanned or a refinement unfinished."""
        if not self.count:
            raise _Refused("it has no scan")
        if set(self.components) - self.seen:
            raise _Refused("some components have no scan: the file was cut")
        if not self.progressive:
            return
        for c in self.components:
            done = self.finished.get(c, 0)
            if not done & 1 or self.started.get(c, 0) & ~done:
                raise _Refused("its progressive scans stop before the last refinement")


def _jpeg_layout(data: bytes) -> _JpegLayout:
    """Walk the marker segments through EOI, each scan's entropy data up to the next marker."""
    pos, count = 2, 0
    layout: _JpegLayout | None = None
    scans: _JpegScans | None = None
    while True:
        start = pos
        if pos >= len(data) or data[pos] != 0xFF:
            raise _Refused(
                f"the file ends at byte {len(data)} before EOI"
                if pos >= len(data)
                else f"no marker at byte {pos}"
            )
        while pos < len(data) and data[pos] == 0xFF:
            pos += 1
        if pos + 1 > len(data):
            raise _Refused(f"the file ends at byte {len(data)} before EOI")
        code = data[pos]
        pos += 1
        count = _count_chunk(count, "marker segments")
        if code == 0xD9:
            break
        if code == 0x01 or 0xD0 <= code <= 0xD7:
            continue  # markers without a segment
        if code in (0x00, 0xD8) or pos + 2 > len(data):
            raise _Refused(f"no valid marker at byte {start}")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > len(data):
            raise _Refused(f"marker segment {code:02X} at byte {start} runs past the end")
        body = data[pos + 2 : pos + length]
        pos += length
        if code in _SOF_MARKERS:
            if layout is not None:
                raise _Refused("it has two frame headers")
            layout, components = _jpeg_frame(body)
            layout.huffman = code in _HUFFMAN_SOF
            scans = _JpegScans(components, code in _PROGRESSIVE_SOF)
        elif code == 0xDA:
            if scans is None:
                raise _Refused("a scan comes before the frame header")
            scans.add(body)
            end = _SCAN_END.search(data, pos)
            if end is None:
                raise _Refused(f"the file ends at byte {len(data)} inside a scan, before EOI")
            pos = end.start()
            while data[pos - 1] == 0xFF:  # fill bytes before the marker, not entropy data
                pos -= 1
    if layout is None or scans is None:
        raise _Refused("it has no frame header")
    scans.check_complete()
    layout.eoi = start
    return layout


def _jpeg_frame(body: bytes) -> tuple[_JpegLayout, tuple[int, ...]]:
    if len(body) < 6 or len(body) != 6 + 3 * body[5] or not body[5]:
        raise _Refused("its frame header is malformed")
    height, width = struct.unpack_from(">HH", body, 1)
    if height == 0:
        raise _Refused("its height is left to a DNL marker, which is not read")
    _check_pixels(width, height)
    return _JpegLayout(width, height, False), tuple(body[6::3])


def _check_jpeg(
    data: bytes, layout: _JpegLayout, want_pixels: bool, keep: bool = False
) -> Image.Image | None:
    """Whole when libjpeg-turbo decodes it without a warning (:func:`_decodes_cleanly`); else
    decoded with and without filler before the EOI: the pixels differ when a scan was cut
    (libjpeg decodes the filler as the missing blocks instead of zeros).

    The two decodes are compared by their difference's bounding box: two calls into Pillow,
    and three images held at the peak (PIXEL_PEAK). A CRC of each in strips takes thirty calls
    for a 1536x1024 picture, each letting go of the GIL and waiting to take it back: beside a
    busy event loop that made its check 108 ms instead of 20. A picture whose three images would
    not fit what the judging threads share (PIXEL_MEMORY: about 3.5 megapixels) is still
    digested that way, one decode held at a time. The second decode, the same pixels when the
    check passes, is what a caller that wants them gets.
    """
    if (
        not want_pixels
        and layout.huffman
        and len(data) >= LIBJPEG_CHECK_BYTES
        and _decodes_cleanly(data)
    ):
        return None
    first = _decode(data, "jpeg")
    with_filler = data[: layout.eoi] + _JPEG_FILLER + data[layout.eoi :]
    if layout.width * layout.height * PIXEL_PEAK <= PIXEL_MEMORY:
        filled = _decode(with_filler, "jpeg")
        cut = ImageChops.difference(first, filled).getbbox(alpha_only=False) is not None
    else:
        digest = _pixel_digest(first)
        del first
        filled = _decode(with_filler, "jpeg")
        cut = _pixel_digest(filled) != digest
    if cut:
        raise _Refused("its entropy-coded data ends early (cut, then EOI appended)")
    return filled if want_pixels or keep else None


def _decodes_cleanly(data: bytes) -> bool:
    """Whether libjpeg-turbo reads every scan to its end without a warning (a scan that ends
    early is one), decoding at an eighth of the size: every coefficient is still read, the
    inverse transforms cost an eighth. About a third of one full decode by Pillow, with the GIL
    let go throughout. False also for anything it cannot read."""
    import simplejpeg  # and numpy with it: paid by the first JPEG judged, not by every start

    try:
        simplejpeg.decode_jpeg(data, min_width=1, min_height=1, strict=True)
    except Exception:  # a warning made an error, or anything it cannot read: Pillow decides
        return False
    return True


def _pixel_digest(image: Image.Image) -> int:
    """A CRC of every pixel, read a strip of about PIXEL_CALL_BYTES at a time (no full copy of
    the image)."""
    width, height = image.size
    rows = max(1, PIXEL_CALL_BYTES // max(1, width * len(image.getbands())))
    crc = 0
    for top in range(0, height, rows):
        crc = zlib.crc32(image.crop((0, top, width, min(top + rows, height))).tobytes(), crc)
    return crc


# --- WebP -------------------------------------------------------------------------------------


def _webp_layout(data: bytes) -> _Layout:
    """The RIFF size against the file, every chunk's size against the RIFF, the bitstream's
    header against its chunk."""
    if len(data) < 20:
        raise _Refused(f"only {len(data)} bytes, too short for a WebP image")
    end = struct.unpack_from("<I", data, 4)[0] + 8
    if end > len(data):
        raise _Refused(f"its RIFF header declares {end} bytes, the file has {len(data)}")
    pos, count = 12, 0
    canvas: _Layout | None = None
    stream: _Layout | None = None
    animated = has_alph = False
    while pos < end:
        if pos + 8 > end:
            raise _Refused(f"a chunk header at byte {pos} runs past the RIFF's end")
        kind, size = struct.unpack_from("<4sI", data, pos)
        count = _count_chunk(count, "chunks")
        body = pos + 8
        if body + size > end:
            raise _Refused(
                f"chunk {kind.decode('latin-1')!r} at byte {pos} declares {size} bytes, "
                f"{end - body} are left"
            )
        if kind == b"VP8X" and count == 1:
            canvas, animated = _webp_canvas(data[body : body + size])
        elif kind in (b"VP8 ", b"VP8L") and stream is None:
            stream = (_vp8_header if kind == b"VP8 " else _vp8l_header)(data[body : body + size])
        elif kind == b"ALPH":
            has_alph = True
        elif count == 1:
            raise _Refused("its first chunk is not VP8, VP8L or VP8X")
        pos = body + size + (size & 1)
    if animated and canvas is not None:
        return canvas
    if stream is None:
        raise _Refused("it has no image data (no VP8 or VP8L chunk)")
    if canvas is not None:
        if (canvas.width, canvas.height) != (stream.width, stream.height):
            raise _Refused("its canvas and its bitstream declare different sizes")
        stream.alpha = canvas.alpha or has_alph or stream.alpha
    return stream


def _webp_canvas(body: bytes) -> tuple[_Layout, bool]:
    if len(body) < 10:
        raise _Refused("its VP8X chunk is too short")
    width = 1 + int.from_bytes(body[4:7], "little")
    height = 1 + int.from_bytes(body[7:10], "little")
    _check_pixels(width, height)
    return _Layout(width, height, bool(body[0] & 0x10)), bool(body[0] & 0x02)


def _vp8_header(body: bytes) -> _Layout:
    if len(body) < 10 or body[3:6] != b"\x9d\x01\x2a":
        raise _Refused("its VP8 chunk does not start a key frame")
    tag = int.from_bytes(body[0:3], "little")
    if tag & 1:
        raise _Refused("its VP8 chunk is not a key frame")
    if 10 + (tag >> 5) > len(body):
        raise _Refused("its VP8 first partition runs past its chunk")
    width, height = (v & 0x3FFF for v in struct.unpack_from("<HH", body, 6))
    _check_pixels(width, height)
    return _Layout(width, height, False)


def _vp8l_header(body: bytes) -> _Layout:
    if len(body) < 5 or body[0] != 0x2F:
        raise _Refused("its VP8L chunk has no VP8L signature")
    bits = int.from_bytes(body[1:5], "little")
    if bits >> 29:
        raise _Refused("its VP8L version is not 0")
    width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    _check_pixels(width, height)
    return _Layout(width, height, bool(bits >> 28 & 1))


def _check_webp(
    data: bytes, layout: _Layout, want_pixels: bool, keep: bool = False
) -> Image.Image | None:
    """libwebp refuses a bitstream that ends before its last macroblock or pixel."""
    image = _decode(data, "webp")
    return image if want_pixels or keep else None


_LAYOUT_READERS: dict[str, Callable[[bytes], _Layout]] = {
    "png": _png_layout,
    "jpeg": _jpeg_layout,
    "webp": _webp_layout,
}
_CHECK_WHOLE: dict[str, Callable[..., Image.Image | None]] = {
    "png": _check_png,
    "jpeg": _check_jpeg,
    "webp": _check_webp,
}


# --- pixels -----------------------------------------------------------------------------------


def _alpha_from_header(image: Image.Image) -> bool:
    if image.mode in _ALPHA_MODES:
        return True
    return "transparency" in image.info


def _min_alpha(image: Image.Image) -> int | None:
    """The lowest alpha of any pixel, from the alpha band's extrema; None without alpha."""
    if "transparency" in image.info and image.mode not in _ALPHA_MODES:
        image = image.convert("RGBA")  # a palette's tRNS or a transparent colour
    bands = image.getbands()
    band = "A" if "A" in bands else "a" if "a" in bands else None
    if band is None:
        return None
    low, _ = image.getchannel(band).getextrema()
    return int(low)


def _thumbnail(image: Image.Image) -> bytes | None:
    """A small PNG for the report (None when this mode cannot be shown).

    ``image`` is shrunk in place (it is not used afterwards): no full-size copy, and an image
    not yet loaded is decoded at a reduced scale where its format allows (JPEG ``draft``), else
    reduced by whole factors before resampling (Pillow's ``reducing_gap``). The PNG is written
    at the fastest compression: it is small either way.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA" if _alpha_from_header(image) else "RGB")
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=1)
    except (OSError, ValueError):
        return None
    return out.getvalue()
