"""The built-in vendor profiles: each loads, plans with a cost, round-trips against the reference
server serving it, is caught answering the wrong size, and cites its vendor's own pages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from conformance.cli import main_entry
from conformance.contract.levels import Level
from conformance.contract.profiles import Profile, builtin_profiles, load_profile
from conformance.server.launcher import start_reference_server

VENDORS = sorted(name for name in builtin_profiles() if name != "openai")
#: Vendors whose documentation lives on a domain other than their API's.
DOCS_DOMAINS = {
    "azure-openai": {"microsoft.com"},
    "siliconflow": {"siliconflow.com"},
}
URL = re.compile(r"\S+://[^\s;,)]+")


def own_domains(profile: Profile) -> set[str]:
    """The vendor's registrable domain, from its base URL, and where its documentation lives."""
    domains = set(DOCS_DOMAINS.get(profile.name, ()))
    if profile.base_url:
        host = urlsplit(profile.base_url).hostname or ""
        domains.add(".".join(host.split(".")[-2:]))
    return domains


def on_domain(url: str, domains: set[str]) -> bool:
    host = urlsplit(url).hostname or ""
    return any(host == d or host.endswith("." + d) for d in domains)


@pytest.mark.parametrize("name", VENDORS)
def test_the_profile_loads_with_its_models(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.models
    assert set(profile.models) <= set(profile.contract.models)


@pytest.mark.parametrize("name", VENDORS)
def test_the_plan_prints_its_cases_and_cost(name, capsys):
    assert main_entry(["plan", "--profile", name]) == 0
    out = capsys.readouterr().out
    assert f"Plan for profile {name}" in out
    assert re.search(r"\d+ requests; if the server behaves: \d+ images, \$\d+\.\d\d", out), out
    profile = load_profile(name)
    for model in profile.models:
        # A model asked by an alias is shown as `alias (model)`.
        assert re.search(rf"^{re.escape(profile.label(model))}: \d+ requests", out, re.M), model


#: Profiles the reference server cannot yet serve as they claim: applerouter raises
#: ``response.usage.present`` to MUST for every model, and the server answers dall-e without
#: ``usage``, as OpenAI does (tests/test_e2e_quirks.py holds that finding).
@pytest.mark.parametrize("name", VENDORS)
def test_the_reference_server_serving_the_profile_passes(name, imgconf_run):
    with start_reference_server(profile=name) as server:
        status, report = imgconf_run("--profile", name, target=server)
    assert status == 0, report["verdict"]
    assert report["profile"] == name


def size_is_should_only(profile: Profile) -> bool:
    """Whether every model held to image.size is held to it at SHOULD (a size list the vendor
    does not state in full): then a wrong size warns instead of failing."""
    rule = profile.rules()["image.size"]
    return bool(rule.models) and all(rule.level_for(m) is Level.SHOULD for m in rule.models)


@pytest.mark.parametrize("name", VENDORS)
def test_a_server_answering_the_wrong_size_is_caught(name, imgconf_run):
    profile = load_profile(name)
    with start_reference_server(profile=name, quirks=("wrong-size",)) as server:
        status, report = imgconf_run("--profile", name, target=server)
        if size_is_should_only(profile):
            # The vendor's page leaves the size open: a warning, and a failure for whoever
            # gates on SHOULD too.
            gated, _ = imgconf_run("--profile", name, "--fail-on", "should", target=server)
    verdict = report["verdict"]
    failed = [e for e in verdict["failed"] if e.startswith("image.size @ ")]
    warned = [e for e in verdict.get("warned", []) if e.startswith("image.size @ ")]
    if size_is_should_only(profile):
        assert warned and not failed and status == 0, verdict
        assert gated == 1
    else:
        assert status == 1, verdict
        assert failed, verdict


@pytest.mark.parametrize("name", VENDORS)
def test_every_fact_with_evidence_cites_the_vendors_own_page(name):
    profile = load_profile(name)
    domains = own_domains(profile)
    for model in profile.declared:
        cited = [f for f, fact in model.facts.items() if fact.evidence]
        if not cited:
            continue
        urls = URL.findall(model.source)
        assert urls, f"{model.name}: {', '.join(cited)} quoted, but source names no page"
        for url in urls:
            assert url.startswith("https://"), f"{model.name}: {url}"
            assert on_domain(url, domains), f"{model.name}: {url} is not on {sorted(domains)}"
        if model.price_per_image is not None:
            price = URL.findall(model.price_source)
            assert price and all(on_domain(u, domains) for u in price), model.price_source
            assert model.facts["price"].value.get("evidence"), model.name


def test_the_vendor_profiles_are_listed(capsys):
    assert main_entry(["profiles"]) == 0
    out = capsys.readouterr().out
    for name in VENDORS:
        assert re.search(rf"^{re.escape(name)}\s", out, re.M), name


def test_a_vendor_profile_states_where_the_vendor_is_reached():
    for name in ("xai", "together", "deepinfra", "siliconflow"):
        profile = load_profile(name)
        assert profile.base_url is not None and profile.base_url.startswith("https://")
        assert profile.auth.is_bearer
    assert load_profile("deepinfra").base_url == "https://api.deepinfra.com/v1/openai"
