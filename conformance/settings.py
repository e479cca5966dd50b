"""Operational bounds: the timeouts, caps and defaults that keep a run safe against any target.

One module, so that "how long, how much, how many" is read in one place and tuned in one place;
every layer may import it (it imports nothing of the package). The contract's own values
(sizes, prompt limits, ``n`` ranges, prices) are not here: they live in ``schemas/``.
"""

from __future__ import annotations

MIB = 1024 * 1024

# --- what a run is asked, when it is not told -------------------------------------------------

#: Seconds one request may take, connection to last byte (``--timeout``).
DEFAULT_TIMEOUT = 120.0
#: Requests in flight at once (``--concurrency``).
DEFAULT_CONCURRENCY = 8
#: A recording's largest size, in MiB (``--record-cap``).
DEFAULT_RECORD_CAP_MIB = 256

# --- the transport (each one can be changed with ``--limit NAME=VALUE``) ---------------------

#: Cap of a 2xx answer body (n=10 large images in base64 fit).
BODY_CAP = 64 * MIB
#: Cap of an error answer body: an error envelope is small.
ERROR_CAP = 1 * MIB
#: Cap of one fetched image.
FETCH_CAP = 32 * MIB
#: Decoded answer bytes that all the cases in flight may hold at once (see
#: :class:`~conformance.engine.transport.TransportConfig`).
INFLIGHT_CAP = 256 * MIB
#: Retries of a 429/503 answer.
RETRIES = 2
#: The longest Retry-After honoured; a longer one makes the case inconclusive at once.
MAX_RETRY_WAIT = 30.0
#: Wait before a retry when the answer names none.
DEFAULT_RETRY_WAIT = 1.0
#: Seconds of retry waits, and retries, the whole run may spend.
RETRY_BUDGET = 60.0
RETRY_BUDGET_COUNT = 64
#: Redirects followed within the target's origin (never to another one).
MAX_REDIRECTS = 3

# --- the pre-flight --------------------------------------------------------------------------

#: The longest the pre-flight waits for a TCP connection: none by then is "unreachable".
PREFLIGHT_CONNECT_TIMEOUT = 10.0
#: The longest it waits for an answer once connected.
PREFLIGHT_ANSWER_TIMEOUT = 5.0

# --- the runner ------------------------------------------------------------------------------

#: Thumbnails kept per run for the report's gallery.
MAX_THUMBNAILS = 64
#: Thumbnails a replay makes.
REPLAY_THUMBNAILS = 48
#: How often a case waiting for the budget looks again when no settlement of this process
#: wakes it (reservations in flight in other processes settle unseen).
BUDGET_POLL = 0.05
#: Answers at least this large (a 2xx carrying images) are judged in a worker thread.
HEAVY_BODY = 64 * 1024

# --- the judge -------------------------------------------------------------------------------

#: Items and events judged one by one; a hostile answer with a million of them is judged on
#: its count alone beyond these, in bounded time.
MAX_ITEMS = 16
MAX_EVENTS = 256
#: Events read from one stream at most; beyond, the stream is a finding and is not read further.
MAX_STREAM_EVENTS = 10_000
#: Bytes of one stream event at most.
STREAM_EVENT_CAP = 64 * MIB
#: JSON objects and arrays an answer may hold before it is parsed (a conformant one has a few
#: dozen): counted on the bytes, so a million items never become a million Python objects.
MAX_JSON_CONTAINERS = 100_000

# --- image facts ----------------------------------------------------------------------------

#: Declared pixels (width x height) above which an image is refused before any decoding
#: (one decoded RGBA image at the bound holds 64 MiB).
MAX_PIXELS = 4096 * 4096
#: PNG chunks, JPEG marker segments or WebP chunks walked before the file is refused.
MAX_CHUNKS = 10_000
#: JPEG scans (SOS segments) before the file is refused (each is a pass over the whole image).
MAX_JPEG_SCANS = 100
#: Bytes inflated per step when checking a PNG's image data: the check's memory.
INFLATE_STEP = 1 << 20
#: Raw PNG image data up to which a decoded PNG is re-wrapped rather than inflated twice.
REWRAP_LIMIT = 16 << 20
#: The side of the report's thumbnails, in pixels.
THUMBNAIL_SIDE = 160

# --- recordings ------------------------------------------------------------------------------

#: A recording's total cap, and one entry's, in bytes.
RECORD_CAP = DEFAULT_RECORD_CAP_MIB * MIB
RECORD_ENTRY_CAP = 64 * MIB

# --- the embedded reference server ---------------------------------------------------------

#: Seconds the reference server may take to start.
START_TIMEOUT = 15.0
#: Seconds the server gives open requests (streams, the ``slow`` quirk) when it stops.
GRACEFUL_STOP = 0.5
