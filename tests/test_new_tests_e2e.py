"""Early flake detection end to end: a test the history has never seen runs extra times (issue 14).

Each test records a history in a first session (the known tests), then adds new
tests and runs a second session with the same history file.
"""

from __future__ import annotations

import time

import pytest
from conftest import MODES, load_report, outcomes, run
from test_repeat_e2e import COUNTING, by_name, runs_of

from pytest_dtf_errors.history import AttemptRecord, RunRecord, SQLiteHistory, TestResult
from pytest_dtf_errors.report import validate

KNOWN = COUNTING + '''
def test_old1():
    count("old1")

def test_old2():
    count("old2")
'''

NEW = COUNTING + '''
def test_new_half():
    n = count("new_half")
    assert n % 2 == 0, "odd run"

def test_new_ok():
    count("new_ok")
'''


@pytest.fixture
def recorded(pytester: pytest.Pytester):
    """``recorded(new_tests, toml="")``: a project whose history knows test_known.py's tests,
    with ``new_tests`` added as test_new.py and the run counters reset."""

    def make(new_tests: str, toml: str = "", *, session: bool = False) -> pytest.Pytester:
        if toml:
            pytester.makepyprojecttoml(toml)
        pytester.makepyfile(test_known=KNOWN)
        if session:  # recorded by a real session
            first = run(pytester, "--dtf-history", "h.sqlite", "--dtf-retry", "-n", "2")
            assert first.ret == 0, first.stdout.str()
        else:  # written straight into the store: what such a session writes
            store = SQLiteHistory.open(pytester.path / "h.sqlite")
            try:
                store.write_run(RunRecord("recorded", time.time() - 60, tuple(
                    TestResult(f"test_known.py::test_{name}", "passed", 0.001,
                               (AttemptRecord(1, "passed", worker="gw0", duration=0.001),))
                    for name in ("old1", "old2")
                )))
            finally:
                store.close()
        for counter in pytester.path.glob("runs-*"):
            counter.unlink()
        pytester.makepyfile(test_new=new_tests)
        return pytester

    return make


@pytest.mark.parametrize("mode", MODES)
def test_new_tests_run_again_and_a_flaky_one_fails_the_session(recorded, mode):
    p = recorded(NEW, session=mode == "xdist")
    result = run(p, "--dtf-history", "h.sqlite", "--dtf-report", "r.json", *MODES[mode])
    assert result.ret == 1, result.stdout.str()
    # the extra runs are not counted: one outcome per test, the flaky one as failed
    assert outcomes(result) == {"failed": 1, "passed": 3}
    report = load_report(p.path / "r.json")
    validate(report)
    tests = by_name(report)
    half, ok = tests["test_new_half"], tests["test_new_ok"]
    assert half["outcome"] == "failed" and half["reason"].startswith("new flaky: ")
    assert "failed 5 of its 11 runs" in half["reason"]
    assert half["repeat"]["kind"] == "new" and half["repeat"]["verdict"] == "new flaky"
    assert (half["repeat"]["runs"], half["repeat"]["passed"], half["repeat"]["failed"]) == (11, 6, 5)
    assert half["repeat"]["repeats"] == half["repeat"]["wanted"] == 10  # a fast test: 10 extra runs
    assert ok["outcome"] == "passed"
    assert (ok["repeat"]["runs"], ok["repeat"]["passed"], ok["repeat"]["verdict"]) == (11, 11, "passed")
    for name in ("test_old1", "test_old2"):  # known tests run once
        assert tests[name]["outcome"] == "passed" and tests[name].get("repeat") is None
        assert len(tests[name]["attempts"]) == 1
    assert len(runs_of(p, "old1")) == 1
    runs = runs_of(p, "new_ok")
    assert len(runs) == 11
    if mode == "xdist":
        first, extra = runs[0], runs[1:]
        assert first not in extra, "the extra runs go to the other worker"
    # the failure shows the runs, once
    result.stdout.fnmatch_lines([
        "*- dtf: new flaky -*",
        "new flaky: a test the history has not seen failed 5 of its 11 runs (1 * passed, 2 * failed (test_assertion_error)*",
    ])
    assert result.stdout.str().count("FAILED test_new.py::test_new_half") == 1
    result.stdout.fnmatch_lines([
        "dtf: early flake detection: 2 new tests (not in the history), 2 ran again (20 extra runs); 1 new flaky",
        "  NEW FLAKY test_new.py::test_new_half: 6 of 11 runs passed*",
        "dtf: new tests' extra runs are capped at 20 % of the session's time: 2.0 s of 10.0 s, * s used",
    ])


