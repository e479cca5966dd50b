"""Judging the answers of the multipart endpoints: ``/images/edits`` and ``/images/variations``.

An edit or variation answer is an ImagesResponse (or an event stream) like a generation's, so it
is held to the generations rules its endpoint reuses (``endpoints:`` in ``rules.yaml``), judged
by the same functions of :mod:`conformance.engine.checks`, at the levels and for the models the
profile gives them on that endpoint (:func:`~conformance.generation.showing.endpoint_rules`).
Beyond them, an edit shows what reached the model:

- **The stamp** (:mod:`conformance.contract.stamp`): the reference server writes into each output
  what it received, and metadata survives a gateway that passes the image on. With it, the rules
  are MUST and exact: ``edits.mask.honoured`` (the mask's digest is the one sent, the edited
  region is the mask's transparent area scaled to the output, and outside it and the marks the
  output is the first input resized, pixel for pixel, or within :data:`LOSSY_TOLERANCE` for a
  lossy format); ``edits.images.all_used`` (one digest per image sent, in order, each exact).
- **No stamp** (a real model): ``edits.mask.honoured.visual`` (SHOULD) compares the output with
  the first input: outside the mask's transparent area it may differ by at most
  :data:`VISUAL_TOLERANCE` levels on average, or by half as much as inside it; the stamp rules
  are then not observed (``not_applicable``), never guessed.

Variations are judged by the reused rules alone: the asked size (``image.size``; an omitted size
means the endpoint's default, 1024x1024), the count, the format, the delivery.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageChops, ImageStat

from ..contract import stamp as codec
from ..contract.loader import ContractError, Endpoint, ModelSpec, Rule, load_contract, parse_wxh
from ..contract.profiles import Profile
from ..generation.cases import Case
from ..generation.coverage import aimed_rules
from ..generation.inputs import InputFile
from ..generation.showing import (
    asked_fields,
    delivery,
    endpoint_rules,
    file_parts,
    form_model,
    showings,
    streams,
)
from .answer_size import AnswerSize
from .checks import (
    AnswerCheck,
    StreamKinds,
    _Asked,
    _Judgement,
    check_json_answer,
    check_stream,
    judge_exchange,
)
from .image_facts import DECODERS, GalleryPicks, read_in_few_calls, sniff_format
from .results import CaseResult, Exchange

__all__ = [
    "EDIT_CHECKS",
    "LOSSY_TOLERANCE",
    "VISUAL_TOLERANCE",
    "judge_form",
]

#: ``edits.mask.honoured.visual``: the mean absolute difference per channel (0-255) outside the
#: mask's transparent area that a real model's edit may show and still keep the mask, whatever
#: it did inside. Above it, the output must differ outside by at most half as much as inside.
VISUAL_TOLERANCE = 8.0
#: ``edits.mask.honoured`` on a stamped JPEG or WebP output: the mean absolute difference per
#: channel outside the edited region that lossy coding may explain (a PNG must be exact).
LOSSY_TOLERANCE = 4.0
_PNG = b"\x89PNG\r\n\x1a\n"
#: Rows compared at once: a 4096-pixel-wide strip of RGBA differences is 8 MiB.
_STRIP = 512
#: The file field of the images to edit and of the mask.
_IMAGE, _MASK = "image", "mask"


# --- the rules ---------------------------------------------------------------------------------


def _endpoint_rule(endpoint: str, rule_id: str) -> AnswerCheck:
    """The check of one of an endpoint's own answer rules, with its declared ``shown_by``."""
    if rule_id not in load_contract().endpoint(endpoint).rules:
        raise ContractError(f"rule {rule_id!r} is not declared for endpoint {endpoint}")
    showing = showings(endpoint).get(rule_id)
    if showing is None:
        raise ContractError(f"answer rule {rule_id!r} has no shown_by in rules.yaml")
    check = AnswerCheck(rule_id, showing)
    if rule_id in EDIT_CHECKS:
        raise ContractError(f"engine: rule {rule_id!r} is registered twice")
    EDIT_CHECKS[rule_id] = check
    return check


