"""One redactor for every writer: secrets found by value in every form a server can give them,
and server text made safe for every report format."""

from __future__ import annotations

import base64
import json
import random
import re

import pytest

from conformance import redact
from conformance.engine.transport import TargetClient, TransportConfig
from conformance.redact import (
    REDACTED,
    Redactor,
    map_strings,
    printable,
    printable_document,
    redact_document,
    redact_text,
    register_secrets,
    safe_document,
    safe_text,
)

SECRET = "Tq7_vK2-mXpL9zRw4NcB8yHd3JfG6sQa0eU1oIi"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([SECRET])


@pytest.mark.parametrize("shift", [0, 1, 2])
@pytest.mark.parametrize("urlsafe", [False, True])
def test_base64_at_every_alignment_is_redacted(redactor, shift, urlsafe):
    rng = random.Random(shift)
    blob = rng.randbytes(9 + shift) + SECRET.encode() + rng.randbytes(7)
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(blob)
    assert REDACTED.encode() in redactor.data(b'{"b64_json": "' + encoded + b'"}')
    assert REDACTED in redactor.text(encoded.decode())


def test_an_escaped_literal_is_rewritten_and_the_rest_of_the_body_kept_byte_for_byte(redactor):
    escaped = "".join(f"\\u{ord(c):04x}" if i % 3 == 0 else c for i, c in enumerate(SECRET))
    body = b'{"a":  "keep \\u00e9",\n "message": "key ' + escaped.encode() + b' used"}'
    out = redactor.data(body)
    assert out.startswith(b'{"a":  "keep \\u00e9",\n "message": ')
    assert json.loads(out)["message"] == f"key {REDACTED} used"


def test_a_body_that_is_not_json_is_redacted_as_text(redactor):
    percent = "".join(f"%{b:02X}" for b in SECRET.encode())
    assert (
        redactor.data(f"GET /?k={percent} HTTP/1.1".encode())
        == f"GET /?k={REDACTED} HTTP/1.1".encode()
    )
    assert SECRET not in redactor.data(SECRET.upper().encode()).decode().upper()


def test_header_names_and_values_are_redacted_whatever_their_case(redactor):
    headers = redactor.headers({f"X-Echo-{SECRET}": SECRET.lower(), "Authorization": "Bearer x"})
    assert headers == {f"x-echo-{REDACTED}": REDACTED, "authorization": f"Bearer {REDACTED}"}


def test_text_that_reveals_nothing_is_left_as_it_is(redactor):
    for text in ("100% sure & \\n fine", "plain", "", "a\ud800b"):
        assert redactor.text(text) == text
    assert redactor.data(b"\x89PNG\r\n\x1a\n\\%&") == b"\x89PNG\r\n\x1a\n\\%&"


def test_a_redactor_takes_more_secrets_later():
    redactor = Redactor([SECRET])
    assert redactor.text("header-value-0123") == "header-value-0123"
    redactor.add("header-value-0123", None, "", "test")
    assert redactor.text("x header-value-0123 y test") == f"x {REDACTED} y test"
    assert redactor.secrets == {SECRET, "header-value-0123"}


def test_the_transport_registers_its_secrets_for_every_writer():
    credential = "Wv5-unusual-credential-value-93kd"
    config = TransportConfig(
        "http://127.0.0.1:9/v1", api_key=SECRET, extra_headers={"X-Api-Key": credential}
    )
    TargetClient(config)
    assert redact_text(f"{SECRET} and {credential}") == f"{REDACTED} and {REDACTED}"
    assert register_secrets() is register_secrets(None)


def test_safe_text_replaces_lone_surrogates_and_shows_control_characters():
    assert safe_text("a\ud800b\udfffc") == "a\ufffdb\ufffdc"
    assert safe_text("bell\x07 del\x7f nel\x85 \ufffe tab\tnl\n") == (
        "bell\\x07 del\\x7f nel\\x85 \\ufffe tab\tnl\n"
    )
    document = safe_document({"k\ud800": ["\x00", 1, None, {"x": "\udc80"}]})
    assert document == {"k\ufffd": ["\\x00", 1, None, {"x": "\ufffd"}]}
    json.dumps(document, ensure_ascii=False).encode("utf-8")  # encodable


def test_console_and_pytest_lines_go_through_the_redactor(capsys):
    from conformance.cli import main_entry
    from conformance.pytest_plugin import ImgconfFailure

    key = "Pk8-console-line-secret-5h2k9d"
    status = main_entry(["run", "--base-url", f"ftp://127.0.0.1/{key}", "--api-key", key])
    err = capsys.readouterr().err
    assert status == 2 and "--base-url" in err and key not in err and REDACTED in err
    failure = str(ImgconfFailure("rule.x", "m", [f"echoed {key.upper()} \ud800"]))
    assert key.upper() not in failure and "\ufffd" in failure


