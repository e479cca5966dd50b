"""Plan cases for the multipart endpoints: ``/images/edits`` and ``/images/variations``.

For each model of :meth:`Contract.endpoint` that the plan covers, :func:`multipart_cases` makes
the endpoint's cases from the contract as data (the endpoint's model facts, its ``FileInput``
facts per file field, its rules), never from values typed here:

- a **control**: one picture, the prompt, the model's cheapest quality and size;
- **each-choice** cases: every value of every field the model takes (custom sizes as the
  generations plan picks them, ``stream`` with ``partial_images``), and the file variants: each
  format the model takes, alpha, a picture that is not square, a mask, several pictures as
  repeated ``image`` parts and as ``image[]`` parts;
- **boundary** cases: the shortest and longest prompt, the largest ``n``, the most pictures the
  field takes, and a picture and a mask at the largest byte count every reading of the limit
  accepts (made lazily: :class:`~conformance.generation.inputs.InputFile` with ``length``);
- **pairwise** cases over the edit fields, with the covering array of the generations plan;
- **invalid** cases, each breaking one request rule of the endpoint (labelled with it, at its
  level: ``must-reject`` or ``should-reject``), and **probes** of grey areas (a field the model
  does not take, both forms of ``image`` in one form).

Every valid form is checked by :func:`form_violations` (the endpoint's request schema over the
form's facts, plus the facts JSON Schema cannot state) and every invalid one must break at least
the rule it names. Nothing here reads or builds a large file: a file's facts come from its
recipe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import product
from typing import Any

from ..contract.loader import (
    Contract,
    Endpoint,
    FileInput,
    ModelSpec,
    Rule,
    _integer_branch,
    parse_wxh,
)
from ..contract.profiles import Profile
from .cases import CONTROL_ORIGIN, Case, FormPart
from .inputs import InputFile
from .planning import (
    DEFAULT,
    _cheapest,
    _covering_array,
    _images_if_accepted,
    _key,
    model_tally,
    pairs_never_valid,
    pairwise_factors,
)
from .strategies import (
    DEFAULT_PROMPT,
    UNKNOWN_FIELD,
    custom_size_corners,
    custom_size_examples,
    features_used,
    invalid_custom_sizes,
    param_values,
    prompt_of_length,
)

__all__ = [
    "MULTIPART_ENDPOINTS",
    "MultipartCases",
    "form_facts",
    "form_violations",
    "multipart_cases",
]

#: The endpoints whose requests are multipart forms.
MULTIPART_ENDPOINTS = ("edits", "variations")
#: The side of the pictures the cases upload: small, so that forms stay small; dall-e-2 takes
#: only square ones.
_SIDE = 64
#: A picture that is not square (3:2).
_WIDE = (96, 64)
#: The transparent box of the masks: the top-left quarter.
_BOX = (0, 0, _SIDE // 2, _SIDE // 2)
#: File formats an input may have, told by its bytes, that are images (``text`` is none).
_IMAGE_FORMATS = ("png", "jpeg", "webp", "gif")


def _text(value: Any) -> str:
    """A value as a text part: booleans as ``true``/``false`` (as the SDKs send them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- the oracle: a form's facts, held to the endpoint's schema ---------------------------------


def _file_facts(recipe: InputFile) -> dict[str, Any]:
    """A file part's facts as the request schema's ``$defs/file`` reads them, from its recipe
    (never from its bytes: a padded file is only as long as it says)."""
    facts: dict[str, Any] = {
        "filename": recipe.filename,
        "content_type": recipe.media_type,
        "bytes": recipe.size(),
    }
    if recipe.format == "text" or recipe.truncate is not None:
        return {**facts, "format": "none"}
    alpha = recipe.alpha and recipe.format in ("png", "webp")
    return {
        **facts,
        "format": recipe.format,
        "width": recipe.width,
        "height": recipe.height,
        "alpha": alpha,
    }


def form_facts(parts: Sequence[FormPart], endpoint: Endpoint) -> dict[str, Any]:
    """The form as the endpoint's request schema describes it: text parts decoded (the planner
    sends each field's value as its text, so it decodes back), the parts of a file field
    gathered (an array when there are several), a text part where a file must be as its text."""
    by_part = {
        part: name
        for files in endpoint.files.values()
        for name, f in files.items()
        for part in f.parts
    }
    out: dict[str, Any] = {}
    gathered: dict[str, list[Any]] = {}
    for part in parts:
        field_name = by_part.get(part.name, part.name)
        if part.file is not None:
            value: Any = _file_facts(part.file)
        else:
            value = _decoded(part.value or "", endpoint.request_fields.get(field_name, {}))
        if field_name in by_part.values():
            gathered.setdefault(field_name, []).append(value)
        else:
            out[field_name] = value
    for name, values in gathered.items():
        out[name] = values[0] if len(values) == 1 else values
    return out


def _decoded(text: str, schema: Mapping[str, Any]) -> Any:
    """A text part as its field's type, as a server reads a form: ``"2"`` is 2 for an integer
    field, ``"true"`` true for a boolean one; other text stays text."""
    types = _json_types(schema)
    if "integer" in types and text.strip().lstrip("-").isdigit():
        return int(text)
    if "boolean" in types and text in ("true", "false"):
        return text == "true"
    return text


def _json_types(schema: Any) -> set[str]:
    if not isinstance(schema, Mapping):
        return set()
    kind = schema.get("type")
    out = set([kind] if isinstance(kind, str) else kind or ())
    for value in (*schema.get("enum", ()), *([schema["const"]] if "const" in schema else ())):
        out.add({bool: "boolean", int: "integer"}.get(type(value), "other"))
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, ()):
            out |= _json_types(branch)
    return out


