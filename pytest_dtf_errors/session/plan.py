"""RetryPlan: the one value that carries a failed attempt's retry.

``decide`` makes it, ``pytest_dtf_retry_decision`` may edit it in place, the
breaker may hold it, the scheduler (or the in-process runner) places it when
due, and the ledger keeps it as the attempt's decision: the same object all
the way. Times are ``time.monotonic()`` seconds; the JSON report shows them as
epoch seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TypedDict, final

__all__ = ["DecisionDict", "RetryPlan", "epoch"]

# monotonic -> epoch, fixed once per process: every time the reports show is on one clock
_EPOCH_OFFSET = time.time() - time.monotonic()


def epoch(monotonic: float) -> float:
    """Epoch seconds of a ``time.monotonic()`` reading."""
    return monotonic + _EPOCH_OFFSET


class DecisionDict(TypedDict, total=False):
    """A plan as the JSON report writes it (an attempt's ``decision``)."""

    retry: bool
    delay: float
    reason: str
    avoid: list[str]
    prefer_not: list[str]
    due: float
    dispatched: float


@final
class RetryPlan:
    """What happens after one failed attempt: retried (where, when) or final, and why.

    ``attempt`` is the attempt that failed (1-based); the retry runs as
    ``next_attempt``. ``avoid`` (never these workers) and ``prefer_not``
    (other workers first) are sets of worker ids; ``hardware``: any of these
    tags is required, ``prefer_hardware``: any of these is preferred.
    """

    __slots__ = (
        "attempt", "avoid", "category", "decided", "delay", "dispatched", "due", "hardware",
        "node", "nodeid", "prefer_hardware", "prefer_not", "reason", "retry", "timeout_factor",
    )

    def __init__(
        self,
        nodeid: str,
        attempt: int,
        node: str,
        category: str = "unknown",
        retry: bool = False,
        delay: float = 0.0,
        reason: str = "",
        avoid: Iterable[str] = (),
        prefer_not: Iterable[str] = (),
        hardware: tuple[str, ...] = (),
    ) -> None:
        self.nodeid = nodeid
        self.attempt = attempt
        self.node = node  # the worker it failed on
        self.category = category
        self.retry = retry
        self.delay = delay
        self.reason = reason
        self.avoid: set[str] = set(avoid)
        self.prefer_not: set[str] = set(prefer_not)
        self.hardware = hardware
        self.prefer_hardware: tuple[str, ...] = ()
        self.timeout_factor = 1.0
        self.decided = time.monotonic()
        self.due: float | None = None  # set when the retry is promised
        self.dispatched: float | None = None  # when it was sent to a worker

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"RetryPlan({fields})"

    @classmethod
    def final(cls, nodeid: str, attempt: int, node: str, reason: str) -> RetryPlan:
        """A plan that retries nothing."""
        return cls(nodeid, attempt, node, reason=reason)

    @property
    def next_attempt(self) -> int:
        """The number the retry runs as."""
        return self.attempt + 1

    def veto(self, reason: str) -> None:
        """Do not retry; ``reason`` is what the reports say."""
        self.retry = False
        self.reason = reason

    def move(self) -> None:
        """Never run the retry on the worker that failed."""
        self.avoid.add(self.node)

    def promise(self) -> None:
        """Fix the plan after the hook: a retry is due ``delay`` after the decision."""
        self.retry = bool(self.retry)
        self.delay = max(0.0, float(self.delay))
        self.hardware = tuple(self.hardware)
        self.prefer_not -= self.avoid
        self.due = self.decided + self.delay if self.retry else None

    def to_dict(self) -> DecisionDict:
        out: DecisionDict = {"retry": self.retry, "delay": round(self.delay, 3), "reason": self.reason}
        if self.retry:
            out["avoid"] = sorted(self.avoid)
            out["prefer_not"] = sorted(self.prefer_not - self.avoid)
        if self.due is not None:
            out["due"] = epoch(self.due)
        if self.dispatched is not None:
            out["dispatched"] = epoch(self.dispatched)
        return out
