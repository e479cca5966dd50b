"""The stamp: what the reference server received, written into each edit or variation it returns.

The reference server (``conformance/server/edits.py``) writes it, the judge
(``conformance/engine/edit_checks.py``) reads it: this module is the codec between the two, one
layer below both, so neither can drift from the other. A stamp is a small JSON object, in a PNG
``tEXt`` chunk under :data:`STAMP_KEY`, or in JPEG and WebP the EXIF ``ImageDescription`` (tag
:data:`EXIF_DESCRIPTION`) holding ``{STAMP_KEY: stamp}``. Metadata survives a proxy that passes
the image bytes on, so an answer that comes back through a gateway still says what reached the
server behind it.

Its fields (the ``*_FIELD`` names below): the endpoint, how many input images arrived and the
digest of each in order (:data:`DIGEST_CHARS` hex characters of its SHA-256, as
:meth:`~conformance.generation.inputs.InputFile.digest` computes them), the mask's digest (null
without one), the edited region ``[left, top, right, bottom]`` in output pixels (null: none),
the output's size, the marks drawn (one square per input image) and how the first input was
resampled to the output's size.
"""

from __future__ import annotations

import io
import json
from typing import Any

__all__ = [
    "DIGEST_CHARS",
    "ENDPOINT_FIELD",
    "EXIF_DESCRIPTION",
    "IMAGES_FIELD",
    "INPUTS_FIELD",
    "MARKS_FIELD",
    "MASK_FIELD",
    "REGION_FIELD",
    "RESAMPLE_FIELD",
    "SIZE_FIELD",
    "STAMP_KEY",
    "read_stamp",
    "stamp_json",
]

#: The metadata key of the stamp: a PNG text chunk's keyword, and the key of the JSON object in
#: the EXIF description of JPEG and WebP outputs.
STAMP_KEY = "imgconf-edit"
#: The EXIF tag (ImageDescription) that carries the stamp in JPEG and WebP.
EXIF_DESCRIPTION = 0x010E
#: Hex characters of a SHA-256 digest the stamp keeps.
DIGEST_CHARS = 16

ENDPOINT_FIELD = "endpoint"
#: How many input images the server used.
INPUTS_FIELD = "inputs"
#: The digest of each input image used, in order.
IMAGES_FIELD = "images"
#: The mask's digest, or null when no mask was used.
MASK_FIELD = "mask"
#: The edited region's bounding box in output pixels, or null.
REGION_FIELD = "region"
#: The output's ``[width, height]``.
SIZE_FIELD = "size"
#: The square drawn for each input image, ``[x0, y0, x1, y1]`` (x1 and y1 excluded).
MARKS_FIELD = "marks"
#: The resampling filter by which the first input was brought to the output's size.
RESAMPLE_FIELD = "resample"


def stamp_json(stamp: dict[str, Any]) -> str:
    """The stamp as the PNG text chunk holds it (compact JSON)."""
    return json.dumps(stamp, separators=(",", ":"))


def read_stamp(data: bytes) -> dict[str, Any] | None:
    """The stamp of an encoded image (None: it carries none, or it does not decode)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            text = getattr(image, "text", {}).get(STAMP_KEY) if image.format == "PNG" else None
            if text is not None:
                value = json.loads(text)
                return value if isinstance(value, dict) else None
            description = image.getexif().get(EXIF_DESCRIPTION)
    except Exception:
        return None
    if not isinstance(description, str):
        return None
    try:
        value = json.loads(description)
    except ValueError:
        return None
    stamp = value.get(STAMP_KEY) if isinstance(value, dict) else None
    return stamp if isinstance(stamp, dict) else None
