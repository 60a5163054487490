"""The history's side of one session, on the controller: read at start, written once at the end.

At ``pytest_configure`` the store is opened and ``read_tests()`` gives every
known test (``Attempts.known``: new-test detection and duration-aware
scheduling read it). From it and the quarantine table, ``Memory`` decides
which tests are quarantined this run. At the end it annotates each failure
from the history as read at start, decides releases, and writes the run (the
JSON report's data, through ``history.ingest.run_from_report``, so a report
ingested later and a run written here are the same record) in one
transaction. Workers never touch the file.

A file that cannot be used is one warning line; the run goes on, and its
results go to a fresh file beside the bad one (``history.open_history``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, final

from ..history.ingest import run_from_report
from ..history.score import annotate_failure, failed_of_recent, flips_of_recent
from ..history.store import HistoryUnusable, SQLiteHistory, fresh_path_beside, open_history
from ..history.values import QuarantineEvent, TestAggregate, TestIndex
from ..ledger import Ledger, TestRecord
from ..settings import Quarantine

__all__ = ["LISTED", "MIN_RUNS", "Memory"]

# counted runs, and flips among its last WINDOW, a test needs before "auto" may quarantine it
# by its score: a test that broke once flipped once; it is failing, not flaky
MIN_RUNS = 3
MIN_FLIPS = 2
WINDOW = 40
# the reason of a quarantine the [tool.dtf] list made (it lasts while the test is listed)
LISTED = "listed in quarantine.tests"
# recent runs a failure's history entry carries (the HTML report's sparkline)
RECENT_SHOWN = 20


@final
class Memory:
    """One session's history: what it knew at start, and what it writes at the end."""

    __slots__ = (
        "_path", "_store", "apply_quarantine", "events", "known", "notes", "path", "quarantined",
        "runs_before", "settings", "warning", "written_to",
    )

    def __init__(self, path: Path, settings: Quarantine, *, apply_quarantine: bool) -> None:
        self._path = path  # the file asked for
        self.settings = settings
        self.apply_quarantine = apply_quarantine  # not under --dtf-no-quarantine
        self.warning: str | None = None
        self.notes: list[str] = []  # warning lines the terminal has yet to show
        self._store: SQLiteHistory | None = None
        self.path = path  # the file used (a fresh one beside a bad one)
        self.written_to: Path | None = None
        self.known = TestIndex({}, lambda nodeid: None)
        self.runs_before = 0
        self.quarantined: dict[str, dict[str, Any]] = {}  # nodeid -> {"score", "reason", "since"}
        self.events: list[QuarantineEvent] = []  # decisions of this run, written with it

    # -- at start -----------------------------------------------------------------
    def open(self) -> TestIndex:
        """Read the history (an unusable file: a warning, and a fresh file beside it)."""
        try:
            opened = open_history(self._path)
        except HistoryUnusable as exc:
            self._say(f"{exc}; this run keeps no history")
            return self.known
        self._store, self.path = opened.store, opened.path
        if opened.warning:
            self._say(opened.warning)
        try:
            self.known = opened.store.read_tests()
            self.runs_before = opened.store.run_count()
            self._decide_quarantine(opened.store.read_quarantine())
        except HistoryUnusable as exc:  # it opened, but its pages do not read
            self.close()
            self.known = TestIndex({}, lambda nodeid: None)
            self.quarantined.clear()
            self.events.clear()
            self.path = fresh_path_beside(self._path)
            self._say(f"{exc}; this run's history goes to {self.path}")
        return self.known

    def _decide_quarantine(self, states: Mapping[str, Any]) -> None:
        q = self.settings
        listed = set(q.tests)
        for nodeid in q.tests:
            state = states.get(nodeid)
            self._quarantine(nodeid, LISTED, state.at if state is not None and state.decision == "quarantine" else None)
        for nodeid, state in states.items():
            if nodeid in listed:
                continue
            if state.decision == "quarantine" and state.reason == LISTED:
                self.events.append(QuarantineEvent(nodeid, "release", "no longer listed in quarantine.tests"))
            elif state.decision == "quarantine" and q.mode == "auto":
                self._quarantine(nodeid, state.reason, state.at)
        if q.mode != "auto":
            return
        known = self.known
        for nodeid in known:
            if nodeid in self.quarantined or known.score(nodeid) < q.threshold or nodeid in listed:
                continue
            agg = known[nodeid]
            if agg.runs - agg.skipped < MIN_RUNS or flips_of_recent(agg, WINDOW) < MIN_FLIPS:
                continue
            state = states.get(nodeid)
            if state is not None and state.decision == "release" and not _failed_since(agg, state.at):
                continue  # released, and clean since: its score is still falling
            failed, of = failed_of_recent(agg, WINDOW)
            self._quarantine(
                nodeid, f"score {agg.score:.2f} over the threshold {q.threshold:g} "
                f"(failed {failed} of its last {of} runs)", None,
            )

    def _quarantine(self, nodeid: str, reason: str, since: float | None) -> None:
        """Quarantined this run; a new decision (``since`` None) is written with the run."""
        score = self.known.score(nodeid) if nodeid in self.known else None
        self.quarantined[nodeid] = {"score": score, "reason": reason, "since": since}
        if since is None:
            self.events.append(QuarantineEvent(nodeid, "quarantine", reason))

    def is_quarantined(self, nodeid: str) -> bool:
        return self.apply_quarantine and nodeid in self.quarantined

    # -- at the end ---------------------------------------------------------------
    def annotate(self, ledger: Ledger) -> None:
        """Every failure (and flaky pass) gets what the history says of it; quarantined tests their why."""
        for rec in ledger:
            if self.is_quarantined(rec.nodeid):
                rec.quarantine = dict(self.quarantined[rec.nodeid])
            if rec.final not in ("failed", "error", "flaky") or rec.nodeid not in self.known:
                continue
            agg = self.known[rec.nodeid]
            rec.history = {
                "score": round(agg.score, 4),
                "runs": agg.runs,
                "recent": agg.recent[-RECENT_SHOWN:],
                "annotations": [a.as_dict() for a in annotate_failure(agg)],
            }

    def releases(self, ledger: Ledger) -> None:
        """Quarantined tests that earned their release this run: N clean runs in a row, or a clean repeat."""
        if not self.apply_quarantine:
            return
        n = self.settings.release_after
        for nodeid, q in self.quarantined.items():
            if q["reason"] == LISTED:
                continue  # the list decides
            rec = ledger.tests.get(nodeid)
            if rec is None or rec.final != "passed" or any(a.failed for a in rec.attempts):
                continue
            repeat = rec.repeat or {}
            runs = int(repeat.get("runs") or 0)
            if repeat.get("kind") == "repeat" and runs >= n and repeat.get("passed") == runs:
                self.events.append(QuarantineEvent(nodeid, "release", f"passed all {runs} runs of a --dtf-repeat"))
                continue
            past = self.known.get(nodeid)
            clean = _clean_streak(past.recent if past is not None else "") + 1
            if clean >= n:
                self.events.append(QuarantineEvent(nodeid, "release", f"{clean} clean runs in a row"))

    def history_section(self) -> dict[str, Any]:
        """The JSON report's ``history``: the file, what it knew, this run's quarantine decisions."""
        return {
            "file": str(self.path),
            "runs": self.runs_before,
            "known_tests": len(self.known),
            "warning": self.warning,
            "quarantined": sorted(self.quarantined) if self.apply_quarantine else [],
            "events": [
                {"nodeid": e.nodeid, "decision": e.decision, "reason": e.reason} for e in self.events
            ] if self.apply_quarantine else [],
        }

    def write(self, report: Mapping[str, Any]) -> None:
        """Write the run (the report's data) in one transaction; a bad file: a fresh one beside it."""
        run = run_from_report(report, source="pytest")
        if self.apply_quarantine:
            run.quarantine = tuple(self.events)
        store, self._store = self._store, None
        for fallback in (False, True):
            try:
                if store is None:
                    store = SQLiteHistory.open(fresh_path_beside(self._path) if fallback else self.path)
                store.write_run(run)
                self.written_to = store.path
                return
            except HistoryUnusable as exc:
                if fallback:
                    self._say(f"{exc}; this run's history is not kept")
                else:
                    self._say(f"{exc}; this run's history goes to {fresh_path_beside(self._path)}")
            finally:
                if store is not None:
                    store.close()
                    store = None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _say(self, line: str) -> None:
        self.warning = line
        self.notes.append(f"pytest-dtf-errors: history: {line}")


def _failed_since(agg: TestAggregate, at: float) -> bool:
    return agg.last_failure_start is not None and agg.last_failure_start > at


def _clean_streak(recent: str) -> int:
    """Runs at the end of ``recent`` that passed at their first attempt (skipped ones neither count nor break it)."""
    n = 0
    for code in reversed(recent):
        if code == "S":
            continue
        if code != "P":
            break
        n += 1
    return n


def quarantined_failures(ledger: Ledger, memory: Memory | None) -> list[TestRecord]:
    """The failed tests whose failure the exit status ignores."""
    if memory is None or not memory.apply_quarantine:
        return []
    return [r for r in ledger if r.final in ("failed", "error") and memory.is_quarantined(r.nodeid)]
