"""Image inspection: every image is checked whole, hostile ones cost bounded work, alpha is seen.

Images are made here with Pillow (noisy pictures, so that their compressed data is large and a
cut lands inside it) or by hand where Pillow cannot write them (interlaced PNG, bad chunks).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import random
import struct
import subprocess
import sys
import time
import zlib
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from test_checks import b64, gpt_answer, gpt_body, make_case, ok_json, rules_of, run

from conformance.engine import image_facts as images
from conformance.engine.base64_strict import decode_base64
from conformance.engine.image_facts import MAX_CHUNKS, MAX_JPEG_SCANS, MAX_PIXELS, inspect_image
from conformance.engine.results import Outcome
from conformance.server.pictures import (
    FORMATS,
    ImageSpec,
    render,
    spec_for_prompt,
    truncate_jpeg,
    truncate_png,
    truncate_webp,
)

SIDE = 256
IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
EOI = b"\xff\xd9"


def picture(mode: str = "RGB", side: int = SIDE, alpha: int | None = None) -> Image.Image:
    """A noisy picture (so it compresses badly); RGBA gets a gradient alpha unless ``alpha``."""
    noise = Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3))
    image = Image.blend(noise, Image.linear_gradient("L").resize((side, side)).convert("RGB"), 0.5)
    if mode == "RGBA":
        image.putalpha(
            alpha if alpha is not None else Image.linear_gradient("L").resize(image.size)
        )
        return image
    return image.convert(mode)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_ihdr(width: int, height: int, colour: int = 2, depth: int = 8, interlace: int = 0) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)


def png_rgb(rows: list[bytes], width: int, *, interlace: int = 0, idat_size: int = 0) -> bytes:
    """A hand-made 8-bit RGB PNG from raw rows (each with its filter byte), its IDAT data split
    into chunks of ``idat_size`` bytes when given."""
    stream = zlib.compress(b"".join(rows))
    step = idat_size or len(stream)
    idat = b"".join(png_chunk(b"IDAT", stream[i : i + step]) for i in range(0, len(stream), step))
    return png_ihdr(width, len(rows), interlace=interlace) + idat + IEND


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of every chunk of a well-formed PNG."""
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], pos, pos + 12 + length))
        pos += 12 + length
    return out


@cache
def intact() -> dict[str, bytes]:
    """Intact images of every format and the variants their checks treat differently."""
    rgba = picture("RGBA")
    palette = picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    return {
        "png-rgb": encode(picture(), "PNG"),
        "png-rgba": encode(rgba, "PNG"),
        "png-palette-trns": encode(palette, "PNG"),
        "png-grey16": encode(picture("I;16"), "PNG"),
        "png-many-idat": png_rgb(
            [b"\x00" + picture().tobytes()[r * SIDE * 3 : (r + 1) * SIDE * 3] for r in range(SIDE)],
            SIDE,
            idat_size=4096,
        ),
        "png-interlaced": adam7_png(picture()),
        "jpeg-baseline": encode(picture(), "JPEG", quality=90),
        "jpeg-progressive": encode(picture(), "JPEG", quality=90, progressive=True),
        "jpeg-optimized-444": encode(picture(), "JPEG", optimize=True, subsampling=0),
        "jpeg-grey": encode(picture("L"), "JPEG"),
        "jpeg-cmyk": encode(picture("CMYK"), "JPEG"),
        "jpeg-restarts": encode(picture(), "JPEG", restart_marker_blocks=4),
        "webp-lossy": encode(picture(), "WEBP", quality=80),
        "webp-lossy-alpha": encode(rgba, "WEBP", quality=80),
        "webp-lossless": encode(picture(), "WEBP", lossless=True),
        "webp-lossless-alpha": encode(rgba, "WEBP", lossless=True),
    }


def adam7_png(image: Image.Image) -> bytes:
    """An interlaced RGB PNG (Pillow writes none): each pass's rows with filter 0."""
    width, height = image.size
    pixels = image.tobytes()
    rows = []
    for x0, y0, dx, dy in images._ADAM7:
        for y in range(y0, height, dy):
            line = b"".join(
                pixels[(y * width + x) * 3 : (y * width + x) * 3 + 3] for x in range(x0, width, dx)
            )
            if line:
                rows.append(b"\x00" + line)
    stream = zlib.compress(b"".join(rows))
    header = png_ihdr(width, height, interlace=1)
    return header + png_chunk(b"IDAT", stream) + IEND


def variants(prefix: str = "") -> list[str]:
    return [name for name in intact() if name.startswith(prefix)]


def refused(data: bytes, *words: str) -> str:
    facts = inspect_image(data)
    assert not facts.decodes, facts
    assert facts.problem and all(word in facts.problem for word in words), facts.problem
    return facts.problem


# --- intact images decode -------------------------------------------------------------------


@pytest.mark.parametrize("name", variants())
def test_intact_images_decode(name):
    data = intact()[name]
    facts = inspect_image(data, check_alpha=True, thumbnail=True)
    assert facts.decodes, facts.problem
    assert (facts.width, facts.height) == (SIDE, SIDE)
    assert facts.format == name.split("-")[0]
    assert facts.thumbnail and Image.open(io.BytesIO(facts.thumbnail)).size == (160, 160)
    see_through = name in (
        "png-rgba",
        "png-palette-trns",
        "webp-lossy-alpha",
        "webp-lossless-alpha",
    )
    assert facts.has_alpha is see_through
    assert (facts.min_alpha is not None and facts.min_alpha < 255) is see_through


