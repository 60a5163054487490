"""The history end to end: pytester sessions run several times against one history file.

Score, annotations, auto quarantine and release, a manual quarantine, the
default file, ingest of JSON reports, a corrupt file and two concurrent
sessions. Each test body's outcome is steered by files in the project
(``fail_<name>``: fail this run; ``flip_<name>``: fail the first attempt only).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import MODES, run

from pytest_dtf_errors.history import SQLiteHistory, score_of_outcomes
from pytest_dtf_errors.report import validate

STEERED = '''
import os, pathlib
HERE = pathlib.Path(__file__).parent

def steer(name, attempt):
    if (HERE / ("fail_" + name)).exists():
        raise AssertionError("asked to fail: " + name)
    if (HERE / ("flip_" + name)).exists() and attempt == 1:
        raise ConnectionResetError("fails its first attempt: " + name)  # retried: network

def test_stable(dtf_attempt): steer("stable", dtf_attempt)
def test_shaky(dtf_attempt): steer("shaky", dtf_attempt)
def test_other(dtf_attempt): steer("other", dtf_attempt)
'''


def _project(pytester: pytest.Pytester, toml: str = "") -> Path:
    pytester.makepyfile(test_steered=STEERED)
    if toml:
        pytester.makepyprojecttoml(toml)
    return pytester.path / "h.sqlite"


def _session(
    pytester: pytest.Pytester, history: Path, *args: str, fail: tuple[str, ...] = (), flip: tuple[str, ...] = (),
    mode: str = "inprocess",
) -> tuple[pytest.RunResult, dict[str, Any]]:
    """One session with these tests failing (``fail``) or failing their first attempt (``flip``).

    In process unless ``mode`` says otherwise: the history is the controller's, the same
    with xdist (the tests that need workers say so), and a session starts in a third of the time.
    """
    for old in [*pytester.path.glob("fail_*"), *pytester.path.glob("flip_*")]:
        old.unlink()
    for name in fail:
        (pytester.path / f"fail_{name}").touch()
    for name in flip:
        (pytester.path / f"flip_{name}").touch()
    result = run(
        pytester, *MODES[mode], "--dtf-retry", f"--dtf-history={history}", "--dtf-report=r.json",
        "--junitxml=j.xml", *args,
    )
    report = json.loads((pytester.path / "r.json").read_text())
    validate(report)
    return result, report


def _test(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in report["tests"] if t["nodeid"].endswith(f"::test_{name}"))


def _junit_properties(pytester: pytest.Pytester, name: str) -> dict[str, str]:
    root = ET.parse(pytester.path / "j.xml").getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == f"test_{name}")
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def _stored(history: Path) -> SQLiteHistory:
    return SQLiteHistory.open(history)


def test_the_score_is_the_decayed_flip_rate_over_the_sessions(pytester: pytest.Pytester) -> None:
    history = _project(pytester)
    # the shaky test: passed, failed (with workers), passed (in process)
    for fail, mode in [((), "xdist"), (("shaky",), "xdist"), ((), "inprocess")]:
        _session(pytester, history, "--dtf-max-retries=0", fail=fail, mode=mode)
    # flaky in one run (failed, then passed on a retry): a flip too
    _session(pytester, history, flip=("shaky",))
    store = _stored(history)
    try:
        assert store.run_count() == 4
        aggs = store.read_tests()
        shaky = aggs[next(n for n in aggs if n.endswith("test_shaky"))]
        expected = score_of_outcomes(["passed", "failed", "passed", "flaky"])
        assert shaky.score == pytest.approx(expected)
        assert shaky.recent == "PFPK"
        assert aggs.score(next(n for n in aggs if n.endswith("test_stable"))) == 0.0
    finally:
        store.close()
    top = subprocess.run(
        [sys.executable, "-m", "pytest_dtf_errors.history", "top", "--history", str(history)],
        capture_output=True, text=True, check=True,
    )
    lines = top.stdout.splitlines()  # a title, a header, then each test: its figures, its nodeid
    assert lines[2].split()[:2] == [f"{expected:.2f}", "4"] and lines[3].strip().endswith("::test_shaky")


def test_failures_are_annotated_new_failing_since_and_known_flaky(pytester: pytest.Pytester) -> None:
    history = _project(pytester)
    for _ in range(2):
        _session(pytester, history)
    result, report = _session(pytester, history, "--dtf-run-label=build-4", fail=("stable",))
    assert result.ret == 1
    notes = _test(report, "stable")["history"]["annotations"]
    assert [a["kind"] for a in notes] == ["new_failure"]
    assert notes[0]["text"] == "new failure: passed its last 2 runs"
    result.stdout.fnmatch_lines(["*test_stable*", "*history: new failure: passed its last 2 runs*"])
    assert _junit_properties(pytester, "stable")["dtf_history_kind"] == "new_failure"

    result, report = _session(pytester, history, "--dtf-run-label=build-5", fail=("stable",))
    notes = _test(report, "stable")["history"]["annotations"]
    assert notes[-1]["kind"] == "failing_since" and notes[-1]["since_label"] == "build-4"
    result.stdout.fnmatch_lines(["*history: failing since run build-4 (1 run before this one)*"])

    for flip in [("shaky",), ("shaky",)]:
        _session(pytester, history, flip=flip)
    result, report = _session(pytester, history, "--dtf-max-retries=0", fail=("shaky",))
    shaky = _test(report, "shaky")
    assert shaky["history"]["annotations"][0]["kind"] == "known_flaky"
    text = shaky["history"]["annotations"][0]["text"]
    assert text.startswith(f"known flaky (score {shaky['history']['score']:.2f}): failed 2 of its last 6 runs")
    props = _junit_properties(pytester, "shaky")
    assert props["dtf_history_kind"] == "known_flaky"
    assert float(props["dtf_flaky_score"]) == pytest.approx(shaky["history"]["score"], abs=1e-4)
    # a passing test, and a first failure of a test the history never saw, get no annotation
    assert "history" not in _test(report, "stable")


def test_auto_quarantine_ignores_a_flaky_tests_failure_and_releases_it(pytester: pytest.Pytester) -> None:
    mode = "inprocess"  # with workers: test_a_manual_quarantine_and_no_quarantine_for_one_run
    history = _project(pytester, '[tool.dtf]\nquarantine = {mode = "auto", threshold = 0.2, release_after = 2}\n')
    for fail in [(), ("shaky",), ()]:
        result, _ = _session(pytester, history, "--dtf-max-retries=0", fail=fail, mode=mode)
    # its score is over the threshold now: quarantined; its failure does not fail the session
    result, report = _session(pytester, history, "--dtf-max-retries=0", fail=("shaky",), mode=mode)
    assert result.ret == 0
    assert result.parseoutcomes() == {"passed": 2, "quarantined": 1}
    q = _test(report, "shaky")["quarantine"]
    assert q["reason"].startswith("score ") and "over the threshold 0.2" in q["reason"] and q["since"] is None
    assert report["summary"]["quarantined"] == 1 and report["summary"]["failed"] == 1
    assert [e["decision"] for e in report["history"]["events"]] == ["quarantine"]
    result.stdout.fnmatch_lines(["*quarantined tests (1)*", "*quarantined: score *", "*1 quarantined*"])
    assert _junit_properties(pytester, "shaky")["dtf_quarantined"] == "true"
    # another test failing still fails the session
    result, report = _session(pytester, history, "--dtf-max-retries=0", fail=("shaky", "other"), mode=mode)
    assert result.ret == 1
    assert _test(report, "shaky")["quarantine"]["since"] is not None  # the earlier run's decision
    # two clean runs in a row release it; the release is written with the run that made it
    _session(pytester, history, mode=mode)
    _, report = _session(pytester, history, mode=mode)
    shaky = _test(report, "shaky")["nodeid"]
    assert [(e["decision"], e["reason"]) for e in report["history"]["events"] if e["nodeid"] == shaky] == [
        ("release", "2 clean runs in a row")
    ]
    store = _stored(history)
    try:
        state = store.read_quarantine()[shaky]
        assert (state.decision, state.run_id) == ("release", report["run"]["id"])
    finally:
        store.close()
    # released and clean since: not quarantined again for the score it still has; it fails the session
    result, report = _session(pytester, history, "--dtf-max-retries=0", fail=("shaky",), mode=mode)
    assert result.ret == 1 and "quarantine" not in _test(report, "shaky")


def test_a_manual_quarantine_and_no_quarantine_for_one_run(pytester: pytest.Pytester) -> None:
    history = _project(pytester, '[tool.dtf]\nquarantine = {tests = ["test_steered.py::test_other"]}\n')
    result, report = _session(pytester, history, "-v", fail=("other",), mode="xdist")
    assert result.ret == 0
    assert _test(report, "other")["quarantine"]["reason"] == "listed in quarantine.tests"
    assert result.parseoutcomes() == {"passed": 2, "quarantined": 1}
    result.stdout.fnmatch_lines(["[[]gw?[]] *QUARANTINED test_steered.py::test_other*"])
    assert _junit_properties(pytester, "other")["dtf_quarantine_reason"] == "listed in quarantine.tests"
    result, report = _session(pytester, history, "--dtf-no-quarantine", fail=("other",))
    assert result.ret == 1 and "quarantine" not in _test(report, "other")
    assert result.parseoutcomes() == {"passed": 2, "failed": 1}
    # taken off the list: released, and its failure counts again
    pytester.makepyprojecttoml("[tool.dtf]\n")
    result, report = _session(pytester, history, fail=("other",))
    assert result.ret == 1
    assert report["history"]["events"] == [{
        "nodeid": "test_steered.py::test_other", "decision": "release",
        "reason": "no longer listed in quarantine.tests",
    }]


def test_a_bad_quarantine_key_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _project(pytester, '[tool.dtf]\nquarantine = {mode = "auto", threshold = 2}\n')
    result = run(pytester, "--dtf-retry")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*quarantine.threshold: must be between 0 and 1, got 2*"])


def test_the_default_file_is_in_the_cache_dir_only_when_dtf_is_asked(pytester: pytest.Pytester) -> None:
    _project(pytester)
    default = pytester.path / ".pytest_cache" / "d" / "dtf" / "history.sqlite"
    assert pytester.runpytest_subprocess("-n", "2").ret == 0
    assert not default.exists()  # installed, not asked: nothing written
    assert pytester.runpytest_subprocess("-p", "no:xdist", "--dtf-retry", "--dtf-history=off").ret == 0
    assert not default.exists()
    assert pytester.runpytest_subprocess("-p", "no:xdist", "--dtf-retry", "-p", "no:cacheprovider").ret == 0
    assert not default.exists()
    assert pytester.runpytest_subprocess("-n", "2", "--dtf-retry").ret == 0
    assert default.exists()
    store = _stored(default)
    try:
        assert store.run_count() == 1 and len(store.read_tests()) == 3
    finally:
        store.close()
    cli = subprocess.run(
        [sys.executable, "-m", "pytest_dtf_errors.history", "show", "test_steered.py::test_stable"],
        cwd=pytester.path, capture_output=True, text=True, check=True,
    )  # the CLI's default file is the one pytest used
    assert cli.stdout.startswith("test_steered.py::test_stable: score 0.00, 1 runs (1 passed,")


def test_reports_from_shards_are_ingested_once_and_read_by_the_next_session(pytester: pytest.Pytester) -> None:
    _project(pytester)
    reports = []
    for n, fail in enumerate([(), (), ("stable",)]):
        for old in pytester.path.glob("fail_*"):
            old.unlink()
        for name in fail:
            (pytester.path / f"fail_{name}").touch()
        run(pytester, "-p", "no:xdist", "--dtf-retry", "--dtf-history=off", f"--dtf-report=shard{n}.json")
        reports.append(str(pytester.path / f"shard{n}.json"))
    merged = pytester.path / "merged.sqlite"
    cli = [sys.executable, "-m", "pytest_dtf_errors.history", "--history", str(merged), "ingest"]
    first = subprocess.run([*cli, *reports], capture_output=True, text=True, check=True)
    again = subprocess.run([*cli, *reports], capture_output=True, text=True, check=True)
    assert first.stdout.count(" added (3 tests)") == 3, first.stdout
    assert again.stdout.count("already in the history") == 3, again.stdout
    store = _stored(merged)
    try:
        assert store.run_count() == 3
        assert store.read_tests()["test_steered.py::test_stable"].recent == "PPF"
    finally:
        store.close()
    _, report = _session(pytester, merged, fail=("stable",))
    assert report["history"]["runs"] == 3
    assert _test(report, "stable")["history"]["annotations"][0]["kind"] == "failing_since"


def test_a_corrupt_history_is_one_warning_and_the_run_goes_to_a_fresh_file(pytester: pytest.Pytester) -> None:
    history = _project(pytester)
    history.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    result, report = _session(pytester, history, fail=("other",))
    assert result.ret == 1
    assert result.parseoutcomes() == {"passed": 2, "failed": 1}
    warnings = [line for line in result.outlines if "pytest-dtf-errors: history:" in line]
    assert len(warnings) == 1, warnings
    fresh = Path(report["history"]["file"])
    assert fresh != history and fresh.parent == history.parent and str(fresh) in warnings[0]
    assert history.read_bytes().startswith(b"SQLite format 3\x00\xff")  # left as it was
    store = _stored(fresh)
    try:
        assert store.run_count() == 1
        assert store.read_tests()["test_steered.py::test_other"].last_outcome == "failed"
    finally:
        store.close()
    # a file that is no SQLite at all: the same
    history.write_text("not a database\n" * 100)
    result, report = _session(pytester, history)
    assert result.ret == 0 and Path(report["history"]["file"]) != history


def test_two_concurrent_sessions_write_one_file(pytester: pytest.Pytester) -> None:
    history = _project(pytester)
    pytester.makepyfile(test_slow="import time\ndef test_wait(): time.sleep(0.5)\n")
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dtf-retry",
            f"--dtf-history={history}", "-q"]
    procs = [
        subprocess.Popen([*base, f"--dtf-report=c{n}.json"], cwd=pytester.path,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for n in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert not any("history:" in out for out in outputs), outputs
    ids = {json.loads((pytester.path / f"c{n}.json").read_text())["run"]["id"] for n in range(2)}
    conn = sqlite3.connect(history)
    try:
        assert {row[0] for row in conn.execute("SELECT run_id FROM runs")} == ids
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()
    store = _stored(history)
    try:
        assert store.read_tests()["test_slow.py::test_wait"].runs == 2
    finally:
        store.close()


def test_a_clean_repeat_releases_a_quarantined_test(pytester: pytest.Pytester) -> None:
    history = _project(pytester, '[tool.dtf]\nquarantine = {mode = "auto", threshold = 0.2, release_after = 5}\n')
    for fail in [(), ("shaky",), ()]:
        _session(pytester, history, "--dtf-max-retries=0", fail=fail)
    _, report = _session(pytester, history, "-k", "shaky")
    assert "quarantine" in _test(report, "shaky")  # quarantined by its score
    # the fix is checked: every run of a repeat passes, and that is evidence enough
    result, report = _session(pytester, history, "--dtf-repeat=6", "-k", "shaky")
    assert result.ret == 0
    shaky = _test(report, "shaky")
    assert (shaky["repeat"]["runs"], shaky["repeat"]["passed"]) == (6, 6)
    assert [(e["decision"], e["reason"]) for e in report["history"]["events"]] == [
        ("release", "passed all 6 runs of a --dtf-repeat")
    ]
    result.stdout.fnmatch_lines(["*released test_steered.py::test_shaky: passed all 6 runs of a --dtf-repeat*"])
    _, report = _session(pytester, history, "-k", "shaky")
    assert "quarantine" not in _test(report, "shaky")
