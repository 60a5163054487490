"""The history store: a small interface, and SQLite (the stdlib's ``sqlite3``) behind it.

``HistoryStore`` is the whole interface the plugin and the CLI use, so a server
database could sit behind it later. ``SQLiteHistory`` opens one file in WAL
mode with a busy timeout (parallel CI shards may write one file on a shared
volume), keeps a versioned schema with ordered migrations, and writes a run
in one ``BEGIN IMMEDIATE`` transaction, once per run id. Each write updates
the per-test ``tests`` row (``score.fold``), so ``read_tests()`` at start is
one query over one table.

A file that is corrupt, locked past the busy timeout, foreign (an SQLite
file that is not ours, or not SQLite at all) or of a newer schema raises
``HistoryUnusable`` with a one-line message. ``open_history`` and
``write_with_fallback`` turn that into a warning and use a fresh file beside
the bad one (``fresh_path_beside``), which the warning names.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol, final

from .score import fold
from .values import AttemptRecord, RunRecord, TestAggregate, TestIndex

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "FailureStats",
    "HistoryStore",
    "HistoryUnusable",
    "OpenedHistory",
    "PastRun",
    "QuarantineState",
    "SQLiteHistory",
    "fresh_path_beside",
    "open_history",
    "write_with_fallback",
]

# PRAGMA application_id of our files: "DTFH"
APPLICATION_ID = 0x44544648
# seconds a writer waits for another writer's transaction
BUSY_TIMEOUT = 30.0
_SQLITE_MAGIC = b"SQLite format 3\x00"
# SQLite's default limit on host parameters is 999 before 3.32
_CHUNK = 900


class HistoryUnusable(Exception):
    """The history file cannot be used; ``str()`` is the one-line reason, naming the file."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"history file {path}: {reason}")
        self.path = path
        self.reason = reason


@final
class PastRun:
    """One run of one test, for ``show``: the run, its final outcome and its attempts."""

    __slots__ = ("attempts", "duration", "label", "outcome", "run_id", "start")

    def __init__(
        self,
        run_id: str,
        start: float,
        label: str | None,
        outcome: str,
        duration: float,
        attempts: tuple[AttemptRecord, ...],
    ) -> None:
        self.run_id = run_id
        self.start = start
        self.label = label
        self.outcome = outcome
        self.duration = duration
        self.attempts = attempts


@final
class FailureStats:
    """Where and how one test's attempts failed, over its whole history.

    ``failures`` counts failed attempts (failed or error); ``category`` and
    ``fingerprint`` (with its ``template``) are the most frequent among them,
    with their counts; ``workers`` / ``hosts`` map each to its failed first
    attempts, ``ran_workers`` / ``ran_hosts`` to all its first attempts (a
    retry is sent away from where it failed, so retries would make any
    failure look concentrated).
    """

    __slots__ = (
        "category", "category_count", "failures", "fingerprint", "fingerprint_count", "hosts",
        "ran_hosts", "ran_workers", "template", "workers",
    )

    def __init__(
        self,
        failures: int = 0,
        category: str | None = None,
        category_count: int = 0,
        fingerprint: str | None = None,
        fingerprint_count: int = 0,
        template: str | None = None,
        workers: dict[str, int] | None = None,
        hosts: dict[str, int] | None = None,
        ran_workers: dict[str, int] | None = None,
        ran_hosts: dict[str, int] | None = None,
    ) -> None:
        self.failures = failures
        self.category = category
        self.category_count = category_count
        self.fingerprint = fingerprint
        self.fingerprint_count = fingerprint_count
        self.template = template
        self.workers = workers or {}
        self.hosts = hosts or {}
        self.ran_workers = ran_workers or {}
        self.ran_hosts = ran_hosts or {}


@final
class QuarantineState:
    """A test's latest quarantine decision or release, and the run that made it."""

    __slots__ = ("at", "decision", "nodeid", "reason", "run_id")

    def __init__(self, nodeid: str, decision: str, reason: str, run_id: str, at: float) -> None:
        self.nodeid = nodeid
        self.decision = decision
        self.reason = reason
        self.run_id = run_id
        self.at = at


