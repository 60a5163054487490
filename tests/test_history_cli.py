"""``python -m pytest_dtf_errors.history`` (issue 14): ingest real JSON reports of
``-n 2 --dtf-retry`` sessions, idempotently, then ``top``, ``show`` and ``forget``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run

from pytest_dtf_errors.history import (
    AttemptRecord,
    RunRecord,
    SQLiteHistory,
    TestResult,
    derive_run_id,
)
from pytest_dtf_errors.history.__main__ import main

SUITE = '''
import pytest

def test_pass():
    pass

def test_flaky(dtf_attempt):
    if dtf_attempt == 1:
        raise ConnectionRefusedError(111, "connect to 10.0.0.7:5432 refused")

def test_fail():
    assert 1 == 2

@pytest.mark.skip(reason="not here")
def test_skip():
    pass
'''

POLICY = """
[tool.dtf]
breaker_min_tests = 1000

[tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR]
max_retries = 2
retry_delay_seconds = 0.0
retry_jitter = 0.0
"""

FLAKY = "test_suite.py::test_flaky"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two reports of two real sessions of the suite (-n 2, retries on)."""
    out = []
    for i in (1, 2):
        d = tmp_path_factory.mktemp(f"session{i}")
        (d / "test_suite.py").write_text(SUITE)
        (d / "pyproject.toml").write_text(POLICY)
        report = d / f"r{i}.json"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:pytest-retry",
             "-p", "no:flaky", "-n", "2", "--dtf-retry", f"--dtf-report={report}", "-q"],
            check=False, cwd=d, capture_output=True, text=True, timeout=180,
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr  # test_fail fails
        assert report.exists(), proc.stdout + proc.stderr
        out.append(report)
    return out


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_ingest_twice_is_two_runs_and_again_still_two(
    reports: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    history = str(tmp_path / "h.sqlite")
    rc, out, _ = cli(capsys, "ingest", "--history", history, *map(str, reports))
    assert rc == 0 and out.count(" added (4 tests)") == 2
    assert "2 runs" in out
    rc, out, _ = cli(capsys, "--history", history, "ingest", *map(str, reports))
    assert rc == 0 and out.count("already in the history") == 2 and "2 runs" in out
    store = SQLiteHistory.open(history)
    assert store.run_count() == 2
    tests = store.read_tests()
    assert set(tests) == {f"test_suite.py::test_{n}" for n in ("pass", "flaky", "fail", "skip")}
    flaky, fail = tests[FLAKY], tests["test_suite.py::test_fail"]
    assert (flaky.runs, flaky.flaky, flaky.recent, flaky.score) == (2, 2, "KK", 1.0)
    assert (fail.runs, fail.failed, fail.fail_streak) == (2, 2, 2)
    assert tests["test_suite.py::test_skip"].recent == "SS"
    # the attempts as the reports had them: failed on one worker, passed on another
    past = store.runs_of(FLAKY)
    assert [[a.outcome for a in p.attempts] for p in past] == [["failed", "passed"]] * 2
    first, second = past[0].attempts
    assert first.category == "network_connection_error" and first.worker != second.worker
    assert first.message is not None and "refused" in first.message
    stats = store.failure_stats(FLAKY)
    assert stats.template is not None and "refused" in stats.template
    store.close()


def test_run_id_is_the_reports_or_derived(reports: list[Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(reports[0].read_text())
    derived = derive_run_id(data["run"])
    assert derived == derive_run_id(json.loads(reports[0].read_text())["run"])
    assert derived != derive_run_id(json.loads(reports[1].read_text())["run"])
    data["run"]["id"] = "ci-1234-shard-3"
    with_id = tmp_path / "with_id.json"
    with_id.write_text(json.dumps(data))
    history = str(tmp_path / "h.sqlite")
    rc, out, _ = cli(capsys, "ingest", "--history", history, str(with_id), str(with_id))
    assert rc == 0 and "run ci-1234-shard-3 added" in out and "already in the history" in out


def test_ingest_a_bad_file_says_so_and_ingests_the_rest(
    reports: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    history = str(tmp_path / "h.sqlite")
    rc, out, err = cli(capsys, "ingest", "--history", history, str(bad), str(reports[0]),
                       str(tmp_path / "missing.json"))
    assert rc == 2
    assert "bad.json is not JSON" in err and "no such file" in err
    assert "added (4 tests)" in out and "1 runs" in out


def test_top_show_forget(reports: list[Path], tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    history = str(tmp_path / "h.sqlite")
    cli(capsys, "ingest", "--history", history, *map(str, reports))
    rc, out, _ = cli(capsys, "top", "--history", history, "-n", "5")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].endswith("2 runs; the 1 flakiest tests")
    assert lines[1].split() == ["score", "runs", "failed", "last", "failure", "category"]
    assert lines[2].split()[:5] == ["1.00", "2", "2", "of", "2"]
    assert "network_connection_error (2 of 2)" in lines[2]
    assert lines[3].strip() == FLAKY
    assert lines[4].startswith("    pattern: ") and "refused" in lines[4]
    assert "test_fail" not in out  # failing every time is broken, not flaky

    rc, out, _ = cli(capsys, "show", FLAKY, "--history", history)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == (f"{FLAKY}: score 1.00, 2 runs "
                        "(0 passed, 2 flaky, 0 failed, 0 error, 0 skipped)")
    assert lines[1] == "recent (oldest first): KK"
    assert len(lines) == 4
    for line in lines[2:]:
        assert " flaky " in line and "failed [network_connection_error] -> gw" in line
        assert line.endswith("passed")

    rc, out, _ = cli(capsys, "forget", FLAKY, "--history", history)
    assert (rc, out.strip()) == (0, f"forgot {FLAKY} (2 runs)")
    rc, out, _ = cli(capsys, "top", "--history", history)
    assert rc == 0 and "the 0 flakiest tests" in out
    rc, _, err = cli(capsys, "forget", FLAKY, "--history", history)
    assert rc == 1 and "is not in the history" in err
    rc, _, err = cli(capsys, "show", FLAKY, "--history", history)
    assert rc == 2 and "is not in the history" in err


def test_default_path_and_python_m(tmp_path: Path, reports: list[Path]) -> None:
    def python_m(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pytest_dtf_errors.history", *args],
                              check=False, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)

    proc = python_m("top")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "no history at .pytest_cache/d/dtf/history.sqlite"
    proc = python_m("ingest", str(reports[0]))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / ".pytest_cache" / "d" / "dtf" / "history.sqlite").exists()
    proc = python_m("top")
    assert proc.returncode == 0 and FLAKY in proc.stdout


def test_a_corrupt_history_is_a_message(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "h.sqlite"
    history.write_bytes(b"garbage" * 100)
    rc, _, err = cli(capsys, "top", "--history", str(history))
    assert rc == 2 and err.strip() == f"history file {history}: not an SQLite file " \
        "(corrupt, or some other file)"


def test_pytester_sessions_twice_then_ingest(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str],
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makepyprojecttoml(POLICY)
    for i in (1, 2):
        result = run(pytester, "-n", "2", "--dtf-retry", f"--dtf-report=r{i}.json")
        assert result.ret == 1
        counts = result.parseoutcomes()
        assert {k: counts.get(k) for k in ("passed", "failed", "skipped", "flaky")} == {
            "passed": 1, "failed": 1, "skipped": 1, "flaky": 1}
    reports = [str(pytester.path / f"r{i}.json") for i in (1, 2)]
    history = str(pytester.path / "h.sqlite")
    rc, out, _ = cli(capsys, "ingest", "--history", history, *reports)
    assert rc == 0 and out.splitlines()[-1].endswith(": 2 runs")
    rc, out, _ = cli(capsys, "ingest", "--history", history, *reports)
    assert rc == 0 and out.splitlines()[-1].endswith(": 2 runs")
    assert out.count("already in the history") == 2
    rc, out, _ = cli(capsys, "top", "--history", history)
    assert rc == 0 and FLAKY in out


def test_top_names_the_host_where_failures_concentrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    history = tmp_path / "h.sqlite"
    store = SQLiteHistory.open(history)
    for i in range(8):
        host = "gpu-07" if i % 2 else f"node-{i}"
        outcome = "flaky" if i % 2 else "passed"
        attempts = [AttemptRecord(1, "failed" if i % 2 else "passed", host=host,
                                  worker=f"gw{i % 3}", category="hardware_not_available")]
        if i % 2:
            attempts.append(AttemptRecord(2, "passed", host="node-9", worker="gw9"))
        store.write_run(RunRecord(f"r{i}", 100.0 + i, (
            TestResult("t.py::test_gpu", outcome, 1.0, tuple(attempts)),), label=f"c{i}"))
    store.close()
    rc, out, _ = cli(capsys, "top", "--history", str(history))
    assert rc == 0
    assert "    fails on host gpu-07 (4 of 4 failed first attempts)" in out.splitlines()
    assert "(c7)" in out  # the last failure's run, by its label
