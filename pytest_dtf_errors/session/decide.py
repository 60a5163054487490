"""decide(): one failed attempt, its category result and the run's facts -> a RetryPlan.

Pure: it reads its arguments and returns the plan; it changes nothing. Every
recovery action kind the engine can emit is handled here: the placement kinds
shape the plan, the worker kinds become ``Effect``s the caller carries out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, final

from .plan import RetryPlan
from .poison import Role
from .workers import WorkerBook

__all__ = ["CategoryResult", "Effect", "Facts", "decide", "effects"]

# Families whose retry must run on another worker (the node is suspect).
NODE_SPECIFIC = frozenset({
    "worker_crashed", "worker_disconnected", "worker_timeout", "system_crash", "system_resource_limit",
    "resource_exhausted", "hardware_not_available", "hardware_mismatch", "hardware_compatibility_error",
})
# Categories whose retry prefers another worker (and another host).
PREFER_OTHER = frozenset({"network_timeout", "network_connection_error", "network_server_error"})
HARDWARE_CATEGORIES = frozenset({"hardware_not_available", "hardware_mismatch", "hardware_compatibility_error"})
# A victim of a poisoned worker is retried on fresh workers up to this many attempts, whatever
# its category's policy: its failures are another test's doing (the culprit's confirmation may
# poison the fresh worker a victim's retry was sent to as well)
VICTIM_ATTEMPTS = 3


@final
class CategoryResult:
    """What the engine said about one failure, as decide() needs it."""

    __slots__ = ("actions", "category", "delay", "max_retries", "retried", "retry")

    def __init__(
        self,
        category: str,
        retry: bool,
        delay: float = 0.0,
        actions: Sequence[Mapping[str, object]] = (),
        max_retries: int = 0,
        retried: bool = True,
    ) -> None:
        self.category = category
        self.retry = retry  # the category's policy (and the recovery strategy) allow another attempt
        self.delay = delay
        self.actions = actions  # the engine's structured recovery actions (engine.actions)
        self.max_retries = max_retries  # the policy's
        self.retried = retried  # the policy retries this category at all


@final
class Facts:
    """What the run knows when the attempt failed, beyond the attempt itself."""

    __slots__ = (
        "budget", "dist_each", "fallback", "fresh_workers", "max_retries", "peer", "peer_marked",
        "phase", "poison", "requirement", "retries_used", "retry", "tripped", "workers",
    )

    def __init__(
        self,
        workers: WorkerBook,
        *,
        retry: bool = True,
        phase: str = "call",
        requirement: tuple[str, ...] = (),
        fallback: tuple[str, ...] = (),
        max_retries: int | None = None,
        budget: int | None = None,
        retries_used: int = 0,
        tripped: str | None = None,
        peer: str | None = None,
        peer_marked: str | None = None,
        dist_each: bool = False,
        poison: Role | None = None,
        fresh_workers: bool = True,
    ) -> None:
        self.workers = workers  # read only
        self.retry = retry  # --dtf-retry
        self.phase = phase  # setup / call / teardown / crash
        self.requirement = requirement  # the test's hardware marker: any of these tags
        self.fallback = fallback  # the marker's fallback= tags
        self.max_retries = max_retries  # --dtf-max-retries
        self.budget = budget
        self.retries_used = retries_used
        self.tripped = tripped  # the breaker's reason, when it stopped this pattern
        self.peer = peer  # an active peer retry plugin owns retries
        self.peer_marked = peer_marked  # the test is @pytest.mark.flaky and this plugin owns it
        self.dist_each = dist_each
        self.poison = poison  # the failure hit a sticky GPU error: as a worker's culprit or a victim
        self.fresh_workers = fresh_workers  # a poisoned worker is replaced (xdist), not the one process


EffectKind = Literal["mark_unavailable", "quarantine_node", "restart_worker"]


@final
class Effect:
    """A recovery action on a worker, carried out by the caller."""

    __slots__ = ("detail", "kind", "node")

    def __init__(self, kind: EffectKind, node: str, detail: str) -> None:
        self.kind = kind
        self.node = node
        self.detail = detail  # the hardware, or the reason

    def __repr__(self) -> str:
        return f"Effect({self.kind!r}, {self.node!r}, {self.detail!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Effect):
            return NotImplemented
        return (self.kind, self.node, self.detail) == (other.kind, other.node, other.detail)

    def __hash__(self) -> int:
        return hash((self.kind, self.node, self.detail))


def decide(nodeid: str, attempt: int, node: str, result: CategoryResult, facts: Facts) -> RetryPlan:
    """The plan for attempt ``attempt`` of ``nodeid``, which failed on ``node``."""
    plan = RetryPlan(nodeid, attempt, node, result.category, hardware=facts.requirement)
    _place(plan, result, facts)
    reason = _why_not(plan, result, facts)
    if reason is None:
        plan.retry, plan.delay, plan.reason = True, result.delay, _retry_reason(plan, facts)
    else:
        plan.reason = reason
    return plan


def _retry_reason(plan: RetryPlan, facts: Facts) -> str:
    role = facts.poison
    if role is None:
        return f"{plan.category}: retry {plan.attempt}"
    p = role.poisoning
    if role.kind == "victim":
        return f"victim of {p.culprit} ({p.signature} poisoned {p.worker}): retried on a fresh worker"
    return f"{p.signature} poisoned {p.worker}: the suspected culprit, retried once on a fresh worker"


def _poisoned(plan: RetryPlan, facts: Facts) -> str | None:
    """Why a sticky GPU failure is not retried, or None when it may be."""
    role = facts.poison
    if role is None:
        return None
    p = role.poisoning
    if not facts.fresh_workers:
        subject = f"victim of {p.culprit}, which" if role.kind == "victim" else "it"
        return (
            f"{p.signature}: {subject} poisoned this process's GPU context; without xdist a retry "
            "would run in the same poisoned process, so it is not retried (with -n it is retried "
            "on a fresh worker)"
        )
    first = role.reproduced
    if first is None:
        return None
    if first.culprit == plan.nodeid:
        n = len(first.victims)
        return (
            f"reproduced on a fresh worker ({p.worker}: {p.signature}); "
            f"{n} test{'s' * (n != 1)} on {first.worker} failed after it"
        )
    return (
        f"{p.signature} again on a fresh worker ({p.worker}): it poisons GPU contexts itself, "
        f"not only as a victim of {first.culprit}"
    )


def _why_not(plan: RetryPlan, result: CategoryResult, facts: Facts) -> str | None:
    """Why the attempt is not retried, or None when it is."""
    category = result.category
    if facts.peer_marked:
        return f"marked flaky: left to {facts.peer_marked}"
    if not facts.retry:
        return "retries are off (no --dtf-retry)"
    if facts.peer:
        return f"left to {facts.peer}, which retries this run"
    if facts.dist_each:
        return "--dist each runs every test on every worker: not retried"
    if facts.phase == "teardown":
        return "teardown failures are not retried: the test body ran"
    if facts.tripped:  # the breaker's verdict explains every test of its pattern alike
        return facts.tripped
    poisoned = _poisoned(plan, facts)
    if poisoned is not None:
        return poisoned
    victim = facts.poison is not None and facts.poison.kind == "victim"
    if not result.retry and not (victim and plan.attempt <= VICTIM_ATTEMPTS):
        if result.max_retries == 0 or not result.retried:
            return f"{category} is not retried"
        return f"{category}: {plan.attempt - 1} of {result.max_retries} retries used"
    if facts.max_retries is not None and plan.attempt > facts.max_retries:
        return f"--dtf-max-retries {facts.max_retries} reached"
    if facts.budget is not None and facts.retries_used >= facts.budget:
        return f"retry budget of {facts.budget} used up"
    if category in HARDWARE_CATEGORIES and facts.poison is None and not (
        facts.workers.candidates({plan.node}, plan.hardware) or facts.fallback
    ):  # a poisoned worker's replacement has the hardware
        return f"{category}: no other worker has the hardware"
    return None


def _place(plan: RetryPlan, result: CategoryResult, facts: Facts) -> None:
    """Where the retry may run: from the category, then the engine's placement actions."""
    category = result.category
    if category in NODE_SPECIFIC:
        plan.avoid.add(plan.node)
    else:
        plan.prefer_not.add(plan.node)
    if category in NODE_SPECIFIC or category in PREFER_OTHER:
        # a node or network problem may be the whole host's: other hosts first
        plan.prefer_not |= facts.workers.same_host(plan.node)
    if facts.poison is not None:  # never on a poisoned worker
        plan.avoid |= {rec.id for rec in facts.workers if rec.poisoned}
    for action in result.actions:
        kind = action.get("kind")
        if kind == "avoid_node":
            plan.avoid.add(str(action.get("node")))
        elif kind == "prefer_other_node":
            plan.prefer_not.add(str(action.get("node")))
        elif kind == "require_hardware" and action.get("hardware"):
            plan.hardware = _tags(action["hardware"])
        elif kind == "prefer_hardware" and action.get("hardware"):
            plan.prefer_hardware = _tags(action["hardware"])
        elif kind == "scale_timeout":
            plan.timeout_factor = max(plan.timeout_factor, _factor(action.get("factor")))
    if (
        category in HARDWARE_CATEGORIES
        and facts.fallback
        and facts.poison is None
        and not facts.workers.candidates({plan.node}, plan.hardware)
    ):
        plan.hardware = facts.fallback  # no other worker has it: the marker's fallback= runs it


