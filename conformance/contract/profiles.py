"""Profiles: which models a target serves, which rules it is held to, and what images cost.

A profile narrows the contract for one target. The ``openai`` profile is OpenAI itself; a vendor
profile says what that vendor claims: its models, its path, the SHOULD rules it documents as
guarantees (raised to MUST), the features it does not offer (then a clean 4xx is expected
instead), and a price table used to budget a run.

Profiles are YAML or JSON files. Built-in ones live in ``schemas/profiles/``; a user passes the
name of one or the path of their own. A broken file raises :class:`ProfileError` with a message
that names the field, meant to be shown as one line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..errors import SetupError
from .declared import ANY, DeclarationError, DeclaredModel, extend_contract, parse_models
from .levels import Level
from .loader import ENDPOINTS, GENERATIONS, LEVELS, Contract, Rule, load_contract, read_data_file
from .reach import AuthStyle, check_header, parse_query

__all__ = ["Profile", "ProfileError", "Rate", "builtin_profiles", "load_profile"]

UNKNOWN = "unknown"
#: A deployment name: one URL path segment, nothing that needs quoting.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ProfileError(SetupError):
    """A profile file is missing, unreadable or wrong; the message names the field."""


@dataclass(frozen=True)
class Profile:
    """A target's claims, applied on top of the contract."""

    name: str
    title: str
    description: str
    source: str
    base_url: str | None
    path: str
    models: tuple[str, ...]
    rule_overrides: Mapping[str, Mapping[str, Any]]
    unsupported: frozenset[str]
    #: model -> quality -> size -> USD, or model -> None when the price is unknown.
    prices: Mapping[str, Mapping[str, Mapping[str, float]] | None]
    prices_source: str
    file: Path | None = None
    #: The vendor's rate limits to keep to: requests and images per minute (None: none).
    rate: Rate | None = None
    #: How the key is sent (``auth:``): bearer (the default), a named header, a query parameter.
    auth: AuthStyle = dataclasses.field(default_factory=AuthStyle)
    #: Headers sent on every request to the target; a value ``env:VAR`` is read at run time.
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Query parameters sent on every request to the target (``api-version``).
    query: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The models the profile declares (``like:`` a contract model, or from scratch).
    declared: tuple[DeclaredModel, ...] = ()
    #: The contract with the declared models in it (None: the contract itself).
    own_contract: Contract | None = dataclasses.field(default=None, repr=False, compare=False)
    #: The vendor's names for its models (``aliases:``): model -> the name sent as ``model``.
    names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The deployment that serves each model (``deployments:``, Azure): model -> deployment.
    deployments: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The endpoints the target serves (``endpoints:``): generations alone unless it says more.
    endpoints: tuple[str, ...] = (GENERATIONS,)

    def choose_endpoints(
        self, asked: Sequence[str] | None, flag: str = "--endpoint"
    ) -> tuple[str, ...]:
        """The endpoints a run sends to: those asked (in the contract's order), else every one
        the profile serves. A name the contract does not know, or one the profile does not
        serve, is a set-up error naming the flag."""
        if not asked:
            return self.endpoints
        for name in asked:
            if name not in ENDPOINTS:
                raise SetupError(
                    f"{flag}: unknown endpoint {name!r} (one of {', '.join(ENDPOINTS)})"
                )
            if name not in self.endpoints:
                raise SetupError(
                    f"{flag}: profile {self.name} does not serve {name} (it serves "
                    f"{', '.join(self.endpoints)}; a profile lists what it serves in `endpoints:`)"
                )
        return tuple(name for name in ENDPOINTS if name in asked)

    def sent_name(self, model: str) -> str:
        """The name a model is asked by (its alias, or itself)."""
        return self.names.get(model, model)

    def label(self, model: str) -> str:
        """A model as reports show it: ``my-dalle3 (dall-e-3)`` for an alias."""
        sent = self.sent_name(model)
        return model if sent == model else f"{sent} ({model})"

    def model_named(self, name: str) -> str:
        """The model a name stands for (an alias's model, or the name itself)."""
        return self.contract.aliases.get(name, name)

    @property
    def contract(self) -> Contract:
        """The contract this profile is judged by: the base one plus its declared models."""
        return self.own_contract if self.own_contract is not None else load_contract()

    def rules(self) -> dict[str, Rule]:
        """The contract's rules as this profile holds them: levels raised, models narrowed."""
        out: dict[str, Rule] = {}
        for rule in self.contract.rules.values():
            override = self.rule_overrides.get(rule.id, {})
            level = Level(override.get("level", rule.level))
            levels = {} if "level" in override else rule.levels
            models = rule.models
            if "models" in override:
                wanted = override["models"]
                models = tuple(self.models) if wanted == "*" else tuple(wanted)
            models = tuple(m for m in models if m in self.models)
            out[rule.id] = dataclasses.replace(rule, level=level, models=models, levels=levels)
        return out

    def price(self, model: str, quality: str | None, size: str | None) -> float | None:
        """USD for one image, or None when unknown. ``auto``/omitted takes the model's dearest."""
        table = self.prices.get(model)
        if not table:
            return None
        qualities = [quality] if quality in table else list(table)
        candidates: list[float] = []
        for q in qualities:
            sizes = table[q]
            # auto, omitted or custom sizes have no list price: the dearest is the honest estimate.
            candidates.extend([sizes[size]] if size in sizes else sizes.values())
        return max(candidates) if candidates else None

    def price_known(self, model: str) -> bool:
        return bool(self.prices.get(model))