def test_reading_images_offers_pillow_no_plugin_but_their_own():
    """Opening a format Pillow has not registered makes it import every plugin it has (about
    50 ms, and decoders no server's bytes should reach): WebP, PNG and JPEG are read, checked
    and thumbnailed without that (in a fresh interpreter: another test may have done it)."""
    code = """
import sys
from PIL import Image
from conformance.engine.image_facts import inspect_image
from conformance.server.pictures import ImageSpec, render
for fmt in ("webp", "png", "jpeg"):
    data = render(ImageSpec(0, 0, 64, 48, format=fmt, transparent=fmt != "jpeg")).data
    facts = inspect_image(data, check_alpha=True, thumbnail=True)
    assert facts.decodes and facts.thumbnail, facts
print(Image._initialized, sorted(m for m in sys.modules if m.endswith("ImagePlugin")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    initialized, plugins = out.stdout.split(" ", 1)
    assert int(initialized) < 2, "Pillow imported every plugin it has"
    assert "TiffImagePlugin" not in plugins and "AvifImagePlugin" not in plugins, plugins


class _Counting:
    """Counts the calls a wrapped object's ``method`` receives (the rest passed on)."""

    def __init__(self, wrapped, method: str, calls: list[int]) -> None:
        self._wrapped, self._method, self._calls = wrapped, method, calls

    def __getattr__(self, name):
        attribute = getattr(self._wrapped, name)
        if name != self._method:
            return attribute

        def counted(*args, **kwargs):
            self._calls.append(1)
            return attribute(*args, **kwargs)

        return counted


def _count_decoder_calls(monkeypatch, calls: list[int]) -> None:
    """Count in ``calls`` every call into a Pillow decoder's ``decode`` from now on."""
    real_getdecoder = Image._getdecoder
    monkeypatch.setattr(
        Image, "_getdecoder", lambda *a, **k: _Counting(real_getdecoder(*a, **k), "decode", calls)
    )


