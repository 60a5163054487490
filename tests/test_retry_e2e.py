"""The retry loop end to end: real sessions with -n 2 and in-process (issue 3)."""

from __future__ import annotations

import pytest
from conftest import MODES, attempts_log, load_report, outcomes, project_factory, run

# Fast, jitter-free policies so timings are predictable.
FAST = """
[tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR]
max_retries = 2
retry_delay_seconds = {delay}
retry_jitter = 0.0
"""


@pytest.fixture
def project(pytester: pytest.Pytester):
    return project_factory(pytester, FAST)


NETWORK_ONCE = """
import os
def test_net(log, dtf_attempt):
    log("net")
    if dtf_attempt == 1:
        raise ConnectionRefusedError(111, "Connection refused")

def test_ok(log):
    log("ok")
"""


@pytest.mark.parametrize("mode", MODES)
def test_network_error_once_is_flaky_and_retried_elsewhere(project, mode):
    p = project(NETWORK_ONCE)
    result = run(p, "--dtf-retry", *MODES[mode])
    assert result.ret == 0
    counts = outcomes(result)
    assert counts.get("flaky") == 1 and counts.get("passed") == 1 and counts.get("rerun") == 1
    net = attempts_log(p.path / "attempts.log")["net"]
    assert [a for a, _, _ in net] == [1, 2]
    if mode == "xdist":
        assert net[0][1] != net[1][1], "the retry must run on the other worker"


@pytest.mark.parametrize("mode", MODES)
def test_assertion_is_not_retried(project, mode):
    p = project(
        """
def test_bad(log):
    log("bad")
    assert 1 == 2, "connection refused (the message must not matter)"
"""
    )
    result = run(p, "--dtf-retry", *MODES[mode])
    assert result.ret == 1
    assert outcomes(result) == {"failed": 1}
    assert len(attempts_log(p.path / "attempts.log")["bad"]) == 1
    result.stdout.fnmatch_lines(["test_assertion_error (rule type:AssertionError*): test_assertion_error is not retried"])


def test_without_dtf_retry_nothing_is_retried(project):
    p = project(NETWORK_ONCE)
    result = run(p, "-n", "2")
    assert result.ret == 1
    assert outcomes(result) == {"failed": 1, "passed": 1}


def test_failure_only_on_one_worker_passes_on_the_other(project):
    p = project(
        """
import errno, os, pytest
@pytest.mark.parametrize("i", range(8))
def test_disk(log, i):
    log("disk%d" % i)
    if os.environ["PYTEST_XDIST_WORKER"] == "gw0":
        raise OSError(errno.ENOSPC, "No space left on device")
""",
        extra_toml="[tool.dtf]\nquarantine_threshold = 100\n",
    )
    result = run(p, "--dtf-retry", "-n", "2")
    assert result.ret == 0, result.stdout.str()
    log = attempts_log(p.path / "attempts.log")
    retried = [name for name, att in log.items() if len(att) > 1]
    assert retried, "some tests must have landed on gw0 first"
    for name in retried:
        first, second = (w for _, w, _ in log[name])
        assert first == "gw0" and second != "gw0"
    counts = outcomes(result)
    assert counts.get("flaky") == len(retried)
    assert counts.get("passed", 0) + counts["flaky"] == 8


def test_crash_once_recovers_on_another_worker(project):
    p = project(
        """
import os
def test_crash(log, dtf_attempt):
    log("crash")
    if dtf_attempt == 1:
        os._exit(3)

def test_ok():
    pass
"""
    )
    result = run(p, "--dtf-retry", "-n", "2")
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result).get("flaky") == 1
    crash = attempts_log(p.path / "attempts.log")["crash"]
    assert [a for a, _, _ in crash] == [1, 2]
    assert crash[0][1] != crash[1][1]


def test_crash_every_time_fails_after_its_policy(project):
    p = project(
        """
import os
def test_crash(log):
    log("crash")
    os._exit(3)

def test_ok():
    pass
"""
    )
    result = run(p, "--dtf-retry", "-n", "2")
    assert result.ret == 1
    counts = outcomes(result)
    assert counts.get("failed") == 1 and counts.get("passed") == 1  # a crash fails, as in xdist
    attempts = attempts_log(p.path / "attempts.log")["crash"]
    assert len(attempts) == 3  # the default policy of worker_crashed: 2 retries
    result.stdout.fnmatch_lines(["*took down 3 worker*"])


