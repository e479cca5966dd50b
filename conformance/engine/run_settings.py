"""What a run was asked, checked once: the settings both front ends (``imgconf run`` and the
pytest plugin) fill from their flags and hand to :func:`check_settings`.

One dataclass and one set of checks, so a bad value gets the same message whichever front end
took it (the pytest plugin names its own flags, ``--imgconf-...``, in the same sentences).
Every bad value is a :class:`~conformance.errors.SetupError`: one line, exit 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import settings as bounds
from ..contract.profiles import Profile, Rate
from ..errors import SetupError
from ..redact import register_secrets, strip_url
from .transport import TransportConfig, is_http_url, is_loopback

if TYPE_CHECKING:
    from ..generation.planning import Plan

__all__ = [
    "LIMITS",
    "RunSettings",
    "check_budget",
    "check_fail_on",
    "check_key",
    "check_prices",
    "check_settings",
    "parse_limits",
    "reach_config",
    "transport_config",
]

FAIL_ON = ("must", "should")
#: A base URL that names an Azure deployment itself (``…/openai/deployments/NAME``).
DEPLOYMENT_URL = re.compile(r"/deployments/[^/]+/?$")


@dataclass
class RunSettings:
    """Everything a run was asked (``imgconf run``'s flags, the plugin's ``--imgconf-*``)."""

    base_url: str | None = None
    api_key: str | None = None
    models: tuple[str, ...] | None = None
    profile: str = "openai"
    report_dir: Path | None = Path("reports")
    seed: int = 0
    timeout: float = bounds.DEFAULT_TIMEOUT
    #: ``--rate REQUESTS[,IMAGES]`` per minute (default: the profile's ``rate``, else none).
    rate: str | None = None
    #: ``--max-duration``: seconds after which the run stops sending (None: no deadline).
    max_duration: float | None = None
    concurrency: int = bounds.DEFAULT_CONCURRENCY
    max_cost: float | None = None
    max_images: int | None = None
    explore: int = 0
    record: Path | None = None
    #: The recording's total cap, in MiB (``--record-cap``).
    record_cap: int = bounds.DEFAULT_RECORD_CAP_MIB
    baseline: Path | None = None
    fail_on: str = "must"
    #: ``--from``: an earlier report.json whose cases (chosen by ``only``) are sent again.
    from_report: Path | None = None
    only: str = "failed,unobserved"
    #: Tunables for tests and the benchmark; not command-line flags.
    body_cap: int | None = None
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``--limit NAME=VALUE``: transport bounds raised or lowered (see :data:`LIMITS`).
    limits: tuple[str, ...] = ()
    #: How the target is reached (:mod:`conformance.contract.reach`): ``--header 'NAME: VALUE'``
    #: (a value ``env:VAR`` read from the environment), ``--ca-bundle``, ``--insecure``,
    #: ``--proxy``.
    headers: tuple[str, ...] = ()
    ca_bundle: str | None = None
    insecure: bool = False
    proxy: str | None = None

    def pace(self, profile: Profile) -> Rate | None:
        """The rate the run keeps to: ``--rate``, else the profile's."""
        return Rate.parse(self.rate) if self.rate else profile.rate