#: The answer rules of the multipart endpoints judged here, by id.
EDIT_CHECKS: dict[str, AnswerCheck] = {}
MASK_HONOURED = _endpoint_rule("edits", "edits.mask.honoured")
MASK_VISUAL = _endpoint_rule("edits", "edits.mask.honoured.visual")
ALL_USED = _endpoint_rule("edits", "edits.images.all_used")
EDIT_STREAM_SCHEMA = _endpoint_rule("edits", "edits.stream.event.schema")
EDIT_STREAM_COMPLETED = _endpoint_rule("edits", "edits.stream.completed")


def _stream_kinds(endpoint: Endpoint) -> StreamKinds:
    """An edit stream's events: their types from the endpoint's stream-event schema."""
    defs = endpoint.schemas["stream_event"]["$defs"]
    return StreamKinds(
        partial=defs["partial_image"]["properties"]["type"]["const"],
        completed=defs["completed"]["properties"]["type"]["const"],
        validator=endpoint.validator("stream_event"),
        schema_rule=EDIT_STREAM_SCHEMA,
        completed_rule=EDIT_STREAM_COMPLETED,
    )


# --- what the form asked -------------------------------------------------------------------------


def _asked_form(endpoint: Endpoint, spec: ModelSpec, body: Mapping[str, Any]) -> _Asked:
    """What a correct answer to the form looks like (as :func:`checks._asked` for a body)."""

    def value(name: str) -> Any:
        got = body.get(name) if spec.takes(name) else None
        if got is not None:
            return got
        if name in spec.fixed:
            return spec.fixed[name]
        if name in spec.defaults:
            return spec.defaults[name]
        return endpoint.request_fields.get(name, {}).get("default")

    n = body.get("n") if spec.takes("n") else None
    n = n if isinstance(n, int) and not isinstance(n, bool) else 1
    size = value("size") if spec.takes("size") else None
    if size is None:
        size = spec.default_size
    partial = value("partial_images") if spec.takes("partial_images") else 0
    fmt = value("output_format") if spec.takes("output_format") else None
    return _Asked(
        spec=spec,
        n=n,
        delivery=delivery(body, spec),
        output_format=str(fmt or "png"),
        size=parse_wxh(size) if isinstance(size, str) else None,
        stream=streams(body, spec),
        partial_images=partial if isinstance(partial, int) else 0,
        body=body,
    )


# --- the judge ---------------------------------------------------------------------------------


def judge_form(
    case: Case, exchange: Exchange, profile: Profile, *, thumbnails: bool | GalleryPicks = False
) -> CaseResult:
    """The verdict on the answer to a multipart case. Pure, like :func:`checks.judge` (which
    hands such cases here): safe to re-run on a recording whose summary gives the recipes."""
    contract = profile.contract
    endpoint = contract.endpoint(case.endpoint)
    rules = endpoint_rules(profile, case.endpoint)
    model = form_model(case, endpoint, contract)

    def answer(v: _Judgement) -> None:
        spec = endpoint.models.get(model) if model is not None else None
        if spec is not None:
            _judge_answer(v, case, exchange, endpoint, spec, thumbnails=thumbnails)

    def size() -> AnswerSize:
        spec = endpoint.models.get(model) if model is not None else None
        if spec is None:
            raise LookupError("no model answers the form")
        return _asked_form(endpoint, spec, asked_fields(case, endpoint)).answer_size

    own = rules.get(case.rule)
    return judge_exchange(
        case,
        exchange,
        rules,
        model,
        param=own.param if own is not None else None,
        aimed=aimed_rules(case, None, rules, contract),
        answer=answer,
        size=size,
    )


def _judge_answer(
    v: _Judgement,
    case: Case,
    exchange: Exchange,
    endpoint: Endpoint,
    spec: ModelSpec,
    *,
    thumbnails: bool | GalleryPicks,
) -> None:
    """A 2xx answer: the reused answer rules, then what each output shows of the inputs."""
    asked = _asked_form(endpoint, spec, asked_fields(case, endpoint))
    files = file_parts(case, endpoint, spec.name)
    seen = _Outputs(case, files, rules=v.rules, model=spec.name, endpoint=endpoint.name)
    v.on_output = seen.add
    try:
        if asked.stream:
            check_stream(v, exchange, asked, thumbnails=thumbnails, kinds=_stream_kinds(endpoint))
        else:
            check_json_answer(v, exchange, asked, thumbnails=thumbnails)
    finally:
        v.on_output = None
    seen.conclude(v)


