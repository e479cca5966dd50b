"""The test plan: the fewest requests that still cover the contract, within a budget.

Valid requests to a real endpoint cost money; invalid ones cost nothing on a conformant server.
So, per model of the profile, :func:`build_plan` makes:

1. **Negative cases** (free on a conformant server): every request rule the model is held to,
   broken alone on a cheap valid body (``must-reject``, ``should-reject``; each body is checked
   with :func:`request_violations` to break that rule and no other), and the grey-area
   ``probe`` cases (unsupported parameters; every way of failing to authenticate, on the model's
   base body and on a streamed one, :data:`AUTH_PROBES`; once for the whole plan: bodies that are
   not JSON or not objects, an unknown model, a missing or wrong key, the default model, a
   trailing slash).
2. **Boundary cases**: ``n`` at 1 and at the model's maximum, a one-character prompt, a prompt
   of exactly the model's limit in mixed scripts (multi-byte, emoji, combining, right-to-left).
3. **Pairwise cases**: a covering array (``covertable``) over the interacting fields (size,
   quality, output_format, background, n, output_compression, stream, partial_images,
   moderation; response_format and style for dall-e), each with its values and a *default*
   (sent as ``null`` the first time, left out after). Constraints are derived from the oracle:
   a pair of values is forbidden when a body with just those two breaks a rule, so no case
   breaks the contract. ``n`` takes 1 and 2 here (2 stands for every n > 1; the maximum is a
   boundary case), which keeps the array's images few.
4. **Each-choice cases**: any value of any field the cases above left out (custom sizes across
   the safe zone, :func:`~conformance.generation.strategies.custom_size_examples`; ``user``), on the cheap
   body.
5. **Explore cases** (``--explore N``): N more per model, drawn from the Hypothesis strategies
   :func:`~conformance.generation.strategies.valid_requests` and
   :func:`~conformance.generation.strategies.invalid_requests` alternately, under the plan's seed
   (:func:`conformance.generation.strategies.explore_requests`); bodies the plan already has are skipped.
   Each is labelled by the oracle (:func:`request_violations`): valid ones expect acceptance,
   the others are held to the first MUST rule they break, else the first SHOULD one. Drawing
   runs in a fresh interpreter (so ``imgconf plan`` and ``imgconf run`` draw the same) and ends
   before anything is sent, so no Hypothesis loop can spend beyond the budget.

Cases whose point is not size or quality use the model's cheapest priced combination.

**Budget.** A plan's spend (``Plan.images``/``Plan.cost``) is what a *conformant* server would
generate: cases expected to be rejected count 0. Each Case still carries what it would cost if a
broken server accepted it: the runner reserves that before sending and gives it back when the
answer is a refusal, so a conformant server gets every negative case whose worst case fits in
what the cases answered before it left. Over ``--max-images``/``--max-cost`` the plan is cut in
this order, each group from its end (the models in turn): (1) negative cases - they spend
nothing, so the budget never needs to cut them; (2) explore - these get what the rest leaves,
each kept in the order drawn while it still fits (:meth:`ExploreDraw.admit`), so a run that
draws them while it sends keeps the same ones; (3) probes that may generate images; (4)
pairwise, last rows first (a greedy covering array adds the fewest new pairs at its end); (5)
each-choice; (6) boundary. Cut cases are listed in ``Plan.cut`` and reported as not covered.
Images of unknown price cannot be bounded by ``--max-cost``: only ``--max-images`` limits them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, cached_property
from itertools import combinations
from pathlib import Path
from typing import Any

from ..contract.loader import SERVER_CHOICE, Contract, ModelSpec, Rule, load_contract
from ..contract.oracle import request_violations, resolve_model
from ..contract.profiles import Profile
from ..errors import SetupError
from .cases import ANY_MODEL, CONTROL_ORIGIN, Case
from .coverage import aimed_rules, case_spec, coverage_summary
from .planned import (
    AUTH_MISSING,
    AUTH_WRONG,
    BODY_NOT_JSON,
    BODY_NOT_OBJECT,
    MODEL_DEFAULT,
    MODEL_UNKNOWN,
    TRAILING_SLASH,
    UNSUPPORTED_PARAM,
    VALID_ACCEPTED,
)
from .strategies import (
    DEFAULT_PROMPT,
    custom_size_corners,
    custom_size_examples,
    explore_stream,
    features_used,
    ignored_param_values,
    invalid_variants,
    param_values,
    prompt_of_length,
    unsupported_param_variants,
)

__all__ = [
    "AUTH_PROBES",
    "CUT_ORDER",
    "ExploreDraw",
    "Plan",
    "build_plan",
    "complete_plan",
    "pairwise_factors",
    "spends",
]

#: Groups the budget cuts, first to last. Negative cases count 0 in the plan (a conformant
#: server generates nothing for them), so the plan never cuts them: the runner sends each whose
#: worst case fits what is left when its turn comes. The controls go last: every refusal of
#: their model leans on them.
CUT_ORDER = ("negative", "explore", "probe", "pairwise", "each-choice", "boundary", CONTROL_ORIGIN)
#: Fields of the pairwise array (the rest, a free ``user`` string, is each-choice only).
_NOT_PAIRWISE = ("user",)
#: How the auth probes fail to authenticate: (``Case.auth``, the rule judged, the title). The
#: malformed headers are held to ``auth.wrong`` (refused with a 4xx; 401 is ``auth.status_401``).
AUTH_PROBES = (
    ("missing", AUTH_MISSING.id, "no Authorization header"),
    ("wrong", AUTH_WRONG.id, "wrong key"),
    ("blank-bearer", AUTH_WRONG.id, "Bearer with no token"),
    ("other-scheme", AUTH_WRONG.id, "the key under another scheme"),
)


class _Default:
    """A pairwise value: the field's default, sent as null or left out."""

    def __repr__(self) -> str:
        return "default"


