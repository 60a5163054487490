"""Controller side: report -> decision -> actions, recorded in the ledger.

One decision per failed attempt. The engine categorizes it; then the attempt
count, the category policy, ``--dtf-max-retries``, the retry budget and the
pattern breaker decide: retry (where, when) or final. The controller does not
know how retries run: a *dispatcher* (the xdist scheduler glue, or the
in-process runner) places them.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, final

import pytest

from . import breaker as evidence
from . import record as records
from .engine.categories import ErrorCategory
from .ledger import Attempt, Decision, Ledger, slots_repr
from .settings import Settings

if TYPE_CHECKING:
    from .engine.handler import DistributedErrorHandler

# Categories whose retry must run on another worker (the node is suspect).
NODE_SPECIFIC = {
    "worker_crashed",
    "worker_disconnected",
    "worker_timeout",
    "system_crash",
    "system_resource_limit",
    "resource_exhausted",
    "hardware_not_available",
    "hardware_mismatch",
    "hardware_compatibility_error",
}
# Categories whose retry prefers another worker.
PREFER_OTHER = {"network_timeout", "network_connection_error", "network_server_error"}
HARDWARE_CATEGORIES = {
    "hardware_not_available",
    "hardware_mismatch",
    "hardware_compatibility_error",
}


@final
class RetryRequest:
    """What the controller asks a dispatcher to run again."""

    __slots__ = (
        "attempt", "avoid", "decided", "delay", "failed_on", "hardware", "nodeid", "prefer_not",
        "timeout_factor",
    )

    def __init__(
        self,
        nodeid: str,
        attempt: int,
        delay: float,
        failed_on: str,
        hardware: tuple[str, ...] = (),
    ) -> None:
        self.nodeid = nodeid
        self.attempt = attempt  # the number the retry will have
        self.delay = delay
        self.failed_on = failed_on
        self.avoid: set[str] = set()
        self.prefer_not: set[str] = set()
        self.hardware = hardware
        self.timeout_factor = 1.0
        # when the failure was decided (time.monotonic()): a retry held back by the
        # breaker has served that part of its delay when it is released
        self.decided = time.monotonic()

    __repr__ = slots_repr

    @property
    def due(self) -> float:
        """When the retry may run, on the time.monotonic() clock."""
        return self.decided + self.delay


class Dispatcher(Protocol):
    """Runs retries: the xdist glue or the in-process runner."""

    def submit(self, request: RetryRequest) -> None: ...
    def reported(self, nodeid: str, report: pytest.TestReport) -> None: ...
    def cancel(self, nodeid: str) -> bool: ...
    def quarantine(self, node: str) -> None: ...
    def mark_unavailable(self, node: str, hardware: str) -> None: ...
    def other_workers(self, node: str, hardware: tuple[str, ...] = ()) -> int: ...


@final
class RetryPlan:
    """What the controller is about to do with one failed attempt.

    ``pytest_dtf_retry_decision`` implementations may change it in place.
    """

    __slots__ = (
        "attempt", "avoid", "category", "delay", "hardware", "node", "nodeid", "prefer_not",
        "reason", "retry",
    )

    def __init__(
        self,
        nodeid: str,
        attempt: int,
        node: str,
        category: str,
        retry: bool,
        delay: float,
        reason: str,
        avoid: set[str] | None = None,
        prefer_not: set[str] | None = None,
        hardware: tuple[str, ...] = (),
    ) -> None:
        self.nodeid = nodeid
        self.attempt = attempt  # the attempt that failed, 1-based
        self.node = node  # the worker it failed on
        self.category = category
        self.retry = retry
        self.delay = delay
        self.reason = reason
        self.avoid: set[str] = avoid if avoid is not None else set()
        self.prefer_not: set[str] = prefer_not if prefer_not is not None else set()
        self.hardware = hardware

    __repr__ = slots_repr

    def veto(self, reason: str) -> None:
        """Do not retry; ``reason`` is what the reports say."""
        self.retry = False
        self.reason = reason

    def move(self) -> None:
        """Never run the retry on the worker that failed."""
        self.avoid.add(self.node)


DEFAULT_BUDGET_FLOOR = 100
DEFAULT_BUDGET_TEXT = f"default: half the collected tests, at least {DEFAULT_BUDGET_FLOOR}"


def default_budget(collected: int) -> int:
    """Suite-wide retry cap when none is given: half the suite, at least 100.

    A last resort against a storm of retries, not a rationing of them: the
    breaker stops systemic patterns, and a small suite's flaky tests all get
    their retries.
    """
    return max(DEFAULT_BUDGET_FLOOR, math.ceil(collected * 0.5))


class _PatternStats:
    """What the breaker knows of one error pattern."""

    __slots__ = (
        "failed_retries", "held", "outstanding", "pattern", "reason", "recovered", "tests", "tripped",
    )

    def __init__(self, pattern: str | None) -> None:
        self.pattern = pattern  # the engine's pattern id, as the reports name it
        self.reason = ""  # the breaker's message, fixed when it trips: one text for every test
        self.tests: set[str] = set()
        self.failed_retries = 0
        self.recovered = 0
        self.tripped = False
        self.outstanding = 0  # retries sent whose result is not known yet
        self.held: list[RetryRequest] = []  # retries waiting for the probes' verdict


class Controller:
    """Decides every failed attempt and records every attempt in the ledger."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        make_handler: Callable[[], DistributedErrorHandler],
        ledger: Ledger,
    ) -> None:
        self.config = config
        self.settings = settings
        self._make_handler = make_handler
        self._handler: DistributedErrorHandler | None = None
        self.ledger = ledger
        self.dispatcher: Dispatcher | None = None
        # node -> nodeid -> the attempt running there (no key object per report)
        self.open: dict[str, dict[str, Attempt]] = {}
        self._node_names: dict[Any, str] = {}  # xdist's worker object -> its id
        self.locations: dict[str, tuple[str, int | None, str]] = {}
        self.requirements: dict[str, dict[str, Any]] = {}  # nodeid -> hardware marker info
        self.breaker: dict[str, _PatternStats] = {}  # pattern id -> what the breaker knows
        # node -> {test that failed there and passed on another worker: (pattern, category)}
        self.suspects: dict[str, dict[str, tuple[str | None, str | None]]] = {}
        self.pattern_nodes: dict[str | None, set[str]] = {}  # pattern -> workers it failed on
        self.crashed_on: dict[str, list[str]] = {}  # nodeid -> workers it took down
        self.waiting: set[str] = set()  # retries promised, not started
        # --dist each: xdist runs every test once on every worker (each run an attempt)
        self.dist_each = ledger.runs_per_worker = getattr(config.option, "dist", None) == "each"

    @property
    def handler(self) -> DistributedErrorHandler:
        """The engine, built on the first failure: a run where all pass never pays for it."""
        if self._handler is None:
            self._handler = self._make_handler()
        return self._handler

    def patterns(self) -> list[dict[str, Any]]:
        if self._handler is None:
            return []
        return [p.to_dict() for p in self._handler.error_aggregator.get_error_groups()]

    # -- helpers the plugin and dispatchers use -----------------------------
    def collected(self, nodeids: list[str]) -> None:
        self.ledger.collected(nodeids)
        if self.ledger.retry_budget is None:
            if self.settings.retry_budget is not None:
                self.ledger.retry_budget = self.settings.retry_budget
            else:
                self.ledger.retry_budget = default_budget(len(nodeids))
                self.ledger.budget_note = DEFAULT_BUDGET_TEXT

    def requirement(self, nodeid: str) -> tuple[str, ...]:
        info = self.requirements.get(nodeid)
        return tuple(info["any"]) if info else ()

    # -- the report path ----------------------------------------------------
    def on_report(self, report: pytest.TestReport) -> bool:
        """Record one phase report; turn a retried failure into a "rerun".

        True when the report now has an outcome only dtf's words describe:
        rerun, flaky, a crash, a lost worker's pass.
        """
        # The hot path: three reports per test, nearly all of them passing.
        outcome = report.outcome
        if report.__dict__.get("dtf_synthetic"):
            return False
        nodeid = report.nodeid
        when = report.when
        node = self._node_name(report)
        running = self.open.get(node)
        if running is None:
            running = self.open[node] = {}
        att = running.get(nodeid)
        if att is None or when == "setup":
            att = running[nodeid] = self._open(nodeid, node, report)
        att.duration += report.duration or 0.0
        own = False
        if when == "???" and att.call_passed and _lost(report):
            self._lost_after_call(att, report)
            own = True
        elif outcome == "failed" or outcome == "rerun":  # "rerun": pytest-rerunfailures' failure
            if att.decision is None:
                self._decide(att, report)
            elif when == "teardown" and att.error is not None:
                att.error["teardown_error"] = _teardown_error(att, report)  # the call failed too
            if outcome == "failed" and att.decision is not None and att.decision.retry:
                report.outcome = "rerun"  # type: ignore[assignment]
                own = True
        elif outcome == "skipped":
            if att.outcome == "passed":
                att.outcome = "skipped"
        elif when == "call":
            att.call_passed = True
            if att.attempt > 1 and self._failed_before(nodeid, att) and not self.dist_each:
                report.dtf_flaky = True  # type: ignore[attr-defined]
                own = True
        if when == "teardown" or when == "???":
            running.pop(nodeid, None)
            self._close(nodeid, att)
            if when == "???":
                own = True  # xdist's crash report: an error, in dtf's words
            elif self.dispatcher is not None:
                self.dispatcher.reported(nodeid, report)
        return own

    def _node_name(self, report: pytest.TestReport) -> str:
        node = report.__dict__.get("node")  # xdist sets it on the controller
        if node is None:
            return "local"
        name = self._node_names.get(node)
        if name is None:
            gateway = getattr(node, "gateway", None)
            name = self._node_names[node] = str(gateway.id) if gateway is not None else str(node)
        return name

    def _lost_after_call(self, att: Attempt, report: pytest.TestReport) -> None:
        """The test passed, then its worker went silent before the teardown report.

        The test's result is known: it keeps it, and the crash report xdist
        makes for it counts nowhere (the terminal already showed PASSED).
        """
        att.decision = Decision(
            False,
            reason=f"passed; worker {att.node} was lost before its teardown was reported",
        )
        report.outcome = "passed"
        report.dtf_hidden = True  # type: ignore[attr-defined]

    def _failed_before(self, nodeid: str, att: Attempt) -> bool:
        return any(a.failed for a in self.ledger.test(nodeid).attempts if a is not att)

    def _open(self, nodeid: str, node: str, report: pytest.TestReport) -> Attempt:
        """A new attempt of ``nodeid`` on ``node``, from its first report."""
        if nodeid not in self.locations:
            self.locations[nodeid] = report.location
        rec = self.ledger.nodes.get(node)
        if rec is None:
            att = self.ledger.new_attempt(nodeid, node)
        else:  # the node's hardware list is replaced when it changes, never changed in place: shared
            att = self.ledger.new_attempt(nodeid, node, rec.host, rec.hardware)
        if self.waiting:
            self.waiting.discard(nodeid)
        return att

    def _close(self, nodeid: str, att: Attempt) -> None:
        att.finished = time.time()
        if att.decision is not None and att.decision.retry:
            return  # a retry is on its way; no final outcome yet
        if self.dist_each:
            # every worker's run is an attempt, closed in any order: failed on any worker is failed
            attempts = self.ledger.test(nodeid).attempts
            if any(a.failed for a in attempts):
                failed = any(a.outcome == "failed" for a in attempts)
                self.ledger.finalize(nodeid, "failed" if failed else "error")
            elif all(a.outcome == "skipped" for a in attempts):
                self.ledger.finalize(nodeid, "skipped")
            else:
                self.ledger.finalize(nodeid, "passed")
            return
        if att.failed:
            self.ledger.finalize(nodeid, "failed" if att.outcome == "failed" else "error")
        elif att.outcome == "skipped":
            self.ledger.finalize(nodeid, "skipped")
        elif att.attempt > 1 and self._failed_before(nodeid, att):
            self.ledger.finalize(nodeid, "flaky")
            self._recovered(nodeid, att)
            self._retry_resolved(nodeid)
        else:
            self.ledger.finalize(nodeid, "passed")

    # -- deciding -------------------------------------------------------------
    def _decide(self, att: Attempt, report: pytest.TestReport) -> None:
        nodeid = report.nodeid
        phase = "crash" if report.when == "???" else report.when
        error = getattr(report, "dtf_error", None) or records.from_longrepr(
            records.safe_str(report.longrepr, records.MAX_TRACEBACK), phase=phase, worker=att.node
        )
        if phase == "crash" and att.call_passed and self.settings.schedule:
            # the test passed, then its worker died (in its teardown): the crash is the
            # attempt's outcome (retried as any crash), and the terminal's count of the
            # passed call is taken back: the test is counted once. Not asked for, xdist's
            # own count stands (the passed call and a failed crash).
            self._uncount(nodeid, ("passed", "flaky"), keep=0)
        att.phase = phase
        # a crash is a failure, as xdist reports it; a setup or teardown failure an error
        att.outcome = "failed" if phase in ("call", "crash") else "error"
        att.error = error
        att.longrepr = records.safe_str(report.longrepr, records.MAX_TRACEBACK)
        hw = (error.get("hardware_context") or {}).get("hardware_type") or (
            att.hardware[0] if att.hardware else None
        )
        context = {
            "worker_id": att.node,
            "host": att.host,
            "hardware_type": hw,
            "attempt_count": att.attempt,
            "test_id": nodeid,
            "timeout": self._timeout(),
            "node_failures": len(self._node_scoped(att.node)),
        }
        result = self.handler.handle_error(
            nodeid, error, context, classification=self._hook_classification(error, context)
        )
        category: ErrorCategory = result["category"]
        att.category = category.value
        att.rule = result.get("rule")
        att.pattern = result.get("pattern_id")
        self.pattern_nodes.setdefault(att.pattern, set()).add(att.node)
        recovery = result.get("recovery_action") or {}
        att.actions = list(recovery.get("actions") or [])
        if error.get("phase") == "crash":
            self.crashed_on.setdefault(nodeid, []).append(att.node)
            self.ledger.node(att.node).crashes += 1
        stats = self._pattern(self._breaker_key(nodeid, att), att.pattern, nodeid)
        if att.attempt > 1:
            stats.failed_retries += 1
            self._retry_resolved(nodeid)
        # before deciding: the failure that trips the breaker is itself not retried
        self._check_breaker(self._breaker_key(nodeid, att), stats)
        if getattr(report, "dtf_peer_marked", False) and self.settings.peer_installed:
            decision = Decision(False, reason=f"marked flaky: left to {self.settings.peer_installed}")
        else:
            decision = self._retry_decision(nodeid, att, result, phase, stats)
        request = self._request(nodeid, att, decision)
        decision = self._hook_decision(att, decision, request, error)
        if decision.retry:
            decision.due = time.time() + decision.delay
            decision.avoid = sorted(request.avoid)
            decision.prefer_not = sorted(request.prefer_not - request.avoid)
            if decision.reason.endswith(f"retry {att.attempt}"):
                where = (
                    f"not on {', '.join(decision.avoid)}" if decision.avoid
                    else "preferably on another worker" if decision.prefer_not
                    else "on any worker"
                )
                decision.reason += f", {where}"
        att.decision = decision
        if not decision.retry:
            text = f"{att.category} (rule {att.rule}, pattern {att.pattern}): {decision.reason}"
            crashed = self.crashed_on.get(nodeid)
            if crashed:
                text += f"\nit took down {len(crashed)} worker(s): {', '.join(crashed)}"
            report.sections.append(("dtf", text))
        self._act(att, decision)
        if decision.retry:
            self.ledger.retries_used += 1
            self.waiting.add(nodeid)
            stats.held.append(request)
        self._release(stats)

    def _hook_classification(self, error: dict[str, Any], context: dict[str, Any]) -> Any:
        decided = self.config.hook.pytest_dtf_classify(error=error, context=context, config=self.config)
        if decided is None:
            return None
        from .engine.classify import Classification

        try:
            category = decided if isinstance(decided, ErrorCategory) else ErrorCategory.lookup(str(decided))
        except (KeyError, ValueError):
            warnings.warn(
                pytest.PytestWarning(
                    f"pytest_dtf_classify returned {decided!r}, which is no category; "
                    "the built-in rules decide instead"
                ),
                stacklevel=1,
            )
            return None
        return Classification(category, "hook:pytest_dtf_classify", "decided by a conftest/plugin hook")

    def _hook_decision(
        self, att: Attempt, decision: Decision, request: RetryRequest, error: dict[str, Any]
    ) -> Decision:
        plan = RetryPlan(
            nodeid=request.nodeid,
            attempt=att.attempt,
            node=att.node,
            category=att.category or "unknown",
            retry=decision.retry,
            delay=decision.delay,
            reason=decision.reason,
            avoid=request.avoid,
            prefer_not=request.prefer_not,
            hardware=request.hardware,
        )
        self.config.hook.pytest_dtf_retry_decision(plan=plan, error=error, config=self.config)
        request.delay = max(0.0, float(plan.delay))
        request.hardware = tuple(plan.hardware)
        if (plan.retry, plan.delay, plan.reason) == (decision.retry, decision.delay, decision.reason):
            return decision
        return Decision(bool(plan.retry), delay=request.delay, reason=plan.reason)

    def _timeout(self) -> float | None:
        value = getattr(self.config.option, "timeout", None)
        try:
            return float(value) if value else None
        except (TypeError, ValueError):
            return None

    def _pattern(self, key: str, pattern: str | None, nodeid: str) -> _PatternStats:
        stats = self.breaker.get(key)
        if stats is None:
            stats = self.breaker[key] = _PatternStats(pattern)
        stats.tests.add(nodeid)
        return stats

    @staticmethod
    def _breaker_key(nodeid: str, att: Attempt) -> str:
        """The breaker's pattern of a failed attempt: the engine's pattern, except for a
        worker crash, which is its own per test and exit code or signal: crashes of
        different tests, or different crashes, are not one systemic pattern."""
        error = att.error or {}
        if error.get("phase") != "crash":
            return att.pattern or "?"
        how = error.get("signal") or error.get("exitcode")
        return f"{att.pattern or '?'}|{nodeid}|{how}"

    def _retry_decision(
        self, nodeid: str, att: Attempt, result: dict[str, Any], phase: str, stats: _PatternStats
    ) -> Decision:
        s = self.settings
        category = att.category or "unknown"
        if not s.retry:
            return Decision(False, reason="retries are off (no --dtf-retry)")
        if s.peer:
            return Decision(False, reason=f"left to {s.peer}, which retries this run")
        if self.dist_each:
            return Decision(False, reason="--dist each runs every test on every worker: not retried")
        if phase == "teardown":
            return Decision(False, reason="teardown failures are not retried: the test body ran")
        if stats.tripped:  # the breaker's verdict explains every test of its pattern alike
            return Decision(False, reason=self._breaker_reason(att.pattern, stats))
        if not result.get("retry"):
            policy = self.handler.policy_for(result["category"])
            if policy.max_retries == 0 or not _policy_retries(policy, result["category"]):
                return Decision(False, reason=f"{category} is not retried")
            used = att.attempt - 1
            return Decision(False, reason=f"{category}: {used} of {policy.max_retries} retries used")
        if s.max_retries is not None and att.attempt > s.max_retries:
            return Decision(False, reason=f"--dtf-max-retries {s.max_retries} reached")
        budget = self.ledger.retry_budget
        if budget is not None and self.ledger.retries_used >= budget:
            return Decision(False, reason=f"retry budget of {budget} used up")
        if category in HARDWARE_CATEGORIES and not self._hardware_retry_possible(nodeid, att):
            return Decision(False, reason=f"{category}: no other worker has the hardware")
        delay = float(result.get("retry_delay") or 0.0)
        return Decision(True, delay=delay, reason=f"{category}: retry {att.attempt}")

    def _hardware_retry_possible(self, nodeid: str, att: Attempt) -> bool:
        assert self.dispatcher is not None
        return bool(self.dispatcher.other_workers(att.node, self.requirement(nodeid))) or bool(
            self.fallback(nodeid)
        )

    def fallback(self, nodeid: str) -> tuple[str, ...]:
        info = self.requirements.get(nodeid) or {}
        return tuple(info.get("fallback") or ())

    def _request(self, nodeid: str, att: Attempt, decision: Decision) -> RetryRequest:
        req = RetryRequest(
            nodeid=nodeid,
            attempt=att.attempt + 1,
            delay=decision.delay,
            failed_on=att.node,
            hardware=self.requirement(nodeid),
        )
        category = att.category or ""
        if category in NODE_SPECIFIC:
            req.avoid.add(att.node)
        else:
            req.prefer_not.add(att.node)
        if category in NODE_SPECIFIC | PREFER_OTHER:
            # a node or network problem may be the whole host's: other hosts first
            req.prefer_not |= self._same_host(att.node)
        for action in att.actions:
            kind = action.get("kind")
            if kind == "avoid_node":
                req.avoid.add(str(action.get("node")))
            elif kind == "prefer_other_node":
                req.prefer_not.add(str(action.get("node")))
            elif kind in ("require_hardware", "prefer_hardware") and action.get("hardware"):
                req.hardware = tuple(action["hardware"])
            elif kind == "scale_timeout":
                req.timeout_factor = max(req.timeout_factor, float(action.get("factor") or 1.0))
        if (
            category in HARDWARE_CATEGORIES
            and self.dispatcher is not None
            and not self.dispatcher.other_workers(att.node, req.hardware)
            and self.fallback(nodeid)
        ):
            req.hardware = self.fallback(nodeid)
        return req

    def _same_host(self, node: str) -> set[str]:
        host = self.ledger.node(node).host
        if host in (None, "localhost"):
            return set()
        return {n for n, rec in self.ledger.nodes.items() if rec.host == host}

    def _act(self, att: Attempt, decision: Decision) -> None:
        """Execute the engine's structured recovery actions."""
        assert self.dispatcher is not None
        for action in att.actions:
            kind = action.get("kind")
            if kind == "mark_unavailable" and action.get("node") and action.get("hardware"):
                pair = (str(action["node"]), str(action["hardware"]))
                self.ledger.unavailable.add(pair)
                self.dispatcher.mark_unavailable(*pair)
            elif kind == "quarantine_node" and action.get("node"):
                self._quarantine(str(action["node"]), str(action.get("reason") or "engine"))

    def _quarantine(self, node: str, reason: str) -> None:
        """Quarantine ``node``, unless that leaves fewer than half of the workers."""
        rec = self.ledger.node(node)
        if rec.quarantined or self.dispatcher is None:
            return
        remaining = self.dispatcher.other_workers(node)
        if not remaining:
            return  # nowhere to move its work (one process, or the last worker)
        pool = remaining + 1 + sum(1 for n in self.ledger.nodes.values() if n.quarantined and n.id != node)
        if not evidence.leaves_half(remaining, pool):
            rec.quarantine_declined = (
                f"{reason}; quarantining it would leave {remaining} of {pool} workers, fewer than half"
            )
            return
        rec.quarantined = True
        rec.quarantine_reason = reason
        rec.quarantine_declined = None
        self.dispatcher.quarantine(node)

    def _recovered(self, nodeid: str, att: Attempt) -> None:
        """A flaky test: its pattern is not systemic; its failing node may be."""
        failed = [a for a in self.ledger.test(nodeid).attempts if a.failed]
        for a in failed:
            stats = self.breaker.get(self._breaker_key(nodeid, a))
            if stats is not None:
                stats.recovered += 1
        failed_nodes = {a.node for a in failed}
        if att.node not in failed_nodes:
            for a in failed:
                self.suspects.setdefault(a.node, {})[nodeid] = (a.pattern, a.category)
            for node in failed_nodes:
                self._weigh_quarantine(node)

    def _weigh_quarantine(self, node: str) -> None:
        """Quarantine ``node`` on evidence that points at it (breaker.judge), or say why not."""
        rec = self.ledger.node(node)
        if rec.quarantined:
            return
        threshold = self.settings.quarantine_threshold
        only = self._node_only(node)
        verdict = evidence.judge(
            node,
            node_scoped_tests=self._node_scoped(node),
            only_here=only,
            first_attempts=self._first_attempts() if len(only) >= threshold else {},
            threshold=threshold,
        )
        if verdict.quarantine:
            self._quarantine(node, verdict.reason)
        elif verdict.reason:
            rec.quarantine_declined = verdict.reason

    def _node_scoped(self, node: str) -> dict[str, str | None]:
        """Tests that failed on ``node`` with a node-scoped category (resource, hardware,
        worker, system) and passed elsewhere: evidence against the worker."""
        return {
            nodeid: category
            for nodeid, (_, category) in self.suspects.get(node, {}).items()
            if evidence.node_scoped(category)
        }

    def _node_only(self, node: str) -> dict[str, str | None]:
        """Tests that failed on ``node`` and passed elsewhere, with an error pattern seen
        on no other worker and a category that is not node-scoped: evidence against the
        worker only if its failure rate is significantly higher (breaker.judge).
        (Errors that strike every worker alike, a flaky server say, are none.)"""
        return {
            nodeid: category
            for nodeid, (pattern, category) in self.suspects.get(node, {}).items()
            if not evidence.node_scoped(category) and self.pattern_nodes.get(pattern, set()) <= {node}
        }

    def _first_attempts(self) -> dict[str, tuple[int, int]]:
        """worker -> (first attempts it ran, how many failed): xdist placed them, not dtf."""
        out: dict[str, tuple[int, int]] = {}
        for rec in self.ledger:
            if rec.attempts:
                first = rec.attempts[0]
                ran, failed = out.get(first.node, (0, 0))
                out[first.node] = (ran + 1, failed + first.failed)
        return out

    # -- the pattern breaker --------------------------------------------------
    # A pattern seen in several tests is probed like a half-open circuit
    # breaker: at most breaker_min_failed_retries of its retries are out at
    # once; the rest wait until a probe passes (release them) or enough
    # probes fail (trip: they fail without running).
    def _probing(self, stats: _PatternStats) -> bool:
        s = self.settings
        return (
            len(stats.tests) >= s.breaker_min_tests
            and not stats.recovered
            and stats.outstanding >= s.breaker_min_failed_retries
        )

    def _release(self, stats: _PatternStats) -> None:
        assert self.dispatcher is not None
        while stats.held and not stats.tripped and not self._probing(stats):
            stats.outstanding += 1
            self.dispatcher.submit(stats.held.pop(0))

    def _retry_resolved(self, nodeid: str) -> None:
        """The latest retry of ``nodeid`` has a result: its pattern may send the next."""
        attempts = self.ledger.test(nodeid).attempts
        if len(attempts) < 2:
            return
        stats = self.breaker.get(self._breaker_key(nodeid, attempts[-2]))
        if stats is not None:
            stats.outstanding = max(0, stats.outstanding - 1)
            self._release(stats)

    def _breaker_reason(self, pattern: str | None, stats: _PatternStats) -> str:
        """The breaker's message for a pattern: the numbers of the moment it tripped."""
        if stats.reason:
            return stats.reason
        return (
            f"pattern {pattern} is systemic: it failed in {len(stats.tests)} tests and "
            f"{stats.failed_retries} retries did not help, so the breaker stopped its retries"
        )

    def _check_breaker(self, key: str, stats: _PatternStats) -> None:
        s = self.settings
        pattern = stats.pattern
        if (
            stats.tripped
            or pattern is None
            or stats.recovered
            or len(stats.tests) < s.breaker_min_tests
            or stats.failed_retries < s.breaker_min_failed_retries
        ):
            return
        stats.tripped = True
        reason = stats.reason = self._breaker_reason(pattern, stats)
        cancelled = []
        assert self.dispatcher is not None
        for request in stats.held:  # never sent: they wait for the probes' verdict
            cancelled.append(self._cancel(request.nodeid, reason))
        stats.held.clear()
        for nodeid in sorted(stats.tests):  # sent, still waiting out their delay
            attempts = self.ledger.test(nodeid).attempts
            if (
                nodeid in self.waiting
                and attempts
                and self._breaker_key(nodeid, attempts[-1]) == key
                and self.dispatcher.cancel(nodeid)
            ):
                cancelled.append(self._cancel(nodeid, reason))
        self.ledger.breaker_trips.append({"pattern": pattern, "reason": reason, "tests": cancelled})

    def retry_dispatched(self, nodeid: str) -> None:
        """The retry of ``nodeid`` was sent to a worker now (for the reports)."""
        attempts = self.ledger.test(nodeid).attempts
        if attempts and attempts[-1].decision is not None:
            attempts[-1].decision.dispatched = time.time()

    def _cancel(self, nodeid: str, reason: str) -> str:
        """A promised retry will not run: the test fails now (a setup error stays an
        error), saying why."""
        last = self.ledger.test(nodeid).attempts[-1]
        self.waiting.discard(nodeid)
        outcome = "failed" if last.outcome == "failed" else "error"
        self.fail_final(nodeid, outcome, f"retry cancelled: {reason}", last)
        if last.decision is not None:
            last.decision.reason += f"; cancelled: {reason}"
        return nodeid

    # -- final outcomes the controller makes up itself --------------------------
    def retry_unplaceable(self, nodeid: str, reason: str) -> None:
        """A promised retry can no longer be placed: the test fails, saying why."""
        self.waiting.discard(nodeid)
        rec = self.ledger.test(nodeid)
        last = rec.attempts[-1] if rec.attempts else None
        outcome = "failed" if last is None or last.outcome == "failed" else "error"
        self.fail_final(nodeid, outcome, f"retry could not run: {reason}", last)

    def fail_final(
        self, nodeid: str, outcome: str, reason: str, last: Attempt | None = None
    ) -> None:
        """Give ``nodeid`` its final ``outcome`` with a synthetic report saying why."""
        text = reason
        if last is not None and last.longrepr:
            first = last.longrepr.strip().splitlines()[-1][:300] if last.longrepr.strip() else ""
            text = f"{reason}\nlast attempt ({last.node}, attempt {last.attempt}): {first}"
        crashed = self.crashed_on.get(nodeid)
        if crashed:
            text += f"\nit took down {len(crashed)} worker(s): {', '.join(crashed)}"
        if last is not None:
            rec = self.ledger.test(nodeid)
            if last.decision is not None and last.decision.retry and rec.attempts[-1] is last:
                # its retry was promised and never ran: no retry used, no "rerun" counted
                last.decision.retry = False
                self.ledger.retries_used -= 1
                self._uncount(nodeid, ("rerun",), keep=len(rec.attempts) - 1)
            if last.call_passed and outcome != "passed":
                self._uncount(nodeid, ("passed", "flaky"), keep=0)  # counted once: as its final
        self.ledger.finalize(nodeid, outcome, reason)
        self.emit(nodeid, "skipped" if outcome == "skipped" else "failed", text,
                  when="call" if outcome in ("failed", "skipped") else "setup")

    def _uncount(self, nodeid: str, categories: tuple[str, ...], keep: int) -> None:
        """Take back from the terminal's counts the reports of ``nodeid`` in ``categories``
        beyond its first ``keep``: the final line counts what the reports count."""
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        stats = getattr(tr, "stats", None)
        if not isinstance(stats, dict):
            return
        for category in categories:
            reports = stats.get(category)
            if not reports:
                continue
            mine = [r for r in reports if getattr(r, "nodeid", None) == nodeid]
            if category != "rerun":
                mine = [r for r in mine if getattr(r, "when", None) == "call"]
            drop = {id(r) for r in mine[keep:]}
            if drop:
                reports[:] = [r for r in reports if id(r) not in drop]
                if not reports:
                    del stats[category]

    def emit(self, nodeid: str, outcome: str, text: str, when: str = "call") -> None:
        """Log a report the controller made up (not run, cancelled, skipped)."""
        fspath, _, domain = nodeid.partition("::")
        location = self.locations.get(nodeid, (fspath, None, domain.replace("::", ".")))
        longrepr: Any = text
        if outcome == "skipped":
            longrepr = (fspath, 0, f"Skipped: {text}")
        hook = self.config.hook
        hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
        for phase, phase_outcome in ((when, outcome), ("teardown", "passed")):
            rep = pytest.TestReport(
                nodeid=nodeid,
                location=location,
                keywords={},
                outcome=phase_outcome,  # type: ignore[arg-type]
                longrepr=longrepr if phase == when else None,
                when=phase,  # type: ignore[arg-type]
            )
            rep.dtf_synthetic = True  # type: ignore[attr-defined]
            hook.pytest_runtest_logreport(report=rep)
        hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)

    def finish_unfinished(self, reason: str, outcome: str = "error", emit: bool = True) -> None:
        """Every collected test ends with exactly one outcome, even those never run.

        Not asked for retries or routing (or ``emit`` False: pytest stopped at a
        collection error, before any test ran), the run is pytest's and xdist's own:
        the ledger (and so the JSON report) records why, the terminal gets no report of ours.
        """
        if not self.settings.schedule or not emit:
            self._record_unfinished(reason, outcome)
            return
        for running in self.open.values():
            for att in running.values():
                # still running when the session ended: it was interrupted, not passed
                att.outcome, att.phase = "error", att.phase or "interrupted"
                att.decision = Decision(False, reason=f"interrupted: {reason}")
                att.finished = time.time()
        self.open.clear()
        for nodeid in self.ledger.unfinished():
            rec = self.ledger.test(nodeid)
            if rec.attempts:
                last = rec.attempts[-1]
                why = "its retry never ran: " + reason if nodeid in self.waiting else reason
                if last.decision is not None and last.decision.reason.startswith("interrupted"):
                    why = last.decision.reason
                self.fail_final(nodeid, "failed" if last.outcome == "failed" else "error", why, last)
            else:
                self.fail_final(nodeid, outcome, f"not run: {reason}")
        self.waiting.clear()


    def _record_unfinished(self, reason: str, outcome: str) -> None:
        for running in self.open.values():
            for nodeid, att in running.items():
                att.outcome, att.phase = "error", att.phase or "interrupted"
                att.finished = time.time()
                self.ledger.finalize(nodeid, "error", f"interrupted: {reason}")
        self.open.clear()
        for nodeid in self.ledger.unfinished():
            self.ledger.finalize(nodeid, outcome, f"not run: {reason}")


def _policy_retries(policy: Any, category: ErrorCategory) -> bool:
    skip = getattr(policy, "categories_to_skip", None) or ()
    return category not in skip


def _teardown_error(att: Attempt, report: pytest.TestReport) -> dict[str, Any]:
    """The error record of a teardown that failed after the attempt had failed already."""
    return report.__dict__.get("dtf_error") or records.from_longrepr(
        records.safe_str(report.longrepr, records.MAX_TRACEBACK), phase="teardown", worker=att.node
    )


def _lost(report: pytest.TestReport) -> bool:
    """A crash report for a worker that went silent, not one that died."""
    error = report.__dict__.get("dtf_error") or {}
    return error.get("type") == records.WORKER_LOST

