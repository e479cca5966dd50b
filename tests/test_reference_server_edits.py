"""The reference server's ``/images/edits`` and ``/images/variations``: the official ``openai``
SDK works against them, each answer is a real edit (the pixels outside the mask are the resized
input's, one mark per input, a stamp of what arrived), each invalid form is refused with the
``param`` and code a hand-written table says, and each multipart quirk deviates as declared."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from PIL import Image, ImageChops
from starlette.testclient import TestClient

from conformance.contract.loader import load_contract
from conformance.contract.reach import AuthStyle
from conformance.server.app import ServerConfig, create_app
from conformance.server.edits import read_stamp
from conformance.server.quirks import QUIRKS, SERVER_QUIRKS, parse_quirks

KEY = "sk-edits-test"
EDITS = load_contract().endpoint("edits")
GPT_EDIT_MODELS = [name for name, spec in EDITS.models.items() if spec.is_gpt]


# --- inputs -----------------------------------------------------------------------------------


def picture(width: int, height: int, seed: int = 0, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """A small image with detail everywhere (gradients), so that a resize and an edit show."""
    ramp = Image.linear_gradient("L").resize((width, height))
    bands = [ramp, ramp.rotate(90).resize((width, height)), Image.new("L", (width, height), seed)]
    image = Image.merge("RGB", bands)
    if mode == "RGBA":
        image.putalpha(255)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def mask_png(width: int, height: int, box: tuple[int, int, int, int], alpha: bool = True) -> bytes:
    """Opaque everywhere but ``box`` (fully transparent): the area to edit."""
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), box)
    out = io.BytesIO()
    (mask if alpha else mask.convert("RGB")).save(out, "PNG")
    return out.getvalue()


def padded_png(data: bytes, total: int) -> bytes:
    """A valid PNG of exactly ``total`` bytes: a private ancillary chunk before IEND."""
    iend = data.rindex(b"IEND") - 4
    filler = total - len(data) - 12
    chunk = struct.pack(">I", filler) + b"prVt" + bytes(filler)
    chunk += struct.pack(">I", zlib.crc32(b"prVt" + bytes(filler)))
    return data[:iend] + chunk + data[iend:]


def sha16(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def expected_region(mask: bytes, size: tuple[int, int]) -> tuple[Image.Image, list[int] | None]:
    """The edit area of a mask in output coordinates (its alpha-0 pixels), and its box."""
    alpha = decode(mask).convert("RGBA").getchannel("A").resize(size, Image.Resampling.NEAREST)
    area = alpha.point(lambda a: 255 if a == 0 else 0)
    box = area.getbbox()
    return area, list(box) if box else None


def assert_edit(
    output: bytes, inputs: list[bytes], mask: bytes | None, size: tuple[int, int]
) -> dict[str, Any]:
    """An honest edit: at ``size``; the stamp names every input and the mask by digest and the
    mask's region; outside that region and the marks, the pixels are the first input's resized;
    inside, they changed; one mark per input."""
    image = decode(output).convert("RGBA")
    assert image.size == size
    stamp = read_stamp(output)
    assert stamp is not None
    assert stamp["inputs"] == len(inputs) == len(stamp["marks"])
    assert stamp["images"] == [sha16(data) for data in inputs]
    assert stamp["mask"] == (sha16(mask) if mask is not None else None)
    if mask is not None:
        area, box = expected_region(mask, size)
    else:
        area, box = Image.new("L", size, 255), [0, 0, *size]
    assert stamp["region"] == box
    keep = ImageChops.invert(area)
    for mark in stamp["marks"]:
        keep.paste(0, tuple(mark))
    resized = decode(inputs[0]).convert("RGBA").resize(size, Image.Resampling.BICUBIC)
    difference = ImageChops.difference(image, resized).convert("L")
    outside = ImageChops.multiply(difference, keep)
    assert outside.getbbox() is None, "pixels outside the mask changed"
    inside = ImageChops.multiply(difference, area)
    assert inside.getbbox() is not None, "nothing inside the mask changed"
    for digest, mark in zip(stamp["images"], stamp["marks"], strict=True):
        colour = image.getpixel((mark[0], mark[1]))
        assert colour[:3] == tuple(bytes.fromhex(digest[:6]))
    return stamp


# --- the SDK against the embedded server ------------------------------------------------------


@pytest.fixture(scope="module")
def client(reference_server) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=reference_server.base_url, api_key=reference_server.api_key, max_retries=0
    )


@pytest.mark.parametrize("model", GPT_EDIT_MODELS)
def test_sdk_edit_one_image(client: openai.OpenAI, model: str) -> None:
    image = picture(96, 64)
    result = client.images.edit(
        model=model, image=("in.png", image, "image/png"), prompt="a red door", size="1536x1024"
    )
    assert len(result.data) == 1 and result.data[0].url is None
    assert_edit(base64.b64decode(result.data[0].b64_json), [image], None, (1536, 1024))
    assert (result.size, result.output_format) == ("1536x1024", "png")
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens


def test_sdk_edit_several_images_with_a_mask(client: openai.OpenAI) -> None:
    images = [picture(64, 64, seed) for seed in (0, 80, 160)]
    mask = mask_png(64, 64, (8, 16, 40, 56))
    result = client.images.edit(
        model="gpt-image-1",
        image=[(f"in{k}.png", data, "image/png") for k, data in enumerate(images)],
        mask=("mask.png", mask, "image/png"),
        prompt="a blue window",
        n=2,
    )
    assert len(result.data) == 2
    for item in result.data:
        stamp = assert_edit(base64.b64decode(item.b64_json), images, mask, (1024, 1024))
        assert stamp["region"] == [128, 256, 640, 896]


def test_the_sdk_sends_several_images_as_image_brackets() -> None:
    """What the quirks about ``image[]`` rest on: the SDK's list form is the bracket form."""
    seen: list[bytes] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        return httpx.Response(500)

    transport = httpx.MockTransport(record)
    sdk = openai.OpenAI(
        base_url="http://sdk.invalid/v1",
        api_key=KEY,
        max_retries=0,
        http_client=httpx.Client(transport=transport),
    )
    with pytest.raises(openai.InternalServerError):
        sdk.images.edit(model="gpt-image-1", image=[("a.png", b"a", "image/png")] * 2, prompt="x")
    assert seen[0].count(b'name="image[]"') == 2


