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
#: Bytes asked of a connection per read (httpcore asks 64 KiB). A read costs the same Python
#: whatever it returns, and asyncio returns at most the 256 KiB it takes from a socket at once:
#: a 3 MB answer is read in about 12 reads instead of 50.
READ_CHUNK = 256 * 1024
#: Decoded answer bytes that all the cases in flight may hold at once (see
#: :class:`~conformance.engine.transport.TransportConfig`).
INFLIGHT_CAP = 96 * MIB
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
#: The most bytes a conformant image holds per pixel: raw RGBA at 16 bits a channel (a PNG of
#: stored deflate blocks holds its raw rows; a JPEG of noise at quality 100 about 4 bytes).
IMAGE_BYTES_PER_PIXEL = 8
#: Room in a conformant image for its container and metadata (ICC profile, EXIF, text).
IMAGE_SLACK = 1 * MIB
#: Room in a conformant answer for the JSON around its images (revised prompts, usage) and,
#: per image, for a URL or a stream event's other fields.
ANSWER_SLACK = 1 * MIB
ITEM_SLACK = 64 * 1024

# --- the pre-flight --------------------------------------------------------------------------

#: The longest the pre-flight waits for a TCP connection: none by then is "unreachable".
PREFLIGHT_CONNECT_TIMEOUT = 10.0
#: The longest it waits for an answer once connected. A body that is not JSON is refused at
#: once by any endpoint; a server slower than this is left to the run (whose requests have
#: their own deadline), so a short wait here can only skip the early diagnosis, never refuse
#: a run.
PREFLIGHT_ANSWER_TIMEOUT = 5.0

# --- the runner ------------------------------------------------------------------------------

#: Thumbnails kept per run for the report's gallery.
MAX_THUMBNAILS = 64
#: Thumbnails a replay makes.
REPLAY_THUMBNAILS = 48
#: How often a case waiting for the budget looks again when no settlement of this process
#: wakes it (reservations in flight in other processes settle unseen).
BUDGET_POLL = 0.05
#: Answers (with their fetched images) up to this size are judged on the event loop when none
#: of their images wants pixel work (all seen before), which spares a thread's hand-over (about
#: 0.3 ms of CPU an answer); larger ones always in a judging thread. A try given up for pixel
#: work costs a parse of the answer (about 0.1 ms at this size).
INLINE_JUDGING = 256 * 1024
#: Working memory of the answers judged at once, as estimated from their size (the JSON text,
#: the decoded images, their pixels); an answer estimated larger is judged alone.
JUDGING_MEMORY = 96 * MIB

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

#: Declared pixels (width x height) above which an image is refused before any decoding. Twice
#: the contract's largest image (3840x2160, 8.3 MP), so no conformant answer comes near it,
#: while one decoded RGBA image at the bound holds 64 MiB. 8192x8192 would allow 256 MiB per
#: image (a JPEG check holds two), beyond imgconf's whole memory bound of 400 MB.
MAX_PIXELS = 4096 * 4096

#: PNG chunks, JPEG marker segments or WebP chunks walked before the file is refused. Encoders
#: write a handful plus one IDAT per 8-64 KiB of data (libpng: 8 KiB, so this bound is ~80 MB
#: of image data); walking this many takes ~10 ms, a million would take seconds.
MAX_CHUNKS = 10_000

#: JPEG scans (SOS segments). libjpeg's progressive script has 10 and mozjpeg's a few more;
#: each scan is a pass over the whole coefficient buffer, so thousands of tiny scans make a
#: small file cost minutes to decode.
MAX_JPEG_SCANS = 100

#: Bytes inflated per step when checking a PNG's image data: the check's memory, whatever the
#: image's size. (The total it may inflate is the raw size IHDR declares, which MAX_PIXELS
#: bounds; a stream that inflates beyond it is refused at once.)
INFLATE_STEP = 1 << 20

#: Raw PNG image data (rows with their filter bytes) up to which the image data is inflated in
#: one call, by libdeflate, into a buffer of exactly the declared size: about 1.5 times faster
#: than zlib-ng's steps, and one hand-over of the GIL. It holds the raw data and the joined
#: stream meanwhile (two of them fit PIXEL_MEMORY); above this (beyond 2048x2048 RGB, so never
#: for 3840x2160) the inflate goes by INFLATE_STEP.
WHOLE_INFLATE_LIMIT = 16 << 20

#: JPEG files from this size up are checked whole by libjpeg-turbo at an eighth of their size
#: (simplejpeg), a third of the cost of Pillow's two full decodes; smaller ones by those two (a
#: flat 1024x1024 test picture of 23 KB: 6 ms, where libjpeg-turbo takes 0.3 ms). simplejpeg
#: needs numpy (13 MB and 50 ms to import): loaded only by a run that meets photographs, it
#: keeps a long run against small test pictures within its memory.
LIBJPEG_CHECK_BYTES = 256 * 1024

