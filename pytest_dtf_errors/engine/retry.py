"""RetryPolicy: how often and how late a category of failure is retried."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from .categories import ErrorCategory

__all__ = ["DEFAULT_POLICY_TABLE", "POLICY_BOUNDS", "POLICY_FIELDS", "RetryPolicy",
           "default_policies"]

#: The range each numeric policy field accepts, both ends included. A retry never
#: waits more than an hour; a larger delay (1e308 once) would only hang the run.
POLICY_BOUNDS: dict[str, tuple[float, float]] = {
    "max_retries": (0, 1000),
    "retry_delay_seconds": (0.0, 3600.0),
    "retry_backoff_factor": (1.0, 10.0),
    "max_retry_delay_seconds": (0.0, 3600.0),
    "retry_jitter": (0.0, 1.0),
}


def check_policy_field(name: str, value: Any) -> float | int:
    """``value`` if it is a valid ``name`` (an integer for max_retries, in POLICY_BOUNDS).

    Raises TypeError for a wrong type, ValueError for a value out of bounds; the
    message says what is accepted.
    """
    lo, hi = POLICY_BOUNDS[name]
    if name == "max_retries":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"must be an integer from {lo:g} to {hi:g}, got {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"must be an integer from {lo:g} to {hi:g}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"must be a number from {lo:g} to {hi:g}, got "
                        f"{type(value).__name__} {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"must be a number from {lo:g} to {hi:g}, got {value!r}")
    return float(value)


def _categories(items: Iterable[Any] | None) -> list[ErrorCategory]:
    return [ErrorCategory.lookup(c) for c in (items or [])]


@dataclass
class RetryPolicy:
    """Max retries, delay with exponential backoff, a cap and jitter, for one category.

    ``attempt`` everywhere is the 1-based number of the attempt that just failed,
    so a policy with ``max_retries=2`` allows attempts 1 and 2 to be retried.
    ``categories_to_retry`` (if non-empty) limits the categories the policy
    retries; ``categories_to_skip`` are never retried.
    """

    max_retries: int = 3
    retry_delay_seconds: float = 1.0
    retry_backoff_factor: float = 2.0
    max_retry_delay_seconds: float = 30.0
    retry_jitter: float = 0.1
    categories_to_retry: list[ErrorCategory] = field(default_factory=list)
    categories_to_skip: list[ErrorCategory] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in POLICY_BOUNDS:
            try:
                setattr(self, name, check_policy_field(name, getattr(self, name)))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{name} {exc}") from None
        self.categories_to_retry = _categories(self.categories_to_retry)
        self.categories_to_skip = _categories(self.categories_to_skip)

    def allows(self, category: ErrorCategory | None, attempt: int) -> bool:
        """True if a failure of ``category`` on attempt ``attempt`` may be retried."""
        if category is not None:
            if category in self.categories_to_skip:
                return False
            if self.categories_to_retry and category not in self.categories_to_retry:
                return False
        return max(1, int(attempt)) <= self.max_retries

    def delay_for(self, attempt: int, rng: random.Random | None = None) -> float:
        """min(cap, base × factor^(attempt−1)) × (1 ± jitter), never negative."""
        n = max(1, int(attempt))
        try:
            raw = self.retry_delay_seconds * self.retry_backoff_factor ** (n - 1)
        except OverflowError:
            raw = math.inf
        delay = min(self.max_retry_delay_seconds, raw)
        if self.retry_jitter and delay:
            uniform = rng.uniform if rng is not None else random.uniform
            delay *= 1.0 + uniform(-self.retry_jitter, self.retry_jitter)
        return max(0.0, delay)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["categories_to_retry"] = [c.value for c in self.categories_to_retry]
        out["categories_to_skip"] = [c.value for c in self.categories_to_skip]
        return out


POLICY_FIELDS = tuple(f.name for f in fields(RetryPolicy))

# category name: (max_retries, delay s, backoff factor, cap s, jitter). Documented in docs/engine.md.
DEFAULT_POLICY_TABLE: dict[str, tuple[int, float, float, float, float]] = {
    "RESOURCE_EXHAUSTED": (2, 1.0, 2.0, 10.0, 0.1),
    "RESOURCE_NOT_FOUND": (1, 0.5, 2.0, 5.0, 0.1),
    "RESOURCE_UNAVAILABLE": (3, 0.5, 2.0, 5.0, 0.2),
    "NETWORK_TIMEOUT": (2, 0.5, 2.0, 5.0, 0.1),
    "NETWORK_CONNECTION_ERROR": (2, 0.5, 2.0, 5.0, 0.1),
    "NETWORK_SERVER_ERROR": (2, 1.0, 2.0, 5.0, 0.1),
    "TEST_ASSERTION_ERROR": (0, 0.0, 1.0, 0.0, 0.0),
    "TEST_IMPORT_ERROR": (0, 0.0, 1.0, 0.0, 0.0),
    "TEST_DEPENDENCY_ERROR": (0, 0.0, 1.0, 0.0, 0.0),
    "TEST_SYNTAX_ERROR": (0, 0.0, 1.0, 0.0, 0.0),
    "HARDWARE_NOT_AVAILABLE": (1, 0.0, 1.0, 0.0, 0.0),
    "HARDWARE_MISMATCH": (1, 0.0, 1.0, 0.0, 0.0),
    "HARDWARE_COMPATIBILITY_ERROR": (1, 0.0, 1.0, 0.0, 0.0),
    "WORKER_DISCONNECTED": (2, 0.0, 1.0, 0.0, 0.0),
    "WORKER_TIMEOUT": (1, 0.0, 1.0, 0.0, 0.0),
    "WORKER_CRASHED": (2, 0.0, 1.0, 0.0, 0.0),
    "SYSTEM_CRASH": (1, 0.0, 1.0, 0.0, 0.0),
    "SYSTEM_RESOURCE_LIMIT": (1, 1.0, 2.0, 5.0, 0.1),
    "UNKNOWN": (0, 0.0, 1.0, 0.0, 0.0),
}


def default_policies() -> dict[ErrorCategory, RetryPolicy]:
    """A fresh dict of the default policy for each built-in category."""
    return {
        ErrorCategory.from_name(name): RetryPolicy(
            max_retries=n,
            retry_delay_seconds=base,
            retry_backoff_factor=factor,
            max_retry_delay_seconds=cap,
            retry_jitter=jitter,
        )
        for name, (n, base, factor, cap, jitter) in DEFAULT_POLICY_TABLE.items()
    }
