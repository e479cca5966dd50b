"""The official ``openai`` SDK, pointed at the reference server, works for every model."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from PIL import Image

from conformance.contract.loader import load_contract
from conformance.contract.profiles import load_profile

MODELS = load_profile("openai").models
GPT = [name for name in MODELS if load_contract().models[name].is_gpt]
DALLE = [name for name in MODELS if name not in GPT]


@pytest.fixture(scope="module")
def client(reference_server) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=reference_server.base_url, api_key=reference_server.api_key, max_retries=0
    )


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("model", list(MODELS))
def test_b64(client: openai.OpenAI, model: str) -> None:
    extra = {"response_format": "b64_json"} if model in DALLE else {"output_format": "webp"}
    result = client.images.generate(model=model, prompt="a lighthouse at dusk", n=1, **extra)
    assert isinstance(result.created, int) and len(result.data) == 1
    image = decode(base64.b64decode(result.data[0].b64_json))
    assert image.size == (1024, 1024)
    assert image.format == ("PNG" if model in DALLE else "WEBP")
    if model in GPT:
        assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens
        assert (result.size, result.quality, result.background) == ("1024x1024", "medium", "opaque")
    if model == "dall-e-3":
        assert result.data[0].revised_prompt


@pytest.mark.parametrize("model", DALLE)
def test_url(client: openai.OpenAI, model: str) -> None:
    result = client.images.generate(
        model=model,
        prompt="a lighthouse at dusk",
        size="1024x1792" if model == "dall-e-3" else "512x512",
    )
    url = result.data[0].url
    assert url and result.data[0].b64_json is None
    image = decode(httpx.get(url).content)  # no key needed
    assert image.size == ((1024, 1792) if model == "dall-e-3" else (512, 512))


@pytest.mark.parametrize("model", GPT)
def test_stream(client: openai.OpenAI, model: str) -> None:
    stream = client.images.generate(
        model=model,
        prompt="a lighthouse at dusk",
        stream=True,
        partial_images=2,
        size="1536x1024",
        background="transparent",
    )
    events = list(stream)
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + [
        "image_generation.completed"
    ]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    final = decode(base64.b64decode(events[-1].b64_json))
    assert final.size == (1536, 1024) and final.mode == "RGBA"
    assert events[-1].usage.total_tokens > 0


def test_errors_map_to_the_sdk_exceptions(client: openai.OpenAI, reference_server) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.images.generate(model="dall-e-3", prompt="a lighthouse", n=2)
    assert bad.value.param == "n" and bad.value.code == "integer_above_max_value"
    wrong = openai.OpenAI(base_url=reference_server.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.images.generate(model="dall-e-2", prompt="a lighthouse")