@dataclass
class _Outputs:
    """What the outputs of one answer show of the inputs, gathered image by image (each is
    looked at as it is judged, then let go) and judged once at the end."""

    case: Case
    files: Mapping[str, list[InputFile]]
    rules: Mapping[str, Rule]
    model: str
    endpoint: str
    #: Per rule: outputs judged, and the problems found (index: message).
    judged: dict[str, int] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def _held(self, check: AnswerCheck) -> bool:
        rule = self.rules.get(check.id)
        return rule is not None and self.model in rule.models

    def _note(self, check: AnswerCheck, index: int, problem: str | None) -> None:
        self.judged[check.id] = self.judged.get(check.id, 0) + 1
        if problem is not None:
            self.problems.setdefault(check.id, []).append(f"image {index}: {problem}")

    def add(self, index: int, data: bytes) -> None:
        if self.endpoint != "edits":
            return
        stamp = codec.read_stamp(data)
        images = self.files.get(_IMAGE, [])
        masks = self.files.get(_MASK, [])
        if stamp is not None:
            if self._held(ALL_USED):
                self._note(ALL_USED, index, _all_used_problem(stamp, images))
            if masks and images and self._held(MASK_HONOURED):
                self._note(MASK_HONOURED, index, _mask_problem(stamp, data, images[0], masks[0]))
        elif masks and images and self._held(MASK_VISUAL):
            problem = _visual_problem(data, images[0], masks[0])
            if problem is not False:
                self._note(MASK_VISUAL, index, problem)

    def conclude(self, v: _Judgement) -> None:
        for rule_id in self.judged:
            found = self.problems.get(rule_id, [])
            shown = "; ".join(found[:3]) + (f" (+{len(found) - 3} more)" if len(found) > 3 else "")
            v.check(EDIT_CHECKS[rule_id], not found, shown)


# --- the stamp's rules ---------------------------------------------------------------------------


def _all_used_problem(stamp: Mapping[str, Any], images: list[InputFile]) -> str | None:
    """One digest per image sent, in order, each the digest of the bytes sent."""
    sent = [image.digest() for image in images]
    got = stamp.get(codec.IMAGES_FIELD)
    if not isinstance(got, list):
        return "the stamp lists no input images"
    if got == sent:
        return None
    if len(got) != len(sent):
        return (
            f"{len(sent)} input image(s) were sent, the server used {len(got)} "
            f"(sent {', '.join(sent)}; used {', '.join(map(str, got))})"
        )
    wrong = [i for i, (a, b) in enumerate(zip(sent, got, strict=True)) if a != b]
    if sorted(sent) == sorted(map(str, got)):
        return f"the input images arrived out of order (used {', '.join(map(str, got))})"
    return f"input image(s) {', '.join(map(str, wrong))} arrived changed (digests differ)"


def _decoded(data: bytes, formats: tuple[str, ...] | None = None) -> Image.Image:
    with Image.open(io.BytesIO(data), formats=formats) as image:
        read_in_few_calls(image)
        image.load()
        return image.copy()


def _output_image(data: bytes) -> Image.Image:
    """An output's pixels (one ``inspect_image`` found whole), by the decoder of the format its
    bytes are: no other Pillow decoder is offered a server's bytes."""
    decoder = DECODERS.get(sniff_format(data) or "")
    return _decoded(data, (decoder,) if decoder else ())


def _input_image(recipe: InputFile) -> Image.Image:
    """An input as the server decodes it: from its encoded bytes (a padded file's padding is
    a private chunk decoders skip, so the small encoding has the same pixels)."""
    data = recipe.encoded() if recipe.truncate is None else recipe.read()
    return _decoded(data)


def _edit_area(mask: InputFile, size: tuple[int, int]) -> Image.Image:
    """The mask's fully transparent pixels, scaled to the output's size (nearest neighbour):
    255 where the output may change, 0 where it must not."""
    alpha = _input_image(mask).convert("RGBA").getchannel("A")
    alpha = alpha.resize(size, Image.Resampling.NEAREST)
    return alpha.point(lambda a: 255 if a == 0 else 0)