class HistoryStore(Protocol):
    """What the plugin and the CLI need of a history, and nothing more."""

    def write_run(self, run: RunRecord) -> bool:
        """Write one run in one transaction; False (and nothing written) if its id is known."""

    def read_tests(self) -> Mapping[str, TestAggregate]:
        """Every test's aggregate, by nodeid, in one query (``TestIndex`` for SQLite)."""

    def aggregate(self, nodeid: str) -> TestAggregate | None:
        """One test's aggregate, or None if the history has not seen it."""

    def runs_of(self, nodeid: str, limit: int = 50) -> list[PastRun]:
        """The test's last ``limit`` runs, oldest first."""

    def failure_stats(self, nodeid: str) -> FailureStats:
        """How and where the test's attempts failed."""

    def read_quarantine(self) -> dict[str, QuarantineState]:
        """Each test's latest quarantine decision or release, by nodeid."""

    def top(self, n: int = 20) -> list[TestAggregate]:
        """The ``n`` tests with the highest score above 0, highest first."""

    def run_count(self) -> int:
        """How many runs the history holds."""

    def forget(self, nodeid: str) -> int:
        """Remove the test from the history; the number of its runs that were removed."""

    def close(self) -> None:
        """Release the file."""


# --- the schema ------------------------------------------------------------------------------


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run DDL statements inside the caller's transaction (``executescript`` would commit it)."""
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v1(conn: sqlite3.Connection) -> None:
    """Runs, per-test results and attempts, and the per-test aggregate."""
    _script(conn, """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, start REAL NOT NULL, label TEXT, source TEXT,
            written REAL NOT NULL);
        CREATE INDEX runs_start ON runs (start);
        CREATE TABLE results (
            nodeid TEXT NOT NULL, run_id TEXT NOT NULL, outcome TEXT NOT NULL,
            duration REAL NOT NULL, attempts INTEGER NOT NULL,
            PRIMARY KEY (nodeid, run_id)) WITHOUT ROWID;
        CREATE INDEX results_run ON results (run_id);
        CREATE TABLE attempts (
            nodeid TEXT NOT NULL, run_id TEXT NOT NULL, attempt INTEGER NOT NULL,
            outcome TEXT NOT NULL, category TEXT, fingerprint TEXT, worker TEXT, host TEXT,
            hardware TEXT, duration REAL NOT NULL, message TEXT,
            PRIMARY KEY (nodeid, run_id, attempt)) WITHOUT ROWID;
        CREATE TABLE tests (
            nodeid TEXT PRIMARY KEY, score REAL NOT NULL, duration REAL NOT NULL,
            state TEXT NOT NULL);
    """)


def _v2(conn: sqlite3.Connection) -> None:
    """Pattern templates by fingerprint, quarantine decisions, and ``top``'s score index."""
    _script(conn, """
        CREATE TABLE patterns (
            fingerprint TEXT PRIMARY KEY, category TEXT, template TEXT NOT NULL);
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY, nodeid TEXT NOT NULL, decision TEXT NOT NULL,
            reason TEXT NOT NULL, run_id TEXT NOT NULL, at REAL NOT NULL);
        CREATE INDEX quarantine_test ON quarantine (nodeid, id);
        CREATE INDEX tests_score ON tests (score DESC);
    """)


# MIGRATIONS[i] takes a file from schema version i to i + 1; never edit one, append
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2]
SCHEMA_VERSION = len(MIGRATIONS)

# score and duration have columns of their own (top's index; read_tests reads only them
# and the nodeid at start); the rest is packed in one, read per test when asked for
_TEST_COLUMNS = "nodeid, score, duration, state"
_TEST_INSERT = "INSERT OR REPLACE INTO tests (nodeid, score, duration, state) VALUES (?, ?, ?, ?)"


def _test_row(agg: TestAggregate) -> tuple[str, float, float, str]:
    return (agg.nodeid, agg.score, agg.duration_mean, agg.to_state())


_FAILED = ("failed", "error")


