"""Reading a JSON body's text without parsing it (``engine/json_text``)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.engine.json_text import (
    WALKED_STRINGS,
    closing_quote,
    container_bound,
    loads_lifting_base64,
)


def containers(value: Any) -> int:
    """The objects and arrays a parsed value holds."""
    if isinstance(value, dict):
        return 1 + sum(containers(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(containers(v) for v in value)
    return 0


TEXT = st.text(alphabet=st.sampled_from('ab{}[]"\\/\n\u00e9'), max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(JSON, st.booleans())
def test_the_bound_is_exact_when_every_string_is_walked(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    if body.count(b'"') // 2 <= WALKED_STRINGS:
        assert container_bound(body) == containers(value)


def test_an_answer_with_a_long_image() -> None:
    image = "QUJD" * 500_000
    body = json.dumps({"created": 1, "data": [{"b64_json": image}], "usage": {"total": 3}})
    assert container_bound(body.encode()) == 4


def test_brackets_inside_strings_do_not_count_but_escaped_quotes_do_not_end_them() -> None:
    body = rb'{"a": "x\"{[{[\\", "b": [{}]}'
    assert json.loads(body) == {"a": 'x"{[{[\\', "b": [{}]}
    assert container_bound(body) == 3


def test_past_the_walked_strings_everything_counts() -> None:
    strings = [f"{{[{i}" for i in range(WALKED_STRINGS + 10)]
    body = json.dumps(strings).encode()
    bound = container_bound(body)
    assert bound > containers(strings) == 1
    assert bound <= 1 + 2 * len(strings)


def test_an_unterminated_string_counts_the_rest_whole() -> None:
    body = b'[[], "never closed [[[['
    assert container_bound(body) == 6


def test_many_small_containers_are_counted() -> None:
    body = b"[" + b",".join([b"{}"] * 200_000) + b"]"
    assert container_bound(body) == 200_001


def test_closing_quote_skips_escaped_quotes_and_gives_up_when_there_are_too_many() -> None:
    body = b'"a\\"b\\\\"c'
    assert closing_quote(body, 1) == body.rindex(b'"')
    assert closing_quote(b'"' + b'\\"' * 20 + b'"', 1, escaped=5) == -1
    assert closing_quote(b'"abc', 1) == -1


def restored(value: Any, images: dict[str, bytes]) -> Any:
    """The value with each token replaced by its image in base64 again."""
    if isinstance(value, dict):
        return {k: restored(v, images) for k, v in value.items()}
    if isinstance(value, list):
        return [restored(v, images) for v in value]
    if isinstance(value, str) and value in images:
        return base64.b64encode(images[value]).decode()
    return value


LONG = st.sampled_from(
    [
        base64.b64encode(bytes(range(256)) * 40).decode(),  # base64: lifted
        base64.b64encode(b"x" * 12_001).decode(),  # padded
        "QUJD" * 4000 + "!",  # not base64: parsed as usual
        "AB/C" * 4096,
    ]
)
DOCUMENT = st.recursive(
    st.none() | st.integers() | TEXT | LONG,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(DOCUMENT, st.booleans())
def test_lifting_gives_what_json_loads_gives(value: Any, escape_slashes: bool) -> None:
    text = json.dumps(value)
    if escape_slashes:  # what PHP's encoder writes: no longer base64 as it stands
        text = text.replace("/", "\\/")
    body = text.encode()
    parsed, images = loads_lifting_base64(body)
    assert restored(parsed, images) == json.loads(body)
    if escape_slashes:
        assert all(b"/" not in base64.b64encode(i) for i in images.values())


def test_an_answer_image_is_decoded_from_the_body_and_its_text_never_made() -> None:
    image = bytes(range(256)) * 100
    body = json.dumps({"data": [{"b64_json": base64.b64encode(image).decode()}]}).encode()
    parsed, images = loads_lifting_base64(body)
    token = parsed["data"][0]["b64_json"]
    assert images == {token: image}
    assert len(token) < 64 and token.startswith("\x00")


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [{"b64_json": "' + b"QUJD" * 5000 + b'"}]',  # never closed
        b'{"data": [{"b64_json": "' + b"QUJD" * 5000 + b'"} x]}',
        b'{"a": "\x01' + b"QUJD" * 5000 + b'"}',  # a control character: not JSON
    ],
)
def test_a_body_json_refuses_is_refused_the_same(body: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(body)
    with pytest.raises(ValueError):
        loads_lifting_base64(body)


def test_a_server_cannot_write_a_token() -> None:
    image = base64.b64encode(b"\x89PNG" * 5000).decode()
    _parsed, images = loads_lifting_base64(json.dumps([image]).encode())
    (token,) = images
    forged = json.dumps([token, image]).encode()
    again, fresh = loads_lifting_base64(forged)
    assert again[0] == token and again[0] not in fresh  # a string of its own, not an image