def form_violations(parts: Sequence[FormPart], endpoint: Endpoint) -> list[str]:
    """What a form breaks: the request schema's errors over its facts, then the facts the
    schema states as annotations (a square picture, a mask the size of the first picture) and
    a custom size's limits. Empty for a valid form."""
    facts = form_facts(parts, endpoint)
    out = [
        f"{'/'.join(map(str, e.absolute_path)) or '(form)'}: {e.message:.120}"
        for e in endpoint.validator().iter_errors(facts)
    ]
    model = facts.get("model") or endpoint.default_model
    spec = endpoint.models.get(model) if isinstance(model, str) else None
    if spec is None:
        return out
    for file_input in endpoint.files[spec.name].values():
        files = _as_list(facts.get(file_input.field))
        first = files[0] if files else None
        if not isinstance(first, Mapping) or "width" not in first:
            continue
        if file_input.square and any(
            isinstance(f, Mapping) and f.get("width") != f.get("height") for f in files
        ):
            out.append(f"{file_input.field}: not square")
        other = _as_list(facts.get(file_input.same_dimensions_as or ""))
        second = other[0] if other and isinstance(other[0], Mapping) else {}
        if "width" in second and (first["width"], first["height"]) != (
            second["width"],
            second["height"],
        ):
            out.append(f"{file_input.field}: not the size of {file_input.same_dimensions_as}")
    size = facts.get("size")
    if spec.accepts_custom("size", size) and spec.custom_sizes is not None:
        wxh = parse_wxh(size)
        limit = spec.custom_sizes.broken_limit(*wxh) if wxh else None
        if limit is not None:
            out.append(f"size: custom size breaks {limit}")
    return out


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


# --- the planner -------------------------------------------------------------------------------


@dataclass
class MultipartCases:
    """One endpoint's cases: the controls (sent first), then the rest."""

    controls: list[Case]
    cases: list[Case]


def multipart_cases(
    profile: Profile, endpoint_name: str, models: Sequence[str], seed: int
) -> MultipartCases:
    """The cases of one multipart endpoint for the given models (those it serves), and its
    model-independent probes."""
    endpoint = profile.contract.endpoint(endpoint_name)
    served = [m for m in models if m in endpoint.models]
    planners = [_FormPlanner(endpoint, endpoint.models[m], profile, seed) for m in served]
    controls = [p.control() for p in planners]
    cases: list[Case] = []
    for planner in planners:
        cases.extend(planner.negative() + planner.probes())
        fixed = planner.boundary() + planner.files() + planner.pairwise()
        cases.extend(fixed + planner.each_choice(fixed))
    if planners:
        cases.extend(_global_cases(endpoint, profile, planners))
    return MultipartCases(controls=controls, cases=cases)


