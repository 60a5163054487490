"""Repeats: a test run more than once in one session on purpose, and what its runs add up to.

Two kinds. ``--dtf-repeat N`` runs every selected test N times, spread over
the workers, to check a fix: its pass rate with a 95 % Wilson interval and
its failures by pattern. Early flake detection runs a test the history has
never seen (``kind "new"``) extra times after a passing first run, so new
code cannot bring flakiness in unnoticed: a failed run fails the test as
"new flaky". How many extra runs a new test gets follows its first run's
duration (Datadog's table) and is held to a share of the session's time.

``Attempts`` stays the only ledger writer: this module says which tests
repeat, how often, where the next run goes (a ``RetryPlan`` for the
dispatcher), and what the runs say (``tally``, ``summary_lines``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, final

from .plan import RetryPlan

if TYPE_CHECKING:
    import pytest

    from ..history.values import TestIndex
    from ..ledger import Attempt, Ledger
    from ..settings import Settings
    from .workers import WorkerBook

__all__ = [
    "NEW_TEST_REPEATS", "SESSION_FLOOR", "Z95", "Cap", "RepeatState", "Repeats", "describe",
    "rate_text", "repeats_for", "runs_listed", "summary_lines", "tally", "wilson_interval",
]

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval
# a new test's extra runs by its first run's seconds, as Datadog's early flake detection
NEW_TEST_REPEATS: tuple[tuple[float, int], ...] = ((5.0, 10), (30.0, 5), (60.0, 3), (300.0, 2))
# the cap's session time is at least this: a small suite's few new tests are repeated in full
SESSION_FLOOR = 10.0
MIN_RUN_SECONDS = 0.001  # what a run costs the cap at least (a 0 s test is not free)
LISTED_RUNS = 20  # runs a new flaky test's reason lists one by one
LISTED_TESTS = 20  # repeated tests the summary lists one by one without -v
NO_DISPATCH = "under --dist each (or xdist's own scheduler) no test is run again"


def wilson_interval(passed: int, runs: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a pass rate ``passed / runs``; (0, 1) for no runs.

    Unlike the normal approximation it stays within [0, 1] and is not empty at
    0 or ``runs`` passes, which is where a repeat's pass rate usually is.
    """
    if runs <= 0:
        return 0.0, 1.0
    if not 0 <= passed <= runs:
        raise ValueError(f"passed must be between 0 and runs ({runs}), got {passed}")
    p = passed / runs
    z2 = z * z
    denom = 1.0 + z2 / runs
    center = (p + z2 / (2 * runs)) / denom
    half = z * math.sqrt(p * (1.0 - p) / runs + z2 / (4.0 * runs * runs)) / denom
    # exact at the edges, and never past the rate by a rounding error
    lo = 0.0 if passed == 0 else max(0.0, min(p, center - half))
    hi = 1.0 if passed == runs else min(1.0, max(p, center + half))
    return lo, hi


def repeats_for(duration: float) -> int:
    """Extra runs for a new test whose first run took ``duration`` seconds (0 for a slow one)."""
    for limit, repeats in NEW_TEST_REPEATS:
        if duration < limit:
            return repeats
    return 0


@final
class Cap:
    """New tests' extra runs held to ``share`` of the session's time.

    The session's time is the seconds its tests take without the extra runs:
    the history's mean durations of the known tests (``base``) plus the first
    runs of the new tests seen so far, and at least ``SESSION_FLOOR``. New
    tests are served as their first runs end; one that does not fit gets the
    runs that do (``capped``: nodeid, got, wanted).
    """

    __slots__ = ("base", "capped", "firsts", "reserved", "share")

    def __init__(self, share: float, base: float) -> None:
        self.share = share
        self.base = base
        self.firsts = 0.0  # seconds of new tests' first runs
        self.reserved = 0.0  # seconds of extra runs granted (a run costs its first run's time)
        self.capped: list[tuple[str, int, int]] = []

    @property
    def session_seconds(self) -> float:
        return max(SESSION_FLOOR, self.base + self.firsts)

    @property
    def budget(self) -> float:
        return self.share * self.session_seconds

    def allow(self, nodeid: str, wanted: int, duration: float) -> int:
        """How many of ``wanted`` extra runs of a test that took ``duration`` s fit; reserved."""
        self.firsts += max(0.0, duration)
        if wanted <= 0:
            return 0
        cost = max(duration, MIN_RUN_SECONDS)
        room = max(0.0, self.budget - self.reserved)
        got = min(wanted, int(room / cost + 1e-9))
        self.reserved += got * cost
        if got < wanted:
            self.capped.append((nodeid, got, wanted))
        return got


