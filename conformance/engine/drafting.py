"""Drafting a profile from a live endpoint: probe what each model takes, refuses and ignores.

``imgconf profile draft`` asks an endpoint the questions a profile answers (which sizes, how
many images, which answer formats and which by default, which standard fields), each as one
small request, and writes down what it saw as a declared model whose every fact is ``SHOULD``
with its ``observed:`` evidence, for a person to review and raise to MUST.

Spending is bounded the way a run's is: every probe reserves its worst case (the images it asks
for, as if the server accepted it) in the runner's :class:`~conformance.engine.runner.Budget`
before it is sent, and is settled by :func:`~conformance.engine.runner.may_have_generated`. A
probe that does not fit is not sent, and the draft says what it could not learn. Negative
probes (a value the model may refuse) cost nothing when refused and are budgeted as accepted,
so a server that accepts everything still never gets more than ``--max-images`` images' worth
of requests. Probes are sent one at a time, and 429/503 answers are not retried.

The candidate values come from the contract (every size its models list, every value of each
standard enum field, the request schema's ``n`` bounds), never from literals here. What probing
cannot learn (a model's own extension parameters, its prompt limit, whether an accepted field
has an effect that no answer shows) is said so in the draft.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..contract.declared import STANDARD
from ..contract.loader import OPTIONAL_FIELDS, SERVER_CHOICE, Contract, parse_wxh
from ..generation.cases import Case
from ..redact import printable, redactor, strip_url
from ..settings import MAX_LISTED_MODELS
from .base64_strict import decode_base64
from .image_facts import inspect_image
from .results import Exchange
from .runner import Budget, may_have_generated
from .transport import TargetClient

__all__ = [
    "MAX_LISTED_MODELS",
    "Answer",
    "Drafter",
    "ModelDraft",
    "draft_document",
    "draft_text",
    "listed_models",
    "read_answer",
    "summary_lines",
]

#: The prompt of every probe: short, harmless, cheap to draw.
PROMPT = "a small red circle on a white background"
#: The value sent for a free-text standard field (``user``).
TEXT_VALUE = "imgconf-draft"
#: Fields probed by their own step (their effect can be seen in the answer); every other
#: standard field is probed generically: accepted, or refused.
OWN_STEPS = frozenset({"prompt", *OPTIONAL_FIELDS}) - {"model", "moderation", "style", "user"}
#: Steps tried to find a ``WxH`` rule's divisor: the first accepted is the divisor.
DIVISOR_STEPS = (1, 2, 4, 8, 16, 32, 64)


# --- one answer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One image of an answer: how it came (``b64_json``/``url``) and what it is."""

    carried: str
    format: str | None = None
    width: int | None = None
    height: int | None = None
    transparent: bool | None = None

    @property
    def size(self) -> str | None:
        return f"{self.width}x{self.height}" if self.width and self.height else None


@dataclass(frozen=True)
class Answer:
    """What one probe's answer says, in the terms a profile uses."""

    status: int | None
    items: tuple[Item, ...] = ()
    streamed: bool = False
    #: Not sent: its worst case did not fit the budget.
    skipped: bool = False
    failure: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        return self.status is not None and 400 <= self.status < 500

    def describe(self) -> str:
        """The answer in a few words, for ``observed:``."""
        if self.skipped:
            return "not sent (budget)"
        if self.status is None:
            return f"no answer ({self.failure})"
        if not self.accepted:
            return str(self.status)
        if self.streamed:
            return f"{self.status} event stream"
        if not self.items:
            return f"{self.status} without images"
        first = self.items[0]
        kind = f"{first.size or '?'} {first.format or '?'} ({first.carried})"
        return f"{self.status} {len(self.items)} image{'s' * (len(self.items) > 1)} {kind}"


