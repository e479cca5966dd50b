"""Features a vendor may not offer: the ``features:`` of ``rules.yaml`` as predicates on a body.

A profile lists what it does not serve (``unsupported: [stream, size=custom]``). The planner then
expects a valid request that uses one refused, and the reference server serving that profile
refuses it: both ask the same question of a body, so it is answered here, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .loader import ModelSpec, load_contract

__all__ = ["feature_used", "features_used"]


def feature_used(feature: str, body: Any, spec: ModelSpec | None) -> bool:
    """Does a request use a feature named in ``features:`` of ``rules.yaml``?

    ``param`` alone: any value but null and ``false``; ``param=value``: that value;
    ``size=custom``: a size outside the model's enum; ``param>N``: a number above N.
    """
    if not isinstance(body, Mapping):
        return False
    if ">" in feature:
        param, limit = feature.split(">", 1)
        value = body.get(param)
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and value > float(limit)
        )
    if "=" in feature:
        param, wanted = feature.split("=", 1)
        value = body.get(param)
        if wanted == "custom":
            return isinstance(value, str) and spec is not None and value not in spec.sizes
        return value == wanted
    value = body.get(feature)
    return value is not None and value is not False


def features_used(
    body: Any, spec: ModelSpec | None, features: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The features (all of the contract's, or those given) that a request uses."""
    names = features if features is not None else tuple(load_contract().features)
    return tuple(f for f in names if feature_used(f, body, spec))
