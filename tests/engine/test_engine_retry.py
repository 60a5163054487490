"""RetryPolicy: delay formula, cap, jitter with an injected rng, allows(), default table."""

from __future__ import annotations

import math
import random

import pytest

from pytest_dtf_errors.engine import ErrorCategory, RetryPolicy, default_policies

E = ErrorCategory


def test_guide_fields_and_defaults():
    p = RetryPolicy()
    for name in ("max_retries", "retry_delay_seconds", "retry_backoff_factor",
                 "max_retry_delay_seconds", "retry_jitter", "categories_to_retry",
                 "categories_to_skip"):
        assert hasattr(p, name)


@pytest.mark.parametrize(("attempt", "expected"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0),
                                                   (5, 5.0), (50, 5.0), (0, 0.5), (-3, 0.5)])
def test_delay_without_jitter(attempt, expected):
    p = RetryPolicy(retry_delay_seconds=0.5, retry_backoff_factor=2.0,
                    max_retry_delay_seconds=5.0, retry_jitter=0.0)
    assert p.delay_for(attempt) == pytest.approx(expected)


def test_huge_attempt_does_not_overflow():
    p = RetryPolicy(retry_delay_seconds=1.0, retry_backoff_factor=10.0,
                    max_retry_delay_seconds=7.0, retry_jitter=0.0)
    assert p.delay_for(10**6) == 7.0


def test_jitter_bounds_and_injected_rng_is_deterministic():
    p = RetryPolicy(retry_delay_seconds=1.0, retry_backoff_factor=2.0,
                    max_retry_delay_seconds=10.0, retry_jitter=0.25)
    delays = [p.delay_for(2, random.Random(i)) for i in range(200)]
    assert all(1.5 <= d <= 2.5 for d in delays)
    assert len(set(delays)) > 100
    assert p.delay_for(3, random.Random(7)) == p.delay_for(3, random.Random(7))


def test_allows_counts_attempts_and_category_lists():
    p = RetryPolicy(max_retries=2, categories_to_skip=["TEST_ASSERTION_ERROR"])
    assert p.allows(E.NETWORK_TIMEOUT, 1)
    assert p.allows(E.NETWORK_TIMEOUT, 2)
    assert not p.allows(E.NETWORK_TIMEOUT, 3)
    assert not p.allows(E.TEST_ASSERTION_ERROR, 1)
    q = RetryPolicy(max_retries=1, categories_to_retry=[E.NETWORK_TIMEOUT])
    assert q.allows(E.NETWORK_TIMEOUT, 1)
    assert not q.allows(E.NETWORK_SERVER_ERROR, 1)
    assert q.categories_to_retry == [E.NETWORK_TIMEOUT]


@pytest.mark.parametrize("kwargs", [
    {"max_retries": -1}, {"retry_delay_seconds": -0.1}, {"retry_jitter": 1.5},
    {"retry_backoff_factor": math.nan}, {"max_retry_delay_seconds": math.inf},
    {"max_retries": 1.5}, {"retry_delay_seconds": "1"}, {"max_retries": True},
    {"categories_to_retry": ["NOT_A_CATEGORY"]},
])
def test_invalid_policies_are_rejected(kwargs):
    with pytest.raises((ValueError, TypeError)):
        RetryPolicy(**kwargs)


def test_to_dict_is_json_ready():
    d = RetryPolicy(categories_to_skip=[E.UNKNOWN]).to_dict()
    assert d["categories_to_skip"] == ["unknown"]


def test_default_policies_cover_every_builtin():
    policies = default_policies()
    builtin = [c for c in ErrorCategory if c.is_builtin]
    assert set(builtin) <= set(policies)
    assert policies is not default_policies()  # a fresh dict each time


@pytest.mark.parametrize("name", ["TEST_ASSERTION_ERROR", "TEST_SYNTAX_ERROR", "TEST_IMPORT_ERROR",
                                  "TEST_DEPENDENCY_ERROR", "UNKNOWN"])
def test_never_retried_by_default(name):
    cat = ErrorCategory.from_name(name)
    assert not default_policies()[cat].allows(cat, 1)


@pytest.mark.parametrize(("name", "retries"), [
    ("NETWORK_TIMEOUT", 2), ("NETWORK_CONNECTION_ERROR", 2), ("NETWORK_SERVER_ERROR", 2),
    ("RESOURCE_EXHAUSTED", 2), ("RESOURCE_UNAVAILABLE", 3), ("RESOURCE_NOT_FOUND", 1),
    ("WORKER_CRASHED", 2), ("WORKER_DISCONNECTED", 2), ("WORKER_TIMEOUT", 1),
    ("HARDWARE_NOT_AVAILABLE", 1), ("HARDWARE_MISMATCH", 1), ("HARDWARE_COMPATIBILITY_ERROR", 1),
    ("SYSTEM_CRASH", 1), ("SYSTEM_RESOURCE_LIMIT", 1),
])
def test_default_retry_counts_and_delays_sized_for_tests(name, retries):
    cat = ErrorCategory.from_name(name)
    p = default_policies()[cat]
    assert p.max_retries == retries
    assert p.allows(cat, retries) and not p.allows(cat, retries + 1)
    assert all(p.delay_for(a, random.Random(0)) <= 11 for a in range(1, 10))


def test_network_default_delays():
    p = default_policies()[E.NETWORK_TIMEOUT]
    assert (p.retry_delay_seconds, p.retry_backoff_factor, p.max_retry_delay_seconds,
            p.retry_jitter) == (0.5, 2.0, 5.0, 0.1)
    assert 0.45 <= p.delay_for(1, random.Random(1)) <= 0.55