def read_answer(exchange: Exchange, *, alpha: bool = False) -> Answer:
    """The answer to one probe; ``alpha`` reads whether its images have transparent pixels."""
    if exchange.error is not None or exchange.status is None:
        failure = getattr(exchange.error, "value", exchange.error)
        return Answer(status=None, failure=str(failure or "no status"))
    status = exchange.status
    if not 200 <= status < 300:
        return Answer(status=status)
    if exchange.content_type == "text/event-stream":
        return Answer(status=status, streamed=True)
    try:
        data = json.loads(exchange.response_body).get("data")
    except (ValueError, UnicodeDecodeError, AttributeError, RecursionError):
        return Answer(status=status)
    if not isinstance(data, list):
        return Answer(status=status)
    fetched = iter(exchange.fetches)
    items = []
    for entry in data:
        if not isinstance(entry, Mapping):
            continue
        if isinstance(entry.get("b64_json"), str):
            items.append(_item("b64_json", decode_base64(entry["b64_json"]), alpha))
        elif isinstance(entry.get("url"), str):
            fetch = next(fetched, None)
            ok = fetch is not None and fetch.status is not None and 200 <= fetch.status < 300
            items.append(_item("url", fetch.response_body if ok and fetch else None, alpha))
    return Answer(status=status, items=tuple(items))


def _item(carried: str, data: bytes | None, alpha: bool) -> Item:
    if not data:
        return Item(carried)
    facts = inspect_image(data, check_alpha=alpha)
    transparent = None if not alpha else (facts.min_alpha is not None and facts.min_alpha < 255)
    return Item(carried, facts.format, facts.width, facts.height, transparent)


def listed_models(exchange: Exchange) -> list[str] | None:
    """The model ids of a ``GET …/models`` answer, or None when it is not a model list."""
    if exchange.status is None or not 200 <= exchange.status < 300:
        return None
    try:
        data = json.loads(exchange.response_body).get("data")
    except (ValueError, UnicodeDecodeError, AttributeError, RecursionError):
        return None
    if not isinstance(data, list):
        return None
    ids = [e.get("id") for e in data if isinstance(e, Mapping)]
    return list(dict.fromkeys(i for i in ids if isinstance(i, str) and i.strip() == i and i))


# --- what is learnt of one model ------------------------------------------------------------------


@dataclass
class ModelDraft:
    """The facts learnt of one model, each with what was observed."""

    name: str
    #: fact -> (value, observed)
    facts: dict[str, tuple[Any, str]] = field(default_factory=dict)
    takes: dict[str, str] = field(default_factory=dict)
    ignores: dict[str, str] = field(default_factory=dict)
    refuses: dict[str, str] = field(default_factory=dict)
    #: What could not be learnt, and why (comments of the draft).
    notes: list[str] = field(default_factory=list)
    #: Why the model could not be probed at all (None: it could).
    unusable: str | None = None

    #: Probes that did not fit the budget, in the order they came.
    skipped: list[str] = field(default_factory=list)

    def fact(self, key: str, value: Any, observed: str) -> None:
        self.facts[key] = (value, observed)

    def skip(self, *probes: str) -> None:
        self.skipped.extend(probes)

    def comments(self) -> list[str]:
        """What the draft could not say of the model: its notes, then the probes not sent."""
        out = list(dict.fromkeys(self.notes))
        if self.skipped:
            out.append(f"not probed (budget): {', '.join(self.skipped)}")
        return out


