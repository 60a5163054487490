"""Unit tests of the reporting package against a hand-built ledger."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import pytest_dtf_errors
from pytest_dtf_errors.ledger import Ledger
from pytest_dtf_errors.report import json_report, junit, terminal
from pytest_dtf_errors.session.plan import RetryPlan, epoch

# the subprocesses must import the package these tests import
PACKAGE_PARENT = Path(next(iter(pytest_dtf_errors.__path__))).parent

# nodeids of the generated pytest session in test_junit_*; the ledger uses the same
PASS = "test_dtf.py::test_pass"
FLAKY = "test_dtf.py::test_flaky[a/b::c]"
FAILED = "test_dtf.py::TestSuite::test_failed"
CRASHED = "test_dtf.py::test_crashed"
NOT_RUN = "test_dtf.py::test_not_run"
SKIPPED = "test_dtf.py::test_skipped"
ALL = [PASS, FLAKY, FAILED, CRASHED, NOT_RUN, SKIPPED]

REFUSED = {"type": "ConnectionRefusedError", "message": "connect to 10.0.0.7:5432 refused"}
RUN_INFO = {
    "plugin_version": "0.1.0",
    "pytest_version": pytest.__version__,
    "xdist_version": "3.8.0",
    "args": ["-n", "3", "--dtf-retry"],
}


def refused(ledger: Ledger, nodeid: str, node: str, *, retry: bool, delay: float = 0.5) -> None:
    att = ledger.new_attempt(
        nodeid,
        node,
        host=ledger.workers.node(node).host,
        hardware=list(ledger.workers.node(node).hardware),
        outcome="failed",
        phase="call",
        category="network_connection_error",
        rule="exception:ConnectionRefusedError",
        error=dict(REFUSED),
        longrepr="def test():\n>   connect()\nE   ConnectionRefusedError: connect to 10.0.0.7:5432 refused",
        duration=0.25,
        actions=[{"action": "retry_elsewhere", "avoid": [node]}] if retry else [],
        pattern="P1",
    )
    att.decision = RetryPlan(
        nodeid,
        att.attempt,
        node,
        "network_connection_error",
        retry=retry,
        delay=delay if retry else 0.0,
        reason="retryable" if retry else "retries used up",
    )


def make_ledger() -> Ledger:
    """passed, flaky (gw0 -> gw1), failed after 3 attempts, crashed worker, not run, skipped."""
    led = Ledger(retry_budget=10)
    led.started = 1_764_300_000.0
    led.finished = led.started + 12.5
    for node, host, hw in (
        ("gw0", "h1", ["cpu"]),
        ("gw1", "h1", ["cpu", "cuda"]),
        ("gw2", "h2", []),
    ):
        rec = led.workers.node(node)
        rec.host, rec.hardware = host, hw
    led.workers.node("gw2").crashes = 1
    led.workers.node("gw2").quarantined = True
    led.workers.node("gw2").quarantine_reason = "crashed while running a test"
    led.collected(ALL)

    led.new_attempt(PASS, "gw0", outcome="passed", phase="call", duration=0.01)
    led.finalize(PASS, "passed")

    refused(led, FLAKY, "gw0", retry=True)
    led.new_attempt(FLAKY, "gw1", outcome="passed", phase="call", duration=0.02)
    led.finalize(FLAKY, "flaky")

    refused(led, FAILED, "gw0", retry=True)
    refused(led, FAILED, "gw1", retry=True)
    refused(led, FAILED, "gw0", retry=False)
    led.finalize(FAILED, "failed", "failed on 3 attempts")
    led.retries_used = 3

    crashed = led.new_attempt(
        CRASHED,
        "gw2",
        outcome="error",
        phase="setup",
        category="worker_crashed",
        rule="crash",
        error={"type": "WorkerCrashed", "message": "worker 'gw2' crashed while running"},
        longrepr="worker 'gw2' crashed while running 'test_dtf.py::test_crashed'",
    )
    crashed.decision = RetryPlan.final(CRASHED, crashed.attempt, "gw2", "restart limit reached")
    led.finalize(CRASHED, "error", "worker gw2 crashed")
    led.finalize(
        NOT_RUN, "error", "not run: worker gw2 crashed and --max-worker-restart was used up"
    )

    led.new_attempt(SKIPPED, "gw1", outcome="skipped", phase="setup")
    led.finalize(SKIPPED, "skipped")

    led.breaker_trips.append(
        {
            "pattern": "P1",
            "reason": "30 failures in 10 s",
            "tests": ["test_db.py::test_a", "test_db.py::test_b"],
        }
    )
    led.unavailable.add(("gw1", "cuda"))
    led.lost_hosts["h3"] = "no heartbeat for 30 s"
    return led


def make_patterns() -> list[dict[str, Any]]:
    db_tests = [f"test_db.py::test_q[{i}]" for i in range(30)]
    return [
        {
            "id": "P2",
            "category": "worker_crashed",
            "count": 1,
            "tests": [CRASHED],
            "nodes": ["gw2"],
            "hardware": [],
            "hosts": ["h2"],
            "scope": "node",
            "template": "worker <node> crashed while running",
            "example": {"test": CRASHED, "message": "worker 'gw2' crashed while running"},
            # no "hint": a default one is derived from the scope
        },
        {
            "id": "P1",
            "category": "network_connection_error",
            "count": 34,
            "tests": [FLAKY, FAILED, *db_tests],
            "nodes": ["gw0", "gw1"],
            "hardware": [],
            "hosts": ["h1", "h2"],
            "scope": "systemic",
            "template": "connect to <ip>:<port> refused " + "while talking to the database " * 10,
            "example": {"test": FLAKY, "message": REFUSED["message"]},
            "hint": "32 tests, 2 hosts: a shared service is down",
        },
    ]


def all_passed_ledger() -> Ledger:
    led = Ledger(retry_budget=5)
    for i in range(3):
        nodeid = f"t.py::test_{i}"
        led.new_attempt(nodeid, f"gw{i % 2}", outcome="passed")
        led.finalize(nodeid, "passed")
    return led


# -- terminal ------------------------------------------------------------------
class FakeTerminalReporter:
    def __init__(self, width: int = 100) -> None:
        self._tw = type("TW", (), {"fullwidth": width})()
        self.calls: list[tuple[str, Any, Any]] = []

    def write_sep(self, sep: str, title: str) -> None:
        self.calls.append(("sep", sep, title))

    def write_line(self, line: str, **markup: bool) -> None:
        self.calls.append(("line", line, markup))


def texts(lines: list[tuple[str, dict[str, bool]]]) -> str:
    return "\n".join(text for text, _ in lines)


def test_summary_is_empty_when_everything_passed() -> None:
    led = all_passed_ledger()
    assert terminal.summary_lines(led, [], verbose=0, budget=5) == []
    assert terminal.summary_lines(led, [], verbose=2, budget=5) == []
    tr = FakeTerminalReporter()
    terminal.write_summary(tr, led, [], verbose=0, budget=5)
    assert tr.calls == []


def test_summary_short() -> None:
    lines = terminal.summary_lines(
        make_ledger(), make_patterns(), verbose=0, budget=None, width=100
    )
    out = texts(lines)
    assert all(isinstance(markup, dict) for _, markup in lines)
    assert lines[0] == (
        "1 failed, 2 errors, 1 flaky, 1 passed, 1 skipped (of 6 tests)",
        {"red": True, "bold": True},
    )
    assert (
        "failures by category: network_connection_error 4 (2 tests), worker_crashed 1 (1 test)"
        in out
    )
    assert f"{FLAKY}: 2 attempts: gw0 failed [network_connection_error] -> gw1 passed" in out
    assert (
        f"{FAILED}: 3 attempts: gw0 failed [network_connection_error] -> gw1 failed -> gw0 failed"
    ) in out
    assert "reason: not run: worker gw2 crashed" in out
    assert "retries: 3 used of budget 10" in out
    assert "breaker: pattern P1 cancelled 2 retries: 30 failures in 10 s" in out
    assert "quarantined workers: gw2 (1 crash; crashed while running a test)" in out
    assert "unavailable hardware: gw1: cuda" in out
    assert "lost hosts: h3 (no heartbeat for 30 s)" in out
    assert "hint: 32 tests, 2 hosts: a shared service is down" in out
    assert "hint: all on gw2: node problem" in out  # derived from scope "node"
    assert "#1" not in out  # attempt details only with -v


def test_summary_budget_argument_wins_and_verbose_lists_attempts() -> None:
    lines = terminal.summary_lines(make_ledger(), make_patterns(), verbose=1, budget=7, width=120)
    out = texts(lines)
    assert "retries: 3 used of budget 7" in out
    assert (
        "#1 gw0@h1 (cpu): failed in call [network_connection_error by exception:ConnectionRefusedError]"
        in out
    )
    assert (
        "-> retry after 0.5s (retryable)\n       ConnectionRefusedError: connect to 10.0.0.7:5432"
        in out
    )
    assert "#2 gw1: passed 0.02s" in out
    assert "#1 gw2: error in setup [worker_crashed by crash]" in out
    assert "-> no retry (restart limit reached)" in out


def test_pattern_table_columns_and_width() -> None:
    columns = ["id", "category", "count", "tests", "workers", "hardware", "scope"]
    for width in (80, 132):
        table = terminal.pattern_table(make_patterns(), width)
        inline = width > 80  # at 80 columns the template moves under its row
        assert table[0].split() == columns + ["template"] * inline
        assert all(len(line) <= width for line in table), table
        rows = [line for line in table if line.startswith("P")]
        assert [r.split()[0] for r in rows] == ["P1", "P2"]  # largest first
        p1 = rows[0].split()
        assert p1[1:7] == ["network_connection_error", "34", "32", "gw0,gw1", "-", "systemic"]
        long_template = rows[0] if inline else table[table.index(rows[0]) + 1]
        assert long_template.endswith("...")  # clipped to the width
        assert "connect to <ip>:<port> refused" in long_template
        text = "\n".join(table)
        assert f"e.g. {FLAKY}: connect to 10.0.0.7:5432 refused" in text
        assert ("    template: worker <node> crashed while running" in text) is not inline
    many = [dict(make_patterns()[1], id=f"P{i}", count=i) for i in range(9)]
    short = terminal.pattern_table(many, 80, limit=5)
    assert short[-1] == "... and 4 more patterns (-v for all)"


def test_write_summary_uses_the_terminal_width() -> None:
    tr = FakeTerminalReporter(width=90)
    terminal.write_summary(tr, make_ledger(), make_patterns(), verbose=0, budget=None)
    assert tr.calls[0] == ("sep", "=", "dtf error summary")
    table = [c[1] for c in tr.calls if c[0] == "line" and c[1].startswith(("id ", "P1 ", "P2 "))]
    assert len(table) == 3 and all(len(line) <= 90 for line in table)


# -- JSON report -----------------------------------------------------------------
def test_build_report_validates_and_lists_every_test_once() -> None:
    led = make_ledger()
    report = json_report.build_report(led, make_patterns(), run_info=RUN_INFO)
    json_report.validate(report)
    json.dumps(report, allow_nan=False)
    assert report["schema_version"] == 2
    assert [t["nodeid"] for t in report["tests"]] == ALL
    outcomes = {t["nodeid"]: t["outcome"] for t in report["tests"]}
    assert outcomes == {
        PASS: "passed",
        FLAKY: "flaky",
        FAILED: "failed",
        CRASHED: "error",
        NOT_RUN: "error",
        SKIPPED: "skipped",
    }
    s = report["summary"]
    assert (s["passed"], s["failed"], s["skipped"], s["flaky"], s["error"]) == (1, 1, 1, 1, 2)
    assert (s["retries"], s["budget"], s["budget_used"]) == (3, 10, 3)
    run = report["run"]
    assert run["start"] == "2025-11-28T03:20:00.000Z" and run["end_epoch"] == led.finished
    assert run["args"] == RUN_INFO["args"] and run["xdist"] == "3.8.0"
    assert run["workers"][1] == {"id": "gw1", "host": "h1", "hardware": ["cpu", "cuda"]}
    flaky = report["tests"][1]["attempts"]
    assert [(a["node"], a["outcome"]) for a in flaky] == [("gw0", "failed"), ("gw1", "passed")]
    assert flaky[0]["decision"] == {
        "retry": True, "delay": 0.5, "reason": "retryable", "avoid": [], "prefer_not": []
    }
    assert flaky[0]["error"]["type"] == "ConnectionRefusedError"
    assert report["nodes"][2]["quarantined"] is True and report["nodes"][2]["crashes"] == 1
    assert {p["scope"] for p in report["patterns"]} == {"node", "systemic"}
    assert report["unavailable"] == [{"node": "gw1", "hardware": "cuda"}]
    assert report["lost_hosts"] == [{"host": "h3", "reason": "no heartbeat for 30 s"}]


def test_a_promised_and_dispatched_plan_is_written_with_epoch_times() -> None:
    """The decision's JSON is RetryPlan.to_dict(): sorted sets, prefer_not less avoid, epoch times."""
    led = Ledger()
    att = led.new_attempt(PASS, "gw1", outcome="failed", phase="call", category="worker_crashed")
    plan = RetryPlan(
        PASS, att.attempt, "gw1", "worker_crashed", retry=True, delay=1.25, reason="worker_crashed: retry 1",
        avoid={"gw1", "gw0"}, prefer_not={"gw0", "gw3", "gw2"},
    )
    plan.promise()
    plan.dispatched = plan.decided + 2.0
    att.decision = plan
    led.new_attempt(PASS, "gw2", outcome="passed", phase="call")
    led.finalize(PASS, "flaky")
    report = json_report.build_report(led, [], run_info={})
    json_report.validate(report)
    decision = report["tests"][0]["attempts"][0]["decision"]
    assert decision == {
        "retry": True,
        "delay": 1.25,
        "reason": "worker_crashed: retry 1",
        "avoid": ["gw0", "gw1"],
        "prefer_not": ["gw2", "gw3"],
        "due": epoch(plan.decided + 1.25),
        "dispatched": epoch(plan.decided + 2.0),
    }
    assert abs(decision["due"] - time.time()) < 60  # epoch seconds, not monotonic ones
    assert report["tests"][0]["attempts"][1]["decision"] is None
    final = RetryPlan.final(PASS, 2, "gw2", "retries used up")
    final.promise()
    assert final.to_dict() == {"retry": False, "delay": 0.0, "reason": "retries used up"}


