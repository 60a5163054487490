"""Quarantine evidence: does what failed on a worker point at the worker?

Pure Python (no pytest, no xdist), so the rules are tested on hand-computed
cases. A worker is quarantined only on evidence that points at it:

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
from collections.abc import Mapping
from typing import final

__all__ = ["ALPHA", "NODE_SCOPED_FAMILIES", "Verdict", "binomial_tail", "judge", "leaves_half", "node_scoped"]

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