def test_an_empty_history_repeats_nothing(pytester: pytest.Pytester):
    pytester.makepyfile(test_new=NEW)
    result = run(pytester, "--dtf-history", "h.sqlite", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()  # test_new_half's one run is its even run
    assert outcomes(result) == {"passed": 2}
    assert len(runs_of(pytester, "new_ok")) == len(runs_of(pytester, "new_half")) == 1
    assert all(t.get("repeat") is None for t in load_report(pytester.path / "r.json")["tests"])
    assert "dtf error summary" not in result.stdout.str()  # a first run's empty history is no news
    # asked for, it says why nothing ran again
    for counter in pytester.path.glob("runs-*"):
        counter.unlink()
    result = run(pytester, "--dtf-history", "h2.sqlite", "-n", "2", "--dtf-new-test-repeats", "3")
    assert result.ret == 0, result.stdout.str()
    assert len(runs_of(pytester, "new_ok")) == 1
    result.stdout.fnmatch_lines(["dtf: early flake detection is off: the history is empty*"])


def test_zero_new_test_repeats_turns_it_off(recorded):
    p = recorded(NEW)
    result = run(p, "--dtf-history", "h.sqlite", "--dtf-new-test-repeats", "0", "-n", "2")
    assert result.ret == 0, result.stdout.str()  # test_new_half's one run is its even run
    assert outcomes(result) == {"passed": 4}
    assert len(runs_of(p, "new_ok")) == len(runs_of(p, "new_half")) == 1


def test_new_test_repeats_asks_a_number(recorded):
    p = recorded(NEW)
    result = run(p, "--dtf-history", "h.sqlite", "--dtf-new-test-repeats", "3", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 1
    assert len(runs_of(p, "new_ok")) == 4
    half = by_name(load_report(p.path / "r.json"))["test_new_half"]
    assert (half["repeat"]["runs"], half["repeat"]["failed"], half["repeat"]["repeats"]) == (4, 2, 3)


def test_the_cap_cuts_a_slow_new_tests_runs(recorded):
    # 1 % of a session counted as 10 s: 0.1 s for extra runs; a 0.04 s test gets 2 of its 10
    p = recorded(COUNTING + '''
import time

def test_new_slowish():
    count("slowish")
    time.sleep(0.04)
''', toml="[tool.dtf]\nnew_test_share = 0.01\n")
    result = run(p, "--dtf-history", "h.sqlite", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    rep = by_name(load_report(p.path / "r.json"))["test_new_slowish"]["repeat"]
    assert rep["wanted"] == 10 and 1 <= rep["repeats"] <= 2
    assert len(runs_of(p, "slowish")) == rep["runs"] == 1 + rep["repeats"]
    result.stdout.fnmatch_lines([
        ("dtf: new tests' extra runs are capped at 1 % of the session's time: 0.1 s of 10.0 s, "
         "* s used; it cut 1 test: test_new.py::test_new_slowish (* of 10)"),
    ])


def test_a_cap_of_nothing_repeats_nothing(recorded):
    p = recorded(NEW, toml="[tool.dtf]\nnew_test_share = 0.0\n")
    result = run(p, "--dtf-history", "h.sqlite", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 0
    assert len(runs_of(p, "new_ok")) == 1
    ok = by_name(load_report(p.path / "r.json"))["test_new_ok"]
    assert ok["repeat"]["repeats"] == 0 and "cap" in ok["repeat"]["note"]


@pytest.mark.parametrize("mode", MODES)
def test_passing_on_a_retry_is_new_flaky_too(recorded, mode):
    p = recorded(COUNTING + '''
def test_new_net():
    if count("net") == 0:
        raise ConnectionRefusedError(111, "Connection refused")
''')
    result = run(p, "--dtf-history", "h.sqlite", "--dtf-retry", "--dtf-report", "r.json", *MODES[mode])
    assert result.ret == 1, result.stdout.str()
    counts = outcomes(result)
    assert counts.get("failed") == 1 and "flaky" not in counts
    assert len(runs_of(p, "net")) == 2, "retried once, then not repeated: it is flaky already"
    net = by_name(load_report(p.path / "r.json"))["test_new_net"]
    assert net["outcome"] == "failed" and net["reason"].startswith("new flaky: ")
    assert net["repeat"]["verdict"] == "new flaky" and net["repeat"]["repeats"] == 0


def test_a_new_test_that_fails_is_not_repeated(recorded):
    p = recorded(COUNTING + '''
def test_new_bad():
    count("bad")
    assert False
''')
    result = run(p, "--dtf-history", "h.sqlite", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 1
    assert outcomes(result) == {"failed": 1, "passed": 2}
    assert len(runs_of(p, "bad")) == 1
    bad = by_name(load_report(p.path / "r.json"))["test_new_bad"]
    assert bad["repeat"]["verdict"] == "failed" and bad["repeat"]["repeats"] == 0
