"""The code side of the rule catalogue: at most one entry per rule in each layer that needs code.

A rule is declared once, as data, in ``schemas/rules.yaml``. Where a layer needs code for it
(the request oracle's detector and breakers, the engine's answer check, the server's refusal),
that code is registered here under the rule's id, and nowhere else names the id. A
:class:`Registry` refuses an id the catalogue does not declare and an id registered twice, at
import time, so a typo or a second table cannot drift silently; :meth:`Registry.missing` lets a
test hold a layer's entries and the catalogue to each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from .loader import ContractError, load_contract

__all__ = ["Registry", "declared"]

T = TypeVar("T")


def declared(rule_id: str) -> str:
    """``rule_id``, once checked against the catalogue (a ContractError when not declared)."""
    if rule_id not in load_contract().rules:
        raise ContractError(f"rule {rule_id!r} is not declared in rules.yaml")
    return rule_id


class Registry(Generic[T]):
    """One layer's code entries, by rule id."""

    def __init__(self, layer: str) -> None:
        self.layer = layer
        self._entries: dict[str, T] = {}

    def add(self, rule_id: str, entry: T) -> T:
        """Register ``entry`` for ``rule_id``; returns the entry, so it can name it too."""
        declared(rule_id)
        if rule_id in self._entries:
            raise ContractError(f"{self.layer}: rule {rule_id!r} is registered twice")
        self._entries[rule_id] = entry
        return entry

    def register(self, rule_id: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(entry: T) -> T:
            return self.add(rule_id, entry)

        return decorate

    def __getitem__(self, rule_id: str) -> T:
        return self._entries[rule_id]

    def get(self, rule_id: str) -> T | None:
        return self._entries.get(rule_id)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterable[tuple[str, T]]:
        return self._entries.items()

    def missing(self, rule_ids: Iterable[str]) -> list[str]:
        """Those of ``rule_ids`` with no entry here (for tests holding layer and catalogue)."""
        return [r for r in rule_ids if r not in self._entries]
