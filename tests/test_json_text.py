"""Reading a JSON body's text without parsing it (``engine/json_text``)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.engine.json_text import WALKED_STRINGS, closing_quote, container_bound


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