#: Bytes handed to zlib per call when a PNG is inflated in steps. Each call lets go of the GIL
#: and takes it back, and taking it back waits for whichever thread holds it (the event loop,
#: the other judging thread) to let go: up to the interpreter's switch interval, 5 ms. One call
#: per 8 KiB chunk of a PNG made that a hundred waits and more per image. (A JPEG too large to
#: hold three times is digested in strips of this size.)
PIXEL_CALL_BYTES = 1 << 20
#: Bytes of a PNG or JPEG file handed to a Pillow decoder per call (a WebP's decoded frame is
#: read whole, without a copy): a piece is a copy of at most this, and each call lets go of the
#: GIL and waits to take it back. A megabyte a call made a 1536x1024 WebP's 6 MB frame take
#: twice as long beside a busy event loop. (A PNG is read a chunk at a time whatever this is:
#: Pillow reads IDAT chunk by chunk.)
PILLOW_CALL_BYTES = 16 << 20

#: Raw PNG image data (rows with their filter bytes) up to which a PNG decoded for its pixels
#: is decoded from the check's own inflate, re-wrapped in stored (uncompressed) deflate blocks,
#: so that its image data is inflated once, not twice. It holds the raw data twice meanwhile;
#: above this (beyond 2048x2048 RGBA) Pillow inflates the file again instead.
REWRAP_LIMIT = 16 << 20

#: Decoded pixels the judging threads hold at once, as estimated from the size each image
#: declares (:data:`PIXEL_PEAK` bytes a pixel); an image estimated larger is decoded alone.
#: Two 1536x1024 decodes fit (one per judging thread on two cores); a 2048x2048 one is alone.
#: Pixels held are most of what a run holds beyond its verdicts: no more than two decodes need.
PIXEL_MEMORY = 40 * MIB
#: Bytes one decoded pixel costs at the decode's peak: Pillow keeps 4 a pixel (RGB too), and a
#: check holds up to three such copies at once (libwebp's frame and Pillow's image; a PNG's
#: inflated rows, their re-wrap and the image; a JPEG's two decodes and their difference, or,
#: beyond PIXEL_MEMORY, one decode and the strip it digests).
PIXEL_PEAK = 12

#: Images of at most this many bytes per declared pixel have their facts remembered by the
#: digest of their bytes, so a repeat is not decoded again (see
#: :mod:`conformance.engine.seen_images`): hashing such a file costs under a tenth of its
#: cheapest check, a PNG's inflate. Photographs (1-3 bytes a pixel) are never hashed.
SEEN_BYTES_PER_PIXEL = 0.25
#: Images whose facts are remembered at once (each a few hundred bytes).
SEEN_IMAGES = 1024

#: The side of the report's thumbnails, in pixels.
THUMBNAIL_SIDE = 160

# --- recordings ------------------------------------------------------------------------------

#: A recording's total cap, and one entry's, in bytes.
RECORD_CAP = DEFAULT_RECORD_CAP_MIB * MIB
RECORD_ENTRY_CAP = 64 * MIB

# --- profile draft --------------------------------------------------------------------------

#: Models of a ``GET …/models`` listing drafted at most (refused probes are free, so a listing
#: of thousands would otherwise mean thousands of requests); ``--models`` names others.
MAX_LISTED_MODELS = 32

# --- reports --------------------------------------------------------------------------------

#: The HTML gallery shows at most this many thumbnails and bytes of them (the file stays small).
GALLERY_IMAGES = 72
GALLERY_BYTES = 4 * MIB
#: The Markdown report stays below GitHub's comment limit with room to spare.
MARKDOWN_MAX_CHARS = 60_000

# --- redaction -------------------------------------------------------------------------------

#: How many layers of encoding (percent inside percent inside JSON escapes, say) are looked
#: through for a secret.
REDACT_DECODE_DEPTH = 3
#: Bodies up to this size (every error body: the transport cuts them there) are also searched
#: whole once decoded as text (JSON-, percent- and HTML-unescaped); a bigger one is an image
#: or an answer carrying images, searched verbatim, as base64 and JSON-unescaped.
REDACT_WHOLE_TEXT_LIMIT = 1 * MIB

# --- spec-diff -------------------------------------------------------------------------------

#: ``$ref`` hops and nesting levels followed in an OpenAPI file before it is called circular.
SPEC_MAX_DEPTH = 12

# --- the embedded reference server ---------------------------------------------------------

#: The largest picture the server draws for a size it was told to accept anyway (a quirk).
MAX_DRAWN_EDGE = 4096

#: Seconds the reference server may take to start.
START_TIMEOUT = 15.0
#: Seconds the server gives open requests (streams, the ``slow`` quirk) when it stops.
GRACEFUL_STOP = 0.5

# --- the reference server's multipart endpoints (edits, variations) ---------------------------

#: The largest multipart body the reference server reads (a larger one is refused with a 400
#: naming ``image``): a 50 MiB image (over the contract's limit, so refused by its own rule)
#: and more fit; file parts beyond a MiB are spooled to disk, not held in memory.
EDIT_BODY_CAP = 96 * MIB
#: Parts of one multipart form, and text parts' size (the longest prompt is 32,000 characters).
EDIT_MAX_PARTS = 64
EDIT_TEXT_PART_CAP = 256 * 1024
#: The side of the marks the server paints on an edit's output, one per input image, as a
#: fraction of the output's shorter side (at least 2 pixels).
EDIT_MARK_FRACTION = 32