@pytest.mark.parametrize("output_format", ["jpeg", "webp"])
def test_sdk_edit_in_other_formats_carries_the_stamp_in_exif(
    client: openai.OpenAI, output_format: str
) -> None:
    image = picture(32, 32)
    mask = mask_png(32, 32, (0, 0, 16, 16))
    result = client.images.edit(
        model="gpt-image-1.5",
        image=("in.png", image, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="x",
        output_format=output_format,
    )
    data = base64.b64decode(result.data[0].b64_json)
    assert decode(data).format == output_format.upper()
    stamp = read_stamp(data)
    assert stamp is not None and stamp["mask"] == sha16(mask)
    assert stamp["region"] == [0, 0, 512, 512]


def test_sdk_edit_streamed(client: openai.OpenAI) -> None:
    image = picture(48, 48)
    mask = mask_png(48, 48, (0, 24, 48, 48))
    stream = client.images.edit(
        model="gpt-image-1",
        image=("in.png", image, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="x",
        stream=True,
        partial_images=2,
        size="1024x1536",
    )
    events = list(stream)
    assert [e.type for e in events] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    assert events[-1].usage.total_tokens > 0
    assert_edit(base64.b64decode(events[-1].b64_json), [image], mask, (1024, 1536))


def test_sdk_edit_dall_e_2_url_and_b64(client: openai.OpenAI) -> None:
    image = picture(64, 64, mode="RGBA")
    mask = mask_png(64, 64, (32, 32, 64, 64))
    by_url = client.images.edit(
        model="dall-e-2",
        image=("in.png", image, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="x",
        size="256x256",
        n=2,
    )
    assert len(by_url.data) == 2 and by_url.data[0].b64_json is None
    fetched = httpx.get(by_url.data[0].url).content
    assert_edit(fetched, [image], mask, (256, 256))
    as_b64 = client.images.edit(
        model="dall-e-2",
        image=("in.png", image, "image/png"),
        prompt="x",
        size="512x512",
        response_format="b64_json",
    )
    assert_edit(base64.b64decode(as_b64.data[0].b64_json), [image], None, (512, 512))


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_sdk_create_variation(client: openai.OpenAI) -> None:
    image = picture(64, 64)
    result = client.images.create_variation(
        image=("in.png", image, "image/png"), n=3, size="256x256", response_format="b64_json"
    )
    assert len(result.data) == 3
    outputs = [base64.b64decode(item.b64_json) for item in result.data]
    source = decode(image).convert("RGB").resize((256, 256), Image.Resampling.BICUBIC)
    for index, data in enumerate(outputs):
        variant = decode(data)
        assert variant.size == (256, 256)
        assert read_stamp(data) == {
            "endpoint": "variations",
            "inputs": 1,
            "images": [sha16(image)],
            "mask": None,
            "region": [0, 0, 256, 256],
            "size": [256, 256],
            "marks": [],
            "variant": index,
        }
        assert ImageChops.difference(variant.convert("RGB"), source).getbbox() is not None
    assert outputs[0] != outputs[1]
    by_url = client.images.create_variation(image=("in.png", image, "image/png"))
    assert decode(httpx.get(by_url.data[0].url).content).size == (1024, 1024)


# --- refusals, against a hand-written table ------------------------------------------------------

PNG64 = picture(64, 64)


def _png(name: str = "image", data: bytes = PNG64) -> tuple[str, Any]:
    return (name, ("in.png", data, "image/png"))


#: (case, endpoint, text fields, file parts, the param and error code a correct server answers).
REFUSALS: list[tuple[str, str, dict[str, str], list[tuple[str, Any]], str | None, str | None]] = [
    ("no image", "edits", {"prompt": "x"}, [], "image", "missing_required_parameter"),
    ("no prompt", "edits", {}, [_png()], "prompt", "missing_required_parameter"),
    (
        "image as a text part",
        "edits",
        {"prompt": "x", "image": "<_io.BufferedReader name='a.png'>"},
        [],
        "image",
        "invalid_type",
    ),
    (
        "image[] as a text part",
        "edits",
        {"prompt": "x", "image[]": "[object Object]"},
        [],
        "image",
        "invalid_type",
    ),
    (
        "mask as a text part",
        "edits",
        {"prompt": "x", "mask": "m.png"},
        [_png()],
        "mask",
        "invalid_type",
    ),
    (
        "image no image",
        "edits",
        {"prompt": "x"},
        [_png(data=b"GIF? no, text")],
        "image",
        "invalid_value",
    ),
    (
        "gif image",
        "edits",
        {"prompt": "x"},
        [_png(data=picture(64, 64, fmt="GIF"))],
        "image",
        "invalid_value",
    ),
    (
        "jpeg image for dall-e-2",
        "edits",
        {"prompt": "x", "model": "dall-e-2"},
        [_png(data=picture(64, 64, fmt="JPEG"))],
        "image",
        "invalid_value",
    ),
    (
        "non-square image for dall-e-2",
        "edits",
        {"prompt": "x", "model": "dall-e-2"},
        [_png(data=picture(64, 48))],
        "image",
        "invalid_value",
    ),
    (
        "two images for dall-e-2",
        "edits",
        {"prompt": "x", "model": "dall-e-2"},
        [_png("image[]"), _png("image[]")],
        "image",
        "invalid_value",
    ),
    (
        "17 images",
        "edits",
        {"prompt": "x", "model": "gpt-image-1"},
        [_png("image[]")] * 17,
        "image",
        "invalid_value",
    ),
    (
        "a 4 MiB image for dall-e-2",
        "edits",
        {"prompt": "x", "model": "dall-e-2"},
        [_png(data=padded_png(PNG64, 4 * 1024 * 1024))],
        "image",
        "invalid_value",
    ),
    (
        "mask of other dimensions",
        "edits",
        {"prompt": "x"},
        [_png(), _png("mask", mask_png(32, 32, (0, 0, 8, 8)))],
        "mask",
        "invalid_value",
    ),
    (
        "mask without alpha",
        "edits",
        {"prompt": "x"},
        [_png(), _png("mask", mask_png(64, 64, (0, 0, 8, 8), alpha=False))],
        "mask",
        "invalid_value",
    ),
    (
        "jpeg mask",
        "edits",
        {"prompt": "x"},
        [_png(), ("mask", ("m.jpg", picture(64, 64, fmt="JPEG"), "image/jpeg"))],
        "mask",
        "invalid_value",
    ),
    (
        "a 4 MiB mask",
        "edits",
        {"prompt": "x"},
        [_png(), _png("mask", padded_png(mask_png(64, 64, (0, 0, 8, 8)), 4 * 1024 * 1024))],
        "mask",
        "invalid_value",
    ),
    ("n=0", "edits", {"prompt": "x", "n": "0"}, [_png()], "n", "integer_below_min_value"),
    ("n=11", "edits", {"prompt": "x", "n": "11"}, [_png()], "n", "integer_above_max_value"),
    ("n=two", "edits", {"prompt": "x", "n": "two"}, [_png()], "n", "invalid_type"),
    ("n=1.5", "edits", {"prompt": "x", "n": "1.5"}, [_png()], "n", "invalid_type"),
    ("size big", "edits", {"prompt": "x", "size": "big"}, [_png()], "size", "invalid_value"),
    (
        "dall-e-3 size on dall-e-2",
        "edits",
        {"prompt": "x", "model": "dall-e-2", "size": "1024x1792"},
        [_png()],
        "size",
        "invalid_value",
    ),
    (
        "custom size not divisible by 16",
        "edits",
        {"prompt": "x", "model": "gpt-image-2", "size": "1000x1000"},
        [_png()],
        "size",
        "invalid_value",
    ),
    (
        "dall-e-2 prompt of 1001 characters",
        "edits",
        {"prompt": "x" * 1001, "model": "dall-e-2"},
        [_png()],
        "prompt",
        "string_above_max_length",
    ),
    ("empty prompt", "edits", {"prompt": ""}, [_png()], "prompt", "empty_string"),
    (
        "quality ultra",
        "edits",
        {"prompt": "x", "quality": "ultra"},
        [_png()],
        "quality",
        "invalid_value",
    ),
    (
        "output_format gif",
        "edits",
        {"prompt": "x", "output_format": "gif"},
        [_png()],
        "output_format",
        "invalid_value",
    ),
    (
        "transparent jpeg",
        "edits",
        {"prompt": "x", "background": "transparent", "output_format": "jpeg"},
        [_png()],
        "background",
        "invalid_value",
    ),
    (
        "input_fidelity max",
        "edits",
        {"prompt": "x", "input_fidelity": "max"},
        [_png()],
        "input_fidelity",
        "invalid_value",
    ),
    ("stream yes", "edits", {"prompt": "x", "stream": "yes"}, [_png()], "stream", "invalid_type"),
    (
        "partial_images 4",
        "edits",
        {"prompt": "x", "stream": "true", "partial_images": "4"},
        [_png()],
        "partial_images",
        "invalid_value",
    ),
    (
        "unknown model",
        "edits",
        {"prompt": "x", "model": "nope-1"},
        [_png()],
        "model",
        "model_not_found",
    ),
    (
        "unknown field",
        "edits",
        {"prompt": "x", "colour": "red"},
        [_png()],
        "colour",
        "unknown_parameter",
    ),
    ("no image", "variations", {"n": "1"}, [], "image", "missing_required_parameter"),
    ("image as text", "variations", {"image": "in.png"}, [], "image", "invalid_type"),
    (
        "non-square",
        "variations",
        {},
        [_png(data=picture(64, 32))],
        "image",
        "invalid_value",
    ),
    ("jpeg", "variations", {}, [_png(data=picture(64, 64, fmt="JPEG"))], "image", "invalid_value"),
    (
        "4 MiB",
        "variations",
        {},
        [_png(data=padded_png(PNG64, 4 * 1024 * 1024))],
        "image",
        "invalid_value",
    ),
    ("size 1536x1024", "variations", {"size": "1536x1024"}, [_png()], "size", "invalid_value"),
    ("n=0", "variations", {"n": "0"}, [_png()], "n", "integer_below_min_value"),
    (
        "response_format png",
        "variations",
        {"response_format": "png"},
        [_png()],
        "response_format",
        "invalid_value",
    ),
    ("gpt model", "variations", {"model": "gpt-image-1"}, [_png()], "model", "model_not_found"),
]


@pytest.fixture(scope="module")
def app_client() -> Iterator[TestClient]:
    with TestClient(create_app(ServerConfig(api_key=KEY))) as test_client:
        yield test_client


def post(
    test_client: TestClient,
    endpoint: str,
    data: dict[str, str],
    files: list[tuple[str, Any]],
    key: str | None = KEY,
) -> httpx.Response:
    """A multipart form (text fields as parts without a file name, so that a form without
    any file is multipart too)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    parts = [(name, (None, value)) for name, value in data.items()] + files
    return test_client.post(f"/v1/images/{endpoint}", headers=headers, files=parts)


@pytest.mark.parametrize(
    ("case", "endpoint", "data", "files", "param", "code"),
    REFUSALS,
    ids=[f"{row[1]}:{row[0]}" for row in REFUSALS],
)
def test_an_invalid_form_is_refused_naming_its_field(
    app_client: TestClient, case, endpoint, data, files, param, code
) -> None:
    response = post(app_client, endpoint, data, files)
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error
    assert error["message"] and error["type"] == "invalid_request_error"


def test_a_body_that_is_not_multipart_is_refused(app_client: TestClient) -> None:
    for endpoint in ("edits", "variations"):
        response = app_client.post(
            f"/v1/images/{endpoint}",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"prompt": "x", "image": "a.png"},
        )
        assert response.status_code == 400 and response.json()["error"]["message"]
        broken = app_client.post(
            f"/v1/images/{endpoint}",
            headers={
                "Authorization": f"Bearer {KEY}",
                "Content-Type": "multipart/form-data; boundary=zzz",
            },
            content=b'--zzz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx',
        )
        assert broken.status_code == 400 and "error" in broken.json()


def test_a_body_beyond_the_cap_is_refused_while_it_streams(app_client, monkeypatch) -> None:
    monkeypatch.setattr("conformance.server.edits.EDIT_BODY_CAP", 4096)
    big = padded_png(PNG64, 16384)
    declared = post(app_client, "edits", {"prompt": "x"}, [_png(data=big)])
    assert declared.status_code == 400
    assert declared.json()["error"]["param"] == "image"
    request = app_client.build_request(
        "POST",
        "/v1/images/edits",
        headers={"Authorization": f"Bearer {KEY}"},
        files=[("prompt", (None, "x")), _png(data=big)],
    )
    body = request.read()
    chunked = app_client.post(
        "/v1/images/edits",
        headers={
            "Authorization": f"Bearer {KEY}",
            "Content-Type": request.headers["content-type"],
        },
        content=iter([body[:3000], body[3000:]]),
    )
    assert chunked.status_code == 400
    assert "larger than this server reads" in chunked.json()["error"]["message"]


def test_both_forms_of_image_are_taken_together(app_client: TestClient) -> None:
    """``image`` and ``image[]`` in one form: a SHOULD the spec leaves open; the server takes
    both, in order."""
    first, second = picture(64, 64, 1), picture(64, 64, 2)
    response = post(
        app_client, "edits", {"prompt": "x"}, [_png("image", first), _png("image[]", second)]
    )
    assert response.status_code == 200, response.text[:300]
    stamp = read_stamp(base64.b64decode(response.json()["data"][0]["b64_json"]))
    assert stamp["images"] == [sha16(first), sha16(second)]


@pytest.mark.parametrize("endpoint", ["edits", "variations"])
def test_auth_as_for_generations(app_client: TestClient, endpoint: str) -> None:
    data = {"prompt": "x"} if endpoint == "edits" else {}
    for key in (None, "sk-wrong"):
        response = post(app_client, endpoint, data, [_png()], key=key)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_profiles_auth_style_holds_for_edits() -> None:
    config = ServerConfig(api_key=KEY, auth=AuthStyle(style="header", name="api-key"))
    with TestClient(create_app(config)) as test_client:
        files = [_png()]
        bearer = test_client.post(
            "/v1/images/edits",
            headers={"Authorization": f"Bearer {KEY}"},
            data={"prompt": "x"},
            files=files,
        )
        assert bearer.status_code == 401
        styled = test_client.post(
            "/v1/images/edits", headers={"api-key": KEY}, data={"prompt": "x"}, files=files
        )
        assert styled.status_code == 200, styled.text[:300]


def test_lenient_lets_a_should_break_through(app_client: TestClient) -> None:
    mask = _png("mask", mask_png(64, 64, (0, 0, 8, 8), alpha=False))
    with TestClient(create_app(ServerConfig(api_key=KEY, lenient=True))) as lenient:
        response = post(lenient, "edits", {"prompt": "", "colour": "red"}, [_png(), mask])
        assert response.status_code == 200, response.text[:300]
        still = post(lenient, "edits", {"prompt": "x", "n": "0"}, [_png()])
        assert still.status_code == 400


# --- quirks -----------------------------------------------------------------------------------

EDIT_QUIRKS = sorted(name for name, q in SERVER_QUIRKS.items() if q.endpoint != "generations")


def test_edit_quirks_are_declared_for_their_endpoint_and_judged() -> None:
    assert set(EDIT_QUIRKS) == {
        "edits-brackets-refused",
        "edits-brackets-stringified",
        "edits-mask-ignored",
        "edits-mask-counted-twice",
        "edits-first-image-only",
        "edits-500-with-mask",
        "variations-wrong-size",
    }
    assert set(EDIT_QUIRKS) <= set(QUIRKS)  # their endpoints are judged (test_edit_judging.py)
    for name in EDIT_QUIRKS:
        quirk = SERVER_QUIRKS[name]
        rules = load_contract().endpoint(quirk.endpoint).all_rules
        assert quirk.breaks and all(rule in rules for rule in quirk.breaks)
        assert any(rules[rule].is_must for rule in quirk.breaks)


def quirky(*names: str) -> TestClient:
    return TestClient(create_app(ServerConfig(api_key=KEY, quirks=parse_quirks(names))))


SEVERAL = [picture(64, 64, seed) for seed in (10, 90)]
MASK = mask_png(64, 64, (16, 16, 48, 48))


def several_with_mask(test_client: TestClient) -> httpx.Response:
    files = [_png("image[]", data) for data in SEVERAL] + [_png("mask", MASK)]
    return post(test_client, "edits", {"prompt": "x", "model": "gpt-image-1"}, files)


def stamp_of(response: httpx.Response) -> tuple[bytes, dict[str, Any]]:
    assert response.status_code == 200, response.text[:300]
    data = base64.b64decode(response.json()["data"][0]["b64_json"])
    stamp = read_stamp(data)
    assert stamp is not None
    return data, stamp


def test_the_correct_server_takes_what_the_quirks_bend(app_client: TestClient) -> None:
    data, _ = stamp_of(several_with_mask(app_client))
    assert_edit(data, SEVERAL, MASK, (1024, 1024))


@pytest.mark.parametrize("name", ["edits-brackets-refused", "edits-brackets-stringified"])
def test_bracket_quirks_refuse_the_sdks_list_form(name: str) -> None:
    with quirky(name) as test_client:
        response = several_with_mask(test_client)
        assert response.status_code == 400
        error = response.json()["error"]
        if name == "edits-brackets-refused":
            assert (error["param"], error["code"]) == ("image[]", "unknown_parameter")
        else:
            assert (error["param"], error["code"]) == ("image", "invalid_type")
            assert "expected a file, but got a string" in error["message"]
        # The plain form still works.
        single = post(test_client, "edits", {"prompt": "x"}, [_png("image", SEVERAL[0])])
        assert single.status_code == 200


def test_mask_ignored_edits_everywhere() -> None:
    with quirky("edits-mask-ignored") as test_client:
        data, stamp = stamp_of(several_with_mask(test_client))
    assert stamp["mask"] is None and stamp["region"] == [0, 0, 1024, 1024]
    with pytest.raises(AssertionError):
        assert_edit(data, SEVERAL, MASK, (1024, 1024))
    assert_edit(data, SEVERAL, None, (1024, 1024))  # what it did: an edit without the mask


def test_mask_counted_twice_marks_one_input_too_many() -> None:
    with quirky("edits-mask-counted-twice") as test_client:
        _, stamp = stamp_of(several_with_mask(test_client))
    assert stamp["inputs"] == 3 and len(stamp["marks"]) == 3
    assert stamp["images"] == [*(sha16(d) for d in SEVERAL), sha16(MASK)]


def test_first_image_only_marks_one_input() -> None:
    with quirky("edits-first-image-only") as test_client:
        data, stamp = stamp_of(several_with_mask(test_client))
    assert stamp["inputs"] == 1 and stamp["images"] == [sha16(SEVERAL[0])]
    assert_edit(data, SEVERAL[:1], MASK, (1024, 1024))


def test_500_with_mask() -> None:
    with quirky("edits-500-with-mask") as test_client:
        assert several_with_mask(test_client).status_code == 500
        plain = post(test_client, "edits", {"prompt": "x"}, [_png("image", SEVERAL[0])])
        assert plain.status_code == 200


def test_variations_wrong_size(app_client: TestClient) -> None:
    asked = {"size": "512x512", "response_format": "b64_json"}
    right, _ = stamp_of(post(app_client, "variations", asked, [_png()]))
    assert decode(right).size == (512, 512)
    with quirky("variations-wrong-size") as test_client:
        wrong, stamp = stamp_of(post(test_client, "variations", asked, [_png()]))
    assert decode(wrong).size == (256, 256) and stamp["size"] == [256, 256]
