"""The one ledger: every attempt of every test, recorded once on the controller.

The terminal summary, the JSON report and JUnit all read this ledger; none of
them keeps counts of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, final

# Final outcomes a test can end with.
FINAL_OUTCOMES = ("passed", "failed", "skipped", "flaky", "error")


@final
@dataclass(slots=True)
class Decision:
    """What the controller decided about one failed attempt."""

    retry: bool
    delay: float = 0.0
    reason: str = ""
    due: float | None = None  # epoch time the retry became due
    dispatched: float | None = None  # epoch time it was sent to a worker
    avoid: list[str] = field(default_factory=list)  # workers the retry must not run on
    prefer_not: list[str] = field(default_factory=list)  # workers it runs on only if need be

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"retry": self.retry, "delay": round(self.delay, 3), "reason": self.reason}
        if self.retry:
            out["avoid"] = list(self.avoid)
            out["prefer_not"] = list(self.prefer_not)
        if self.due is not None:
            out["due"] = self.due
        if self.dispatched is not None:
            out["dispatched"] = self.dispatched
        return out


@final
@dataclass(slots=True)
class Attempt:
    """One run of one test on one worker (setup + call + teardown)."""

    attempt: int
    node: str
    host: str | None = None
    hardware: list[str] = field(default_factory=list)
    # passed / failed / error / skipped for this attempt alone ("failed" in
    # the call phase, "error" in setup/teardown or a crash).
    outcome: str = "passed"
    phase: str | None = None
    category: str | None = None
    rule: str | None = None
    error: dict[str, Any] | None = None
    longrepr: str | None = None
    duration: float = 0.0
    decision: Decision | None = None
    actions: Sequence[dict[str, Any]] = ()  # set by the decision; no list per passing attempt
    pattern: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    call_passed: bool = False  # the test body passed (its teardown may still fail)

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "error")

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "node": self.node,
            "host": self.host,
            "hardware": list(self.hardware),
            "outcome": self.outcome,
            "phase": self.phase,
            "category": self.category,
            "rule": self.rule,
            "error": self.error,
            "duration": round(self.duration, 6),
            "decision": self.decision.to_dict() if self.decision else None,
            "actions": list(self.actions),
            "pattern": self.pattern,
            "started": self.started,
            "finished": self.finished,
        }


@final
@dataclass(slots=True)
class TestRecord:
    """Every attempt of one collected test and its one final outcome."""

    __test__ = False  # not a pytest test class

    nodeid: str
    attempts: list[Attempt] = field(default_factory=list)
    final: str | None = None
    reason: str | None = None

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1)

    @property
    def failed_attempts(self) -> list[Attempt]:
        return [a for a in self.attempts if a.failed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "outcome": self.final,
            "reason": self.reason,
            "attempts": [a.to_dict() for a in self.attempts],
        }


@final
@dataclass(slots=True)
class NodeRecord:
    """A worker as the controller saw it."""

    id: str
    host: str | None = None
    hardware: list[str] = field(default_factory=list)
    gpus: str | None = None  # CUDA_VISIBLE_DEVICES given by --dtf-gpus-per-worker
    crashes: int = 0
    quarantined: bool = False
    quarantine_reason: str | None = None
    lost: bool = False
    lost_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "hardware": list(self.hardware),
            "gpus": self.gpus,
            "crashes": self.crashes,
            "quarantined": self.quarantined,
            "quarantine_reason": self.quarantine_reason,
            "lost": self.lost,
            "lost_reason": self.lost_reason,
        }


@final
class Ledger:
    """All tests, attempts, nodes and run-level counters of one session."""

    def __init__(self, retry_budget: int | None = None) -> None:
        self.tests: dict[str, TestRecord] = {}
        self.nodes: dict[str, NodeRecord] = {}
        self.retry_budget = retry_budget
        self.retries_used = 0
        # {"pattern": id, "reason": str, "tests": [nodeid, ...]} per breaker trip
        self.breaker_trips: list[dict[str, Any]] = []
        # (node, hardware) pairs a hardware error marked unavailable
        self.unavailable: set[tuple[str, str]] = set()
        self.lost_hosts: dict[str, str] = {}  # host -> reason
        self.started = time.time()
        self.finished: float | None = None

    # -- tests -------------------------------------------------------------
    def test(self, nodeid: str) -> TestRecord:
        rec = self.tests.get(nodeid)
        if rec is None:
            rec = self.tests[nodeid] = TestRecord(nodeid)
        return rec

    def collected(self, nodeids: list[str]) -> None:
        for nodeid in nodeids:
            self.test(nodeid)

    def new_attempt(
        self,
        nodeid: str,
        node: str,
        host: str | None = None,
        hardware: list[str] | None = None,
        **fields: Any,
    ) -> Attempt:
        rec = self.test(nodeid)
        att = Attempt(len(rec.attempts) + 1, node, host, [] if hardware is None else hardware, **fields)
        rec.attempts.append(att)
        return att

    def finalize(self, nodeid: str, outcome: str, reason: str | None = None) -> None:
        assert outcome in FINAL_OUTCOMES, outcome
        rec = self.test(nodeid)
        rec.final = outcome
        if reason:
            rec.reason = reason

    def unfinished(self) -> list[str]:
        return [n for n, r in self.tests.items() if r.final is None]

    def __iter__(self) -> Iterator[TestRecord]:
        return iter(self.tests.values())

    # -- nodes -------------------------------------------------------------
    def node(self, node_id: str) -> NodeRecord:
        rec = self.nodes.get(node_id)
        if rec is None:
            rec = self.nodes[node_id] = NodeRecord(node_id)
        return rec

    # -- counts ------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in FINAL_OUTCOMES}
        for rec in self.tests.values():
            if rec.final is not None:
                out[rec.final] += 1
        out["retries"] = self.retries_used
        return out

    def quiet(self) -> bool:
        """Nothing failed, nothing was retried, no worker or host was in trouble."""
        if self.retries_used or self.breaker_trips or self.unavailable or self.lost_hosts:
            return False
        if any(n.quarantined or n.lost for n in self.nodes.values()):
            return False
        return all(
            rec.final not in ("failed", "error", "flaky") and not any(a.failed for a in rec.attempts)
            for rec in self.tests.values()
        )

    def flaky(self) -> list[TestRecord]:
        return [r for r in self.tests.values() if r.final == "flaky"]
