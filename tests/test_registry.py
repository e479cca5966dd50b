"""The rule registry: code entries exist only for declared rules, once per layer."""

from __future__ import annotations

import pytest

from conformance.contract.loader import ContractError, load_contract
from conformance.contract.registry import Registry, declared


def test_declared_accepts_catalogue_ids_and_refuses_others() -> None:
    some = next(iter(load_contract().rules))
    assert declared(some) == some
    with pytest.raises(ContractError, match="not declared"):
        declared("request.no_such_rule")


def test_registry_refuses_unknown_and_duplicate_ids() -> None:
    ids = list(load_contract().rules)
    layer: Registry[int] = Registry("test")
    assert layer.add(ids[0], 1) == 1

    @layer.register(ids[1])
    def entry() -> int:
        return 2

    assert layer[ids[1]] is entry and ids[0] in layer and len(layer) == 2
    assert layer.missing(ids[:3]) == [ids[2]]
    with pytest.raises(ContractError, match="twice"):
        layer.add(ids[0], 3)
    with pytest.raises(ContractError, match="not declared"):
        layer.add("image.no_such_rule", 4)