@final
class RepeatState:
    """One test's repeated runs: asked, sent, ended, and the workers running one now.

    ``planned`` counts every run, the first included; ``sent`` the runs
    dispatched (the first counts as sent), ``ended`` those whose attempt
    closed, ``lost`` those that could not be placed. ``targets``: workers
    with a run of it in flight: at most one each, since a worker given a test
    twice in a row would run it with itself as its next item, and pytest
    would not tear it down in between.
    """

    __slots__ = (
        "ended", "failed_report", "first_duration", "first_node", "in_flight", "kind", "lost",
        "lost_reason", "nodeid", "placed", "planned", "sent", "targets", "wanted",
    )

    def __init__(self, nodeid: str, kind: str, planned: int, first_node: str, first_duration: float) -> None:
        self.nodeid = nodeid
        self.kind = kind  # "repeat" (--dtf-repeat) or "new" (early flake detection)
        self.planned = planned
        self.first_node = first_node
        self.first_duration = first_duration
        self.wanted = planned - 1  # extra runs asked before the cap
        self.sent = 1
        self.ended = 1
        self.in_flight = 0
        self.lost = 0
        self.lost_reason: str | None = None
        self.targets: set[str] = set()
        self.placed: dict[str, int] = {first_node: 1}  # runs sent to each worker
        self.failed_report: pytest.TestReport | None = None  # the failed report the terminal counts (kind "new")

    def __repr__(self) -> str:
        return (
            f"RepeatState(nodeid={self.nodeid!r}, kind={self.kind!r}, planned={self.planned}, "
            f"sent={self.sent}, ended={self.ended}, in_flight={self.in_flight}, lost={self.lost})"
        )

    @property
    def done(self) -> bool:
        return self.in_flight == 0 and self.ended + self.lost >= self.planned