def test_a_test_without_final_outcome_is_reported_as_error() -> None:
    led = make_ledger()
    led.test("test_dtf.py::test_lost")
    report = json_report.build_report(led, [], run_info={})
    json_report.validate(report)
    lost = report["tests"][-1]
    assert (lost["outcome"], lost["reason"]) == ("error", "no outcome recorded")
    assert report["summary"]["error"] == 3
    assert len(report["tests"]) == len(ALL) + 1


@pytest.mark.parametrize("use_jsonschema", [True, False], ids=["jsonschema", "fallback"])
def test_schema_rejects_broken_reports(
    monkeypatch: pytest.MonkeyPatch, use_jsonschema: bool
) -> None:
    if not use_jsonschema:
        monkeypatch.setitem(sys.modules, "jsonschema", None)  # import now fails
    good = json_report.build_report(make_ledger(), make_patterns(), run_info=RUN_INFO)
    good["extra_key"] = {"welcome": True}
    json_report.validate(good)

    no_summary = copy.deepcopy(good)
    del no_summary["summary"]
    with pytest.raises(ValueError, match="summary"):
        json_report.validate(no_summary)

    weird = copy.deepcopy(good)
    weird["tests"][2]["outcome"] = "weird"
    with pytest.raises(ValueError, match=r"\$\.tests\[2\]\.outcome"):
        json_report.validate(weird)

    bad_scope = copy.deepcopy(good)
    bad_scope["patterns"][0]["scope"] = "galaxy"
    with pytest.raises(ValueError, match=r"\$\.patterns\[0\]\.scope"):
        json_report.validate(bad_scope)

    no_attempt_key = copy.deepcopy(good)
    del no_attempt_key["tests"][1]["attempts"][0]["decision"]
    with pytest.raises(ValueError, match="decision"):
        json_report.validate(no_attempt_key)


