"""Hypothesis strategies for the multipart endpoints (``/images/edits``, ``/images/variations``).

:func:`valid_forms` draws forms a conformant server must accept for a model: every text field
the model takes (left out or one of its valid values, whole ranges for integers), a prompt up to
exactly the model's limit, one to a few pictures (each format the model takes, square or not
where the model allows it, with or without alpha) in either form the field takes, and a mask the
size of the first picture or none. :func:`invalid_forms` draws ``(form, rule)``: a form of the
plan's that breaks one rule, with its pictures drawn afresh (another seed, size and, where the
break allows, format). Files are recipes (:class:`~conformance.generation.inputs.InputFile`),
kept small: a drawn form is cheap to hold and to send.

Hypothesis is imported when drawing only, as in :mod:`conformance.generation.strategies`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..contract.loader import _integer_branch
from ..contract.profiles import Profile, load_profile
from .cases import FormPart
from .inputs import InputFile
from .multipart_planning import _FormPlanner
from .strategies import DEFAULT_PROMPT, _custom_sizes_strategy, prompt_of_length

if TYPE_CHECKING:
    from hypothesis import strategies as st

__all__ = ["invalid_forms", "valid_forms"]

#: The most pictures a drawn form holds (the plan has the field's maximum as a boundary case).
_MAX_DRAWN = 4
#: Drawn pictures' sides, in pixels.
_SIDES = (16, 160)


def _planner(endpoint: str, model: str, profile: Profile | None) -> _FormPlanner:
    profile = profile or load_profile("openai")
    served = profile.contract.endpoint(endpoint)
    if model not in served.models:
        raise ValueError(f"{endpoint} serves no model {model!r}")
    return _FormPlanner(served, served.models[model], profile, seed=0)


def _field(planner: _FormPlanner, param: str) -> st.SearchStrategy[Any]:
    """Any valid non-null value of a text field for the model."""
    from hypothesis import strategies as st

    spec = planner.spec
    if param == "size" and spec.custom_sizes is not None:
        return st.sampled_from(spec.sizes) | _custom_sizes_strategy(spec.custom_sizes)
    if spec.values(param):
        return st.sampled_from(spec.values(param))
    branch = _integer_branch(planner.endpoint.request_fields.get(param, {}))
    if branch is not None:
        high = spec.limit(param, "maximum")
        return st.integers(
            int(branch["minimum"]), int(high if high is not None else branch["maximum"])
        )
    values = planner.values().get(param, ())
    if values and all(isinstance(v, bool) for v in values):
        return st.booleans()
    return st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)


def _pictures(planner: _FormPlanner) -> st.SearchStrategy[list[InputFile]]:
    from hypothesis import strategies as st

    image = planner.image
    count = st.integers(1, min(image.max_count, _MAX_DRAWN))
    side = st.integers(*_SIDES)

    @st.composite
    def pictures(draw: st.DrawFn) -> list[InputFile]:
        out = []
        for _ in range(draw(count)):
            fmt = draw(st.sampled_from(image.formats))
            width = draw(side)
            height = width if image.square else draw(side)
            alpha = fmt in ("png", "webp") and draw(st.booleans())
            seed = draw(st.integers(0, 255))
            out.append(InputFile(width=width, height=height, format=fmt, alpha=alpha, seed=seed))
        return out

    return pictures()


def valid_forms(
    endpoint: str, model: str, profile: Profile | None = None
) -> st.SearchStrategy[tuple[FormPart, ...]]:
    """Forms a conformant server must accept for ``model`` on ``endpoint``; a value that would
    break a rule between fields is left out instead."""
    from hypothesis import strategies as st

    planner = _planner(endpoint, model, profile)
    spec = planner.spec
    fields = {p: _field(planner, p) for p in planner.values() if spec.takes(p)}
    limit = spec.prompt_max_chars or len(DEFAULT_PROMPT)
    prompts = st.one_of(
        st.just(DEFAULT_PROMPT),
        st.integers(1, limit).map(prompt_of_length),
        st.just(prompt_of_length(limit)),
    )

    @st.composite
    def forms(draw: st.DrawFn) -> tuple[FormPart, ...]:
        text: dict[str, Any] = {"prompt": draw(prompts)} if planner.takes_prompt else {}
        for param, strategy in fields.items():
            if draw(st.booleans()):
                continue
            value = draw(strategy)
            trial = {**text, param: value}
            if all(c.holds(trial) for c in planner.endpoint.cross_fields):
                text = trial
        pictures = draw(_pictures(planner))
        # One form for all the pictures: both at once is a grey area (edits.image.both_forms).
        name = draw(st.sampled_from(planner.image.parts))
        files = [(name, picture) for picture in pictures]
        mask = planner.mask
        if mask is not None and draw(st.booleans()):
            first = pictures[0]
            left = draw(st.integers(0, first.width - 1))
            top = draw(st.integers(0, first.height - 1))
            right = draw(st.integers(left + 1, first.width))
            bottom = draw(st.integers(top + 1, first.height))
            recipe = InputFile(
                role="mask",
                width=first.width,
                height=first.height,
                alpha=True,
                box=(left, top, right, bottom),
            )
            files.append((mask.parts[0], recipe))
        return planner.form(text, files)

    return forms()


def invalid_forms(
    endpoint: str, model: str, profile: Profile | None = None
) -> st.SearchStrategy[tuple[tuple[FormPart, ...], str]]:
    """``(form, rule)``: one of the plan's breaks of each request rule of the model, with its
    pictures drawn afresh: another seed always, another size where the break is not about the
    pictures' size or shape."""
    from hypothesis import strategies as st

    planner = _planner(endpoint, model, profile)
    breaks = [(c.parts, c.rule) for c in planner.negative()]

    def redrawn(parts: tuple[FormPart, ...], rule: str, seed: int, side: int) -> tuple:
        keep_size = any(word in rule for word in ("square", "dimensions", "bytes"))
        out = []
        for part in parts:
            recipe = part.file
            if recipe is not None and recipe.role == "picture" and recipe.length is None:
                recipe = replace(recipe, seed=seed)
                if not keep_size and recipe.width == recipe.height:
                    recipe = replace(recipe, width=side, height=side)
            elif recipe is not None and recipe.role == "mask" and not keep_size:
                recipe = replace(recipe, width=side, height=side, box=(0, 0, side // 2, side // 2))
            out.append(replace(part, file=recipe))
        return tuple(out), rule

    return st.builds(
        lambda pair, seed, side: redrawn(*pair, seed, side),
        st.sampled_from(breaks),
        st.integers(0, 255),
        st.integers(*_SIDES),
    )
