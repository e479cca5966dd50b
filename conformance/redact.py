"""Keeping secrets out of everything imgconf writes, by one mechanism.

A secret is a value the user gave imgconf to send (the API key, and any other credential
registered with :func:`register_secrets`). A hostile target may echo one back in any shape:
verbatim, in another case (a header *name* is lower-cased on the way in), JSON-escaped
(``\\u0067...``), percent-encoded, HTML-escaped, or base64-encoded inside a longer base64 string.
:class:`Redactor` knows the secrets themselves rather than what keys usually look like, so a
key of no known shape is found as surely as an ``sk-...`` one, and it looks through every one
of those encodings:

- verbatim, case-insensitively, in text and in raw bytes;
- base64 at the three alignments a secret can take inside a longer base64 string (standard and
  URL-safe alphabets): the characters that depend on the secret's bytes alone are stable
  whatever surrounds them, and they are what is searched;
- decoded: a body's JSON string literals are searched unescaped (a window at a time, at C
  speed), and one that hides a secret is re-serialised redacted, the rest of the body left
  byte for byte as it was, so a replay judges what the server sent; a body that hides one
  outside any literal is withheld whole. Every text written, and every body up to 1 MiB (all
  error bodies), is also searched through up to three layers of JSON, percent and HTML
  encoding; one still hiding a secret past them is withheld whole.

The transport redacts every :class:`~conformance.engine.results.Exchange` as it is built, and every
writer (reports, the HAR recording, console lines, the pytest plugin's output) passes what it
writes through the same process-wide redactor once more, so a secret that reaches a finding by
way of a decoding step the transport could not foresee is still caught on the way out.

Pattern scrubbing (:func:`scrub_text`) stays as a second net for key-like tokens imgconf was
never given (a proxy's upstream key echoed back), and :func:`safe_text` makes server text safe
for every report format (lone surrogates, control characters).
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .settings import REDACT_DECODE_DEPTH, REDACT_WHOLE_TEXT_LIMIT

__all__ = [
    "REDACTED",
    "SECRET_HEADERS",
    "Redactor",
    "map_strings",
    "printable",
    "printable_document",
    "redact_bytes",
    "redact_credential",
    "redact_document",
    "redact_headers",
    "redact_text",
    "redact_url",
    "redactor",
    "register_secrets",
    "safe_document",
    "safe_text",
    "scrub_bytes",
    "scrub_headers",
    "scrub_text",
    "strip_url",
]

REDACTED = "[REDACTED]"
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie"}
)
#: Shorter values are not hidden: a key that short guards nothing, and redacting it by value
#: would cut ordinary words out of every report ("test", "none").
MIN_SECRET = 8
#: A base64 form shorter than this could match by chance; such forms are not searched.
_MIN_B64_FORM = 8
#: OpenAI-style keys (sk-..., sk-proj-..., sess-...): long runs after a known prefix.
_KEY_LIKE = re.compile(r"\b(?:sk|sess|rk)-[A-Za-z0-9_\-]{16,}")
_KEY_LIKE_BYTES = re.compile(rb"\b(?:sk|sess|rk)-[A-Za-z0-9_\-]{16,}")
_SECRET_QUERY = re.compile(
    r"(?i)((?:api[_-]?key|key|token|access_token|sig|signature|secret|password)=)[^&#]*"
)
#: A JSON string literal holding at least one escape (possessive: linear on any input).
_ESCAPED_LITERAL = re.compile(rb'"[^"\\]*+(?:\\[\s\S][^"\\]*+)++"')
#: One token of any encoding a secret may hide under: a JSON/Python escape, a run of
#: percent-escapes (decoded together: UTF-8 spans several), an HTML character reference.
_TOKEN = re.compile(
    r"\\(?:u([0-9a-fA-F]{4})|([\s\S]))"
    r"|((?:%[0-9a-fA-F]{2})+)"
    r"|(&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?)"
)
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
#: How many times a text is decoded and redacted again; one that still hides a secret after
#: as many is replaced whole.
_DECODE_ROUNDS = 8
#: Texts up to this many characters are remembered once redacted, up to this many per set of
#: secrets (a few hundred kilobytes at most).
_SEEN_TEXT = 256
_SEEN_TEXTS = 2048
#: What stands for such a text (or a body hiding a secret where it cannot be cut out).
HIDDEN = "[REDACTED: text hiding a secret under layers of encoding]"
#: Case-insensitive searches lower-case this much at a time, not a whole 64 MiB body at once.
_WINDOW = 1024 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


def _b64_forms(secret: bytes) -> list[bytes]:
    """The base64 characters that encode ``secret`` alone, at each of its three alignments.

    Inside a longer base64 string the secret starts 0, 1 or 2 bytes into a 3-byte group; the
    characters that mix in a neighbouring byte differ from string to string, the others never.
    """
    forms: list[bytes] = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret)
        stable = encoded[(0, 2, 3)[shift] : ((shift + len(secret)) // 3) * 4]
        if len(stable) >= _MIN_B64_FORM:
            forms += [stable, stable.translate(_TO_URLSAFE)]
    return list(dict.fromkeys(forms))


def _decoded(text: str) -> str:
    """Text with one layer of every encoding decoded at once, leniently (never raises):
    JSON/Python escapes, percent-escapes, HTML character references."""

    def one(match: re.Match[str]) -> str:
        escape, char, percent, entity = match.groups()
        if escape is not None:
            return chr(int(escape, 16))
        if char is not None:
            return _SIMPLE_ESCAPES.get(char, char)
        if percent is not None:
            return unquote(percent, errors="replace")
        return html.unescape(entity)

    decoded = _TOKEN.sub(one, text)
    if not _SURROGATE.search(decoded):
        return decoded
    # Surrogate pairs written as two escapes become the character they encode.
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _may_be_encoded(text: str | bytes) -> bool:
    """Whether text holds anything :func:`_decoded` would decode."""
    marks = ("\\", "%", "&") if isinstance(text, str) else (b"\\", b"%", b"&")
    return any(mark in text for mark in marks)


#: Past this many places where a needle's anchor shows, the haystack is lowered instead.
_ANCHOR_TRIES = 1024


@functools.lru_cache(maxsize=256)
def _anchor(needle: str | bytes) -> int | None:
    """Where an ASCII needle has a character no other character lower-cases to (not a letter:
    ``-``, ``_``, ``.``, a digit), so that only the places where that character shows need a
    look; None when it has none. Anchors that are not digits come first: base64 has none."""
    text = needle.decode("latin-1") if isinstance(needle, bytes) else needle
    if not text.isascii():
        return None
    places = [i for i, c in enumerate(text) if not c.isalpha()]
    return min(places, key=lambda i: (text[i].isalnum(), i), default=None)


def _anchored(haystack: Any, needle: Any, at: int) -> bool | None:
    """Whether ``needle`` (lower-cased) is in ``haystack`` ignoring case, looking only where
    its anchor character (index ``at``) shows: no copy of the haystack. None when it shows too
    often for that to pay. (A slice is compared with ``startswith``: the one character whose
    lower case is longer, U+0130, can only end a match of an ASCII needle.)"""
    mark = needle[at : at + 1]
    size = len(needle)
    pos = haystack.find(mark)
    tries = 0
    while pos != -1:
        tries += 1
        if tries > _ANCHOR_TRIES:
            return None
        start = pos - at
        if start >= 0 and haystack[start : start + size].lower().startswith(needle):
            return True
        pos = haystack.find(mark, pos + 1)
    return False


def _contains_folded(haystack: Any, lowered_needles: tuple[Any, ...]) -> bool:
    """Whether a lower-cased needle is in ``haystack`` (str or bytes) ignoring case.

    A needle with an anchor (:func:`_anchor`) is looked for where the anchor shows; the others
    by lowering a window at a time, so that a huge body is not copied whole.
    """
    rest = []
    for needle in lowered_needles:
        at = _anchor(needle)
        found = None if at is None else _anchored(haystack, needle, at)
        if found:
            return True
        if found is None:
            rest.append(needle)
    return _contains_folded_windows(haystack, tuple(rest))


def _contains_folded_windows(haystack: Any, lowered_needles: tuple[Any, ...]) -> bool:
    """Whether a lower-cased needle is in ``haystack`` ignoring case, lowering a window at a
    time so that a huge body is not copied whole."""
    if not lowered_needles:
        return False
    overlap = max(len(n) for n in lowered_needles)
    for start in range(0, max(1, len(haystack)), _WINDOW):
        window = haystack[start : start + _WINDOW + overlap].lower()
        if any(n in window for n in lowered_needles):
            return True
    return False


@dataclass(frozen=True)
class _Forms:
    """Every form of a set of secrets that is searched, built once per set."""

    secrets: tuple[str, ...] = ()
    lowered: tuple[str, ...] = ()
    lowered_bytes: tuple[bytes, ...] = ()
    b64: tuple[bytes, ...] = ()
    b64_text: tuple[str, ...] = ()
    plain: re.Pattern[str] | None = None
    plain_bytes: re.Pattern[bytes] | None = None
    #: Short texts already redacted with these forms, and what they became (see
    #: :meth:`Redactor.text`); it goes with the forms when a secret is added.
    seen: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, secrets: Iterable[str]) -> _Forms:
        ordered = tuple(sorted(set(secrets), key=len, reverse=True))  # longest first
        b64 = tuple(form for s in ordered for form in _b64_forms(s.encode("utf-8")))
        alternatives = "|".join(re.escape(s) for s in ordered)
        return cls(
            secrets=ordered,
            lowered=tuple(s.lower() for s in ordered),
            lowered_bytes=tuple(s.lower().encode("utf-8") for s in ordered),
            b64=b64,
            b64_text=tuple(f.decode("ascii") for f in b64),
            plain=re.compile(alternatives, re.IGNORECASE),
            plain_bytes=re.compile(alternatives.encode("utf-8"), re.IGNORECASE),
        )

    def in_text(self, text: str) -> bool:
        return any(f in text for f in self.b64_text) or _contains_folded(text, self.lowered)

    def in_bytes(self, data: bytes) -> bool:
        return any(f in data for f in self.b64) or _contains_folded(data, self.lowered_bytes)

    def replace_text(self, text: str) -> str:
        assert self.plain is not None
        text = self.plain.sub(REDACTED, text)
        for form in self.b64_text:
            text = text.replace(form, REDACTED)
        return text

    def replace_bytes(self, data: bytes) -> bytes:
        assert self.plain_bytes is not None
        data = self.plain_bytes.sub(REDACTED.encode(), data)
        for form in self.b64:
            data = data.replace(form, REDACTED.encode())
        return data


class Redactor:
    """Replaces a set of secrets, in every form listed in the module's docstring, by ``[REDACTED]``.

    Secrets can be added at any time (:meth:`add`); the redactor is safe to share between
    threads (each call reads one consistent set of forms).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._forms = _Forms()
        self.add(*secrets)

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._forms.secrets)

    def add(self, *secrets: str | None) -> Redactor:
        """Know these secrets too (empty and very short values are ignored)."""
        new = {s for s in secrets if s and len(s) >= MIN_SECRET}
        with self._lock:
            if not new <= set(self._forms.secrets):
                self._forms = _Forms.of({*self._forms.secrets, *new})
        return self

    # --- redacting ------------------------------------------------------------------------

    def text(self, value: str) -> str:
        """The text with every secret gone, whatever form it took.

        When a secret shows only once the text is decoded, the decoded text is what is kept
        (redacted): the original encoding would give the secret back.
        """
        forms = self._forms
        if not forms.secrets:
            return value
        # Header names and values, URLs and error messages repeat from one exchange to the next:
        # a short text is redacted once per set of secrets.
        short = len(value) <= _SEEN_TEXT
        if short and (known := forms.seen.get(value)) is not None:
            return known
        redacted = self._text(value, forms)
        if short and len(forms.seen) < _SEEN_TEXTS:
            forms.seen[value] = redacted
        return redacted

    def _text(self, value: str, forms: _Forms) -> str:
        if forms.in_text(value):
            value = forms.replace_text(value)
        for _ in range(_DECODE_ROUNDS):
            revealing = self._revealing(value, forms)
            if revealing is None:
                return value
            value = forms.replace_text(revealing)
        return value if self._revealing(value, forms) is None else HIDDEN

    @staticmethod
    def _revealing(value: str, forms: _Forms) -> str | None:
        """``value`` decoded through up to ``REDACT_DECODE_DEPTH`` layers of encodings, as far as
        the first layer where a secret shows; None when none does."""
        for _ in range(REDACT_DECODE_DEPTH):
            if not _may_be_encoded(value):
                return None
            decoded = _decoded(value)
            if decoded == value:
                return None
            if forms.in_text(decoded):
                return decoded
            value = decoded
        return None

    def data(self, value: bytes) -> bytes:
        """Bytes (a body) with every secret gone.

        Escaped JSON string literals are decoded and, when they hold a secret, written back
        redacted; the other bytes are kept as they were. Bytes that still reveal a secret once
        decoded as text another way (a body that is not JSON) are kept as redacted text.
        """
        forms = self._forms
        if not forms.secrets or not value:
            return value
        if forms.in_bytes(value):
            value = forms.replace_bytes(value)
        if b"\\" in value and self._hidden_in_windows(memoryview(value)):
            value = self._redact_literals(value)
            if self._hidden_in_windows(memoryview(value)):
                # Escapes outside any well-formed string literal: nothing to rewrite in place.
                return HIDDEN.encode()
        if len(value) <= REDACT_WHOLE_TEXT_LIMIT and _may_be_encoded(value):
            text = value.decode("utf-8", "surrogateescape")
            if self._revealing(text, forms) is not None:
                redacted = self.text(text)
                try:
                    value = redacted.encode("utf-8", "surrogateescape")
                except UnicodeEncodeError:  # a lone surrogate a decoding step made
                    value = redacted.encode("utf-8", "replace")
        return value

    def _redact_literals(self, value: bytes) -> bytes:
        """The body with every escaped JSON string literal that hides a secret re-serialised
        redacted, the other bytes as they were (no copy of the body when nothing changes)."""
        view = memoryview(value)
        parts: list[bytes] = []
        last = 0
        for match in _ESCAPED_LITERAL.finditer(value):
            start, end = match.span()
            literal = view[start:end]
            if end - start > REDACT_WHOLE_TEXT_LIMIT and not self._hidden_in_windows(literal):
                continue  # a big literal (an image) is decoded whole only when it must be
            redacted = self._literal(bytes(literal))
            if redacted is not None:
                parts += [view[last:start].tobytes(), redacted]
                last = end
        if not parts:
            return value
        return b"".join([*parts, view[last:].tobytes()])

    def _literal(self, raw: bytes) -> bytes | None:
        """A JSON string literal re-serialised redacted, None when it hides no secret."""
        try:
            decoded = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            decoded = _decoded(raw[1:-1].decode("utf-8", "replace"))
        if not isinstance(decoded, str):
            return None
        redacted = self.text(decoded)
        return None if redacted == decoded else json.dumps(redacted).encode("ascii")

    def _hidden_in_windows(self, data: memoryview) -> bool:
        """Whether a secret shows in JSON-escaped bytes once unescaped, a window at a time (no
        string the size of a 64 MiB body; C-speed for the common case). One escaped character
        takes at most 12 bytes, so windows overlapping by 12 per character of the longest
        secret each see any secret whole."""
        forms = self._forms
        overlap = 12 * max(map(len, forms.secrets)) + 12
        for start in range(0, len(data), _WINDOW):
            window = data[start : start + _WINDOW + overlap].tobytes()
            # base64 escapes its slashes and nothing else: with those undone and no other
            # escape left, the window is its own decoding.
            undone = window.replace(b"\\/", b"/")
            if b"\\" not in undone:
                if forms.in_bytes(undone):
                    return True
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # "\/" and the like
                text = undone.decode("unicode_escape", "replace")
            if forms.in_text(text) or forms.in_bytes(undone):
                return True
        return False

    def shows_in(self, text: str) -> bool:
        """Whether a secret shows in ``text`` as :meth:`text` looks for one (verbatim, in
        base64, or through up to ``REDACT_DECODE_DEPTH`` layers of encoding): :meth:`text`
        changes nothing in a text where this is False."""
        forms = self._forms
        if not forms.secrets:
            return False
        return forms.in_text(text) or self._revealing(text, forms) is not None

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers with credential values redacted (scheme kept) and secrets gone from every
        name and value; names lower-cased, as HTTP/2 and httpx give them."""
        out: dict[str, str] = {}
        for name, value in headers.items():
            lower = self.text(str(name).lower())
            value = str(value)
            out[lower] = redact_credential(value) if lower in SECRET_HEADERS else self.text(value)
        return out

    def url(self, url: str) -> str:
        """The URL without user:password, secret-looking query values and secrets."""
        return self.text(strip_url(url))

    def document(self, value: Any) -> Any:
        """A JSON-like value (dicts, lists, strings) with every string redacted, keys too."""
        return map_strings(value, self.text)


#: The process-wide redactor every writer uses; the transport registers its secrets here.
_REDACTOR = Redactor()


def redactor() -> Redactor:
    """The process-wide redactor."""
    return _REDACTOR


def register_secrets(*secrets: str | None) -> Redactor:
    """Make these values secrets for everything this process writes from now on."""
    return _REDACTOR.add(*secrets)


def redact_text(text: str) -> str:
    """Text with every registered secret (and anything key-like) gone."""
    return scrub_text(_REDACTOR.text(text))


def redact_bytes(data: bytes) -> bytes:
    """Bytes with every registered secret (and anything key-like) gone."""
    return scrub_bytes(_REDACTOR.data(data))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with credentials and every registered secret gone, names included."""
    return scrub_headers(_REDACTOR.headers(headers))