def test_a_png_of_small_chunks_is_inflated_and_decoded_in_few_calls(monkeypatch):
    """Each call into zlib or a Pillow decoder gives up the GIL and waits to take it back from
    the event loop: a PNG written in 8 KiB chunks (libpng's default) is inflated a megabyte at
    a time, not a chunk at a time, and its pixels decoded in as few calls."""
    side = 1024
    rows = [b"\x00" + random.Random(y).randbytes(side * 3) for y in range(side)]
    data = png_rgb(rows, side, idat_size=8192)
    assert len(png_chunks(data)) > 300
    inflates: list[int] = []
    decodes: list[int] = []
    zlib_ng = images.zlib

    class CountedZlib:
        def __getattr__(self, name):
            return getattr(zlib_ng, name)

        def decompressobj(self, *args):
            return _Counting(zlib_ng.decompressobj(*args), "decompress", inflates)

    monkeypatch.setattr(images, "zlib", CountedZlib())
    monkeypatch.setattr(images, "WHOLE_INFLATE_LIMIT", 0)  # the inflate in steps
    _count_decoder_calls(monkeypatch, decodes)
    facts = inspect_image(data, check_alpha=True)
    assert facts.decodes, facts.problem
    raw = side * (1 + 3 * side)  # 3 MiB: 4 inflate steps, and the stored copy decoded
    assert len(inflates) <= 2 * (raw // images.INFLATE_STEP + 2), len(inflates)
    assert 0 < len(decodes) <= raw // images.PIXEL_CALL_BYTES + 3, len(decodes)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("transparent", [False, True])
@pytest.mark.parametrize("detail", [0, 2])
def test_every_reference_picture_decodes(fmt, transparent, detail):
    for compression in (None, 0, 50) if fmt != "png" else (None,):
        spec = spec_for_prompt(
            "a fox",
            1536,
            1024,
            format=fmt,
            transparent=transparent and fmt != "jpeg",
            compression=compression,
            detail=detail,
        )
        facts = inspect_image(render(spec).data, check_alpha=True)
        assert facts.decodes, (spec, facts.problem)
        assert (facts.width, facts.height) == (1536, 1024)
        if spec.transparent:
            assert facts.min_alpha == 0


# --- cut images do not ----------------------------------------------------------------------


@pytest.mark.parametrize("name", variants())
@pytest.mark.parametrize("kept", [0.02, 0.3, 0.7, 0.98])
def test_a_cut_image_does_not_decode(name, kept):
    data = intact()[name]
    refused(data[: int(len(data) * kept)])


@pytest.mark.parametrize("name", variants("png"))
@pytest.mark.parametrize("kept", [0.3, 0.7, 0.98])
def test_a_png_cut_with_iend_appended_does_not_decode(name, kept):
    data = intact()[name]
    refused(data[: int(len(data) * kept)] + IEND)


def test_a_png_cut_between_idat_chunks_with_iend_appended_is_caught_by_its_inflated_size():
    data = intact()["png-many-idat"]
    idats = [chunk for chunk in png_chunks(data) if chunk[0] == b"IDAT"]
    assert len(idats) > 10
    for keep in (1, len(idats) // 2, len(idats) - 1):
        cut = data[: idats[keep - 1][2]] + IEND  # every chunk whole, every CRC right
        refused(cut, "ends early")


def test_a_png_missing_only_the_end_of_its_zlib_stream_is_caught():
    data = intact()["png-many-idat"]
    idats = [chunk for chunk in png_chunks(data) if chunk[0] == b"IDAT"]
    _, start, end = idats[-1]
    body = data[start + 8 : end - 4][:-4]  # the last chunk without the stream's Adler-32
    assert refused(data[:start] + png_chunk(b"IDAT", body) + IEND, "does not end")


def test_the_truncated_png_quirk_is_caught():
    refused(truncate_png(render(spec_for_prompt("a fox", 1024, 1024)).data))


@pytest.mark.parametrize("name", variants("jpeg"))
@pytest.mark.parametrize("kept", [0.3, 0.5, 0.7, 0.9, 0.98])
def test_a_jpeg_cut_with_eoi_appended_does_not_decode(name, kept):
    data = intact()[name]
    cut = data[: int(len(data) * kept)].rstrip(b"\xff")
    assert Image.open(io.BytesIO(cut + EOI)).load() is not None  # Pillow alone sees nothing
    refused(cut + EOI)


def test_a_progressive_jpeg_cut_at_a_scan_boundary_is_caught_by_its_scans():
    data = intact()["jpeg-progressive"]
    starts = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"]
    assert len(starts) > 5
    for scan in starts[1:]:
        refused(data[:scan] + EOI, "refinement")


def test_the_truncated_jpeg_quirk_is_caught():
    picture_data = render(spec_for_prompt("a fox", 1024, 1024, format="jpeg")).data
    refused(truncate_jpeg(picture_data), "entropy-coded data ends early")


@pytest.mark.parametrize("name", variants("webp"))
@pytest.mark.parametrize("kept", [0.3, 0.7, 0.98])
def test_a_webp_cut_with_its_riff_size_patched_does_not_decode(name, kept):
    data = bytearray(intact()[name][: int(len(intact()[name]) * kept)])
    data[4:8] = struct.pack("<I", len(data) - 8)
    refused(bytes(data), "declares")


@pytest.mark.parametrize("name", variants("webp"))
def test_a_webp_cut_with_every_size_patched_is_refused_by_its_decoder(name):
    data = intact()[name]
    cut = bytearray(data[: int(len(data) * 0.9)])
    pos = 12
    while True:  # patch the chunk the cut falls in
        (size,) = struct.unpack_from("<I", cut, pos + 4)
        if pos + 8 + size > len(cut):
            cut[pos + 4 : pos + 8] = struct.pack("<I", len(cut) - pos - 8)
            break
        pos += 8 + size + (size & 1)
    cut[4:8] = struct.pack("<I", len(cut) - 8)
    refused(bytes(cut), "does not decode")


def test_the_truncated_webp_quirk_is_caught():
    picture_data = render(spec_for_prompt("a fox", 1024, 1024, format="webp")).data
    refused(truncate_webp(picture_data))


def test_a_png_chunk_with_a_wrong_crc_does_not_decode():
    data = bytearray(intact()["png-rgb"])
    data[len(data) // 2] ^= 0x01
    refused(bytes(data), "CRC")


def test_a_png_row_with_an_unknown_filter_does_not_decode():
    rows = [b"\x00" + bytes(3 * 8)] * 7 + [b"\x07" + bytes(3 * 8)]
    assert inspect_image(png_rgb(rows[:7] + rows[:1], 8)).decodes
    refused(png_rgb(rows, 8), "filter")


# --- bounded work ---------------------------------------------------------------------------


def judged_quickly(data: bytes, *words: str, seconds: float = 0.25) -> None:
    started = time.process_time()
    refused(data, *words)
    assert time.process_time() - started < seconds


def test_a_png_with_a_million_chunks_is_refused_at_once():
    many = png_chunk(b"prVt") * 1_000_000
    idat = png_chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00"))
    judged_quickly(png_ihdr(1, 1) + many + idat + IEND, f"more than {MAX_CHUNKS} chunks")
    judged_quickly(png_ihdr(1, 1) + idat + many + IEND, f"more than {MAX_CHUNKS} chunks")


def test_a_jpeg_with_a_million_segments_or_many_scans_is_refused_at_once():
    head = intact()["jpeg-baseline"][:2]
    judged_quickly(head + b"\xff\xfe\x00\x02" * 1_000_000 + EOI, "marker segments")
    data = intact()["jpeg-progressive"]
    first_scan = data.index(b"\xff\xda")
    scan = data[first_scan : data.index(b"\xff", first_scan + 2)] + b"\x00"
    judged_quickly(data[:first_scan] + scan * (MAX_JPEG_SCANS + 1) + EOI, "scans")


def test_a_webp_with_a_million_chunks_is_refused_at_once():
    chunks = b"".join([b"VP8L" + struct.pack("<I", 5) + b"\x2f\x00\x00\x00\x00\x00"])
    chunks += (b"XTRA" + struct.pack("<I", 0)) * 1_000_000
    judged_quickly(b"RIFF" + struct.pack("<I", len(chunks) + 4) + b"WEBP" + chunks, "chunks")


@pytest.mark.parametrize(
    "header",
    [
        png_ihdr(40_000, 40_000) + IEND,
        b"\xff\xd8\xff\xc0\x00\x11\x08\x9c\x40\x9c\x40\x03"
        + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
        + EOI,
        b"RIFF\x16\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00\xff\x3f\x00\xff\x3f\x00",
    ],
    ids=["png", "jpeg", "webp"],
)
def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(header):
    judged_quickly(header, "pixels", str(MAX_PIXELS), seconds=0.05)


def test_a_png_stream_inflating_beyond_its_declared_size_is_refused():
    rows = [b"\x00" + bytes(3 * 8)] * 8
    bomb = png_rgb([*rows, b"\x00" * (50 * 1024 * 1024)], 8)
    bomb = png_ihdr(8, 8) + bomb[len(png_ihdr(8, 8)) :]  # the header still declares 8 rows
    judged_quickly(bomb, "inflates beyond")


def test_the_inflate_check_works_in_bounded_steps(monkeypatch):
    monkeypatch.setattr(images, "INFLATE_STEP", 1000)
    monkeypatch.setattr(images, "WHOLE_INFLATE_LIMIT", 0)
    for name in variants("png"):
        assert inspect_image(intact()[name]).decodes, name


# --- only PNG, JPEG and WebP reach a decoder ------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "ICO", "PPM"])
def test_other_formats_are_not_decoded_and_are_a_finding(fmt, monkeypatch):
    opened: list = []
    monkeypatch.setattr(images.Image, "open", lambda *a, **k: opened.append(k))
    facts = inspect_image(encode(picture(side=32), fmt))
    assert not facts.decodes
    assert "only PNG, JPEG and WebP" in facts.problem or "not a PNG, JPEG or WebP" in facts.problem
    assert opened == []


def test_pillow_is_only_offered_the_sniffed_formats_decoder(monkeypatch):
    offered: list = []
    real_open = Image.open

    def spy(fp, mode="r", formats=None):
        offered.append(tuple(formats or ()))
        return real_open(fp, mode, formats)

    monkeypatch.setattr(images.Image, "open", spy)
    for name, data in intact().items():
        inspect_image(data, check_alpha=True, thumbnail=True)
        expected = images.DECODERS[name.split("-")[0]]
        assert offered and set(offered) == {(expected,)}, name
        offered.clear()


# --- alpha ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_an_rgba_image_with_opaque_alpha_everywhere_has_no_see_through_pixel(fmt):
    facts = inspect_image(encode(picture("RGBA", alpha=255), fmt, lossless=True), check_alpha=True)
    assert facts.decodes and facts.min_alpha in (255, None)


def test_opaque_alpha_fails_image_alpha_and_a_transparent_image_passes():
    body = gpt_body(background="transparent", output_format="png")
    opaque = encode(picture("RGBA", side=1024, alpha=255), "PNG", compress_level=1)
    result = run(
        make_case(body),
        ok_json(gpt_answer(background="transparent", data=[{"b64_json": b64(opaque)}])),
    )
    assert result.outcome is Outcome.FAIL
    assert rules_of(result, "MUST") == {"image.alpha"}
    assert any("every pixel is opaque" in f.message for f in result.findings)
    see_through = encode(picture("RGBA", side=1024), "PNG", compress_level=1)
    result = run(
        make_case(body),
        ok_json(gpt_answer(background="transparent", data=[{"b64_json": b64(see_through)}])),
    )
    assert result.outcome is Outcome.PASS, result.findings


def test_a_truncated_image_fails_image_decodes_whatever_was_asked():
    body = gpt_body(output_format="jpeg")
    cut = truncate_jpeg(render(spec_for_prompt("a fox", 1024, 1024, format="jpeg")).data)
    result = run(
        make_case(body), ok_json(gpt_answer(output_format="jpeg", data=[{"b64_json": b64(cut)}]))
    )
    assert rules_of(result, "MUST") == {"image.decodes"}


# --- pixels decoded once, and the same verdict whatever is asked of them ---------------------


def cut_variants() -> dict[str, bytes]:
    """Every kind of cut image above, by name."""
    out: dict[str, bytes] = {}
    for name, data in intact().items():
        for kept in (0.02, 0.3, 0.7, 0.98):
            out[f"{name} cut {kept}"] = data[: int(len(data) * kept)]
        if name.startswith("png"):
            out[f"{name} cut+IEND"] = data[: int(len(data) * 0.7)] + IEND
        if name.startswith("jpeg"):
            out[f"{name} cut+EOI"] = data[: int(len(data) * 0.7)].rstrip(b"\xff") + EOI
    data = intact()["png-many-idat"]
    idats = [chunk for chunk in png_chunks(data) if chunk[0] == b"IDAT"]
    out["png cut between IDATs"] = data[: idats[len(idats) // 2][2]] + IEND
    _, start, end = idats[-1]
    out["png without its Adler-32"] = (
        data[:start] + png_chunk(b"IDAT", data[start + 8 : end - 4][:-4]) + IEND
    )
    rows = [b"\x00" + bytes(3 * 8)] * 4
    out["png with fewer rows than declared"] = png_ihdr(8, 8) + png_rgb(rows, 8)[33:]
    return out


@pytest.mark.parametrize("name", list(cut_variants()))
def test_a_cut_image_is_refused_also_when_its_pixels_are_wanted(name):
    data = cut_variants()[name]
    for options in ({"check_alpha": True}, {"thumbnail": True}, {"keep_pixels": True}):
        facts = inspect_image(data, **options)
        assert not facts.decodes and facts.pixels is None and facts.thumbnail is None, options


@cache
def damaged_variants() -> dict[str, bytes]:
    """The cut images, and intact ones with a byte of their image data changed."""
    out = dict(cut_variants())
    for name, data in intact().items():
        if name.startswith("webp"):
            continue
        if name.startswith("png"):
            spans = images._png_layout(data).idat
            start, end = spans[len(spans) // 2]
        else:
            start = data.index(b"\xff\xda") + 20
            end = images._jpeg_layout(data).eoi
        for seed in range(3):
            spot = random.Random(seed).randrange(start, end)
            changed = bytearray(data)
            changed[spot] ^= 0x5A
            if name.startswith("png"):  # a CRC to match, so that the data itself is judged
                _, chunk_start, chunk_end = next(c for c in png_chunks(data) if c[1] <= spot < c[2])
                body = changed[chunk_start + 4 : chunk_end - 4]
                changed[chunk_end - 4 : chunk_end] = struct.pack(">I", zlib.crc32(bytes(body)))
            out[f"{name} byte {spot} changed"] = bytes(changed)
    return out


def facts_without_fast_paths(data: bytes, monkeypatch, **options) -> images.ImageFacts:
    with monkeypatch.context() as m:
        m.setattr(images, "WHOLE_INFLATE_LIMIT", 0)
        m.setattr(images, "_decodes_cleanly", lambda data: False)
        return inspect_image(data, **options)


@pytest.mark.parametrize("name", [*variants("png"), *variants("jpeg"), *damaged_variants()])
def test_libdeflate_and_libjpeg_turbo_give_the_verdicts_of_the_checks_in_steps(name, monkeypatch):
    """The one-call inflate and the reduced JPEG decode are only faster: every intact, cut or
    changed PNG and JPEG gets the same facts (and the same reason) as from zlib-ng's steps and
    Pillow's two decodes."""
    data = intact().get(name) or damaged_variants()[name]
    monkeypatch.setattr(images, "LIBJPEG_CHECK_BYTES", 0)  # every JPEG, small ones too
    for options in ({}, {"check_alpha": True}):
        fast = inspect_image(data, **options)
        slow = facts_without_fast_paths(data, monkeypatch, **options)
        assert dataclasses.replace(fast, pixels=None) == dataclasses.replace(slow, pixels=None)


def jpeg_cut_variants() -> dict[str, bytes]:
    """Every JPEG variant cut at a few points with an EOI appended."""
    out = {}
    for name in variants("jpeg"):
        data = intact()[name]
        for kept in (0.5, 0.9, 0.98):
            out[f"{name} cut at {kept}"] = data[: int(len(data) * kept)].rstrip(b"\xff") + EOI
    return out


@pytest.mark.parametrize(
    "name",
    [
        *variants("jpeg"),
        *(n for n in damaged_variants() if n.startswith("jpeg")),
        *jpeg_cut_variants(),
    ],
)
def test_a_jpegs_two_decodes_compared_by_difference_or_by_digests_agree(name, monkeypatch):
    """Pillow's two decodes are compared by their difference when three images fit the judging
    threads' pixel memory, else by a digest of each, one held at a time: the same verdicts."""
    data = intact().get(name) or damaged_variants().get(name) or jpeg_cut_variants()[name]
    monkeypatch.setattr(images, "_decodes_cleanly", lambda data: False)  # Pillow decides
    crops: list[int] = []
    real_crop = Image.Image.crop
    monkeypatch.setattr(Image.Image, "crop", lambda *a, **k: crops.append(1) or real_crop(*a, **k))
    images.forget_seen_images()
    by_difference = inspect_image(data)
    assert not crops
    monkeypatch.setattr(images, "PIXEL_MEMORY", 0)
    images.forget_seen_images()  # checked again, not remembered
    by_digests = inspect_image(data)
    assert crops or (not by_digests.decodes and "ends early" not in by_digests.problem)
    assert dataclasses.replace(by_difference, pixels=None) == dataclasses.replace(
        by_digests, pixels=None
    )
    if "cut at" in name:
        assert not by_difference.decodes


@pytest.mark.parametrize("name", variants("jpeg"))
def test_a_whole_jpeg_is_checked_by_libjpeg_turbo_alone_at_a_reduced_scale(name, monkeypatch):
    import simplejpeg

    handed: list = []
    real_decode = images._decode
    monkeypatch.setattr(images, "_decode", lambda d, f: handed.append(f) or real_decode(d, f))
    real = simplejpeg.decode_jpeg
    sizes: list = []
    monkeypatch.setattr(
        simplejpeg, "decode_jpeg", lambda *a, **k: sizes.append(real(*a, **k).shape[:2])
    )
    monkeypatch.setattr(images, "LIBJPEG_CHECK_BYTES", len(intact()[name]))
    facts = inspect_image(intact()[name], keep_pixels=True)
    assert facts.decodes and handed == [] and facts.pixels is None
    assert sizes == [(SIDE // 8, SIDE // 8)]
    # One byte smaller than the bound: Pillow's two decodes, and no numpy for simplejpeg.
    monkeypatch.setattr(images, "LIBJPEG_CHECK_BYTES", len(intact()[name]) + 1)
    assert inspect_image(intact()[name]).decodes
    assert handed == ["jpeg", "jpeg"] and len(sizes) == 1


def test_small_jpegs_load_no_numpy():
    """simplejpeg needs numpy (13 MB, 50 ms to import): a run against small test pictures,
    which Pillow checks cheaply, does not pay for it."""
    code = (
        "import sys\n"
        "from conformance.engine.image_facts import inspect_image\n"
        "from conformance.server.pictures import render, spec_for_prompt\n"
        "picture = render(spec_for_prompt('a fox', 1536, 1024, format='jpeg')).data\n"
        "assert inspect_image(picture).decodes\n"
        "print('numpy' in sys.modules, 'simplejpeg' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_jpeg_cut_short_makes_libjpeg_turbo_warn_and_pillow_decide(monkeypatch):
    monkeypatch.setattr(images, "LIBJPEG_CHECK_BYTES", 0)
    data = intact()["jpeg-baseline"]
    cut = data[: int(len(data) * 0.7)].rstrip(b"\xff") + EOI
    assert images._decodes_cleanly(data) and not images._decodes_cleanly(cut)
    handed: list = []
    real_decode = images._decode
    monkeypatch.setattr(images, "_decode", lambda d, f: handed.append(f) or real_decode(d, f))
    refused(cut, "ends early")
    assert handed == ["jpeg", "jpeg"]


def test_a_png_within_the_bound_is_inflated_in_one_call_and_a_larger_one_in_steps(monkeypatch):
    data = intact()["png-many-idat"]
    raw = images._png_layout(data).raw_size
    whole: list = []
    real = images.deflate.zlib_decompress
    monkeypatch.setattr(
        images.deflate, "zlib_decompress", lambda *a: whole.append(a[1]) or real(*a)
    )
    stepped: list = []
    real_steps = images._check_png_in_steps
    monkeypatch.setattr(
        images, "_check_png_in_steps", lambda *a: stepped.append(1) or real_steps(*a)
    )
    assert inspect_image(data).decodes
    assert (whole, stepped) == ([raw], [])
    monkeypatch.setattr(images, "WHOLE_INFLATE_LIMIT", raw - 1)
    whole.clear()
    assert inspect_image(data).decodes
    assert (whole, stepped) == ([], [1])


def test_pillow_alone_accepts_the_png_cuts_the_inflate_check_catches():
    """Why a PNG decoded for its pixels is still inflated: Pillow stops at the last row."""
    for name in ("png without its Adler-32", "png with fewer rows than declared"):
        Image.open(io.BytesIO(cut_variants()[name]), formats=("PNG",)).load()
        refused(cut_variants()[name])


def count_opens(monkeypatch) -> list:
    opened: list = []
    real_open = Image.open

    def spy(fp, mode="r", formats=None):
        opened.append(formats)
        return real_open(fp, mode, formats)

    monkeypatch.setattr(images.Image, "open", spy)
    return opened


def shows_a_thumbnail(thumb: bytes | None) -> bool:
    """Read without the spy of ``count_opens``, which counts imgconf's decodes only."""
    return bool(thumb) and _size_of(thumb) == (160, 160)


def _size_of(png: bytes) -> tuple[int, int]:
    return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize("name", variants())
def test_a_thumbnail_costs_no_decode_beyond_the_checks(name, monkeypatch):
    monkeypatch.setattr(images, "LIBJPEG_CHECK_BYTES", 0)  # as for a photograph
    opened = count_opens(monkeypatch)
    data = intact()[name]
    checked = inspect_image(data, keep_pixels=True)
    opens_for_the_check = len(opened)
    assert shows_a_thumbnail(images.thumbnail_of(data, checked))
    # A WebP is decoded by its check, and that decode serves; a PNG (inflated by its check) and
    # a JPEG (checked by libjpeg-turbo at an eighth of its size) are decoded for it once.
    assert opens_for_the_check == (1 if name.startswith("webp") else 0)
    assert len(opened) == opens_for_the_check + (not name.startswith("webp"))
    assert checked.pixels is None  # handed over, not kept twice
    # Alpha and a thumbnail asked together: one decode serves both.
    opened.clear()
    facts = inspect_image(data, check_alpha=True, keep_pixels=True)
    assert images.thumbnail_of(data, facts)
    assert len(opened) == (2 if name.startswith("jpeg") else 1)


def test_a_jpeg_thumbnail_without_a_kept_decode_is_decoded_at_a_reduced_scale(monkeypatch):
    from PIL.JpegImagePlugin import JpegImageFile

    scales: list = []
    real_draft = JpegImageFile.draft
    monkeypatch.setattr(
        JpegImageFile, "draft", lambda im, *a: scales.append(a) or real_draft(im, *a)
    )
    data = encode(picture(side=1024), "JPEG", quality=90)
    assert len(data) > 64 * 1024  # Pillow would read it in pieces of 64 KiB
    facts = inspect_image(data)
    assert facts.decodes and facts.pixels is None
    decodes: list[int] = []
    _count_decoder_calls(monkeypatch, decodes)
    thumb = images.thumbnail_of(data, facts)
    assert thumb and Image.open(io.BytesIO(thumb)).size == (160, 160)
    assert scales and max(scales[-1][1]) < 1024  # decoded at a reduced scale
    assert len(decodes) == 1  # in one call: each lets go of the GIL and waits to take it back


def test_no_thumbnail_of_an_image_that_does_not_decode():
    cut = intact()["png-rgb"][:500]
    assert images.thumbnail_of(cut, inspect_image(cut, keep_pixels=True)) is None


def test_the_gallery_picks_every_broken_image_up_to_its_bound_and_one_match_per_kind():
    picks = images.GalleryPicks(broken=2)
    assert [picks.take("gpt-image-1", "png", False) for _ in range(3)] == [True, True, False]
    assert [picks.take("gpt-image-1", "png", True) for _ in range(2)] == [True, False]
    assert picks.take("gpt-image-1", "jpeg", True)
    assert picks.take("gpt-image-2", "png", True)
    assert not picks.take("gpt-image-2", "png", True)


@pytest.mark.parametrize("name", variants("png"))
def test_a_png_decoded_for_its_pixels_is_inflated_once(name, monkeypatch):
    data = intact()[name]
    handed: list[bytes] = []
    real_decode = images._decode
    monkeypatch.setattr(images, "_decode", lambda d, f: handed.append(d) or real_decode(d, f))
    facts = inspect_image(data, check_alpha=True, keep_pixels=True)
    assert facts.decodes and len(handed) == 1
    # Pillow was handed the check's inflated rows in stored blocks, not the file's stream.
    assert handed[0] != data and len(handed[0]) > images._png_layout(data).raw_size
    assert facts.pixels.tobytes() == Image.open(io.BytesIO(data)).tobytes()
    assert facts.pixels.info.get("transparency") == Image.open(io.BytesIO(data)).info.get(
        "transparency"
    )
    # Beyond the bound, Pillow inflates the file itself; the facts are the same.
    monkeypatch.setattr(images, "REWRAP_LIMIT", 0)
    handed.clear()
    again = inspect_image(data, check_alpha=True)
    assert handed == [data]
    assert (again.min_alpha, again.has_alpha) == (facts.min_alpha, facts.has_alpha)


def test_a_thumbnail_alone_does_not_decode_a_png_before_it_is_picked(monkeypatch):
    decoded: list = []
    real_decode = images._decode
    monkeypatch.setattr(images, "_decode", lambda d, f: decoded.append(f) or real_decode(d, f))
    assert inspect_image(intact()["png-rgba"], keep_pixels=True).pixels is None
    assert decoded == []


@pytest.mark.parametrize(
    "text",
    [
        "AB-_",
        "QQ",
        "QQ=",
        "QQ===",
        "QQ==QQ==",
        "=QQQ",
        "QQ==\n",
        "QU JD",
        "QUJD\n",
        "QUJDé",
        "QU=D",
    ],
)
def test_base64_that_is_not_strict_is_refused(text):
    assert decode_base64(text) is None
    assert decode_base64(text.encode("utf-8")) is None


def test_strict_base64_decodes_from_the_string_itself():
    data = random.Random(3).randbytes(3001)
    assert decode_base64(base64.b64encode(data).decode()) == data
    assert decode_base64(memoryview(b'"' + base64.b64encode(data) + b'"')[1:-1]) == data
    assert decode_base64("") == b""


_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=_B64_ALPHABET + "=\n -_é", max_size=14),
        st.binary(max_size=10).map(lambda raw: base64.b64encode(raw).decode()),
        st.tuples(
            st.binary(max_size=10).map(lambda raw: base64.b64encode(raw).decode()),
            st.integers(0, 14),
            st.sampled_from(["=", "==", "A", "\n", "-", "AA=", "é"]),
        ).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]),
    )
)
def test_strict_base64_is_binascii_strict_mode_exactly(text):
    # The fast decoder refuses some of what binascii's strict mode takes (padding past a whole
    # quantum): those are asked of binascii, so the verdict and the bytes are binascii's.
    try:
        expected = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        expected = None
    assert decode_base64(text) == expected
    assert decode_base64("4wRw==") == binascii.a2b_base64("4wRw==", strict_mode=True)


def test_a_jpeg_check_lets_the_first_decode_go_and_keeps_the_second(monkeypatch):
    import weakref

    decoded: list[weakref.ref] = []
    original = images._decode

    def decode(data, fmt):
        image = original(data, fmt)
        decoded.append(weakref.ref(image))
        return image

    monkeypatch.setattr(images, "_decode", decode)
    monkeypatch.setattr(images, "_decodes_cleanly", lambda data: False)  # Pillow's filler check
    facts = inspect_image(intact()["jpeg-baseline"], keep_pixels=True)
    assert facts.decodes and len(decoded) == 2
    assert decoded[0]() is None  # compared, then let go
    assert facts.pixels is decoded[1]()


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_pixels_are_decoded_and_compared_in_few_calls_into_pillow(monkeypatch, fmt):
    """Each call into Pillow's C code that works on the pixels lets go of the GIL and waits to
    take it back (up to 5 ms beside a busy event loop): a 1536x1024 WebP's 6 MB frame goes to
    its decoder in one call whatever PILLOW_CALL_BYTES is (read whole, it is not copied), and a
    JPEG's two decodes are compared in one call, not by a CRC of each in strips (thirty
    calls)."""
    monkeypatch.setattr(images, "PILLOW_CALL_BYTES", 1 << 20)
    data = render(ImageSpec(1, 2, 1536, 1024, format=fmt)).data
    decodes: list[int] = []
    crops: list[int] = []
    _count_decoder_calls(monkeypatch, decodes)
    real_crop = Image.Image.crop
    monkeypatch.setattr(Image.Image, "crop", lambda *a, **k: crops.append(1) or real_crop(*a, **k))
    monkeypatch.setattr(images, "_decodes_cleanly", lambda data: False)  # Pillow's filler check
    images.forget_seen_images()
    assert inspect_image(data).decodes
    assert len(decodes) == (2 if fmt == "jpeg" else 1), len(decodes)
    assert not crops


def test_a_transparent_pngs_pixels_come_from_one_inflate_one_rewrap_and_one_decode(monkeypatch):
    """The rows are inflated by one libdeflate call, stored again by one (zlib's compressobj let
    go of the GIL for every piece of output it grew: 37 ms beside a busy event loop for a
    1536x1024 picture, where one call takes 7), and decoded by one call into Pillow."""
    data = render(ImageSpec(1, 2, 1536, 1024, format="png", transparent=True, realistic=True)).data
    compressed: list[int] = []
    real_compress = images.deflate.zlib_compress
    monkeypatch.setattr(
        images.deflate,
        "zlib_compress",
        lambda rows, level: compressed.append(level) or real_compress(rows, level),
    )
    decodes: list[int] = []
    _count_decoder_calls(monkeypatch, decodes)
    facts = inspect_image(data, check_alpha=True)
    assert facts.decodes and facts.min_alpha is not None and facts.min_alpha < 255
    assert compressed == [0] and len(decodes) == 1


def test_pixel_work_is_timed_apart_and_a_refusal_by_header_costs_none():
    before = images.decode_seconds()
    assert inspect_image(intact()["jpeg-baseline"]).decodes
    timed = images.decode_seconds()
    assert timed > before
    refused(png_ihdr(40_000, 40_000) + IEND, "pixels")
    assert images.decode_seconds() == timed


def test_pixel_memory_serves_in_order_within_its_limit_and_a_larger_one_alone():
    import threading

    from conformance.engine.pixel_memory import PixelMemory

    memory = PixelMemory(limit=100)
    log: list[tuple[str, int]] = []
    lock = threading.Lock()
    gates = {name: threading.Event() for name in "abcd"}

    def job(name: str, size: int) -> None:
        with memory.hold(size):
            with lock:
                log.append((name, memory.held))
            gates[name].wait(5)

    threads = []
    for name, size in (("a", 60), ("b", 150), ("c", 30), ("d", 0)):
        thread = threading.Thread(target=job, args=(name, size))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)
    # a holds 60; b (larger than the limit) waits for a; c, though it fits, waits behind b;
    # d asks for nothing and never waits.
    assert log == [("a", 60), ("d", 60)]
    gates["a"].set()
    time.sleep(0.05)
    assert log[-1] == ("b", 150)
    gates["b"].set()
    time.sleep(0.05)
    assert log[-1] == ("c", 30)
    gates["c"].set()
    gates["d"].set()
    for thread in threads:
        thread.join(5)
    assert memory.held == 0


def test_images_too_large_to_decode_together_are_decoded_one_after_the_other(monkeypatch):
    import threading

    from conformance.engine import pixel_memory

    flat = encode(Image.new("RGBA", (1024, 1024), (10, 20, 30, 40)), "WEBP", lossless=True)
    assert len(flat) < 10_000  # a small file, for many pixels
    budget = pixel_memory.PixelMemory(limit=1024 * 1024)  # less than one such decode
    monkeypatch.setattr(images, "PIXELS", budget)
    most = 0
    original = images._decode

    def decode(data, fmt):
        nonlocal most
        most = max(most, budget.held)
        return original(data, fmt)

    monkeypatch.setattr(images, "_decode", decode)
    threads = [
        threading.Thread(target=inspect_image, args=(flat,), kwargs={"check_alpha": True})
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most == 1024 * 1024 * images.PIXEL_PEAK  # never two at once


# --- repeats --------------------------------------------------------------------------------


def flat_png(colour: tuple[int, int, int] = (20, 120, 200), side: int = 512) -> bytes:
    return encode(Image.new("RGB", (side, side), colour), "PNG")


def test_a_repeated_flat_image_is_judged_from_memory_with_the_same_facts(monkeypatch):
    data = flat_png()
    first = inspect_image(data)
    checked: list[str] = []
    for fmt, check in list(images._CHECK_WHOLE.items()):
        monkeypatch.setitem(
            images._CHECK_WHOLE, fmt, lambda *a, _c=check, _f=fmt: checked.append(_f) or _c(*a)
        )
    again = inspect_image(data)
    assert again == first and again is not first and again.decodes
    assert checked == []  # neither inflated nor decoded again
    assert images._SEEN.hits == 1
    # Another question (alpha) is another entry; another image is checked on its own.
    inspect_image(data, check_alpha=True)
    assert inspect_image(flat_png((1, 2, 3))).decodes
    assert checked == ["png", "png"]


def test_a_cut_repeat_of_a_remembered_image_is_still_caught():
    data = flat_png()
    assert inspect_image(data).decodes
    cut = truncate_png(data)
    facts = inspect_image(cut)
    assert not facts.decodes and facts.problem
    assert not inspect_image(cut).decodes


def test_an_image_that_does_not_decode_is_remembered_as_such():
    data = flat_png()
    ihdr_end = 8 + 8 + 13 + 4
    broken = data[:ihdr_end] + png_chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + IEND
    first = inspect_image(broken)
    assert not first.decodes and first.problem
    assert inspect_image(broken) == first and images._SEEN.hits == 1


def test_photographs_are_not_hashed_and_thumbnails_are_not_remembered(monkeypatch):
    hashed: list[int] = []
    real = images.seen_key

    def spy(data, pixels, *questions):
        key = real(data, pixels, *questions)
        hashed.append(key is not None)
        return key

    monkeypatch.setattr(images, "seen_key", spy)
    noisy = encode(picture(), "PNG")  # about 3 bytes a pixel
    inspect_image(noisy)
    inspect_image(noisy)
    assert hashed == [False, False] and len(images._SEEN) == 0
    flat = flat_png()
    first = inspect_image(flat, thumbnail=True)
    assert inspect_image(flat, thumbnail=True).thumbnail == first.thumbnail
    assert len(images._SEEN) == 0 and images._SEEN.hits == 0


def test_a_remembered_image_kept_for_the_gallery_still_gets_its_thumbnail():
    data = flat_png()
    inspect_image(data, keep_pixels=True)
    again = inspect_image(data, keep_pixels=True)
    assert again.pixels is None and images._SEEN.hits == 1
    assert shows_a_thumbnail(images.thumbnail_of(data, again))


def test_the_memory_of_images_is_bounded_and_forgets_the_least_recently_used():
    from conformance.engine.seen_images import SeenImages

    memory: SeenImages[str] = SeenImages(limit=2)
    memory.put("a", "A")
    memory.put("b", "B")
    assert memory.get("a") == "A"  # "b" is now the least recently used
    memory.put("c", "C")
    assert len(memory) == 2 and memory.get("b") is None
    assert memory.get("a") == "A" and memory.get("c") == "C" and memory.hits == 3


def test_a_thumbnail_of_a_remembered_image_is_made_once(monkeypatch):
    data = flat_png()
    first = images.thumbnail_of(data, inspect_image(data))
    opened = count_opens(monkeypatch)
    again = images.thumbnail_of(data, inspect_image(data))
    assert shows_a_thumbnail(first) and again == first and opened == []
    other = flat_png((9, 9, 9))
    assert shows_a_thumbnail(images.thumbnail_of(other, inspect_image(other)))
    assert len(opened) == 1  # another image is decoded for its own


def test_where_no_pixel_work_may_be_done_only_remembered_images_are_judged():
    data, noisy = flat_png(), encode(picture(), "PNG")
    with images.no_pixel_work():
        for unseen in (data, noisy):
            with pytest.raises(images.PixelsWanted):
                inspect_image(unseen)
        assert not inspect_image(b"GIF89a...").decodes  # no pixel work to do: judged
    facts = inspect_image(data)  # allowed again once the block is left
    with images.no_pixel_work():
        assert inspect_image(data) == facts
        with pytest.raises(images.PixelsWanted):
            images.thumbnail_of(data, inspect_image(data))
        with pytest.raises(images.PixelsWanted):
            inspect_image(noisy)  # never remembered: always pixel work
    assert shows_a_thumbnail(images.thumbnail_of(data, inspect_image(data)))


def test_a_decode_that_ran_out_of_memory_is_not_remembered(monkeypatch):
    data = flat_png()
    real = images._CHECK_WHOLE["png"]

    def no_memory(*args):
        raise MemoryError

    monkeypatch.setitem(images._CHECK_WHOLE, "png", no_memory)
    facts = inspect_image(data)
    assert not facts.decodes and "MemoryError" in (facts.problem or "")
    monkeypatch.setitem(images._CHECK_WHOLE, "png", real)
    assert inspect_image(data).decodes  # judged again, not taken from memory
