"""The history store (issue 14): schema and migrations, idempotent writes, aggregates,
unusable files (corrupt, foreign, locked, newer) with a fresh file beside, and two
processes writing one file at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dtf_errors.history import (
    SCHEMA_VERSION,
    AttemptRecord,
    HistoryUnusable,
    QuarantineEvent,
    RunRecord,
    SQLiteHistory,
    TestResult,
    fold,
    fresh_path_beside,
    open_history,
    score_of_outcomes,
    write_with_fallback,
)
from pytest_dtf_errors.history.store import APPLICATION_ID, MIGRATIONS
from pytest_dtf_errors.history.values import MESSAGE_LIMIT


def make_run(run_id: str, start: float, outcomes: dict[str, str], label: str | None = None,
             **kw: object) -> RunRecord:
    tests = []
    for nodeid, outcome in outcomes.items():
        if outcome == "flaky":
            attempts = (
                AttemptRecord(1, "failed", category="network_timeout", fingerprint="fp1",
                              worker="gw0", host="h1", duration=0.5, message="timed out"),
                AttemptRecord(2, "passed", worker="gw1", host="h2", duration=0.25),
            )
        elif outcome in ("failed", "error"):
            attempts = (AttemptRecord(1, outcome, category="test_assertion_error",
                                      fingerprint="fp2", worker="gw0", host="h1", duration=1.0,
                                      message="assert 1 == 2"),)
        else:
            attempts = (AttemptRecord(1, outcome, worker="gw1", host="h1", duration=0.1),)
        tests.append(TestResult(nodeid, outcome, sum(a.duration for a in attempts), attempts))
    return RunRecord(run_id, start, tuple(tests), label=label, source="test",
                     patterns={"fp1": ("network_timeout", "timed out"),
                               "fp2": ("test_assertion_error", "assert <n> == <n>")}, **kw)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "d" / "history.sqlite"


def test_new_file_has_the_schema_in_wal_mode(path: Path) -> None:
    store = SQLiteHistory.open(path)
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "runs", "results", "attempts", "tests", "patterns", "quarantine"} <= tables
    conn.close()
    # opening it again changes nothing
    SQLiteHistory.open(path).close()


def test_migrates_a_version_1_file_and_keeps_its_runs(path: Path) -> None:
    # a file as version 1 of the schema left it, with one run in it
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](conn)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("INSERT INTO runs VALUES ('old', 100.0, 'v1', 'test', 100.0)")
    conn.execute("INSERT INTO results VALUES ('t.py::a', 'old', 'passed', 0.1, 1)")
    agg = fold(None, "t.py::a", "passed", run_id="old", start=100.0, label="v1", duration=0.1)
    conn.execute("INSERT INTO tests VALUES ('t.py::a', 0.0, 0.1, ?)", (agg.to_state(),))
    conn.close()
    store = SQLiteHistory.open(path)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.run_count() == 1
    assert store.read_tests()["t.py::a"].runs == 1
    # the tables of version 2 are there and work
    assert store.write_run(make_run("new", 200.0, {"t.py::a": "failed"},
                                    quarantine=(QuarantineEvent("t.py::a", "quarantine", "x"),)))
    assert store.read_tests()["t.py::a"].recent == "PF"
    assert store.read_quarantine()["t.py::a"].run_id == "new"
    store.close()


def test_write_is_idempotent_by_run_id(path: Path) -> None:
    store = SQLiteHistory.open(path)
    run = make_run("r1", 100.0, {"a": "passed", "b": "flaky"})
    assert store.write_run(run) is True
    assert store.write_run(run) is False
    assert store.write_run(make_run("r1", 999.0, {"a": "failed"})) is False
    assert store.run_count() == 1
    tests = store.read_tests()
    assert (tests["a"].runs, tests["b"].runs, tests["b"].flaky) == (1, 1, 1)
    store.close()


def test_aggregates_after_several_runs(path: Path) -> None:
    store = SQLiteHistory.open(path)
    history = {
        "a": ["passed", "passed", "failed", "failed", "passed"],
        "b": ["passed", "flaky", "passed", "skipped", "flaky"],
    }
    for i in range(5):
        store.write_run(make_run(f"r{i}", 100.0 + i, {k: v[i] for k, v in history.items()},
                                 label=f"c{i}"))
    tests = store.read_tests()
    a, b = tests["a"], tests["b"]
    assert (a.runs, a.passed, a.failed, a.flaky) == (5, 3, 2, 0)
    assert a.recent == "PPFFP" and b.recent == "PKPSK"
    assert a.score == pytest.approx(score_of_outcomes(history["a"]))
    assert b.score == pytest.approx(score_of_outcomes(history["b"]))
    assert (a.last_failure_run_id, a.last_failure_label) == ("r3", "c3")
    assert a.last_status == "pass" and a.fail_since_run_id is None
    assert (b.skipped, b.last_failure_label, b.last_outcome) == (1, "c4", "flaky")
    # the mean duration is over the counted (not skipped) runs
    assert a.duration_mean == pytest.approx((0.1 * 3 + 1.0 * 2) / 5)
    # a run of a while ago, ingested late, is folded in its place, not as the newest
    store.write_run(make_run("late", 99.0, {"a": "failed"}))
    late = store.read_tests()["a"]
    assert late.recent == "FPPFFP"
    assert late.score == pytest.approx(score_of_outcomes(["failed"] + history["a"]))
    assert late.last_run_id == "r4"
    store.close()


def test_failing_streak_and_rebuild(path: Path) -> None:
    store = SQLiteHistory.open(path)
    for i, outcome in enumerate(["passed", "failed", "error", "failed"]):
        store.write_run(make_run(f"r{i}", 10.0 + i, {"t": outcome}, label=f"c{i}"))
    agg = store.read_tests()["t"]
    assert (agg.fail_since_run_id, agg.fail_since_label, agg.fail_streak) == ("r1", "c1", 3)
    before = store.read_tests()["t"].as_row()
    assert store.rebuild_aggregates() == 1
    assert store.read_tests()["t"].as_row() == before
    store.close()


def test_messages_are_cut_and_runs_of_and_failure_stats(path: Path) -> None:
    store = SQLiteHistory.open(path)
    run = make_run("r1", 1.0, {"t": "failed"})
    long = AttemptRecord(1, "failed", message="x" * 10_000, worker="gw0")
    store.write_run(RunRecord("r2", 2.0, (TestResult("t", "failed", 1.0, (long,)),)))
    store.write_run(run)
    past = store.runs_of("t")
    assert [p.run_id for p in past] == ["r1", "r2"]
    msg = past[1].attempts[0].message
    assert msg is not None and len(msg) == MESSAGE_LIMIT
    stats = store.failure_stats("t")
    assert (stats.failures, stats.category, stats.template) == (
        2, "test_assertion_error", "assert <n> == <n>")
    assert stats.workers == {"gw0": 2}
    store.close()


def test_forget(path: Path) -> None:
    store = SQLiteHistory.open(path)
    store.write_run(make_run("r1", 1.0, {"a": "flaky", "b": "passed"},
                             quarantine=(QuarantineEvent("a", "quarantine", "score 0.5"),)))
    store.write_run(make_run("r2", 2.0, {"a": "passed"}))
    assert store.forget("a") == 2
    assert store.forget("a") == 0
    assert set(store.read_tests()) == {"b"}
    assert store.runs_of("a") == [] and store.read_quarantine() == {}
    store.close()


def test_quarantine_latest_decision(path: Path) -> None:
    store = SQLiteHistory.open(path)
    store.write_run(make_run("r1", 1.0, {"a": "flaky"},
                             quarantine=(QuarantineEvent("a", "quarantine", "score 0.5"),)))
    store.write_run(make_run("r2", 2.0, {"a": "passed"},
                             quarantine=(QuarantineEvent("a", "release", "5 clean runs"),)))
    q = store.read_quarantine()["a"]
    assert (q.decision, q.reason, q.run_id) == ("release", "5 clean runs", "r2")
    store.close()


def test_corrupt_file_gives_one_warning_and_a_fresh_file_beside(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(HistoryUnusable, match="not an SQLite file"):
        SQLiteHistory.open(path)
    opened = open_history(path)
    assert opened.path != path and opened.path.parent == path.parent
    assert opened.path.name.startswith("history.") and opened.path.suffix == ".sqlite"
    assert opened.warning is not None and "\n" not in opened.warning
    assert str(path) in opened.warning and str(opened.path) in opened.warning
    assert opened.store.write_run(make_run("r1", 1.0, {"a": "passed"}))
    opened.store.close()
    assert path.read_bytes() == b"\x00garbage" * 1000  # the bad file is left as it was
    assert SQLiteHistory.open(opened.path).run_count() == 1


def test_corrupt_pages_behind_a_good_header(path: Path) -> None:
    store = SQLiteHistory.open(path)
    for i in range(20):
        store.write_run(make_run(f"r{i}", float(i), {f"t{j}": "passed" for j in range(50)}))
    store.close()
    data = bytearray(path.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)  # keep SQLite's header, break every page
    path.write_bytes(bytes(data))
    written, new, warning = write_with_fallback(path, make_run("mine", 1.0, {"a": "failed"}))
    assert new and written != path and warning is not None and str(written) in warning
    assert SQLiteHistory.open(written).read_tests()["a"].failed == 1


def test_foreign_sqlite_file(path: Path) -> None:
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(HistoryUnusable, match="not a pytest-dtf-errors history"):
        SQLiteHistory.open(path)
    opened = open_history(path)
    assert opened.warning is not None and "not a pytest-dtf-errors history" in opened.warning
    opened.store.close()
    conn = sqlite3.connect(path)  # untouched
    assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 0
    conn.close()


def test_newer_schema_is_not_touched(path: Path) -> None:
    SQLiteHistory.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(HistoryUnusable, match="newer"):
        SQLiteHistory.open(path)


def test_locked_file_gives_the_fallback(path: Path) -> None:
    SQLiteHistory.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = SQLiteHistory.open(path, busy_timeout=0.2)  # reading in WAL mode still works
        with pytest.raises(HistoryUnusable, match="locked"):
            store.write_run(make_run("r1", 1.0, {"a": "passed"}))
        store.close()
        written, new, warning = write_with_fallback(
            path, make_run("r1", 1.0, {"a": "passed"}), busy_timeout=0.2)
        assert new and written != path and warning is not None and "locked" in warning
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_fresh_path_beside_never_names_an_existing_file(tmp_path: Path) -> None:
    p = tmp_path / "history.sqlite"
    first = fresh_path_beside(p)
    first.write_text("")
    second = fresh_path_beside(p)
    assert second != first and second.parent == tmp_path and not second.exists()


def _writer(path: str, who: int, runs: int, barrier: Any) -> None:
    barrier.wait(60)  # both create the schema of the new file at once, then write
    store = SQLiteHistory.open(path)
    for i in range(runs):
        tests = {f"t{j}": ("failed" if (i + j + who) % 3 == 0 else "passed") for j in range(200)}
        assert store.write_run(make_run(f"w{who}-{i}", 1000.0 + i * 2 + who, tests))
    store.close()


def test_two_concurrent_writers_both_succeed(path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(path), who, 15, barrier)) for who in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    store = SQLiteHistory.open(path)
    assert store.run_count() == 30
    tests = store.read_tests()
    assert len(tests) == 200 and all(t.runs == 30 for t in tests.values())
    # the aggregates are those of the 30 runs in start order, whichever order they were written
    before = {k: v.as_row() for k, v in tests.items()}
    store.rebuild_aggregates()
    after = {k: v.as_row() for k, v in store.read_tests().items()}
    assert after.keys() == before.keys()
    for k, row in before.items():
        for x, y in zip(after[k], row):
            assert x == (pytest.approx(y) if isinstance(y, float) else y)
    store.close()


def test_read_tests_index(path: Path) -> None:
    store = SQLiteHistory.open(path)
    store.write_run(make_run("r1", 1.0, {"a": "flaky", "b": "passed", "c": "skipped"}))
    store.write_run(make_run("r2", 2.0, {"a": "passed", "b": "passed"}))
    tests = store.read_tests()
    assert len(tests) == 3 and set(tests) == {"a", "b", "c"}
    assert "a" in tests and "zzz" not in tests and tests.get("zzz") is None
    assert tests.score("a") == pytest.approx(score_of_outcomes(["flaky", "passed"]))
    assert tests.score("a") == tests["a"].score and tests["a"] is tests["a"]
    assert tests.duration("b") == pytest.approx(0.1) and tests.duration("c") == 0.0
    with pytest.raises(KeyError):
        tests.score("zzz")
    assert [t.nodeid for t in store.top()] == ["a"]
    assert store.aggregate("zzz") is None
    b = store.aggregate("b")
    assert b is not None and b.recent == "PP"
    store.forget("b")  # after the index was read: no aggregate to load
    with pytest.raises(KeyError):
        tests["b"]
    store.close()


def test_a_path_that_cannot_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    with pytest.raises(HistoryUnusable, match="cannot (open|read)"):
        SQLiteHistory.open(tmp_path / "blocker" / "history.sqlite")
    with pytest.raises(HistoryUnusable, match="cannot read"):
        SQLiteHistory.open(tmp_path)  # a directory


@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]),
                                st.sampled_from(["passed", "flaky", "failed", "error", "skipped"]),
                                min_size=1), min_size=1, max_size=8),
       st.randoms(use_true_random=False))
@settings(max_examples=40, deadline=None)
def test_runs_written_in_any_order_give_the_aggregates_of_start_order(
    runs: list[dict[str, str]], rnd: Any,
) -> None:
    records = [make_run(f"r{i}", 100.0 + i, outcomes, label=f"c{i}")
               for i, outcomes in enumerate(runs)]
    shuffled = list(records)
    rnd.shuffle(shuffled)
    with tempfile.TemporaryDirectory() as d:
        in_order = SQLiteHistory.open(Path(d) / "a.sqlite")
        any_order = SQLiteHistory.open(Path(d) / "b.sqlite")
        for r in records:
            in_order.write_run(r)
        for r in shuffled:
            any_order.write_run(r)
        expected, got = in_order.read_tests(), any_order.read_tests()
        assert set(got) == set(expected)
        for nodeid in expected:
            for x, y in zip(got[nodeid].as_row(), expected[nodeid].as_row()):
                assert x == (pytest.approx(y) if isinstance(y, float) else y)
            outcomes = [r[nodeid] for r in runs if nodeid in r]
            assert got[nodeid].score == pytest.approx(score_of_outcomes(outcomes))
        in_order.close()
        any_order.close()


def test_a_reports_test_duration_is_one_runs_not_its_retries_and_repeats() -> None:
    from pytest_dtf_errors.history import run_from_report

    report = {"run": {"id": "r1", "start_epoch": 1.0}, "patterns": [], "tests": [
        {"nodeid": "t.py::a", "outcome": "flaky", "attempts": [
            {"attempt": 1, "outcome": "failed", "duration": 3.0},
            {"attempt": 2, "outcome": "passed", "duration": 1.0},
        ]},
        {"nodeid": "t.py::b", "outcome": "passed", "attempts": []},
    ]}
    a, b = run_from_report(report).tests
    assert (a.duration, b.duration) == (2.0, 0.0)
