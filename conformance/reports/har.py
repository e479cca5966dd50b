"""Recording exchanges as HAR 1.2, and reading them back for a replay.

A recording opens in any browser's devtools (Network panel, "Import HAR") and holds everything
``imgconf replay`` needs to judge the run again without calling anyone: each entry is one HTTP
exchange, and a custom ``_imgconf`` field carries the case it was sent for (``Case.to_dict``)
and what HAR cannot say (a transport error, a cut body, retries). Image URLs fetched for a case
are entries of their own, linked to the case's entry by ``_imgconf.parent``.

Entries are streamed to a temporary file as results come in, so a long run never holds every
body in memory; :meth:`HarRecorder.close` writes the run's facts and moves the file into place
atomically (nothing is rewritten or synced at close, so closing after a signal is immediate).
The key never reaches the file: the transport redacts it, and every header, URL and body is
redacted again here by the same redactor (:mod:`conformance.redact`); URLs and headers are also
made safe text (a lone surrogate in an image URL is replaced, not a crash).

The file is bounded: a body over the per-entry cap, or one that would take the file past its
total cap (256 MiB unless told otherwise), is left out, and the entry says so in its HAR
``comment`` and in ``_imgconf.body_elided``; once even such an entry no longer fits, entries are
dropped and the run's facts count them. A fetched URL body is kept only when its magic bytes say
it is an image: whatever else an image URL answered (an internal page, say) is not written to a
file that may be shared. A replay judges an elided body as not observed: the rules that need it
are listed as not judged again.

A multipart request (an edit, a variation) is recorded as HAR has it: ``postData`` with its
``mimeType`` (boundary included) and ``params``, text parts with their values, file parts with
their ``fileName`` and ``contentType``. The files' bytes are not recorded (an input may be 50 MB):
each file param keeps its recipe, length and digest in ``_imgconf``, and the case (its parts
included) is in the entry's ``_imgconf.case``, so a replay makes the same bytes again. The
``text`` shows the body with each file's bytes replaced by a line saying so.

``keep_images=False`` replaces base64 images and fetched image bodies by a short marker: the
file is much smaller, and a replay says which checks it could not redo.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .. import __version__, settings
from ..engine.image_facts import sniff_format
from ..engine.multipart import request_summary
from ..engine.results import Exchange
from ..errors import SetupError
from ..generation.cases import Case
from ..redact import (
    map_strings,
    printable,
    redact_bytes,
    redact_headers,
    redact_text,
    redact_url,
    safe_text,
)
from .writer import FILE_MODE

__all__ = [
    "DEFAULT_ENTRY_CAP",
    "DEFAULT_RECORD_CAP",
    "ELIDED_MARKER",
    "HarError",
    "HarRecorder",
    "read_har",
]

MIB = settings.MIB
#: The largest recording file, unless ``--record-cap`` says otherwise.
DEFAULT_RECORD_CAP = settings.RECORD_CAP
#: The largest body kept in one entry (the transport's cap of an answer: honest answers fit).
DEFAULT_ENTRY_CAP = settings.RECORD_ENTRY_CAP
#: Room kept at the end of the file for the run's facts.
_TRAILER_ROOM = 64 * 1024
#: What stands in for an image's base64 in a recording made without images.
ELIDED_MARKER = "<image elided from the recording: {n} base64 characters>"
#: An image's base64 in an answer; shorter strings (under 64 characters) are kept: they are
#: not images, and may be the finding.
_B64_FIELD = re.compile(rb'("(?:b64_json|partial_image_b64)"\s*:\s*")([A-Za-z0-9+/=\\]{64,})(")')


class HarError(SetupError):
    """A file given to ``imgconf replay`` is not a readable imgconf HAR recording."""


def _iso(timestamp: float) -> str:
    if timestamp < 1e9:  # a monotonic reading: the wall clock is the best we have
        timestamp = time.time()
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


def _content(data: bytes) -> dict[str, Any]:
    """HAR content for bytes: text when it is UTF-8 (exact round trip), base64 otherwise."""
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"text": base64.b64encode(data).decode("ascii"), "encoding": "base64"}


def _header_list(headers: dict[str, str]) -> list[dict[str, str]]:
    return [
        {"name": safe_text(k), "value": safe_text(v)} for k, v in redact_headers(headers).items()
    ]


def _elide_images(body: bytes) -> tuple[bytes, bool]:
    def marker(match: re.Match[bytes]) -> bytes:
        text = ELIDED_MARKER.format(n=len(match.group(2))).encode()
        return match.group(1) + text + match.group(3)

    elided, count = _B64_FIELD.subn(marker, body)
    return elided, count > 0


#: Stands for a response body in an encoded entry; no text from a server can produce it
#: (their control characters are shown escaped), and it is unique to this process.
_PLACEHOLDER_TEXT = f"\x00imgconf-body-{secrets.token_hex(8)}\x00"
_PLACEHOLDER = json.dumps(_PLACEHOLDER_TEXT).encode()
#: Bytes JSON text must escape, and their escapes.
_SPECIAL = bytes([*range(0x20), ord('"'), ord("\\")])
_SHORT = {0x08: b"\\b", 0x09: b"\\t", 0x0A: b"\\n", 0x0C: b"\\f", 0x0D: b"\\r"}
_ESCAPES = {
    **{c: b"\\u%04x" % c for c in range(0x20)},
    **_SHORT,
    ord('"'): b'\\"',
    ord("\\"): b"\\\\",
}
#: Every other byte: deleting them leaves the bytes to escape.
_PLAIN = bytes(b for b in range(256) if b not in _SPECIAL)
#: Bytes whose escape is two characters long (the others' are six).
_SHORT_ESCAPED = (*(bytes([b]) for b in _SHORT), b'"', b"\\")


def _is_utf8(data: bytes) -> bool:
    """Whether bytes are UTF-8, decoded a window at a time (no string the body's size)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(data), MIB):
            decoder.decode(view[start : start + MIB])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


class _BodyText:
    """A body as the content of a JSON string: escaped UTF-8 text, or base64 when it is not
    UTF-8 (HAR's rule, as :func:`_content`). Its size is known before it is built."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.base64 = not _is_utf8(body)
        if self.base64:
            self.size = 4 * ((len(body) + 2) // 3)
            return
        #: The bytes to escape, in one pass (few in any honest body).
        self.specials = body.translate(None, _PLAIN)
        short = sum(self.specials.count(c) for c in _SHORT_ESCAPED)
        self.size = len(body) + short + 5 * (len(self.specials) - short)

    def build(self) -> bytes:
        if self.base64:
            return base64.b64encode(self.body)
        text = self.body.replace(b"\\", b"\\\\")  # first: the escapes below add backslashes
        for byte in set(self.specials) - {ord("\\")}:
            text = text.replace(bytes([byte]), _ESCAPES[byte])
        return text


def _encode(value: Any) -> bytes:
    """JSON bytes for the file. Strings from the server were made safe already; a lone
    surrogate that got through anyway is written as its JSON escape, never a crash."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "backslashreplace")


class HarRecorder:
    """Writes a HAR 1.2 file entry by entry, within its caps; :meth:`close` finishes it
    atomically."""

    def __init__(
        self,
        path: Path,
        *,
        keep_images: bool = True,
        cap: int = DEFAULT_RECORD_CAP,
        entry_cap: int = DEFAULT_ENTRY_CAP,
    ) -> None:
        self.path = Path(path)
        self.keep_images = keep_images
        self.cap = cap
        self.entry_cap = min(entry_cap, cap)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self._lock = threading.Lock()
        self._entries = 0
        self._cases = 0
        self._size = 0
        self._elided = 0
        self._dropped = 0
        self._closed = False
        creator = {"name": "imgconf", "version": __version__}
        self._put(
            b'{"log": {"version": "1.2", "creator": ' + _encode(creator) + b', "pages": [], '
            b'"entries": [\n'
        )

    def __enter__(self) -> HarRecorder:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not self._closed:
            self.abort()

    def add(self, case: Case, exchange: Exchange) -> None:
        """Record one case's exchange and the image URLs fetched for it (within the caps).

        A recording that cannot be written (a full disk, say) is dropped and said so on
        stderr: it must not cost the run its reports.
        """
        with self._lock:
            if self._closed:
                return
            try:
                self._add(case, exchange)
            except Exception as exc:  # the recording's failure is not the run's
                self._give_up(exc)

    def _add(self, case: Case, exchange: Exchange) -> None:
        parent = self._entries
        if not self._write(exchange, {"role": "case", "case": self._case(case)}, case=case):
            self._dropped += len(exchange.fetches)
            return
        for index, fetch in enumerate(exchange.fetches):
            link = {"role": "fetch", "parent": parent, "case_id": case.id, "index": index}
            self._write(fetch, link, image=True)
        self._cases += 1

    def _give_up(self, exc: Exception) -> None:
        reason = printable(f"{exc.__class__.__name__}: {exc}")[:300]
        print(f"imgconf: error: recording to {self.path} stopped ({reason})", file=sys.stderr)
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)
        self._closed = True

    def close(self, meta: dict[str, Any]) -> None:
        """Write the run's facts (tool version, target, profile, models, seed) and finish."""
        with self._lock:
            if self._closed:
                return
            try:
                self._finish(meta)
            except Exception as exc:  # the recording's failure is not the run's
                self._give_up(exc)

    def _finish(self, meta: dict[str, Any]) -> None:
        facts = {
            **json.loads(json.dumps(meta, default=str)),
            "format": "imgconf-har/1",
            "cases": self._cases,
            "images_kept": self.keep_images,
            "cap": self.cap,
            "entry_cap": self.entry_cap,
            "bodies_elided": self._elided,
            "entries_dropped": self._dropped,
        }
        facts = map_strings(facts, lambda text: safe_text(redact_text(text)))
        self._put(b"\n], " + b'"_imgconf": ' + _encode(facts) + b"}}\n")
        os.fchmod(self._file.fileno(), FILE_MODE)
        self._file.close()
        os.replace(self._tmp, self.path)
        self._closed = True

    def abort(self) -> None:
        """Drop the unfinished recording (its temporary file)."""
        with self._lock:
            if not self._closed:
                self._file.close()
                self._tmp.unlink(missing_ok=True)
                self._closed = True

    # --- writing within the caps ----------------------------------------------------------

    def _put(self, data: bytes) -> None:
        self._file.write(data)
        self._size += len(data)

    def _room(self) -> int:
        """Bytes an entry may still take, the run's facts at the end kept room for."""
        return self.cap - _TRAILER_ROOM - self._size - 2

    def _write(
        self,
        exchange: Exchange,
        link: dict[str, Any],
        *,
        image: bool = False,
        case: Case | None = None,
    ) -> bool:
        """Write one entry, its body left out when it does not fit; False when even the entry
        without its body does not fit any more (it is dropped).

        The body is escaped as JSON text (or base64) byte for byte, its size known before it
        is built, and written between the entry's other fields: no huge string is made of it.
        """
        body = exchange.response_body
        post = _multipart_post(case) if case is not None and case.parts else None
        sent = len(post["text"]) if post is not None else len(exchange.request_body)
        why = None
        if image and body and sniff_format(body) is None:
            why = "not an image: a fetched body is kept only when it is one"
        elif len(body) + sent > min(self.entry_cap, self._room()):
            why = self._over_cap(len(body))
        if why is None:
            entry, kept = self._entry(exchange, link, image=image, post=post)
            text = _BodyText(kept)
            if text.base64:
                entry["response"]["content"]["encoding"] = "base64"
            head, tail = _encode(entry).split(_PLACEHOLDER, 1)
            if len(head) + text.size + len(tail) <= self._room():
                self._put((b",\n" if self._entries else b"") + head + b'"')
                self._put(text.build())
                self._put(b'"' + tail)
                self._entries += 1
                return True
            why = self._over_cap(len(body))
        entry, _ = self._entry(exchange, link, image=image, elided=why, post=post)
        entry["response"]["content"]["text"] = ""
        data = _encode(entry)
        if len(data) > self._room():
            self._dropped += 1
            return False
        self._elided += 1
        self._put((b",\n" if self._entries else b"") + data)
        self._entries += 1
        return True

    def _over_cap(self, size: int) -> str:
        if size > self.entry_cap:
            return f"over the cap of one entry ({self.entry_cap} bytes)"
        return f"the recording reached its cap ({self.cap} bytes; imgconf run --record-cap)"

    @staticmethod
    def _case(case: Case) -> dict[str, Any]:
        data = case.to_dict()
        if case.raw is not None:
            # to_dict keeps raw as text; bytes that are not UTF-8 need their exact form.
            data["raw_base64"] = base64.b64encode(case.raw).decode("ascii")
        return data

    def _entry(
        self,
        exchange: Exchange,
        link: dict[str, Any],
        *,
        image: bool = False,
        elided: str | None = None,
        post: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bytes]:
        """The entry, its response body's text left as a placeholder, and that body."""
        size = len(exchange.response_body)
        body = b"" if elided else redact_bytes(exchange.response_body)
        images_elided = False
        if not self.keep_images and not elided:
            if image and body:
                body, images_elided = b"", True
            elif not image:
                body, images_elided = _elide_images(body)
        request_body = redact_bytes(exchange.request_body)
        response_type = safe_text(exchange.response_headers.get("content-type", ""))
        sent = len(request_body)
        if post is not None:
            sent = post["_size"]
            fields = {k: v for k, v in post.items() if k != "_size"}
            post = {"postData": map_strings(fields, lambda text: safe_text(redact_text(text)))}
        elif request_body or exchange.method.upper() == "POST":
            post = {
                "postData": {
                    "mimeType": safe_text(exchange.request_headers.get("content-type", "")),
                    **_content(request_body),
                }
            }
            if "encoding" in post["postData"]:
                post["postData"]["_encoding"] = post["postData"].pop("encoding")
        else:
            post = {}
        note = f"body of {size} bytes not recorded: {elided}" if elided else None
        wait = max(0.0, exchange.elapsed * 1000)
        return {
            "startedDateTime": _iso(exchange.started),
            "time": round(wait, 3),
            "request": {
                "method": safe_text(exchange.method),
                "url": safe_text(redact_url(exchange.url)),
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": _header_list(exchange.request_headers),
                "queryString": [],
                **post,
                "headersSize": -1,
                "bodySize": sent,
            },
            "response": {
                "status": exchange.status or 0,
                "statusText": "",
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": _header_list(exchange.response_headers),
                "content": {
                    "size": size,
                    "mimeType": response_type,
                    "text": _PLACEHOLDER_TEXT,
                    **({"comment": note} if note else {}),
                },
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": size,
                **({"_error": exchange.error} if exchange.error else {}),
            },
            "cache": {},
            "timings": {"send": 0, "wait": round(wait, 3), "receive": 0},
            **({"comment": note} if note else {}),
            "_imgconf": {
                **link,
                "started": exchange.started,
                "elapsed": exchange.elapsed,
                "error": exchange.error,
                "truncated": exchange.truncated,
                **({"cut_at": list(exchange.cut_at)} if exchange.cut_at else {}),
                "retries": exchange.retries,
                "attempts": map_strings(
                    json.loads(json.dumps(exchange.attempts, default=str)), safe_text
                ),
                "images_elided": images_elided,
                **({"body_elided": elided} if elided else {}),
            },
        }, body