@final
class Repeats:
    """Which tests run more than once, how often, and where each next run goes.

    ``start`` (at collection) turns it on: ``active`` is False for a session
    with neither ``--dtf-repeat`` nor early flake detection, and every hot
    path checks that one bool first. ``off`` is a line saying why repeats
    asked for (or expected: a history in use) are off.
    """

    __slots__ = ("active", "cap", "new", "off", "repeat", "settings", "started", "states", "workers")

    def __init__(self, settings: Settings, workers: WorkerBook) -> None:
        self.settings = settings
        self.workers = workers
        self.active = False
        self.started = False  # the collection came (not under --dist each: xdist's own scheduler)
        self.repeat = 0  # --dtf-repeat N: every test runs N times
        self.new: frozenset[str] = frozenset()  # collected tests the history has never seen
        self.cap: Cap | None = None
        self.off: str | None = None
        self.states: dict[str, RepeatState] = {}

    def start(self, nodeids: Sequence[str], known: TestIndex | None, can_dispatch: bool) -> None:
        """The collection is known: decide what repeats this session."""
        self.started = True
        s = self.settings
        detect = not s.repeat and known is not None and s.new_test_repeats != 0
        if not can_dispatch:  # no dispatcher (--dist each, xdist's own scheduler): nothing runs again
            if s.repeat or (detect and known):
                what = "--dtf-repeat" if s.repeat else "early flake detection"
                self.off = f"{what} is off: {NO_DISPATCH}"
            return
        self.repeat = s.repeat
        if detect and known is not None:
            if not len(known):
                self.off = "early flake detection is off: the history is empty: this run's tests are its first, none is repeated"
            else:
                self.new = frozenset(n for n in nodeids if n not in known)
                base = sum(max(0.0, known.duration(n)) for n in nodeids if n in known)
                self.cap = Cap(s.new_test_share, base)
        self.active = bool(self.repeat or self.new)

    def kind(self, nodeid: str) -> str | None:
        """``repeat``, ``new`` or None: how ``nodeid`` repeats this session."""
        if self.repeat:
            return "repeat"
        return "new" if nodeid in self.new else None

    def repeating(self, nodeid: str) -> bool:
        """Its runs beyond the first are samples, not retries: never retried, never "flaky"."""
        return bool(self.repeat) or nodeid in self.states

    def final_failure(self, nodeid: str) -> str | None:
        """Why a failed attempt of ``nodeid`` is not retried, when it is a repeat's run."""
        if self.repeat:
            return f"--dtf-repeat {self.repeat}: every run counts, none is retried"
        state = self.states.get(nodeid)
        if state is not None:
            return "a new test's extra run: its failure is final (early flake detection)"
        return None

    def hides(self, nodeid: str) -> bool:
        """A passing extra run of a new test is not counted again in the terminal."""
        state = self.states.get(nodeid)
        return state is not None and state.kind == "new"

    # -- the runs -------------------------------------------------------------------
    def begin_repeat(self, att: Attempt) -> RepeatState:
        """``--dtf-repeat``: the first run ended; the others follow."""
        state = RepeatState(att.nodeid, "repeat", self.repeat, att.node, att.duration)
        self.states[att.nodeid] = state
        return state

    def begin_new(self, att: Attempt) -> tuple[RepeatState | None, int]:
        """A new test's first run passed: its extra runs (None when it gets none), and how
        many its duration asked for before the cap."""
        asked = self.settings.new_test_repeats
        wanted = repeats_for(att.duration) if asked is None else asked
        got = self.cap.allow(att.nodeid, wanted, att.duration) if self.cap is not None else wanted
        if got <= 0:
            return None, wanted
        state = RepeatState(att.nodeid, "new", 1 + got, att.node, att.duration)
        state.wanted = wanted
        self.states[att.nodeid] = state
        return state, wanted

    def ended(self, state: RepeatState, node: str) -> None:
        """A run of the test closed on ``node``: that worker may take the next."""
        state.ended += 1
        state.in_flight = max(0, state.in_flight - 1)
        if node in state.targets:
            state.targets.discard(node)
        elif state.targets:
            live = set(self._live(state.nodeid))
            gone = [t for t in state.targets if t not in live]
            state.targets.discard(gone[0] if gone else next(iter(state.targets)))

    def unplaced(self, state: RepeatState, reason: str) -> None:
        """A run could not be placed anywhere: neither it nor the runs not sent yet will run
        (sending them from inside the dispatcher's placing would lose them)."""
        state.lost += 1 + state.planned - state.sent
        state.sent = state.planned
        state.in_flight = max(0, state.in_flight - 1)
        state.lost_reason = reason

    def next_plans(self, state: RepeatState) -> list[RetryPlan]:
        """Plans for the runs that may go now: one per free worker, spread over the workers
        (a new test's runs avoid its first run's worker while another can take them).
        With no worker to name (in-process), one run at a time."""
        plans: list[RetryPlan] = []
        need = self.workers.requirement(state.nodeid)
        while state.sent < state.planned:
            live = self._live(state.nodeid)
            if state.kind == "new" and len(live) > 1 and state.first_node in live:
                live.remove(state.first_node)
            free = [n for n in live if n not in state.targets]
            if free:
                target: str | None = min(free, key=lambda n: state.placed.get(n, 0))
            elif state.in_flight == 0:
                target = None  # nobody to name: the dispatcher places it (or starts a worker)
            else:
                break
            state.sent += 1
            state.in_flight += 1
            where = target or state.first_node
            plan = RetryPlan(
                state.nodeid, state.sent - 1, where, category="repeat", retry=True,
                reason=_run_reason(state), hardware=need,
                # the run goes to its target: every other worker is avoided
                avoid=[n for n in self.workers.nodes if n != target] if target is not None else (),
            )
            plan.promise()
            plans.append(plan)
            if target is not None:
                state.targets.add(target)
                state.placed[target] = state.placed.get(target, 0) + 1
        return plans

    def _live(self, nodeid: str) -> list[str]:
        """Workers ready for work that can run ``nodeid``, in start order."""
        book = self.workers
        return [n for n in book.candidates(hardware=book.requirement(nodeid)) if book.nodes[n].ready]

    def unfinished(self) -> list[RepeatState]:
        return [s for s in self.states.values() if not s.done]

    # -- what the session shows -------------------------------------------------------
    def session_info(self) -> dict[str, Any] | None:
        """The session's side of the repeats (for the JSON report's run section), or None."""
        if self.repeat:
            return {"kind": "repeat", "runs_per_test": self.repeat}
        if self.off is not None:
            return {"kind": "repeat" if self.settings.repeat else "new", "off": self.off}
        if self.cap is None:
            return None
        cap = self.cap
        return {
            "kind": "new",
            "new_tests": len(self.new),
            "share": cap.share,
            "session_seconds": round(cap.session_seconds, 3),
            "budget_seconds": round(cap.budget, 3),
            "reserved_seconds": round(cap.reserved, 3),
            "capped": [{"nodeid": n, "repeats": got, "wanted": wanted} for n, got, wanted in cap.capped],
        }


