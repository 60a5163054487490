"""The pattern breaker and the quarantine evidence.

The breaker: a pattern seen in several tests is probed like a half-open
circuit breaker. At most ``min_failed_retries`` of its retries are out at
once; the rest wait until a probe passes (release them) or enough probes fail
(trip: they fail without running).

The evidence: does what failed on a worker point at the worker? Pure Python
(no pytest, no xdist), so the rules are tested on hand-computed cases. A
worker is quarantined only on evidence that points at it:

- node-scoped failures: at least ``threshold`` distinct tests failed on it
  with a resource, hardware, worker or system category and passed on another
  worker; or
- a failure rate significantly higher than the others': at least
  ``threshold`` distinct tests failed only there (with an error no other
  worker had) and passed elsewhere, AND a one-sided exact binomial test on
  first attempts says the worker's share of the run's failed first attempts
  is too large for its share of first attempts (p below 0.05 divided by the
  number of workers compared: the worst worker is the one tested, so the 5%
  is shared among them, Bonferroni). First attempts only: xdist placed them,
  while retries are placed away from the failing worker on purpose. The share
  is the worker's share of the first attempts run so far, or an equal share
  of the workers if that is larger: a worker slowed by its own failures runs
  fewer tests, which must not make its failures look rarer by chance.

And never when it would leave fewer than half of the pool's workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import final

from .plan import RetryPlan

__all__ = [
    "ALPHA", "NODE_SCOPED_FAMILIES", "Evidence", "PatternBreaker", "PatternStats", "Verdict",
    "binomial_tail", "breaker_key", "judge", "leaves_half", "node_scoped",
]

ALPHA = 0.05
# the families whose errors are about the machine a test ran on
NODE_SCOPED_FAMILIES = ("resource", "hardware", "worker", "system")


def node_scoped(category: str | None) -> bool:
    """A category whose errors point at the worker: resource_*, hardware_*, worker_*, system_*."""
    return bool(category) and str(category).split("_", 1)[0] in NODE_SCOPED_FAMILIES


def binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly (math.comb)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return min(1.0, sum(math.comb(n, i) * p**i * (1.0 - p) ** (n - i) for i in range(k, n + 1)))


def leaves_half(remaining: int, pool: int) -> bool:
    """Quarantining leaves ``remaining`` of ``pool`` workers: at least half of them?"""
    return pool > 0 and 2 * remaining >= pool


@final
class Verdict:
    """What the evidence says about one worker: quarantine it, or why not."""

    __slots__ = ("quarantine", "reason")

    def __init__(self, quarantine: bool, reason: str) -> None:
        self.quarantine = quarantine
        self.reason = reason  # "" when there is nothing worth saying

    def __repr__(self) -> str:
        return f"Verdict(quarantine={self.quarantine!r}, reason={self.reason!r})"


def judge(
    node: str,
    *,
    node_scoped_tests: Mapping[str, str | None],
    only_here: Mapping[str, str | None],
    first_attempts: Mapping[str, tuple[int, int]],
    threshold: int,
    alpha: float = ALPHA,
) -> Verdict:
    """The quarantine verdict on ``node``.

    ``node_scoped_tests``: test -> category of the tests that failed on
    ``node`` with a node-scoped category and passed on another worker. ``only_here``: test -> category
    of the tests that failed on ``node`` with an error no other worker had,
    and passed on another worker. ``first_attempts``: worker -> (first
    attempts run there, how many of them failed).
    """
    if len(node_scoped_tests) >= threshold:
        categories = ", ".join(sorted({str(c) for c in node_scoped_tests.values()}))
        return Verdict(
            True,
            f"{len(node_scoped_tests)} different tests failed on {node} with node-scoped errors "
            f"({categories}) and passed on other workers",
        )
    if len(only_here) < threshold:
        return Verdict(False, "")
    categories = ", ".join(sorted({str(c or "unknown") for c in only_here.values()}))
    head = (
        f"{len(only_here)} tests failed only on {node} and passed elsewhere ({categories}: "
        "not node-scoped)"
    )
    run_here, failed_here = first_attempts.get(node, (0, 0))
    run_all = sum(r for r, _ in first_attempts.values())
    failed_all = sum(f for _, f in first_attempts.values())
    compared = sum(1 for r, _ in first_attempts.values() if r) or 1
    level = alpha / compared
    share = max(run_here / run_all if run_all else 1.0, 1.0 / compared)
    p = binomial_tail(failed_all, failed_here, share)
    test = (
        f"{failed_here} of the run's {failed_all} failed first attempts were on {node}, whose share "
        f"of first attempts is {share:.0%}: one-sided binomial p={p:.3g}"
    )
    if p < level:
        return Verdict(True, f"{head}; {test} < {level:.3g}: a failure rate significantly higher than the others'")
    return Verdict(False, f"{head}; {test}, not below {level:.3g} (0.05 over {compared} workers)")


# -- the pattern breaker ------------------------------------------------------------


def breaker_key(nodeid: str, pattern: str | None, crash: bool, how: object) -> str:
    """The breaker's pattern of a failed attempt: the engine's pattern, except for a
    worker crash, which is its own per test and exit code or signal (``how``): crashes
    of different tests, or different crashes, are not one systemic pattern."""
    if not crash:
        return pattern or "?"
    return f"{pattern or '?'}|{nodeid}|{how}"


@final
class PatternStats:
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
        self.held: list[RetryPlan] = []  # retries waiting for the probes' verdict

    def __repr__(self) -> str:
        return f"PatternStats(pattern={self.pattern!r}, tests={len(self.tests)}, tripped={self.tripped})"


@final
class PatternBreaker:
    """Per pattern: hold retries while probes run, release them or trip.

    Every method that can let retries go returns them: the caller sends them.
    """

    def __init__(self, min_tests: int, min_failed_retries: int) -> None:
        self.min_tests = min_tests
        self.min_failed_retries = min_failed_retries
        self.stats: dict[str, PatternStats] = {}

    def failed(self, key: str, pattern: str | None, nodeid: str) -> PatternStats:
        """A failed attempt of ``nodeid`` with this pattern."""
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = PatternStats(pattern)
        stats.tests.add(nodeid)
        return stats

    def retry_failed(self, stats: PatternStats) -> None:
        stats.failed_retries += 1

    def resolved(self, key: str) -> list[RetryPlan]:
        """A retry sent for this pattern has a result: the next may go."""
        stats = self.stats.get(key)
        if stats is None:
            return []
        stats.outstanding = max(0, stats.outstanding - 1)
        return self.release(stats)

    def recovered(self, key: str) -> None:
        """A test of this pattern passed on a retry: the pattern is not systemic."""
        stats = self.stats.get(key)
        if stats is not None:
            stats.recovered += 1

    def hold(self, stats: PatternStats, plan: RetryPlan) -> list[RetryPlan]:
        """A promised retry: it waits its turn behind the probes."""
        stats.held.append(plan)
        return self.release(stats)

    def trip(self, stats: PatternStats) -> list[RetryPlan] | None:
        """Trip if enough retries failed and none helped: the held retries, to cancel;
        None when it does not trip now."""
        if (
            stats.tripped
            or stats.pattern is None
            or stats.recovered
            or len(stats.tests) < self.min_tests
            or stats.failed_retries < self.min_failed_retries
        ):
            return None
        stats.tripped = True
        stats.reason = self.reason(stats)
        held, stats.held = stats.held, []
        return held

    def reason(self, stats: PatternStats) -> str:
        """The breaker's message for a pattern: the numbers of the moment it tripped."""
        if stats.reason:
            return stats.reason
        return (
            f"pattern {stats.pattern} is systemic: it failed in {len(stats.tests)} tests and "
            f"{stats.failed_retries} retries did not help, so the breaker stopped its retries"
        )

    def _probing(self, stats: PatternStats) -> bool:
        return (
            len(stats.tests) >= self.min_tests
            and not stats.recovered
            and stats.outstanding >= self.min_failed_retries
        )

    def release(self, stats: PatternStats) -> list[RetryPlan]:
        out = []
        while stats.held and not stats.tripped and not self._probing(stats):
            stats.outstanding += 1
            out.append(stats.held.pop(0))
        return out


