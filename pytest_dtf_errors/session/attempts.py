"""Attempts: the only writer of the ledger.

Every phase report of every test comes here (``on_report``): it opens and
closes attempts, asks the engine and ``decide`` about each failed one, lets
the ``pytest_dtf_retry_decision`` hook edit the plan, hands a promised retry
to the dispatcher (the xdist scheduler or the in-process runner), and gives
every test its one final outcome, making up a report for the tests that end
without running (cancelled, unplaceable, never run). A repeated test
(``--dtf-repeat``, a new test's extra runs: ``session.repeats``) gets its
runs sent the same way, and its outcome once they have all ended.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import pytest

from .. import marks
from ..engine import record as records
from ..engine.categories import ErrorCategory
from ..engine.sticky import sticky_signature
from ..ledger import Attempt, Ledger
from ..settings import Settings
from .breaker import Evidence, PatternBreaker, PatternStats, breaker_key, leaves_half, node_scoped
from .decide import CategoryResult, Effect, Facts, decide, describe_where, effects
from .plan import RetryPlan
from .poison import PoisonBook, Poisoning, Role
from .repeats import Repeats, RepeatState, rate_text, runs_listed, tally
from .workers import WorkerBook

if TYPE_CHECKING:
    from ..engine.classify import Classification
    from ..engine.handler import DistributedErrorHandler
    from ..history.values import TestIndex

__all__ = ["DEFAULT_BUDGET_FLOOR", "Attempts", "Dispatcher", "default_budget"]

DEFAULT_BUDGET_FLOOR = 100
SUSPECTS = 10  # tests named as possible polluters of an order-dependent failure
DEFAULT_BUDGET_TEXT = f"default: half the collected tests, at least {DEFAULT_BUDGET_FLOOR}"


def default_budget(collected: int) -> int:
    """Suite-wide retry cap when none is given: half the suite, at least 100.

    A last resort against a storm of retries, not a rationing of them: the
    breaker stops systemic patterns, and a small suite's flaky tests all get
    their retries.
    """
    return max(DEFAULT_BUDGET_FLOOR, math.ceil(collected * 0.5))


class Dispatcher(Protocol):
    """Runs promised retries: the xdist scheduler or the in-process runner."""

    def add_retry(self, plan: RetryPlan) -> None:
        """Run ``plan.nodeid`` again when ``plan.due``, where the plan allows."""

    def cancel_retry(self, nodeid: str) -> bool:
        """Drop the waiting retry of ``nodeid``; True if one was waiting."""


class Attempts:
    """Records every attempt, decides every failed one, ends every test."""

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
        self.workers: WorkerBook = ledger.workers
        self.dispatcher: Dispatcher | None = None
        # every test the history knows (session.memory), or None without a history
        self.known: TestIndex | None = None
        # node -> nodeid -> the attempt running there (no key object per report)
        self.open: dict[str, dict[str, Attempt]] = {}
        self._node_names: dict[object, str] = {}  # xdist's worker object -> its id
        self.locations: dict[str, tuple[str, int | None, str]] = {}
        self.breaker = PatternBreaker(settings.breaker_min_tests, settings.breaker_min_failed_retries)
        self.evidence = Evidence(settings.quarantine_threshold)
        self.crashed_on: dict[str, list[str]] = {}  # nodeid -> workers it took down
        self.poison = PoisonBook()  # workers a sticky GPU error poisoned: culprits and victims
        ledger.poisonings = self.poison.poisonings
        self.waiting: set[str] = set()  # retries promised, not started
        self.repeats = Repeats(settings, self.workers)  # --dtf-repeat and new tests' extra runs
        # quarantine and restart take effect where the work is placed (the xdist side)
        self.on_quarantine: Callable[[str], None] | None = None
        self.on_restart: Callable[[str, str], None] | None = None
        self.track_completions = False  # dtf's scheduler asks which tests a dead worker had finished
        # --dist each: xdist runs every test once on every worker (each run an attempt)
        self.dist_each = ledger.runs_per_worker = getattr(config.option, "dist", None) == "each"

    @property
    def handler(self) -> DistributedErrorHandler:
        """The engine, built on the first failure: a run where all pass never pays for it."""
        if self._handler is None:
            self._handler = self._make_handler()
        return self._handler

    def patterns(self) -> list[dict[str, object]]:
        if self._handler is None:
            return []
        return [p.to_dict() for p in self._handler.error_aggregator.get_error_groups()]

    def collected(self, nodeids: Iterable[str]) -> None:
        ids = list(nodeids)
        self.ledger.collected(ids)
        self.repeats.start(ids, self.known, self.dispatcher is not None and not self.dist_each)
        if self.ledger.retry_budget is None:
            if self.settings.retry_budget is not None:
                self.ledger.retry_budget = self.settings.retry_budget
            else:
                self.ledger.retry_budget = default_budget(len(ids))
                self.ledger.budget_note = DEFAULT_BUDGET_TEXT

    # -- the report path ----------------------------------------------------
    def on_report(self, report: pytest.TestReport) -> bool:
        """Record one phase report; turn a retried failure into a "rerun".

        True when the report now has an outcome only dtf's words describe:
        rerun, flaky, a crash, a lost worker's pass.
        """
        # The hot path: three reports per test, nearly all of them passing.
        outcome: str = report.outcome  # "rerun" from pytest-rerunfailures
        if marks.marked(report, "dtf_synthetic"):
            return False
        nodeid = report.nodeid
        when: str = report.when  # "???": xdist's report for a crashed worker's test
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
                self._failed(att, report)
            elif when == "teardown" and att.error is not None:
                att.error["teardown_error"] = _teardown_error(att, report)
            if outcome == "failed" and att.decision is not None and att.decision.retry:
                report.outcome = "rerun"  # type: ignore[assignment]
                own = True
        elif outcome == "skipped":
            if att.outcome == "passed":
                att.outcome = "skipped"
        elif when == "call":
            att.call_passed = True
            if att.attempt > 1 and not self.dist_each:
                if self.repeats.active and self.repeats.repeating(nodeid):
                    if self.repeats.hides(nodeid):  # a new test's passing extra run: counted once
                        marks.mark(report, "dtf_hidden")
                        own = True
                elif self._failed_before(nodeid, att):
                    marks.mark(report, "dtf_flaky" if self._victim(nodeid) is None else "dtf_victim")
                    own = True
        if when == "teardown" or when == "???":
            running.pop(nodeid, None)
            self._close(nodeid, att)
            if when == "???":
                own = True  # xdist's crash report: an error, in dtf's words
            elif self.track_completions:
                # dtf's scheduler: done, whatever comes of the worker before xdist's completion event
                self.workers.node(node).unconfirmed.add(nodeid)
        return own

    def _node_name(self, report: pytest.TestReport) -> str:
        node = vars(report).get("node")  # xdist sets it on the controller
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
        att.decision = RetryPlan.final(
            att.nodeid, att.attempt, att.node,
            f"passed; worker {att.node} was lost before its teardown was reported",
        )
        report.outcome = "passed"
        marks.mark(report, "dtf_hidden")

    def _failed_before(self, nodeid: str, att: Attempt) -> bool:
        return any(a.failed for a in self.ledger.test(nodeid).attempts if a is not att)

    def _open(self, nodeid: str, node: str, report: pytest.TestReport) -> Attempt:
        """A new attempt of ``nodeid`` on ``node``, from its first report."""
        if nodeid not in self.locations:
            self.locations[nodeid] = report.location
        rec = self.workers.nodes.get(node)
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
        if self.repeats.active and self._close_repeated(nodeid, att):
            return
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
            role = self.poison.role_of(nodeid)  # a culprit's verdict is the test's reason
            reason = att.decision.reason if role is not None and att.decision is not None else None
            self.ledger.finalize(nodeid, "failed" if att.outcome == "failed" else "error", reason)
        elif att.outcome == "skipped":
            self.ledger.finalize(nodeid, "skipped")
        elif att.attempt > 1 and self._failed_before(nodeid, att):
            victim = self._victim(nodeid)
            if victim is None:
                self.ledger.finalize(nodeid, "flaky")
            else:  # its failure is explained: not flaky, and no evidence against the worker
                self.ledger.finalize(
                    nodeid, "passed", f"victim of {victim.culprit} ({victim.signature} poisoned "
                    f"{victim.worker}): passed on a fresh worker"
                )
            self._recovered(nodeid, att, weigh=victim is None)
            if victim is None:
                self._suspects(nodeid, att)
            self._retry_resolved(nodeid)
        else:
            self.ledger.finalize(nodeid, "passed")

    # -- repeated runs (session.repeats) ------------------------------------------
    def _close_repeated(self, nodeid: str, att: Attempt) -> bool:
        """A run of a repeated test (or a new test's first) ended: send the runs that may go
        now, end the test once every run has. False: the test ends as any other."""
        rep = self.repeats
        state = rep.states.get(nodeid)
        if state is None:
            kind = rep.kind(nodeid)
            if kind is None or att.outcome == "skipped":
                return False  # a skipped test is not run again
            if kind == "new":
                return self._new_first(nodeid, att)
            state = rep.begin_repeat(att)
        else:
            rep.ended(state, att.node)
        self._send_runs(state)
        return True

    def _send_runs(self, state: RepeatState) -> None:
        if not state.done:
            assert self.dispatcher is not None  # Repeats.start: no dispatcher, no repeats
            for plan in self.repeats.next_plans(state):
                self.dispatcher.add_retry(plan)
        if state.done:
            self._end_repeated(state)

    def _new_first(self, nodeid: str, att: Attempt) -> bool:
        """A new test's first run ended (its retries included): repeat a pass, fail a pass
        that needed a retry as new flaky."""
        rec = self.ledger.test(nodeid)
        if att.outcome == "passed" and att.attempt == 1:
            state, wanted = self.repeats.begin_new(att)
            if state is not None:
                self._send_runs(state)
                return True
            why = "the cap on new tests' share of the session's time" if wanted else (
                f"its first run took {att.duration:.0f} s (extra runs are for tests under 5 min)"
            )
            rec.repeat = tally("new", rec.attempts, 1, wanted=wanted, first_duration=att.duration,
                               note=f"not repeated: {why}")
            return False
        if att.outcome == "passed" and self._failed_before(nodeid, att) and self._victim(nodeid) is None:
            # retries must not hide a new test's flakiness
            rec.repeat = tally("new", rec.attempts, len(rec.attempts), repeats=0, wanted=0,
                               first_duration=rec.attempts[0].duration, note="failed, then passed on a retry")
            self._recovered(nodeid, att)
            self._suspects(nodeid, att)
            self._retry_resolved(nodeid)
            self.fail_final(nodeid, "failed", self._new_flaky_reason(rec.attempts), att)
            return True
        if att.failed:
            rec.repeat = tally("new", rec.attempts, len(rec.attempts), repeats=0, wanted=0,
                               first_duration=rec.attempts[0].duration, note="not repeated: it failed")
        return False

    @staticmethod
    def _new_flaky_reason(attempts: list[Attempt]) -> str:
        runs = [a for a in attempts if a.phase != "interrupted"]
        failed = sum(1 for a in runs if a.failed)
        return (
            f"new flaky: a test the history has not seen failed {failed} of its {len(runs)} runs "
            f"({runs_listed(runs)})"
        )

    def _end_repeated(self, state: RepeatState, cut: str | None = None, short: str = "error", emit: bool = True) -> None:
        """Every run of a repeated test ended (or ``cut``: the rest never will): its final outcome.

        A failed run fails the test: under ``--dtf-repeat`` as the failed runs
        showed it (every run is counted); a new test as "new flaky", counted once.
        Runs that were asked and never ran fail it too (``short``: error, or
        skipped when the session was stopped), saying why.
        """
        nodeid = state.nodeid
        rec = self.ledger.test(nodeid)
        runs = [a for a in rec.attempts if a.phase != "interrupted"]
        why = cut or state.lost_reason
        missing = len(runs) < state.planned
        note = f"{len(runs)} of {state.planned} runs ran: {why}" if missing and why else None
        rec.repeat = tally(state.kind, rec.attempts, state.planned, wanted=state.wanted,
                           first_duration=state.first_duration, note=note)
        repeat = rec.repeat
        failed, passed = repeat["failed"], repeat["passed"]
        if state.kind == "new" and failed:
            reason = self._new_flaky_reason(rec.attempts)
            self.ledger.finalize(nodeid, "failed", reason)
            # counted once, as the failed run that shows the attempts
            self._uncount(nodeid, ("passed",), keep=0)
            self._uncount(nodeid, ("failed",), keep=1)
            if state.failed_report is not None:
                state.failed_report.sections.append(("dtf: new flaky", reason))
            return
        head = f"--dtf-repeat {state.planned}" if state.kind == "repeat" else "new test"
        if failed:
            outcome = "failed" if any(a.outcome == "failed" for a in runs) else "error"
            self.ledger.finalize(nodeid, outcome, f"{head}: {failed} of {failed + passed} runs failed; {rate_text(repeat)}")
        elif missing:
            reason = f"{head}: only {note or f'{len(runs)} of {state.planned} runs ran'}"
            self.ledger.finalize(nodeid, short, reason)
            if emit:
                if state.kind == "new":
                    self._uncount(nodeid, ("passed",), keep=0)  # counted once, as its final
                self.emit(nodeid, "skipped" if short == "skipped" else "failed", reason,
                          when="call" if short in ("failed", "skipped") else "setup")
        elif not passed:
            self.ledger.finalize(nodeid, "skipped")
        else:
            self.ledger.finalize(nodeid, "passed", f"{head}: passed all {passed} runs")

    def _cut_repeats(self, reason: str, outcome: str, emit: bool) -> None:
        """The session ends with runs still asked: the tests they belong to end now."""
        for state in self.repeats.unfinished():
            if self.ledger.test(state.nodeid).final is None:
                self._end_repeated(state, reason, outcome, emit)

    # -- a failed attempt -------------------------------------------------------
    def _failed(self, att: Attempt, report: pytest.TestReport) -> None:
        """Record the failure, classify it, decide, and act on the plan."""
        nodeid = report.nodeid
        when: str = report.when
        phase = "crash" if when == "???" else when
        error = marks.error(report) or records.from_longrepr(
            records.safe_str(report.longrepr, records.MAX_TRACEBACK), phase=phase, worker=att.node
        )
        if phase == "crash" and att.call_passed and self.settings.schedule:
            # the test passed, then its worker died (in its teardown): the crash is the
            # attempt's outcome (retried as any crash), and the terminal's count of the
            # passed call is taken back: the test is counted once. Not asked for, xdist's
            # own count stands (the passed call and a failed crash). A repeated test's
            # other runs keep theirs: only this run's pass is taken back.
            keep = -1 if self.repeats.active and self.repeats.repeating(nodeid) else 0
            self._uncount(nodeid, ("passed", "flaky"), keep=keep)
        att.phase = phase
        # a crash is a failure, as xdist reports it; a setup or teardown failure an error
        att.outcome = "failed" if phase in ("call", "crash") else "error"
        att.error = error
        att.longrepr = records.safe_str(report.longrepr, records.MAX_TRACEBACK)
        result = self._classify(nodeid, att, error)
        stats = self._count(nodeid, att, error)
        role = self._poisoned(nodeid, att, error)
        facts = self._facts(nodeid, att, report, phase, stats, role)
        plan = decide(nodeid, att.attempt, att.node, result, facts)
        self.config.hook.pytest_dtf_retry_decision(plan=plan, error=error, config=self.config)
        if self.repeats.active:
            why = self.repeats.final_failure(nodeid)
            if why is not None:  # a repeat's run is a sample: retrying it would hide the failure
                plan.veto(why)
                state = self.repeats.states.get(nodeid)
                if state is not None and state.failed_report is None:
                    state.failed_report = report
        plan.promise()
        if plan.retry and plan.reason.endswith(f"retry {att.attempt}"):
            plan.reason += f", {describe_where(plan)}"
        att.decision = plan
        if not plan.retry:
            text = f"{att.category} (rule {att.rule}, pattern {att.pattern}): {plan.reason}"
            crashed = self.crashed_on.get(nodeid)
            if crashed:
                text += f"\nit took down {len(crashed)} worker(s): {', '.join(crashed)}"
            forensics = error.get("forensics")
            if forensics:
                text += f"\n{forensics}"
            report.sections.append(("dtf", text))
        for effect in effects(att.actions, crashed=phase == "crash"):
            self._carry_out(effect)
        if plan.retry:
            self.ledger.retries_used += 1
            self.waiting.add(nodeid)
            self._send(self.breaker.hold(stats, plan))
        else:
            self._send(self.breaker.release(stats))

    def _classify(self, nodeid: str, att: Attempt, error: records.ErrorRecord) -> CategoryResult:
        """The engine's word on the failure, written on the attempt."""
        hw = (error.get("hardware_context") or {}).get("hardware_type") or (
            att.hardware[0] if att.hardware else None
        )
        context: dict[str, object] = {
            "worker_id": att.node,
            "host": att.host,
            "hardware_type": hw,
            "attempt_count": att.attempt,
            "test_id": nodeid,
            "timeout": self._timeout(),
            "node_failures": len(self.evidence.node_scoped_tests(att.node)),
        }
        result = self.handler.handle_error(
            nodeid, error, context, classification=self._hook_classification(error, context)
        )
        category: ErrorCategory = result["category"]
        att.category = category.value
        att.rule = result.get("rule")
        att.pattern = result.get("pattern_id")
        recovery = result.get("recovery_action") or {}
        att.actions = list(recovery.get("actions") or [])
        policy = self.handler.policy_for(category)
        return CategoryResult(
            category.value,
            retry=bool(result.get("retry")),
            delay=float(result.get("retry_delay") or 0.0),
            actions=att.actions,
            max_retries=policy.max_retries,
            retried=category not in (getattr(policy, "categories_to_skip", None) or ()),
        )

    def _count(self, nodeid: str, att: Attempt, error: records.ErrorRecord) -> PatternStats:
        """The failure in the breaker's and the evidence's counts."""
        self.evidence.failed(att.pattern, att.node)
        if error.get("phase") == "crash":
            self.crashed_on.setdefault(nodeid, []).append(att.node)
            self.workers.node(att.node).crashes += 1
        key = self._breaker_key(att)
        stats = self.breaker.failed(key, att.pattern, nodeid)
        if att.attempt > 1 and not (self.repeats.active and self.repeats.repeating(nodeid)):
            self.breaker.retry_failed(stats)
            self._retry_resolved(nodeid)
        # before deciding: the failure that trips the breaker is itself not retried
        held = self.breaker.trip(stats)
        if held is not None:
            self._tripped(key, stats, held)
        return stats

    def _poisoned(self, nodeid: str, att: Attempt, error: records.ErrorRecord) -> Role | None:
        """A sticky GPU error: the worker's context is poisoned (by this test, the culprit,
        or earlier by another, whose victim this is). A newly poisoned worker gets no more
        tests and is replaced by a fresh process."""
        signature = sticky_signature(error) if att.category == "hardware_not_available" else None
        role = self.poison.failed(nodeid, att.node, signature)
        if role is not None and role.kind == "culprit":
            rec = self.workers.node(att.node)
            rec.poisoned = role.poisoning.signature
            if self.on_restart is not None:
                self.on_restart(att.node, f"{rec.poisoned} poisoned its GPU context ({nodeid})")
        return role

    def _victim(self, nodeid: str) -> Poisoning | None:
        """The poisoning that explains this test's failures, if it was only ever a victim."""
        poisoning = self.poison.victim_of.get(nodeid)
        return poisoning if poisoning is not None and nodeid not in self.poison.by_culprit else None

    def _facts(
        self, nodeid: str, att: Attempt, report: pytest.TestReport, phase: str, stats: PatternStats,
        poison: Role | None = None,
    ) -> Facts:
        s = self.settings
        peer_marked = s.peer_installed if marks.marked(report, "dtf_peer_marked") else None
        return Facts(
            self.workers,
            retry=s.retry,
            phase=phase,
            requirement=self.workers.requirement(nodeid),
            fallback=self.workers.fallback(nodeid),
            max_retries=s.max_retries,
            budget=self.ledger.retry_budget,
            retries_used=self.ledger.retries_used,
            tripped=self.breaker.reason(stats) if stats.tripped else None,
            peer=s.peer,
            peer_marked=peer_marked,
            dist_each=self.dist_each,
            poison=poison,
            fresh_workers=self.on_restart is not None,
        )

    def _hook_classification(self, error: records.ErrorRecord, context: dict[str, object]) -> Classification | None:
        decided = self.config.hook.pytest_dtf_classify(error=error, context=context, config=self.config)
        if decided is None:
            return None
        from ..engine.classify import Classification

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

    def _timeout(self) -> float | None:
        value = getattr(self.config.option, "timeout", None)
        try:
            return float(value) if value else None
        except (TypeError, ValueError):
            return None

    @staticmethod
    def _breaker_key(att: Attempt) -> str:
        error = att.error
        if error is None or error.get("phase") != "crash":
            return breaker_key(att.nodeid, att.pattern, False, None)
        return breaker_key(att.nodeid, att.pattern, True, error.get("signal") or error.get("exitcode"))

    # -- effects on workers -------------------------------------------------------
    def _carry_out(self, effect: Effect) -> None:
        if effect.kind == "mark_unavailable":
            self.workers.mark_unavailable(effect.node, effect.detail)
        elif effect.kind == "quarantine_node":
            self._quarantine(effect.node, effect.detail)
        elif effect.kind == "restart_worker" and self.on_restart is not None:
            self.on_restart(effect.node, effect.detail)

    def _quarantine(self, node: str, reason: str) -> None:
        """Quarantine ``node``, unless that leaves fewer than half of the workers."""
        rec = self.workers.node(node)
        if rec.quarantined or self.on_quarantine is None:
            return
        remaining = len(self.workers.candidates({node}))
        if not remaining:
            return  # nowhere to move its work (one process, or the last worker)
        pool = remaining + 1 + self.workers.quarantined_others(node)
        if not leaves_half(remaining, pool):
            rec.quarantine_declined = (
                f"{reason}; quarantining it would leave {remaining} of {pool} workers, fewer than half"
            )
            return
        self.workers.quarantine(node, reason)
        self.on_quarantine(node)

    def _recovered(self, nodeid: str, att: Attempt, weigh: bool = True) -> None:
        """A flaky test: its pattern is not systemic; its failing node may be."""
        failed = [a for a in self.ledger.test(nodeid).attempts if a.failed]
        for a in failed:
            self.breaker.recovered(self._breaker_key(a))
        if not weigh:
            return
        nodes = self.evidence.passed_elsewhere(nodeid, [(a.node, a.pattern, a.category) for a in failed], att.node)
        for node in sorted(nodes, key=[a.node for a in failed].index):
            self._weigh_quarantine(node)

    def _suspects(self, nodeid: str, passed: Attempt) -> None:
        """A failure that is not the worker's (not node-scoped) and passed on another worker
        may be pollution by a test that ran before it there: name those, nearest first."""
        rec = self.ledger.test(nodeid)
        for a in rec.attempts:
            if a.failed and a.node != passed.node and not node_scoped(a.category):
                tests = self.ledger.ran_before(a, SUSPECTS)
                if tests:
                    rec.suspects.append({"node": a.node, "attempt": a.attempt, "tests": tests})

    def _weigh_quarantine(self, node: str) -> None:
        """Quarantine ``node`` on evidence that points at it (breaker.judge), or say why not."""
        rec = self.workers.node(node)
        if rec.quarantined:
            return
        verdict = self.evidence.verdict(node, self._first_attempts)
        if verdict.quarantine:
            self._quarantine(node, verdict.reason)
        elif verdict.reason:
            rec.quarantine_declined = verdict.reason

    def _first_attempts(self) -> dict[str, tuple[int, int]]:
        """worker -> (first attempts it ran, how many failed): xdist placed them, not dtf."""
        out: dict[str, tuple[int, int]] = {}
        for rec in self.ledger:
            if rec.attempts:
                first = rec.attempts[0]
                ran, failed = out.get(first.node, (0, 0))
                out[first.node] = (ran + 1, failed + first.failed)
        return out

    # -- the pattern breaker's verdicts, carried out -----------------------------------
    def _send(self, plans: list[RetryPlan]) -> None:
        assert self.dispatcher is not None or not plans
        for plan in plans:
            self.dispatcher.add_retry(plan)  # type: ignore[union-attr]

    def _retry_resolved(self, nodeid: str) -> None:
        """The latest retry of ``nodeid`` has a result: its pattern may send the next."""
        attempts = self.ledger.test(nodeid).attempts
        if len(attempts) >= 2:
            self._send(self.breaker.resolved(self._breaker_key(attempts[-2])))

    def _tripped(self, key: str, stats: PatternStats, held: list[RetryPlan]) -> None:
        reason = stats.reason
        cancelled = [self._cancel(plan.nodeid, reason) for plan in held]  # never sent
        for nodeid in sorted(stats.tests):  # sent, still waiting out their delay
            attempts = self.ledger.test(nodeid).attempts
            if (
                nodeid in self.waiting
                and attempts
                and self._breaker_key(attempts[-1]) == key
                and self.dispatcher is not None
                and self.dispatcher.cancel_retry(nodeid)
            ):
                cancelled.append(self._cancel(nodeid, reason))
        self.ledger.breaker_trips.append({"pattern": stats.pattern, "reason": reason, "tests": cancelled})

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

    def add_forensics(self, nodeid: str, node: str, text: str) -> None:
        """What was learnt of a worker's death after the fact (a remote worker's replacement
        sent its predecessor's faulthandler file): onto the crash record of its attempt."""
        for att in reversed(self.ledger.test(nodeid).attempts):
            if att.node == node and att.error is not None and att.error.get("phase") == "crash":
                before = att.error.get("forensics")
                att.error["forensics"] = f"{before}\n{text}" if before else text
                return

    # -- final outcomes made up here ------------------------------------------------------
    def retry_unplaceable(self, nodeid: str, reason: str) -> None:
        """A promised retry can no longer be placed: the test fails, saying why."""
        state = self.repeats.states.get(nodeid) if self.repeats.active else None
        if state is not None:  # a repeat's run: this one and the rest will not run
            stop = self._stopping()
            self.repeats.unplaced(state, f"session stopped: {stop}" if stop else reason)
            if state.done:
                self._end_repeated(state, short="skipped" if stop else "error")
            return
        self.waiting.discard(nodeid)
        rec = self.ledger.test(nodeid)
        last = rec.attempts[-1] if rec.attempts else None
        outcome = "failed" if last is None or last.outcome == "failed" else "error"
        self.fail_final(nodeid, outcome, f"retry could not run: {reason}", last)

    def _stopping(self) -> str | None:
        """Why pytest is stopping the session (``-x``, ``--maxfail``), if it is: then the workers
        shut down and what was still to run cannot be placed."""
        session = self.config.pluginmanager.getplugin("session")
        stop = getattr(session, "shouldfail", None) or getattr(session, "shouldstop", None)
        return str(stop) if stop else None

    def fail_final(self, nodeid: str, outcome: str, reason: str, last: Attempt | None = None) -> None:
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
        beyond its first ``keep`` (-1: only its last): the final line counts what the reports count."""
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
        """Log a report made up here (not run, cancelled, skipped)."""
        fspath, _, domain = nodeid.partition("::")
        location = self.locations.get(nodeid, (fspath, None, domain.replace("::", ".")))
        longrepr: object = text
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
                longrepr=longrepr if phase == when else None,  # type: ignore[arg-type]
                when=phase,  # type: ignore[arg-type]
            )
            marks.mark(rep, "dtf_synthetic")
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
                att.decision = RetryPlan.final(att.nodeid, att.attempt, att.node, f"interrupted: {reason}")
                att.finished = time.time()
        self.open.clear()
        if self.repeats.active:
            self._cut_repeats(reason, outcome, emit=True)
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
        if self.repeats.active:
            self._cut_repeats(reason, outcome, emit=False)
        for nodeid in self.ledger.unfinished():
            self.ledger.finalize(nodeid, outcome, f"not run: {reason}")


def _teardown_error(att: Attempt, report: pytest.TestReport) -> records.ErrorRecord:
    """The error record of a teardown that failed after the attempt had failed already."""
    return marks.error(report) or records.from_longrepr(
        records.safe_str(report.longrepr, records.MAX_TRACEBACK), phase="teardown", worker=att.node
    )


def _lost(report: pytest.TestReport) -> bool:
    """A crash report for a worker that went silent, not one that died."""
    error = marks.error(report)
    return error is not None and error.get("type") == records.WORKER_LOST
