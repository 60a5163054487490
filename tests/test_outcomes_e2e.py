"""One outcome per test, the same in the terminal, the JSON report and JUnit (issue 11)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import MODES, load_report, outcomes, run

from pytest_dtf_errors.report import validate

NETWORK_TOML = """
[tool.dtf]
breaker_min_tests = 1000
[tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR]
max_retries = 2
retry_delay_seconds = 0.0
retry_jitter = 0.0
"""


def _report(p: pytest.Pytester) -> dict:
    data = load_report(p.path / "r.json")
    validate(data)
    return data


def _cases(path: Path) -> list[ET.Element]:
    return list(ET.parse(path).getroot().iter("testcase"))


# -- collection errors and the exit status -------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_collection_errors_and_the_exit_status_are_in_the_json_report(pytester, mode):
    pytester.makepyprojecttoml("[tool.dtf]\n")
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n", test_broken="def test_x(:\n")
    result = run(pytester, *MODES[mode], "--dtf-retry", "--dtf-report", "r.json")
    # pytest stops at a collection error (2); xdist runs the rest and fails (1)
    assert result.ret == (2 if mode == "inprocess" else 1)
    data = _report(pytester)
    assert data["run"]["exit_status"] == result.ret
    assert data["run"]["collection_errors"] == 1
    [error] = data["collection_errors"]
    assert error["nodeid"] == "test_broken.py"
    assert "SyntaxError" in error["message"] or "invalid syntax" in error["message"]


def test_continue_on_collection_errors_still_lists_them(pytester):
    pytester.makepyprojecttoml("[tool.dtf]\n")
    pytester.makepyfile(
        test_ok="def test_ok():\n    pass\n",
        test_import="import not_a_module_anywhere\n\ndef test_y():\n    pass\n",
    )
    # in-process: under -n 2 this option ends in an INTERNALERROR of the scheduler (reported)
    result = run(pytester, "-p", "no:xdist", "--continue-on-collection-errors", "--dtf-report", "r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    data = _report(pytester)
    assert data["run"]["exit_status"] == 1
    assert data["run"]["collection_errors"] == 1
    [error] = data["collection_errors"]
    assert error["nodeid"] == "test_import.py"
    assert "not_a_module_anywhere" in error["message"]
    assert [t["outcome"] for t in data["tests"]] == ["passed"]


def test_a_clean_run_has_exit_status_0_and_no_collection_errors(pytester):
    pytester.makepyprojecttoml("[tool.dtf]\n")
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = run(pytester, "-p", "no:xdist", "--dtf-report", "r.json")
    assert result.ret == 0
    data = _report(pytester)
    assert data["run"]["exit_status"] == 0
    assert data["run"]["collection_errors"] == 0 and data["collection_errors"] == []


# -- a failure in call and an error in teardown ------------------------------------
CALL_AND_TEARDOWN = """
import pytest

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown boom")

def test_both(bad_teardown):
    assert False, "call boom"

def test_teardown_only(bad_teardown):
    pass
"""


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("retry", [True, False], ids=["retry", "no-retry"])
def test_call_failure_and_teardown_error_are_both_kept(pytester, mode, retry):
    pytester.makepyprojecttoml("[tool.dtf]\n")
    pytester.makepyfile(test_ct=CALL_AND_TEARDOWN)
    args = [*MODES[mode], "--dtf-report", "r.json", "--junitxml", "j.xml"]
    result = run(pytester, *args, *(["--dtf-retry"] if retry else []))
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED test_ct.py::test_both - AssertionError: call boom*"])
    result.stdout.fnmatch_lines(["ERROR test_ct.py::test_both - RuntimeError: teardown boom*"])
    data = _report(pytester)
    both = next(t for t in data["tests"] if t["nodeid"].endswith("test_both"))
    assert both["outcome"] == "failed"
    [attempt] = both["attempts"]
    assert attempt["phase"] == "call" and "call boom" in attempt["error"]["message"]
    assert "teardown boom" in attempt["error"]["teardown_error"]["message"]
    # JUnit, as pytest's junitxml writes it: the <failure> and, beside it, the <error>
    cases = [c for c in _cases(pytester.path / "j.xml") if c.get("name") == "test_both"]
    assert [[ch.tag for ch in c if ch.tag in ("failure", "error")] for c in cases] == [
        ["failure"],
        ["error"],
    ]
    assert "call boom" in cases[0].find("failure").get("message")
    assert "teardown boom" in cases[1].find("error").get("message")
    [only] = [c for c in _cases(pytester.path / "j.xml") if c.get("name") == "test_teardown_only"]
    assert only.find("error") is not None and only.find("failure") is None


# -- two nodeids, one JUnit name ------------------------------------------------------
FLAKY_NET = """
def test_one(dtf_attempt):
    if dtf_attempt == 1:
        raise ConnectionRefusedError("[Errno 111] Connection refused")
"""
BROKEN_NET = """
def test_one():
    raise ConnectionRefusedError("[Errno 111] Connection refused")
