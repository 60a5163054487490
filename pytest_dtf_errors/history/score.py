"""A test's flakiness score, its aggregate's next state, and a failure's annotations.

The score is a flip rate with exponential decay over the test's recent runs,
after Kowalczyk et al., "Modeling and ranking flaky tests at scale" (Apple,
ICSE-SEIP 2020). Over the test's runs that were not skipped, oldest first,
run ``i`` *flips* (``f_i = 1``) when

- it was flaky in the run (failed, then passed on a retry), or
- its status (pass: passed or flaky; fail: failed or error) differs from the
  status of the test's previous counted run;

otherwise ``f_i = 0``. With the decay ``DECAY = α`` (0.95: a run's weight
halves after about 13.5 newer runs), over ``n`` counted runs::

    score = Σ_i α^(n-i) f_i  /  Σ_i α^(n-i)        (0 when n = 0)

which the store keeps incrementally, with no list of runs::

    flip_weight ← α · flip_weight + f_n
    weight      ← α · weight + 1
    score       = flip_weight / weight

So a test that always passes (or always fails) scores 0; one that is flaky in
every run, or alternates pass, fail, pass, ..., scores (nearly) 1; one flaky
run after a long clean history scores about ``1 - α = 0.05``, halving every
13.5 clean runs after it. The weights sum to at most ``1 / (1 - α) = 20``
runs, so the score is a rate over roughly the last 20 runs. The score is
always in [0, 1]; a run that flips never lowers it and one that does not never
raises it. Skipped runs change neither sum.

Everything here is a pure function of a ``TestAggregate`` (and the new run),
so the plugin and the CLI call the same code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import final

from .values import OUTCOME_CODES, TestAggregate

__all__ = [
    "DECAY",
    "RECENT",
    "Annotation",
    "annotate_failure",
    "concentration",
    "flips",
    "flips_of_recent",
    "fold",
    "score_of_outcomes",
]

DECAY = 0.95
# outcome codes kept per test for "failed K of its last M runs" and "new failure"
RECENT = 100

_STATUS = {"P": "pass", "K": "pass", "F": "fail", "E": "fail"}
# codes of runs in which the test failed at least once (flaky runs included)
_FAILED_IN_RUN = frozenset("KFE")


def flips(outcomes: Iterable[str]) -> list[int]:
    """f_i for each counted (not skipped) run of ``outcomes`` (final outcome names)."""
    out: list[int] = []
    last: str | None = None
    for outcome in outcomes:
        code = OUTCOME_CODES[outcome]
        status = _STATUS.get(code)
        if status is None:
            continue
        out.append(1 if code == "K" or (last is not None and status != last) else 0)
        last = status
    return out


def score_of_outcomes(outcomes: Iterable[str], decay: float = DECAY) -> float:
    """The score of a history given as final outcomes, oldest first: the formula, directly."""
    f = flips(outcomes)
    n = len(f)
    if n == 0:
        return 0.0
    num = sum(decay ** (n - 1 - i) * fi for i, fi in enumerate(f))
    den = sum(decay ** (n - 1 - i) for i in range(n))
    return min(1.0, num / den)


def fold(
    agg: TestAggregate | None,
    nodeid: str,
    outcome: str,
    *,
    run_id: str,
    start: float,
    label: str | None = None,
    duration: float = 0.0,
    decay: float = DECAY,
) -> TestAggregate:
    """The aggregate after one more run (newer than every run folded in so far)."""
    a = agg if agg is not None else TestAggregate(nodeid)
    code = OUTCOME_CODES[outcome]
    status = _STATUS.get(code)
    new = a.copy()
    new.runs += 1
    new.last_outcome = outcome
    new.last_run_id = run_id
    new.last_start = start
    new.last_label = label
    new.recent = (a.recent + code)[-RECENT:]
    if code == "P":
        new.passed += 1
    elif code == "K":
        new.flaky += 1
    elif code == "F":
        new.failed += 1
    elif code == "E":
        new.errors += 1
    else:
        new.skipped += 1
    if status is None:  # skipped: neither sum changes, nor the streaks
        return new
    flip = 1 if code == "K" or (a.last_status is not None and status != a.last_status) else 0
    new.flip_weight = decay * a.flip_weight + flip
    new.weight = decay * a.weight + 1.0
    new.score = min(1.0, new.flip_weight / new.weight)
    counted = new.runs - new.skipped
    new.duration_mean = a.duration_mean + (duration - a.duration_mean) / counted
    new.last_status = status
    if code in _FAILED_IN_RUN:
        new.last_failure_run_id, new.last_failure_start = run_id, start
        new.last_failure_label = label
    if status == "fail":
        if a.last_status != "fail":
            new.fail_since_run_id, new.fail_since_start = run_id, start
            new.fail_since_label = label
            new.fail_streak = 0
        new.fail_streak += 1
    else:
        new.fail_since_run_id = new.fail_since_start = new.fail_since_label = None
        new.fail_streak = 0
    return new


@final
class Annotation:
    """One thing the history says about a failure: ``kind`` and the line to show.

    ``kind`` is ``new_failure``, ``known_flaky`` or ``failing_since``. The
    other fields are its facts (None where they do not apply): ``score``;
    ``failed`` of the last ``of`` runs; ``since_run`` / ``since_label`` /
    ``since_start`` the run that began the failing streak, ``streak`` runs long.
    """

    __slots__ = (
        "failed", "kind", "of", "score", "since_label", "since_run", "since_start", "streak",
        "text",
    )

    def __init__(
        self,
        kind: str,
        text: str,
        *,
        score: float | None = None,
        failed: int | None = None,
        of: int | None = None,
        since_run: str | None = None,
        since_label: str | None = None,
        since_start: float | None = None,
        streak: int | None = None,
    ) -> None:
        self.kind = kind
        self.text = text
        self.score = score
        self.failed = failed
        self.of = of
        self.since_run = since_run
        self.since_label = since_label
        self.since_start = since_start
        self.streak = streak

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: every field, None included."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"<Annotation {self.kind}: {self.text}>"


def flips_of_recent(agg: TestAggregate, window: int) -> int:
    """Flips (f_i = 1) over the last ``window`` counted runs: one broken test flips once, a flaky one again and again."""
    codes = [c for c in agg.recent if c != "S"][-window - 1:]
    count = 0
    for n, code in enumerate(codes):
        if n == 0 and len(codes) > window:
            continue  # the run before the window: only the status the first one is compared to
        if code == "K" or (n > 0 and _STATUS[code] != _STATUS[codes[n - 1]]):
            count += 1
    return count


def failed_of_recent(agg: TestAggregate, window: int) -> tuple[int, int]:
    """(runs with a failed attempt, counted runs) over the last ``window`` counted runs."""
    counted = [c for c in agg.recent if c != "S"][-window:]
    return sum(1 for c in counted if c in _FAILED_IN_RUN), len(counted)


def annotate_failure(
    agg: TestAggregate | None,
    *,
    new_after: int = 5,
    flaky_threshold: float = 0.1,
    min_runs: int = 3,
    window: int = 40,
    min_flips: int = 2,
) -> tuple[Annotation, ...]:
    """What the history (as read at the start of this run) says about a test that failed now.

    - ``known_flaky``: its score is at least ``flaky_threshold`` after at
      least ``min_runs`` counted runs, with at least ``min_flips`` flips in the
      window (a test that broke once flipped once: it is failing, not flaky); the text gives the score and "failed K
      of its last M runs" (over the last ``window``; a flaky run counts as
      one that failed);
    - ``new_failure`` (only when not known flaky): its last ``new_after``
      counted runs (or all of them, if fewer, at least one) passed at the
      first attempt;
    - ``failing_since``: its last run failed too; names the run (label, else
      run id) that began the streak.

    A test the history has not seen gets no annotation.
    """
    if agg is None:
        return ()
    out: list[Annotation] = []
    counted = [c for c in agg.recent if c != "S"]
    last = counted[-new_after:] if new_after > 0 else []
    failed, of = failed_of_recent(agg, window)
    if of >= min_runs and agg.score >= flaky_threshold and flips_of_recent(agg, window) >= min_flips:
        out.append(Annotation(
            "known_flaky",
            f"known flaky (score {agg.score:.2f}): failed {failed} of its last {_runs(of)}",
            score=agg.score, failed=failed, of=of,
        ))
    elif last and all(c == "P" for c in last):
        out.append(Annotation(
            "new_failure", "new failure: passed its last run" if len(last) == 1
            else f"new failure: passed its last {len(last)} runs",
        ))
    if agg.last_status == "fail" and agg.fail_since_run_id is not None:
        since = agg.fail_since_label or agg.fail_since_run_id[:12]  # a uuid4 hex: 12 digits name it
        out.append(Annotation(
            "failing_since",
            f"failing since run {since} ({_runs(agg.fail_streak)} before this one)",
            since_run=agg.fail_since_run_id, since_label=agg.fail_since_label,
            since_start=agg.fail_since_start, streak=agg.fail_streak,
        ))
    return tuple(out)


def concentration(
    failed: Mapping[str, int],
    ran: Mapping[str, int],
    *,
    min_failures: int = 3,
    share: float = 0.75,
) -> tuple[str, int, int] | None:
    """(where, its failed attempts, all failed attempts) when the failures are concentrated.

    Concentrated: at least ``min_failures`` failed attempts, at least ``share``
    of them on one worker (or host), and the test also ran elsewhere.
    ``failed`` and ``ran`` count attempts by worker (or host).
    """
    total = sum(failed.values())
    if total < min_failures or len(ran) < 2 or not failed:
        return None
    where = max(sorted(failed), key=lambda k: failed[k])
    if failed[where] < share * total:
        return None
    return where, failed[where], total


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"