class _FormPlanner:
    """Builds the cases of one model on one multipart endpoint."""

    def __init__(self, endpoint: Endpoint, spec: ModelSpec, profile: Profile, seed: int) -> None:
        self.endpoint = endpoint
        self.spec = spec
        self.profile = profile
        self.seed = seed
        self.contract: Contract = profile.contract
        self.inputs: Mapping[str, FileInput] = endpoint.files[spec.name]
        self.rules = {
            rule_id: rule
            for rule_id, rule in endpoint.rules.items()
            if spec.name in rule.models and rule.per_model
        }
        self.prefix = f"{endpoint.name}/{spec.name}"
        cheap = _cheapest(spec, profile) if spec.takes("size") or spec.takes("quality") else {}
        self.base: dict[str, Any] = {k: v for k, v in cheap.items() if spec.takes(k)}
        if self.takes_prompt:
            self.base = {"prompt": DEFAULT_PROMPT, **self.base}

    # --- facts ------------------------------------------------------------------------------

    @property
    def takes_prompt(self) -> bool:
        return "prompt" in self.endpoint.request_fields

    @property
    def image(self) -> FileInput:
        return next(f for f in self.inputs.values() if f.required)

    @property
    def mask(self) -> FileInput | None:
        return next((f for f in self.inputs.values() if f.edit_area), None)

    def picture(self, seed: int = 0, **changes: Any) -> InputFile:
        return replace(InputFile(width=_SIDE, height=_SIDE, seed=seed), **changes)

    def mask_file(self, **changes: Any) -> InputFile:
        recipe = InputFile(role="mask", width=_SIDE, height=_SIDE, alpha=True, box=_BOX)
        return replace(recipe, **changes)

    def rule_id(self, stem: str) -> str | None:
        """The endpoint's rule ``<endpoint>.<stem>`` for this model, or a model's own variant
        of it (``edits.image.count.dall-e-2``)."""
        wanted = f"{self.endpoint.name}.{stem}"
        for rule_id in self.rules:
            if rule_id == wanted or rule_id.startswith(wanted + "."):
                return rule_id
        return None

    # --- forms ------------------------------------------------------------------------------

    def form(
        self,
        text: Mapping[str, Any],
        files: Sequence[tuple[str, InputFile | str]] | None = None,
        *,
        model: bool = True,
    ) -> tuple[FormPart, ...]:
        """A form: the model, the text fields (None: left out), then the files (a str in
        place of a file is sent as a text part). The model is named as the contract names it
        (what :func:`form_violations` reads); the case sends the vendor's name for it."""
        if files is None:
            files = [(self.image.parts[0], self.picture())]
        out = [FormPart("model", self.spec.name)] if model else []
        out += [FormPart(k, _text(v)) for k, v in text.items() if v is not None]
        for name, item in files:
            if isinstance(item, str):
                out.append(FormPart(name, value=item))
            else:
                out.append(FormPart(name, file=item))
        return tuple(out)

    def decoded(self, parts: Sequence[FormPart]) -> dict[str, Any]:
        """The form's text fields, decoded: what pricing, ``n`` and features read."""
        facts = form_facts([p for p in parts if p.file is None], self.endpoint)
        return {k: v for k, v in facts.items() if k not in self.inputs}

    # --- cases ------------------------------------------------------------------------------

    def case(
        self,
        parts: tuple[FormPart, ...],
        *,
        kind: str,
        rule: str,
        expect: str,
        origin: str,
        title: str,
        ident: str,
        **extra: Any,
    ) -> Case:
        text = self.decoded(parts)
        images = _images_if_accepted(text)
        quality, size = text.get("quality"), text.get("size")
        # The price of the images made, as for generations. GPT image edits also bill the input
        # images as tokens: the per-image price bounds only the output, not that input.
        price = self.profile.price(
            self.spec.name,
            quality if isinstance(quality, str) else None,
            size if isinstance(size, str) else None,
        )
        tags = list(extra.pop("tags", ()))
        if kind == "valid":
            used = features_used(text, self.spec, tuple(sorted(self.profile.unsupported)))
            if used:
                expect = "reject"
                tags.extend(f"unsupported:{f}" for f in used)
        level = self.endpoint.all_rules[rule].level_for(self.spec.name)
        sent = self.profile.sent_name(self.spec.name)
        if sent != self.spec.name:  # asked by the vendor's name (``aliases:``), as generations
            parts = tuple(
                FormPart("model", sent) if (p.name, p.value) == ("model", self.spec.name) else p
                for p in parts
            )
        return Case(
            id=ident,
            model=extra.pop("model", self.spec.name),
            kind=kind,  # type: ignore[arg-type]
            rule=rule,
            level=level,
            expect=expect,  # type: ignore[arg-type]
            origin=origin,
            images=images,
            cost=None if price is None else round(price * images, 6),
            title=title,
            tags=tuple(tags),
            endpoint=self.endpoint.name,
            parts=parts,
            **extra,
        )

    def valid(
        self,
        parts: tuple[FormPart, ...],
        origin: str,
        index: int,
        title: str,
        rule: str = "",
        group: str = "",
    ) -> Case:
        broken = form_violations(parts, self.endpoint)
        if broken:
            raise RuntimeError(f"{self.prefix}: a valid {origin} case breaks {broken[0]}")
        return self.case(
            parts,
            kind="valid",
            rule=rule or self.accepted,
            expect="accept",
            origin=origin,
            title=title,
            ident=f"{self.prefix}/valid/{group or origin}/{index:02d}",
        )

    @property
    def accepted(self) -> str:
        return f"{self.endpoint.name}.valid.accepted"

    def control(self) -> Case:
        parts = self.form(self.base)
        return self.case(
            parts,
            kind="valid",
            rule=self.accepted,
            expect="accept",
            origin=CONTROL_ORIGIN,
            title="control: " + _describe(self.base, "one picture"),
            ident=f"{self.prefix}/control",
        )

    def boundary(self) -> list[Case]:
        """The shortest and longest prompt, the largest ``n``, the most pictures, and a picture
        and a mask at the largest byte count every reading of their limit accepts."""
        forms: list[tuple[str, tuple[FormPart, ...]]] = []
        one = {"n": 1} if self.spec.takes("n") else {}
        limit = self.spec.prompt_max_chars
        if self.takes_prompt:
            forms.append(
                ("prompt 1 char", self.form({**self.base, "prompt": prompt_of_length(1), **one}))
            )
            if limit is not None:
                forms.append(
                    (
                        f"prompt {limit} chars",
                        self.form({**self.base, "prompt": prompt_of_length(limit)}),
                    )
                )
        if self.spec.n_max > 1:
            forms.append((f"n={self.spec.n_max}", self.form({**self.base, "n": self.spec.n_max})))
        image = self.image
        if image.max_count > 1:
            many = [(image.parts[-1], self.picture(seed)) for seed in range(image.max_count)]
            forms.append(
                (f"{image.max_count} pictures as {image.parts[-1]}", self.form(self.base, many))
            )
        if image.safe_max_bytes is not None:
            big = self.picture(length=image.safe_max_bytes)
            forms.append(
                (
                    f"picture of {image.safe_max_bytes} bytes",
                    self.form(self.base, [(image.parts[0], big)]),
                )
            )
        mask = self.mask
        if mask is not None and mask.safe_max_bytes is not None:
            files = [
                (image.parts[0], self.picture()),
                (mask.parts[0], self.mask_file(length=mask.safe_max_bytes)),
            ]
            forms.append((f"mask of {mask.safe_max_bytes} bytes", self.form(self.base, files)))
        return [self.valid(p, "boundary", i, title) for i, (title, p) in enumerate(forms, 1)]

    def files(self) -> list[Case]:
        """The file variants: each format the model takes, alpha, not square, a mask, and
        several pictures in each form the field takes (each under the rule it shows)."""
        image, mask = self.image, self.mask
        first = image.parts[0]
        out: list[tuple[str, list[tuple[str, InputFile]], str]] = []
        for fmt in image.formats:
            if fmt != "png":
                out.append((f"a {fmt} picture", [(first, self.picture(format=fmt))], ""))
        for fmt in image.formats:
            if fmt in ("png", "webp"):
                out.append(
                    (
                        f"a {fmt} picture with alpha",
                        [(first, self.picture(format=fmt, alpha=True))],
                        "",
                    )
                )
        if not image.square:
            wide = self.picture(width=_WIDE[0], height=_WIDE[1])
            tall = self.picture(width=_WIDE[1], height=_WIDE[0])
            out.append(("a wide picture", [(first, wide)], ""))
            out.append(("a tall picture", [(first, tall)], ""))
        if mask is not None:
            out.append(
                (
                    "a picture and a mask",
                    [(first, self.picture()), (mask.parts[0], self.mask_file())],
                    "",
                )
            )
            if not image.square:
                wide = self.picture(width=_WIDE[0], height=_WIDE[1])
                wide_mask = self.mask_file(width=_WIDE[0], height=_WIDE[1])
                out.append(
                    ("a wide picture and its mask", [(first, wide), (mask.parts[0], wide_mask)], "")
                )
        for part in image.parts:
            if part != first:
                out.append(
                    (
                        f"one picture as {part}",
                        [(part, self.picture())],
                        self.rule_id("image.brackets") or "",
                    )
                )
        if image.max_count > 1:
            for part in image.parts:
                several = [(part, self.picture(seed)) for seed in range(3)]
                shown = "image.brackets" if part.endswith("[]") else "image.repeated"
                out.append((f"3 pictures as {part}", several, self.rule_id(shown) or ""))
                if mask is not None:
                    with_mask = [*several, (mask.parts[0], self.mask_file())]
                    out.append(
                        (f"3 pictures as {part} and a mask", with_mask, self.rule_id(shown) or "")
                    )
        return [
            self.valid(self.form(self.base, files), "each-choice", i, title, rule, group="files")
            for i, (title, files, rule) in enumerate(out, 1)
        ]

    # pairwise ------------------------------------------------------------------------------

    def factors(self) -> dict[str, tuple[Any, ...]]:
        """The covering array's fields, as for generations, with the endpoint's own enum
        fields (``input_fidelity``) the generations fields leave out."""
        factors = pairwise_factors(self.spec, self.contract)
        for param, values in self.spec.enums.items():
            if param not in factors:
                factors[param] = (DEFAULT, *values)
        return factors

    def forbidden(
        self, factors: Mapping[str, Sequence[Any]]
    ) -> dict[tuple[str, str], frozenset[tuple[int, int]]]:
        """Value pairs no valid form holds together, asked of the endpoint's rules between
        fields (each value alone is valid: the factors are the model's own values)."""

        def valid(assignment: Mapping[str, Any]) -> bool:
            body = {k: v for k, v in assignment.items() if v is not DEFAULT}
            return all(c.holds(body) for c in self.endpoint.cross_fields)

        return pairs_never_valid(factors, valid)

    def pairwise(self) -> list[Case]:
        factors = self.factors()
        if len(factors) < 2:
            return []
        cheap = {**self.base, "n": 1}
        weights = {
            param: {values.index(cheap[param]): 10}
            for param, values in factors.items()
            if param in cheap and cheap[param] in values
        }
        rows = _covering_array(factors, self.forbidden(factors), self.seed, weights)
        out = []
        for index, row in enumerate(rows, 1):
            text = {k: v for k, v in row.items() if v is not DEFAULT}
            if self.takes_prompt:
                text = {"prompt": DEFAULT_PROMPT, **text}
            out.append(
                self.valid(self.form(text), "pairwise", index, _describe(text, "one picture"))
            )
        return out

    # each-choice ---------------------------------------------------------------------------

    def values(self) -> dict[str, tuple[Any, ...]]:
        values = dict(param_values(self.spec, self.contract))
        for param, choices in self.spec.enums.items():
            values.setdefault(param, choices)
        return values

    def each_choice(self, sofar: Sequence[Case]) -> list[Case]:
        """Any value of any field the cases so far left out, on the cheap form (with what a
        rule between fields asks of the others: a lossy format for ``output_compression``),
        ``partial_images`` on a streamed form."""
        covered: dict[str, set[Any]] = {}
        for case in sofar:
            for param, value in self.decoded(case.parts).items():
                covered.setdefault(param, set()).add(_key(value))
        out: list[Case] = []
        custom = self.spec.custom_sizes
        inner = (
            set(custom_size_examples(custom)) - set(custom_size_corners(custom))
            if custom
            else set()
        )
        wanted = [(p, v) for p, vs in self.values().items() for v in vs]
        wanted.sort(key=lambda pv: pv[0] == "size" and pv[1] in inner)
        for param, value in wanted:
            if _key(value) in covered.get(param, set()):
                continue
            text = self._completed({**self.base, param: value}, param)
            if text is None:
                raise RuntimeError(f"{self.prefix}: no valid form takes {param}={value!r}")
            parts = self.form(text)
            out.append(
                self.valid(parts, "each-choice", len(out) + 1, _describe(text, "one picture"))
            )
            for k, v in text.items():
                covered.setdefault(k, set()).add(_key(v))
        return out

    def _completed(self, text: dict[str, Any], param: str) -> dict[str, Any] | None:
        """``text`` with what the rules between fields need of the other fields (a value of
        each, tried in the model's order), or None when none makes it valid."""
        if param == "partial_images" and self.spec.takes("stream"):
            text = {**text, "stream": True}
        if all(c.holds(text) for c in self.endpoint.cross_fields):
            return text
        for cross in self.endpoint.cross_fields:
            if cross.holds(text):
                continue
            others = [f for f in (*cross.when, *cross.then) if f != param]
            for other in others:
                for candidate in self.spec.values(other):
                    trial = {**text, other: candidate}
                    if all(c.holds(trial) for c in self.endpoint.cross_fields):
                        return trial
        return None

    # --- invalid cases ---------------------------------------------------------------------

    def negative(self) -> list[Case]:
        """Every request rule of the model broken alone (each rule at least once)."""
        out: list[Case] = []
        for rule in self.rules.values():
            if rule.kind != "reject":
                continue
            breaks = list(self._breaks(rule))
            if not breaks:
                raise RuntimeError(f"{self.prefix}: no form breaks {rule.id}")
            for title, parts in breaks:
                if not form_violations(parts, self.endpoint):
                    raise RuntimeError(f"{self.prefix}: {title!r} breaks nothing ({rule.id})")
                level = rule.level_for(self.spec.name)
                out.append(
                    self.case(
                        parts,
                        kind="invalid",
                        rule=rule.id,
                        expect="reject",
                        origin="must-reject" if level == "MUST" else "should-reject",
                        title=title,
                        ident=f"{self.prefix}/invalid/{rule.id}/{title}",
                    )
                )
        return out

    def _breaks(self, rule: Rule) -> Iterable[tuple[str, tuple[FormPart, ...]]]:
        """The forms that break ``rule`` alone, with their titles."""
        stem = rule.id.split(".", 1)[1]
        field_name = rule.param
        crosses = [c for c in self.endpoint.cross_fields if c.rule == rule.id]
        if crosses:
            yield from self._cross_breaks(rule, crosses[0])
        elif stem.startswith(("image.", "mask.")):
            yield from self._file_breaks(rule, stem)
        elif stem == "unknown_field":
            yield f"{UNKNOWN_FIELD} text part", self.form({**self.base, UNKNOWN_FIELD: "1"})
            yield (
                f"{UNKNOWN_FIELD} file part",
                self.form(
                    self.base,
                    [(self.image.parts[0], self.picture()), (UNKNOWN_FIELD, self.picture(1))],
                ),
            )
        elif field_name == "prompt":
            yield from self._prompt_breaks(stem)
        elif rule.limit is not None and self.spec.custom_sizes is not None:
            custom = self.spec.custom_sizes
            sizes = [s for group in invalid_custom_sizes(custom).values() for s in group]
            breaking = [s for s in sizes if custom.broken_limit(*parse_wxh(s)) == rule.limit]
            for size in breaking[:2]:
                yield f"size={size}", self.form({**self.base, "size": size})
        elif field_name is not None:
            for value in self._bad_values(rule):
                text = self._context(rule, {**self.base, field_name: value})
                yield _describe({field_name: value}, ""), self.form(text)

    def _cross_breaks(self, rule: Rule, cross: Any) -> Iterable[tuple[str, tuple[FormPart, ...]]]:
        """A rule between fields broken: the first values of its fields (the model's own, in
        order) that break it while every other rule between fields holds."""
        fields = list(dict.fromkeys((*cross.when, *cross.then)))
        values = self.values()
        choices = [values.get(f, ()) for f in fields]
        base = {k: v for k, v in self.base.items() if k not in rule.clear}
        for combo in product(*choices):
            text = {**base, **dict(zip(fields, combo, strict=True))}
            if cross.holds(text):
                continue
            if all(c.holds(text) for c in self.endpoint.cross_fields if c is not cross):
                yield _describe(dict(zip(fields, combo, strict=True)), ""), self.form(text)
                return

    def _context(self, rule: Rule, text: dict[str, Any]) -> dict[str, Any]:
        """The other fields a break needs so that it breaks its rule alone: the rule's first
        ``with:``, and what the rules between fields ask (a lossy format for a compression),
        without the fields its ``clear:`` names."""
        text = {**text, **rule.contexts[0]}
        for name in rule.clear:
            text.pop(name, None)
        for cross in self.endpoint.cross_fields:
            if cross.rule == rule.id:
                continue
            if not cross.holds(text):
                fixed = self._completed(text, rule.param or "")
                if fixed is not None:
                    text = fixed
        return text

    def _bad_values(self, rule: Rule) -> list[Any]:
        """Values of the rule's field that break it: its own examples (for sizes, with
        another model's size); for an enum, a value of another model and one of another field;
        for a range, one past each bound (the model's own maximum where it states one)."""
        param = rule.param or ""
        stem = rule.id.split(".", 1)[1]
        if stem == "size.enum":
            others = [
                s
                for spec in self.endpoint.models.values()
                for s in spec.sizes
                if s not in self.spec.sizes and not self.spec.accepts_custom("size", s)
            ]
            return [*rule.examples[:2], *others[:1]]
        if rule.examples:
            return list(rule.examples)
        if stem.endswith(".enum"):
            foreign = [
                v
                for spec in self.endpoint.models.values()
                for v in spec.values(param)
                if v not in self.spec.values(param)
            ]
            other_field = [
                v
                for name, values in self.spec.enums.items()
                if name != param
                for v in values
                if v not in self.spec.values(param) and isinstance(v, str)
            ]
            return list(dict.fromkeys([*foreign[:1], *other_field[:1]]))
        branch = _integer_branch(self.endpoint.request_fields.get(param, {}))
        if branch is None:
            return []
        low = int(branch["minimum"])
        high = self.spec.limit(param, "maximum")
        high = int(high if high is not None else branch["maximum"])
        if stem.endswith(".min"):
            return [low - 1]
        if stem.endswith(".max"):
            return [high + 1]
        return [low - 1, high + 1]

    def _prompt_breaks(self, stem: str) -> Iterable[tuple[str, tuple[FormPart, ...]]]:
        rest = {k: v for k, v in self.base.items() if k != "prompt"}
        if stem == "prompt.required":
            yield "prompt missing", self.form(rest)
        elif stem == "prompt.empty":
            yield "prompt empty", self.form({"prompt": "", **rest})
        elif stem == "prompt.max_length" and self.spec.prompt_max_chars is not None:
            length = self.spec.prompt_max_chars + 1
            yield f"prompt {length} chars", self.form({"prompt": prompt_of_length(length), **rest})

    def _file_breaks(self, rule: Rule, stem: str) -> Iterable[tuple[str, tuple[FormPart, ...]]]:
        image, mask = self.image, self.mask
        first = image.parts[0]
        picture = self.picture()
        facet = stem.split(".")[1]
        if stem.startswith("image."):
            if facet == "required":
                yield "no image part", self.form(self.base, [])
            elif facet == "file":
                for part in image.parts:
                    yield f"{part} as a text part", self.form(self.base, [(part, picture.filename)])
            elif facet == "decodes":
                yield "a text file", self.form(self.base, [(first, self.picture(format="text"))])
            elif facet == "format":
                for fmt in _IMAGE_FORMATS:
                    if fmt not in image.formats:
                        yield (
                            f"a {fmt} picture",
                            self.form(self.base, [(first, self.picture(format=fmt))]),
                        )
            elif facet == "bytes" and image.max_bytes is not None:
                over = self.picture(length=image.max_bytes)
                yield f"picture of {image.max_bytes} bytes", self.form(self.base, [(first, over)])
            elif facet == "count":
                count = image.max_count + 1
                part = image.parts[-1]
                many = [(part, self.picture(seed)) for seed in range(count)]
                yield f"{count} pictures as {part}", self.form(self.base, many)
            elif facet == "square":
                wide = self.picture(width=_WIDE[0], height=_WIDE[1])
                yield f"a {_WIDE[0]}x{_WIDE[1]} picture", self.form(self.base, [(first, wide)])
            return
        if mask is None:
            return
        name = mask.parts[0]
        if facet == "file":
            yield (
                "mask as a text part",
                self.form(self.base, [(first, picture), (name, self.mask_file().filename)]),
            )
        elif facet == "bytes" and mask.max_bytes is not None:
            over = self.mask_file(length=mask.max_bytes)
            yield (
                f"mask of {mask.max_bytes} bytes",
                self.form(self.base, [(first, picture), (name, over)]),
            )
        elif facet == "dimensions":
            half = self.mask_file(width=_SIDE // 2, height=_SIDE // 2, box=(0, 0, 8, 8))
            yield (
                f"a {_SIDE // 2}x{_SIDE // 2} mask",
                self.form(self.base, [(first, picture), (name, half)]),
            )
        elif facet == "format":
            for fmt in _IMAGE_FORMATS:
                if fmt not in mask.formats and fmt != "gif":
                    yield (
                        f"a {fmt} mask",
                        self.form(
                            self.base, [(first, picture), (name, self.mask_file(format=fmt))]
                        ),
                    )
        elif facet == "alpha":
            yield (
                "a mask without alpha",
                self.form(self.base, [(first, picture), (name, self.mask_file(alpha=False))]),
            )

    # --- probes -----------------------------------------------------------------------------

    def probes(self) -> list[Case]:
        """Grey areas, judged at their rule's level: a field the model does not take (refused
        with 400 or ignored), and both forms of ``image`` in one form."""
        out: list[Case] = []
        unsupported = f"{self.endpoint.name}.unsupported_param"
        if unsupported in self.rules:
            for param, value in self._untaken():
                title = _describe({param: value}, "")
                out.append(
                    self.case(
                        self.form({**self.base, param: value}),
                        kind="probe",
                        rule=unsupported,
                        expect="either",
                        origin="probe",
                        title=title,
                        ident=f"{self.prefix}/probe/{unsupported}/{title}",
                    )
                )
        both = self.rule_id("image.both_forms")
        if both is not None and len(self.image.parts) > 1:
            files = [(part, self.picture(seed)) for seed, part in enumerate(self.image.parts)]
            title = "pictures as " + " and ".join(self.image.parts)
            out.append(
                self.case(
                    self.form(self.base, files),
                    kind="probe",
                    rule=both,
                    expect="either",
                    origin="probe",
                    title=title,
                    ident=f"{self.prefix}/probe/{both}/{title}",
                )
            )
        return out

    def _untaken(self) -> list[tuple[str, Any]]:
        """Each optional field of the endpoint the model does not take, with the last value
        another model takes for it (``true`` for ``stream``)."""
        required = self.endpoint.schemas["request"].get("required", ())
        out = []
        for param in self.endpoint.request_fields:
            if param in ("model", *self.inputs, *required) or self.spec.takes(param):
                continue
            taken = [
                param_values(spec, self.contract).get(param) or spec.values(param)
                for spec in self.endpoint.models.values()
                if spec.takes(param)
            ]
            if taken and taken[0]:
                out.append((param, taken[0][-1]))
        return out


def _global_cases(
    endpoint: Endpoint, profile: Profile, planners: Sequence[_FormPlanner]
) -> list[Case]:
    """The endpoint's model-independent cases: bodies of a type it does not take or that do
    not parse, an unknown model, and the model left out (when the endpoint's default model is
    one the plan covers)."""
    out: list[Case] = []
    anchor = planners[0]
    for rule_id, title, raw, raw_type in _bodies(endpoint, anchor):
        rule = endpoint.rules.get(rule_id)
        if rule is None:
            continue
        out.append(
            anchor.case(
                (),
                kind="invalid",
                rule=rule.id,
                expect="reject",
                origin="must-reject" if rule.is_must else "should-reject",
                title=title,
                ident=f"{endpoint.name}/*/invalid/{rule.id}/{title}",
                model="*",
                raw=raw,
                raw_type=raw_type,
            )
        )
    unknown_rule = endpoint.rules.get(f"{endpoint.name}.model.unknown")
    default_rule = endpoint.rules.get(f"{endpoint.name}.model.default")
    model_less = anchor.form(anchor.base, model=False)
    if unknown_rule is not None:
        unknown = "imgconf-no-such-model"
        while unknown in profile.contract.models or unknown in endpoint.models:
            unknown += "-x"
        # A name no one serves, and a model of another endpoint (sent under the vendor's name).
        others = [m for m in profile.contract.models if m not in endpoint.models]
        names = [(unknown, unknown)]
        names += [(others[0], profile.sent_name(others[0]))] if others else []
        for title, sent in names:
            out.append(
                anchor.case(
                    (FormPart("model", sent), *model_less),
                    kind="invalid",
                    rule=unknown_rule.id,
                    expect="reject",
                    origin="must-reject" if unknown_rule.is_must else "should-reject",
                    title=f"model={title}",
                    ident=f"{endpoint.name}/*/invalid/{unknown_rule.id}/model={title}",
                    model="*",
                )
            )
    default = next((p for p in planners if p.spec.name == endpoint.default_model), None)
    if default_rule is not None and default is not None:
        out.append(
            default.case(
                default.form(default.base, model=False),
                kind="probe",
                rule=default_rule.id,
                expect="accept",
                origin="probe",
                title="model omitted",
                ident=f"{endpoint.name}/*/probe/{default_rule.id}/model omitted",
                model="*",
            )
        )
    return out


def _bodies(endpoint: Endpoint, anchor: _FormPlanner) -> list[tuple[str, str, bytes, str]]:
    """Bodies the endpoint refuses whatever they hold: (rule, title, bytes, Content-Type).

    Types it does not take (the two of an HTML form that is not multipart, and JSON where the
    endpoint's schema does not name it as a form it leaves undescribed), and multipart bodies
    that do not parse: a boundary that never closes, a part without a name."""
    name = endpoint.name
    prompt = DEFAULT_PROMPT.encode()
    meta = endpoint.schemas["request"].get("x-imgconf-endpoint", {})
    out = [
        (
            f"{name}.body.content_type",
            "form encoded",
            b"prompt=" + prompt.replace(b" ", b"+"),
            "application/x-www-form-urlencoded",
        ),
        (f"{name}.body.content_type", "plain text", prompt, "text/plain"),
    ]
    if "application/json" not in (endpoint.content_type, *meta.get("not_described", {})):
        out.append(
            (
                f"{name}.body.content_type",
                "JSON",
                b'{"prompt": "' + prompt + b'"}',
                "application/json",
            )
        )
    # A valid form (the control's) broken in its framing alone.
    control = anchor.control()
    whole, boundary = control.content(), control.boundary
    close = f"--{boundary}--\r\n".encode()
    if not whole.endswith(close):
        raise RuntimeError(f"{name}: a multipart body does not end with its closing boundary")
    nameless = f"--{boundary}\r\nContent-Disposition: form-data\r\n\r\n1\r\n".encode()
    multipart = f"multipart/form-data; boundary={boundary}"
    out += [
        (f"{name}.body.malformed", "a boundary that never closes", whole[: -len(close)], multipart),
        (
            f"{name}.body.malformed",
            "a part without a name",
            whole[: -len(close)] + nameless + close,
            multipart,
        ),
    ]
    return out


def _describe(text: Mapping[str, Any], files: str) -> str:
    """A short title: the fields beside the prompt (the prompt by its length), and the files."""
    out = []
    for key, value in text.items():
        if key == "prompt":
            if value != DEFAULT_PROMPT:
                out.append(f"prompt {len(value)} chars")
            continue
        out.append(f"{key}={_text(value)}")
    if files:
        out.append(files)
    return ", ".join(out) or "defaults"


def multipart_coverage(
    profile: Profile, endpoints: Sequence[str], cases: Sequence[Case], cut: Sequence[Case]
) -> dict[str, Any]:
    """Per multipart endpoint and model: the requests, what they spend on a conformant server,
    and which of the endpoint's MUST request rules (refusals and acceptances) its cases aim at;
    the model-independent ones under ``*``."""
    out: dict[str, Any] = {}
    for name in endpoints:
        if name not in MULTIPART_ENDPOINTS:
            continue
        endpoint = profile.contract.endpoint(name)
        mine = [c for c in cases if c.endpoint == name]
        models = list(dict.fromkeys(c.model for c in mine))
        per_model: dict[str, Any] = {}
        for model in models:
            theirs = [c for c in mine if c.model == model]
            must = [
                r.id
                for r in endpoint.rules.values()
                if r.kind in ("reject", "accept")
                and r.is_must_for(None if model == "*" else model)
                and (r.per_model == (model != "*"))
                and (model == "*" or model in r.models)
            ]
            per_model[model] = model_tally(theirs, must, {c.rule for c in theirs})
        out[name] = {
            "models": per_model,
            "cut": sum(1 for c in cut if c.endpoint == name),
        }
    return out