def test_workers_keep_running_while_a_retry_waits(project):
    p = project(
        """
import time, pytest
def test_a_net(log, dtf_attempt):
    log("net")
    if dtf_attempt == 1:
        raise ConnectionRefusedError(111, "Connection refused")

@pytest.mark.parametrize("i", range(12))
def test_work(log, i):
    log("work%d" % i)
    time.sleep(0.15)
""",
        delay=1.0,
    )
    result = run(p, "--dtf-retry", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    log = attempts_log(p.path / "attempts.log")
    (first, retry) = log["net"]
    decision = load_report(p.path / "r.json")["tests"][0]["attempts"][0]["decision"]
    assert decision["retry"] and decision["dispatched"] - decision["due"] <= 0.1, decision
    assert retry[2] - first[2] >= 1.0, "the retry waits out its delay"
    during = [t for name, att in log.items() if name.startswith("work") for _, _, t in att
              if first[2] < t < retry[2]]
    assert len(during) >= 4, "both workers run other tests during the delay"


@pytest.mark.parametrize("mode", MODES)
def test_last_test_failing_once_with_a_delay_ends_flaky(project, mode):
    p = project(
        """
def test_a(log):
    log("a")

def test_z_last(log, dtf_attempt):
    log("z")
    if dtf_attempt == 1:
        raise ConnectionRefusedError(111, "Connection refused")
""",
        delay=0.5,
    )
    result = run(p, "--dtf-retry", *MODES[mode])
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result).get("flaky") == 1
    assert len(attempts_log(p.path / "attempts.log")["z"]) == 2


def test_delayed_retry_runs_after_the_other_tests_in_process(project):
    p = project(
        """
def test_a_net(log, dtf_attempt):
    log("net")
    if dtf_attempt == 1:
        raise ConnectionRefusedError(111, "Connection refused")

def test_b(log):
    log("b")

def test_c(log):
    log("c")
""",
        delay=0.3,
    )
    result = run(p, "--dtf-retry", "-p", "no:xdist")
    assert result.ret == 0
    order = [line.split()[0] for line in (p.path / "attempts.log").read_text().splitlines()]
    assert order == ["net", "b", "c", "net"]


def test_restart_limit_leaves_no_test_without_outcome(project):
    p = project(
        """
import os, pytest
@pytest.mark.parametrize("i", range(3))
def test_crash(i):
    os._exit(1)

@pytest.mark.parametrize("i", range(20))
def test_ok(i):
    pass
"""
    )
    result = run(p, "--dtf-retry", "-n", "2", "--max-worker-restart", "1")
    assert result.ret == 1
    counts = outcomes(result)
    assert sum(v for k, v in counts.items() if k in ("passed", "failed", "errors", "flaky", "skipped")) == 23
    result.stdout.fnmatch_lines(["*not run: xdist stopped*"])


def test_retry_budget_used_up(project):
    p = project(
        """
import pytest
@pytest.mark.parametrize("i", range(5))
def test_net(i):
    raise ConnectionRefusedError(111, "Connection refused to service-%d" % i)
""",
        extra_toml="[tool.dtf]\nbreaker_min_tests = 100\n",
    )
    result = run(p, "--dtf-retry", "--dtf-retry-budget", "2", "-n", "2")
    assert result.ret == 1
    counts = outcomes(result)
    assert counts["failed"] == 5 and counts.get("rerun") == 2
    result.stdout.fnmatch_lines(["*retry budget of 2 used up*"])


def test_breaker_stops_a_systemic_pattern(project):
    p = project(
        """
import pytest
@pytest.mark.parametrize("i", range(20))
def test_db(i, log):
    log("db%d" % i)
    raise ConnectionRefusedError(
        111, "could not connect to server: Connection refused (db-%d.internal:%d)" % (i, 5432 + i))
""",
        delay=0.2,
    )
    result = run(p, "--dtf-retry", "-n", "2")
    assert result.ret == 1
    counts = outcomes(result)
    assert counts["failed"] == 20
    ran = [a for att in attempts_log(p.path / "attempts.log").values() for a, _, _ in att if a > 1]
    assert 3 <= len(ran) <= 6, "the breaker trips after a handful of retries"
    result.stdout.fnmatch_lines(["*systemic*breaker*"])


