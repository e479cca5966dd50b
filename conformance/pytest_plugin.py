"""pytest plugin: run imgconf's contract inside a gateway's own test session.

Registered through the ``pytest11`` entry point and inert unless ``--imgconf-base-url`` is given.
Then the plan that ``imgconf run`` would send becomes test items, one per rule x model, named
``imgconf[<model>::<rule id>]`` (``imgconf[<endpoint>/<model>::<rule id>]`` for an endpoint
other than generations: an edit's cell is its own): a MUST rule broken by any answer fails its item, a SHOULD rule
broken gives a :class:`ImgconfShouldWarning` (the item passes), a rule nothing exercised is
skipped with the reason.

The cases are sent and judged by the same runner, transport and judge as ``imgconf run``. A
model's cases are sent together, the first time one of its items runs, and their results are
kept in a directory shared by the whole session: under ``pytest-xdist`` whichever worker gets
to a model first sends its cases and the others read the results, so no case is sent twice.
The budget is a ledger in the same directory, reserved case by case under a file lock by every
worker and settled once answered (a refused request gives its reservation back), so
``--imgconf-max-images``/``--imgconf-max-cost`` hold for the session as a whole; the plan is
also cut to the budget up front, exactly as ``imgconf run`` cuts it. Workers send different
models at once, so under xdist an invalid case whose worst case needs more than another
worker's answered cases have left is skipped, where one process would have sent it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import pickle
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from .errors import SetupError

if TYPE_CHECKING:
    from .contract.loader import Rule
    from .contract.profiles import Profile
    from .engine.results import BudgetFacts, CaseResult, RunResult
    from .engine.run_settings import RunSettings
    from .engine.runner import Budget
    from .engine.transport import TransportConfig
    from .generation.cases import Case
    from .generation.planning import Plan

__all__ = ["ImgconfItem", "ImgconfShouldWarning"]

_SHARED_KEY = "imgconf_shared_dir"


class ImgconfShouldWarning(UserWarning):
    """A SHOULD rule of the contract was broken: a warning, never a failure.

    ``-W error::conformance.pytest_plugin.ImgconfShouldWarning`` turns them into failures (the
    plugin's ``--fail-on should``).
    """


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("imgconf", "image generation conformance (imgconf)")
    group.addoption(
        "--imgconf-base-url",
        default=None,
        metavar="URL",
        help="Base URL of the endpoint under test (as the OpenAI SDK takes it, ending in /v1). "
        "Without it the plugin does nothing.",
    )
    group.addoption(
        "--imgconf-api-key",
        default=None,
        metavar="KEY",
        help="The target's key (default: $OPENAI_API_KEY). Never shown in any output.",
    )
    group.addoption(
        "--imgconf-models",
        action="append",
        default=None,
        metavar="M1,M2",
        help="Only these models of the profile (comma-separated or repeated).",
    )
    group.addoption(
        "--imgconf-endpoint",
        action="append",
        default=None,
        metavar="generations,edits,variations",
        help="Only these endpoints (comma-separated or repeated; default: every one the "
        "profile serves).",
    )
    group.addoption(
        "--imgconf-profile", default="openai", metavar="NAME|FILE", help="Profile (default openai)."
    )
    group.addoption(
        "--imgconf-max-images",
        type=int,
        default=None,
        metavar="N",
        help="Generate at most N images in the whole session (all xdist workers together).",
    )
    group.addoption(
        "--imgconf-max-cost",
        type=float,
        default=None,
        metavar="USD",
        help="Spend at most this in the whole session (all xdist workers together).",
    )
    group.addoption("--imgconf-seed", type=int, default=0, metavar="N", help="The plan's seed.")
    group.addoption(
        "--imgconf-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="Seconds one request may take (default 120).",
    )
    group.addoption(
        "--imgconf-concurrency",
        type=int,
        default=8,
        metavar="N",
        help="Requests in flight at once per worker (default 8).",
    )
    group.addoption(
        "--imgconf-header",
        action="append",
        default=None,
        metavar="'NAME: VALUE'",
        help="Send this header to the target on every request (repeatable); a VALUE written "
        "env:VAR is read from $VAR and never shown.",
    )
    group.addoption(
        "--imgconf-report-dir",
        default=None,
        metavar="DIR",
        help="Also write imgconf's reports (report.json, junit.xml, report.md, report.html).",
    )


# --- settings and set-up -----------------------------------------------------------------

#: The flags of ``imgconf run`` this plugin takes, as ``--imgconf-<flag>``: a message of the
#: shared checks names the plugin's own flag.
_FLAGS = (
    "base-url",
    "api-key",
    "models",
    "endpoint",
    "profile",
    "max-images",
    "max-cost",
    "seed",
    "timeout",
    "concurrency",
    "header",
    "report-dir",
)
_FLAG = re.compile(r"--(" + "|".join(_FLAGS) + r")\b")


def _settings(config: pytest.Config) -> RunSettings | None:
    """The plugin's options as a run's settings (None without ``--imgconf-base-url``)."""
    base_url = config.getoption("imgconf_base_url")
    if not base_url:
        return None
    from .engine.run_settings import RunSettings

    models = tuple(
        m.strip() for value in config.getoption("imgconf_models") or () for m in value.split(",")
    )
    report_dir = config.getoption("imgconf_report_dir")
    return RunSettings(
        base_url=base_url,
        api_key=config.getoption("imgconf_api_key") or os.environ.get("OPENAI_API_KEY"),
        profile=config.getoption("imgconf_profile"),
        models=tuple(m for m in models if m) or None,
        max_images=config.getoption("imgconf_max_images"),
        max_cost=config.getoption("imgconf_max_cost"),
        seed=config.getoption("imgconf_seed"),
        timeout=config.getoption("imgconf_timeout"),
        concurrency=config.getoption("imgconf_concurrency"),
        report_dir=Path(report_dir) if report_dir else None,
        headers=tuple(config.getoption("imgconf_header") or ()),
    )


def _asked_endpoints(config: pytest.Config) -> tuple[str, ...] | None:
    """``--imgconf-endpoint`` values (None: every endpoint the profile serves)."""
    values = config.getoption("imgconf_endpoint") or ()
    names = tuple(n.strip() for value in values for n in value.split(",") if n.strip())
    return names or None


def _usage_error(exc: SetupError) -> pytest.UsageError:
    """A set-up error as pytest says it, naming the plugin's flags."""
    message = _FLAG.sub(r"--imgconf-\1", str(exc))
    return pytest.UsageError(f"imgconf: {message}")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    settings = _settings(config)
    if settings is None:
        return
    from .contract.profiles import load_profile
    from .engine.preflight import check_target
    from .engine.run_settings import (
        check_budget,
        check_key,
        check_settings,
        transport_config,
    )
    from .generation.planning import build_plan
    from .redact import register_secrets

    # Known before anything is sent or written, in every process (the controller under xdist
    # sends nothing but writes the reports).
    register_secrets(settings.api_key)
    assert settings.base_url is not None
    try:
        profile = load_profile(settings.profile)
        check_settings(settings, profile)
        endpoints = profile.choose_endpoints(_asked_endpoints(config))
        key = check_key(settings.api_key)
        check_budget(
            settings,
            settings.base_url,
            lambda: build_plan(
                profile, models=settings.models, seed=settings.seed, endpoints=endpoints
            ),
        )
        target = transport_config(settings, profile, settings.base_url, key)
        if not _is_worker(config):
            # The same pre-flight as `imgconf run`: a wrong path, a refused key or an
            # unreachable host is a usage error before anything is spent.
            asyncio.run(check_target(target))
    except SetupError as exc:
        raise _usage_error(exc) from None
    if _is_worker(config):
        shared = Path(config.workerinput[_SHARED_KEY])  # type: ignore[attr-defined]
    else:
        shared = Path(tempfile.mkdtemp(prefix="imgconf-pytest-"))
    config.stash[_STATE] = State(settings, profile, target, shared, endpoints)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None and not _is_worker(config):
        shutil.rmtree(state.shared, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker shares the controller's results directory and ledger."""
    state = node.config.stash.get(_STATE, None)
    if state is not None:
        node.workerinput[_SHARED_KEY] = str(state.shared)


# --- the shared state: plan, ledger, results ----------------------------------------------


@dataclass
class State:
    """What one pytest process knows: the settings, the plan, and where results are shared."""

    settings: RunSettings
    profile: Profile
    #: How the target is reached (checked at configure time).
    target: TransportConfig
    shared: Path
    #: The endpoints the session sends to (``--imgconf-endpoint``, else the profile's).
    endpoints: tuple[str, ...] = ("generations",)
    plan: Plan | None = None
    #: column (the model; ``<endpoint>/<model>`` for another endpoint than generations) ->
    #: rule ids, in plan order: the items of the session.
    items: dict[str, list[str]] = field(default_factory=dict)
    #: model -> its case results, once sent (here or by another worker).
    results: dict[str, list[CaseResult]] = field(default_factory=dict)

    def build_plan(self) -> Plan:
        if self.plan is None:
            from .generation.planning import build_plan

            self.plan = build_plan(
                self.profile,
                endpoints=self.endpoints,
                models=list(self.settings.models) if self.settings.models else None,
                seed=self.settings.seed,
                max_cost=self.settings.max_cost,
                max_images=self.settings.max_images,
            )
            self.items = plan_items(self.plan, self.profile)
        return self.plan

    def model_cases(self, model: str) -> tuple[list[Case], list[Case]]:
        plan = self.build_plan()
        return (
            [c for c in plan.cases if c.model == model],
            [c for c in plan.cut if c.model == model],
        )

    def results_path(self, model: str) -> Path:
        """Where the model's case results are shared, once sent."""
        return self.shared / f"results-{_safe(model)}.pickle"

    def budget(self) -> SharedBudget:
        """The session's budget ledger, shared by every worker."""
        settings = self.settings
        return SharedBudget(
            self.shared / "budget.json", max_images=settings.max_images, max_cost=settings.max_cost
        )

    def results_for(self, model: str) -> list[CaseResult]:
        """The model's case results: read from the shared directory, or sent now (once)."""
        if model in self.results:
            return self.results[model]
        path = self.results_path(model)
        with _locked(path.with_suffix(".lock")):
            if path.exists():
                results = pickle.loads(path.read_bytes())
            else:
                results = self._send(model)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(pickle.dumps(results))
                tmp.replace(path)
        self.results[model] = results
        return results

    def run_result(self, *, missing_ok: bool = False) -> RunResult:
        """The whole session as one run: every model's results (sent here, by another worker,
        or now), settled against their controls."""
        from .engine.checks import settle_controls
        from .engine.results import PlanFacts, RunResult
        from .redact import strip_url

        plan = self.build_plan()
        results: list[CaseResult] = []
        for model in dict.fromkeys(c.model for c in [*plan.cases, *plan.cut]):
            path = self.results_path(model)
            if model in self.results:
                results.extend(self.results[model])
            elif path.exists():
                results.extend(pickle.loads(path.read_bytes()))
            elif not missing_ok:
                results.extend(self.results_for(model))
        run = RunResult.begin(
            self.profile,
            target=strip_url(self.target.base_url),
            models=plan.models,
            seed=self.settings.seed,
            plan=PlanFacts(cases=len(plan.cases), cut=[c.id for c in plan.cut]),
            endpoints=self.endpoints,
            started=min((r.exchange.started for r in results if r.exchange), default=time.time()),
        )
        return run.finish(
            settle_controls(results),
            budget=self.budget().facts(),
            incomplete=len(results) < len(plan.cases) + len(plan.cut),
        )

    def settled_results(self, model: str) -> list[CaseResult]:
        """The model's results with its refusals settled against the controls they lean on
        (a model-independent probe leans on any accepted valid request: the first model's)."""
        from .engine.checks import settle_controls
        from .generation.cases import ANY_MODEL

        results = list(self.results_for(model))
        plan = self.build_plan()
        if model == ANY_MODEL and plan.models:
            results += self.results_for(plan.models[0])
        return [r for r in settle_controls(results) if r.case.model == model]

    def _send(self, model: str) -> list[CaseResult]:
        from .engine.runner import Runner, cut_result
        from .engine.transport import TargetClient

        cases, cut = self.model_cases(model)
        budget = self.budget()

        async def send() -> list[CaseResult]:
            async with TargetClient(self.target) as client:
                runner = Runner(
                    client,
                    self.profile,
                    concurrency=self.settings.concurrency,
                    budget=budget,
                    max_thumbnails=0,
                )
                return await runner.run(cases)

        results = asyncio.run(send())
        return results + [cut_result(c) for c in cut]


_STATE = pytest.StashKey[State]()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock shared by every process of the session (xdist workers included).

    An operating-system lock on an open file, so a worker that dies releases it.
    """
    with path.open("a+") as handle:
        _lock_file(handle, lock=True)
        try:
            yield
        finally:
            _lock_file(handle, lock=False)


def _lock_file(handle: IO[str], lock: bool) -> None:
    """Take or release the lock: ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows.

    Imported here, not at the top: this module is loaded by every pytest run wherever imgconf
    is installed, and each of the two exists on one platform only.
    """
    try:
        import fcntl
    except ImportError:
        import msvcrt

        handle.seek(0)  # msvcrt locks bytes from the current position
        if not lock:
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
            return
        while True:
            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                return
            except OSError as error:  # LK_LOCK gives up after ten tries a second apart
                if error.errno != errno.EDEADLOCK:
                    raise
    else:
        fcntl.flock(handle, fcntl.LOCK_EX if lock else fcntl.LOCK_UN)


class SharedBudget:
    """The runner's budget, kept in a file so that every worker draws on the same total.

    Each case's images and cost are reserved before it is sent, under the lock, and settled
    once answered (a refused request gives its reservation back), exactly like
    :class:`conformance.engine.runner.Budget` does within one process. Reservations in flight are
    counted per process, so a case that does not fit can wait for another worker's to settle;
    those of a process that has died are not waited for.
    """

    def __init__(self, path: Path, *, max_images: int | None, max_cost: float | None) -> None:
        self.path = path
        self.max_images = max_images
        self.max_cost = max_cost

    def _ledger(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"images": 0, "cost": 0.0, "cost_unknown_images": 0, "in_flight": {}}
        ledger = json.loads(self.path.read_text())
        ledger.setdefault("in_flight", {})
        return ledger

    def _write(self, ledger: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ledger))
        tmp.replace(self.path)

    def _budget(self, ledger: dict[str, Any]) -> Budget:
        from .engine.runner import Budget

        return Budget(
            max_images=self.max_images,
            max_cost=self.max_cost,
            images=ledger["images"],
            cost=ledger["cost"],
            cost_unknown_images=ledger["cost_unknown_images"],
        )

    def _update(self, ledger: dict[str, Any], budget: Budget, in_flight_change: int) -> None:
        pid = str(os.getpid())
        count = ledger["in_flight"].get(pid, 0) + in_flight_change
        if count > 0:
            ledger["in_flight"][pid] = count
        else:
            ledger["in_flight"].pop(pid, None)
        ledger.update(
            images=budget.images, cost=budget.cost, cost_unknown_images=budget.cost_unknown_images
        )
        self._write(ledger)

    def spent(self) -> dict[str, Any]:
        ledger = self._ledger()
        return {k: ledger[k] for k in ("images", "cost", "cost_unknown_images")}

    def reserve(self, case: Case) -> bool:
        with _locked(self.path.with_suffix(".lock")):
            ledger = self._ledger()
            budget = self._budget(ledger)
            if not budget.reserve(case):
                return False
            self._update(ledger, budget, +1)
            return True

    def settle(self, case: Case, *, generated: bool) -> None:
        with _locked(self.path.with_suffix(".lock")):
            ledger = self._ledger()
            budget = self._budget(ledger)
            budget.settle(case, generated=generated)
            self._update(ledger, budget, -1)

    def pending(self) -> int:
        """Reservations in flight in every live process of the session."""
        with _locked(self.path.with_suffix(".lock")):
            in_flight = self._ledger()["in_flight"]
        return sum(count for pid, count in in_flight.items() if _alive(int(pid)))

    def facts(self) -> BudgetFacts:
        from .engine.results import BudgetFacts

        return BudgetFacts(max_cost=self.max_cost, max_images=self.max_images, **self.spent())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def item_column(endpoint: str, model: str) -> str:
    """An item's column: the model for generations (its node ids as they always were),
    ``<endpoint>/<model>`` for another endpoint."""
    return model if endpoint == "generations" else f"{endpoint}/{model}"


def split_column(name: str) -> tuple[str, str]:
    """(endpoint, model) of a column."""
    endpoint, slash, model = name.partition("/")
    return (endpoint, model) if slash else ("generations", name)


def plan_items(plan: Any, profile: Any) -> dict[str, list[str]]:
    """The rule x model items of a plan: every cell of the run's scope and every rule its cases
    aim at (:func:`conformance.engine.verdict.in_scope`, :func:`conformance.generation.coverage.aimed_rules`), so
    the items are the cells ``imgconf run`` reports; and one ``verdict`` item at the end.

    Each endpoint's cells are their own, under its rules: generations' first, keyed by model as
    always, then each other endpoint's, for the models its cases are sent for."""
    cases = [*plan.cases, *plan.cut]
    endpoints = list(dict.fromkeys(c.endpoint for c in cases)) or ["generations"]
    out: dict[str, list[str]] = {}
    for endpoint in sorted(endpoints, key=lambda e: e != "generations"):
        mine = [c for c in cases if c.endpoint == endpoint]
        models = (
            plan.models
            if endpoint == "generations"
            else tuple(m for m in plan.models if any(c.model == m for c in mine))
        )
        for model, rules in _endpoint_items(mine, models, profile, endpoint).items():
            out[item_column(endpoint, model)] = rules
    return out


def _endpoint_items(
    cases: list[Case], models: Sequence[str], profile: Any, endpoint: str
) -> dict[str, list[str]]:
    from .engine.verdict import in_scope
    from .generation.cases import ANY_MODEL
    from .generation.coverage import aimed_rules, case_spec
    from .generation.showing import endpoint_rules

    rules = endpoint_rules(profile, endpoint)
    items: dict[str, dict[str, None]] = {}
    for model, rule in in_scope(models, rules):
        items.setdefault(model, {})[rule] = None
    for case in cases:
        spec = case_spec(case, profile.models, profile.contract)
        ids = items.setdefault(case.model, {})
        for rule in sorted(aimed_rules(case, spec, rules, profile.contract)):
            ids.setdefault(rule, None)
    order = {rule: i for i, rule in enumerate(rules)}
    ranked = [ANY_MODEL, *models]
    return {
        model: sorted(items[model], key=lambda r: order.get(r, len(order)))
        for model in sorted(items, key=lambda m: ranked.index(m) if m in ranked else len(ranked))
    }


# --- items -------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Add the contract's items (before ``-k``/``-m`` select among them)."""
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    state.build_plan()
    collector = ImgconfCollector.from_parent(session, name="imgconf", nodeid="imgconf")
    items.extend(collector.collect())


class ImgconfCollector(pytest.Collector):
    """The contract's items, one per rule x model of the plan."""

    def collect(self) -> list[pytest.Item]:
        state = self.config.stash[_STATE]
        items: list[pytest.Item] = []
        for column, rules in state.items.items():
            endpoint, model = split_column(column)
            items += [
                ImgconfItem.from_parent(
                    self,
                    name=f"imgconf[{column}::{rule}]",
                    model=model,
                    rule=rule,
                    endpoint=endpoint,
                )
                for rule in rules
            ]
        items.append(ImgconfVerdictItem.from_parent(self, name="imgconf[verdict]"))
        return items


@dataclass
class Verdict:
    """An item's verdict: its cell's status, and the lines behind it."""

    status: str = "not_observed"
    must: list[str] = field(default_factory=list)
    should: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class ImgconfItem(pytest.Item):
    """One rule of the contract on one model."""

    def __init__(
        self, *, model: str, rule: str, endpoint: str = "generations", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.rule = rule
        self.endpoint = endpoint
        self.user_properties.extend([("imgconf_model", model), ("imgconf_rule", rule)])
        if endpoint != "generations":
            self.user_properties.append(("imgconf_endpoint", endpoint))

    def runtest(self) -> None:
        from .generation.showing import endpoint_rules

        state = self.config.stash[_STATE]
        column = item_column(self.endpoint, self.model)
        results = [r for r in state.settled_results(self.model) if r.case.endpoint == self.endpoint]
        verdict = judge_item(
            self.rule,
            self.model,
            results,
            set(state.items[column]),
            endpoint_rules(state.profile, self.endpoint),
            self.endpoint,
        )
        if verdict.must:
            raise ImgconfFailure(self.rule, column, verdict.must)
        for message in verdict.should:
            warnings.warn(
                ImgconfShouldWarning(_clean(f"{self.rule} on {column}: {message}")),
                stacklevel=1,
            )
        if verdict.status == "not_observed":
            notes = "; ".join(dict.fromkeys(verdict.notes))
            pytest.skip(
                _clean(
                    f"{self.rule} on {column} not observed ({', '.join(verdict.reasons)})"
                    + (f": {notes}" if notes else "")
                )
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ImgconfFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


class ImgconfFailure(Exception):
    """A MUST rule broken on a model: the item's failure, with one line per broken answer."""

    def __init__(self, rule: str, model: str, messages: Sequence[str]) -> None:
        shown = list(messages[:10])
        more = f"\n  ... and {len(messages) - 10} more" if len(messages) > 10 else ""
        super().__init__(
            _clean(
                f"{rule} on {model}: {len(messages)} MUST finding(s):\n  "
                + "\n  ".join(shown)
                + more
            )
        )


def _clean(text: str) -> str:
    """pytest output as every writer writes it."""
    from .redact import printable

    return printable(text)


def judge_item(
    rule: str,
    model: str,
    results: Sequence[CaseResult],
    item_rules: set[str],
    catalogue: Mapping[str, Rule],
    endpoint: str = "generations",
) -> Verdict:
    """What a model's (settled) results say about one rule: its cell, as report.json has it.

    A finding belongs to its rule's item; a finding whose rule has no item of this model (a
    rule the plan did not foresee for it) belongs to the rule its case exercises, so nothing
    is lost.
    """
    from .engine.results import Level
    from .engine.verdict import build_matrix

    if endpoint == "generations":
        matrix = build_matrix(results, [], catalogue)
    else:
        matrix = build_matrix(
            results, [], {}, endpoints=[endpoint], catalogues={endpoint: catalogue}
        )
    cells = {(i["model"], i["rule"]): i for i in matrix}
    cell = cells.get((model, rule))
    verdict = Verdict()
    if cell is not None:
        verdict.status = cell["status"]
        verdict.reasons = list(cell["reasons"])
        verdict.notes = list(cell["messages"])
    else:
        verdict.reasons = ["not_applicable"]
    for result in results:
        case = result.case
        for finding in result.findings:
            owner = finding.rule if finding.rule in item_rules else case.rule
            if owner != rule:
                continue
            label = finding.rule if finding.rule != rule else ""
            line = (
                f"[{case.id}] {case.title or case.kind}: "
                f"{'(' + label + ') ' if label else ''}{finding.message} (HTTP {result.status})"
            )
            (verdict.must if finding.level == Level.MUST else verdict.should).append(line)
    if verdict.must or verdict.should:
        verdict.status = "fail" if verdict.must else "warn"
    return verdict


class ImgconfVerdictItem(pytest.Item):
    """The run's verdict: fails when the run is INCOMPLETE, naming why (a FAIL already shows
    as the failed rule items)."""

    def runtest(self) -> None:
        state = self.config.stash[_STATE]
        run = state.run_result()
        verdict = run.verdict()
        if verdict.status == "incomplete":
            raise ImgconfIncomplete(verdict.incomplete_reasons)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ImgconfIncomplete):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


class ImgconfIncomplete(Exception):
    """The run could not observe what a PASS needs."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__(_clean("imgconf INCOMPLETE:\n  " + "\n  ".join(reasons)))


# --- reports ------------------------------------------------------------------------------


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write imgconf's reports from every model's results (on the controller under xdist)."""
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None or _is_worker(config) or state.settings.report_dir is None:
        return
    from .reports.writer import write_reports

    run = state.run_result(missing_ok=True)
    if run.results:
        write_reports(run, state.settings.report_dir)