DEFAULT = _Default()


def spends(case: Case) -> bool:
    """True when a conformant server generates the case's images (it may accept the case)."""
    return case.expect in ("accept", "either")


def model_tally(cases: Sequence[Case], must: Sequence[str], aimed: set[str]) -> dict[str, Any]:
    """One model's share of a plan, as its coverage states it: requests by kind, what they
    spend on a conformant server, and which of its MUST rules its cases aim at."""
    spent = [c for c in cases if spends(c)]
    return {
        "requests": len(cases),
        "images": sum(c.images for c in spent),
        "cost": round(sum(c.cost or 0.0 for c in spent), 6),
        "cost_unknown_images": sum(c.images for c in spent if c.cost is None),
        "by_kind": {k: sum(1 for c in cases if c.kind == k) for k in ("valid", "invalid", "probe")},
        "must_rules": {
            "exercised": sum(1 for r in must if r in aimed),
            "applicable": len(must),
            "missing": [r for r in must if r not in aimed],
        },
    }


@dataclass
class Plan:
    """The cases to send, in a deterministic order for a seed, and what the budget cut."""

    profile: Profile
    models: tuple[str, ...]
    seed: int
    cases: list[Case]
    cut: list[Case]
    max_cost: float | None
    max_images: int | None
    coverage: dict[str, Any] = field(default_factory=dict)
    endpoints: tuple[str, ...] = ("generations",)
    #: Explore cases still to be drawn (``build_plan(explore_later=True)``); None once drawn.
    explore: ExploreDraw | None = field(default=None, repr=False, compare=False)
    #: The per-model planners, for :func:`complete_plan` to state the coverage.
    planners: Mapping[str, _ModelPlanner] = field(default_factory=dict, repr=False, compare=False)

    @property
    def images(self) -> int:
        """Images a conformant server generates for the plan."""
        return sum(c.images for c in self.cases if spends(c))

    @property
    def cost(self) -> float:
        """USD of those images whose price is known."""
        return round(sum(c.cost or 0.0 for c in self.cases if spends(c)), 6)

    @property
    def cost_unknown_images(self) -> int:
        """Images (of :attr:`images`) whose price the profile does not know."""
        return sum(c.images for c in self.cases if spends(c) and c.cost is None)

    @property
    def worst_images(self) -> int:
        """Images if the server accepted every request, invalid ones included."""
        return sum(c.images for c in self.cases)

    @property
    def worst_cost(self) -> float:
        return round(sum(c.cost or 0.0 for c in self.cases), 6)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile.name,
            "models": list(self.models),
            "seed": self.seed,
            "max_cost": self.max_cost,
            "max_images": self.max_images,
            "requests": len(self.cases),
            "images": self.images,
            "cost": self.cost,
            "cost_unknown_images": self.cost_unknown_images,
            "worst_case": {"images": self.worst_images, "cost": self.worst_cost},
            "cut_order": list(CUT_ORDER),
            "coverage": self.coverage,
            "cases": [c.to_dict() for c in self.cases],
            "cut": [c.to_dict() for c in self.cut],
        }


# --- building blocks ---------------------------------------------------------------------------


