"""decide(), effects() and the breaker, as tables of hand-computed cases: no pytester.

One row: (attempt that failed, the engine's CategoryResult, the run's Facts) ->
the plan's fields. Every plan field is compared, so a row also says what does
NOT change. The failed attempt always ran on gw0.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from pytest_dtf_errors.engine import actions as act
from pytest_dtf_errors.session.breaker import Evidence, PatternBreaker, breaker_key
from pytest_dtf_errors.session.decide import (
    CategoryResult,
    Effect,
    Facts,
    decide,
    describe_where,
    effects,
)
from pytest_dtf_errors.session.plan import RetryPlan
from pytest_dtf_errors.session.poison import PoisonBook, Role
from pytest_dtf_errors.session.workers import WorkerBook

NODEID = "t.py::test_x"

# worker specs "name@host:tag,tag"; the failed attempt ran on gw0
LOCAL = ("gw0@localhost:cpu", "gw1@localhost:cpu")
HOSTS = ("gw0@h1:cpu", "gw1@h1:cpu", "gw2@h2:cpu")  # gw1 shares gw0's host
ALONE = ("gw0@localhost:cpu,cuda",)
CUDA_ELSEWHERE = ("gw0@localhost:cpu,cuda", "gw1@localhost:cpu,cuda")
CUDA_ONLY_HERE = ("gw0@localhost:cpu,cuda", "gw1@localhost:cpu")
ROCM_ELSEWHERE = ("gw0@localhost:cpu,cuda", "gw1@localhost:cpu,rocm")
CUDA_ON_H2 = ("gw0@h1:cpu,cuda", "gw1@h2:cpu,cuda")

TRIPPED = (
    "pattern P1 is systemic: it failed in 3 tests and 2 retries did not help, "
    "so the breaker stopped its retries"
)
PEER = "pytest-rerunfailures"


def book(
    specs: tuple[str, ...],
    *,
    quarantined: tuple[str, ...] = (),
    lost: tuple[str, ...] = (),
    lost_hosts: tuple[str, ...] = (),
    unavailable: tuple[tuple[str, str], ...] = (),
) -> WorkerBook:
    workers = WorkerBook()
    for spec in specs:
        name, rest = spec.split("@")
        host, tags = rest.split(":")
        workers.configured(name, host, None)
        workers.now_ready(name)
        workers.add_tags(name, tags.split(","))
    for name in quarantined:
        workers.quarantine(name, "evidence")
    for name in lost:
        workers.lose(name, "no heartbeat")
    for host in lost_hosts:
        workers.lose_host(host, "unreachable")
    for name, hardware in unavailable:
        workers.mark_unavailable(name, hardware)
    return workers


def res(
    category: str = "network_timeout",
    retry: bool = True,
    delay: float = 0.0,
    actions: tuple[dict[str, Any], ...] = (),
    max_retries: int = 3,
    retried: bool = True,
) -> CategoryResult:
    return CategoryResult(category, retry, delay, actions, max_retries, retried)


def facts(
    workers: tuple[str, ...] = LOCAL,
    *,
    quarantined: tuple[str, ...] = (),
    lost: tuple[str, ...] = (),
    lost_hosts: tuple[str, ...] = (),
    unavailable: tuple[tuple[str, str], ...] = (),
    **kw: Any,
) -> Facts:
    workers_book = book(
        workers, quarantined=quarantined, lost=lost, lost_hosts=lost_hosts, unavailable=unavailable
    )
    return Facts(workers_book, **kw)


DEFAULTS: dict[str, Any] = {
    "delay": 0.0,
    "avoid": set(),
    "prefer_not": {"gw0"},  # any category: other workers first
    "hardware": (),
    "prefer_hardware": (),
    "timeout_factor": 1.0,
}


def retried(reason: str, **fields: Any) -> dict[str, Any]:
    return {**DEFAULTS, "retry": True, "reason": reason, **fields}


def refused(reason: str, **fields: Any) -> dict[str, Any]:
    return {**DEFAULTS, "retry": False, "reason": reason, **fields}


def plan_fields(plan: RetryPlan) -> dict[str, Any]:
    return {name: getattr(plan, name) for name in ("retry", "reason", *DEFAULTS)}


NT = "network_timeout: retry 1"
AWAY = {"avoid": {"gw0"}, "prefer_not": set()}  # node-specific, on this machine: never on gw0
HNA = "hardware_not_available"

# a poisoned worker: gw0's GPU context, poisoned by t.py::bad (illegal memory access)
IMA = "illegal memory access"


def poisoned(kind: str, nodeid: str = NODEID, again: bool = False) -> Role:
    poison = PoisonBook()
    poison.failed("t.py::bad", "gw0", IMA)
    if again:  # the culprit's retry poisoned gw1 too
        role = poison.failed("t.py::bad", "gw1", IMA)
    else:
        role = poison.failed(nodeid if kind == "victim" else "t.py::bad", "gw0", IMA)
    assert role is not None
    return role


def poison_facts(workers: tuple[str, ...] = CUDA_ONLY_HERE, **kw: Any) -> Facts:
    f = facts(workers, requirement=("cuda",), fallback=("cpu",), **kw)
    f.workers.node("gw0").poisoned = IMA
    return f


VICTIM = f"victim of t.py::bad ({IMA} poisoned gw0): retried on a fresh worker"
CULPRIT = f"{IMA} poisoned gw0: the suspected culprit, retried once on a fresh worker"
POISON_ROWS = [
    # the replacement has the hardware: no "nobody else has it", no fallback to cpu
    pytest.param(1, res(HNA), poison_facts(poison=PoisonBook().failed("t.py::bad", "gw0", IMA)), retried(CULPRIT, **AWAY, hardware=("cuda",)), id="poison-culprit-retried-once"),
    pytest.param(1, res(HNA), poison_facts(poison=poisoned("victim")), retried(VICTIM, **AWAY, hardware=("cuda",)), id="poison-victim-retried"),
    # a victim's retries are not its category's: another test made it fail
    pytest.param(2, res(HNA, retry=False, max_retries=1), poison_facts(poison=poisoned("victim")), retried(VICTIM, **AWAY, hardware=("cuda",)), id="poison-victim-beyond-policy"),
    pytest.param(3, res(HNA, retry=False, max_retries=1), poison_facts(poison=poisoned("victim")), retried(VICTIM, **AWAY, hardware=("cuda",)), id="poison-victim-third-attempt"),
    pytest.param(4, res(HNA, retry=False, max_retries=1), poison_facts(poison=poisoned("victim")), refused(f"{HNA}: 3 of 1 retries used", **AWAY, hardware=("cuda",)), id="poison-victim-capped"),
    pytest.param(2, res(HNA, retry=False, max_retries=1), poison_facts(poison=poisoned("culprit", again=True)), refused(f"{IMA} again on a fresh worker (gw1): it poisons GPU contexts itself, not only as a victim of t.py::bad", **AWAY, hardware=("cuda",)), id="poison-victim-that-poisons-again"),
    pytest.param(1, res(HNA), poison_facts(poison=poisoned("victim"), fresh_workers=False), refused(f"{IMA}: victim of t.py::bad, which poisoned this process's GPU context; without xdist a retry would run in the same poisoned process, so it is not retried (with -n it is retried on a fresh worker)", **AWAY, hardware=("cuda",)), id="poison-local-victim"),
    pytest.param(1, res(HNA), poison_facts(retry=False, poison=poisoned("victim")), refused("retries are off (no --dtf-retry)", **AWAY, hardware=("cuda",)), id="poison-retries-off"),
]


def test_a_culprit_reproduced_on_a_fresh_worker_is_final() -> None:
    poison = PoisonBook()
    poison.failed("t.py::bad", "gw0", IMA)
    poison.failed("t.py::v", "gw0", IMA)
    role = poison.failed("t.py::bad", "gw1", IMA)
    run_facts = poison_facts(CUDA_ELSEWHERE, poison=role)
    run_facts.workers.node("gw1").poisoned = IMA
    plan = decide("t.py::bad", 2, "gw1", res(HNA), run_facts)
    assert not plan.retry
    assert plan.reason == f"reproduced on a fresh worker (gw1: {IMA}); 1 test on gw0 failed after it"
    assert plan.avoid == {"gw0", "gw1"}  # never on a poisoned worker


@pytest.mark.parametrize(("attempt", "result", "run_facts", "expected"), POISON_ROWS)
def test_decide_poisoned(attempt: int, result: CategoryResult, run_facts: Facts, expected: dict[str, Any]) -> None:
    plan = decide(NODEID, attempt, "gw0", result, run_facts)
    assert plan_fields(plan) == expected


# fmt: off
DECIDE_ROWS = [
    # -- who owns retries, and when a failure is never retried -----------------------------------------
    pytest.param(1, res(delay=2.5), facts(retry=False), refused("retries are off (no --dtf-retry)"), id="retry-off"),
    pytest.param(1, res(), facts(peer=PEER), refused(f"left to {PEER}, which retries this run"), id="peer-plugin-active"),
    pytest.param(1, res(), facts(peer_marked=PEER), refused(f"marked flaky: left to {PEER}"), id="peer-marked-flaky"),
    pytest.param(1, res(), facts(retry=False, peer_marked=PEER), refused(f"marked flaky: left to {PEER}"), id="peer-marked-wins-over-retry-off"),
    pytest.param(1, res(), facts(dist_each=True), refused("--dist each runs every test on every worker: not retried"), id="dist-each"),
    pytest.param(1, res(), facts(phase="teardown"), refused("teardown failures are not retried: the test body ran"), id="teardown"),
    pytest.param(1, res(), facts(phase="setup"), retried(NT), id="setup-is-retried"),
    pytest.param(1, res(), facts(phase="crash"), retried(NT), id="crash-phase-is-retried"),
    pytest.param(1, res(), facts(tripped=TRIPPED), refused(TRIPPED), id="breaker-tripped"),
    pytest.param(1, res(retry=False, max_retries=0), facts(tripped=TRIPPED), refused(TRIPPED), id="breaker-reason-before-policy"),
    # -- the category's policy says no ------------------------------------------------------------------
    pytest.param(1, res("test_assertion_error", retry=False, max_retries=0), facts(), refused("test_assertion_error is not retried"), id="policy-max-retries-0"),
    pytest.param(1, res(retry=False, max_retries=3, retried=False), facts(), refused("network_timeout is not retried"), id="policy-category-not-retried"),
    pytest.param(4, res(retry=False, max_retries=3), facts(), refused("network_timeout: 3 of 3 retries used"), id="policy-retries-used"),
    # -- run-wide limits --------------------------------------------------------------------------------
    pytest.param(3, res(), facts(max_retries=2), refused("--dtf-max-retries 2 reached"), id="max-retries-reached"),
    pytest.param(1, res(), facts(max_retries=0), refused("--dtf-max-retries 0 reached"), id="max-retries-0"),
    pytest.param(2, res(), facts(max_retries=2), retried("network_timeout: retry 2"), id="max-retries-not-yet"),
    pytest.param(1, res(), facts(budget=5, retries_used=5), refused("retry budget of 5 used up"), id="budget-used-up"),
    pytest.param(1, res(), facts(budget=0), refused("retry budget of 0 used up"), id="budget-0"),
    pytest.param(1, res(), facts(budget=5, retries_used=4), retried(NT), id="budget-one-left"),
    # -- a plain retry ----------------------------------------------------------------------------------
    pytest.param(1, res(delay=2.5), facts(), retried(NT, delay=2.5), id="plain-retry"),
    pytest.param(2, res(delay=0.5), facts(), retried("network_timeout: retry 2", delay=0.5), id="plain-retry-second"),
    pytest.param(1, res("unknown"), facts(HOSTS), retried("unknown: retry 1"), id="unknown-prefers-other-worker-not-host"),
    pytest.param(1, res("resource_not_found"), facts(HOSTS), retried("resource_not_found: retry 1"), id="resource-not-found-not-node-specific"),
    pytest.param(1, res(), facts(requirement=("cuda",)), retried(NT, hardware=("cuda",)), id="marker-requirement-kept"),
    # -- hardware categories ----------------------------------------------------------------------------
    pytest.param(1, res(HNA), facts(CUDA_ELSEWHERE, requirement=("cuda",)), retried(f"{HNA}: retry 1", **AWAY, hardware=("cuda",)), id="hw-another-worker-has-it"),
    pytest.param(1, res(HNA), facts(CUDA_ONLY_HERE, requirement=("cuda",)), refused(f"{HNA}: no other worker has the hardware", **AWAY, hardware=("cuda",)), id="hw-nobody-else-has-it"),
    pytest.param(1, res(HNA), facts(CUDA_ONLY_HERE, requirement=("cuda",), fallback=("cpu",)), retried(f"{HNA}: retry 1", **AWAY, hardware=("cpu",)), id="hw-marker-fallback"),
    pytest.param(1, res(HNA), facts(CUDA_ELSEWHERE, requirement=("cuda",), fallback=("cpu",)), retried(f"{HNA}: retry 1", **AWAY, hardware=("cuda",)), id="hw-fallback-unused-when-another-has-it"),
    pytest.param(1, res(HNA), facts(CUDA_ELSEWHERE, requirement=("cuda",), quarantined=("gw1",)), refused(f"{HNA}: no other worker has the hardware", **AWAY, hardware=("cuda",)), id="hw-other-is-quarantined"),
    pytest.param(1, res(HNA), facts(CUDA_ELSEWHERE, requirement=("cuda",), lost=("gw1",)), refused(f"{HNA}: no other worker has the hardware", **AWAY, hardware=("cuda",)), id="hw-other-is-lost"),
    pytest.param(1, res(HNA), facts(CUDA_ELSEWHERE, requirement=("cuda",), unavailable=(("gw1", "cuda"),)), refused(f"{HNA}: no other worker has the hardware", **AWAY, hardware=("cuda",)), id="hw-other-has-it-unavailable"),
    pytest.param(1, res(HNA), facts(CUDA_ON_H2, requirement=("cuda",), lost_hosts=("h2",)), refused(f"{HNA}: no other worker has the hardware", avoid={"gw0"}, prefer_not={"gw0"}, hardware=("cuda",)), id="hw-other-host-lost"),
    pytest.param(1, res("hardware_mismatch"), facts(LOCAL), retried("hardware_mismatch: retry 1", **AWAY), id="hw-no-marker-another-worker"),
    pytest.param(1, res("hardware_mismatch"), facts(ALONE), refused("hardware_mismatch: no other worker has the hardware", **AWAY), id="hw-no-marker-alone"),
    pytest.param(1, res("hardware_compatibility_error"), facts(CUDA_ELSEWHERE, requirement=("cuda",)), retried("hardware_compatibility_error: retry 1", **AWAY, hardware=("cuda",)), id="hw-compatibility"),
    pytest.param(1, res(HNA, actions=(act.require_hardware(["rocm"]),)), facts(ROCM_ELSEWHERE, requirement=("cuda",)), retried(f"{HNA}: retry 1", **AWAY, hardware=("rocm",)), id="hw-required-by-action-elsewhere"),
    pytest.param(1, res(HNA, actions=(act.require_hardware(["cuda"]),)), facts(CUDA_ONLY_HERE), refused(f"{HNA}: no other worker has the hardware", **AWAY, hardware=("cuda",)), id="hw-required-by-action-nobody"),
    # -- every engine action kind that shapes the plan ---------------------------------------------------
    pytest.param(1, res(actions=(act.avoid_node("gw1"),)), facts(), retried(NT, avoid={"gw1"}), id="action-avoid_node"),
    pytest.param(1, res(actions=(act.prefer_other_node("gw1"),)), facts(), retried(NT, prefer_not={"gw0", "gw1"}), id="action-prefer_other_node"),
    pytest.param(1, res(actions=(act.require_hardware(["cuda", "rocm"]),)), facts(requirement=("cpu",)), retried(NT, hardware=("cuda", "rocm")), id="action-require_hardware-hard"),
    pytest.param(1, res(actions=(act.require_hardware([]),)), facts(requirement=("cpu",)), retried(NT, hardware=("cpu",)), id="action-require_hardware-empty-ignored"),
    pytest.param(1, res(actions=(act.prefer_hardware(["tpu", "cuda"]),)), facts(requirement=("cpu",)), retried(NT, hardware=("cpu",), prefer_hardware=("tpu", "cuda")), id="action-prefer_hardware-soft"),
    pytest.param(1, res(actions=(act.prefer_hardware([]),)), facts(), retried(NT), id="action-prefer_hardware-empty-ignored"),
    pytest.param(1, res(actions=(act.scale_timeout(2.0),)), facts(), retried(NT, timeout_factor=2.0), id="action-scale_timeout"),
    pytest.param(1, res(actions=(act.scale_timeout(2.0), act.scale_timeout(3.0))), facts(), retried(NT, timeout_factor=3.0), id="action-scale_timeout-max-up"),
    pytest.param(1, res(actions=(act.scale_timeout(3.0), act.scale_timeout(2.0))), facts(), retried(NT, timeout_factor=3.0), id="action-scale_timeout-max-down"),
    pytest.param(1, res(actions=(act.scale_timeout(0.5),)), facts(), retried(NT, timeout_factor=1.0), id="action-scale_timeout-never-shrinks"),
    pytest.param(1, res(actions=({"kind": "scale_timeout", "factor": "abc"},)), facts(), retried(NT, timeout_factor=1.0), id="action-scale_timeout-bad-text"),
    pytest.param(1, res(actions=({"kind": "scale_timeout", "factor": None},)), facts(), retried(NT, timeout_factor=1.0), id="action-scale_timeout-none"),
    pytest.param(1, res(actions=({"kind": "scale_timeout", "factor": [2]},)), facts(), retried(NT, timeout_factor=1.0), id="action-scale_timeout-bad-type"),
    pytest.param(1, res(actions=({"kind": "scale_timeout"},)), facts(), retried(NT, timeout_factor=1.0), id="action-scale_timeout-missing"),
    pytest.param(1, res(actions=(act.mark_unavailable("gw0", "cuda"), act.quarantine_node("gw0", "x"), act.restart_worker("gw0"))), facts(), retried(NT), id="action-worker-kinds-leave-the-plan"),
    pytest.param(1, res(actions=({"kind": "teleport", "node": "gw1"},)), facts(), retried(NT), id="action-unknown-kind-ignored"),
    # -- node-specific categories: never on the failed worker, other hosts first --------------------------
    pytest.param(1, res("worker_crashed"), facts(LOCAL), retried("worker_crashed: retry 1", **AWAY), id="node-worker_crashed-local"),
    pytest.param(1, res("worker_crashed"), facts(HOSTS), retried("worker_crashed: retry 1", avoid={"gw0"}, prefer_not={"gw0", "gw1"}), id="node-worker_crashed"),
    pytest.param(1, res("worker_disconnected"), facts(HOSTS), retried("worker_disconnected: retry 1", avoid={"gw0"}, prefer_not={"gw0", "gw1"}), id="node-worker_disconnected"),
    pytest.param(1, res("worker_timeout"), facts(HOSTS), retried("worker_timeout: retry 1", avoid={"gw0"}, prefer_not={"gw0", "gw1"}), id="node-worker_timeout"),
    pytest.param(1, res("system_crash"), facts(HOSTS), retried("system_crash: retry 1", avoid={"gw0"}, prefer_not={"gw0", "gw1"}), id="node-system_crash"),
    pytest.param(1, res("system_resource_limit"), facts(HOSTS), retried("system_resource_limit: retry 1", avoid={"gw0"}, prefer_not={"gw0", "gw1"}), id="node-system_resource_limit"),
    pytest.param(1, res("resource_exhausted"), facts(HOSTS), retried("resource_exhausted: retry 1", avoid={"gw0"}, prefer_not={"gw0", "gw1"}), id="node-resource_exhausted"),
    pytest.param(1, res("hardware_not_available"), facts(HOSTS), retried("hardware_not_available: retry 1", avoid={"gw0"}, prefer_not={"gw0", "gw1"}), id="node-hardware_not_available"),
    pytest.param(1, res("hardware_mismatch"), facts(HOSTS), retried("hardware_mismatch: retry 1", avoid={"gw0"}, prefer_not={"gw0", "gw1"}), id="node-hardware_mismatch"),
    pytest.param(1, res("hardware_compatibility_error"), facts(HOSTS), retried("hardware_compatibility_error: retry 1", avoid={"gw0"}, prefer_not={"gw0", "gw1"}), id="node-hardware_compatibility_error"),
    # -- network categories: another worker, another host first (soft) -------------------------------------
    pytest.param(1, res("network_timeout"), facts(LOCAL), retried(NT, prefer_not={"gw0"}), id="net-network_timeout-local"),
    pytest.param(1, res("network_timeout"), facts(HOSTS), retried(NT, prefer_not={"gw0", "gw1"}), id="net-network_timeout"),
    pytest.param(1, res("network_connection_error"), facts(HOSTS), retried("network_connection_error: retry 1", prefer_not={"gw0", "gw1"}), id="net-network_connection_error"),
    pytest.param(1, res("network_server_error"), facts(HOSTS), retried("network_server_error: retry 1", prefer_not={"gw0", "gw1"}), id="net-network_server_error"),
    pytest.param(1, res("network_timeout", actions=(act.avoid_node("gw2"),)), facts(HOSTS), retried(NT, avoid={"gw2"}, prefer_not={"gw0", "gw1"}), id="net-plus-avoid-action"),
]
# fmt: on


@pytest.mark.parametrize(("attempt", "result", "run_facts", "expected"), DECIDE_ROWS)
def test_decide(attempt: int, result: CategoryResult, run_facts: Facts, expected: dict[str, Any]) -> None:
    plan = decide(NODEID, attempt, "gw0", result, run_facts)
    assert plan_fields(plan) == expected
    assert (plan.nodeid, plan.attempt, plan.node, plan.category) == (NODEID, attempt, "gw0", result.category)
    assert plan.due is None and plan.dispatched is None  # promised later, after the hook


def test_every_action_kind_is_in_the_tables() -> None:
    kinds = {a["kind"] for row in DECIDE_ROWS for a in cast(CategoryResult, row.values[1]).actions}
    kinds |= {a["kind"] for row in EFFECT_ROWS for a in cast("list[dict[str, Any]]", row.values[0])}
    assert set(act.KINDS) <= kinds


def test_decide_changes_nothing_it_reads() -> None:
    run_facts = facts(HOSTS, requirement=("cpu",), unavailable=(("gw1", "cuda"),))
    workers = run_facts.workers
    before = (
        [r.to_dict() for r in workers], set(workers.unavailable), dict(workers.lost_hosts),
        dict(workers.requirements), set(workers.starting),
    )
    actions = (act.avoid_node("gw2"), act.mark_unavailable("gw0", "cuda"), act.quarantine_node("gw0", "x"))
    result = res("worker_crashed", actions=actions)
    first = decide(NODEID, 1, "gw0", result, run_facts)
    second = decide(NODEID, 1, "gw0", result, run_facts)
    after = (
        [r.to_dict() for r in workers], set(workers.unavailable), dict(workers.lost_hosts),
        dict(workers.requirements), set(workers.starting),
    )
    assert after == before
    assert plan_fields(first) == plan_fields(second)
    assert first is not second and first.avoid is not second.avoid
    assert list(result.actions) == list(actions)


def test_promise_drops_the_avoided_from_prefer_not_and_fixes_the_due_time() -> None:
    plan = decide(NODEID, 1, "gw0", res("worker_crashed", delay=1.5), facts(HOSTS))
    assert (plan.avoid, plan.prefer_not) == ({"gw0"}, {"gw0", "gw1"})
    plan.promise()
    assert (plan.avoid, plan.prefer_not) == ({"gw0"}, {"gw1"})
    assert plan.due == plan.decided + 1.5 and plan.next_attempt == 2
    assert (plan.to_dict()["avoid"], plan.to_dict()["prefer_not"]) == (["gw0"], ["gw1"])
    final = decide(NODEID, 1, "gw0", res(delay=1.5), facts(retry=False))
    final.promise()
    assert final.due is None and "avoid" not in final.to_dict()


# fmt: off
EFFECT_ROWS = [
    pytest.param([act.mark_unavailable("gw0", "cuda")], False, [Effect("mark_unavailable", "gw0", "cuda")], id="mark_unavailable"),
    pytest.param([act.mark_unavailable("gw0", "cuda")], True, [Effect("mark_unavailable", "gw0", "cuda")], id="mark_unavailable-crashed"),
    pytest.param([{"kind": "mark_unavailable", "node": "gw0"}], False, [], id="mark_unavailable-no-hardware"),
    pytest.param([act.quarantine_node("gw0", "3 tests failed there")], False, [Effect("quarantine_node", "gw0", "3 tests failed there")], id="quarantine_node"),
    pytest.param([{"kind": "quarantine_node", "node": "gw0"}], True, [Effect("quarantine_node", "gw0", "engine")], id="quarantine_node-no-reason"),
    pytest.param([act.restart_worker("gw0")], True, [], id="restart_worker-crashed-xdist-replaces-it"),
    pytest.param([act.restart_worker("gw0")], False, [Effect("restart_worker", "gw0", "engine")], id="restart_worker-live"),
    pytest.param([{"kind": "restart_worker", "node": "gw0", "reason": "leaks"}], False, [Effect("restart_worker", "gw0", "leaks")], id="restart_worker-reason"),
    pytest.param([{"kind": "quarantine_node", "reason": "x"}, {"kind": "restart_worker", "node": ""}], False, [], id="no-node-no-effect"),
    pytest.param([act.avoid_node("gw0"), act.prefer_other_node("gw0"), act.require_hardware(["cuda"]), act.prefer_hardware(["cuda"]), act.scale_timeout(2)], False, [], id="placement-kinds-are-no-effects"),
    pytest.param([act.restart_worker("gw0"), act.mark_unavailable("gw0", "cuda"), act.quarantine_node("gw1", "r")], False, [Effect("restart_worker", "gw0", "engine"), Effect("mark_unavailable", "gw0", "cuda"), Effect("quarantine_node", "gw1", "r")], id="in-order"),
]
# fmt: on


@pytest.mark.parametrize(("engine_actions", "crashed", "expected"), EFFECT_ROWS)
def test_effects(engine_actions: list[dict[str, Any]], crashed: bool, expected: list[Effect]) -> None:
    assert effects(engine_actions, crashed) == expected


# fmt: off
WHERE_ROWS = [
    pytest.param({"gw1", "gw0"}, set(), "not on gw0, gw1", id="avoid-sorted"),
    pytest.param({"gw0"}, {"gw0", "gw1"}, "not on gw0", id="avoid-wins"),
    pytest.param(set(), {"gw0"}, "preferably on another worker", id="prefer-not"),
    pytest.param({"gw0"}, {"gw0"}, "not on gw0", id="prefer-not-all-avoided"),
    pytest.param(set(), set(), "on any worker", id="anywhere"),
]
# fmt: on


@pytest.mark.parametrize(("avoid", "prefer_not", "expected"), WHERE_ROWS)
def test_describe_where(avoid: set[str], prefer_not: set[str], expected: str) -> None:
    plan = RetryPlan(NODEID, 1, "gw0", retry=True, avoid=avoid, prefer_not=prefer_not)
    assert describe_where(plan) == expected


# -- the pattern breaker: hand-computed sequences -------------------------------------------------------


def plans(n: int) -> list[RetryPlan]:
    return [RetryPlan(f"t.py::test_{i}", 1, "gw0", retry=True) for i in range(n)]


def test_breaker_lets_probes_out_holds_the_rest_and_releases_one_per_result() -> None:
    breaker = PatternBreaker(min_tests=3, min_failed_retries=2)
    p = plans(5)
    stats = breaker.failed("P1", "P1", p[0].nodeid)
    assert breaker.hold(stats, p[0]) == [p[0]]  # 1 test: no pattern yet, it goes
    stats = breaker.failed("P1", "P1", p[1].nodeid)
    assert breaker.hold(stats, p[1]) == [p[1]]
    assert stats.outstanding == 2
    stats = breaker.failed("P1", "P1", p[2].nodeid)  # 3 tests, 2 probes out: probing
    assert breaker.hold(stats, p[2]) == []
    stats = breaker.failed("P1", "P1", p[3].nodeid)
    assert breaker.hold(stats, p[3]) == []
    assert stats.held == [p[2], p[3]]
    assert breaker.resolved("P1") == [p[2]]  # one probe's result: the next goes
    assert (stats.outstanding, stats.held) == (2, [p[3]])
    assert breaker.release(stats) == []  # nothing changed
    breaker.recovered("P1")  # a test passed on a retry: not systemic, all go
    assert breaker.release(stats) == [p[3]]
    assert breaker.trip(stats) is None  # it recovered: never trips
    stats = breaker.failed("P1", "P1", p[4].nodeid)
    assert breaker.hold(stats, p[4]) == [p[4]]
    assert len(stats.tests) == 5 and stats.outstanding == 4


def test_breaker_trips_after_enough_failed_retries_and_cancels_the_held() -> None:
    breaker = PatternBreaker(min_tests=2, min_failed_retries=2)
    p = plans(4)
    for plan in p[:2]:
        stats = breaker.failed("K", "P1", plan.nodeid)
        assert breaker.hold(stats, plan) == [plan]
    stats = breaker.failed("K", "P1", p[2].nodeid)
    assert breaker.hold(stats, p[2]) == []  # 3 tests, 2 probes out
    # a probe's retry failed (the same test again: no new test)
    stats = breaker.failed("K", "P1", p[0].nodeid)
    breaker.retry_failed(stats)
    assert breaker.trip(stats) is None  # 1 failed retry of 2
    stats = breaker.failed("K", "P1", p[1].nodeid)
    breaker.retry_failed(stats)
    assert breaker.trip(stats) == [p[2]]  # the held one is cancelled
    assert stats.tripped and stats.held == []
    assert breaker.reason(stats) == TRIPPED
    assert breaker.trip(stats) is None  # once
    breaker.failed("K", "P1", p[3].nodeid)
    assert breaker.reason(stats) == TRIPPED  # the numbers of the moment it tripped
    assert breaker.hold(stats, p[3]) == []  # nothing goes once tripped
    assert breaker.resolved("K") == [] and stats.outstanding == 1


def test_breaker_needs_enough_tests_to_trip() -> None:
    breaker = PatternBreaker(min_tests=3, min_failed_retries=1)
    stats = breaker.failed("K", "P1", "t.py::a")
    breaker.failed("K", "P1", "t.py::b")
    breaker.retry_failed(stats)
    breaker.retry_failed(stats)
    assert breaker.trip(stats) is None  # 2 tests of 3
    breaker.failed("K", "P1", "t.py::c")
    assert breaker.trip(stats) == []
    assert breaker.reason(stats) == (
        "pattern P1 is systemic: it failed in 3 tests and 2 retries did not help, "
        "so the breaker stopped its retries"
    )


def test_breaker_never_trips_without_a_pattern() -> None:
    breaker = PatternBreaker(min_tests=1, min_failed_retries=1)
    stats = breaker.failed("?", None, "t.py::a")
    breaker.retry_failed(stats)
    breaker.retry_failed(stats)
    assert breaker.trip(stats) is None and not stats.tripped


def test_breaker_unknown_patterns_and_outstanding_floor() -> None:
    breaker = PatternBreaker(min_tests=2, min_failed_retries=2)
    assert breaker.resolved("nope") == []
    breaker.recovered("nope")  # no KeyError, no stats made
    assert breaker.stats == {}
    stats = breaker.failed("K", "P1", "t.py::a")
    assert breaker.resolved("K") == [] and breaker.resolved("K") == []
    assert stats.outstanding == 0


@pytest.mark.parametrize(
    ("nodeid", "pattern", "crash", "how", "key"),
    [
        pytest.param("t.py::a", "P1", False, None, "P1", id="pattern"),
        pytest.param("t.py::a", None, False, None, "?", id="no-pattern"),
        pytest.param("t.py::a", "P1", True, -11, "P1|t.py::a|-11", id="crash-per-test-and-signal"),
        pytest.param("t.py::a", None, True, "SIGKILL", "?|t.py::a|SIGKILL", id="crash-no-pattern"),
    ],
)
def test_breaker_key(nodeid: str, pattern: str | None, crash: bool, how: object, key: str) -> None:
    assert breaker_key(nodeid, pattern, crash, how) == key


# -- quarantine evidence: Evidence gathers, judge decides --------------------------------------------------


class Counted:
    """first_attempts, counting its calls."""

    def __init__(self, value: dict[str, tuple[int, int]]) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> dict[str, tuple[int, int]]:
        self.calls += 1
        return self.value


def test_evidence_sorts_failures_into_node_scoped_and_only_here() -> None:
    ev = Evidence(threshold=2)
    for pattern, node in [("P1", "gw0"), ("P2", "gw0"), ("P2", "gw1"), ("P3", "gw0")]:
        ev.failed(pattern, node)
    assert ev.passed_elsewhere("t1", [("gw0", "P1", "resource_exhausted")], "gw1") == {"gw0"}
    assert ev.passed_elsewhere("t2", [("gw0", "P2", "network_timeout")], "gw1") == {"gw0"}
    assert ev.passed_elsewhere("t3", [("gw0", "P3", "test_assertion_error")], "gw2") == {"gw0"}
    # passed on a worker it had failed on: that says nothing about the workers
    assert ev.passed_elsewhere("t4", [("gw0", "P1", "worker_crashed"), ("gw1", "P1", "worker_crashed")], "gw1") == set()
    assert ev.node_scoped_tests("gw0") == {"t1": "resource_exhausted"}
    # P2 failed on gw1 too: not only here; P3 only on gw0, and not node-scoped
    assert ev.only_here("gw0") == {"t3": "test_assertion_error"}
    assert ev.node_scoped_tests("gw1") == {} and ev.only_here("gw1") == {}
    first = Counted({"gw0": (10, 3), "gw1": (10, 1)})
    verdict = ev.verdict("gw0", first)
    assert (verdict.quarantine, verdict.reason) == (False, "")
    assert first.calls == 0  # not needed below the threshold: never counted


def test_evidence_node_scoped_failures_quarantine_without_counting_first_attempts() -> None:
    ev = Evidence(threshold=2)
    ev.failed("P1", "gw0")
    ev.passed_elsewhere("t1", [("gw0", "P1", "resource_exhausted")], "gw1")
    ev.passed_elsewhere("t2", [("gw0", "P9", "worker_crashed")], "gw2")
    first = Counted({})
    verdict = ev.verdict("gw0", first)
    assert verdict.quarantine
    assert verdict.reason == (
        "2 different tests failed on gw0 with node-scoped errors (resource_exhausted, worker_crashed) "
        "and passed on other workers"
    )
    assert first.calls == 0


def only_here_evidence(n: int) -> Evidence:
    ev = Evidence(threshold=3)
    for i in range(n):  # each with its own pattern, seen on gw0 only
        ev.failed(f"P{i}", "gw0")
        ev.passed_elsewhere(f"t{i}", [("gw0", f"P{i}", "network_timeout")], "gw1")
    return ev


def test_evidence_a_significantly_higher_failure_rate_quarantines() -> None:
    # 6 of the 6 failed first attempts on gw0, which ran half: P = 0.5^6 = 0.015625 < 0.05 / 2
    first = Counted({"gw0": (12, 6), "gw1": (12, 0)})
    verdict = only_here_evidence(6).verdict("gw0", first)
    assert verdict.quarantine and first.calls == 1
    assert verdict.reason == (
        "6 tests failed only on gw0 and passed elsewhere (network_timeout: not node-scoped); "
        "6 of the run's 6 failed first attempts were on gw0, whose share of first attempts is 50%: "
        "one-sided binomial p=0.0156 < 0.025: a failure rate significantly higher than the others'"
    )


def test_evidence_a_rate_chance_explains_does_not_quarantine() -> None:
    # 4 of 4 on one of two equal workers: P = 0.5^4 = 0.0625, not below 0.025
    verdict = only_here_evidence(4).verdict("gw0", Counted({"gw0": (8, 4), "gw1": (8, 0)}))
    assert not verdict.quarantine
    assert verdict.reason == (
        "4 tests failed only on gw0 and passed elsewhere (network_timeout: not node-scoped); "
        "4 of the run's 4 failed first attempts were on gw0, whose share of first attempts is 50%: "
        "one-sided binomial p=0.0625, not below 0.025 (0.05 over 2 workers)"
    )


def test_evidence_an_error_every_worker_had_is_no_evidence() -> None:
    ev = only_here_evidence(6)
    ev.failed("P0", "gw1")  # the first pattern struck gw1 as well
    assert set(ev.only_here("gw0")) == {f"t{i}" for i in range(1, 6)}
    for i in range(6):
        ev.failed(f"P{i}", "gw1")
    first = Counted({"gw0": (12, 6), "gw1": (12, 6)})
    assert ev.verdict("gw0", first).reason == "" and first.calls == 0