def redact_url(url: str) -> str:
    """A URL fit to be written: no password, no secret-looking query value, no secret."""
    return scrub_text(_REDACTOR.url(url))


def printable(text: str) -> str:
    """A line as every writer writes it (console, pytest output): secrets redacted, then made
    safe to print (:func:`safe_text`)."""
    return safe_text(redact_text(text))


def redact_document(value: Any) -> Any:
    """A JSON-like document with every string (and key) redacted.

    A report holds tens of thousands of strings and, almost always, no secret: they are
    searched together, a group joined into one text at a time (:func:`_joined`), which costs a
    few passes at C speed instead of a decoding attempt per string. Only the strings of a group
    where that search finds something (or that it cannot vouch for) are redacted one by one, by
    the same :func:`redact_text` either way; a document in which no string changes is returned
    as it is.
    """
    return _changed_document(value, redact_text, _nothing_to_redact)


def printable_document(value: Any) -> Any:
    """A JSON-like document as every report writes it: each string (and key) redacted, then
    made safe (:func:`printable`), as :func:`redact_document` then :func:`safe_document` would
    make it, its strings gathered and searched once for both."""
    return _changed_document(
        value, printable, lambda group: _nothing_to_redact(group) and _all_safe(group)
    )


def _changed_document(
    value: Any, change: Callable[[str], str], unchanged: Callable[[list[str]], bool]
) -> Any:
    """``value`` with ``change`` made to every string, asked of each string only in the groups
    of :data:`_JOINED_STRINGS` that ``unchanged`` cannot vouch for; ``value`` itself when no
    string changes (no copy of a large report is made for nothing)."""
    texts = _strings_of(value)
    if texts is None:
        return map_strings(value, change)
    changed: dict[str, str] = {}
    for group in _groups(texts):
        if unchanged(group):
            continue
        for text in group:
            if (new := change(text)) != text:
                changed[text] = new
    if not changed:
        return value
    return map_strings(value, lambda text: changed.get(text, text))