"""


@pytest.mark.parametrize("mode", MODES)
def test_two_nodeids_with_one_junit_name_get_one_testcase_each(pytester, mode):
    pytester.makepyprojecttoml(NETWORK_TOML)
    (pytester.path / "a" / "b").mkdir(parents=True)
    (pytester.path / "a.b").mkdir()
    (pytester.path / "a" / "b" / "test_x.py").write_text(FLAKY_NET)
    (pytester.path / "a.b" / "test_x.py").write_text(BROKEN_NET)
    result = run(
        pytester, *MODES[mode], "--import-mode=importlib", "--dtf-retry",
        "--dtf-report", "r.json", "--junitxml", "j.xml",
    )
    assert result.ret == 1
    data = _report(pytester)
    by_id = {t["nodeid"]: t for t in data["tests"]}
    assert by_id["a/b/test_x.py::test_one"]["outcome"] == "flaky"
    assert by_id["a.b/test_x.py::test_one"]["outcome"] == "failed"
    cases = [c for c in _cases(pytester.path / "j.xml") if c.get("name") == "test_one"]
    assert len(cases) == 2 and {c.get("classname") for c in cases} == {"a.b.test_x"}
    props = {
        c.find("properties/property[@name='dtf_nodeid']").get("value"): c for c in cases
    }
    flaky, failed = props["a/b/test_x.py::test_one"], props["a.b/test_x.py::test_one"]
    assert flaky.find("failure") is None and len(flaky.findall("flakyFailure")) == 1
    assert failed.find("failure") is not None and len(failed.findall("rerunFailure")) == 2
    # no attempt that failed is written as a testcase that passed
    suite = ET.parse(pytester.path / "j.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")


# -- pytest-rerunfailures' reruns -------------------------------------------------------
RERUN_SUITE = """
import os

def test_once(tmp_path_factory):
    marker = os.path.join(os.path.dirname(__file__), "once.marker")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise ConnectionRefusedError("[Errno 111] Connection refused")

def test_always():
    raise ConnectionRefusedError("[Errno 111] Connection refused")
"""


@pytest.mark.parametrize("mode", MODES)
def test_rerunfailures_reruns_are_failed_attempts_and_a_fail_once_test_is_flaky(pytester, mode):
    pytest.importorskip("pytest_rerunfailures")
    pytester.makepyprojecttoml("[tool.dtf]\n")
    pytester.makepyfile(test_rr=RERUN_SUITE)
    result = run(
        pytester, *MODES[mode], "--reruns", "2", "--dtf-report", "r.json", "--junitxml", "j.xml"
    )
    assert result.ret == 1
    data = _report(pytester)
    tests = {t["nodeid"].rsplit("::", 1)[1]: t for t in data["tests"]}
    once, always = tests["test_once"], tests["test_always"]
    assert once["outcome"] == "flaky"
    assert [a["outcome"] for a in once["attempts"]] == ["failed", "passed"]
    assert once["attempts"][0]["category"] == "network_connection_error"
    assert always["outcome"] == "failed"
    assert [a["outcome"] for a in always["attempts"]] == ["failed"] * 3
    assert {a["category"] for a in always["attempts"]} == {"network_connection_error"}
    assert data["summary"]["retries"] == outcomes(result)["rerun"] == 3
    cases = {c.get("name"): c for c in _cases(pytester.path / "j.xml")}
    assert len(_cases(pytester.path / "j.xml")) == 2
    assert cases["test_once"].find("failure") is None
    assert len(cases["test_once"].findall("flakyFailure")) == 1
    assert len(cases["test_always"].findall("rerunFailure")) == 2


# -- --dist each: every worker runs every test -------------------------------------------
# the worker that passes is slower: the failure is reported first, then the pass
EACH_SUITE = """
import os, time

def test_fails_on_gw0():
    if os.environ.get("PYTEST_XDIST_WORKER") == "gw0":
        raise ConnectionRefusedError("[Errno 111] Connection refused")
    time.sleep(0.5)

def test_fails_on_gw1():
    if os.environ.get("PYTEST_XDIST_WORKER") == "gw1":
        assert False, "only on gw1"
    time.sleep(0.5)

def test_passes():
    pass
"""


@pytest.mark.parametrize("retry", [True, False], ids=["retry", "no-retry"])
def test_dist_each_a_test_failed_on_any_worker_is_failed_in_every_report(pytester, retry):
    pytester.makepyprojecttoml(NETWORK_TOML)
    pytester.makepyfile(test_each=EACH_SUITE)
    args = ["-n", "2", "--dist", "each", "-v", "--dtf-report", "r.json", "--junitxml", "j.xml"]
    result = run(pytester, *args, *(["--dtf-retry"] if retry else []))
    out = result.stdout.str()
    assert "INTERNALERROR" not in out
    assert result.ret == 1
    assert "FLAKY" not in out and "RERUN" not in out
    assert outcomes(result) == {"passed": 4, "failed": 2}
    data = _report(pytester)
    tests = {t["nodeid"].rsplit("::", 1)[1]: t for t in data["tests"]}
    for name in ("test_fails_on_gw0", "test_fails_on_gw1"):
        assert tests[name]["outcome"] == "failed", tests[name]
        attempts = tests[name]["attempts"]
        assert sorted(a["node"] for a in attempts) == ["gw0", "gw1"]  # one attempt per worker
        assert sorted(a["outcome"] for a in attempts) == ["failed", "passed"]
        assert all(not (a["decision"] or {}).get("retry") for a in attempts)
    assert tests["test_passes"]["outcome"] == "passed"
    assert len(tests["test_passes"]["attempts"]) == 2
    assert data["summary"]["retries"] == 0 and data["summary"]["budget_used"] == 0  # runs, not retries
    cases = {c.get("name"): c for c in _cases(pytester.path / "j.xml")}
    assert len(_cases(pytester.path / "j.xml")) == 3
    assert cases["test_fails_on_gw0"].find("failure") is not None
    assert cases["test_fails_on_gw1"].find("failure") is not None
    assert cases["test_passes"].find("failure") is None