def test_write_atomic_creates_dirs_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "errors.json"
    report = json_report.build_report(make_ledger(), make_patterns(), run_info=RUN_INFO)
    json_report.write_atomic(target, report)
    assert json.loads(target.read_text(encoding="utf-8")) == report
    assert os.listdir(target.parent) == ["errors.json"]


def test_write_atomic_keeps_the_old_file_when_serialization_fails(tmp_path: Path) -> None:
    target = tmp_path / "errors.json"
    json_report.write_atomic(target, {"old": True})
    with pytest.raises(TypeError):
        json_report.write_atomic(target, {"new": object()})
    with pytest.raises(ValueError):
        json_report.write_atomic(target, {"new": float("nan")})
    assert json.loads(target.read_text(encoding="utf-8")) == {"old": True}
    assert os.listdir(tmp_path) == ["errors.json"]


def test_write_atomic_keeps_the_old_file_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "errors.json"
    json_report.write_atomic(target, {"old": True})

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(json_report.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        json_report.write_atomic(target, {"new": True})
    assert json.loads(target.read_text(encoding="utf-8")) == {"old": True}
    assert os.listdir(tmp_path) == ["errors.json"]


def test_hostile_error_text_still_makes_a_valid_report(tmp_path: Path) -> None:
    led = Ledger()
    led.new_attempt(
        "t.py::test_x",
        "gw0",
        outcome="failed",
        error={"type": "E", "message": "\udcff bad \x00 bytes " + "x" * 100_000, "obj": object()},
        duration=float("nan"),
    )
    led.finalize("t.py::test_x", "failed")
    report = json_report.build_report(led, [], run_info={})
    json_report.validate(report)
    json_report.write_atomic(tmp_path / "r.json", report)
    loaded = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert loaded["tests"][0]["attempts"][0]["duration"] == 0.0
    lines = terminal.summary_lines(led, [], verbose=1, budget=None, width=80)
    assert all(len(text) <= 80 for text, _ in lines if text.startswith("    #"))


# -- python -m pytest_dtf_errors.report ------------------------------------------
def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest_dtf_errors.report", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=60,
    )


