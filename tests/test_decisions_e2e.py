"""Decisions that must do no harm, and words that must agree (issue 11, sections 3, 5, 6).

Real sessions (pytester subprocesses, real xdist workers, real crashes): the
retry budget, quarantine, the pattern breaker and the counts in the final
line, the summary and the JSON report.
"""

from __future__ import annotations

import re

import pytest
from conftest import MODES, final_line, load_report, outcomes, project_factory, run

FAST = """
[tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR]
max_retries = 2
retry_delay_seconds = {delay}
retry_jitter = 0.0

[tool.dtf.retry_policies.NETWORK_TIMEOUT]
max_retries = 2
retry_delay_seconds = 0.0
retry_jitter = 0.0
"""


@pytest.fixture
def project(pytester: pytest.Pytester):
    return project_factory(pytester, FAST)


def line_counts(line: str) -> dict[str, int]:
    """'1 failed, 2 passed, 3 rerun in 1.2s' -> {"failed": 1, "passed": 2, "rerun": 3}."""
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", line)}


# -- the retry budget ------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_default_budget_does_not_starve_a_small_suite(project, mode):
    # 16 genuinely flaky tests, each failing once: every one gets its retry.
    p = project(
        """
import pytest
@pytest.mark.parametrize("i", range(16))
def test_flaky(i, dtf_attempt):
    if dtf_attempt == 1:
        raise ConnectionResetError(104, "Connection reset by peer (service-%d)" % i)
"""
    )
    result = run(p, "--dtf-retry", "--dtf-report", "r.json", *MODES[mode])
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result).get("flaky") == 16
    assert "used up" not in result.stdout.str()
    summary = load_report(p.path / "r.json")["summary"]
    assert summary["budget"] == 100 and summary["budget_used"] == 16
    result.stdout.fnmatch_lines(["retries: 16 used of budget 100 (default: *at least 100*)"])


# -- quarantine -------------------------------------------------------------------
TIMEOUTS_ON_GW0 = """
import os, pytest
CLAIMS = os.path.join(os.path.dirname(__file__), "claims")

def first_four_on_gw0(i):
    # the first four first attempts that land on gw0 time out (a flaky network)
    if os.environ.get("PYTEST_XDIST_WORKER") != "gw0":
        return False
    for slot in range(4):
        try:
            os.close(os.open("%s.%d" % (CLAIMS, slot), os.O_CREAT | os.O_EXCL))
            return True
        except FileExistsError:
            continue
    return False

@pytest.mark.parametrize("i", range(16))
def test_call(i, dtf_attempt):
    if dtf_attempt == 1 and first_four_on_gw0(i):
        raise TimeoutError("timed out reading from api-%d.example.test" % i)
"""


