"""The repeats' policy (issue 14): the Wilson interval, new tests' extra runs by duration, the cap,
where each run goes, and what the runs add up to. Hand-computed values, and properties over wide
inputs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dtf_errors.history.values import TestIndex
from pytest_dtf_errors.ledger import Attempt, Ledger
from pytest_dtf_errors.session.repeats import (
    SESSION_FLOOR,
    Cap,
    Repeats,
    RepeatState,
    describe,
    repeats_for,
    summary_lines,
    tally,
    wilson_interval,
)
from pytest_dtf_errors.session.workers import WorkerBook
from pytest_dtf_errors.settings import Settings

# -- the Wilson score interval ------------------------------------------------------------
# z = 1.95996, z^2 = 3.84146. For k of n, p = k/n:
#   center = (p + z^2/2n) / (1 + z^2/n),  half = z * sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)


@pytest.mark.parametrize(("passed", "runs", "lo", "hi"), [
    # 5/10: center (0.5 + 0.19207) / 1.38415 = 0.5, half 1.96 * sqrt(0.025 + 0.0096037) / 1.38415 = 0.26341
    (5, 10, 0.23659, 0.76341),
    # 10/10: center 1.19207 / 1.38415 = 0.86123, half 1.96 * 0.097999 / 1.38415 = 0.13877
    (10, 10, 0.72247, 1.0),
    (0, 10, 0.0, 0.27753),  # the mirror of 10/10
    # 8/10: center 0.99207 / 1.38415 = 0.71674, half 1.96 * sqrt(0.016 + 0.0096037) / 1.38415 = 0.22658
    (8, 10, 0.49016, 0.94332),
    # 1/1: center (1 + 1.92073) / 4.84146 = 0.60327, half 1.96 * sqrt(3.84146 / 4) / 4.84146 = 0.39673
    (1, 1, 0.20654, 1.0),
    (0, 0, 0.0, 1.0),  # no runs: nothing is known
])
def test_wilson_interval_hand_computed(passed, runs, lo, hi):
    assert wilson_interval(passed, runs) == pytest.approx((lo, hi), abs=1e-5)


def test_wilson_interval_refuses_more_passes_than_runs():
    with pytest.raises(ValueError, match="between 0 and runs"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(-1, 10)


runs_and_passed = st.integers(1, 10**7).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n)))


@settings(max_examples=500, deadline=None)
@given(runs_and_passed)
def test_wilson_interval_is_within_0_1_and_contains_the_rate(case):
    runs, passed = case
    lo, hi = wilson_interval(passed, runs)
    rate = passed / runs
    assert 0.0 <= lo <= rate <= hi <= 1.0
    assert hi - lo > 0.0


@settings(max_examples=300, deadline=None)
@given(runs_and_passed)
def test_wilson_interval_is_symmetric(case):
    runs, passed = case
    lo, hi = wilson_interval(passed, runs)
    mlo, mhi = wilson_interval(runs - passed, runs)
    assert lo == pytest.approx(1.0 - mhi, abs=1e-9) and hi == pytest.approx(1.0 - mlo, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**5), st.integers(0, 100))
def test_more_runs_at_the_same_rate_narrow_the_interval(runs, percent):
    passed = runs * percent // 100
    lo, hi = wilson_interval(passed, runs)
    lo4, hi4 = wilson_interval(4 * passed, 4 * runs)
    assert hi4 - lo4 < hi - lo


# -- new tests' extra runs by duration (Datadog's table) ----------------------------------


@pytest.mark.parametrize(("seconds", "repeats"), [
    (0.0, 10), (0.001, 10), (4.99, 10), (5.0, 5), (29.9, 5), (30.0, 3), (59.9, 3),
    (60.0, 2), (299.9, 2), (300.0, 0), (86400.0, 0),
])
def test_repeats_by_duration(seconds, repeats):
    assert repeats_for(seconds) == repeats


@given(st.floats(0, 1e6, allow_nan=False), st.floats(0, 1e6, allow_nan=False))
def test_a_slower_test_never_gets_more_repeats(a, b):
    fast, slow = sorted((a, b))
    assert repeats_for(slow) <= repeats_for(fast)


# -- the cap ---------------------------------------------------------------------------------


def test_the_cap_serves_new_tests_as_they_come():
    cap = Cap(0.2, base=100.0)  # 20 % of 100 s of known tests
    assert cap.allow("a", 10, 1.0) == 10  # budget 0.2 * 101 = 20.2 s, 10 s reserved
    assert cap.allow("b", 10, 2.0) == 5  # budget 20.6, room 10.6: 5 runs of 2 s
    assert cap.allow("c", 10, 1.0) == 0  # budget 20.8, 20 s reserved: no room for a 1 s run
    assert cap.capped == [("b", 5, 10), ("c", 0, 10)]
    assert cap.reserved == pytest.approx(20.0)


def test_a_small_session_counts_as_the_floor():
    cap = Cap(0.2, base=0.5)
    assert cap.session_seconds == SESSION_FLOOR
    assert cap.allow("a", 10, 0.1) == 10 and cap.reserved == pytest.approx(1.0)
    assert Cap(0.0, base=1000.0).allow("a", 10, 0.001) == 0


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0.0, 1.0),
    st.floats(0.0, 1e5),
    st.lists(st.tuples(st.integers(0, 10_000), st.floats(0.0, 1e4)), max_size=40),
)
def test_the_cap_never_grants_more_than_its_share(share, base, tests):
    cap = Cap(share, base)
    for n, (wanted, seconds) in enumerate(tests):
        got = cap.allow(f"t{n}", wanted, seconds)
        assert 0 <= got <= wanted
    assert cap.reserved <= share * max(SESSION_FLOOR, base + sum(s for _, s in tests)) + 1e-6
    assert all(got < wanted for _, got, wanted in cap.capped)


# -- which tests repeat, and where each run goes ------------------------------------------


def index(durations: dict[str, float]) -> TestIndex:
    return TestIndex({n: (n, 0.0, d) for n, d in durations.items()}, load=lambda n: None)


def book(*names: str) -> WorkerBook:
    workers = WorkerBook()
    for name in names:
        workers.configured(name, "localhost", None)
        workers.now_ready(name)
    return workers


def attempt(nodeid: str, n: int, node: str, outcome: str = "passed", **fields: object) -> Attempt:
    att = Attempt(nodeid, n, node, **fields)
    att.outcome = outcome
    return att


def test_start_finds_the_new_tests_and_the_session_time():
    rep = Repeats(Settings(), book("gw0"))
    rep.start(["a", "b", "new"], index({"a": 3.0, "b": 4.0, "gone": 100.0}), can_dispatch=True)
    assert rep.active and rep.new == {"new"} and rep.kind("new") == "new" and rep.kind("a") is None
    assert rep.cap is not None and rep.cap.base == 7.0  # only the collected known tests count


@pytest.mark.parametrize(("settings_", "known", "dispatch", "off"), [
    (Settings(), None, True, None),  # no history
    (Settings(), index({}), True, "early flake detection is off: the history is empty"),
    (Settings(new_test_repeats=0), index({"a": 1.0}), True, None),
    # nothing can run a test again (--dist each)
    (Settings(), index({"a": 1.0}), False, "early flake detection is off: under --dist each"),
    (Settings(), index({}), False, None),
])
def test_when_early_flake_detection_is_off(settings_, known, dispatch, off):
    rep = Repeats(settings_, book("gw0"))
    rep.start(["a", "new"], known, can_dispatch=dispatch)
    assert not rep.active and rep.kind("new") is None
    assert (rep.off or "").startswith(off or "")
    assert bool(rep.off) == bool(off)


@pytest.mark.parametrize("collected", [True, False])  # under --dist each the collection never comes
def test_dtf_repeat_under_dist_each_says_it_is_off(collected):
    rep = Repeats(Settings(repeat=3), book("gw0"))
    if collected:
        rep.start(["a"], None, can_dispatch=False)
    assert not rep.active
    assert summary_lines(Ledger(), rep) == [
        "dtf: --dtf-repeat is off: under --dist each (or xdist's own scheduler) no test is run again"
    ]


def test_dtf_repeat_repeats_every_test_and_never_retries():
    rep = Repeats(Settings(repeat=5), book("gw0"))
    rep.start(["a", "b"], index({"a": 1.0}), can_dispatch=True)
    assert rep.kind("a") == rep.kind("b") == "repeat" and rep.new == frozenset()
    assert rep.repeating("a") and "--dtf-repeat 5" in (rep.final_failure("a") or "")
    assert not rep.hides("a")


def test_a_new_tests_runs_avoid_its_first_worker_and_go_one_per_worker():
    workers = book("gw0", "gw1", "gw2", "gw3")
    rep = Repeats(Settings(), workers)
    rep.start(["new"], index({"old": 1.0}), can_dispatch=True)
    state, wanted = rep.begin_new(attempt("new", 1, "gw0", duration=0.01))
    assert state is not None and wanted == 10 and state.planned == 11
    assert rep.hides("new") and rep.final_failure("new") is not None
    plans = rep.next_plans(state)
    assert sorted(p.avoid.__len__() for p in plans) == [3, 3, 3]
    targets = [({"gw0", "gw1", "gw2", "gw3"} - p.avoid).pop() for p in plans]
    assert sorted(targets) == ["gw1", "gw2", "gw3"], "spread over the other workers, one each"
    assert all(p.retry and p.due is not None and p.category == "repeat" for p in plans)
    assert [p.next_attempt for p in plans] == [2, 3, 4]
    assert rep.next_plans(state) == []  # every other worker has one in flight
    rep.ended(state, "gw2")
    (again,) = rep.next_plans(state)
    assert "gw2" not in again.avoid and "gw0" in again.avoid


def test_a_new_test_on_the_only_worker_runs_there():
    rep = Repeats(Settings(new_test_repeats=2), book("gw0"))
    rep.start(["new"], index({"old": 1.0}), can_dispatch=True)
    state, _ = rep.begin_new(attempt("new", 1, "gw0"))
    assert state is not None
    (plan,) = rep.next_plans(state)
    assert plan.avoid == set()
    rep.ended(state, "gw0")
    (plan,) = rep.next_plans(state)
    rep.ended(state, "gw0")
    assert rep.next_plans(state) == [] and state.done and state.ended == 3


def test_dtf_repeat_uses_every_worker_and_in_process_one_run_at_a_time():
    rep = Repeats(Settings(repeat=4), book("gw0", "gw1"))
    rep.start(["a"], None, can_dispatch=True)
    state = rep.begin_repeat(attempt("a", 1, "gw0"))
    plans = rep.next_plans(state)
    assert len(plans) == 2 and {p.node for p in plans} == {"gw0", "gw1"}
    local = Repeats(Settings(repeat=3), WorkerBook())  # no worker is ready to be named
    local.start(["a"], None, can_dispatch=True)
    state = local.begin_repeat(attempt("a", 1, "local"))
    (plan,) = local.next_plans(state)
    assert plan.avoid == set() and local.next_plans(state) == []
    local.ended(state, "local")
    assert len(local.next_plans(state)) == 1


def test_a_run_that_cannot_be_placed_ends_the_rest():
    rep = Repeats(Settings(repeat=5), book("gw0"))
    rep.start(["a"], None, can_dispatch=True)
    state = rep.begin_repeat(attempt("a", 1, "gw0"))
    rep.next_plans(state)
    rep.unplaced(state, "no worker is left to run it")
    assert state.done and state.lost == 4 and rep.unfinished() == []


def test_a_slow_new_test_gets_no_runs_and_the_cap_counts_its_time():
    rep = Repeats(Settings(), book("gw0", "gw1"))
    rep.start(["new"], index({"old": 1.0}), can_dispatch=True)
    state, wanted = rep.begin_new(attempt("new", 1, "gw0", duration=400.0))
    assert state is None and wanted == 0
    assert rep.cap is not None and rep.cap.firsts == 400.0


# -- what the runs add up to ---------------------------------------------------------------


def test_tally_groups_failures_by_pattern_and_skips_interrupted_runs():
    runs = [
        attempt("t", 1, "gw0"),
        attempt("t", 2, "gw1", "failed", pattern="P1", category="test_assertion_error"),
        attempt("t", 3, "gw0", "failed", pattern="P2", category="network_timeout"),
        attempt("t", 4, "gw1", "failed", pattern="P1", category="test_assertion_error"),
        attempt("t", 5, "gw1", "skipped"),
        attempt("t", 6, "gw0", "error", phase="interrupted"),
    ]
    out = tally("repeat", runs, 6)
    assert (out["runs"], out["passed"], out["failed"], out["skipped"]) == (5, 1, 3, 1)
    assert out["pass_rate"] == 0.25
    assert out["interval"] == pytest.approx(list(wilson_interval(1, 4)), abs=1e-6)
    assert out["patterns"] == [
        {"pattern": "P1", "category": "test_assertion_error", "count": 2},
        {"pattern": "P2", "category": "network_timeout", "count": 1},
    ]
    assert out["nodes"] == {"gw0": 2, "gw1": 3}
    assert out["verdict"] == "flaky"
    assert "repeats" not in out  # only a new test says how many extra runs it was given
    text = describe(out)
    assert text.startswith("1 of 4 runs passed, pass rate 25 % (95 % interval")
    assert "2 x test_assertion_error (pattern P1)" in text and "5 of 6 runs ran" in text


@pytest.mark.parametrize(("kind", "outcomes", "planned", "verdict"), [
    ("new", ["passed", "failed"], 2, "new flaky"),
    ("new", ["passed", "passed"], 2, "passed"),
    ("repeat", ["failed", "failed"], 2, "failed"),
    ("repeat", ["passed"], 3, "cut short"),
    ("repeat", ["skipped", "skipped"], 2, "skipped"),
])
def test_verdicts(kind, outcomes, planned, verdict):
    runs = [attempt("t", n, "gw0", o) for n, o in enumerate(outcomes, 1)]
    assert tally(kind, runs, planned)["verdict"] == verdict


def test_summary_lines_of_a_repeat_session():
    ledger = Ledger()
    rep = Repeats(Settings(repeat=10), book("gw0", "gw1"))
    rep.start(["a", "b"], None, can_dispatch=True)
    ledger.test("a").repeat = tally("repeat", [attempt("a", n, f"gw{n % 2}", "passed" if n % 2 else "failed",
                                                      pattern="P1", category="test_assertion_error")
                                               for n in range(1, 11)], 10)
    ledger.test("b").repeat = tally("repeat", [attempt("b", n, "gw0") for n in range(1, 11)], 10)
    lines = summary_lines(ledger, rep)
    assert lines[0] == "dtf: --dtf-repeat 10: 2 tests, 20 runs on 2 workers; 1 failed at least one run"
    assert lines[1].startswith("  a: 5 of 10 runs passed, pass rate 50 % (95 % interval 24 %-76 %)")
    assert lines[2].startswith("  b: 10 of 10 runs passed, pass rate 100 % (95 % interval 72 %-100 %)")


def test_summary_lines_say_why_nothing_repeated_with_an_empty_history():
    rep = Repeats(Settings(), book("gw0"))
    rep.start(["a"], index({}), can_dispatch=True)
    assert summary_lines(Ledger(), rep) == [
        "dtf: early flake detection is off: the history is empty: this run's tests are its first, none is repeated"
    ]
    assert rep.session_info() == {"kind": "new", "off": rep.off}


def test_session_info_of_the_cap():
    rep = Repeats(Settings(new_test_share=0.5), book("gw0"))
    rep.start(["a", "new"], index({"a": 30.0}), can_dispatch=True)
    rep.begin_new(attempt("new", 1, "gw0", duration=4.0))  # budget 0.5 * 34 = 17 s: 4 of 10 runs
    info = rep.session_info()
    assert info is not None
    assert info["capped"] == [{"nodeid": "new", "repeats": 4, "wanted": 10}]
    assert math.isclose(info["budget_seconds"], 17.0) and math.isclose(info["reserved_seconds"], 16.0)


def test_state_repr_and_done():
    state = RepeatState("t", "repeat", 1, "gw0", 0.1)
    assert state.done and "planned=1" in repr(state)