def test_cli_prints_a_saved_report(tmp_path: Path) -> None:
    path = tmp_path / "errors.json"
    led = make_ledger()
    patterns = make_patterns()
    json_report.write_atomic(path, json_report.build_report(led, patterns, run_info=RUN_INFO))
    proc = run_cli(str(path), "--width", "100", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert "1 failed, 2 errors, 1 flaky, 1 passed, 1 skipped (of 6 tests)" in out
    # the very lines the terminal summary prints, from the same formatting code
    expected = terminal.pattern_table(patterns, 100, limit=terminal.SHORT_LIMIT)
    start = out.index(expected[0])
    assert out[start : start + len(expected)] == expected


def test_cli_rejects_missing_and_invalid_files(tmp_path: Path) -> None:
    missing = run_cli(str(tmp_path / "nope.json"), cwd=tmp_path)
    assert missing.returncode == 2
    assert "no such file" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    bad = run_cli(str(tmp_path / "bad.json"), cwd=tmp_path)
    assert bad.returncode == 2 and "is not JSON" in bad.stderr
    (tmp_path / "other.json").write_text('{"schema_version": 1}', encoding="utf-8")
    other = run_cli(str(tmp_path / "other.json"), cwd=tmp_path)
    assert other.returncode == 2 and "not a pytest-dtf-errors report" in other.stderr


# -- JUnit -------------------------------------------------------------------------
# A session that reports every attempt to pytest, as a retrying plugin does:
# pytest's junitxml then writes one <testcase> per attempt.
RERUN_CONFTEST = textwrap.dedent(
    """
    from _pytest.runner import runtestprotocol

    ATTEMPTS = {"test_flaky": 2, "test_failed": 3}

    def pytest_runtest_protocol(item, nextitem):
        if item.originalname == "test_not_run":
            return True  # never reached pytest's reporting
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for _ in range(ATTEMPTS.get(item.originalname, 1)):
            for report in runtestprotocol(item, nextitem=nextitem, log=False):
                item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True
    """
)
RERUN_TESTS = textwrap.dedent(
    """
    import pytest

    calls = {}

    def refuse(name):
        calls[name] = calls.get(name, 0) + 1
        print(f"attempt {calls[name]} of {name}")
        return calls[name]

    def test_pass():
        pass

    @pytest.mark.parametrize("p", ["a/b::c"])
    def test_flaky(p):
        if refuse("flaky") == 1:
            raise ConnectionRefusedError("connect to 10.0.0.7:5432 refused")

    class TestSuite:
        def test_failed(self):
            refuse("failed")
            raise ConnectionRefusedError("connect to 10.0.0.7:5432 refused")

    @pytest.fixture
    def worker():
        raise RuntimeError("worker 'gw2' crashed while running")

    def test_crashed(worker):
        pass

    def test_not_run():
        pass

    def test_skipped():
        pytest.skip("no cuda")

    def test_unknown_to_the_ledger():
        pass
    """
)


@pytest.fixture(scope="module")
def pytest_junit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JUnit file written by a real pytest session with re-run attempts."""
    d = tmp_path_factory.mktemp("junit_session")
    (d / "conftest.py").write_text(RERUN_CONFTEST, encoding="utf-8")
    (d / "test_dtf.py").write_text(RERUN_TESTS, encoding="utf-8")
    (d / "pytest.ini").write_text("[pytest]\njunit_logging = all\n", encoding="utf-8")
    xml = d / "junit.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:dtf_errors",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            f"--junitxml={xml}",
            "-q",
        ],
        cwd=d,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert xml.exists(), proc.stdout + proc.stderr
    return xml


def cases_by_key(path: Path) -> dict[tuple[str, str], list[Any]]:
    from junitparser.xunit2 import JUnitXml

    out: dict[tuple[str, str], list[Any]] = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            out.setdefault((case.classname, case.name), []).append(case)
    return out


def props(case: Any) -> dict[str, str]:
    return {p.name: p.value for p in case.properties()}


def test_generated_junit_has_a_testcase_per_attempt(pytest_junit: Path) -> None:
    cases = cases_by_key(pytest_junit)
    assert len(cases[junit.testcase_key(FLAKY)]) == 2
    assert len(cases[junit.testcase_key(FAILED)]) == 3
    assert junit.testcase_key(NOT_RUN) not in cases


def test_junit_rewrite_in_surefire_format(pytest_junit: Path, tmp_path: Path) -> None:
    from junitparser import Error, Failure, Skipped
    from junitparser.xunit2 import JUnitXml

    path = tmp_path / "junit.xml"
    path.write_bytes(pytest_junit.read_bytes())
    junit.rewrite(path, make_ledger())

    cases = cases_by_key(path)
    assert all(len(v) == 1 for v in cases.values()), {k: len(v) for k, v in cases.items()}
    assert junit.testcase_key(FAILED) == ("test_dtf.TestSuite", "test_failed")
    assert junit.testcase_key(NOT_RUN) not in cases  # kept as pytest wrote it: absent
    assert ("test_dtf", "test_unknown_to_the_ledger") in cases  # not in the ledger: untouched

    passed = cases[junit.testcase_key(PASS)][0]
    assert passed.is_passed and not passed.interim_result and not props(passed)

    flaky = cases[junit.testcase_key(FLAKY)][0]
    assert flaky.is_passed and flaky.is_flaky and not flaky.is_rerun
    [ff] = flaky.flaky_failures()
    assert ff.type == "ConnectionRefusedError"
    assert ff.message == "connect to 10.0.0.7:5432 refused"
    assert "E   ConnectionRefusedError" in ff.stack_trace
    assert "attempt 1 of flaky" in (ff.system_out or "")  # from the dropped testcase
    assert props(flaky) == {"dtf_category": "network_connection_error", "dtf_attempts": "2"}

    failed = cases[junit.testcase_key(FAILED)][0]
    assert [type(r) for r in failed.result] == [Failure]
    assert failed.is_rerun and len(failed.rerun_failures()) == 2 and not failed.is_flaky
    assert all(r.message and r.type and r.stack_trace for r in failed.rerun_failures())
    assert props(failed) == {"dtf_category": "network_connection_error", "dtf_attempts": "3"}

    crashed = cases[junit.testcase_key(CRASHED)][0]
    assert [type(r) for r in crashed.result] == [Error] and not crashed.interim_result
    assert props(crashed) == {"dtf_category": "worker_crashed", "dtf_attempts": "1"}

    skipped = cases[junit.testcase_key(SKIPPED)][0]
    assert [type(r) for r in skipped.result] == [Skipped]

    [suite] = list(JUnitXml.fromfile(str(path)))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (6, 1, 1, 1)

    # ElementTree: Surefire's child structure of the interim results
    tree = ET.parse(path)
    [flaky_el] = [c for c in tree.iter("testcase") if c.get("name") == junit.testcase_key(FLAKY)[1]]
    [ff_el] = flaky_el.findall("flakyFailure")
    assert [ch.tag for ch in ff_el][:1] == ["stackTrace"]
    assert set(ff_el.attrib) == {"message", "type"}
    assert flaky_el.find("failure") is None and flaky_el[0].tag == "properties"
    [failed_el] = [c for c in tree.iter("testcase") if c.get("name") == "test_failed"]
    tags = [ch.tag for ch in failed_el]
    assert tags.index("failure") < tags.index("rerunFailure") < tags.index("system-out")


def test_junit_rewrite_is_idempotent_and_atomic(pytest_junit: Path, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_bytes(pytest_junit.read_bytes())
    led = make_ledger()
    junit.rewrite(path, led)
    once = path.read_bytes()
    junit.rewrite(path, led)
    assert path.read_bytes() == once
    assert os.listdir(tmp_path) == ["junit.xml"]
    assert once.startswith(b'<?xml version="1.0" encoding="utf-8"?>')


def test_junit_rewrite_of_a_failure_pytest_did_not_record(tmp_path: Path) -> None:
    """Flaky error children, and a <failure> made from the ledger when pytest wrote none."""
    from junitparser.xunit2 import JUnitXml

    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        '<testsuite name="pytest" errors="0" failures="0" skipped="0" tests="3">'
        '<testcase classname="pfx.t" name="test_a" time="0.1"/>'
        '<testcase classname="pfx.t" name="test_a" time="0.2"/>'
        '<testcase classname="pfx.t" name="test_b" time="0.1"/>'
        "</testsuite></testsuites>",
        encoding="utf-8",
    )
    led = Ledger()
    led.new_attempt(
        "t.py::test_a",
        "gw0",
        outcome="error",
        phase="setup",
        category="resource_exhausted",
        error={"type": "MemoryError", "message": "out \x07 of memory"},
        longrepr="E MemoryError",
    )
    led.new_attempt("t.py::test_a", "gw1", outcome="passed")
    led.finalize("t.py::test_a", "flaky")
    led.new_attempt(
        "t.py::test_b",
        "gw0",
        outcome="failed",
        phase="call",
        error={"type": "AssertionError", "message": "assert 1 == 2"},
        longrepr="E assert 1 == 2",
    )
    led.finalize("t.py::test_b", "failed")
    junit.rewrite(path, led, prefix="pfx")

    [suite] = list(JUnitXml.fromfile(str(path)))
    cases: dict[str, Any] = {c.name: c for c in suite}
    assert len(list(suite)) == 2
    [fe] = cases["test_a"].flaky_errors()
    assert (
        fe.type == "MemoryError" and "of memory" in fe.message and fe.stack_trace == "E MemoryError"
    )
    assert [r.message for r in cases["test_b"].result] == ["assert 1 == 2"]
    assert (suite.tests, suite.failures, suite.errors) == (2, 1, 0)


def test_real_aggregator_patterns_make_a_valid_report_and_table() -> None:
    """The engine's to_dict() output, including `tests` given as a count, fits the contract."""
    patterns_mod = pytest.importorskip("pytest_dtf_errors.engine.patterns")
    agg = patterns_mod.ErrorAggregator()
    for i in range(30):
        agg.add_error(
            {
                "type": "ConnectionRefusedError",
                "message": f"connect to 10.0.{i}.7:{5000 + i} refused",
            },
            {
                "test_id": f"t.py::test_db[{i}]",
                "worker_id": f"gw{i % 3}",
                "host": f"h{i % 2}",
                "category": "network_connection_error",
            },
        )
    for i in range(10):
        agg.add_error(
            {"type": "ConnectionRefusedError", "message": f"redis cache at cache-{i}:6379 refused"},
            {
                "test_id": f"t.py::test_cache[{i}]",
                "worker_id": "gw1",
                "host": "h1",
                "category": "network_connection_error",
            },
        )
    groups = agg.get_error_groups()
    patterns = [g.to_dict(max_tests=20) for g in groups]
    assert isinstance(patterns[0]["tests"], int)  # more than max_tests: a count
    report = json_report.build_report(make_ledger(), patterns, run_info=RUN_INFO)
    json_report.validate(report)
    assert [p["distinct_tests"] for p in report["patterns"]] == [g.distinct_tests for g in groups]
    table = terminal.pattern_table(report["patterns"], 120)
    rows = [line.split() for line in table if line.startswith("P")]
    assert [(r[0], r[3]) for r in rows] == [(g.id, str(g.distinct_tests)) for g in groups]
    assert "e.g. t.py::test_" in "\n".join(table)


def test_junit_rewrite_gives_tests_sharing_a_name_one_testcase_each(tmp_path: Path) -> None:
    """a.b/t.py and a/b/t.py both map to classname a.b.t: written from the ledger, never passed."""
    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        '<testsuite name="pytest" errors="0" failures="1" skipped="0" tests="4">'
        '<testcase classname="a.b.t" name="test_x" time="0.1"/>'
        '<testcase classname="a.b.t" name="test_x" time="0.1"/>'
        '<testcase classname="a.b.t" name="test_x" time="0.2"><failure message="m">E</failure>'
        "</testcase>"
        '<testcase classname="a.b.t" name="test_y" time="0.1"/>'
        "</testsuite></testsuites>",
        encoding="utf-8",
    )
    led = Ledger()
    led.new_attempt("a/b/t.py::test_x", "gw0", outcome="failed", phase="call", error=REFUSED)
    led.new_attempt("a/b/t.py::test_x", "gw1", outcome="passed")
    led.finalize("a/b/t.py::test_x", "flaky")
    led.new_attempt("a.b/t.py::test_x", "gw1", outcome="failed", phase="call", error=REFUSED)
    led.finalize("a.b/t.py::test_x", "failed")
    led.new_attempt("a/b/t.py::test_y", "gw0")
    led.finalize("a/b/t.py::test_y", "passed")
    junit.rewrite(path, led)

    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["test_x", "test_x", "test_y"]
    ids = [c.find("properties/property[@name='dtf_nodeid']") for c in cases[:2]]
    assert [i.get("value") for i in ids if i is not None] == ["a/b/t.py::test_x", "a.b/t.py::test_x"]
    flaky, failed = cases[:2]
    assert flaky.find("failure") is None and flaky.find("flakyFailure") is not None
    assert failed.find("failure").get("message") == REFUSED["message"]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")