#: Bounds ``--limit`` may set: the transport's, with their unit.
LIMITS = {
    "body_cap": "bytes",
    "error_cap": "bytes",
    "fetch_cap": "bytes",
    "inflight_cap": "bytes",
    "retries": "count",
    "max_retry_wait": "seconds",
    "retry_budget": "seconds",
    "retry_budget_count": "count",
}
_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def parse_limits(items: tuple[str, ...]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs as transport settings; a SetupError names the bad one."""
    out: dict[str, Any] = {}
    for item in items:
        name, _, text = item.partition("=")
        name, text = name.strip(), text.strip().lower()
        unit = LIMITS.get(name)
        if unit is None:
            raise SetupError(f"--limit: unknown bound {name!r} (known: {', '.join(LIMITS)})")
        try:
            if unit == "bytes":
                digits = text.rstrip("kmgib")
                value: Any = int(float(digits) * _UNITS[text[len(digits) :]])
            elif unit == "count":
                value = int(text)
            else:
                value = float(text)
        except (ValueError, KeyError):
            raise SetupError(f"--limit: {item!r} needs a number of {unit}") from None
        if value < 0 or (unit == "bytes" and value == 0):
            raise SetupError(f"--limit: {item!r} must be positive")
        out[name] = value
    return out


def check_settings(settings: RunSettings, profile: Profile) -> None:
    """Every flag checked against its bounds and the profile; the first bad one raises."""
    if settings.timeout <= 0:
        raise SetupError("--timeout must be a positive number of seconds")
    if settings.max_duration is not None and settings.max_duration <= 0:
        raise SetupError("--max-duration must be a positive number of seconds")
    if settings.concurrency < 1:
        raise SetupError("--concurrency must be at least 1")
    if settings.max_cost is not None and settings.max_cost < 0:
        raise SetupError("--max-cost must be a USD amount >= 0")
    if settings.max_images is not None and settings.max_images < 0:
        raise SetupError("--max-images must be >= 0")
    if settings.explore < 0:
        raise SetupError("--explore must be >= 0")
    if settings.record_cap < 1:
        raise SetupError("--record-cap must be at least 1 (MiB)")
    check_fail_on(settings.fail_on)
    parse_limits(settings.limits)
    if settings.rate is not None:
        try:
            Rate.parse(settings.rate)
        except ValueError as exc:
            raise SetupError(f"--rate: {exc}") from None
    for model in settings.models or ():
        if profile.model_named(model) not in profile.models:
            raise SetupError(
                f"--models: {model!r} is not a model of profile {profile.name} "
                f"({', '.join(profile.models)})"
            )
    if settings.base_url is not None and not is_http_url(settings.base_url):
        raise SetupError(
            f"--base-url must be an http(s) URL (got {strip_url(settings.base_url)!r})"
        )
    if settings.baseline is not None and not settings.baseline.is_file():
        raise SetupError(f"--baseline: no such file {settings.baseline}")


def check_fail_on(fail_on: str) -> None:
    """``--fail-on``: what fails a run besides a broken MUST rule."""
    if fail_on not in FAIL_ON:
        raise SetupError("--fail-on must be 'must' or 'should'")


def check_key(key: str | None) -> str:
    """The target's key; a run without one cannot start, nor one that no request can carry (a
    line break or a space pasted with it, a character outside ASCII)."""
    from ..contract.reach import unsendable

    if not key:
        raise SetupError("no API key: pass --api-key or set OPENAI_API_KEY")
    if (problem := unsendable(key)) is not None:
        raise SetupError(f"the API key {problem}: check --api-key or OPENAI_API_KEY")
    return key


def check_prices(settings: RunSettings, profile: Profile) -> None:
    """Refuse a cost cap that cannot bound the run: models without a price under --max-cost
    alone would be sent uncounted (or, with the cap holding, never at all)."""
    if settings.max_cost is None or settings.max_images is not None:
        return
    models = [profile.model_named(m) for m in settings.models or profile.models]
    unpriced = [m for m in models if not profile.price_known(m)]
    if unpriced:
        raise SetupError(
            f"--max-cost cannot bound {', '.join(unpriced)}: profile {profile.name} has no price "
            "for it; add --max-images N, or give the profile a price with its source"
        )


def check_budget(settings: RunSettings, base_url: str, full_plan: Callable[[], Plan]) -> None:
    """A target that is not on loopback costs money: refuse to run it without a budget, saying
    what the full plan (made only to say so) would spend."""
    budgeted = settings.max_cost is not None or settings.max_images is not None
    if budgeted or is_loopback(base_url):
        return
    plan = full_plan()
    unknown = (
        f" (+{plan.cost_unknown_images} images at unknown prices)"
        if plan.cost_unknown_images
        else ""
    )
    raise SetupError(
        f"{strip_url(base_url)} is not on loopback: give a budget with --max-cost USD or "
        f"--max-images N (the full plan sends {len(plan.cases)} requests, generating up to "
        f"{plan.images} images, estimated ${plan.cost:.2f}{unknown})"
    )


def reach_config(settings: RunSettings, profile: Profile) -> dict[str, Any]:
    """The transport settings of how the target is reached: the profile's auth style and
    query, extra headers (``env:`` values read and registered as secrets), TLS and proxy.
    Each bad one is a SetupError."""
    from ..contract.reach import check_proxy, proxy_secret, resolve_headers, ssl_context

    if settings.insecure and settings.ca_bundle is not None:
        raise SetupError("--insecure and --ca-bundle contradict each other: give one")
    headers, secrets = resolve_headers(profile.headers, settings.headers, profile.auth)
    proxy = check_proxy(settings.proxy)
    register_secrets(*secrets, proxy_secret(proxy))
    return {
        "extra_headers": headers,
        "secrets": tuple(secrets),
        "auth": profile.auth,
        "query": dict(profile.query),
        "verify": ssl_context(settings.ca_bundle, insecure=settings.insecure),
        "ca_bundle": settings.ca_bundle,
        "proxy": proxy,
    }


def transport_config(
    settings: RunSettings, profile: Profile, base_url: str, key: str
) -> TransportConfig:
    """How the run's requests are sent: the target, its key, the timeout, every bound."""
    return TransportConfig(
        base_url=base_url,
        path=profile.path,
        api_key=key,
        timeout=settings.timeout,
        **({"body_cap": settings.body_cap} if settings.body_cap else {}),
        **settings.extra,
        **parse_limits(settings.limits),
        **reach_config(settings, profile),
        deployments=deployments_of(settings, profile, base_url),
    )


def deployments_of(settings: RunSettings, profile: Profile, base_url: str) -> dict[str, str]:
    """The deployment each model of the run is sent to: the profile's ``deployments:`` when
    the base URL ends before them (``…/openai``); none when it names one itself
    (``…/openai/deployments/NAME``, as the OpenAI SDK takes it), then for one model only."""
    if not profile.deployments:
        return {}
    models = [profile.model_named(m) for m in settings.models or profile.models]
    if DEPLOYMENT_URL.search(urlsplit(base_url).path):
        if len(models) != 1:
            raise SetupError(
                "--base-url names one deployment: give the one model it serves with --models, "
                "or end --base-url before /deployments to use the profile's deployments"
            )
        return {}
    missing = [m for m in models if m not in profile.deployments]
    if missing:
        raise SetupError(
            f"profile {profile.name} names no deployment for {missing[0]} (deployments:); "
            "or end --base-url at its deployment and give --models"
        )
    return {m: profile.deployments[m] for m in models}
