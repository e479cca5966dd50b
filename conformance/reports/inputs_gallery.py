"""The HTML report's view of failed edits: each case's input images, its mask and what the
server returned, side by side.

Nothing of the inputs is stored in a report: each is made again from its recipe (the case's
``request.parts``, :class:`~conformance.generation.inputs.InputFile`). A recipe padded to a byte
limit (4 MB, 50 MB) has the pixels of its small encoded picture, so the thumbnail is drawn from
that picture and the padding is never built. Thumbnails are small PNGs imgconf draws itself, and
the section is bounded in cases, inputs per case and bytes, like the gallery.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..generation.inputs import InputFile
from .document import column, model_label

__all__ = ["EDIT_CASES", "INPUTS_PER_CASE", "INPUT_SIDE", "edit_gallery", "input_thumbnail"]

#: Failed (or warned) edit cases shown, worst first.
EDIT_CASES = 12
#: Input files shown per case (images, then the mask); the rest are counted.
INPUTS_PER_CASE = 4
#: The longest side of an input's thumbnail, in pixels.
INPUT_SIDE = 96
#: The most bytes of thumbnails the section holds.
SECTION_BYTES = 1024 * 1024

CSS = (
    ".edits{display:flex;flex-direction:column;gap:10px}"
    ".edit{display:flex;gap:8px;align-items:flex-start;border:1px solid #d1d9e0;"
    "border-radius:6px;padding:6px}"
    ".edit figure{border:0;padding:0;width:112px}"
    ".edit figure .img{height:100px}.edit figure img{max-width:96px;max-height:96px}"
    ".edit .what{font-size:12px;min-width:180px}"
)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def input_thumbnail(recipe: InputFile, side: int = INPUT_SIDE) -> bytes | None:
    """A small PNG of an input file made from its recipe; None when its bytes are not an image
    (a text file, a truncated picture: that is what the case sent)."""
    if recipe.format == "text" or recipe.truncate is not None:
        return None
    try:
        with Image.open(io.BytesIO(recipe.encoded())) as image:
            image.thumbnail((side, side))
            out = io.BytesIO()
            image.save(out, "PNG")
            return out.getvalue()
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def _figure(label: str, data: bytes | None, note: str) -> str:
    if data is None:
        inner = f'<span class="muted">{_e(note or "not an image")}</span>'
    else:
        uri = "data:image/png;base64," + base64.b64encode(data).decode()
        inner = f'<img alt="{_e(label)}" src="{uri}">'
    return (
        f'<figure><div class="img">{inner}</div><figcaption>{_e(label)}'
        f'<br><span class="muted">{_e(note)}</span></figcaption></figure>'
    )


def _inputs(case: dict[str, Any]) -> list[tuple[str, InputFile]]:
    """The case's file parts, images first then the mask, with the name each was sent as."""
    files = []
    for part in case["request"].get("parts") or ():
        recipe = part.get("recipe")
        if isinstance(recipe, dict):
            try:
                files.append((str(part["name"]), InputFile.from_dict(recipe)))
            except (TypeError, ValueError):
                continue
    return sorted(files, key=lambda item: item[1].role == "mask")


def _output(case_id: str, thumbnails: Sequence[tuple[str, int, bytes]]) -> bytes | None:
    return next((data for cid, _index, data in thumbnails if cid == case_id), None)


def edit_gallery(report: dict[str, Any], thumbnails: Sequence[tuple[str, int, bytes]] = ()) -> str:
    """The section, or "" when no edit or variation case failed or warned."""
    shown = [
        c
        for c in report["cases"]
        if c.get("endpoint") and c["outcome"] in ("fail", "warn") and _inputs(c)
    ]
    if not shown:
        return ""
    shown.sort(key=lambda c: c["outcome"] != "fail")
    rows, used = [], 0
    for case in shown[:EDIT_CASES]:
        figures = []
        inputs = _inputs(case)
        for name, recipe in inputs[:INPUTS_PER_CASE]:
            data = input_thumbnail(recipe)
            used += len(data or b"")
            size = f"{recipe.width}×{recipe.height} {recipe.format}"
            figures.append(_figure(f"{name}: {recipe.filename}", data, size))
        if len(inputs) > INPUTS_PER_CASE:
            figures.append(f'<div class="muted">+{len(inputs) - INPUTS_PER_CASE} more inputs</div>')
        output = _output(case["id"], thumbnails)
        used += len(output or b"")
        figures.append(_figure("returned", output, "" if output else "no image kept"))
        wrong = "; ".join(f["message"] for f in case["findings"])[:300]
        rows.append(
            f'<div class="edit"><div class="what"><b>{_e(case["outcome"].upper())}</b> '
            f"<code>{_e(case['id'])}</code><br>{_e(model_label(column(case)))} · "
            f"{_e(case['title'])}<br>{_e(wrong)}</div>{''.join(figures)}</div>"
        )
        if used > SECTION_BYTES:
            break
    more = len(shown) - len(rows)
    caption = f"{len(rows)} of {len(shown)} failed or warned edits" + (
        f"; {more} more in report.json" if more > 0 else ""
    )
    return (
        f"<style>{CSS}</style><h2>Edits: inputs, mask and answer</h2>"
        f'<p class="muted">{_e(caption)}. The inputs are drawn again from their recipes '
        "(never stored); the answer is the run's thumbnail.</p>"
        f'<div class="edits">{"".join(rows)}</div>'
    )
