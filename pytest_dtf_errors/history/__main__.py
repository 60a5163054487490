"""``python -m pytest_dtf_errors.history``: ingest reports, and read the history.

    ingest REPORT.json...   merge --dtf-report files (other machines, CI shards);
                            a run already in the history is skipped (by run id)
    top [-n 20]             the flakiest tests: score, runs, last failure,
                            dominant category and pattern, where they fail
    show NODEID [-n 30]     one test's runs, as a timeline
    forget NODEID           remove one test from the history

``--history PATH`` (before or after the command) names the file; the default
is ``.pytest_cache/d/dtf/history.sqlite`` under the current directory, the
file a ``pytest`` run from there uses. Exit status 0; 1 when ``forget``
finds no such test; 2 with a one-line message for a missing or unusable
history or a report that cannot be read (the other reports are still ingested).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import DEFAULT_PATH
from .ingest import load_report, run_from_report
from .score import concentration, failed_of_recent
from .store import HistoryUnusable, PastRun, SQLiteHistory

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--history", default=argparse.SUPPRESS, metavar="PATH",
                        help=f"the history file (default: {DEFAULT_PATH})")
    parser = argparse.ArgumentParser(
        prog="python -m pytest_dtf_errors.history", parents=[common],
        description="The pytest-dtf-errors test history.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest", parents=[common], help="merge JSON reports")
    ingest.add_argument("reports", nargs="+", metavar="REPORT.json")
    top = sub.add_parser("top", parents=[common], help="the flakiest tests")
    top.add_argument("-n", type=int, default=20, help="how many (default 20)")
    show = sub.add_parser("show", parents=[common], help="one test's runs")
    show.add_argument("nodeid")
    show.add_argument("-n", type=int, default=30, help="its last N runs (default 30)")
    forget = sub.add_parser("forget", parents=[common], help="remove a test")
    forget.add_argument("nodeid")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = Path(getattr(args, "history", DEFAULT_PATH))
    if args.command != "ingest" and not path.exists():
        print(f"no history at {path}", file=sys.stderr)
        return 2
    try:
        store = SQLiteHistory.open(path)
    except HistoryUnusable as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        if args.command == "ingest":
            return _ingest(store, args.reports)
        if args.command == "top":
            return _top(store, args.n)
        if args.command == "show":
            return _show(store, args.nodeid, args.n)
        return _forget(store, args.nodeid)
    except HistoryUnusable as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except sqlite3.Error as exc:  # a page that breaks only when read
        print(f"history file {path}: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _ingest(store: SQLiteHistory, reports: Sequence[str]) -> int:
    status = 0
    for report in reports:
        try:
            run = run_from_report(load_report(report), source=report)
        except ValueError as exc:
            print(f"{report}: {exc}", file=sys.stderr)
            status = 2
            continue
        if store.write_run(run):
            print(f"{report}: run {run.run_id} added ({len(run.tests)} tests)")
        else:
            print(f"{report}: run {run.run_id} already in the history")
    print(f"history {store.path}: {store.run_count()} runs")
    return status


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch))


def _top(store: SQLiteHistory, n: int) -> int:
    flakiest = store.top(n)
    print(f"history {store.path}: {store.run_count()} runs; the {len(flakiest)} flakiest tests")
    if not flakiest:
        return 0
    print(f"{'score':>5} {'runs':>5} {'failed':>9}  {'last failure':<28} category")
    for agg in flakiest:
        failed, of = failed_of_recent(agg, 100)
        last = _when(agg.last_failure_start)
        if agg.last_failure_start is not None:
            last += f" ({(agg.last_failure_label or agg.last_failure_run_id or '')[:12]})"
        stats = store.failure_stats(agg.nodeid)
        category = "-"
        if stats.category is not None:
            category = f"{stats.category} ({stats.category_count} of {stats.failures})"
        print(f"{agg.score:5.2f} {agg.runs:5d} {f'{failed} of {of}':>9}  {last:<28} {category}")
        print(f"    {agg.nodeid}")
        if stats.template is not None:
            print(f"    pattern: {stats.template[:100]} "
                  f"({stats.fingerprint_count} of {stats.failures} failed attempts)")
        where = concentration(stats.hosts, stats.ran_hosts)
        kind = "host"
        if where is None:
            where, kind = concentration(stats.workers, stats.ran_workers), "worker"
        if where is not None:
            print(f"    fails on {kind} {where[0]} ({where[1]} of {where[2]} failed first attempts)")
    return 0


def _show(store: SQLiteHistory, nodeid: str, n: int) -> int:
    agg = store.aggregate(nodeid)
    if agg is None:
        print(f"{nodeid} is not in the history {store.path}", file=sys.stderr)
        return 2
    print(
        f"{nodeid}: score {agg.score:.2f}, {agg.runs} runs ({agg.passed} passed, "
        f"{agg.flaky} flaky, {agg.failed} failed, {agg.errors} error, {agg.skipped} skipped)"
    )
    print(f"recent (oldest first): {agg.recent[-60:]}")
    for past in store.runs_of(nodeid, n):
        print(_timeline_line(past))
    return 0


def _timeline_line(past: PastRun) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(past.start))
    steps = " -> ".join(
        f"{a.worker or '?'} {a.outcome}" + (f" [{a.category}]" if a.category else "")
        for a in past.attempts
    )
    return (f"{when}  {(past.label or past.run_id)[:24]:<24}  {past.outcome:<7}  "
            f"{past.duration:6.2f} s  {steps}")


def _forget(store: SQLiteHistory, nodeid: str) -> int:
    runs = store.forget(nodeid)
    if runs == 0:
        print(f"{nodeid} is not in the history {store.path}", file=sys.stderr)
        return 1
    print(f"forgot {nodeid} ({runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
