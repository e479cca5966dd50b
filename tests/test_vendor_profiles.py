"""The built-in profiles: each loads, plans with a cost, round-trips against the reference
server serving it, fails a run when the server answers the wrong size (every built-in states
its sizes as a MUST: a vendor whose page does not is an example, not a built-in), and each
vendor's facts cite the vendor's own pages (the example vendor profiles' too)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conformance.cli import main_entry
from conformance.contract.levels import Level
from conformance.contract.profiles import Profile, builtin_profiles, load_profile
from conformance.server.launcher import start_reference_server

#: Every built-in profile, OpenAI's own included.
BUILTINS = sorted(builtin_profiles())
VENDORS = [name for name in BUILTINS if name != "openai"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "profiles"
#: Vendors' profiles that are examples (their pages state no size `size` takes).
EXAMPLE_VENDORS = [str(EXAMPLES / "xai.yaml"), str(EXAMPLES / "siliconflow.yaml")]
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


@pytest.mark.parametrize("name", BUILTINS)
def test_the_plan_prints_its_cases_and_cost(name, capsys):
    assert main_entry(["plan", "--profile", name]) == 0
    out = capsys.readouterr().out
    assert f"Plan for profile {name}" in out
    assert re.search(r"\d+ requests; if the server behaves: \d+ images, \$\d+\.\d\d", out), out
    profile = load_profile(name)
    for model in profile.models:
        # A model asked by an alias is shown as `alias (model)`.
        assert re.search(rf"^{re.escape(profile.label(model))}: \d+ requests", out, re.M), model


#: ``openai``'s round trip is the reference server's full plan (tests/test_e2e_quirks.py).
@pytest.mark.parametrize("name", VENDORS)
def test_the_reference_server_serving_the_profile_passes(name, imgconf_run):
    with start_reference_server(profile=name) as server:
        status, report = imgconf_run("--profile", name, target=server)
    assert status == 0, report["verdict"]
    assert report["profile"] == name


@pytest.mark.parametrize("name", BUILTINS)
def test_every_model_is_held_to_the_size_asked_as_a_must(name):
    profile = load_profile(name)
    rule = profile.rules()["image.size"]
    assert set(profile.models) <= set(rule.models)
    for model in profile.models:
        assert rule.level_for(model) is Level.MUST, model


@pytest.mark.parametrize("path", EXAMPLE_VENDORS, ids=lambda p: Path(p).stem)
def test_an_example_vendor_holds_no_model_to_the_size_as_a_must(path):
    # Why xai and siliconflow are examples: their pages state no size OpenAI's `size` takes.
    profile = load_profile(path)
    rule = profile.rules()["image.size"]
    assert {rule.level_for(model) for model in profile.models} == {Level.SHOULD}


@pytest.mark.parametrize("name", BUILTINS)
def test_a_server_answering_the_wrong_size_fails_the_run(name, imgconf_run):
    # One model is enough to show the run fails (every model's level is checked above).
    model = load_profile(name).models[0]
    with start_reference_server(profile=name, quirks=("wrong-size",)) as server:
        status, report = imgconf_run("--profile", name, "--models", model, target=server)
    verdict = report["verdict"]
    assert status == 1, verdict
    # A MUST failure (a SHOULD one would be `warned`).
    assert re.match(r"FAIL: \d+ MUST rules? broken \(.*image\.size", verdict["headline"]), verdict
    assert f"image.size @ {model}" in verdict["failed"], verdict
    assert not [e for e in verdict["warned"] if e.startswith("image.size @ ")], verdict


@pytest.mark.parametrize("name", VENDORS + EXAMPLE_VENDORS, ids=lambda n: Path(n).stem)
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
    for name in VENDORS:
        profile = load_profile(name)
        assert profile.base_url is not None and profile.base_url.startswith("https://"), name
    for name in ("together", "deepinfra", "flexai", "nscale"):
        assert load_profile(name).auth.is_bearer, name
    assert load_profile("deepinfra").base_url == "https://api.deepinfra.com/v1/openai"
