"""Fault injection for the reference server: named, documented deviations from the contract.

Each quirk is one mistake a real vendor or proxy might make. What it is, which rules of
``schemas/rules.yaml`` a correct judge reports against it and the verdict it must produce are
declared as data in ``schemas/quirks.yaml``; this module reads that file (refusing a quirk that
names an undeclared rule or reason) and the reference server implements each quirk by name.
imgconf's own end-to-end tests iterate over :data:`QUIRKS`: against every quirk, ``imgconf run``
must reach its declared verdict. Quirks combine freely.

Quirks of kind ``accept`` are generic: the server simply stops enforcing the rules the quirk
breaks (and makes the best of the odd value instead, as a sloppy vendor would).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..contract.loader import (
    GENERATIONS,
    ContractError,
    load_contract,
    read_data_file,
    schemas_dir,
)
from ..contract.registry import declared
from ..errors import SetupError

__all__ = [
    "QUIRKS",
    "SERVER_QUIRKS",
    "ActiveQuirks",
    "Quirk",
    "load_quirks",
    "load_server_quirks",
    "parse_quirks",
]

KINDS = ("accept", "reject", "answer", "image", "error", "auth", "stream", "transport")
VERDICTS = ("fail", "incomplete")


@dataclass(frozen=True)
class Quirk:
    """One deviation: its name, what it does, and the MUST rule ids it breaks.

    A quirk with a ``parameter`` takes a value as ``name:VALUE`` (``slow:2.5``), else
    ``default``.
    """

    name: str
    kind: str
    description: str
    breaks: tuple[str, ...]
    parameter: str | None = None
    default: float | None = None
    #: The verdict a correct judge reaches against it: ``fail`` (naming ``breaks``) or
    #: ``incomplete`` (naming ``reasons``: the server hides what the rules need to be seen).
    verdict: str = "fail"
    reasons: tuple[str, ...] = ()
    #: The endpoint whose requests it bends (``endpoint:``; generations when left out).
    endpoint: str = GENERATIONS


def load_quirks(path: Path | None = None) -> Mapping[str, Quirk]:
    """The quirks of ``quirks.yaml`` whose verdict a run reaches, by name, in file order: those
    of an endpoint not judged yet (``judged: false``) are left out (see
    :func:`load_server_quirks`)."""
    contract = load_contract()
    return MappingProxyType(
        {
            name: quirk
            for name, quirk in load_server_quirks(path).items()
            if contract.endpoint(quirk.endpoint).judged
        }
    )


def load_server_quirks(path: Path | None = None) -> Mapping[str, Quirk]:
    """Every quirk of ``quirks.yaml`` the reference server implements, by name, in file order.

    A ContractError for an entry the judge could not hold the server to: a rule or a
    not-observed reason ``rules.yaml`` does not declare, an unknown kind or verdict, a name
    given twice.
    """
    raw = read_data_file(path or schemas_dir() / "quirks.yaml")
    entries = raw.get("quirks") if isinstance(raw, Mapping) else None
    if not isinstance(entries, list):
        raise ContractError("quirks.yaml: needs a `quirks:` list")
    quirks: dict[str, Quirk] = {}
    for entry in entries:
        quirk = _quirk(entry)
        if quirk.name in quirks:
            raise ContractError(f"quirks.yaml: quirk {quirk.name!r} appears twice")
        quirks[quirk.name] = quirk
    return MappingProxyType(quirks)


def _quirk(entry: Any) -> Quirk:
    """One entry of quirks.yaml, checked against the rule catalogue."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise ContractError(f"quirks.yaml: an entry without a name: {entry!r}")
    name = entry["name"]
    where = f"quirks.yaml: quirk {name!r}"
    if entry.get("kind") not in KINDS:
        raise ContractError(f"{where}: kind must be one of {', '.join(KINDS)}")
    verdict = entry.get("verdict", "fail")
    if verdict not in VERDICTS:
        raise ContractError(f"{where}: verdict must be one of {', '.join(VERDICTS)}")
    endpoint = entry.get("endpoint", GENERATIONS)
    try:
        breaks = tuple(_declared(rule, endpoint) for rule in entry.get("breaks") or ())
    except ContractError as exc:
        raise ContractError(f"{where}: {exc}") from None
    reasons = tuple(entry.get("reasons") or ())
    unknown = [r for r in reasons if r not in load_contract().reasons]
    if unknown:
        raise ContractError(f"{where}: reasons not declared in rules.yaml: {unknown}")
    default = entry.get("default")
    return Quirk(
        name=name,
        kind=entry["kind"],
        description=str(entry.get("description", "")),
        breaks=breaks,
        parameter=entry.get("parameter"),
        default=float(default) if default is not None else None,
        verdict=verdict,
        reasons=reasons,
        endpoint=endpoint,
    )


def _declared(rule_id: str, endpoint: str) -> str:
    """A generations rule id, checked by the registry; another endpoint's rule (or a generations
    rule it reuses), checked against that endpoint's contract."""
    if endpoint == GENERATIONS:
        return declared(rule_id)
    if rule_id not in load_contract().endpoint(endpoint).all_rules:
        raise ContractError(f"rule {rule_id!r} is not declared for endpoint {endpoint}")
    return rule_id


#: Every quirk the server implements, by name, in a stable order (that of quirks.yaml).
SERVER_QUIRKS: Mapping[str, Quirk] = load_server_quirks()
#: The quirks whose declared verdict a run reaches (those of judged endpoints).
QUIRKS: Mapping[str, Quirk] = MappingProxyType(
    {k: q for k, q in SERVER_QUIRKS.items() if load_contract().endpoint(q.endpoint).judged}
)


@dataclass(frozen=True)
class ActiveQuirks:
    """The quirks a server runs with, and their parameter values."""

    values: Mapping[str, float | None] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __bool__(self) -> bool:
        return bool(self.values)

    def __iter__(self):
        return iter(self.values)

    def value(self, name: str) -> float | None:
        return self.values.get(name)

    def tolerated_rules(self) -> frozenset[str]:
        """The rules the server stops enforcing (those of its ``accept`` quirks)."""
        return frozenset(
            rule
            for name in self.values
            if SERVER_QUIRKS[name].kind == "accept"
            for rule in SERVER_QUIRKS[name].breaks
        )

    def spec(self) -> tuple[str, ...]:
        """The quirks as ``name`` or ``name:VALUE`` strings (what parse_quirks reads back)."""
        return tuple(
            name if value is None or value == SERVER_QUIRKS[name].default else f"{name}:{value:g}"
            for name, value in self.values.items()
        )


def parse_quirks(names: Iterable[str]) -> ActiveQuirks:
    """``["wrong-count", "slow:2"]`` -> ActiveQuirks; an unknown name is a SetupError."""
    values: dict[str, float | None] = {}
    for raw in names:
        name, _, arg = raw.strip().partition(":")
        quirk = SERVER_QUIRKS.get(name)
        if quirk is None:
            raise SetupError(
                f"unknown quirk {name!r} (see 'imgconf serve --list-quirks' for the names)"
            )
        if arg and quirk.parameter is None:
            raise SetupError(f"quirk {name!r} takes no value (got {raw!r})")
        if quirk.parameter is None:
            values[name] = None
            continue
        try:
            value = float(arg) if arg else quirk.default
        except ValueError:
            raise SetupError(
                f"quirk {name!r}: {quirk.parameter} must be a number (got {arg!r})"
            ) from None
        if value is None or value < 0:
            raise SetupError(f"quirk {name!r}: {quirk.parameter} must not be negative")
        values[name] = value
    return ActiveQuirks(MappingProxyType(values))
