"""Installed but not asked: xdist's run, unchanged; asked: xdist's scheduling properties kept."""

from __future__ import annotations

import re

import pytest
from conftest import final_line, load_report, outcomes, run

SLOW4 = """
import time, pytest
@pytest.mark.parametrize("i", range(4))
def test_slow(i):
    time.sleep(1)
"""


def _workers_of(result: pytest.RunResult, prefix: str) -> dict[str, int]:
    """xdist's -v lines ("[gw0] [ 50%] PASSED test_a.py::test[1]") counted per worker."""
    counts: dict[str, int] = {}
    for line in result.outlines:
        m = re.match(r"\[(gw\d+)\] \[\s*\d+%\] \w+ (\S+)", line)
        if m and m.group(2).startswith(prefix):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def test_without_dtf_retry_xdist_schedules(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass\ndef test_b(): pass\n")
    plain = run(pytester, "-n", "2", "-v")
    assert plain.ret == 0
    plain.stdout.fnmatch_lines(["scheduling tests via LoadScheduling"])
    scope = run(pytester, "-n", "2", "-v", "--dist", "loadscope")
    scope.stdout.fnmatch_lines(["scheduling tests via LoadScopeScheduling"])
    asked = run(pytester, "-n", "2", "-v", "--dtf-retry")
    asked.stdout.fnmatch_lines(["scheduling tests via DtfScheduling"])


def test_header_lines_only_with_verbose(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass\n")
    for args in ((), ("--dtf-retry",)):
        quiet = run(pytester, "-n", "2", *args)
        assert quiet.ret == 0
        assert not [line for line in quiet.outlines if "dtf: host" in line], quiet.stdout.str()
    loud = run(pytester, "-n", "2", "-v", "--dtf-retry")
    loud.stdout.fnmatch_lines(["[[]gw*[]] dtf: host localhost, hardware cpu"])


def test_a_crash_without_dtf_retry_is_reported_as_xdist_does(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_crash="import os\ndef test_crash():\n    os._exit(1)\ndef test_ok():\n    pass\n"
    )
    result = run(pytester, "-n", "2", "--dtf-report=r.json")
    assert result.ret == 1
    assert outcomes(result) == {"failed": 1, "passed": 1}, final_line(result)
    result.stdout.fnmatch_lines(["FAILED test_crash.py::test_crash*"])
    assert "ERROR at" not in result.stdout.str()
    tests = {t["nodeid"]: t for t in load_report(pytester.path / "r.json")["tests"]}
    assert tests["test_crash.py::test_crash"]["outcome"] == "failed"
    assert tests["test_crash.py::test_crash"]["attempts"][0]["category"] == "worker_crashed"


def test_dist_each_under_filterwarnings_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(test_a="def test_a(): pass\ndef test_b(): pass\n")
    for args in ((), ("--dtf-retry",)):
        result = run(pytester, "-n", "2", "--dist", "each", *args)
        assert result.ret == 0, result.stdout.str()
        assert "INTERNALERROR" not in result.stdout.str()
        assert outcomes(result) == {"passed": 4}


def test_maxfail_without_dtf_retry_adds_no_outcome(pytester: pytest.Pytester) -> None:
    # xdist's own test: the second test never runs and gets no report
    pytester.makepyfile(test_a="def test1():\n    assert False\ndef test2():\n    pass\n")
    result = run(pytester, "--maxfail=1", "-n", "1")
    assert outcomes(result) == {"failed": 1}, final_line(result)


def test_a_few_slow_tests_are_spread_over_all_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_slow=SLOW4)
    result = run(pytester, "-n", "2", "-v", "--dtf-retry")
    assert result.ret == 0
    assert _workers_of(result, "test_slow.py") == {"gw0": 2, "gw1": 2}, result.stdout.str()


def test_loadscope_sends_the_largest_scope_first(pytester: pytest.Pytester) -> None:
    # xdist's test_workqueue_ordered_by_size / _by_input, with dtf's scheduler; one worker runs
    # the scopes in the order they are sent
    src = "import pytest\n@pytest.mark.parametrize('i', range({}))\ndef test(i):\n    pass\n"
    pytester.makepyfile(test_a=src.format(10), test_b=src.format(20), test_c=src.format(15))

    def file_order(*args: str) -> list[str]:
        result = run(pytester, "-n", "1", "--dist=loadscope", "-v", "--dtf-retry", *args)
        assert result.ret == 0, result.stdout.str()
        order: list[str] = []
        for line in result.outlines:
            m = re.match(r"\[gw0\] \[\s*\d+%\] PASSED (test_\w)\.py::", line)
            if m and m.group(1) not in order:
                order.append(m.group(1))
        return order

    assert file_order() == ["test_b", "test_c", "test_a"]
    assert file_order("--no-loadscope-reorder") == ["test_a", "test_b", "test_c"]


@pytest.mark.parametrize("args", [(), ("--dtf-retry",)])
def test_a_collection_that_differs_between_workers_is_an_error(
    pytester: pytest.Pytester, args: tuple[str, ...]
) -> None:
    pytester.makepyfile(
        test_random="""
import random, pytest
xs = list(range(10))
random.shuffle(xs)
@pytest.mark.parametrize('x', xs)
def test_foo(x):
    pass
"""
    )
    result = run(pytester, "-n", "4", "-v", *args)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*Different tests were collected between gw* and gw*"])
    assert not [line for line in result.outlines if " PASSED " in line], result.stdout.str()


@pytest.mark.parametrize("mode", [["-n", "2"], ["-p", "no:xdist"]], ids=["xdist", "inprocess"])
def test_a_collection_error_stops_the_run_as_pytest_does(pytester: pytest.Pytester, mode: list[str]) -> None:
    pytester.makepyfile(test_ok="def test_a():\n    pass\ndef test_b():\n    pass\n",
                        test_bad="import no_such_module_here\n")
    # pytest stops at the collection error (exit 2); xdist runs the tests that were collected
    plain = run(pytester, *mode, "-p", "no:dtf_errors")
    expected = {"errors": 1} if "no:xdist" in mode else {"passed": 2, "errors": 1}
    assert outcomes(plain) == expected and plain.ret == (2 if "no:xdist" in mode else 1)
    for args in ((), ("--dtf-retry",)):
        result = run(pytester, *mode, *args, "--dtf-report=r.json")
        assert result.ret == plain.ret, result.stdout.str()
        assert outcomes(result) == expected, final_line(result)