def test_junit_rewrite_keeps_a_failed_calls_teardown_error_beside_it(tmp_path: Path) -> None:
    """As pytest writes it: a <failure> testcase, then one with the teardown's <error>."""
    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        '<testsuite name="pytest" errors="1" failures="1" skipped="0" tests="2">'
        '<testcase classname="t" name="test_x" time="0.1"><failure message="call boom">E</failure>'
        "</testcase>"
        '<testcase classname="t" name="test_x" time="0.0"><error message="failed on teardown with'
        ' &quot;RuntimeError: td&quot;">E</error></testcase>'
        "</testsuite></testsuites>",
        encoding="utf-8",
    )
    led = Ledger()
    teardown = {"type": "RuntimeError", "message": "td", "traceback": "E td"}
    led.new_attempt(
        "t.py::test_x", "gw0", outcome="failed", phase="call",
        error={"type": "AssertionError", "message": "call boom", "teardown_error": teardown},
    )
    led.finalize("t.py::test_x", "failed")
    once = path.read_bytes()
    junit.rewrite(path, led)
    cases = ET.parse(path).getroot().iter("testcase")
    assert [[ch.tag for ch in c if ch.tag in ("failure", "error")] for c in cases] == [
        ["failure"], ["error"]
    ]
    # written from the ledger when pytest's file lacks it
    path.write_bytes(once.replace(b"failed on teardown", b"something else"))
    junit.rewrite(path, led)
    errors = [c.find("error") for c in ET.parse(path).getroot().iter("testcase")]
    assert [e.get("message") for e in errors if e is not None] == [
        'failed on teardown with "RuntimeError: td"'
    ]