def _multipart_post(case: Case) -> dict[str, Any]:
    """HAR's ``postData`` of a multipart case, from what the exchange states was sent
    (:func:`~conformance.engine.multipart.request_summary`): params part by part in the order
    sent, file bytes left out (their recipe, length and digest in ``_imgconf``), and the body as
    text with each file's bytes replaced by a line saying so. ``_size`` is the length of the body
    as sent."""
    summary = request_summary(case)
    params: list[dict[str, Any]] = []
    text: list[str] = []
    boundary = f"--{case.boundary}\r\n"
    for part in summary["parts"]:
        disposition = f'Content-Disposition: form-data; name="{part["name"]}"'
        if "value" in part:
            params.append({"name": part["name"], "value": part["value"]})
            text.append(f"{boundary}{disposition}\r\n\r\n{part['value']}\r\n")
            continue
        params.append(
            {
                "name": part["name"],
                "fileName": part["filename"],
                "contentType": part["content_type"],
                "_imgconf": {k: part[k] for k in ("recipe", "bytes", "digest")},
            }
        )
        text.append(
            f'{boundary}{disposition}; filename="{part["filename"]}"\r\n'
            f"Content-Type: {part['content_type']}\r\n\r\n"
            f"<{part['bytes']} bytes of {part['filename']}, not recorded: made again from the "
            "recipe in its param's _imgconf>\r\n"
        )
    text.append(f"--{case.boundary}--\r\n")
    return {
        "mimeType": summary["content_type"],
        "params": params,
        "text": "".join(text),
        "comment": "file parts' bytes are not recorded: each param's _imgconf has the recipe "
        "they are made from",
        "_size": summary["bytes"],
    }


