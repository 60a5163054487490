"""pytest-timeout and retries end to end: every attempt keeps its timer (issue 11, timeouts)."""

from __future__ import annotations

import pytest
from conftest import LOGGING_CONFTEST, MODES, attempts_log, load_report, outcomes, run

from pytest_dtf_errors.report import validate

pytest.importorskip("pytest_timeout")

# Sleeps far longer than any timeout below: a retry without a timer would pass
# after 6 s (and end "flaky"); with its timer it times out again.
ALWAYS_TOO_SLOW = """
import time, pytest
@pytest.mark.timeout(0.5)
def test_slow(log):
    log("slow")
    time.sleep(6)
"""


@pytest.fixture
def project(pytester: pytest.Pytester):
    def make(tests: str, toml: str = "[tool.dtf]\nbreaker_min_tests = 1000\n") -> pytest.Pytester:
        pytester.makeconftest(LOGGING_CONFTEST)
        pytester.makepyprojecttoml(toml)
        pytester.makepyfile(test_t=tests)
        return pytester

    return make


def _attempts(p: pytest.Pytester) -> list[dict]:
    data = load_report(p.path / "r.json")
    validate(data)
    [test] = data["tests"]
    return test["attempts"], test["outcome"]


@pytest.mark.parametrize("mode", MODES)
def test_a_retry_that_times_out_again_fails_the_test(project, mode):
    p = project(ALWAYS_TOO_SLOW)
    result = run(p, *MODES[mode], "--dtf-retry", "--dtf-report", "r.json", timeout=60)
    assert result.ret == 1, result.stdout.str()
    assert outcomes(result)["failed"] == 1 and "flaky" not in outcomes(result)
    attempts, outcome = _attempts(p)
    assert outcome == "failed"
    assert [a["category"] for a in attempts] == ["worker_timeout", "worker_timeout"]
    assert {"kind": "scale_timeout", "factor": 2.0} in attempts[0]["actions"]
    # the retry's timer was scaled: it ran about 1 s, never the test's 6 s
    assert "Timeout (>1.0s)" in attempts[1]["error"]["message"]
    assert [n for n, _, _ in attempts_log(p.path / "attempts.log")["slow"]] == [1, 2]


def test_a_delayed_retry_in_process_keeps_its_timer(project):
    """A retry with a delay runs after the other tests, outside pytest's own protocol call."""
    p = project(
        ALWAYS_TOO_SLOW + "\ndef test_other():\n    pass\n",
        toml="[tool.dtf]\nbreaker_min_tests = 1000\n"
        "[tool.dtf.retry_policies.WORKER_TIMEOUT]\nmax_retries = 1\n"
        "retry_delay_seconds = 0.2\nretry_jitter = 0.0\n",
    )
    result = run(p, "-p", "no:xdist", "--dtf-retry", "--dtf-report", "r.json", timeout=60)
    assert result.ret == 1, result.stdout.str()
    data = load_report(p.path / "r.json")
    slow = next(t for t in data["tests"] if t["nodeid"].endswith("test_slow"))
    assert slow["outcome"] == "failed"
    assert [a["category"] for a in slow["attempts"]] == ["worker_timeout", "worker_timeout"]


def test_a_test_that_hangs_forever_does_not_hang_the_session(project):
    p = project(
        """
import threading, pytest
@pytest.mark.timeout(0.5)
def test_hangs(log):
    log("hang")
    threading.Event().wait()
"""
    )
    result = run(p, "-p", "no:xdist", "--dtf-retry", "--dtf-report", "r.json", timeout=60)
    assert result.ret == 1, result.stdout.str()
    attempts, outcome = _attempts(p)
    assert outcome == "failed" and len(attempts) == 2


SLOW_ONCE = """
import time, pytest
@pytest.mark.timeout(0.8)
def test_slow_once(log, dtf_attempt):
    log("slow")
    # the first attempt hangs; the retry needs more than 0.8 s and less than 1.6 s
    time.sleep(30 if dtf_attempt == 1 else 1.1)

def test_other():
    pass
"""


def test_thread_method_kill_is_a_worker_timeout_and_the_retry_gets_more_time(project):
    p = project(SLOW_ONCE)
    result = run(
        p, "-n", "2", "--timeout-method=thread", "--dtf-retry", "--dtf-report", "r.json", timeout=90
    )
    assert result.ret == 0, result.stdout.str()
    data = load_report(p.path / "r.json")
    validate(data)
    slow = next(t for t in data["tests"] if t["nodeid"].endswith("test_slow_once"))
    assert slow["outcome"] == "flaky"
    first, second = slow["attempts"]
    assert first["category"] == "worker_timeout", first
    assert first["phase"] == "crash"
    assert "was ended by pytest-timeout while running" in first["error"]["message"], first["error"]
    assert {"kind": "scale_timeout", "factor": 2.0} in first["actions"]
    assert second["outcome"] == "passed"
    assert [n for n, _, _ in attempts_log(p.path / "attempts.log")["slow"]] == [1, 2]


def test_thread_method_timeout_every_time_fails_the_test(project):
    p = project(ALWAYS_TOO_SLOW)
    result = run(
        p, "-n", "2", "--timeout-method=thread", "--dtf-retry", "--dtf-report", "r.json", timeout=90
    )
    assert result.ret == 1, result.stdout.str()
    attempts, outcome = _attempts(p)
    assert outcome == "failed"  # the worker died in the test: a failure, as xdist reports it
    assert [a["category"] for a in attempts] == ["worker_timeout", "worker_timeout"]
    assert "Timeout" in result.stdout.str() or "Timeout" in result.stderr.str()