@final
class SQLiteHistory:
    """A history in one SQLite file (``HistoryStore``); ``SQLiteHistory.open(path)``."""

    __slots__ = ("_conn", "path")

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike[str], busy_timeout: float = BUSY_TIMEOUT) -> SQLiteHistory:
        """Open (creating or migrating) the history at ``path``; HistoryUnusable if it can't."""
        p = Path(path)
        _check_header(p)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(p, timeout=busy_timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise HistoryUnusable(p, f"cannot open: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            _prepare_waiting(conn, p, time.monotonic() + busy_timeout)
        except sqlite3.Error as exc:
            conn.close()
            raise _unusable(p, exc) from None
        except HistoryUnusable:
            conn.close()
            raise
        return cls(conn, p)

    def close(self) -> None:
        self._conn.close()

    def schema_version(self) -> int:
        return _version(self._conn)

    def run_count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM runs").fetchone()[0])

    def read_tests(self) -> TestIndex:
        try:
            rows = self._conn.execute("SELECT nodeid, score, duration FROM tests").fetchall()
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc) from None
        return TestIndex({row[0]: row for row in rows}, self.aggregate)

    def aggregate(self, nodeid: str) -> TestAggregate | None:
        """The test's full aggregate, or None if the history has not seen it."""
        try:
            row = self._conn.execute(
                "SELECT state FROM tests WHERE nodeid = ?", (nodeid,)).fetchone()
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc) from None
        return None if row is None else TestAggregate.from_state(nodeid, row[0])

    def write_run(self, run: RunRecord) -> bool:
        try:
            return self._write(run)
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise _unusable(self.path, exc) from None

    def _write(self, run: RunRecord) -> bool:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        if c.execute("SELECT 1 FROM runs WHERE run_id = ?", (run.run_id,)).fetchone():
            c.execute("ROLLBACK")
            return False
        c.execute(
            "INSERT INTO runs (run_id, start, label, source, written) VALUES (?, ?, ?, ?, ?)",
            (run.run_id, run.start, run.label, run.source, time.time()),
        )
        tests = {t.nodeid: t for t in run.tests}  # a nodeid twice: the last one counts
        c.executemany(
            "INSERT INTO results (nodeid, run_id, outcome, duration, attempts) "
            "VALUES (?, ?, ?, ?, ?)",
            [(t.nodeid, run.run_id, t.outcome, t.duration, len(t.attempts))
             for t in tests.values()],
        )
        c.executemany(
            "INSERT OR REPLACE INTO attempts (nodeid, run_id, attempt, outcome, category, "
            "fingerprint, worker, host, hardware, duration, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(t.nodeid, run.run_id, a.attempt, a.outcome, a.category, a.fingerprint, a.worker,
              a.host, a.hardware, a.duration, a.message)
             for t in tests.values() for a in t.attempts],
        )
        c.executemany(
            "INSERT OR REPLACE INTO patterns (fingerprint, category, template) VALUES (?, ?, ?)",
            [(fp, cat, tpl) for fp, (cat, tpl) in run.patterns.items()],
        )
        c.executemany(
            "INSERT INTO quarantine (nodeid, decision, reason, run_id, at) VALUES (?, ?, ?, ?, ?)",
            [(q.nodeid, q.decision, q.reason, run.run_id, run.start) for q in run.quarantine],
        )
        current = self._aggregates(tests)
        updated: list[tuple[str, float, float, str]] = []
        older: list[str] = []
        for t in tests.values():
            agg = current.get(t.nodeid)
            if agg is not None and agg.last_start is not None and agg.last_start > run.start:
                older.append(t.nodeid)  # a run older than the test's latest: fold it all again
                continue
            updated.append(_test_row(fold(
                agg, t.nodeid, t.outcome, run_id=run.run_id, start=run.start, label=run.label,
                duration=t.duration,
            )))
        c.executemany(_TEST_INSERT, updated)
        self._refold(older)
        c.execute("COMMIT")
        return True

    def _aggregates(self, nodeids: Iterable[str]) -> dict[str, TestAggregate]:
        ids = list(nodeids)
        out: dict[str, TestAggregate] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            rows = self._conn.execute(
                f"SELECT {_TEST_COLUMNS} FROM tests WHERE nodeid IN "
                f"({', '.join('?' * len(chunk))})", chunk,
            )
            out.update((row[0], TestAggregate.from_state(row[0], row[3])) for row in rows)
        return out

    def _refold(self, nodeids: Iterable[str]) -> None:
        """Rebuild these tests' aggregates from all their results, oldest run first."""
        for nodeid in nodeids:
            agg: TestAggregate | None = None
            for outcome, duration, run_id, start, label in self._conn.execute(
                "SELECT r.outcome, r.duration, r.run_id, runs.start, runs.label "
                "FROM results r JOIN runs USING (run_id) WHERE r.nodeid = ? "
                "ORDER BY runs.start, r.run_id", (nodeid,),
            ):
                agg = fold(agg, nodeid, outcome, run_id=run_id, start=start, label=label,
                           duration=duration)
            if agg is None:
                self._conn.execute("DELETE FROM tests WHERE nodeid = ?", (nodeid,))
            else:
                self._conn.execute(_TEST_INSERT, _test_row(agg))

    def rebuild_aggregates(self) -> int:
        """Fold every test's aggregate again from its results; the number of tests."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            ids = [r[0] for r in c.execute("SELECT DISTINCT nodeid FROM results")]
            c.execute("DELETE FROM tests")
            self._refold(ids)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return len(ids)

    def runs_of(self, nodeid: str, limit: int = 50) -> list[PastRun]:
        c = self._conn
        rows = c.execute(
            "SELECT r.run_id, runs.start, runs.label, r.outcome, r.duration "
            "FROM results r JOIN runs USING (run_id) WHERE r.nodeid = ? "
            "ORDER BY runs.start DESC, r.run_id DESC LIMIT ?", (nodeid, limit),
        ).fetchall()
        attempts: dict[str, list[AttemptRecord]] = {}
        for row in c.execute(
            "SELECT run_id, attempt, outcome, category, fingerprint, worker, host, hardware, "
            "duration, message FROM attempts WHERE nodeid = ? ORDER BY run_id, attempt",
            (nodeid,),
        ):
            attempts.setdefault(row[0], []).append(AttemptRecord(
                row[1], row[2], category=row[3], fingerprint=row[4], worker=row[5],
                host=row[6], hardware=row[7], duration=row[8], message=row[9],
            ))
        return [
            PastRun(run_id, start, label, outcome, duration, tuple(attempts.get(run_id, ())))
            for run_id, start, label, outcome, duration in reversed(rows)
        ]

    def failure_stats(self, nodeid: str) -> FailureStats:
        stats = FailureStats()
        categories: dict[str, int] = {}
        fingerprints: dict[str, int] = {}
        for attempt, outcome, category, fingerprint, worker, host in self._conn.execute(
            "SELECT attempt, outcome, category, fingerprint, worker, host FROM attempts "
            "WHERE nodeid = ?", (nodeid,),
        ):
            failed = outcome in _FAILED
            if failed:
                stats.failures += 1
                if category is not None:
                    categories[category] = categories.get(category, 0) + 1
                if fingerprint is not None:
                    fingerprints[fingerprint] = fingerprints.get(fingerprint, 0) + 1
            if attempt != 1:  # a retry is placed away from where it failed: not a fair sample
                continue
            for place, ran, failures in (
                (worker, stats.ran_workers, stats.workers), (host, stats.ran_hosts, stats.hosts),
            ):
                if place is not None:
                    ran[place] = ran.get(place, 0) + 1
                    if failed:
                        failures[place] = failures.get(place, 0) + 1
        if categories:
            stats.category, stats.category_count = _most(categories)
        if fingerprints:
            stats.fingerprint, stats.fingerprint_count = _most(fingerprints)
            row = self._conn.execute(
                "SELECT template FROM patterns WHERE fingerprint = ?", (stats.fingerprint,),
            ).fetchone()
            stats.template = row[0] if row else None
        return stats

    def read_quarantine(self) -> dict[str, QuarantineState]:
        try:
            rows = self._conn.execute(
                "SELECT q.nodeid, q.decision, q.reason, q.run_id, q.at FROM quarantine q "
                "JOIN (SELECT nodeid, max(id) AS id FROM quarantine GROUP BY nodeid) l "
                "USING (id)"
            ).fetchall()
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc) from None
        return {row[0]: QuarantineState(*row) for row in rows}

    def forget(self, nodeid: str) -> int:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            n = c.execute("DELETE FROM results WHERE nodeid = ?", (nodeid,)).rowcount
            c.execute("DELETE FROM attempts WHERE nodeid = ?", (nodeid,))
            c.execute("DELETE FROM tests WHERE nodeid = ?", (nodeid,))
            c.execute("DELETE FROM quarantine WHERE nodeid = ?", (nodeid,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return int(n)

    def top(self, n: int = 20) -> list[TestAggregate]:
        """The ``n`` tests with the highest score above 0, highest first (the score index)."""
        rows = self._conn.execute(
            f"SELECT {_TEST_COLUMNS} FROM tests WHERE score > 0 "
            "ORDER BY score DESC, nodeid LIMIT ?", (n,),
        )
        return [TestAggregate.from_state(row[0], row[3]) for row in rows]


def _most(counts: dict[str, int]) -> tuple[str, int]:
    key = max(sorted(counts), key=lambda k: counts[k])
    return key, counts[key]


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def _check_header(p: Path) -> None:
    try:
        with open(p, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise HistoryUnusable(p, f"cannot read: {exc}") from None
    if head and head != _SQLITE_MAGIC:
        raise HistoryUnusable(p, "not an SQLite file (corrupt, or some other file)")


def _prepare_waiting(conn: sqlite3.Connection, p: Path, deadline: float) -> None:
    """``_prepare``, again while another process holds the file, until the deadline.

    Switching to WAL (and reading a schema another process is creating) can
    fail at once with "database is locked", without waiting for the busy timeout.
    """
    pause = 0.005
    while True:
        try:
            _prepare(conn, p)
            return
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _is_locked(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _prepare(conn: sqlite3.Connection, p: Path) -> None:
    """WAL mode, then create or migrate the schema, or raise for a file that is not ours."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise HistoryUnusable(p, f"cannot use WAL mode (journal mode {mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    if _is_current(conn, p):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _is_current(conn, p):  # another process may have migrated it meanwhile
            version = _version(conn) if _has_meta(conn) else 0
            for migrate in MIGRATIONS[version:]:
                migrate(conn)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _has_meta(conn: sqlite3.Connection) -> bool:
    return conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone() is not None


def _is_current(conn: sqlite3.Connection, p: Path) -> bool:
    """True: ours at this schema; False: empty or ours at an older one; else HistoryUnusable."""
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    if app == APPLICATION_ID:
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise HistoryUnusable(
                p, f"schema version {version} is newer than this pytest-dtf-errors knows "
                f"({SCHEMA_VERSION})",
            )
        return version == SCHEMA_VERSION
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app == 0 and tables == 0:
        return False
    raise HistoryUnusable(p, "an SQLite file that is not a pytest-dtf-errors history")


def _unusable(p: Path, exc: sqlite3.Error) -> HistoryUnusable:
    text = str(exc)
    if _is_locked(exc):
        return HistoryUnusable(p, f"locked by another process ({text})")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return HistoryUnusable(p, f"corrupt ({text})")
    return HistoryUnusable(p, text)


def fresh_path_beside(path: str | os.PathLike[str]) -> Path:
    """A new file name beside ``path``: ``history.<UTC time>-<pid>.sqlite``, never an existing one."""
    p = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    suffix = p.suffix or ".sqlite"
    n = 0
    while True:
        tail = f"-{n}" if n else ""
        candidate = p.with_name(f"{p.stem}.{stamp}-{os.getpid()}{tail}{suffix}")
        if not candidate.exists():
            return candidate
        n += 1


@final
class OpenedHistory:
    """What ``open_history`` gives: the store, the file it uses, and the warning (or None)."""

    __slots__ = ("path", "store", "warning")

    def __init__(self, store: SQLiteHistory, path: Path, warning: str | None) -> None:
        self.store = store
        self.path = path
        self.warning = warning


def open_history(path: str | os.PathLike[str], busy_timeout: float = BUSY_TIMEOUT) -> OpenedHistory:
    """Open the history at ``path``; if it is unusable, a fresh one beside it, and one warning.

    The warning is one line: the reason and the fresh file's name. Raises
    HistoryUnusable only if the fresh file cannot be opened either.
    """
    try:
        store = SQLiteHistory.open(path, busy_timeout)
        return OpenedHistory(store, store.path, None)
    except HistoryUnusable as exc:
        fresh = fresh_path_beside(path)
        store = SQLiteHistory.open(fresh, busy_timeout)
        return OpenedHistory(store, fresh, f"{exc}; this run's history goes to {fresh}")


def write_with_fallback(
    path: str | os.PathLike[str], run: RunRecord, busy_timeout: float = BUSY_TIMEOUT,
) -> tuple[Path, bool, str | None]:
    """Write ``run`` to the history at ``path``, or to a fresh file beside it if that fails.

    (the file written, whether the run was new there, the warning or None).
    Covers a file that opens but fails at the write (corrupt pages, locked).
    """
    opened = open_history(path, busy_timeout)
    try:
        try:
            return opened.path, opened.store.write_run(run), opened.warning
        except HistoryUnusable as exc:
            if opened.warning is not None:
                raise
            reason = str(exc)
    finally:
        opened.store.close()
    fresh = fresh_path_beside(path)
    store = SQLiteHistory.open(fresh, busy_timeout)
    try:
        return fresh, store.write_run(run), f"{reason}; this run's history goes to {fresh}"
    finally:
        store.close()