def _mask_problem(
    stamp: Mapping[str, Any], data: bytes, first: InputFile, mask: InputFile
) -> str | None:
    """The stamp's mask is the mask sent, its region the mask's transparent area scaled to
    the output, and outside it (and the input marks) the output is the first input resized."""
    got = stamp.get(codec.MASK_FIELD)
    if got is None:
        return "the server received no mask (the stamp names none): the whole image was edited"
    if got != mask.digest():
        return f"the server received another mask ({got}, {mask.digest()} was sent)"
    output = _output_image(data)
    size = output.size
    area = _edit_area(mask, size)
    want = list(area.getbbox() or ()) or None
    region = stamp.get(codec.REGION_FIELD)
    if region != want:
        return f"the edited region is {region}, the mask's transparent area is {want}"
    keep = ImageChops.invert(area)
    for box in stamp.get(codec.MARKS_FIELD) or ():
        if _is_box(box):
            keep.paste(0, tuple(box))
    if keep.getbbox() is None:
        return None  # nothing outside the region to compare
    named = str(stamp.get(codec.RESAMPLE_FIELD, "bicubic")).upper()
    resample = getattr(Image.Resampling, named, Image.Resampling.BICUBIC)
    expected = _input_image(first).convert("RGBA").resize(size, resample)
    output = output.convert("RGBA")
    exact = data.startswith(_PNG)
    total = count = 0.0
    # Strip by strip, so that a large output costs few full-size copies.
    for top in range(0, size[1], _STRIP):
        box = (0, top, size[0], min(size[1], top + _STRIP))
        diff = ImageChops.difference(output.crop(box), expected.crop(box))
        where = keep.crop(box)
        if exact:
            # Any channel of any pixel outside the region (and the marks) that differs.
            largest = diff.getchannel(0)
            for band in range(1, len(diff.getbands())):
                largest = ImageChops.lighter(largest, diff.getchannel(band))
            changed = ImageChops.multiply(largest.point(lambda d: 255 if d else 0), where)
            found = changed.getbbox()
            if found is not None:
                left, upper, right, lower = found
                shown = [left, upper + top, right, lower + top]
                return f"pixels outside the mask's transparent area changed (within {shown})"
            continue
        stat = ImageStat.Stat(diff.convert("RGB"), where)
        if stat.count and stat.count[0]:
            total += sum(stat.sum) / len(stat.sum)
            count += stat.count[0]
    mean = total / count if count else 0.0
    if not exact and mean > LOSSY_TOLERANCE:
        return (
            f"outside the mask's transparent area the output differs from the input by "
            f"{mean:.1f} levels on average (at most {LOSSY_TOLERANCE:g} for lossy coding)"
        )
    return None


def _is_box(box: Any) -> bool:
    """Whether a stamp's mark is a box of four integers, non-empty (a hostile stamp may hold
    anything)."""
    if not isinstance(box, list) or len(box) != 4:
        return False
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in box):
        return False
    return box[2] > box[0] and box[3] > box[1]


def _mean(diff: Image.Image, where: Image.Image) -> float:
    """The mean of a difference image's channels over the pixels of a mask."""
    stat = ImageStat.Stat(diff, where)
    return sum(stat.mean) / len(stat.mean) if stat.count and stat.count[0] else 0.0


def _visual_problem(data: bytes, first: InputFile, mask: InputFile) -> str | bool | None:
    """Without a stamp: outside the mask's transparent area, the output differs from the first
    input by at most :data:`VISUAL_TOLERANCE` on average, or half as much as inside. False when
    it cannot be told (a mask that marks nothing, or everything)."""
    output = _output_image(data).convert("RGB")
    area = _edit_area(mask, output.size)
    keep = ImageChops.invert(area)
    if area.getbbox() is None or keep.getbbox() is None:
        return False
    expected = _input_image(first).convert("RGB").resize(output.size, Image.Resampling.BICUBIC)
    diff = ImageChops.difference(output, expected)
    outside, inside = _mean(diff, keep), _mean(diff, area)
    if outside <= VISUAL_TOLERANCE or outside <= inside / 2:
        return None
    return (
        f"outside the mask's transparent area the output differs from the input by "
        f"{outside:.1f} levels on average, inside by {inside:.1f} (allowed: at most "
        f"{VISUAL_TOLERANCE:g}, or half the inside's)"
    )
