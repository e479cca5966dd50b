"""Recording exchanges as HAR 1.2, and reading them back for a replay.

A recording opens in any browser's devtools (Network panel, "Import HAR") and holds everything
``imgconf replay`` needs to judge the run again without calling anyone: each entry is one HTTP
exchange, and a custom ``_imgconf`` field carries the case it was sent for (``Case.to_dict``)
and what HAR cannot say (a transport error, a cut body, retries). Image URLs fetched for a case
are entries of their own, linked to the case's entry by ``_imgconf.parent``.

Entries are streamed to a temporary file as results come in, so a long run never holds every
body in memory; :meth:`HarRecorder.close` writes the run's facts and moves the file into place
atomically. The key never reaches the file: the transport redacts it, and every header and body
is scrubbed again here for anything key-like.

``keep_images=False`` replaces base64 images and fetched image bodies by a short marker: the
file is much smaller, and a replay says which checks it could not redo.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import __version__
from .cases import Case
from .errors import SetupError
from .redact import scrub_bytes, scrub_headers, scrub_text
from .reporting import FILE_MODE
from .results import Exchange

__all__ = ["ELIDED_MARKER", "HarError", "HarRecorder", "read_har"]

#: What stands in for an image's base64 in a recording made without images.
ELIDED_MARKER = "<image elided from the recording: {n} base64 characters>"
#: base64 strings shorter than this are kept: they are not images, and may be the finding.
_ELIDE_FROM = 64
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
    return [{"name": k, "value": v} for k, v in scrub_headers(headers).items()]


def _elide_images(body: bytes) -> tuple[bytes, bool]:
    def marker(match: re.Match[bytes]) -> bytes:
        text = ELIDED_MARKER.format(n=len(match.group(2))).encode()
        return match.group(1) + text + match.group(3)

    elided, count = _B64_FIELD.subn(marker, body)
    return elided, count > 0


class HarRecorder:
    """Writes a HAR 1.2 file entry by entry; :meth:`close` finishes it atomically."""

    def __init__(self, path: Path, *, keep_images: bool = True) -> None:
        self.path = Path(path)
        self.keep_images = keep_images
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._entries = 0
        self._cases = 0
        self._closed = False
        creator = {"name": "imgconf", "version": __version__}
        self._file.write(
            '{"log": {"version": "1.2", "creator": '
            + json.dumps(creator)
            + ', "pages": [], "entries": [\n'
        )

    def __enter__(self) -> HarRecorder:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not self._closed:
            self.abort()

    def add(self, case: Case, exchange: Exchange) -> None:
        """Record one case's exchange and the image URLs fetched for it."""
        with self._lock:
            if self._closed:
                return
            parent = self._entries
            self._write(self._entry(exchange, {"role": "case", "case": self._case(case)}))
            for index, fetch in enumerate(exchange.fetches):
                link = {"role": "fetch", "parent": parent, "case_id": case.id, "index": index}
                self._write(self._entry(fetch, link, image=True))
            self._cases += 1

    def close(self, meta: dict[str, Any]) -> None:
        """Write the run's facts (tool version, target, profile, models, seed) and finish."""
        with self._lock:
            if self._closed:
                return
            facts = {
                **json.loads(json.dumps(meta, default=str)),
                "format": "imgconf-har/1",
                "cases": self._cases,
                "images_kept": self.keep_images,
            }
            facts = json.loads(scrub_text(json.dumps(facts, ensure_ascii=False)))
            self._file.write("\n], " + '"_imgconf": ' + json.dumps(facts, ensure_ascii=False))
            self._file.write("}}\n")
            self._file.flush()
            os.fsync(self._file.fileno())
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

    # --- building entries ---------------------------------------------------------------

    def _write(self, entry: dict[str, Any]) -> None:
        self._file.write((",\n" if self._entries else "") + json.dumps(entry, ensure_ascii=False))
        self._entries += 1

    @staticmethod
    def _case(case: Case) -> dict[str, Any]:
        data = case.to_dict()
        if case.raw is not None:
            # to_dict keeps raw as text; bytes that are not UTF-8 need their exact form.
            data["raw_base64"] = base64.b64encode(case.raw).decode("ascii")
        return data

    def _entry(
        self, exchange: Exchange, link: dict[str, Any], *, image: bool = False
    ) -> dict[str, Any]:
        body = scrub_bytes(exchange.response_body)
        elided = False
        if not self.keep_images:
            if image and body:
                body, elided = b"", True
            elif not image:
                body, elided = _elide_images(body)
        request_body = scrub_bytes(exchange.request_body)
        response_type = exchange.response_headers.get("content-type", "")
        post: dict[str, Any] = {}
        if request_body or exchange.method.upper() == "POST":
            post = {
                "postData": {
                    "mimeType": exchange.request_headers.get("content-type", ""),
                    **_content(request_body),
                }
            }
            if "encoding" in post["postData"]:
                post["postData"]["_encoding"] = post["postData"].pop("encoding")
        wait = max(0.0, exchange.elapsed * 1000)
        return {
            "startedDateTime": _iso(exchange.started),
            "time": round(wait, 3),
            "request": {
                "method": exchange.method,
                "url": scrub_text(exchange.url),
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": _header_list(exchange.request_headers),
                "queryString": [],
                **post,
                "headersSize": -1,
                "bodySize": len(request_body),
            },
            "response": {
                "status": exchange.status or 0,
                "statusText": "",
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": _header_list(exchange.response_headers),
                "content": {
                    "size": len(exchange.response_body),
                    "mimeType": response_type,
                    **_content(body),
                },
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": len(exchange.response_body),
                **({"_error": exchange.error} if exchange.error else {}),
            },
            "cache": {},
            "timings": {"send": 0, "wait": round(wait, 3), "receive": 0},
            "_imgconf": {
                **link,
                "started": exchange.started,
                "elapsed": exchange.elapsed,
                "error": exchange.error,
                "truncated": exchange.truncated,
                "retries": exchange.retries,
                "attempts": json.loads(json.dumps(exchange.attempts, default=str)),
                "images_elided": elided,
            },
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
    request, response, extra = entry["request"], entry["response"], entry.get("_imgconf", {})
    return Exchange(
        method=request["method"],
        url=request["url"],
        request_headers=_headers(request.get("headers")),
        request_body=_body(request.get("postData") or {}, "_encoding"),
        status=response.get("status") or None,
        response_headers=_headers(response.get("headers")),
        response_body=_body(response.get("content") or {}),
        started=float(extra.get("started") or 0.0),
        elapsed=float(extra.get("elapsed") or entry.get("time", 0) / 1000),
        error=extra.get("error"),
        truncated=bool(extra.get("truncated")),
        retries=int(extra.get("retries") or 0),
        attempts=list(extra.get("attempts") or []),
    )


def _case(data: dict[str, Any]) -> Case:
    case = Case.from_dict(data)
    if data.get("raw_base64") is not None:
        import dataclasses

        case = dataclasses.replace(case, raw=base64.b64decode(data["raw_base64"]))
    return case


def read_har(path: Path) -> tuple[dict[str, Any], list[tuple[Case, Exchange]]]:
    """The run's facts and every recorded (case, exchange), image fetches attached.

    ``meta["elided"]`` lists the ids of cases whose images were elided from the recording;
    their elided URL fetches are left out of the exchange (the checks then skip them).
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
    meta = dict(log.get("_imgconf") or {})
    if not meta:
        raise HarError(
            f"{path}: not an imgconf recording (no log._imgconf; was it recorded by imgconf run --record?)"
        )
    pairs: list[tuple[Case, Exchange]] = []
    by_index: dict[int, Exchange] = {}
    elided: list[str] = []
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
            elif extra.get("role") == "fetch":
                parent = by_index.get(int(extra["parent"]))
                if parent is None:
                    raise HarError(f"{path}: entry {index} is a fetch of an unknown case")
                if extra.get("images_elided"):
                    if extra.get("case_id") not in elided:
                        elided.append(extra.get("case_id"))
                    continue
                parent.fetches.append(_exchange(entry))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HarError(
            f"{path}: a recorded entry is malformed ({exc.__class__.__name__}: {exc})"
        ) from None
    meta["elided"] = elided
    return meta, pairs