# --- reading --------------------------------------------------------------------------------


def _body(content: dict[str, Any], encoding_key: str = "encoding") -> bytes:
    text = content.get("text") or ""
    if content.get(encoding_key) == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise HarError("a base64 body in the recording is not valid base64") from None
    return text.encode("utf-8")


def _headers(items: Any) -> dict[str, str]:
    return {str(h["name"]).lower(): str(h["value"]) for h in items or ()}


def _exchange(entry: dict[str, Any]) -> Exchange:
    """The exchange an entry recorded; a TypeError naming the field whose value is not of the
    kind imgconf writes (read_har makes it one line), so that no odd value reaches the judge."""
    request, response, extra = entry["request"], entry["response"], entry.get("_imgconf", {})
    status = response.get("status") or None
    attempts = list(extra.get("attempts") or [])
    error = extra.get("error")
    _expect(request["method"], str, "request.method")
    _expect(request["url"], str, "request.url")
    _expect(status, (int, type(None)), "response.status")
    _expect(error, (str, type(None)), "_imgconf.error")
    if not all(isinstance(attempt, dict) for attempt in attempts):
        raise TypeError("_imgconf.attempts must be a list of objects")
    return Exchange(
        method=request["method"],
        url=request["url"],
        request_headers=_headers(request.get("headers")),
        request_body=_body(request.get("postData") or {}, "_encoding"),
        status=status,
        response_headers=_headers(response.get("headers")),
        response_body=_body(response.get("content") or {}),
        started=float(extra.get("started") or 0.0),
        elapsed=float(extra.get("elapsed") or entry.get("time", 0) / 1000),
        error=error,
        truncated=bool(extra.get("truncated")),
        cut_at=_cut_at(extra.get("cut_at")),
        retries=int(extra.get("retries") or 0),
        attempts=attempts,
    )


