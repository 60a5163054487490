"""The history's values: one run as written, and one test's aggregate as read.

``RunRecord`` is what a store writes (built by ``ingest.run_from_report`` from a
JSON report, or later by the plugin from its ledger); ``TestAggregate`` is the
per-test row the store keeps up to date at write time and returns from
``read_tests()``. Outcome codes in ``TestAggregate.recent``: ``P`` passed,
``K`` flaky (failed, then passed on a retry), ``F`` failed, ``E`` error,
``S`` skipped; oldest first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from operator import attrgetter
from typing import Any, final

__all__ = [
    "MESSAGE_LIMIT",
    "OUTCOME_CODES",
    "AttemptRecord",
    "QuarantineEvent",
    "RunRecord",
    "TestAggregate",
    "TestIndex",
    "TestResult",
]

# messages are stored cut to this many characters
MESSAGE_LIMIT = 500

OUTCOME_CODES = {"passed": "P", "flaky": "K", "failed": "F", "error": "E", "skipped": "S"}


def cut(message: str | None, limit: int = MESSAGE_LIMIT) -> str | None:
    """The message cut to ``limit`` characters (an ellipsis marks the cut)."""
    if message is None or len(message) <= limit:
        return message
    return message[: limit - 1] + "…"


@final
class AttemptRecord:
    """One attempt of one test in one run, as the history keeps it (no environment values)."""

    __slots__ = (
        "attempt", "category", "duration", "fingerprint", "hardware", "host", "message",
        "outcome", "worker",
    )

    def __init__(
        self,
        attempt: int,
        outcome: str,
        *,
        category: str | None = None,
        fingerprint: str | None = None,
        worker: str | None = None,
        host: str | None = None,
        hardware: str | None = None,
        duration: float = 0.0,
        message: str | None = None,
    ) -> None:
        self.attempt = attempt
        self.outcome = outcome
        self.category = category
        self.fingerprint = fingerprint
        self.worker = worker
        self.host = host
        self.hardware = hardware
        self.duration = duration
        self.message = cut(message)


@final
class TestResult:
    """One test's final outcome in one run, with its attempts."""

    __test__ = False  # not a pytest test class
    __slots__ = ("attempts", "duration", "nodeid", "outcome")

    def __init__(
        self,
        nodeid: str,
        outcome: str,
        duration: float = 0.0,
        attempts: tuple[AttemptRecord, ...] = (),
    ) -> None:
        if outcome not in OUTCOME_CODES:
            raise ValueError(f"unknown outcome {outcome!r} for {nodeid}")
        self.nodeid = nodeid
        self.outcome = outcome
        self.duration = duration
        self.attempts = attempts


@final
class QuarantineEvent:
    """A quarantine decision (``quarantine``) or release (``release``) a run made."""

    __slots__ = ("decision", "nodeid", "reason")

    def __init__(self, nodeid: str, decision: str, reason: str) -> None:
        if decision not in ("quarantine", "release"):
            raise ValueError(f"unknown quarantine decision {decision!r}")
        self.nodeid = nodeid
        self.decision = decision
        self.reason = reason


@final
class RunRecord:
    """One session as the history writes it, in one transaction, once per ``run_id``.

    ``start`` is epoch seconds; ``label`` the run label (git commit, or
    ``--dtf-run-label``) or None; ``source`` where it came from (``pytest``,
    or the report file it was ingested from); ``patterns`` maps a pattern
    fingerprint to its (category, template).
    """

    __slots__ = ("label", "patterns", "quarantine", "run_id", "source", "start", "tests")

    def __init__(
        self,
        run_id: str,
        start: float,
        tests: tuple[TestResult, ...],
        *,
        label: str | None = None,
        source: str | None = None,
        patterns: dict[str, tuple[str | None, str]] | None = None,
        quarantine: tuple[QuarantineEvent, ...] = (),
    ) -> None:
        self.run_id = run_id
        self.start = start
        self.tests = tests
        self.label = label
        self.source = source
        self.patterns = patterns or {}
        self.quarantine = quarantine