def _run_reason(state: RepeatState) -> str:
    if state.kind == "repeat":
        return f"--dtf-repeat: run {state.sent} of {state.planned}"
    return f"new test: extra run {state.sent - 1} of {state.planned - 1} (early flake detection)"


def tally(
    kind: str,
    attempts: Iterable[Attempt],
    planned: int,
    *,
    repeats: int | None = None,
    wanted: int | None = None,
    first_duration: float | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """``TestRecord.repeat``: what a repeated (or new) test's runs add up to, JSON-ready.

    An interrupted run (the session ended in it) is no run.
    """
    runs = [a for a in attempts if a.phase != "interrupted"]
    passed = sum(1 for a in runs if a.outcome == "passed")
    failed = sum(1 for a in runs if a.failed)
    skipped = len(runs) - passed - failed
    counted = passed + failed
    lo, hi = wilson_interval(passed, counted)
    groups: dict[tuple[str | None, str | None], int] = {}
    nodes: dict[str, int] = {}
    for a in runs:
        nodes[a.node] = nodes.get(a.node, 0) + 1
        if a.failed:
            key = (a.pattern, a.category)
            groups[key] = groups.get(key, 0) + 1
    out: dict[str, Any] = {
        "kind": kind,
        "runs": len(runs),
        "planned": planned,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "pass_rate": round(passed / counted, 6) if counted else None,
        "interval": [round(lo, 6), round(hi, 6)] if counted else None,
        "patterns": [
            {"pattern": pattern, "category": category, "count": count}
            for (pattern, category), count in sorted(groups.items(), key=lambda kv: (-kv[1], str(kv[0])))
        ],
        "nodes": nodes,
        "verdict": _verdict(kind, passed, failed, len(runs) < planned),
        "note": note,
    }
    if kind == "new":
        out["repeats"] = planned - 1 if repeats is None else repeats
        out["wanted"] = wanted if wanted is not None else out["repeats"]
        out["first_duration"] = round(first_duration or 0.0, 6)
    return out


def _verdict(kind: str, passed: int, failed: int, short: bool) -> str:
    if failed and passed:
        return "new flaky" if kind == "new" else "flaky"
    if failed:
        return "failed"
    if short:
        return "cut short"
    return "passed" if passed else "skipped"


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def rate_text(repeat: dict[str, Any]) -> str:
    """``pass rate 50 % (95 % interval 24 %-76 %)`` of a ``rec.repeat``; "" without a run that counted."""
    if not repeat.get("interval"):
        return ""
    lo, hi = repeat["interval"]
    return f"pass rate {_pct(repeat['pass_rate'])} (95 % interval {_pct(lo)}-{_pct(hi)})"


def describe(repeat: dict[str, Any]) -> str:
    """One line for one test's ``rec.repeat``: its runs, pass rate, interval and failures."""
    counted = repeat["passed"] + repeat["failed"]
    text = f"{repeat['passed']} of {counted} runs passed" if counted else f"{repeat['runs']} runs, none passed or failed"
    if repeat.get("interval"):
        text += f", {rate_text(repeat)}"
    if repeat.get("skipped"):
        text += f", {repeat['skipped']} skipped"
    if repeat["runs"] < repeat["planned"]:
        text += f", {repeat['runs']} of {repeat['planned']} runs ran"
    nodes = repeat.get("nodes") or {}
    if len(nodes) > 1:
        text += "; on " + ", ".join(f"{n} {c}" for n, c in sorted(nodes.items()))
    if repeat["patterns"]:
        text += "; failures: " + ", ".join(
            f"{p['count']} x {p['category'] or 'unknown'} (pattern {p['pattern'] or '?'})" for p in repeat["patterns"]
        )
    if repeat.get("note"):
        text += f"; {repeat['note']}"
    return text


def runs_listed(attempts: Sequence[Attempt]) -> str:
    """``1 gw0 passed, 2 gw1 failed (test_assertion_error), ...``: the runs of a new flaky test."""
    runs = [a for a in attempts if a.phase != "interrupted"]
    parts = [
        f"{a.attempt} {a.node} {a.outcome}" + (f" ({a.category})" if a.failed and a.category else "")
        for a in runs[:LISTED_RUNS]
    ]
    if len(runs) > LISTED_RUNS:
        parts.append(f"... and {len(runs) - LISTED_RUNS} more")
    return ", ".join(parts)


def summary_lines(ledger: Ledger, repeats: Repeats, verbose: int = 0) -> list[str]:
    """The terminal's lines for the session's repeats; [] when nothing repeated."""
    out: list[str] = []
    if repeats.off is not None:
        out.append(f"dtf: {repeats.off}")
    elif not repeats.started and repeats.settings.repeat:
        out.append(f"dtf: --dtf-repeat is off: {NO_DISPATCH}")
    recs = [r for r in ledger if r.repeat is not None]
    if not recs:
        return out
    if repeats.repeat:
        out += _repeat_lines(recs, repeats.repeat, verbose)
    else:
        out += _new_lines(recs, repeats, verbose)
    return out


def _by_rate(recs: Collection[Any]) -> list[Any]:
    """Failing tests first (lowest pass rate first), then by nodeid."""
    def key(rec: Any) -> tuple[float, str]:
        rate = rec.repeat["pass_rate"]
        return (rate if rate is not None else 2.0, rec.nodeid)

    return sorted(recs, key=key)


def _repeat_lines(recs: list[Any], n: int, verbose: int) -> list[str]:
    failing = [r for r in recs if r.repeat["failed"]]
    runs = sum(r.repeat["runs"] for r in recs)
    workers = {w for r in recs for w in r.repeat["nodes"]}
    head = f"dtf: --dtf-repeat {n}: {len(recs)} test{'s' * (len(recs) != 1)}, {runs} runs on {len(workers)} worker{'s' * (len(workers) != 1)}"
    head += f"; {len(failing)} failed at least one run" if failing else "; every run passed"
    out = [head]
    listed = _by_rate(recs)
    if not verbose and len(listed) > LISTED_TESTS:
        listed = _by_rate(failing)[:LISTED_TESTS]
    for rec in listed:
        out.append(f"  {rec.nodeid}: {describe(rec.repeat)}")
    rest = len(recs) - len(listed)
    if rest:
        out.append(f"  ... and {rest} more (-v lists them all)")
    return out


def _new_lines(recs: list[Any], repeats: Repeats, verbose: int) -> list[str]:
    flaky = [r for r in recs if r.repeat["verdict"] == "new flaky"]
    repeated = [r for r in recs if r.repeat["repeats"]]
    extra = sum(max(0, r.repeat["runs"] - 1) for r in repeated)
    head = (
        f"dtf: early flake detection: {len(recs)} new test{'s' * (len(recs) != 1)} (not in the history), "
        f"{len(repeated)} ran again ({extra} extra runs)"
    )
    head += f"; {len(flaky)} new flaky" if flaky else ""
    out = [head]
    for rec in _by_rate(flaky):
        out.append(f"  NEW FLAKY {rec.nodeid}: {describe(rec.repeat)}")
    if verbose:
        for rec in sorted(recs, key=lambda r: r.nodeid):
            if rec not in flaky:
                out.append(f"  {rec.nodeid}: {describe(rec.repeat)}")
    cap = repeats.cap
    if cap is not None:
        line = (
            f"dtf: new tests' extra runs are capped at {_pct(cap.share)} of the session's time: "
            f"{cap.budget:.1f} s of {cap.session_seconds:.1f} s, {cap.reserved:.1f} s used"
        )
        if cap.capped:
            cut = ", ".join(f"{n} ({got} of {wanted})" for n, got, wanted in cap.capped[:LISTED_TESTS])
            more = f" and {len(cap.capped) - LISTED_TESTS} more" if len(cap.capped) > LISTED_TESTS else ""
            line += f"; it cut {len(cap.capped)} test{'s' * (len(cap.capped) != 1)}: {cut}{more}"
        out.append(line)
    return out
