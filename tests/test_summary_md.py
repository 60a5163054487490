"""The Markdown summary (--dtf-summary-md, $GITHUB_STEP_SUMMARY): content, caps, escaping, the variable."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dtf_errors.report.markdown import LIMIT, summary_markdown, summary_target

SUITE = '''
import os, pathlib
HERE = pathlib.Path(__file__).parent

def test_ok(): pass

def test_flaky(dtf_attempt):
    if dtf_attempt == 1:
        raise ConnectionResetError("peer reset the connection")

def test_broken():
    assert 1 + 1 == 3
'''


def _test(nodeid: str, outcome: str, **extra: object) -> dict[str, object]:
    attempts = [{"node": "gw0", "outcome": "failed" if outcome != "passed" else "passed", "category": "network_timeout"}]
    return {"nodeid": nodeid, "outcome": outcome, "reason": None, "attempts": attempts, **extra}


def _report(tests: list[dict[str, object]], patterns: list[dict[str, object]] | None = None) -> dict[str, object]:
    counts = {k: sum(1 for t in tests if t["outcome"] == k) for k in ("passed", "failed", "skipped", "flaky", "error")}
    return {
        "run": {"exit_status": 1, "duration": 3.25, "workers": [{"id": "gw0", "host": None}], "label": "build-7"},
        "summary": {**counts, "total": len(tests), "retries": 0, "budget_used": 0},
        "tests": tests,
        "patterns": patterns or [],
    }


def test_a_real_runs_summary_goes_to_the_file_and_to_githubs_variable(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    step = pytester.path / "step-summary.md"
    step.write_text("# earlier step\n")
    result = run(pytester, "-n", "2", "--dtf-retry", "--dtf-summary-md=summary.md", "--dtf-report=r.json")
    assert result.ret == 1
    text = (pytester.path / "summary.md").read_text()
    assert text.startswith("## ❌ pytest-dtf-errors: 1 failed, 1 flaky, 1 passed (of 3 tests)\n")
    assert "| test\\_assertion\\_error | 1 | 1 |" in text
    assert "### Failed (1)\n\n- `test_suite.py::test_broken`:" in text
    assert "### Flaky (passed on a retry) (1)\n\n- `test_suite.py::test_flaky`: gw" in text
    assert "### Error patterns (2)" in text
    # without the option, $GITHUB_STEP_SUMMARY gets it appended, when dtf is asked for
    env = {"GITHUB_STEP_SUMMARY": str(step)}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        assert run(pytester, "-n", "2", "--dtf-retry").ret == 1
        appended = step.read_text()
        assert appended.startswith("# earlier step\n\n## ❌ pytest-dtf-errors: 1 failed, 1 flaky, 1 passed")
        # off, or a run that asks dtf for nothing: the file is left alone
        assert run(pytester, "-n", "2", "--dtf-retry", "--dtf-summary-md=off").ret == 1
        assert run(pytester, "-n", "2").ret == 1
        assert step.read_text() == appended


def test_new_failures_and_known_flaky_are_told_apart_and_quarantine_listed() -> None:
    new = {"annotations": [{"kind": "new_failure", "text": "new failure: passed its last 5 runs"}]}
    known = {"annotations": [{"kind": "known_flaky", "text": "known flaky (score 0.40): failed 4 of its last 10 runs"}]}
    text = summary_markdown(_report([
        _test("t.py::test_new", "failed", history=new),
        _test("t.py::test_known", "failed", history=known),
        _test("t.py::test_plain", "failed"),
        _test("t.py::test_q", "failed", quarantine={"reason": "listed in quarantine.tests"}),
        _test("t.py::test_new_flaky", "failed", repeat={"verdict": "new flaky", "passed": 7, "runs": 10}),
    ]))
    assert "### New failures (2)" in text and "new failure: passed its last 5 runs" in text
    assert "new flaky: 7 of 10 runs passed" in text
    assert "### Known flaky, failed again (1)\n\n- `t.py::test_known`: known flaky (score 0.40)" in text
    assert "### Other failures (1)\n\n- `t.py::test_plain`" in text
    assert "### Quarantined (failed; the exit status ignores them) (1)\n\n- `t.py::test_q`: listed in quarantine.tests" in text
    assert "run `build-7`" in text and "3.2 s" in text


def test_the_lists_are_capped() -> None:
    tests = [_test(f"t.py::test_{i}", "failed") for i in range(LIMIT + 7)]
    patterns = [{"id": f"P{i}", "category": "x", "scope": "test", "count": 1, "distinct_tests": 1,
                 "template": "t", "hint": "h"} for i in range(LIMIT + 3)]
    text = summary_markdown(_report(tests, patterns))
    assert text.count("\n- `t.py::test_") == LIMIT
    assert "- … and 7 more tests (the JSON report has them all)" in text
    assert text.count("\n| P") == LIMIT and "- … and 3 more patterns" in text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_hostile_text_cannot_break_out(message: str) -> None:
    nodeid = "t.py::test_x[" + message[:50] + "]"
    text = summary_markdown(_report(
        [_test(nodeid, "failed", reason=message, quarantine={"reason": message})],
        [{"id": message[:20], "category": message[:10], "scope": "test", "count": 1, "distinct_tests": 1,
          "template": message, "hint": message}],
    ))
    for line in text.splitlines():
        assert len(line) < 1200  # one bounded line per item: a newline in the text starts none
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    # every table row has its columns: no pipe in the text splits a cell
    assert {len(re.findall(r"(?<!\\)\|", row)) for row in rows} <= {4, 8}
    assert "<script" not in text.lower()


def test_the_target() -> None:
    assert summary_target(None, "/w", {}) is None
    assert summary_target(None, "/w", {"GITHUB_STEP_SUMMARY": "/gh/s.md"}) == ("/gh/s.md", True)
    assert summary_target("off", "/w", {"GITHUB_STEP_SUMMARY": "/gh/s.md"}) is None
    assert summary_target("out/s.md", "/w", {"GITHUB_STEP_SUMMARY": "/gh/s.md"}) == ("/w/out/s.md", False)
    assert json.dumps(summary_target("/abs.md", "/w", {})) == '["/abs.md", false]'