class Drafter:
    """Probes an endpoint's models within an image budget and states what it saw."""

    def __init__(self, client: TargetClient, budget: Budget, contract: Contract) -> None:
        self.client = client
        self.budget = budget
        self.contract = contract
        self.sent = 0
        self._serial = 0
        #: Reservations taken again for the probe in flight (a resend after a dropped
        #: connection): each one kept, since the dropped try may have generated.
        self._again = 0
        client.resend_gate = self._reserve_again

    async def _reserve_again(self, case: Case) -> bool:
        """A probe sent once more (its connection dropped) only if it fits once more."""
        if not self.budget.reserve(case):
            return False
        self._again += 1
        return True

    # --- sending ---------------------------------------------------------------------------

    async def ask(self, model: str, fields: Mapping[str, Any], *, alpha: bool = False) -> Answer:
        """Send one probe if its worst case fits the budget, and read its answer."""
        self._serial += 1
        images = _asked_images(fields)
        case = Case(
            id=f"draft.{self._serial}",
            model=model,
            kind="probe",
            rule="",
            level="",
            expect="either",
            body={"model": model, "prompt": PROMPT, **fields},
            origin="draft",
            images=images,
            cost=None,
            title=_shown(fields),
        )
        if not self.budget.reserve(case):
            return Answer(status=None, skipped=True)
        exchange: Exchange | None = None
        try:
            exchange = await self.client.send_case(case)
        finally:
            for _ in range(self._again):
                self.budget.settle(case, generated=True)
            self._again = 0
            self.budget.settle(case, generated=exchange is None or may_have_generated(exchange))
        self.sent += 1
        return read_answer(exchange, alpha=alpha)

    # --- one model --------------------------------------------------------------------------

    async def draft_model(self, model: str) -> ModelDraft:
        """Everything probing can learn of one model, cheapest and most telling first."""
        draft = ModelDraft(model)
        base = await self.ask(model, {})
        if base.skipped:
            draft.unusable = "not probed (budget)"
            return draft
        if not base.accepted or not base.items:
            draft.unusable = f"a plain request (model and prompt) answered {base.describe()}"
            return draft
        first = base.items[0]
        await self._formats(draft, "response_format", "response_formats", base, "carried")
        await self._formats(draft, "output_format", "output_formats", base, "format")
        await self._sizes(draft, first)
        await self._n(draft)
        await self._qualities(draft)
        for name in STANDARD:
            if name not in OWN_STEPS:
                await self._plain_field(draft, name)
        await self._stream(draft)
        await self._background(draft)
        await self._compression(draft)
        await self._n_max(draft)
        await self._custom_sizes(draft)
        return draft

    async def _formats(
        self, draft: ModelDraft, param: str, fact: str, base: Answer, attribute: str
    ) -> None:
        """An answer format: which values come back as asked, and which is the default."""
        default = getattr(base.items[0], attribute)
        if default is None:
            draft.notes.append(f"{param}: the plain answer's format could not be read")
            return
        honoured, other, refused, skipped = [], [], [], []
        for value in self.contract.enum_fields.get(param, ()):
            answer = await self.ask(draft.name, {param: value})
            got = getattr(answer.items[0], attribute) if answer.items else None
            if answer.skipped:
                skipped.append(value)
            elif answer.accepted and got == value:
                honoured.append(value)
            elif answer.accepted:
                other.append(f"{value} -> {got}")
            elif answer.refused:
                refused.append(f"{value} -> {answer.status}")
        seen = f"omitted -> {default}; " + _joined(
            ("as asked", honoured), ("another", other), ("refused", refused)
        )
        if skipped:
            draft.skip(*(f"{param}={v}" for v in skipped))
        values = [default, *[v for v in honoured if v != default]]
        draft.fact(fact, values, seen)
        if len(values) > 1:
            return
        if other:
            draft.ignores[param] = seen
        elif refused and not honoured:
            draft.refuses[param] = seen

    async def _sizes(self, draft: ModelDraft, first: Item) -> None:
        """Which of the contract's sizes are accepted, and at which size they come back."""
        default = first.size
        honoured, moved, refused = [], [], []
        for size in _candidate_sizes(self.contract):
            answer = await self.ask(draft.name, {"size": size})
            got = answer.items[0].size if answer.items else None
            if answer.skipped:
                draft.skip(f"size={size}")
            elif answer.accepted and (got == size or (size == SERVER_CHOICE and got)):
                honoured.append(size)
            elif answer.accepted:
                moved.append(f"{size} -> {got}")
            elif answer.refused:
                refused.append(f"{size} -> {answer.status}")
        seen = f"omitted -> {default}; " + _joined(
            ("as asked", honoured), ("another size", moved), ("refused", refused)
        )
        if default:
            draft.fact("default_size", default, f"size omitted -> {default}")
        wxh = [s for s in honoured if parse_wxh(s)]
        if moved and set(wxh) <= {default}:
            draft.ignores["size"] = seen
        elif wxh:
            draft.fact("sizes", sorted(honoured, key=lambda s: s != default), seen)
            if moved:
                draft.notes.append(f"size: answered at another size: {', '.join(moved)}")
        elif refused:
            draft.refuses["size"] = seen

    async def _n(self, draft: ModelDraft) -> None:
        """Whether ``n`` is honoured: two images asked, two answered."""
        two = await self.ask(draft.name, {"n": 2})
        if two.skipped:
            draft.skip("n=2")
        elif two.accepted and len(two.items) == 2:
            draft.fact("n", {"min": 1, "max": 2}, f"n=2 -> {two.describe()}")
        elif two.accepted:
            draft.ignores["n"] = f"n=2 -> {two.describe()}"
        elif two.refused:
            one = await self.ask(draft.name, {"n": 1})
            seen = f"n=2 -> {two.status}; n=1 -> {one.describe()}"
            if one.accepted and len(one.items) == 1:
                draft.fact("n", {"min": 1, "max": 1}, seen)
            elif one.refused:
                draft.refuses["n"] = seen

    async def _n_max(self, draft: ModelDraft) -> None:
        """The largest ``n`` honoured: from the request schema's maximum down, refusals free."""
        known = draft.facts.get("n")
        if known is None or known[0]["max"] < 2:
            return
        bounds = self.contract.bounds("n")
        top = bounds[1] if bounds else 2
        refused, skipped = [], []
        found = 2
        for n in range(top, 2, -1):
            answer = await self.ask(draft.name, {"n": n})
            if answer.skipped:
                skipped.append(n)
            elif answer.accepted and len(answer.items) == n:
                found = n
                break
            elif answer.refused:
                refused.append(n)
        seen = [known[1]]
        if found > 2:
            seen.append(f"n={found} -> {found} images")
        if refused:
            seen.append(f"n={_span(refused)} -> refused")
        if skipped:
            draft.skip(f"n={_span(skipped)}")
        draft.fact("n", {"min": 1, "max": found}, "; ".join(seen))

    async def _qualities(self, draft: ModelDraft) -> None:
        """Which quality values are accepted (their effect is not visible in an answer)."""
        taken, refused = await self._accepted_values(draft, "quality")
        if taken:
            draft.fact("qualities", taken, f"accepted: {', '.join(taken)}" + _also(refused))
        elif refused:
            draft.refuses["quality"] = f"refused: {', '.join(refused)}"

    async def _plain_field(self, draft: ModelDraft, name: str) -> None:
        """A field whose effect no answer shows: accepted (taken) or refused."""
        taken, refused = await self._accepted_values(draft, name)
        if taken:
            draft.takes[name] = f"accepted: {', '.join(map(str, taken))}" + _also(refused)
            draft.notes.append(f"{name}: accepted; whether it has an effect cannot be seen")
        elif refused:
            draft.refuses[name] = f"refused: {', '.join(map(str, refused))}"

    async def _accepted_values(self, draft: ModelDraft, name: str) -> tuple[list[Any], list[Any]]:
        taken, refused = [], []
        for value in _values_of(self.contract, name):
            answer = await self.ask(draft.name, {name: value})
            if answer.skipped:
                draft.skip(f"{name}={value}")
            elif answer.accepted:
                taken.append(value)
            elif answer.refused:
                refused.append(value)
        return taken, refused

    async def _stream(self, draft: ModelDraft) -> None:
        """Streaming: answered as an event stream, as JSON (ignored), or refused."""
        answer = await self.ask(draft.name, {"stream": True})
        seen = f"stream=true -> {answer.describe()}"
        if answer.streamed:
            draft.fact("stream", True, seen)
        elif answer.accepted:
            draft.ignores["stream"] = seen
        elif answer.refused:
            draft.refuses["stream"] = seen
        elif answer.skipped:
            draft.skip("stream")

    async def _background(self, draft: ModelDraft) -> None:
        """A transparent background: with alpha (taken), without (ignored), or refused."""
        values = _values_of(self.contract, "background")
        if not values:
            return
        fields: dict[str, Any] = {"background": values[0]}
        answer = await self.ask(draft.name, fields, alpha=True)
        seen = f"background={values[0]} -> {answer.describe()}"
        transparent = any(item.transparent for item in answer.items)
        if answer.accepted and transparent:
            draft.fact("background", True, seen + " with transparent pixels")
        elif answer.accepted:
            draft.ignores["background"] = seen + " without transparent pixels"
        elif answer.refused:
            draft.refuses["background"] = seen
        elif answer.skipped:
            draft.skip("background")

    async def _compression(self, draft: ModelDraft) -> None:
        """``output_compression``, sent with a lossy format the model answers in."""
        bounds = self.contract.bounds("output_compression")
        if bounds is None:
            return
        level = (bounds[0] + bounds[1]) // 2
        formats = draft.facts.get("output_formats", ([], ""))[0]
        # The formats that take a compression, as the request schema's cross-field rules say.
        lossy = [
            f
            for f in (formats if len(formats) > 1 else ())
            if all(
                c.holds({"output_format": f, "output_compression": level})
                for c in self.contract.cross_fields
            )
        ]
        fields: dict[str, Any] = {"output_compression": level}
        if lossy:
            fields["output_format"] = lossy[0]
        answer = await self.ask(draft.name, fields)
        seen = f"{_shown(fields)} -> {answer.describe()}"
        if answer.accepted and lossy:
            draft.fact("output_compression", True, seen)
        elif answer.accepted:
            draft.ignores["output_compression"] = seen
        elif answer.refused:
            draft.refuses["output_compression"] = seen
        elif answer.skipped:
            draft.skip("output_compression")

    async def _custom_sizes(self, draft: ModelDraft) -> None:
        """Whether free ``WxH`` sizes are taken: a size off every list, then the rule's divisor
        and limits (:meth:`_wxh_limits`)."""
        sizes = draft.facts.get("sizes")
        if sizes is None:
            return
        listed = [wxh for s in sizes[0] if (wxh := parse_wxh(s))]
        if not listed:
            return
        width, height = max(listed, key=lambda wh: wh[0] * wh[1])
        base = max(64, width * 3 // 4 // 64 * 64)
        custom = f"{base}x{height}"
        answer = await self.ask(draft.name, {"size": custom})
        if answer.skipped:
            draft.skip("free WxH sizes")
            return
        if not (answer.accepted and answer.items and answer.items[0].size == custom):
            return
        seen = [f"{custom} -> {custom}"]
        shapes = [*listed, (base, height)]
        divisor = None
        for step in DIVISOR_STEPS:
            wide = f"{base + step}x{height}"
            probe = await self.ask(draft.name, {"size": wide})
            if probe.skipped:
                draft.skip(f"the WxH divisor from {wide}")
                break
            if probe.accepted and probe.items and probe.items[0].size == wide:
                divisor = step
                shapes.append((base + step, height))
                seen.append(f"{wide} -> {wide}")
                break
            seen.append(f"{wide} -> {probe.describe()}")
        if divisor is None:
            divisor = math.gcd(base, height) & -math.gcd(base, height)
            draft.notes.append(f"size: divisor taken as {divisor} (no finer step was accepted)")
        else:
            shapes += await self._wxh_limits(draft, divisor, shapes, seen)
        draft.fact(
            "sizes",
            {"list": list(sizes[0]), "wxh": _envelope(shapes, divisor)},
            f"{sizes[1]}; free sizes: {'; '.join(seen)}",
        )
        draft.notes.append(
            "size: the WxH limits are the envelope of the sizes seen accepted (edges, aspect, "
            "pixels); the real limits may differ"
        )

    async def _wxh_limits(
        self, draft: ModelDraft, step: int, shapes: list[tuple[int, int]], seen: list[str]
    ) -> list[tuple[int, int]]:
        """Sizes at a ``WxH`` rule's limits, searched by halving along three lines: the
        smallest square, the largest square (up to the contract's largest edge), and the
        widest shape on the smallest edge. Refusals are free; each size accepted costs one."""
        ceiling = max(_edge_ceiling(self.contract), *(max(s) for s in shapes)) // step * step
        squares = [s[0] for s in shapes if s[0] == s[1] and s[0] % step == 0]
        if not squares:
            return []

        async def square(edge: int) -> bool | None:
            return await self._as_asked(draft, edge, edge)

        smallest = await self._halve(square, step, min(squares), step, down=True)
        largest = await self._halve(square, max(squares), ceiling, step, down=False)

        async def wide(edge: int) -> bool | None:
            return await self._as_asked(draft, edge, smallest)

        widest = await self._halve(wide, smallest, ceiling, step, down=False)
        seen.append(
            f"squares {smallest}x{smallest} to {largest}x{largest} and {widest}x{smallest} "
            f"as asked (the next size by {step} past each: not)"
        )
        return [(smallest, smallest), (largest, largest), (widest, smallest)]

    async def _as_asked(self, draft: ModelDraft, width: int, height: int) -> bool | None:
        """Whether a size comes back as asked; None when the probe did not fit the budget."""
        size = f"{width}x{height}"
        answer = await self.ask(draft.name, {"size": size})
        if answer.skipped:
            draft.skip(f"the WxH limits past {size}")
            return None
        return answer.accepted and bool(answer.items) and answer.items[0].size == size

    @staticmethod
    async def _halve(holds: Any, low: int, high: int, step: int, *, down: bool) -> int:
        """The last edge in ``[low, high]`` (multiples of ``step``) where ``holds`` does,
        searching by halves: upwards from ``low`` (known to hold), or downwards from ``high``
        (known to hold) when ``down``. A probe that was not sent ends the search."""
        while low < high:
            half = -(-((high - low) // step) // 2) * step
            mid = high - half if down else low + half
            result = await holds(mid)
            if result is None:
                break
            if down:
                high, low = (mid, low) if result else (high, mid + step)
            else:
                low, high = (mid, high) if result else (low, mid - step)
        return high if down else low


# --- pure helpers --------------------------------------------------------------------------------


def _asked_images(fields: Mapping[str, Any]) -> int:
    """A probe's worst case: the images it asks for (``n``, else one)."""
    n = fields.get("n", 1)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


def _candidate_sizes(contract: Contract) -> list[str]:
    """Every size a contract model lists, once, in the contract's order."""
    return list(dict.fromkeys(s for spec in contract.models.values() for s in spec.sizes))


def _values_of(contract: Contract, name: str) -> tuple[Any, ...]:
    """Valid values of a standard field to probe: its enum's, or a short text for a string."""
    values = contract.enum_fields.get(name)
    if values:
        return tuple(values)
    return (TEXT_VALUE,) if "string" in contract.types(name) else ()


def _envelope(shapes: Iterable[tuple[int, int]], divisor: int) -> dict[str, Any]:
    """A ``WxH`` rule no wider than the sizes seen accepted."""
    shapes = list(shapes)
    aspect = max(max(w, h) / min(w, h) for w, h in shapes)
    return {
        "multiple_of": divisor,
        "min_edge": min(min(w, h) for w, h in shapes),
        "max_edge": max(max(w, h) for w, h in shapes),
        "max_aspect": max(1.0, math.floor(aspect * 1000) / 1000),
        "max_pixels": max(w * h for w, h in shapes),
    }


def _edge_ceiling(contract: Contract) -> int:
    """The largest edge worth asking: the contract's largest stated or listed one."""
    stated = [s.custom_sizes.max_edge for s in contract.models.values() if s.custom_sizes]
    listed = [max(wxh) for s in _candidate_sizes(contract) if (wxh := parse_wxh(s))]
    return max([*stated, *listed])


def _span(numbers: list[int]) -> str:
    low, high = min(numbers), max(numbers)
    return str(low) if low == high else f"{low}..{high}"


def _shown(fields: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in fields.items()) or "plain"


def _joined(*groups: tuple[str, list[Any]]) -> str:
    return "; ".join(
        f"{label}: {', '.join(map(str, values))}" for label, values in groups if values
    )


def _also(refused: list[Any]) -> str:
    return f"; refused: {', '.join(map(str, refused))}" if refused else ""


# --- the draft -----------------------------------------------------------------------------------


def _should(value: Any, observed: str, day: str) -> dict[str, Any]:
    return {"value": value, "level": "SHOULD", "observed": f"{day}: {observed}"}


def _model_entry(draft: ModelDraft, source: str, day: str) -> dict[str, Any]:
    """The declared model of what was observed: every fact SHOULD, with its evidence."""
    entry: dict[str, Any] = {"name": draft.name, "source": source}
    facts = dict(draft.facts)
    sizes = facts.get("sizes")
    default = facts.get("default_size")
    listed = sizes is not None and isinstance(sizes[0], list)
    if listed and default is not None and default[0] not in sizes[0]:
        facts.pop("default_size")
    if "size" in draft.refuses and default is None:
        draft.notes.append("size: no default size could be read")
    for key, (value, seen) in facts.items():
        entry[key] = _should(value, seen, day)
    for key, group in (("takes", draft.takes), ("ignores", draft.ignores)):
        if group:
            entry[key] = _should(list(group), "; ".join(f"{k}: {v}" for k, v in group.items()), day)
    if draft.refuses:
        seen = "; ".join(f"{k}: {v}" for k, v in draft.refuses.items())
        entry["refuses"] = _should(list(draft.refuses), seen, day)
    return entry


def draft_document(
    drafts: Iterable[ModelDraft],
    *,
    name: str,
    base_url: str,
    contract: Contract,
    path: str,
    reach: Mapping[str, Any] | None = None,
    day: str | None = None,
) -> dict[str, Any]:
    """The profile (a mapping, as ``load_profile`` reads it) of what was observed."""
    day = day or time.strftime("%Y-%m-%d", time.gmtime())
    target = strip_url(base_url)
    source = f"observed at {target} on {day} (imgconf profile draft)"
    models: list[Any] = []
    for draft in drafts:
        if draft.unusable:
            continue
        if draft.name in contract.models:
            models.append(draft.name)  # a contract model: judged by the contract's own facts
        else:
            models.append(_model_entry(draft, source, day))
    doc: dict[str, Any] = {
        "name": name,
        "title": f"Drafted from {target}",
        "description": "Every fact is what the endpoint answered to a probe (level SHOULD). "
        "Review each one against the vendor's documentation, then raise it to MUST.",
        "source": source,
        "path": path,
    }
    doc.update(reach or {})
    doc["models"] = models
    return doc


def draft_text(drafts: list[ModelDraft], doc: Mapping[str, Any], notes: Iterable[str] = ()) -> str:
    """The draft as YAML, with comments on what probing could not learn (and ``notes``);
    secrets redacted."""
    import yaml

    lines = [
        "# A profile drafted by `imgconf profile draft` from what the endpoint answered.",
        "# Every fact is level SHOULD with its `observed:` evidence: review each one, replace",
        "# `observed:` with the vendor's own words (`evidence:`), and raise what it documents",
        "# to MUST. Probing cannot discover:",
        "#   - a model's own extension parameters (steps, seed, aspect_ratio, ...): add them",
        "#     under `extensions:` as JSON Schema fragments from the vendor's documentation;",
        "#   - its prompt limit (`prompt_max_chars`) and its price per image (`price:`).",
        *(f"# {note}" for note in notes),
    ]
    for draft in drafts:
        if draft.unusable:
            lines.append(f"# {draft.name}: left out: {draft.unusable}")
            continue
        lines.extend(f"# {draft.name}: {note}" for note in draft.comments())
        if isinstance(draft.name, str) and draft.name in doc.get("models", []):
            lines.append(
                f"# {draft.name}: a contract model, listed by name (judged by the contract's "
                "facts); observed:"
            )
            for key, (value, seen) in draft.facts.items():
                lines.append(f"#   {key}: {json.dumps(value)} ({seen})")
            for key, group in (
                ("takes", draft.takes),
                ("ignores", draft.ignores),
                ("refuses", draft.refuses),
            ):
                if group:
                    lines.append(f"#   {key}: {', '.join(group)}")
    body = yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True, width=100)
    return redactor().text("\n".join(_one_line(line) for line in lines) + "\n" + body)


def _one_line(text: str) -> str:
    """A comment line that stays one line (a model id from the target may hold anything)."""
    return "\\n".join(printable(text).splitlines())


def summary_lines(drafts: Iterable[ModelDraft]) -> list[str]:
    """One line per model: what was learnt."""
    out = []
    for draft in drafts:
        if draft.unusable:
            out.append(_one_line(f"{draft.name}: not drafted ({draft.unusable})"))
            continue
        facts = ", ".join(f"{k}={_brief(v)}" for k, (v, _) in draft.facts.items())
        parts = [facts]
        for key, group in (
            ("takes", draft.takes),
            ("ignores", draft.ignores),
            ("refuses", draft.refuses),
        ):
            if group:
                parts.append(f"{key} {','.join(group)}")
        out.append(f"{draft.name}: " + "; ".join(p for p in parts if p))
    return [_one_line(line) for line in out]


def _brief(value: Any) -> str:
    if isinstance(value, list):
        return "/".join(map(str, value))
    if isinstance(value, Mapping) and "wxh" in value:
        return "/".join(value["list"]) + f"+WxH(multiple_of {value['wxh']['multiple_of']})"
    if isinstance(value, Mapping):
        return f"{value.get('min')}..{value.get('max')}"
    return str(value)