def _nothing_to_redact(group: list[str]) -> bool:
    joined = _joined(group)
    return joined is not None and not _REDACTOR.shows_in(joined) and scrub_text(joined) == joined


#: What joins a document's strings for one search over them all: no token of any encoding
#: :func:`_decoded` undoes (an escape, a run of percent-escapes, a character reference), no
#: key-like token and no secret can run across it, and it is itself safe text.
_JOINER = "\n\n"


def _strings_of(value: Any) -> list[str] | None:
    """Every string of a JSON-like value, dict keys included; None when the value holds a tuple
    (:func:`map_strings` would give it back as a list, so it cannot be returned as it is)."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.extend(k for k in item if isinstance(k, str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, tuple):
            return None
    return out


#: Strings joined for one search at a time: the search stays one C pass per many strings,
#: and the joined text stays small (a report of thousands of cases is tens of megabytes of
#: text, four bytes a character once one holds an emoji).
_JOINED_STRINGS = 2048


def _groups(texts: list[str]) -> Iterator[list[str]]:
    """The texts, :data:`_JOINED_STRINGS` at a time."""
    for start in range(0, len(texts), _JOINED_STRINGS):
        yield texts[start : start + _JOINED_STRINGS]


def _joined(group: list[str]) -> str | None:
    """The texts as one, for searches whose every find a search of each text alone would also
    make; None when that cannot be promised. (A text ending in a backslash would have it taken
    by the joiner as an escape; such texts are rare enough to leave their group to the slow
    way.)"""
    return None if any(text.endswith("\\") for text in group) else _JOINER.join(group)


def map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """A JSON-like value with ``change`` applied to every string in it, dict keys included."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {map_strings(k, change): map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [map_strings(v, change) for v in value]
    return value