# -- the quarantine evidence, gathered -------------------------------------------------


@final
class Evidence:
    """What the run's failures say about each worker (input to ``judge``)."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        # node -> {test that failed there and passed on another worker: (pattern, category)}
        self.suspects: dict[str, dict[str, tuple[str | None, str | None]]] = {}
        self.pattern_nodes: dict[str | None, set[str]] = {}  # pattern -> workers it failed on

    def failed(self, pattern: str | None, node: str) -> None:
        self.pattern_nodes.setdefault(pattern, set()).add(node)

    def passed_elsewhere(
        self, nodeid: str, failed: list[tuple[str, str | None, str | None]], passed_on: str
    ) -> set[str]:
        """``nodeid`` failed on these (node, pattern, category) and passed on
        ``passed_on``: the nodes whose verdict may have changed."""
        nodes = {node for node, _, _ in failed}
        if passed_on in nodes:
            return set()
        for node, pattern, category in failed:
            self.suspects.setdefault(node, {})[nodeid] = (pattern, category)
        return nodes

    def node_scoped_tests(self, node: str) -> dict[str, str | None]:
        """Tests that failed on ``node`` with a node-scoped category (resource, hardware,
        worker, system) and passed elsewhere: evidence against the worker."""
        return {
            nodeid: category
            for nodeid, (_, category) in self.suspects.get(node, {}).items()
            if node_scoped(category)
        }

    def only_here(self, node: str) -> dict[str, str | None]:
        """Tests that failed on ``node`` and passed elsewhere, with an error pattern seen
        on no other worker and a category that is not node-scoped: evidence against the
        worker only if its failure rate is significantly higher (``judge``). (Errors that
        strike every worker alike, a flaky server say, are none.)"""
        return {
            nodeid: category
            for nodeid, (pattern, category) in self.suspects.get(node, {}).items()
            if not node_scoped(category) and self.pattern_nodes.get(pattern, set()) <= {node}
        }

    def verdict(self, node: str, first_attempts: Callable[[], Mapping[str, tuple[int, int]]]) -> Verdict:
        """``judge`` on ``node``; first attempts are counted only when they are needed."""
        only = self.only_here(node)
        return judge(
            node,
            node_scoped_tests=self.node_scoped_tests(node),
            only_here=only,
            first_attempts=first_attempts() if len(only) >= self.threshold else {},
            threshold=self.threshold,
        )
