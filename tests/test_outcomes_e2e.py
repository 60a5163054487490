"""One outcome per test, the same in the terminal, the JSON report and JUnit (issue 11)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import MODES, load_report, run

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