def _fail(where: str, message: str) -> ProfileError:
    return ProfileError(f"profile {where}: {message}")


def _expect(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _fail(where, f"field '{key}' must be {_article(names)} (got {value!r:.60})")
    return value


@dataclass(frozen=True)
class Rate:
    """Requests and images per minute a run keeps to (a low-tier account's limits)."""

    requests_per_minute: float | None = None
    images_per_minute: float | None = None

    @classmethod
    def from_mapping(cls, data: Any) -> Rate:
        if not isinstance(data, Mapping):
            raise ValueError("must map requests_per_minute and/or images_per_minute to numbers")
        bad = sorted(set(data) - {"requests_per_minute", "images_per_minute"})
        if bad:
            raise ValueError(f"unknown key {bad[0]!r} (requests_per_minute, images_per_minute)")
        values = {}
        for key in ("requests_per_minute", "images_per_minute"):
            value = data.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ValueError(f"{key} must be a positive number (got {value!r:.40})")
            values[key] = value
        return cls(**values)

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``--rate REQUESTS[,IMAGES]`` per minute (``60``, ``60,5``, ``,5``)."""
        requests, _, images = text.partition(",")
        try:
            return cls.from_mapping(
                {
                    "requests_per_minute": float(requests) if requests.strip() else None,
                    "images_per_minute": float(images) if images.strip() else None,
                }
            )
        except ValueError as exc:
            raise ValueError(
                f"expected REQUESTS[,IMAGES] per minute, e.g. 60 or 60,5 ({exc})"
            ) from None


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def parse_profile(data: Any, where: str, file: Path | None = None) -> Profile:
    """Check a profile document against the contract and build a :class:`Profile`."""
    contract = load_contract()
    if not isinstance(data, Mapping):
        raise _fail(where, "must be a mapping of fields (name, models, ...)")
    known = {
        "name",
        "title",
        "description",
        "source",
        "base_url",
        "path",
        "models",
        "rules",
        "unsupported",
        "prices",
        "prices_source",
        "rate",
        "auth",
        "headers",
        "query",
        "aliases",
        "deployments",
        "endpoints",
    }
    extra = sorted(set(data) - known)
    if extra:
        raise _fail(where, f"unknown field '{extra[0]}' (known: {', '.join(sorted(known))})")
    name = _expect(data, "name", str, where)
    raw_models = _expect(data, "models", list, where)
    if not raw_models:
        raise _fail(where, "field 'models' must list at least one model")
    try:
        names, declared = parse_models(raw_models, contract)
        contract = extend_contract(contract, declared)
    except DeclarationError as exc:
        raise _fail(where, str(exc)) from None
    models = list(names)
    path = data.get("path", "/images/generations")
    if not isinstance(path, str) or not path.startswith("/"):
        raise _fail(where, f"field 'path' must be a string starting with '/' (got {path!r:.60})")
    base_url = data.get("base_url")
    if base_url is not None and not (
        isinstance(base_url, str) and base_url.startswith(("http://", "https://"))
    ):
        raise _fail(where, f"field 'base_url' must be an http(s) URL (got {base_url!r:.60})")

    overrides = data.get("rules") or {}
    if not isinstance(overrides, Mapping):
        raise _fail(where, "field 'rules' must map rule ids to {level, models}")
    for rule_id, override in overrides.items():
        if rule_id not in contract.rules:
            raise _fail(where, f"field 'rules': unknown rule id {rule_id!r}")
        if not isinstance(override, Mapping):
            raise _fail(where, f"field 'rules.{rule_id}' must be a mapping (level, models)")
        bad = sorted(set(override) - {"level", "models"})
        if bad:
            raise _fail(where, f"field 'rules.{rule_id}.{bad[0]}' is not known (level, models)")
        if "level" in override and override["level"] not in LEVELS:
            raise _fail(where, f"field 'rules.{rule_id}.level' must be MUST or SHOULD")
        wanted = override.get("models", "*")
        if wanted != "*" and not (isinstance(wanted, list) and all(m in models for m in wanted)):
            raise _fail(where, f"field 'rules.{rule_id}.models' must be '*' or known model names")

    unsupported = data.get("unsupported") or []
    if not isinstance(unsupported, list):
        raise _fail(where, "field 'unsupported' must be a list of feature names")
    for feature in unsupported:
        if feature not in contract.features:
            raise _fail(
                where,
                f"field 'unsupported': unknown feature {feature!r} "
                f"(known: {', '.join(contract.features)})",
            )

    prices = _parse_prices(data.get("prices") or {}, models, where, contract)
    prices.update(_declared_prices(declared, contract))
    rate = None
    if data.get("rate") is not None:
        try:
            rate = Rate.from_mapping(data["rate"])
        except ValueError as exc:
            raise _fail(where, f"field 'rate': {exc}") from None
    auth, headers, query = _parse_reach(data, where)
    names = _parse_aliases(data.get("aliases"), models, where)
    if names:
        contract = dataclasses.replace(contract, aliases={v: k for k, v in names.items()})
    deployments = _parse_deployments(data.get("deployments"), models, names, where)
    endpoints = _parse_endpoints(data.get("endpoints"), where)
    if deployments and base_url and "/deployments/" in base_url:
        raise _fail(where, "field 'deployments': base_url must end before /deployments/")
    return Profile(
        name=name,
        title=str(data.get("title", name)),
        description=str(data.get("description", "")).strip(),
        source=str(data.get("source", "")),
        base_url=base_url,
        path=path,
        models=tuple(models),
        rule_overrides={k: dict(v) for k, v in overrides.items()},
        unsupported=frozenset(unsupported),
        prices=prices,
        prices_source=str(data.get("prices_source", "")) or _declared_price_sources(declared),
        file=file,
        rate=rate,
        auth=auth,
        headers=headers,
        query=query,
        declared=declared,
        own_contract=None if not (declared or names) else contract,
        names=names,
        deployments=deployments,
        endpoints=endpoints,
    )


def _parse_endpoints(raw: Any, where: str) -> tuple[str, ...]:
    """``endpoints: [generations, edits, variations]``: what the target serves (default:
    generations alone, the endpoint every vendor of the suite documents)."""
    if raw is None:
        return (GENERATIONS,)
    if not isinstance(raw, list) or not raw:
        raise _fail(where, f"field 'endpoints' must list some of {', '.join(ENDPOINTS)}")
    for name in raw:
        if name not in ENDPOINTS:
            raise _fail(
                where, f"field 'endpoints': unknown endpoint {name!r} ({', '.join(ENDPOINTS)})"
            )
    if len(set(raw)) != len(raw):
        raise _fail(where, "field 'endpoints' names an endpoint twice")
    return tuple(name for name in ENDPOINTS if name in raw)


def _parse_aliases(raw: Any, models: list[str], where: str) -> dict[str, str]:
    """``aliases: {vendor-name: model}`` as model -> vendor name (one name per model)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(where, "field 'aliases' must map the vendor's names to models of the profile")
    names: dict[str, str] = {}
    for alias, model in raw.items():
        at = f"field 'aliases.{alias}'"
        if not isinstance(alias, str) or not alias.strip() or alias in models:
            raise _fail(where, f"{at}: the alias must be a name that is not one of the models")
        if model not in models:
            raise _fail(where, f"{at} must name a model of the profile ({', '.join(models)})")
        if model in names:
            raise _fail(where, f"{at}: {model} already has the alias {names[model]!r}")
        names[model] = alias
    return names


def _parse_deployments(
    raw: Any, models: list[str], names: Mapping[str, str], where: str
) -> dict[str, str]:
    """``deployments: {model-or-alias: deployment}`` as model -> deployment."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(where, "field 'deployments' must map models (or aliases) to deployment names")
    by_alias = {alias: model for model, alias in names.items()}
    out: dict[str, str] = {}
    for name, deployment in raw.items():
        at = f"field 'deployments.{name}'"
        model = by_alias.get(name, name)
        if model not in models:
            raise _fail(where, f"{at}: not a model or alias of the profile")
        if model in out:
            raise _fail(where, f"{at}: {model} is given two deployments")
        if not isinstance(deployment, str) or not _SEGMENT.match(deployment):
            raise _fail(where, f"{at} must be a deployment name (letters, digits, . _ -)")
        out[model] = deployment
    if len(set(out.values())) != len(out):
        raise _fail(where, "field 'deployments': one deployment serves one model")
    return out


def _declared_price_sources(declared: tuple[DeclaredModel, ...]) -> str:
    """Where the declared models' prices come from, when the profile names no prices source."""
    return "; ".join(f"{m.name}: {m.price_source}" for m in declared if m.price_source)


def _declared_prices(
    declared: tuple[DeclaredModel, ...], contract: Contract
) -> dict[str, dict[str, dict[str, float]]]:
    """A declared model's price per image, as a table over its qualities and sizes (``*``:
    any, for a field it does not take)."""
    out = {}
    for model in declared:
        if model.price_per_image is None:
            continue
        spec = contract.models[model.name]
        sizes = [s for s in spec.sizes if "x" in s] or [ANY]
        table = {size: model.price_per_image for size in sizes}
        out[model.name] = {quality: dict(table) for quality in spec.qualities or (ANY,)}
    return out


def _parse_reach(
    data: Mapping[str, Any], where: str
) -> tuple[AuthStyle, dict[str, str], dict[str, str]]:
    """The profile's ``auth``, ``headers`` and ``query`` (how the target is reached)."""
    try:
        auth = AuthStyle.from_mapping(data.get("auth") or {})
    except ValueError as exc:
        raise _fail(where, f"field 'auth': {exc}") from None
    raw = data.get("headers") or {}
    if not isinstance(raw, Mapping):
        raise _fail(where, "field 'headers' must map header names to values (or env:VAR)")
    try:
        headers = dict(check_header(k, v, "field 'headers'") for k, v in raw.items())
        query = parse_query(data.get("query") or {}, "field 'query'")
    except SetupError as exc:
        raise _fail(where, str(exc)) from None
    if auth.style == "query" and auth.name in query:
        raise _fail(where, f"field 'query': {auth.name} carries the key (auth style query)")
    return auth, headers, query


def _parse_prices(
    raw: Any, models: list[str], where: str, contract: Contract
) -> dict[str, dict[str, dict[str, float]] | None]:
    if not isinstance(raw, Mapping):
        raise _fail(where, "field 'prices' must map model -> quality -> size -> USD")
    prices: dict[str, dict[str, dict[str, float]] | None] = {m: None for m in models}
    for model, table in raw.items():
        if model not in contract.models:
            raise _fail(where, f"field 'prices': unknown model {model!r}")
        if table == UNKNOWN or table is None:
            prices[model] = None
            continue
        if not isinstance(table, Mapping):
            raise _fail(
                where, f"field 'prices.{model}' must map quality -> size -> USD or be 'unknown'"
            )
        spec = contract.models[model]
        parsed: dict[str, dict[str, float]] = {}
        for quality, sizes in table.items():
            if quality not in spec.qualities:
                raise _fail(where, f"field 'prices.{model}.{quality}': not a quality of {model}")
            if not isinstance(sizes, Mapping):
                raise _fail(where, f"field 'prices.{model}.{quality}' must map size -> USD")
            parsed[quality] = {}
            for size, usd in sizes.items():
                if size not in spec.sizes:
                    raise _fail(
                        where, f"field 'prices.{model}.{quality}.{size}': not a size of {model}"
                    )
                if isinstance(usd, bool) or not isinstance(usd, int | float) or usd < 0:
                    raise _fail(
                        where, f"field 'prices.{model}.{quality}.{size}' must be a USD amount >= 0"
                    )
                parsed[quality][size] = float(usd)
        prices[model] = parsed
    return prices


def builtin_profiles() -> dict[str, Path]:
    """Names and files of the profiles that ship with imgconf."""
    directory = load_contract().directory / "profiles"
    return {p.stem: p for p in sorted(directory.glob("*.yaml"))}


@cache
def load_profile(name_or_path: str = "openai") -> Profile:
    """Load a built-in profile by name, or a user's profile file by path."""
    builtin = builtin_profiles()
    if name_or_path in builtin:
        path = builtin[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ProfileError(
                f"profile {name_or_path!r}: no such built-in profile ({', '.join(builtin)}) or file"
            )
    try:
        data = read_data_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile {path}: cannot read it ({exc.__class__.__name__})") from None
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ProfileError(f"profile {path}: not valid YAML/JSON ({first})") from None
    return parse_profile(data, str(path), file=path)