def _expect(value: Any, kind: type | tuple[type, ...], field: str) -> None:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{field} is {type(value).__name__}")


def _cut_at(value: Any) -> tuple[str, int] | None:
    """The bound a recorded body was cut at, when the recording says so plainly."""
    if isinstance(value, list) and len(value) == 2:
        name, cap = value
        if isinstance(name, str) and isinstance(cap, int) and not isinstance(cap, bool):
            return name, cap
    return None


#: The recorded case's fields that are words, each one a string in every recording imgconf
#: writes (they key the plan's lookups and the report's tables).
_CASE_WORDS = ("id", "model", "kind", "rule", "level", "expect", "auth", "origin", "endpoint")


def _case(data: dict[str, Any]) -> Case:
    """The recorded case; a TypeError or ValueError naming a field of another kind than imgconf
    writes, or an endpoint the contract does not have."""
    if not isinstance(data, dict):
        raise TypeError("_imgconf.case is not an object")
    for word in _CASE_WORDS:
        if word in data:
            _expect(data[word], str, f"_imgconf.case.{word}")
    endpoint = data.get("endpoint", "generations")
    if endpoint not in _known_endpoints():
        raise ValueError(f"_imgconf.case.endpoint {endpoint!r:.40} is not an endpoint of imgconf's")
    case = Case.from_dict(data)
    if data.get("raw_base64") is not None:
        import dataclasses

        case = dataclasses.replace(case, raw=base64.b64decode(data["raw_base64"]))
    return case