def test_a_reproducer_has_nothing_safe_text_must_change_so_it_stays_exact():
    from _report_fixtures import case

    from conformance.reports.reproducer import curl_command

    odd = "del\x7f nel\x85 lone\ud800 nonchar\ufffe nul\x00 " + "x" * 2000
    for body in ({"prompt": odd[:40]}, {"prompt": odd}):
        command = curl_command(case("c", body=body), "http://127.0.0.1:9/v1/images/generations")
        assert safe_text(command) == command
        command.encode("utf-8")


def test_a_big_escaped_literal_is_searched_in_windows_and_left_alone_when_clean(redactor):
    """A 6 MiB base64 image with JSON-escaped slashes: searched without decoding it whole, and
    the body handed back as it was; the same with the key JSON-escaped across a window's edge."""
    image = base64.b64encode(random.Random(5).randbytes(6 * 1024 * 1024)).replace(b"/", b"\\/")
    body = b'{"data": [{"b64_json": "' + image + b'\\u00e9"}]}'
    assert redactor.data(body) is body
    escaped = "".join(f"\\u{ord(c):04x}" for c in SECRET).encode()
    edge = 1024 * 1024 - 100
    hostile = body[:edge] + escaped + body[edge:]
    out = redactor.data(hostile)
    assert REDACTED.encode() in out and SECRET not in json.loads(out)["data"][0]["b64_json"]


def test_encodings_mixed_and_layered_reveal_nothing(redactor):
    """Random mixes of every disguise, percent inside percent included: whatever survives
    redaction reveals no secret once decoded any way."""
    import html
    from urllib.parse import unquote

    disguises = [
        "".join(f"%{ord(c):02x}" for c in SECRET),
        "".join(f"%25{ord(c):02x}" for c in SECRET),
        "".join(f"\\u{ord(c):04x}" for c in SECRET),
        "".join(f"&#{ord(c)};" for c in SECRET),
        SECRET.swapcase(),
        base64.b64encode(b"ab" + SECRET.encode()).decode(),
    ]
    noise = ["\\ud800", "%ff", "&amp;", '"', "\\\\", "%", "&", " "]
    rng = random.Random(8)
    for _ in range(300):
        text = "".join(rng.choice(disguises + noise) for _ in range(rng.randint(1, 10)))
        out = redactor.text(text)
        unescaped = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), out)
        for view in (out, unquote(unquote(out)), html.unescape(out), unescaped):
            assert SECRET.lower() not in view.lower()


def test_a_big_body_hiding_a_secret_outside_any_string_literal_is_withheld_whole(redactor):
    from conformance.redact import HIDDEN

    escaped = "".join(f"\\u{ord(c):04x}" for c in SECRET).encode()
    body = b"[" + b"1, " * 700_000 + escaped + b"]"  # 2 MiB: too big to be searched as text
    assert redactor.data(body) == HIDDEN.encode()
    clean = b"[" + b'"\\/", ' * 400_000 + b"1]"
    assert redactor.data(clean) is clean


# --- whole documents: searched as one text, redacted string by string only when needed ------


