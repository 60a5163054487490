"""Hostile input end to end: text that cannot be encoded, exception groups, user regexes,
numbers out of bounds, report paths that are not plain files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from xml.etree import ElementTree

import pytest
from conftest import LOGGING_CONFTEST, MODES, attempts_log, load_report, outcomes, run

from pytest_dtf_errors.report import validate

SURROGATES = r'''
import pytest

def test_before():
    pass

def test_call():
    raise Exception("bad \udcff text")

@pytest.fixture
def broken():
    raise ConnectionRefusedError("refused \ud800 by peer")

def test_setup(broken):
    pass

def test_property(record_property):
    record_property("note", "lone \udfff surrogate")
    assert False, "and \udcfe in the assertion"

def test_after():
    pass
'''


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_unencodable_text_fails_its_test_and_the_session_finishes(pytester, monkeypatch, mode):
    if "no:xdist" in mode:
        # in-process, pytest itself prints the raw text (as surrogateescape bytes): not ours
        monkeypatch.setenv("PYTHONIOENCODING", "utf-8:backslashreplace")
    pytester.makepyfile(test_s=SURROGATES)
    result = run(pytester, *mode, "--dtf-report=r.json", "--junitxml=j.xml", "-o", "junit_family=xunit1")
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text, text
    assert outcomes(result) == {"passed": 2, "failed": 2, "errors": 1}, text
    assert result.ret == 1
    report = load_report(pytester.path / "r.json")
    validate(report)
    by_name = {t["nodeid"].rsplit("::", 1)[-1]: t for t in report["tests"]}
    assert by_name["test_call"]["outcome"] == "failed"
    error = by_name["test_call"]["attempts"][0]["error"]
    # the bad code point is kept visible, as an escape, and the text is valid UTF-8
    assert "bad \\udcff text" in error["message"]
    (pytester.path / "r.json").read_bytes().decode("utf-8")
    junit = ElementTree.parse(pytester.path / "j.xml").getroot()
    assert junit.find("testsuite").get("tests") == "5"
    assert by_name["test_setup"]["attempts"][0]["category"] == "network_connection_error"
    assert "bad \\udcff text" in text


def test_unencodable_text_is_retried_by_its_category_under_xdist(pytester):
    pytester.makepyfile(test_r=r'''
def test_flaky(dtf_attempt):
    if dtf_attempt == 1:
        raise ConnectionRefusedError("refused \udcff")

def test_ok():
    pass
''')
    result = run(pytester, "-n", "2", "--dtf-retry", "--dtf-report=r.json")
    assert "INTERNALERROR" not in result.stdout.str()
    assert result.ret == 0, result.stdout.str()
    tests = {t["nodeid"].rsplit("::", 1)[-1]: t for t in load_report(pytester.path / "r.json")["tests"]}
    assert tests["test_flaky"]["outcome"] == "flaky"
    assert tests["test_flaky"]["attempts"][0]["category"] == "network_connection_error"


# passed the old backtracking check; Python's re takes 196 s on the first message below
HANGS_IN_RE = r'''
[tool.dtf.error_patterns]
'^(1\d|\d1)+$' = "NETWORK_TIMEOUT"
'''


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_a_user_regex_that_backtracks_in_re_cannot_hang_the_run(pytester, mode):
    pytester.makepyprojecttoml(HANGS_IN_RE)
    pytester.makepyfile(test_rx='''
def test_no_match():
    raise ValueError("1" * 60 + "!")

def test_match():
    raise ValueError("1" * 60)
''')
    result = run(pytester, *mode, "--dtf-report=r.json", timeout=90)
    assert outcomes(result) == {"failed": 2}, result.stdout.str()
    tests = {t["nodeid"].rsplit("::", 1)[-1]: t for t in load_report(pytester.path / "r.json")["tests"]}
    assert tests["test_no_match"]["attempts"][0]["category"] == "unknown"
    assert tests["test_match"]["attempts"][0]["category"] == "network_timeout"
    assert tests["test_match"]["attempts"][0]["rule"] == r"user-pattern:^(1\d|\d1)+$"


@pytest.mark.parametrize("rx, why", [(r"(\w+) \1", "invalid escape sequence"),
                                     (r"timeout(?! ok)", "invalid perl operator")])
def test_a_user_regex_re2_cannot_take_is_a_usage_error_naming_the_key(pytester, rx, why):
    pytester.makepyprojecttoml(f"[tool.dtf.error_patterns]\n'{rx}' = \"NETWORK_TIMEOUT\"\n")
    pytester.makepyfile(test_ok="def test_ok(): pass")
    result = run(pytester, "-p", "no:xdist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"tool.dtf.error_patterns.{rx!r}" in err, err
    assert "RE2 cannot take this regex" in err and why in err
    assert "Traceback" not in err


OUT_OF_BOUNDS = [
    (("[tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR]\n"
      "retry_delay_seconds = 1e308\nmax_retry_delay_seconds = 1e308\n"), [],
     "tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR.retry_delay_seconds"),
    ("[tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR]\nmax_retry_delay_seconds = 1e308\n", [],
     "tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR.max_retry_delay_seconds"),
    ("[tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR]\nretry_backoff_factor = 1e308\n", [],
     "tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR.retry_backoff_factor"),
    ("[tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR]\nmax_retries = 100000000\n", [],
     "tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR.max_retries"),
    ("[tool.dtf]\nheartbeat_timeout = 1e308\n", [], "tool.dtf.heartbeat_timeout"),
    ("[tool.dtf]\nsimilarity_threshold = 1e308\n", [], "tool.dtf.similarity_threshold"),
    ("", ["-o", "dtf_heartbeat_timeout=1e308"], "dtf_heartbeat_timeout"),
    ("", ["--dtf-retry-budget=1e308"], "--dtf-retry-budget"),
    ("", ["--dtf-max-retries=" + "9" * 5000], "--dtf-max-retries"),
]


@pytest.mark.parametrize("toml, args, key", OUT_OF_BOUNDS, ids=[c[2] for c in OUT_OF_BOUNDS])
def test_a_number_out_of_bounds_is_a_usage_error_naming_the_key(pytester, toml, args, key):
    if toml:
        pytester.makepyprojecttoml(toml)
    pytester.makepyfile(test_n="def test_refused():\n    raise ConnectionRefusedError('no')\n")
    result = run(pytester, "-p", "no:xdist", "--dtf-retry", *args, timeout=60)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    err = result.stderr.str()
    assert "pytest-dtf-errors: " in err and f" {key}: must be" in err, err
    assert "Traceback" not in err


GROUPS = '''
import pytest
try:
    ExceptionGroup
except NameError:  # Python 3.10: pytest's own dependency
    from exceptiongroup import ExceptionGroup

def refused():
    return ConnectionRefusedError("connection refused")

def test_assert_last(log):
    log("assert_last")
    raise ExceptionGroup("two", [refused(), AssertionError("wrong answer")])

def test_assert_first(log):
    log("assert_first")
    raise ExceptionGroup("two", [AssertionError("wrong answer"), refused()])

def test_assert_ninth(log):
    log("assert_ninth")
    raise ExceptionGroup("nine", [refused() for _ in range(8)] + [AssertionError("late")])

def test_assert_nested_under_a_timeout_message(log):
    log("assert_nested")
    inner = ExceptionGroup("inner", [refused(), AssertionError("deep")])
    raise ExceptionGroup("request timed out", [TimeoutError("timed out"), inner])

def test_network_ab(log, dtf_attempt):
    log("network_ab")
    if dtf_attempt == 1:
        raise ExceptionGroup("net", [refused(), TimeoutError("timed out")])

def test_network_ba(log, dtf_attempt):
    log("network_ba")
    if dtf_attempt == 1:
        raise ExceptionGroup("net", [TimeoutError("timed out"), refused()])
'''


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_an_exception_group_is_decided_whatever_the_order_of_its_members(pytester, mode):
    pytester.makeconftest(LOGGING_CONFTEST)
    pytester.makepyfile(test_groups=GROUPS)
    result = run(pytester, *mode, "--dtf-retry", "--dtf-report=r.json")
    counts = outcomes(result)
    assert (counts["failed"], counts["flaky"]) == (4, 2), result.stdout.str()
    tests = {t["nodeid"].rsplit("::", 1)[-1]: t for t in load_report(pytester.path / "r.json")["tests"]}
    runs = attempts_log(pytester.path / "attempts.log")
    for name in ("test_assert_last", "test_assert_first", "test_assert_ninth",
                 "test_assert_nested_under_a_timeout_message"):
        assert tests[name]["outcome"] == "failed", name
        assert tests[name]["attempts"][0]["category"] == "test_assertion_error", name
        assert len(tests[name]["attempts"]) == 1, name
    assert [len(runs[n]) for n in ("assert_last", "assert_first", "assert_ninth",
                                   "assert_nested")] == [1, 1, 1, 1]
    ab, ba = tests["test_network_ab"], tests["test_network_ba"]
    assert ab["outcome"] == ba["outcome"] == "flaky"
    # the same members in either order: the same decision (ErrorCategory's order)
    assert ab["attempts"][0]["category"] == ba["attempts"][0]["category"] == "network_timeout"
    assert ab["attempts"][0]["rule"] == ba["attempts"][0]["rule"]


TWO_TESTS = "def test_ok():\n    pass\n\ndef test_bad():\n    assert 0\n"


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_reports_to_a_symlink_are_written_through_the_link(pytester, mode):
    pytester.makepyfile(test_two=TWO_TESTS)
    out = pytester.mkdir("artifacts")
    (pytester.path / "r.json").symlink_to(out / "report.json")  # dangling until written
    (out / "junit.xml").write_text("old")
    (pytester.path / "j.xml").symlink_to(out / "junit.xml")
    result = run(pytester, *mode, "--dtf-report=r.json", "--junitxml=j.xml")
    assert result.ret == 1, result.stdout.str()
    assert (pytester.path / "r.json").is_symlink() and (pytester.path / "j.xml").is_symlink()
    validate(load_report(out / "report.json"))
    junit = ElementTree.parse(out / "junit.xml").getroot()
    assert junit.find("testsuite").get("failures") == "1"
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_report_to_a_fifo_is_written_into_it_never_replacing_it(pytester):
    pytester.makepyfile(test_two=TWO_TESTS)
    fifo = pytester.path / "pipe.json"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = run(pytester, "-p", "no:xdist", f"--dtf-report={fifo}")
    if reader.is_alive():  # the report never came through the pipe: let the reader go
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    reader.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a file"
    assert result.ret == 1, result.stdout.str()
    validate(json.loads(got[0]))


def test_a_report_to_a_directory_is_refused_and_the_directory_left_alone(pytester):
    pytester.makepyfile(test_two=TWO_TESTS)
    target = pytester.mkdir("reports")
    (target / "keep.txt").write_text("mine")
    result = run(pytester, "-p", "no:xdist", "--dtf-report=reports")
    assert target.is_dir() and (target / "keep.txt").read_text() == "mine"
    result.stdout.fnmatch_lines(["pytest-dtf-errors: report not written: *is a directory, not a regular file*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert result.ret == 1 and outcomes(result) == {"passed": 1, "failed": 1}  # the run's own outcome stands


def test_printing_a_report_into_a_closed_pipe_ends_quietly(pytester):
    pytester.makepyfile(test_many="import pytest\n@pytest.mark.parametrize('i', range(300))\n"
                                  "def test_t(i):\n    assert i % 3\n")
    run(pytester, "-p", "no:xdist", "--dtf-report=r.json")
    # `python -m pytest_dtf_errors.report r.json -v | head -1`: the reader goes away at once
    proc = subprocess.Popen([sys.executable, "-m", "pytest_dtf_errors.report", "r.json", "-v"],
                            cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141, err  # what a shell reports for a tool ended by SIGPIPE
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_a_passing_test_that_logs_unencodable_text_passes_under_xdist(pytester):
    pytester.makepyfile(test_log=r'''
import logging

def test_logs():
    logging.getLogger("app").warning("odd \udcff name")

def test_other():
    pass
''')
    result = run(pytester, "-n", "2", "-rP")
    assert "INTERNALERROR" not in result.stdout.str()
    assert outcomes(result) == {"passed": 2}, result.stdout.str()
    assert "odd \\udcff name" in result.stdout.str()


def test_a_warning_with_unencodable_text_is_shown_under_xdist(pytester):
    pytester.makepyfile(test_warn=r'''
import warnings

def test_warns():
    warnings.warn("odd \udcff warning")

def test_other():
    pass
''')
    result = run(pytester, "-n", "2")
    assert "INTERNALERROR" not in result.stdout.str()
    assert outcomes(result) == {"passed": 2, "warnings": 1}, result.stdout.str()
    assert "odd \\udcff warning" in result.stdout.str()
