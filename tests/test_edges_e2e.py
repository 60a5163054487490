"""Edges of the retry loop end to end: grouping modes, crash kinds, hostile errors, timeouts, --lf."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
from conftest import LOGGING_CONFTEST, attempts_log, load_report, outcomes, result_words, run

from pytest_dtf_errors.report import validate


@pytest.fixture
def project(pytester: pytest.Pytester):
    def make(files: dict[str, str], toml: str = "[tool.dtf]\nbreaker_min_tests = 1000\n") -> pytest.Pytester:
        pytester.makeconftest(LOGGING_CONFTEST)
        pytester.makepyprojecttoml(toml)
        pytester.makepyfile(**files)
        return pytester

    return make


GROUPED = """
import time, pytest
@pytest.mark.parametrize("i", range(4))
def test_t(log, i):
    log("{name}%d" % i)
    time.sleep(0.02)
"""


@pytest.mark.parametrize("mode", ["loadfile", "loadscope"])
def test_grouped_modes_keep_a_file_or_scope_on_one_worker(project, mode):
    p = project({f"test_{n}": GROUPED.format(name=n) for n in ("a", "b", "c", "d")})
    result = run(p, "-n", "2", "--dist", mode, "--dtf-retry")
    assert result.ret == 0, result.stdout.str()
    log = attempts_log(p.path / "attempts.log")
    for n in ("a", "b", "c", "d"):
        workers = {w for name, att in log.items() if name.startswith(n) for _, w, _ in att}
        assert len(workers) == 1, (n, workers)


def test_loadgroup_keeps_a_group_on_one_worker(project):
    p = project(
        {
            "test_g": """
import pytest
@pytest.mark.xdist_group("db")
@pytest.mark.parametrize("i", range(5))
def test_db(log, i):
    log("db%d" % i)

@pytest.mark.parametrize("i", range(5))
def test_free(log, i):
    log("free%d" % i)
"""
        }
    )
    result = run(p, "-n", "2", "--dist", "loadgroup", "--dtf-retry")
    assert result.ret == 0
    log = attempts_log(p.path / "attempts.log")
    assert len({w for name, att in log.items() if name.startswith("db") for _, w, _ in att}) == 1


def test_worksteal_falls_back_to_load_with_a_warning(project):
    p = project({"test_w": "def test_ok(): pass"})
    result = run(p, "-n", "2", "--dist", "worksteal", "--dtf-retry")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--dist worksteal is not supported*falling back to --dist load*"])


def test_segfault_is_a_system_crash_and_sigkill_a_worker_crash(project):
    p = project(
        {
            "test_c": """
import ctypes, os, signal
def test_segv(dtf_attempt):
    if dtf_attempt == 1:
        ctypes.string_at(0)

def test_kill(dtf_attempt):
    if dtf_attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)

def test_ok():
    pass
"""
        }
    )
    result = run(p, "-n", "2", "--dtf-retry", "--dtf-report", "r.json", "-p", "no:faulthandler")
    assert result.ret == 0, result.stdout.str()
    tests = {t["nodeid"].split("::")[1]: t for t in load_report(p.path / "r.json")["tests"]}
    segv = tests["test_segv"]["attempts"][0]
    assert (segv["category"], segv["error"]["signal"]) == ("system_crash", "SIGSEGV")
    kill = tests["test_kill"]["attempts"][0]
    assert (kill["category"], kill["error"]["signal"]) == ("worker_crashed", "SIGKILL")
    assert tests["test_segv"]["outcome"] == tests["test_kill"]["outcome"] == "flaky"


HOSTILE = """
import pytest