@final
class TestAggregate:
    """One test's history folded into one row; ``score.fold`` makes the next one.

    Counts are of runs (final outcomes). ``flip_weight`` / ``weight`` are the
    decayed sums behind ``score`` (see ``score``); ``last_status`` is ``pass``,
    ``fail`` or None (never ran but skipped). ``fail_since_*`` name the run
    that began the current streak of failing runs (``fail_streak`` long; None
    when the last run passed). ``recent`` holds the last ``RECENT`` outcome
    codes, oldest first.
    """

    __test__ = False
    __slots__ = (
        "duration_mean", "errors", "fail_since_label", "fail_since_run_id", "fail_since_start",
        "fail_streak", "failed", "flaky", "flip_weight", "last_failure_label",
        "last_failure_run_id", "last_failure_start", "last_label", "last_outcome",
        "last_run_id", "last_start", "last_status", "nodeid", "passed", "recent", "runs",
        "score", "skipped", "weight",
    )

    # the column order of the store's ``tests`` table and of __init__
    FIELDS = (
        "nodeid", "runs", "passed", "failed", "flaky", "skipped", "errors", "flip_weight",
        "weight", "score", "last_status", "last_outcome", "last_run_id", "last_start",
        "last_label", "last_failure_run_id", "last_failure_start", "last_failure_label",
        "fail_since_run_id", "fail_since_start", "fail_since_label", "fail_streak", "recent",
        "duration_mean",
    )

    def __init__(
        self,
        nodeid: str,
        runs: int = 0,
        passed: int = 0,
        failed: int = 0,
        flaky: int = 0,
        skipped: int = 0,
        errors: int = 0,
        flip_weight: float = 0.0,
        weight: float = 0.0,
        score: float = 0.0,
        last_status: str | None = None,
        last_outcome: str | None = None,
        last_run_id: str | None = None,
        last_start: float | None = None,
        last_label: str | None = None,
        last_failure_run_id: str | None = None,
        last_failure_start: float | None = None,
        last_failure_label: str | None = None,
        fail_since_run_id: str | None = None,
        fail_since_start: float | None = None,
        fail_since_label: str | None = None,
        fail_streak: int = 0,
        recent: str = "",
        duration_mean: float = 0.0,
    ) -> None:
        self.nodeid = nodeid
        self.runs = runs
        self.passed = passed
        self.failed = failed
        self.flaky = flaky
        self.skipped = skipped
        self.errors = errors
        self.flip_weight = flip_weight
        self.weight = weight
        self.score = score
        self.last_status = last_status
        self.last_outcome = last_outcome
        self.last_run_id = last_run_id
        self.last_start = last_start
        self.last_label = last_label
        self.last_failure_run_id = last_failure_run_id
        self.last_failure_start = last_failure_start
        self.last_failure_label = last_failure_label
        self.fail_since_run_id = fail_since_run_id
        self.fail_since_start = fail_since_start
        self.fail_since_label = fail_since_label
        self.fail_streak = fail_streak
        self.recent = recent
        self.duration_mean = duration_mean

    def copy(self) -> TestAggregate:
        """A copy to fold into (aggregates read from the store are never changed in place)."""
        return TestAggregate(*_ROW(self))

    def as_row(self) -> tuple[Any, ...]:
        """The values in ``FIELDS`` order (``__init__``'s)."""
        return _ROW(self)

    def to_state(self) -> str:
        """Every field but the nodeid, packed as the store's ``tests.state`` (a JSON array)."""
        return json.dumps(self.as_row()[1:], separators=(",", ":"))

    @classmethod
    def from_state(cls, nodeid: str, state: str) -> TestAggregate:
        """The aggregate ``to_state`` packed; ValueError if the text is not one."""
        values = json.loads(state)
        if not isinstance(values, list) or len(values) != len(cls.FIELDS) - 1:
            raise ValueError(f"not an aggregate of {nodeid}")
        return cls(nodeid, *values)

    def __repr__(self) -> str:
        return f"<TestAggregate {self.nodeid} runs={self.runs} score={self.score:.3f}>"


# every field at C speed (a fold copies the aggregate once per test per run)
_ROW = attrgetter(*TestAggregate.FIELDS)


@final
class TestIndex(Mapping[str, TestAggregate]):
    """Every test the history knows, by nodeid, as ``read_tests()`` returns it.

    Whether a nodeid is known (``in``), and each test's score and mean
    duration (``score``, ``duration``), come from the one query at start. A
    test's full ``TestAggregate`` (for its annotations) is loaded from the
    store when first asked for, so the store must still be open then.
    """

    __test__ = False
    __slots__ = ("_aggs", "_load", "_rows")

    def __init__(
        self,
        rows: dict[str, tuple[str, float, float]],
        load: Callable[[str], TestAggregate | None],
    ) -> None:
        # nodeid -> (nodeid, score, mean duration)
        self._rows = rows
        self._load = load
        self._aggs: dict[str, TestAggregate] = {}

    def __getitem__(self, nodeid: str) -> TestAggregate:
        agg = self._aggs.get(nodeid)
        if agg is None:
            if nodeid not in self._rows:
                raise KeyError(nodeid)
            loaded = self._load(nodeid)
            if loaded is None:  # forgotten since the index was read
                raise KeyError(nodeid)
            agg = self._aggs[nodeid] = loaded
        return agg

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, nodeid: object) -> bool:
        return nodeid in self._rows

    def score(self, nodeid: str) -> float:
        """The test's flakiness score; KeyError for a test the history has not seen."""
        return self._rows[nodeid][1]

    def duration(self, nodeid: str) -> float:
        """The test's mean duration (seconds, over its runs not skipped); KeyError if unseen."""
        return self._rows[nodeid][2]
