"""The one ledger: every attempt of every test, recorded once on the controller.

The terminal summary, the JSON report and JUnit all read this ledger; none of
them keeps counts of its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, final

from .session.workers import NodeRecord, WorkerBook

if TYPE_CHECKING:
    from .engine.record import ErrorRecord
    from .session.plan import RetryPlan
    from .session.poison import Poisoning

# Final outcomes a test can end with.
FINAL_OUTCOMES = ("passed", "failed", "skipped", "flaky", "error")


def slots_repr(record: Any) -> str:
    """``Name(field=value, ...)`` for a plain slotted record class."""
    fields = ", ".join(f"{name}={getattr(record, name)!r}" for name in type(record).__slots__)
    return f"{type(record).__name__}({fields})"


# The records are plain slotted classes, not dataclasses: a dataclass costs
# about half a millisecond to create at import, in every run.


@final
class Attempt:
    """One run of one test on one worker (setup + call + teardown)."""

    __slots__ = (
        "actions", "attempt", "call_passed", "category", "decision", "duration", "error",
        "finished", "hardware", "host", "longrepr", "node", "nodeid", "outcome", "pattern", "phase",
        "rule", "seq", "started",
    )

    def __init__(
        self,
        nodeid: str,
        attempt: int,
        node: str,
        host: str | None = None,
        hardware: list[str] | None = None,
        **fields: Any,
    ) -> None:
        self.nodeid = nodeid
        self.attempt = attempt
        self.node = node
        self.host = host
        # the node's list when it comes from the ledger: replaced, never changed in place
        self.hardware: list[str] = hardware if hardware is not None else []
        # passed / failed / error / skipped for this attempt alone ("failed" in
        # the call phase, "error" in setup/teardown or a crash).
        self.outcome = "passed"
        self.phase: str | None = None
        self.category: str | None = None
        self.rule: str | None = None
        self.error: ErrorRecord | None = None
        self.longrepr: str | None = None
        self.duration = 0.0
        self.decision: RetryPlan | None = None
        self.actions: Sequence[dict[str, Any]] = ()  # set by the decision; no list per passing attempt
        self.pattern: str | None = None
        self.started = time.time()
        self.finished: float | None = None
        self.call_passed = False  # the test body passed (its teardown may still fail)
        self.seq = 0  # its place among the attempts its worker ran (Ledger.ran_on)
        for name, value in fields.items():
            setattr(self, name, value)

    __repr__ = slots_repr

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
class TestRecord:
    """Every attempt of one collected test and its one final outcome."""

    __test__ = False  # not a pytest test class
    __slots__ = ("attempts", "final", "history", "nodeid", "quarantine", "reason", "repeat", "suspects")

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.attempts: list[Attempt] = []
        self.final: str | None = None
        self.reason: str | None = None
        # from the history (session.memory): {"kind", "text", "score", ...} for a failure
        self.history: dict[str, Any] | None = None
        # {"score", "reason", "since"} when the test is quarantined this run (session.memory)
        self.quarantine: dict[str, Any] | None = None
        # {"kind": "repeat" | "new", "runs", "passed", ...} when it ran extra times (session.repeats)
        self.repeat: dict[str, Any] | None = None
        # a failure that may be another test's doing: {"node", "attempt", "tests": ran before it there}
        self.suspects: list[dict[str, Any]] = []

    __repr__ = slots_repr

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
class Ledger:
    """All tests, attempts, nodes and run-level counters of one session."""

    def __init__(self, retry_budget: int | None = None, workers: WorkerBook | None = None) -> None:
        self.tests: dict[str, TestRecord] = {}
        self.workers = workers if workers is not None else WorkerBook()  # the reports read its records
        self.retry_budget = retry_budget
        self.budget_note: str | None = None  # how the budget was chosen, when it was not given
        # --dist each: a test's attempts are the workers' runs of it, not retries
        self.runs_per_worker = False
        self.retries_used = 0
        # {"pattern": id, "reason": str, "tests": [nodeid, ...]} per breaker trip
        self.breaker_trips: list[dict[str, Any]] = []
        self.poisonings: list[Poisoning] = []  # workers a sticky GPU error poisoned (session.poison)
        self.ran_on: dict[str, list[str]] = {}  # worker -> the tests it ran, in order
        self.run_id = uuid.uuid4().hex  # this session, as the JSON report and the history name it
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
        att = Attempt(nodeid, len(rec.attempts) + 1, node, host, hardware, **fields)
        rec.attempts.append(att)
        ran = self.ran_on.get(node)
        if ran is None:
            ran = self.ran_on[node] = []
        att.seq = len(ran)
        ran.append(nodeid)
        return att

    def ran_before(self, att: Attempt, limit: int) -> list[str]:
        """The tests its worker process ran before ``att``, nearest first, at most ``limit``."""
        ran = self.ran_on.get(att.node, [])
        return ran[max(0, att.seq - limit) : att.seq][::-1]

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

    # -- workers (WorkerBook owns them; the reports read them here) -----------
    @property
    def nodes(self) -> dict[str, NodeRecord]:
        return self.workers.nodes

    @property
    def unavailable(self) -> set[tuple[str, str]]:
        return self.workers.unavailable

    @property
    def lost_hosts(self) -> dict[str, str]:
        return self.workers.lost_hosts

    @property
    def exclusive_runs(self) -> list[tuple[str, str, float]]:
        return self.workers.exclusive_runs

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
        if self.poisonings or self.workers.exclusive_runs:
            return False
        if any(n.quarantined or n.quarantine_declined or n.lost for n in self.nodes.values()):
            return False
        for rec in self.tests.values():  # a plain loop: no generator per test
            if rec.final in ("failed", "error", "flaky"):
                return False
            for att in rec.attempts:
                if att.failed:
                    return False
        return True

    def flaky(self) -> list[TestRecord]:
        return [r for r in self.tests.values() if r.final == "flaky"]
