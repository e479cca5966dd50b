"""Input files of multipart cases: made from a recipe, the same bytes every time, padded to an
exact length without being held, and a multipart body that round-trips through a form parser."""

from __future__ import annotations

import asyncio
import hashlib
import io

import pytest
from PIL import Image
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartParser

from conformance.generation.cases import Case, FormPart
from conformance.generation.inputs import InputFile


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "gif"])
def test_a_picture_decodes_at_its_size_and_format(fmt: str) -> None:
    image = decode(InputFile(width=96, height=64, format=fmt).read())
    assert image.size == (96, 64)
    assert image.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"}[fmt]


def test_the_same_recipe_makes_the_same_bytes_and_seeds_differ() -> None:
    assert InputFile(seed=3).read() == InputFile(seed=3).read()
    assert InputFile(seed=3).read() != InputFile(seed=4).read()


def test_a_mask_is_transparent_exactly_in_its_box() -> None:
    mask = decode(
        InputFile(role="mask", width=32, height=32, alpha=True, box=(8, 8, 16, 24)).read()
    )
    alpha = mask.getchannel("A")
    assert alpha.getpixel((8, 8)) == 0 and alpha.getpixel((15, 23)) == 0
    assert alpha.getpixel((16, 8)) == 255 and alpha.getpixel((7, 8)) == 255
    assert decode(InputFile(role="mask", alpha=False, box=(0, 0, 4, 4)).read()).mode == "RGB"


def test_a_padded_png_has_exactly_its_length_and_still_decodes() -> None:
    recipe = InputFile(width=64, height=64, length=4 * 1024 * 1024 + 1)
    data = recipe.read()
    assert len(data) == recipe.size() == 4 * 1024 * 1024 + 1
    assert decode(data).size == (64, 64)
    assert recipe.digest() == hashlib.sha256(data).hexdigest()[:16]


def test_a_padded_file_reads_the_same_in_pieces_and_after_seeking() -> None:
    recipe = InputFile(width=32, height=32, length=3 * 1024 * 1024 + 7)
    whole = recipe.read()
    handle = recipe.open()
    pieces = b"".join(iter(lambda: handle.read(65_537), b""))
    assert pieces == whole
    handle.seek(-100, io.SEEK_END)
    assert handle.read() == whole[-100:]


def test_a_truncated_file_does_not_decode() -> None:
    data = InputFile(truncate=100).read()
    assert len(data) == 100
    with pytest.raises(OSError):
        decode(data)


def test_a_length_below_the_encoded_file_is_refused() -> None:
    with pytest.raises(ValueError):
        InputFile(width=512, height=512, length=100).read()


async def _parse(case: Case) -> dict[str, list[object]]:
    async def stream():
        for piece in case.iter_content():
            yield piece

    headers = Headers({"content-type": case.content_type})
    form = await MultiPartParser(headers, stream()).parse()
    out: dict[str, list[object]] = {}
    for name, value in form.multi_items():
        out.setdefault(name, []).append(
            value if isinstance(value, str) else (value.filename, await value.read())
        )
    return out


def multipart_case(**changes: object) -> Case:
    parts = (
        FormPart("prompt", "a red door"),
        FormPart("n", "2"),
        FormPart("image[]", file=InputFile(seed=1)),
        FormPart("image[]", file=InputFile(seed=2, format="webp")),
        FormPart("mask", file=InputFile(role="mask", alpha=True, box=(0, 0, 64, 64))),
    )
    fields = dict(
        id="edits/gpt-image-1/example",
        model="gpt-image-1",
        kind="valid",
        rule="edits.valid.accepted",
        level="MUST",
        expect="accept",
        endpoint="edits",
        parts=parts,
    )
    fields.update(changes)
    return Case(**fields)  # type: ignore[arg-type]


def test_a_multipart_body_carries_every_part_in_order() -> None:
    case = multipart_case()
    form = asyncio.run(_parse(case))
    assert form["prompt"] == ["a red door"] and form["n"] == ["2"]
    assert [name for name, _ in form["image[]"]] == ["picture-1.png", "picture-2.webp"]
    assert form["image[]"][1][1] == InputFile(seed=2, format="webp").read()
    assert len(form["mask"]) == 1
    assert case.content_length() == len(case.content())


def test_the_parts_are_sent_in_the_order_sent_parts_states() -> None:
    case = multipart_case(
        parts=(
            FormPart("image[]", file=InputFile(seed=1)),
            FormPart("prompt", "a red door"),
            FormPart("mask", file=InputFile(role="mask", alpha=True, box=(0, 0, 8, 8))),
            FormPart("n", "2"),
        )
    )

    async def names() -> list[str]:
        async def stream():
            for piece in case.iter_content():
                yield piece

        headers = Headers({"content-type": case.content_type})
        form = await MultiPartParser(headers, stream()).parse()
        return [name for name, _ in form.multi_items()]

    assert (
        asyncio.run(names())
        == [p.name for p in case.sent_parts]
        == [
            "prompt",
            "n",
            "image[]",
            "mask",
        ]
    )


def test_the_body_is_the_same_bytes_every_time_and_after_a_round_trip() -> None:
    case = multipart_case()
    assert case.content() == case.content()
    assert case.content_type.endswith(case.boundary)
    again = Case.from_dict(case.to_dict())
    assert again == case and again.content() == case.content()
    assert multipart_case(id="other").boundary != case.boundary


def test_a_stream_part_makes_a_streamed_case() -> None:
    assert not multipart_case().stream
    assert multipart_case(parts=(FormPart("stream", "true"),)).stream
    assert multipart_case().multipart