class Nasty(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")

def test_huge():
    raise ConnectionError("x" * 10_000_000)

def test_unprintable():
    raise Nasty()

def test_bytes():
    raise ValueError(b"\\xff\\xfe\\x00 not utf-8 \\x80")
"""


@pytest.mark.parametrize("mode", [["-n", "2"], ["-p", "no:xdist"]], ids=["xdist", "inprocess"])
def test_hostile_error_text_is_handled(project, mode):
    p = project({"test_h": HOSTILE})
    result = run(p, *mode, "--dtf-retry", "--dtf-report", "r.json", "--junitxml", "j.xml")
    assert result.ret == 1
    report = load_report(p.path / "r.json")
    validate(report)
    assert [t["outcome"] for t in report["tests"]] == ["failed"] * 3
    huge = report["tests"][0]["attempts"][0]["error"]["message"]
    assert len(huge) < 10_000, "messages are cut to a bound"
    assert "unprintable" in report["tests"][1]["attempts"][0]["error"]["message"]


def test_timeout_is_scaled_for_the_retry_under_pytest_timeout(project):
    pytest.importorskip("pytest_timeout")
    p = project(
        {
            "test_t": """
import time, pytest
@pytest.mark.timeout(1)
def test_slow(log):
    log("slow")
    time.sleep(1.4)
"""
        }
    )
    result = run(p, "-n", "2", "--dtf-retry", "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    [test] = load_report(p.path / "r.json")["tests"]
    first, second = test["attempts"]
    assert first["category"] == "worker_timeout" and second["outcome"] == "passed"
    assert {"kind": "scale_timeout", "factor": 2.0} in first["actions"]
    assert test["outcome"] == "flaky"


def test_last_failed_sees_final_outcomes(project):
    p = project(
        {
            "test_l": """
def test_flaky(dtf_attempt):
    if dtf_attempt == 1:
        raise ConnectionRefusedError(111, "Connection refused")

def test_broken():
    assert False
"""
        }
    )
    first = p.runpytest_subprocess("-p", "no:pytest-retry", "-p", "no:flaky", "-n", "2", "--dtf-retry")
    assert first.ret == 1
    again = p.runpytest_subprocess("-p", "no:pytest-retry", "-p", "no:flaky", "-n", "2", "--dtf-retry", "--lf")
    assert outcomes(again) == {"failed": 1}  # only test_broken ran again


def test_waiting_tests_are_skipped_when_their_only_workers_die(project):
    p = project(
        {
            "test_d": """
import os, pytest
@pytest.mark.hardware("cuda")
@pytest.mark.parametrize("i", range(6))
def test_gpu(i):
    if i == 0:
        os._exit(1)

def test_cpu():
    pass
"""
        }
    )
    args = ["-d", "--tx", "popen//env:DTF_HARDWARE=cuda", "--tx", "popen//env:DTF_HARDWARE==cpu"]
    result = run(p, *args, "--max-worker-restart", "0", "--dtf-report", "r.json", "-rs")
    report = load_report(p.path / "r.json")
    outcomes_by_test = {t["nodeid"]: (t["outcome"], t.get("reason") or "") for t in report["tests"]}
    assert len(outcomes_by_test) == 7
    waiting = [o for n, o in outcomes_by_test.items() if "test_gpu[" in n and not n.endswith("[0]")]
    assert all(o == "skipped" and "requires hardware cuda" in r for o, r in waiting), outcomes_by_test
    result.stdout.fnmatch_lines(["*requires hardware cuda; no worker has it*"])


def test_plugin_can_be_turned_off(pytester):
    pytester.makepyfile("def test_ok(): pass")
    result = run(pytester, "-p", "no:dtf_errors", "-n", "2")
    assert result.ret == 0
    assert "dtf" not in result.stdout.str()
    result = run(pytester, "-p", "no:dtf_errors", "--dtf-retry")
    assert result.ret == 4


def test_dist_each_is_left_to_xdist_and_still_categorized(project):
    p = project({"test_e": "def test_ok():\n    pass\n\ndef test_bad():\n    assert False\n"})
    result = run(p, "-n", "2", "--dist", "each", "--dtf-retry", "--dtf-report", "r.json")
    assert result.ret == 1
    assert outcomes(result)["passed"] == 2 and outcomes(result)["failed"] == 2
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*test_assertion_error*"])


SILENT_AFTER_PASS = """
import os, signal, time, pytest

@pytest.fixture
def silent_in_teardown():
    yield
    try:  # the first worker here goes silent, once: stopped, not dead
        fd = os.open("stopped.pid", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGSTOP)

def test_passes_then_goes_silent(silent_in_teardown):
    pass

@pytest.mark.parametrize("i", range(6))
def test_other(i):
    time.sleep(0.05)
"""


def test_a_test_that_passed_before_its_worker_went_silent_keeps_its_one_pass(project):
    # The call report (passed) arrives, the teardown report never does: the
    # worker is declared lost and xdist reports the test as its crash item.
    # CI saw this on a flapping host as "passed" on the terminal and "flaky" in the JSON.
    p = project({"test_suite.py": SILENT_AFTER_PASS})
    pid_file = p.path / "stopped.pid"
    try:
        result = run(
            p, "-n", "2", "-v", "--dtf-retry", "-o", "dtf_heartbeat_timeout=2",
            "--dtf-report", "r.json",
        )
        # the silent worker was killed, not left stopped behind the session
        state = _process_state(int(pid_file.read_text()))
        assert state in (None, "Z"), state
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
    out = result.stdout.str()
    assert result.ret == 0, out
    assert outcomes(result) == {"passed": 7}, out
    assert result_words(result, "test_passes_then_goes_silent") == ["PASSED"], out
    assert "RERUN" not in out and "FLAKY" not in out and "ERROR" not in out, out
    report = load_report(p.path / "r.json")
    validate(report)
    assert report["summary"]["passed"] == 7
    test = next(t for t in report["tests"] if t["nodeid"].endswith("test_passes_then_goes_silent"))
    assert test["outcome"] == "passed"
    [attempt] = test["attempts"]
    assert attempt["outcome"] == "passed"
    assert "was lost before its teardown" in attempt["decision"]["reason"]
    assert [n["id"] for n in report["nodes"] if n.get("lost")] == [attempt["node"]]


def _process_state(pid: int) -> str | None:
    """The state letter from /proc (R, S, T for stopped, Z), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


DIES_AFTER_PASS = """
import os, pytest

@pytest.fixture
def dies_in_teardown():
    yield
    try:  # the first worker here dies, once, after the test body passed
        os.close(os.open("died", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(1)

def test_passes_then_worker_dies(dies_in_teardown):
    pass

def test_other():
    pass
"""


def test_a_worker_that_dies_after_a_test_passed_is_a_crash_and_is_retried(project):
    # Unlike a silent worker, a dead one is a failure of the test's protocol
    # (its teardown may be what killed it): the crash is retried. pytest's
    # line counts the first pass too, as plain xdist does; the JSON one outcome.
    p = project({"test_suite.py": DIES_AFTER_PASS})
    result = run(p, "-n", "2", "-v", "--dtf-retry", "--dtf-report", "r.json")
    out = result.stdout.str()
    assert result.ret == 0, out
    assert result_words(result, "test_passes_then_worker_dies") == ["PASSED", "RERUN", "FLAKY"], out
    report = load_report(p.path / "r.json")
    validate(report)
    test = next(t for t in report["tests"] if t["nodeid"].endswith("test_passes_then_worker_dies"))
    assert test["outcome"] == "flaky"
    assert [a["category"] for a in test["attempts"]] == ["worker_crashed", None]
