"""--dtf-repeat N end to end: real sessions with -n 2 and in-process (issue 14, checking a fix)."""

from __future__ import annotations

import pytest
from conftest import MODES, load_report, outcomes, run

from pytest_dtf_errors.report import validate

# Each run of a test appends its worker's name to a file of its own (under a lock):
# the run's number is what was there before, so "fails every other run" is deterministic.
COUNTING = '''
import fcntl, os, pathlib

HERE = pathlib.Path(__file__).parent

def count(name):
    with open(HERE / ("runs-" + name), "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        n = len(f.read().split())
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "local") + "\\n")
        return n
'''


HALF_AND_STABLE = COUNTING + '''
def test_half():
    n = count("half")
    assert n % 2 == 0, "odd run"

def test_stable():
    count("stable")
'''


@pytest.fixture
def project(pytester: pytest.Pytester):
    def make(tests: str) -> pytest.Pytester:
        pytester.makepyfile(test_suite=tests)
        return pytester

    return make


def runs_of(p: pytest.Pytester, name: str) -> list[str]:
    """The workers that ran test ``name``, in order."""
    path = p.path / f"runs-{name}"
    return path.read_text().split() if path.exists() else []


def by_name(report: dict) -> dict[str, dict]:
    return {t["nodeid"].split("::")[-1]: t for t in report["tests"]}


@pytest.mark.parametrize("mode", MODES)
def test_half_failing_test_gets_its_pass_rate_and_patterns(project, mode):
    p = project(HALF_AND_STABLE)
    result = run(p, "--dtf-repeat", "10", "--dtf-report", "r.json", *MODES[mode])
    assert result.ret == 1, result.stdout.str()  # a failed run fails the session
    # every run is counted, as pytest-repeat counts them
    assert outcomes(result) == {"failed": 5, "passed": 15}
    report = load_report(p.path / "r.json")
    validate(report)
    tests = by_name(report)
    half, stable = tests["test_half"], tests["test_stable"]
    assert half["outcome"] == "failed" and stable["outcome"] == "passed"
    rep = half["repeat"]
    assert rep["kind"] == "repeat" and rep["verdict"] == "flaky"
    assert (rep["runs"], rep["planned"], rep["passed"], rep["failed"], rep["skipped"]) == (10, 10, 5, 5, 0)
    assert rep["pass_rate"] == 0.5
    # Wilson, 5 of 10: (0.5 + 1.92/10) / 1.384 -+ 1.96 * sqrt(0.025 + 0.0096) / 1.384
    assert rep["interval"] == pytest.approx([0.2366, 0.7634], abs=1e-4)
    assert len(rep["patterns"]) == 1
    assert rep["patterns"][0]["count"] == 5 and rep["patterns"][0]["category"] == "test_assertion_error"
    assert {a["pattern"] for a in half["attempts"] if a["outcome"] == "failed"} == {rep["patterns"][0]["pattern"]}
    assert "5 of 10 runs failed" in half["reason"]
    srep = stable["repeat"]
    assert (srep["runs"], srep["passed"], srep["verdict"]) == (10, 10, "passed")
    assert srep["interval"] == pytest.approx([0.7225, 1.0], abs=1e-4)  # Wilson, 10 of 10
    assert len(half["attempts"]) == len(stable["attempts"]) == 10
    assert all(a["decision"] is None or a["decision"]["retry"] is False for a in half["attempts"])
    if mode == "xdist":
        assert set(runs_of(p, "half")) == {"gw0", "gw1"}, "the runs are spread over both workers"
        assert set(rep["nodes"]) == {"gw0", "gw1"} and sum(rep["nodes"].values()) == 10
    else:
        assert runs_of(p, "half") == ["local"] * 10 and rep["nodes"] == {"local": 10}
    result.stdout.fnmatch_lines([
        "dtf: --dtf-repeat 10: 2 tests, 20 runs on * worker*; 1 failed at least one run",
        ("  test_suite.py::test_half: 5 of 10 runs passed, pass rate 50 % (95 % interval 24 %-76 %)*"
         "failures: 5 x test_assertion_error (pattern *)"),
        "  test_suite.py::test_stable: 10 of 10 runs passed, pass rate 100 % (95 % interval 72 %-100 %)*",
    ])