def read_har(path: Path) -> tuple[dict[str, Any], list[tuple[Case, Exchange]]]:
    """The run's facts and every recorded (case, exchange), image fetches attached.

    ``meta["elided"]`` lists the ids of cases whose images were elided from the recording (a
    fetched image left out is one too); their elided URL fetches are left out of the exchange
    (the checks then skip them). ``meta["body_elided"]`` lists the ids of cases whose answer's
    body was left out (over a cap of the recording): the rules that read it cannot be judged.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise HarError(f"{path}: not a readable HAR file ({exc.__class__.__name__})") from None
    log = document.get("log") if isinstance(document, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise HarError(f"{path}: not a HAR file (no log.entries)")
    meta = log.get("_imgconf") or {}
    if not meta or not isinstance(meta, dict):
        raise HarError(
            f"{path}: not an imgconf recording (no log._imgconf; was it recorded by imgconf run --record?)"
        )
    meta = dict(meta)
    endpoints, known = meta.get("endpoints") or [], _known_endpoints()
    if not isinstance(endpoints, list) or not all(
        isinstance(e, str) and e in known for e in endpoints
    ):
        raise HarError(f"{path}: log._imgconf.endpoints names no endpoint of imgconf's")
    pairs: list[tuple[Case, Exchange]] = []
    by_index: dict[int, Exchange] = {}
    elided: list[str] = []
    body_elided: list[str] = []
    try:
        for index, entry in enumerate(log["entries"]):
            extra = entry.get("_imgconf") or {}
            if extra.get("role") == "case":
                case = _case(extra["case"])
                exchange = _exchange(entry)
                by_index[index] = exchange
                pairs.append((case, exchange))
                if extra.get("images_elided"):
                    elided.append(case.id)
                if extra.get("body_elided"):
                    body_elided.append(case.id)
            elif extra.get("role") == "fetch":
                parent = by_index.get(int(extra["parent"]))
                if parent is None:
                    raise HarError(f"{path}: entry {index} is a fetch of an unknown case")
                fetch = _exchange(entry)
                if extra.get("images_elided") or (extra.get("body_elided") and _body_judged(fetch)):
                    if extra.get("case_id") not in elided:
                        elided.append(extra.get("case_id"))
                    continue
                parent.fetches.append(fetch)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HarError(
            f"{path}: a recorded entry is malformed ({exc.__class__.__name__}: {exc})"
        ) from None
    meta["elided"] = elided
    meta["body_elided"] = body_elided
    return meta, pairs


def _known_endpoints() -> tuple[str, ...]:
    from ..contract.loader import load_contract

    return tuple(load_contract().endpoints)


def _body_judged(fetch: Exchange) -> bool:
    """Whether the checks read a fetched body: only that of a complete 200 answer (any other
    is judged by its status or error alone, so leaving its body out changes nothing)."""
    return fetch.error is None and fetch.status == 200