def _images_if_accepted(body: Any) -> int:
    """How many images a server that accepted the body would make (what the budget counts)."""
    n = body.get("n") if isinstance(body, Mapping) else None
    if isinstance(n, bool) or n is None:
        return 1
    if isinstance(n, int | float):
        return max(1, int(-(-n // 1))) if n < 10**6 else 10**6
    if isinstance(n, str) and n.strip().isdigit():
        return max(1, min(int(n), 10**6))
    return 1


def _cheapest(spec: ModelSpec, profile: Profile) -> dict[str, str]:
    """The quality and size of the model's cheapest image, or the smallest listed size and the
    first named quality when the price is unknown; a field the model does not take is left
    out (a declared model may take neither)."""
    table = profile.prices.get(spec.name)
    if table:
        best = min(
            ((usd, q, s) for q, sizes in table.items() for s, usd in sizes.items()),
            key=lambda t: t[0],
        )
        quality, size = best[1], best[2]
    else:
        named = [q for q in spec.qualities if q != SERVER_CHOICE] or list(spec.qualities)
        sizes = [s for s in spec.sizes if "x" in s] or list(spec.sizes)
        quality = named[0] if named else None
        size = min(sizes, key=lambda s: _pixels(s) or 0) if sizes else None
    out = {"size": size, "quality": quality}
    return {k: v for k, v in out.items() if v is not None and v in spec.values(k)}


def _pixels(size: str) -> int | None:
    width, _, height = size.partition("x")
    return int(width) * int(height) if width.isdigit() and height.isdigit() else None


def _describe(body: Any) -> str:
    """A short title: the fields that differ from a bare request, the prompt by its length."""
    if not isinstance(body, Mapping):
        return "body"
    parts = []
    prompt = body.get("prompt")
    if "prompt" not in body:
        parts.append("prompt missing")
    elif not isinstance(prompt, str):
        parts.append(f"prompt={_text(prompt)}")
    elif prompt != DEFAULT_PROMPT:
        parts.append(f"prompt {len(prompt)} chars")
    for key, value in body.items():
        if key in ("model", "prompt"):
            continue
        parts.append(f"{_text(key)}={_text(value)}")
    return ", ".join(parts) or "defaults"


def _text(value: Any) -> str:
    """A value on one line of the plan: drawn strings may hold line breaks or control codes."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = str(value)
    if not text:
        return '""'
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


class _ModelPlanner:
    """Builds the cases of one model."""

    def __init__(self, spec: ModelSpec, profile: Profile, rules: Mapping[str, Rule], seed: int):
        self.spec = spec
        self.profile = profile
        self.rules = rules
        self.seed = seed
        self.contract = profile.contract
        self.base: dict[str, Any] = {
            "model": spec.name,
            "prompt": DEFAULT_PROMPT,
            **_cheapest(spec, profile),
        }
        self.unsupported = tuple(sorted(profile.unsupported))
        #: Request rules of a declared model that no request breaks alone (its facts leave
        #: none: a model that answers png only cannot be asked transparent jpeg without the
        #: format being refused first), so they are not tested for it; the plan says so.
        self.untestable: list[str] = []
        #: Values of its fields no valid request of it can hold (``output_compression`` for a
        #: model that answers png only), so no valid case sends them.
        self.untaken: list[str] = []

    @cached_property
    def _own_model(self) -> bool:
        """A model of the contract itself: there, the strategies reach every rule and value, or
        imgconf has a bug. A profile's declared model may have facts that leave some out."""
        return self.spec.name in load_contract().models

    # cases

    def case(self, body: Any, *, kind: str, rule: str, expect: str, origin: str, title: str,
             ident: str, **extra: Any) -> Case:  # fmt: skip
        images = _images_if_accepted(body)
        model = body.get("model") if isinstance(body, Mapping) else None
        priced = model if model in self.profile.models else self.spec.name
        price = None
        if isinstance(body, Mapping):
            quality, size = body.get("quality"), body.get("size")
            price = self.profile.price(
                priced,
                quality if isinstance(quality, str) else None,
                size if isinstance(size, str) else None,
            )
        tags = list(extra.pop("tags", ()))
        if kind == "valid":
            used = features_used(body, self.spec, self.unsupported)
            if used:
                expect = "reject"
                tags.extend(f"unsupported:{f}" for f in used)
        return Case(
            id=ident,
            model=extra.pop("model", self.spec.name),
            kind=kind,  # type: ignore[arg-type]
            rule=rule,
            level=self.rules[rule].level_for(self.spec.name),
            expect=expect,  # type: ignore[arg-type]
            body=body,
            origin=origin,
            images=images,
            cost=None if price is None else round(price * images, 6),
            title=title,
            tags=tuple(tags),
            **extra,
        )

    @cached_property
    def factors(self) -> dict[str, tuple[Any, ...]]:
        """The fields of the model's covering array and their values."""
        return pairwise_factors(self.spec, self.contract)

    @cached_property
    def forbidden(self) -> dict[tuple[str, str], frozenset[tuple[int, int]]]:
        """The value pairs no valid request holds (the oracle's answer is costly: asked once,
        for the array and for its coverage)."""
        return forbidden_pairs(self.spec, self.factors, self.contract)

    def applicable(self, rule: Rule) -> bool:
        return rule.per_model and self.spec.name in rule.models

    def negative(self) -> list[Case]:
        wanted = [
            r.id
            for r in self.rules.values()
            if r.kind == "reject" and r.id.startswith("request.") and self.applicable(r)
        ]
        out: list[Case] = []
        kept: dict[str, int] = {}
        for variant in invalid_variants(self.spec, self.base, wanted, self.contract):
            broken = [v.rule for v in request_violations(variant.body, self.contract)]
            if broken != [variant.rule]:
                continue
            kept[variant.rule] = kept.get(variant.rule, 0) + 1
            level = self.rules[variant.rule].level_for(self.spec.name)
            out.append(
                self.case(
                    variant.body,
                    kind="invalid",
                    rule=variant.rule,
                    expect="reject",
                    origin="must-reject" if level == "MUST" else "should-reject",
                    title=variant.title,
                    ident=f"{self.spec.name}/invalid/{variant.rule}/{variant.title}",
                )
            )
        missing = [r for r in wanted if r not in kept]
        if missing and self._own_model:
            raise RuntimeError(f"no request breaks {missing} alone for {self.spec.name}")
        self.untestable = missing
        rule = self.rules.get(UNSUPPORTED_PARAM.id)
        if rule is not None and self.spec.name in rule.models:
            for variant in unsupported_param_variants(self.spec, self.base, self.contract):
                broken = [v.rule for v in request_violations(variant.body, self.contract)]
                if broken != [variant.rule]:
                    continue
                out.append(
                    self.case(
                        variant.body,
                        kind="probe",
                        rule=variant.rule,
                        expect="either",
                        origin="probe",
                        title=variant.title,
                        ident=f"{self.spec.name}/probe/{variant.rule}/{variant.title}",
                    )
                )
        return out

    def control(self) -> Case:
        """The model's control: its plain cheap valid request. A refusal of any other request of
        the model proves a rule only when the same target accepted this one."""
        return self.case(
            dict(self.base),
            kind="valid",
            rule=VALID_ACCEPTED.id,
            expect="accept",
            origin=CONTROL_ORIGIN,
            title="control: " + _describe(self.base),
            ident=f"{self.spec.name}/control",
        )

    def valid(self, body: dict[str, Any], origin: str, index: int) -> Case:
        broken = request_violations(body, self.contract)
        if broken:
            raise RuntimeError(f"{self.spec.name}: a valid {origin} case breaks {broken[0].rule}")
        return self.case(
            body,
            kind="valid",
            rule=VALID_ACCEPTED.id,
            expect="accept",
            origin=origin,
            title=_describe(body),
            ident=f"{self.spec.name}/valid/{origin}/{index:02d}",
        )

    def boundary(self) -> list[Case]:
        """The shortest prompt, the longest the model takes (when it states a limit) and its
        largest ``n`` (when it takes more than one)."""
        limit = self.spec.prompt_max_chars
        one = {"n": 1} if self.spec.takes("n") else {}
        bodies = [{**self.base, "prompt": prompt_of_length(1), **one}]
        if limit is not None:
            bodies.append({**self.base, "prompt": prompt_of_length(limit)})
        if self.spec.n_max > 1:
            bodies.append({**self.base, "n": self.spec.n_max})
        return [self.valid(b, "boundary", i) for i, b in enumerate(bodies, 1)]

    def pairwise(self) -> list[Case]:
        factors = self.factors
        rows = _covering_array(factors, self.forbidden, self.seed, self._weights(factors))
        nulls_sent: set[str] = set()
        out = []
        for index, row in enumerate(rows, 1):
            body: dict[str, Any] = {"model": self.spec.name, "prompt": DEFAULT_PROMPT}
            for param, value in row.items():
                if value is DEFAULT:
                    if param not in nulls_sent:
                        nulls_sent.add(param)
                        body[param] = None
                    continue
                body[param] = value
            out.append(self.valid(body, "pairwise", index))
        return out

    def _weights(self, factors: Mapping[str, Sequence[Any]]) -> dict[str, dict[int, int]]:
        """Prefer the cheap values when the array fills a row's free fields."""
        cheap = {**self.base, "n": 1}
        return {
            param: {values.index(cheap[param]): 10}
            for param, values in factors.items()
            if param in cheap and cheap[param] in values
        }

    def each_choice(self, sofar: Sequence[Case]) -> list[Case]:
        covered = _values_covered(sofar)
        bodies = [self.base] + [c.body for c in sofar if c.kind == "valid"]
        out: list[Case] = []
        wanted = [
            (param, value)
            for param, values in param_values(self.spec, self.contract).items()
            for value in (*values, None)
        ]
        # Custom sizes inside the zone's corners come last: the cases before them keep the ids
        # they had when the corners were the only custom sizes (reports are compared by id).
        custom = self.spec.custom_sizes
        inner = (
            set(custom_size_examples(custom)) - set(custom_size_corners(custom))
            if custom
            else set()
        )
        wanted.sort(key=lambda pv: pv[0] == "size" and pv[1] in inner)
        for param, value in wanted:
            if _key(value) in covered.get(param, set()):
                continue
            for candidate in bodies:
                body = {**candidate, param: value}
                if not request_violations(body, self.contract):
                    break
            else:
                if self._own_model:
                    raise RuntimeError(f"{self.spec.name}: no valid body takes {param}={value!r}")
                self.untaken.append(f"{param}={value!r}")
                continue
            case = self.valid(body, "each-choice", len(out) + 1)
            out.append(case)
            covered.setdefault(param, set()).add(_key(value))
        # A field the model ignores: answered as if it were left out (a declared model's).
        for param, value in ignored_param_values(self.spec, self.contract):
            out.append(self.valid({**self.base, param: value}, "each-choice", len(out) + 1))
        return out

    def auth(self) -> list[Case]:
        """Every way of failing to authenticate (:data:`AUTH_PROBES`), on this model's base body
        and, for a model that streams, on a streamed one: a server may check the key on one
        model's or one path's route only. Free on a conformant server; each reserves the image
        a server that let it through would make."""
        bodies = {"": self.base}
        if self.spec.takes("stream") and "stream" not in self.profile.unsupported:
            bodies[", stream=true"] = {**self.base, "stream": True}
        out = []
        for suffix, body in bodies.items():
            for auth, rule_id, _bearer_title in AUTH_PROBES:
                rule = self.rules.get(rule_id)
                # In the profile's auth style: no scheme, no probe of another scheme.
                title = self.profile.auth.probe_title(auth)
                if rule is None or self.spec.name not in rule.models or title is None:
                    continue
                out.append(
                    self.case(
                        body,
                        kind="probe",
                        rule=rule_id,
                        expect="reject",
                        origin="probe",
                        title=title + suffix,
                        ident=f"{self.spec.name}/probe/{rule_id}/{title}{suffix}",
                        auth=auth,
                    )
                )
        return out

    def explore(self, bodies: Sequence[Any], first: int = 1) -> list[Case]:
        """Drawn bodies as cases, labelled by the oracle: valid ones are expected to be accepted;
        the others are held to the first MUST rule they break, else the first SHOULD one (a field
        the model does not take is a probe). ``first`` numbers the first of them."""
        out = []
        for index, body in enumerate(bodies, first):
            ident = f"{self.spec.name}/explore/{index:02d}"
            broken = [v.rule for v in request_violations(body, self.contract)]
            if not broken:
                out.append(replace(self.valid(body, "explore", index), id=ident))
                continue
            musts = [r for r in broken if self.rules[r].is_must_for(self.spec.name)]
            rule = (musts or broken)[0]
            probe = rule == UNSUPPORTED_PARAM.id
            tags = ("several-rules:" + ",".join(broken),) if len(broken) > 1 else ()
            out.append(
                self.case(
                    body,
                    kind="probe" if probe else "invalid",
                    rule=rule,
                    expect="either" if probe else "reject",
                    origin="explore",
                    title=_describe(body),
                    ident=ident,
                    tags=tags,
                )
            )
        return out


def _key(value: Any) -> tuple[str, Any]:
    """A hashable key that keeps True apart from 1 and False from 0."""
    return (type(value).__name__, value)


def _values_covered(cases: Sequence[Case]) -> dict[str, set[tuple[str, Any]]]:
    out: dict[str, set[tuple[str, Any]]] = {}
    for case in cases:
        if case.kind == "valid" and isinstance(case.body, Mapping):
            for param, value in case.body.items():
                if isinstance(value, list | dict):
                    continue
                out.setdefault(param, set()).add(_key(value))
    return out


def pairwise_factors(
    spec: ModelSpec, contract: Contract | None = None
) -> dict[str, tuple[Any, ...]]:
    """The fields of the covering array and their values (``DEFAULT`` first); a declared
    model's own parameters are factors too."""
    values = param_values(spec, contract)
    out: dict[str, tuple[Any, ...]] = {}
    for param, choices in values.items():
        if param in _NOT_PAIRWISE:
            continue
        if param == "n":
            low = min(choices)
            choices = tuple(n for n in (low, low + 1) if n <= spec.n_max)
        elif param == "size" and spec.custom_sizes is not None:
            choices = (*spec.sizes, *[s for s in choices if s not in spec.sizes][:1])
        out[param] = (DEFAULT, *choices)
    return out


def forbidden_pairs(
    spec: ModelSpec, factors: Mapping[str, Sequence[Any]], contract: Contract | None = None
) -> dict[tuple[str, str], frozenset[tuple[int, int]]]:
    """Pairs of values (by index) that no valid request holds together, asked of the oracle.

    A pair is allowed when a body with just those two fields is valid, or becomes valid once a
    third field takes one of its values (``output_compression=0`` with ``quality=low`` needs a
    lossy ``output_format``). Forbidding the rest as pairs is enough for this contract, whose
    cross-field rules tie two fields; every row is checked again when it becomes a case.
    """
    contract = contract or load_contract()
    # Models whose facts are the same but for their name (a dated snapshot, a twin) forbid the
    # same pairs: the oracle is asked once for them all.
    key = (id(contract), repr(dataclasses.replace(spec, name="")), repr(factors))
    cached = _FORBIDDEN.get(key)
    if cached is not None and cached[0] is contract:
        return cached[1]
    prefix = {"model": spec.name, "prompt": DEFAULT_PROMPT}
    answers: dict[str, bool] = {}

    def valid(assignment: Mapping[str, Any]) -> bool:
        body = {**prefix, **{k: v for k, v in assignment.items() if v is not DEFAULT}}
        seen = repr(sorted(body.items()))
        if seen not in answers:
            answers[seen] = not request_violations(body, contract)
        return answers[seen]

    out = pairs_never_valid(factors, valid)
    _FORBIDDEN[key] = (contract, out)
    return out


def pairs_never_valid(
    factors: Mapping[str, Sequence[Any]], valid: Callable[[Mapping[str, Any]], bool]
) -> dict[tuple[str, str], frozenset[tuple[int, int]]]:
    """The value pairs (by index) that ``valid`` refuses together, unless a third factor's
    value rescues them: what a covering array must never put in one row."""
    out: dict[tuple[str, str], frozenset[tuple[int, int]]] = {}
    for a, b in combinations(factors, 2):
        bad = set()
        for i, va in enumerate(factors[a]):
            for j, vb in enumerate(factors[b]):
                pair = {a: va, b: vb}
                if valid(pair):
                    continue
                if not any(
                    valid({**pair, c: vc}) for c in factors if c not in pair for vc in factors[c]
                ):
                    bad.add((i, j))
        if bad:
            out[(a, b)] = frozenset(bad)
    return out


#: Forbidden pairs by (contract, model facts but its name, factors); the contract is kept with
#: them so that an id reused by another contract is never mistaken for it.
_FORBIDDEN: dict[tuple[int, str, str], tuple[Contract, dict[Any, frozenset[tuple[int, int]]]]] = {}


def _covering_array(
    factors: Mapping[str, Sequence[Any]],
    forbidden: Mapping[tuple[str, str], frozenset[tuple[int, int]]],
    seed: int,
    weights: Mapping[str, Mapping[int, int]],
) -> list[dict[str, Any]]:
    key = (
        tuple((p, tuple(map(_key, vs))) for p, vs in factors.items()),
        tuple(sorted((k, tuple(sorted(v))) for k, v in forbidden.items())),
        seed,
        tuple(sorted((p, tuple(sorted(w.items()))) for p, w in weights.items())),
    )
    rows = _cached_array(key, tuple(factors), tuple(len(v) for v in factors.values()))
    return [{p: factors[p][i] for p, i in zip(factors, row, strict=True)} for row in rows]


@cache
def _cached_array(key: tuple, names: tuple[str, ...], sizes: tuple[int, ...]) -> tuple:
    """Covering arrays by index, cached: models that share a value space share the array, and
    a run finds the arrays an earlier one made in the user's cache directory (making them is
    most of the time a plan takes, and a run starts sending once its plan is made)."""
    _, forbidden, seed, weights = key
    stored = _array_file(names, sizes, forbidden, seed, weights)
    with contextlib.suppress(OSError, ValueError, TypeError):
        rows = tuple(tuple(row) for row in json.loads(stored.read_text(encoding="utf-8")))
        if all(_indexes_of(row, sizes) for row in rows):
            return rows
    rows = _make_array(names, sizes, forbidden, seed, weights)
    with contextlib.suppress(OSError):
        stored.parent.mkdir(parents=True, exist_ok=True)
        partial = stored.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(rows), encoding="utf-8")
        os.replace(partial, stored)
    return rows


def _indexes_of(row: tuple, sizes: tuple[int, ...]) -> bool:
    """Whether a stored row is one of an array of factors of ``sizes`` (a file may be damaged)."""
    return len(row) == len(sizes) and all(
        type(i) is int and 0 <= i < n for i, n in zip(row, sizes, strict=True)
    )


def _array_file(*inputs: Any) -> Path:
    """Where the covering array made from ``inputs`` is kept (by a digest of them and of the
    covertable version that makes it)."""
    from importlib.metadata import version

    digest = hashlib.sha256(repr((version("covertable"), *inputs)).encode()).hexdigest()[:32]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "imgconf" / "arrays" / f"{digest}.json"


def _make_array(
    names: tuple[str, ...], sizes: tuple[int, ...], forbidden: tuple, seed: int, weights: tuple
) -> tuple:
    from covertable import make, sorters

    constraints = [
        {
            "operator": "fn",
            "requires": [a, b],
            "evaluate": lambda row, a=a, b=b, bad=frozenset(bad): (row[a], row[b]) not in bad,
        }
        for (a, b), bad in forbidden
    ]
    factors = {name: list(range(size)) for name, size in zip(names, sizes, strict=True)}
    rows = make(
        factors,
        strength=2,
        sorter=sorters.hash,
        salt=str(seed),
        constraints=constraints,
        weights={p: dict(w) for p, w in weights},
    )
    return tuple(tuple(row[name] for name in names) for row in rows)


# --- model-independent cases --------------------------------------------------------------------


def _global_cases(profile: Profile, rules: Mapping[str, Rule], anchor: _ModelPlanner) -> list[Case]:
    """Cases of rules that do not depend on the model, sent once."""
    out: list[Case] = []

    def live(rule_id: str) -> bool:
        rule = rules.get(rule_id)
        return rule is not None and bool(rule.models)

    def add(rule_id: str, title: str, body: Any, expect: str, **extra: Any) -> None:
        if not live(rule_id):
            return
        case = anchor.case(
            body,
            kind="probe",
            rule=rule_id,
            expect=expect,
            origin="probe",
            title=title,
            ident=f"{ANY_MODEL}/probe/{rule_id}/{title}",
            model=ANY_MODEL,
            **extra,
        )
        if not isinstance(body, Mapping) or "model" not in body:
            priced = resolve_model(body, profile.contract) if isinstance(body, Mapping) else None
            known = [profile.price(m, None, None) for m in profile.models]
            if priced in profile.models:
                price = profile.price(priced, None, None)
            else:
                price = max((p for p in known if p is not None), default=None)
            case = replace(case, cost=price)
        out.append(case)

    cheap = anchor.base
    add(BODY_NOT_JSON.id, "truncated JSON", None, "reject", raw=b'{"prompt": "A red ')
    add(BODY_NOT_JSON.id, "form encoded", None, "reject", raw=b"prompt=A+red+circle")
    for title, body in (("array", [cheap]), ("string", DEFAULT_PROMPT), ("number", 42)):
        add(BODY_NOT_OBJECT.id, title, body, "reject")
    contract = profile.contract
    unknown = "imgconf-no-such-model"
    while unknown in contract.models:
        unknown += "-x"
    add(MODEL_UNKNOWN.id, f"model={unknown}", {**cheap, "model": unknown}, "reject")
    add(MODEL_UNKNOWN.id, "model=42", {**cheap, "model": 42}, "reject")
    style = profile.auth
    add(AUTH_MISSING.id, style.probe_title("missing"), cheap, "reject", auth="missing")
    add(AUTH_WRONG.id, style.probe_title("wrong"), cheap, "reject", auth="wrong")
    default_model = resolve_model({"prompt": DEFAULT_PROMPT}, contract)
    if default_model in profile.models:
        add(MODEL_DEFAULT.id, "model omitted", {"prompt": DEFAULT_PROMPT}, "accept")
    if not profile.path.endswith("/"):
        add(TRAILING_SLASH.id, "path with a trailing slash", cheap, "accept",
            path_suffix="/")  # fmt: skip
    return out


# --- coverage ------------------------------------------------------------------------------------


def _pairs_of(
    cases: Sequence[Case], factors: Mapping[str, Sequence[Any]]
) -> set[tuple[str, int, str, int]]:
    out = set()
    for case in cases:
        if case.kind != "valid" or not isinstance(case.body, Mapping):
            continue
        indices = {}
        for param, values in factors.items():
            value = case.body.get(param)
            keys = [_key(v) for v in values]
            indices[param] = (
                0 if value is None else keys.index(_key(value)) if _key(value) in keys else None
            )
        for a, b in combinations(factors, 2):
            if indices[a] is not None and indices[b] is not None:
                out.add((a, indices[a], b, indices[b]))
    return out


def _coverage(
    profile: Profile,
    rules: Mapping[str, Rule],
    planners: Mapping[str, _ModelPlanner],
    cases: Sequence[Case],
    cut: Sequence[Case],
    aimed: Mapping[str, set[str]],
) -> dict[str, Any]:
    contract = profile.contract
    per_model: dict[str, Any] = {}
    for name, planner in planners.items():
        spec = planner.spec
        mine = [c for c in cases if c.model == name]
        exercised = set().union(*(aimed[c.id] for c in mine))
        must = [
            r.id for r in rules.values() if r.is_must_for(name) and r.per_model and name in r.models
        ]
        required = {p: [*vs, None] for p, vs in param_values(spec, contract).items()}
        covered = _values_covered(mine)
        missing_values = [
            f"{p}={_text(v)}"
            for p, vs in required.items()
            for v in vs
            if _key(v) not in covered.get(p, set())
        ]
        factors, forbidden = planner.factors, planner.forbidden
        total_pairs = {
            (a, i, b, j)
            for a, b in combinations(factors, 2)
            for i in range(len(factors[a]))
            for j in range(len(factors[b]))
            if (i, j) not in forbidden.get((a, b), frozenset())
        }
        pairs = _pairs_of(mine, factors) & total_pairs
        per_model[name] = {
            **model_tally(mine, must, exercised),
            "values": {
                "covered": sum(len(vs) for vs in required.values()) - len(missing_values),
                "total": sum(len(vs) for vs in required.values()),
                "missing": missing_values,
            },
            "pairs": {"covered": len(pairs), "total": len(total_pairs)},
        }
    shared = [c for c in cases if c.model == ANY_MODEL]
    independent = [r.id for r in rules.values() if r.is_must and not r.per_model and r.models]
    done = {c.rule for c in shared}
    return {
        "models": per_model,
        "model_independent": {
            "requests": len(shared),
            "must_rules": {
                "exercised": sum(1 for r in independent if r in done),
                "applicable": len(independent),
                "missing": [r for r in independent if r not in done],
            },
        },
        "cut": {
            "cases": len(cut),
            "images": sum(c.images for c in cut if spends(c)),
            "cost": round(sum(c.cost or 0.0 for c in cut if spends(c)), 6),
            "by_origin": {
                o: sum(1 for c in cut if c.origin == o)
                for o in dict.fromkeys(c.origin for c in cut)
            },
        },
        "cut_order": list(CUT_ORDER),
        "unsupported": sorted(profile.unsupported),
    }


# --- budget ------------------------------------------------------------------------------------


def _group(case: Case) -> str:
    if not spends(case):
        return "negative"
    if case.origin == "explore":
        return "explore"
    if case.kind == "probe":
        return "probe"
    return case.origin


def _over(
    images: int, cost: float, max_images: int | None, max_cost: float | None
) -> tuple[bool, bool]:
    """Whether ``images`` are too many and ``cost`` too dear for the budget."""
    return (
        max_images is not None and images > max_images,
        max_cost is not None and cost > max_cost + 1e-9,
    )


def _helps(case: Case, too_many: bool, too_dear: bool) -> bool:
    """Whether leaving the case out lowers what is over the budget."""
    return bool((too_many and case.images) or (too_dear and case.cost))


def _cut(
    cases: list[Case], max_cost: float | None, max_images: int | None
) -> tuple[list[Case], list[Case]]:
    """Drop cases in :data:`CUT_ORDER` (each group from its end) until the plan fits."""
    images = sum(c.images for c in cases if spends(c))
    cost = sum(c.cost or 0.0 for c in cases if spends(c))

    dropped: set[int] = set()
    cut: list[Case] = []
    for group in CUT_ORDER[1:]:
        members = [i for i, c in enumerate(cases) if _group(c) == group]
        # From each model's end, taking the models in turn: no model loses all its cases first.
        rank: dict[tuple[str, str], int] = {}
        order = []
        for index in reversed(members):
            model = (cases[index].endpoint, cases[index].model)
            rank[model] = rank.get(model, 0) + 1
            order.append((rank[model], index))
        for _, index in sorted(order, key=lambda t: (t[0], -t[1])):
            too_many, too_dear = _over(images, cost, max_images, max_cost)
            if not (too_many or too_dear):
                break
            case = cases[index]
            if _helps(case, too_many, too_dear):
                dropped.add(index)
                cut.append(case)
                images -= case.images
                cost -= case.cost or 0.0
    kept = [c for i, c in enumerate(cases) if i not in dropped]
    return kept, cut


# --- the plan ----------------------------------------------------------------------------------


def _by_sent_name(case: Case, profile: Profile) -> Case:
    """The case asking its model by the vendor's name for it (``aliases:``); its id and
    ``model`` keep the contract model, so plans of two vendors compare case by case."""
    body = case.body
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or profile.sent_name(model) == model:
        return case
    return replace(case, body={**body, "model": profile.sent_name(model)})


def build_plan(
    profile: Profile,
    *,
    models: Sequence[str] | None = None,
    seed: int = 0,
    max_cost: float | None = None,
    max_images: int | None = None,
    explore: int = 0,
    endpoints: Sequence[str] = ("generations",),
    explore_later: bool = False,
) -> Plan:
    """The deterministic plan for a profile, its models (all by default) and a seed, on the
    given endpoints (generations, edits, variations: each model where the endpoint serves it).

    With ``explore_later`` the plan is made to be sent at once: its explore cases are not drawn
    here (``plan.explore`` draws them while a run sends the rest, :class:`ExploreDraw`) and its
    coverage is not stated; :func:`complete_plan` adds both once the run is done."""
    chosen = tuple(profile.model_named(m) for m in models) if models else profile.models
    unknown = [m for m in chosen if m not in profile.models]
    if unknown:
        raise SetupError(
            f"--models: {unknown[0]!r} is not a model of profile {profile.name} "
            f"({', '.join(profile.models)})"
        )
    if len(set(chosen)) != len(chosen):
        raise SetupError("--models: a model is named twice")
    if max_cost is not None and max_cost < 0:
        raise SetupError("--max-cost must be at least 0")
    if max_images is not None and max_images < 0:
        raise SetupError("--max-images must be at least 0")
    if explore < 0:
        raise SetupError("--explore must be at least 0")
    contract = profile.contract
    known = tuple(contract.endpoints)
    if (
        not endpoints
        or any(e not in known for e in endpoints)
        or len(set(endpoints)) < len(endpoints)
    ):
        raise SetupError(f"--endpoint: each at most once, of {', '.join(known)} (got {endpoints})")
    rules = profile.rules()
    generating = [m for m in chosen if "generations" in endpoints and m in contract.models]
    planners = {m: _ModelPlanner(contract.models[m], profile, rules, seed) for m in generating}

    controls = [planner.control() for planner in planners.values()]
    negative: list[Case] = []
    positive: list[Case] = []
    for planner in planners.values():
        negative.extend(planner.negative() + planner.auth())
        fixed = planner.boundary() + planner.pairwise()
        positive.extend(fixed + planner.each_choice(fixed))
    if planners:
        negative.extend(_global_cases(profile, rules, next(iter(planners.values()))))
    multipart = [
        c for e in endpoints if e != "generations" for c in _multipart(profile, e, chosen, seed)
    ]
    controls.extend(c for c in multipart if c.origin == CONTROL_ORIGIN)
    positive.extend(c for c in multipart if c.origin != CONTROL_ORIGIN)
    # Controls first, then every case a conformant server generates nothing for (so a small
    # budget still sends them), then the cases that spend.
    fixed = negative + positive
    cases = controls + [c for c in fixed if not spends(c)] + [c for c in fixed if spends(c)]
    cases = [_by_sent_name(c, profile) for c in cases]
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise RuntimeError(f"two cases share the id {duplicate}")
    # Explore cases are cut first: the rest is cut as if there were none, and they get what
    # the budget leaves (ExploreDraw.admit).
    kept, cut = _cut(cases, max_cost, max_images)
    plan = Plan(
        profile=profile,
        models=chosen,
        seed=seed,
        cases=kept,
        cut=cut,
        max_cost=max_cost,
        max_images=max_images,
        endpoints=tuple(endpoints),
        planners=planners,
    )
    draw = None
    if explore and planners:
        draw = ExploreDraw(
            plan, count=explore, exclude=[c.body for c in negative + positive if not c.multipart]
        )
    if explore_later:
        plan.explore = draw
        return plan
    explored = [case for batch in draw or () for case in batch]
    return complete_plan(plan, explored, draw.cut if draw else [])


def complete_plan(plan: Plan, explored: Sequence[Case], cut: Sequence[Case] = ()) -> Plan:
    """The plan with its explore cases (``explored`` sent, ``cut`` cut) and its coverage
    stated for all of them (what its cases aim at, what the budget cut): what a plan drawn
    whole holds, for a run that drew them while it sent."""
    plan = replace(
        plan, cases=[*plan.cases, *explored], cut=[*cut, *plan.cut], explore=None, coverage={}
    )
    profile = plan.profile
    generated = [c for c in plan.cases if c.endpoint == "generations"]
    aimed = aimed_by_case(plan)
    plan.coverage = _coverage(profile, profile.rules(), plan.planners, generated, plan.cut, aimed)
    plan.coverage["rules"] = predicted_coverage(plan, aimed)
    if any(e != "generations" for e in plan.endpoints):
        from .multipart_planning import multipart_coverage

        plan.coverage["endpoints"] = multipart_coverage(
            profile, plan.endpoints, plan.cases, plan.cut
        )
    return plan


class ExploreDraw:
    """The explore cases of a plan, drawn model by model in an interpreter of their own
    (:func:`~conformance.generation.strategies.explore_stream`), each batch admitted against
    what the budget leaves once the rest of the plan is in: in the order drawn, a case is kept
    while it still fits, else cut (first fit). A plan drawn whole and a run that draws while it
    sends keep the same cases.

    Iterating gives the kept cases of one line of drawn bodies at a time; :meth:`close` stops
    the drawing (from any thread: the drawing interpreter is ended, so a read waiting on it
    returns).
    """

    def __init__(self, plan: Plan, *, count: int, exclude: Sequence[Any]) -> None:
        self.plan = plan
        self.count = count
        self.cut: list[Case] = []
        self._images = sum(c.images for c in plan.cases if spends(c))
        self._cost = sum(c.cost or 0.0 for c in plan.cases if spends(c))
        self._child: subprocess.Popen[bytes] | None = None
        self._closed = False
        self._stream = explore_stream(
            tuple(plan.planners),
            plan.profile,
            seed=plan.seed,
            count=count,
            exclude=exclude,
            started=self._started,
        )

    def _started(self, child: subprocess.Popen[bytes]) -> None:
        self._child = child
        if self._closed:
            child.kill()

    def __iter__(self) -> Iterator[list[Case]]:
        return self

    def __next__(self) -> list[Case]:
        model, bodies, first = next(self._stream)
        made = self.plan.planners[model].explore(bodies, first)
        return self.admit([_by_sent_name(c, self.plan.profile) for c in made])

    def admit(self, cases: Sequence[Case]) -> list[Case]:
        """The cases that still fit the budget, in order; the others go to :attr:`cut`."""
        kept = []
        max_images, max_cost = self.plan.max_images, self.plan.max_cost
        for case in cases:
            if spends(case):
                images, cost = self._images + case.images, self._cost + (case.cost or 0.0)
                if _helps(case, *_over(images, cost, max_images, max_cost)):
                    self.cut.append(case)
                    continue
                self._images, self._cost = images, cost
            kept.append(case)
        return kept

    def close(self) -> None:
        self._closed = True
        if self._child is not None and self._child.poll() is None:
            self._child.kill()  # a read waiting on it in another thread ends
        with contextlib.suppress(ValueError):  # running in that thread: it ends by itself
            self._stream.close()


def _multipart(profile: Profile, endpoint: str, models: Sequence[str], seed: int) -> list[Case]:
    """A multipart endpoint's cases, its controls first (imported here: it builds on this
    module)."""
    from .multipart_planning import multipart_cases

    made = multipart_cases(profile, endpoint, models, seed)
    return made.controls + made.cases


def aimed_by_case(plan: Plan) -> dict[str, set[str]]:
    """:func:`aimed_rules` of each generations case of the plan, by case id."""
    rules = plan.profile.rules()
    contract = plan.profile.contract
    return {
        case.id: aimed_rules(case, case_spec(case, plan.profile.models, contract), rules, contract)
        for case in plan.cases
        if case.endpoint == "generations"
    }


def predicted_coverage(plan: Plan, aimed: Mapping[str, set[str]] | None = None) -> dict[str, Any]:
    """The rules each model's cases aim at, as :func:`coverage_summary` states them: what a
    run's report observes on a server that behaves. ``aimed``: :func:`aimed_by_case`, when
    the caller has it already."""
    aimed = aimed_by_case(plan) if aimed is None else aimed
    predicted: dict[str, set[str]] = {}
    for case in (c for c in plan.cases if c.endpoint == "generations"):
        predicted.setdefault(case.model, set()).update(aimed[case.id])
    return coverage_summary(predicted, plan.models, plan.profile.rules())
