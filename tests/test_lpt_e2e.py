"""Duration-aware scheduling end to end: a second session with the same history runs the
long test first, alone on its worker (issue 14, the LPT rule)."""

from __future__ import annotations

import json

import pytest
from conftest import run

SUITE = """
import time
import pytest

@pytest.mark.parametrize("i", range(12))
def test_short(i):
    time.sleep(0.01)

def test_long():  # collected last
    time.sleep(0.8)
"""

LONG = "test_suite.py::test_long"


def first_attempts(path) -> dict[str, dict[str, object]]:
    """nodeid -> its first attempt, from the JSON report."""
    data = json.loads(path.read_text())
    return {t["nodeid"]: t["attempts"][0] for t in data["tests"]}


def test_with_a_history_the_long_test_runs_first_and_alone(pytester: pytest.Pytester):
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\n")
    pytester.makepyfile(test_suite=SUITE)
    history = pytester.path / "history.sqlite"
    common = ("-n", "2", "--dtf-retry", "--dtf-history", str(history))
    first = run(pytester, *common, "--dtf-report", "first.json")
    assert first.ret == 0 and first.parseoutcomes() == {"passed": 13}
    before = first_attempts(pytester.path / "first.json")
    # no history yet: collection order, so the long test starts after most of the others
    assert sum(a["started"] < before[LONG]["started"] for a in before.values()) >= 6

    second = run(pytester, *common, "--dtf-report", "second.json")
    assert second.ret == 0 and second.parseoutcomes() == {"passed": 13}
    after = first_attempts(pytester.path / "second.json")
    long = after.pop(LONG)
    # it is its worker's first test and the only one: the other worker runs every short test meanwhile
    assert all(a["node"] != long["node"] for a in after.values())
    assert long["started"] <= min(a["started"] for a in after.values()) + 0.5


def test_a_new_test_counts_as_the_median_and_the_known_long_one_still_leads(pytester: pytest.Pytester):
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\n")
    pytester.makepyfile(test_suite=SUITE)
    history = pytester.path / "history.sqlite"
    # no extra runs of the new test (they are retries, placed on the other worker by design)
    common = ("-n", "2", "--dtf-retry", "--dtf-history", str(history), "--dtf-new-test-repeats", "0")
    assert run(pytester, *common).ret == 0
    # a new test, collected first: as long as a median (short) test, it does not go before the long one
    pytester.makepyfile(test_suite="import time\n\ndef test_new():\n    time.sleep(0.01)\n" + SUITE)
    second = run(pytester, *common, "--dtf-report", "second.json")
    assert second.ret == 0 and second.parseoutcomes() == {"passed": 14}
    after = first_attempts(pytester.path / "second.json")
    long = after.pop(LONG)
    assert all(a["node"] != long["node"] for a in after.values())