@pytest.mark.parametrize("mode", MODES)
def test_a_selection_runs_only_the_selected_tests(project, mode):
    p = project(HALF_AND_STABLE)
    result = run(p, "--dtf-repeat", "4", "-k", "stable", "--dtf-report", "r.json", *MODES[mode])
    assert result.ret == 0, result.stdout.str()
    counts = outcomes(result)  # xdist's workers deselect: the controller does not count them
    assert counts.get("passed") == 4 and "failed" not in counts
    assert len(runs_of(p, "stable")) == 4 and not runs_of(p, "half")
    stable = by_name(load_report(p.path / "r.json"))["test_stable"]
    assert stable["outcome"] == "passed" and stable["repeat"]["runs"] == 4


def test_retries_do_not_hide_a_failed_run(project):
    p = project(COUNTING + '''
def test_net():
    if count("net") == 1:
        raise ConnectionRefusedError(111, "Connection refused")
''')
    result = run(p, "--dtf-repeat", "3", "--dtf-retry", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 1, result.stdout.str()
    assert outcomes(result) == {"failed": 1, "passed": 2}
    assert len(runs_of(p, "net")) == 3, "the failed run is not retried"
    net = by_name(load_report(p.path / "r.json"))["test_net"]
    assert net["outcome"] == "failed"
    assert (net["repeat"]["passed"], net["repeat"]["failed"]) == (2, 1)
    assert net["repeat"]["patterns"][0]["category"] == "network_connection_error"


def test_a_skipped_test_is_not_repeated(project):
    p = project(COUNTING + '''
import pytest

def test_skips():
    count("skips")
    pytest.skip("not here")
''')
    result = run(p, "--dtf-repeat", "5", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 0
    assert outcomes(result) == {"skipped": 1}
    assert len(runs_of(p, "skips")) == 1
    assert by_name(load_report(p.path / "r.json"))["test_skips"]["outcome"] == "skipped"


def test_a_crash_is_one_failed_run_and_the_others_still_run(project):
    p = project(COUNTING + '''
import os, time

def test_crash():
    n = count("crash")
    time.sleep(0.05)
    if n == 2:
        os._exit(3)

def test_other():
    time.sleep(0.05)
''')
    result = run(p, "--dtf-repeat", "6", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 1, result.stdout.str()
    tests = by_name(load_report(p.path / "r.json"))
    crash, other = tests["test_crash"]["repeat"], tests["test_other"]["repeat"]
    assert (crash["runs"], crash["passed"], crash["failed"]) == (6, 5, 1)
    assert crash["patterns"][0]["category"] == "worker_crashed"
    assert (other["runs"], other["passed"]) == (6, 6)
    assert tests["test_other"]["outcome"] == "passed"


@pytest.mark.parametrize("mode", MODES)
def test_a_stopped_session_ends_the_runs_left_with_the_reason(project, mode):
    p = project(COUNTING + '''
import time

def test_breaks():
    time.sleep(0.05)
    assert count("breaks") != 1

def test_slow():
    count("slow")
    time.sleep(0.2)
''')
    result = run(p, "--dtf-repeat", "10", "-x", "--dtf-report", "r.json", *MODES[mode])
    assert result.ret != 0
    tests = by_name(load_report(p.path / "r.json"))
    breaks, slow = tests["test_breaks"], tests["test_slow"]
    assert breaks["outcome"] == "failed" and breaks["repeat"]["failed"] == 1
    assert breaks["repeat"]["runs"] < 10 and "of 10 runs ran: " in breaks["repeat"]["note"]
    assert slow["outcome"] == "skipped", slow
    if mode == "xdist":  # it ran beside: its runs left are cut
        assert slow["repeat"]["verdict"] == "cut short" and slow["repeat"]["runs"] < 10
        assert f"only {slow['repeat']['runs']} of 10 runs ran: " in slow["reason"]
    else:  # in-process it never started
        assert "repeat" not in slow and not runs_of(p, "slow")
