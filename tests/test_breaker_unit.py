"""Quarantine evidence (pytest_dtf_errors.session.breaker): hand-computed cases, no pytester."""

from __future__ import annotations

import pytest

from pytest_dtf_errors.session.breaker import binomial_tail, judge, leaves_half, node_scoped


@pytest.mark.parametrize(
    ("n", "k", "p", "expected"),
    [
        (4, 4, 0.5, 1 / 16),  # four failures, all on one of two equal workers
        (5, 5, 0.5, 1 / 32),
        (10, 8, 0.5, (45 + 10 + 1) / 1024),  # C(10,8) + C(10,9) + C(10,10) over 2^10
        (3, 1, 0.2, 1 - 0.8**3),
        (6, 2, 0.25, 1 - 0.75**6 - 6 * 0.25 * 0.75**5),
        (4, 0, 0.5, 1.0),
        (4, 5, 0.5, 0.0),
        (4, 1, 0.0, 0.0),
        (4, 4, 1.0, 1.0),
    ],
)
def test_binomial_tail(n, k, p, expected):
    assert binomial_tail(n, k, p) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("resource_exhausted", True),
        ("resource_not_found", True),
        ("hardware_mismatch", True),
        ("worker_crashed", True),
        ("system_crash", True),
        ("network_timeout", False),
        ("network_connection_error", False),
        ("test_assertion_error", False),
        ("unknown", False),
        ("my_custom_category", False),
        (None, False),
    ],
)
def test_node_scoped_categories(category, expected):
    assert node_scoped(category) is expected


@pytest.mark.parametrize(
    ("remaining", "pool", "expected"),
    [(1, 2, True), (1, 3, False), (2, 3, True), (2, 4, True), (1, 4, False), (0, 1, False), (0, 0, False)],
)
def test_never_fewer_than_half_of_the_workers(remaining, pool, expected):
    assert leaves_half(remaining, pool) is expected


def timeouts(n: int) -> dict[str, str | None]:
    return {f"t.py::test_{i}": "network_timeout" for i in range(n)}


def test_four_network_timeouts_on_one_of_two_workers_are_not_evidence():
    # gw0 and gw1 ran 8 first attempts each; the 4 that failed were all on gw0:
    # P(X >= 4 | X ~ Bin(4, 0.5)) = 1/16 = 0.0625, not below 0.05 / 2
    verdict = judge(
        "gw0", node_scoped_tests={}, only_here=timeouts(4),
        first_attempts={"gw0": (8, 4), "gw1": (8, 0)}, threshold=3,
    )
    assert not verdict.quarantine
    assert "network_timeout: not node-scoped" in verdict.reason
    assert "p=0.0625, not below 0.025" in verdict.reason


def test_five_of_five_on_one_of_two_is_still_within_the_shared_level():
    # 1/32 = 0.03125: below 0.05, but the worst of 2 workers is tested, so 0.025
    verdict = judge(
        "gw0", node_scoped_tests={}, only_here=timeouts(5),
        first_attempts={"gw0": (10, 5), "gw1": (10, 0)}, threshold=3,
    )
    assert not verdict.quarantine
    assert "p=0.0312" in verdict.reason


def test_a_significantly_higher_failure_rate_quarantines():
    # 6 of 6 failed first attempts on gw0, which ran half of them: 1/64 = 0.0156 < 0.025
    verdict = judge(
        "gw0", node_scoped_tests={}, only_here=timeouts(6),
        first_attempts={"gw0": (12, 6), "gw1": (12, 0)}, threshold=3,
    )
    assert verdict.quarantine
    assert "p=0.0156 < 0.025" in verdict.reason


def test_the_share_of_first_attempts_matters():
    # gw0 ran 3 of 4 workers' worth: 4 failures there is what chance gives often
    # P(X >= 4 | X ~ Bin(5, 0.75)) = 5 * 0.75^4 * 0.25 + 0.75^5 = 0.6328...
    verdict = judge(
        "gw0", node_scoped_tests={}, only_here=timeouts(4),
        first_attempts={"gw0": (30, 4), "gw1": (10, 1)}, threshold=3,
    )
    assert not verdict.quarantine
    assert "p=0.633" in verdict.reason


def test_a_worker_slowed_by_its_failures_gets_at_least_an_equal_share():
    # gw0 ran only 4 first attempts so far (all failed), gw1 12: the share
    # tested is 1/2, not 1/4: P(X >= 4 | X ~ Bin(4, 0.5)) = 0.0625
    verdict = judge(
        "gw0", node_scoped_tests={}, only_here=timeouts(4),
        first_attempts={"gw0": (4, 4), "gw1": (12, 0)}, threshold=3,
    )
    assert not verdict.quarantine
    assert "whose share of first attempts is 50%: one-sided binomial p=0.0625" in verdict.reason


def test_node_scoped_failures_quarantine_without_a_rate_test():
    scoped = {f"t.py::test_{i}": "resource_exhausted" for i in range(3)}
    verdict = judge("gw1", node_scoped_tests=scoped, only_here={}, first_attempts={}, threshold=3)
    assert verdict.quarantine
    assert verdict.reason == (
        "3 different tests failed on gw1 with node-scoped errors (resource_exhausted) "
        "and passed on other workers"
    )


def test_below_the_threshold_there_is_nothing_to_say():
    verdict = judge(
        "gw0", node_scoped_tests={"t.py::a": "resource_exhausted"}, only_here=timeouts(2),
        first_attempts={"gw0": (2, 2), "gw1": (50, 0)}, threshold=3,
    )
    assert (verdict.quarantine, verdict.reason) == (False, "")