def test_network_timeouts_on_one_worker_do_not_quarantine_it(project):
    p = project(TIMEOUTS_ON_GW0)
    result = run(p, "--dtf-retry", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    report = load_report(p.path / "r.json")
    assert report["summary"]["flaky"] == 4
    assert not any(n["quarantined"] for n in report["nodes"]), result.stdout.str()
    assert "dtf: quarantined" not in result.stdout.str()
    # the summary says what would have been quarantined, and why not
    gw0 = next(n for n in report["nodes"] if n["id"] == "gw0")
    assert "not node-scoped" in gw0["quarantine_declined"], gw0
    assert "binomial" in gw0["quarantine_declined"], gw0
    result.stdout.fnmatch_lines(["not quarantined: gw0 (4 tests failed only on gw0*network_timeout*p=*)"])


def test_node_scoped_failures_still_quarantine_but_leave_half_the_workers(project):
    # The disks of gw0 and gw1 are full: resource_exhausted is node-scoped
    # evidence against both, but of 3 workers one quarantine leaves 2; a
    # second would leave 1, fewer than half.
    p = project(
        """
import errno, os, pytest
@pytest.mark.parametrize("i", range(30))
def test_disk(i):
    if os.environ["PYTEST_XDIST_WORKER"] in ("gw0", "gw1"):
        raise OSError(errno.ENOSPC, "No space left on device")
""",
        # quarantine alone (no breaker); retries enough for every test to reach gw2
        extra_toml="[tool.dtf]\nbreaker_min_tests = 1000\n"
        "[tool.dtf.retry_policies.RESOURCE_EXHAUSTED]\nmax_retries = 8\nretry_delay_seconds = 0.0\n",
    )
    result = run(p, "--dtf-retry", "-n", "3", "--dtf-report", "r.json")
    report = load_report(p.path / "r.json")
    nodes = {n["id"]: n for n in report["nodes"]}
    quarantined = [n for n, rec in nodes.items() if rec["quarantined"]]
    assert quarantined and set(quarantined) <= {"gw0", "gw1"}, result.stdout.str()
    assert all("resource_exhausted" in nodes[n]["quarantine_reason"] for n in quarantined)
    # never fewer than half of the workers left
    assert len(nodes) - len(quarantined) >= len(nodes) / 2, result.stdout.str()
    if len(nodes) == 4:
        # the last retry came after xdist had shut the workers down: a fourth worker was started
        # for it ("started a worker for a retry"), and 2 of 4 left is half: both may go
        result.stdout.fnmatch_lines(["*dtf: started a worker for a retry*"])
        return
    assert len(nodes) == 3 and len(quarantined) == 1, result.stdout.str()
    other = ({"gw0", "gw1"} - set(quarantined)).pop()
    assert "fewer than half" in nodes[other]["quarantine_declined"], nodes[other]
    result.stdout.fnmatch_lines([f"not quarantined: {other} (*fewer than half*)"])


# -- the pattern breaker and crashes -----------------------------------------------
def test_unrelated_crashes_are_not_one_systemic_pattern(project):
    # Three tests always take their worker down, each its own way; the last one
    # crashes once. Its retry is not refused as "systemic".
    p = project(
        """
import os, signal
def test_a_exit3(log):
    log("a")
    os._exit(3)

def test_b_exit7(log):
    log("b")
    os._exit(7)

def test_c_kill(log):
    log("c")
    os.kill(os.getpid(), signal.SIGKILL)

def test_d_crash_once(log, dtf_attempt):
    log("d")
    if dtf_attempt == 1:
        os._exit(3)
"""
    )
    result = run(p, "--dtf-retry", "-n", "2", "--max-worker-restart", "20", "--dtf-report", "r.json",
                 timeout=180)
    assert result.ret == 1
    tests = {t["nodeid"].split("::")[1]: t for t in load_report(p.path / "r.json")["tests"]}
    assert tests["test_d_crash_once"]["outcome"] == "flaky", result.stdout.str()
    assert "is systemic" not in result.stdout.str()
    assert not load_report(p.path / "r.json")["breaker"]
    for name in ("test_a_exit3", "test_b_exit7", "test_c_kill"):
        assert tests[name]["outcome"] in ("failed", "error")
        assert len(tests[name]["attempts"]) == 3  # worker_crashed: 2 retries each


DB_DOWN = """
import pytest
@pytest.mark.parametrize("i", range(12))
def test_db(i, log):
    log("db%d" % i)
    raise ConnectionRefusedError(
        111, "could not connect to server: Connection refused (db-%d.internal:%d)" % (i, 5432 + i))
"""


@pytest.mark.parametrize("mode", MODES)
def test_breaker_gives_one_message_and_the_counts_agree(project, mode):
    p = project(DB_DOWN, delay=0.3)
    result = run(p, "--dtf-retry", *MODES[mode], "--dtf-report", "r.json")
    assert result.ret == 1
    report = load_report(p.path / "r.json")
    (trip,) = report["breaker"]
    reasons = set()
    for t in report["tests"]:
        decision = t["attempts"][-1]["decision"]
        text = (t.get("reason") or "") + " " + decision["reason"]
        found = re.findall(r"pattern \S+ is systemic: .*?so the breaker stopped its retries", text)
        reasons.update(found)
    assert len(reasons) == 1, reasons  # one pattern, one message, the same numbers
    assert reasons == {trip["reason"]}
    # the final line's "rerun" counts the retries that ran, as the summary does
    ran = sum(len(t["attempts"]) - 1 for t in report["tests"])
    summary = report["summary"]
    assert summary["retries"] == ran == summary["budget_used"]
    line = line_counts(final_line(result))
    assert line.get("rerun", 0) == ran, (final_line(result), ran)
    assert line["failed"] == 12
    result.stdout.fnmatch_lines([f"retries: {ran} used of budget *"])


@pytest.mark.parametrize("mode", MODES)
def test_setup_errors_stay_errors_when_the_breaker_cancels_their_retries(project, mode):
    p = project(
        """
import pytest
@pytest.fixture
def db(log):
    raise ConnectionRefusedError(111, "could not connect to server: Connection refused")

@pytest.mark.parametrize("i", range(10))
def test_db(i, db):
    pass
""",
        delay=0.3,
    )
    result = run(p, "--dtf-retry", *MODES[mode], "--dtf-report", "r.json")
    assert result.ret == 1
    report = load_report(p.path / "r.json")
    assert report["breaker"] and report["breaker"][0]["tests"], result.stdout.str()
    assert {t["outcome"] for t in report["tests"]} == {"error"}
    assert report["summary"]["error"] == 10 and report["summary"]["failed"] == 0
    line = line_counts(final_line(result))
    assert line.get("errors") == 10 and "failed" not in line, final_line(result)


# -- one count per test ------------------------------------------------------------
def test_a_worker_dying_in_teardown_after_a_passed_call_counts_the_test_once(project):
    # The crash is retried (its teardown may be what killed it), every time:
    # the final line counts the test once, as the JSON report does.
    p = project(
        """
import os, pytest
@pytest.fixture
def dies_in_teardown():
    yield
    os._exit(1)

def test_dies(dies_in_teardown):
    pass

def test_ok():
    pass
"""
    )
    result = run(p, "--dtf-retry", "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 1
    report = load_report(p.path / "r.json")
    summary = report["summary"]
    dies = next(t for t in report["tests"] if t["nodeid"].endswith("test_dies"))
    assert dies["outcome"] in ("failed", "error") and len(dies["attempts"]) == 3
    line = line_counts(final_line(result))
    counted = {k: v for k, v in line.items() if k in ("passed", "failed", "errors", "error", "flaky")}
    assert sum(counted.values()) == 2, final_line(result)
    for word in ("passed", "failed", "flaky"):
        assert line.get(word, 0) == summary[word], (word, final_line(result))
    assert line.get("errors", line.get("error", 0)) == summary["error"], final_line(result)
    assert line.get("rerun") == summary["retries"] == 2, final_line(result)


@pytest.mark.parametrize("mode", MODES)
def test_a_test_interrupted_after_its_call_passed_counts_once(project, mode):
    # pytest.exit in a teardown ends the session (in-process) or the worker (xdist)
    p = project(
        """
import pytest
@pytest.fixture
def stops():
    yield
    pytest.exit("stopped in teardown")

def test_a():
    pass

def test_b_stops(stops):
    pass

def test_c():
    pass
"""
    )
    result = run(p, "--dtf-retry", *MODES[mode], "--dtf-report", "r.json")
    assert result.ret != 0
    report = load_report(p.path / "r.json")
    summary = report["summary"]
    line = line_counts(final_line(result))
    counted = {k: v for k, v in line.items() if k in ("passed", "failed", "errors", "error", "flaky")}
    assert sum(counted.values()) == 3, final_line(result)
    assert line.get("passed", 0) == summary["passed"], final_line(result)
    assert line.get("errors", line.get("error", 0)) == summary["error"], final_line(result)
    stops = next(t for t in report["tests"] if t["nodeid"].endswith("test_b_stops"))
    assert stops["outcome"] in ("failed", "error") and len(stops["attempts"]) == 1