def _disguised_strings(count: int, seed: int) -> list[str]:
    """Strings mixing every disguise of SECRET with noise that may run into a neighbour: a
    trailing backslash, a cut percent-escape or entity, a lone surrogate."""
    disguises = [
        "".join(f"%{ord(c):02x}" for c in SECRET),
        "".join(f"\\u{ord(c):04x}" for c in SECRET),
        "".join(f"&#{ord(c)};" for c in SECRET),
        SECRET.swapcase(),
        base64.b64encode(b"ab" + SECRET.encode()).decode(),
        "sk-" + "a" * 20,
    ]
    noise = ["\\", "%4", "%", "&amp", "&#1", "\\u00", "\ud800", "\x07", "plain", " ", "\n"]
    rng = random.Random(seed)
    pool = noise * 6 + disguises
    return ["".join(rng.choice(pool) for _ in range(rng.randint(0, 4))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(6))
def test_a_document_is_redacted_and_made_safe_as_each_of_its_strings_would_be(seed):
    register_secrets(SECRET)
    texts = _disguised_strings(40, seed)
    document = {"cases": [{"note": t, t[:3]: [t, 1, None]} for t in texts], "n": 3}
    assert redact_document(document) == map_strings(document, redact_text)
    assert safe_document(document) == map_strings(document, safe_text)
    assert printable_document(document) == map_strings(document, printable)
    assert printable_document(document) == safe_document(redact_document(document))


def test_a_secret_in_one_string_of_thousands_is_found(monkeypatch):
    register_secrets(SECRET)
    hidden = "".join(f"%25{ord(c):02x}" for c in SECRET)  # percent-encoded twice
    document = {"cases": [{"note": f"case {i}", "excerpt": '{"a": "\\/x"}'} for i in range(5000)]}
    document["cases"][4321]["excerpt"] = json.dumps({"error": f"bad key {hidden}"})
    out = redact_document(document)
    assert REDACTED in out["cases"][4321]["excerpt"]
    assert out["cases"][:4321] == document["cases"][:4321]


def test_a_control_character_in_one_string_of_thousands_is_shown():
    document = {"cases": [{"note": f"case {i} \U0001f305", "x": [i]} for i in range(5000)]}
    document["cases"][4999]["note"] = "bell \x07"
    out = safe_document(document)
    assert out["cases"][4999]["note"] == "bell \\x07"
    assert out["cases"][:4999] == document["cases"][:4999]


def test_a_clean_document_is_searched_once_not_string_by_string(monkeypatch):
    register_secrets(SECRET)
    document = {"cases": [{"note": f"case {i} 50% &amp; \\u00e9", "x": [i]} for i in range(5000)]}
    calls = []
    monkeypatch.setattr(Redactor, "text", lambda self, value: calls.append(value) or value)
    assert redact_document(document) is document
    assert safe_document(document) is document
    assert printable_document(document) is document
    assert not calls
    document["cases"][7]["note"] = SECRET
    assert redact_document(document)["cases"][7]["note"] == SECRET  # text() is patched out...
    assert calls  # ...but was asked, string by string, once the joined search found the key


def test_only_the_group_a_search_cannot_vouch_for_is_asked_string_by_string(monkeypatch):
    # A text ending in a backslash cannot be joined with others for one search: its group of
    # strings is redacted one by one, the rest of the document is not, and nothing changed
    # means the document itself comes back (no copy of a large report).
    register_secrets(SECRET)
    document = {"cases": [{"note": f"case {i}", "x": [i]} for i in range(20000)]}
    document["cases"][123]["note"] = "a path C:\\"
    calls = []
    monkeypatch.setattr(Redactor, "text", lambda self, value: calls.append(value) or value)
    assert redact_document(document) is document
    assert printable_document(document) is document
    assert 0 < len(calls) <= 2 * redact._JOINED_STRINGS
    assert "a path C:\\" in calls


def test_a_case_folded_search_by_anchor_finds_what_lowering_the_whole_text_finds():
    from conformance.redact import _contains_folded, _contains_folded_windows

    rng = random.Random(5)
    letters = "ab-_.K\u212a\u0130i1 sSkKxX"  # a Kelvin sign lowers to k, U+0130 to two characters
    needles = ["sk-ab1", "ab_k.", "k-i", "aaaa", "1-1", "x.i"]
    for _ in range(3000):
        text = "".join(rng.choice(letters) for _ in range(rng.randint(0, 30)))
        for needle in needles:
            expected = _contains_folded_windows(text, (needle,))
            assert _contains_folded(text, (needle,)) is expected, (text, needle)
            raw = text.encode("utf-8")
            assert _contains_folded(raw, (needle.encode(),)) is _contains_folded_windows(
                raw, (needle.encode(),)
            )


def test_a_big_body_is_searched_for_a_key_without_a_copy_of_it():
    import tracemalloc

    key = "sk-imgconf-" + "0123456789abcdef" * 2
    redactor = Redactor([key])
    body = b'{"data": [{"b64_json": "' + base64.b64encode(random.randbytes(6_000_000)) + b'"}]}'
    tracemalloc.start()
    try:
        assert redactor.data(body) is body
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024
    hidden = body[:5000] + key.upper().encode() + body[5000:]
    assert REDACTED.encode() in redactor.data(hidden)


def test_a_short_text_is_redacted_once_per_set_of_secrets(monkeypatch):
    from conformance.redact import Redactor

    redactor = Redactor(["sk-first-secret-0001"])
    redacted: list[str] = []
    real = Redactor._text

    def spy(self, value, forms):
        redacted.append(value)
        return real(self, value, forms)

    monkeypatch.setattr(Redactor, "_text", spy)
    header = "Bearer sk-later-secret-0002 (sk-first-secret-0001)"
    assert redactor.text(header) == "Bearer sk-later-secret-0002 ([REDACTED])"
    assert redactor.text(header) == "Bearer sk-later-secret-0002 ([REDACTED])"
    assert redacted == [header]  # the second time from memory
    # A secret learnt later is never let through by what was remembered before it.
    redactor.add("sk-later-secret-0002")
    assert redactor.text(header) == "Bearer [REDACTED] ([REDACTED])"
    long = "x" * 300 + " sk-first-secret-0001"
    assert redactor.text(long) == redactor.text(long) == "x" * 300 + " [REDACTED]"
    assert redacted == [header, header, long, long]  # long texts are not remembered