def test_retries_the_breaker_held_back_do_not_wait_their_delay_twice(project):
    # 8 tests fail once with one pattern: 3 retries go out as probes, the rest
    # wait for them. Once a probe passes the rest go, and the time they were
    # held counts toward their delay (they do not start a new one then).
    p = project(
        """
import pytest
@pytest.mark.parametrize("i", range(8))
def test_db(i, log, dtf_attempt):
    log("db%d" % i)
    if dtf_attempt == 1:
        raise ConnectionRefusedError(111, "could not connect to server: Connection refused")
""",
        delay=1.0,  # the breaker's defaults: 3 tests, 3 probes
    )
    result = run(p, "--dtf-retry", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result).get("flaky") == 8
    decisions = [t["attempts"][0]["decision"] for t in load_report(p.path / "r.json")["tests"]]
    late = sorted(d["dispatched"] - d["due"] for d in decisions)
    # the held ones went out when the first probe passed, well inside a second delay
    assert late[-1] < 0.5, late


@pytest.mark.parametrize("mode", MODES)
def test_maxfail_counts_final_failures_only(project, mode):
    p = project(
        """
def test_a_flaky(dtf_attempt):
    if dtf_attempt == 1:
        raise ConnectionRefusedError(111, "Connection refused")

def test_b_ok():
    pass
"""
    )
    result = run(p, "--dtf-retry", "--maxfail", "1", *MODES[mode])
    assert result.ret == 0, result.stdout.str()
    counts = outcomes(result)
    assert counts.get("flaky") == 1 and counts.get("passed") == 1


def test_fail_on_flaky_has_its_own_exit_code(project):
    p = project(NETWORK_ONCE)
    result = run(p, "--dtf-retry", "--dtf-fail-on-flaky", "-n", "2")
    assert result.ret == 6


@pytest.mark.parametrize("mode", MODES)
def test_coexists_with_rerunfailures(project, mode):
    pytest.importorskip("pytest_rerunfailures")
    p = project(
        """
def test_net(log):
    log("net")
    raise ConnectionRefusedError(111, "Connection refused")
"""
    )
    # flaky (the bench extra) would shadow rerunfailures' own "flaky" marker
    result = run(p, "--dtf-retry", "--reruns", "1", *MODES[mode], "-p", "no:flaky")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*pytest-rerunfailures*is active*"])
    # rerunfailures runs it twice; dtf adds no retry of its own
    assert len(attempts_log(p.path / "attempts.log")["net"]) == 2


def test_bad_config_is_a_usage_error_naming_the_key(project):
    p = project("def test_ok(): pass", extra_toml="[tool.dtf]\nretry_budget = -3\n")
    result = run(p, "--dtf-retry", "-n", "2")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*retry_budget*"])


def test_bad_option_value_is_a_usage_error(project):
    p = project("def test_ok(): pass")
    result = run(p, "--dtf-retry", "--dtf-max-retries", "lots")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--dtf-max-retries*"])


def test_rerun_attempt_shows_as_R_and_RERUN(project):
    p = project(NETWORK_ONCE)
    result = run(p, "--dtf-retry", "-n", "2", "-v")
    result.stdout.fnmatch_lines(["*RERUN*test_net*"])
    result.stdout.fnmatch_lines(["*FLAKY*test_net*"])


@pytest.mark.parametrize("table", ["", "[tool.dtf]\n"])
def test_dtf_config_file_with_or_without_a_tool_dtf_table(pytester, table):
    pytester.makepyfile(
        """
def test_net():
    raise ConnectionRefusedError(111, "Connection refused")
"""
    )
    prefix = "tool.dtf." if table else ""
    pytester.path.joinpath("dtf.toml").write_text(
        f"[{prefix}retry_policies.NETWORK_CONNECTION_ERROR]\nmax_retries = 1\nretry_delay_seconds = 0.0\n"
    )
    result = run(pytester, "--dtf-retry", "--dtf-config", "dtf.toml", "-p", "no:xdist")
    assert outcomes(result) == {"failed": 1, "rerun": 1}
    pytester.path.joinpath("bad.toml").write_text(f"[{prefix}retry_policies.NETWORK_CONNECTION_ERROR]\nmax_retries = -1\n")
    result = run(pytester, "--dtf-retry", "--dtf-config", "bad.toml", "-p", "no:xdist")
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"*{prefix}retry_policies.NETWORK_CONNECTION_ERROR.max_retries*"])