def _tags(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(h) for h in value) if isinstance(value, (list, tuple)) else ()


def _factor(value: object) -> float:
    if not value or not isinstance(value, (int, float, str)):
        return 1.0
    try:
        return float(value)
    except ValueError:
        return 1.0


def effects(actions: Sequence[Mapping[str, object]], crashed: bool) -> list[Effect]:
    """The engine's actions on workers. A crashed worker's ``restart_worker`` is xdist's own
    replacement of it (under ``--max-worker-restart``): nothing more to do."""
    out: list[Effect] = []
    for action in actions:
        kind, node = action.get("kind"), action.get("node")
        if not node:
            continue
        if kind == "mark_unavailable" and action.get("hardware"):
            out.append(Effect("mark_unavailable", str(node), str(action["hardware"])))
        elif kind == "quarantine_node":
            out.append(Effect("quarantine_node", str(node), str(action.get("reason") or "engine")))
        elif kind == "restart_worker" and not crashed:
            out.append(Effect("restart_worker", str(node), str(action.get("reason") or "engine")))
    return out


def describe_where(plan: RetryPlan) -> str:
    """Where a retry goes, in the words the reports append to its reason."""
    if plan.avoid:
        return f"not on {', '.join(sorted(plan.avoid))}"
    if plan.prefer_not - plan.avoid:
        return "preferably on another worker"
    return "on any worker"