# --- text safe for every format ------------------------------------------------------------

#: C0 controls but tab, newline and carriage return; DEL and C1 controls; the two noncharacters
#: XML refuses. Lone surrogates are handled apart (they cannot be encoded at all).
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: str) -> str:
    """Text any report format can hold: lone surrogates replaced by U+FFFD (they cannot be
    encoded as UTF-8), control characters shown as ``\\xNN`` (XML 1.0 refuses most of them)."""
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    if _UNSAFE.search(text):
        text = _UNSAFE.sub(_shown, text)
    return text


def safe_document(value: Any) -> Any:
    """A JSON-like document with every string (and key) made safe by :func:`safe_text`
    (searched a group of strings at a time, as :func:`redact_document` does)."""
    return _changed_document(value, safe_text, _all_safe)


def _all_safe(group: list[str]) -> bool:
    joined = _JOINER.join(group)
    return not (_SURROGATE.search(joined) or _UNSAFE.search(joined))


# --- key-like tokens and URLs ----------------------------------------------------------------


def scrub_text(text: str) -> str:
    """The text with every key-like token replaced."""
    # What every prefix ends with: a quick no (a lone "-" first: a one-character search is a
    # memchr, a two-character one over base64 stops at every k and s).
    if "-" not in text or ("k-" not in text and "s-" not in text):
        return text
    return _KEY_LIKE.sub(REDACTED, text)


def scrub_bytes(data: bytes) -> bytes:
    """Bytes with every key-like token replaced (base64 never matches: it has no ``-``)."""
    if b"-" not in data or (b"k-" not in data and b"s-" not in data):
        return data
    return _KEY_LIKE_BYTES.sub(REDACTED.encode(), data)


def redact_credential(value: str) -> str:
    """The value of a credential header redacted, its scheme kept (``Bearer [REDACTED]``) so a
    reader still sees how the credential was sent."""
    scheme = value.split(" ", 1)[0] if " " in value else ""
    return f"{scheme} {REDACTED}" if scheme.isalpha() else REDACTED


def scrub_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with credential values redacted, whatever the transport did before."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        lower = str(name).lower()
        value = str(value)
        out[lower] = redact_credential(value) if lower in SECRET_HEADERS else scrub_text(value)
    return out


def strip_url(url: str) -> str:
    """The URL without user:password and with secret-looking query values redacted."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return scrub_text(url)
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    query = _SECRET_QUERY.sub(rf"\1{REDACTED}", parts.query)
    return scrub_text(urlunsplit((parts.scheme, netloc, parts.path, query, "")))
