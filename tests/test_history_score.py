"""The flakiness score and a failure's annotations (issue 14): hand-computed histories,
and properties over wide ones."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dtf_errors.history import (
    DECAY,
    TestAggregate,
    annotate_failure,
    concentration,
    fold,
    score_of_outcomes,
)
from pytest_dtf_errors.history.score import flips, flips_of_recent

OUTCOMES = ["passed", "flaky", "failed", "error", "skipped"]
CODE = {"P": "passed", "K": "flaky", "F": "failed", "E": "error", "S": "skipped"}


def agg_of(codes: str, labels: bool = True) -> TestAggregate | None:
    agg = None
    for i, c in enumerate(codes):
        agg = fold(agg, "t.py::t", CODE[c], run_id=f"r{i}", start=100.0 + i,
                   label=f"c{i}" if labels else None, duration=1.0)
    return agg


A = DECAY


@pytest.mark.parametrize(("codes", "expected"), [
    ("", 0.0),
    ("P", 0.0),
    ("PPPP", 0.0),
    ("FFFF", 0.0),  # always failing is broken, not flaky
    ("K", 1.0),  # flaky in its only run
    ("PF", 1 / (1 + A)),  # flips [0, 1]
    ("PSF", 1 / (1 + A)),  # a skipped run counts for nothing
    ("PPKP", A / (A**3 + A**2 + A + 1)),  # flips [0, 0, 1, 0]
    ("PFFP", (A**2 + 1) / (A**3 + A**2 + A + 1)),  # flips [0, 1, 0, 1]
    ("PFPF", (A**2 + A + 1) / (A**3 + A**2 + A + 1)),
    ("KKKK", 1.0),
    ("FK", 1 / (1 + A)),  # a flaky run after a failure is one flip, not two
])
def test_hand_computed_scores(codes: str, expected: float) -> None:
    outcomes = [CODE[c] for c in codes]
    assert score_of_outcomes(outcomes) == pytest.approx(expected)
    agg = agg_of(codes)
    assert (agg.score if agg else 0.0) == pytest.approx(expected)


def test_hand_computed_with_another_decay() -> None:
    # flips [1, 0, 0] at decay 0.5: 0.25 / (0.25 + 0.5 + 1)
    assert score_of_outcomes(["flaky", "passed", "passed"], decay=0.5) == pytest.approx(1 / 7)
    assert flips(["flaky", "passed", "skipped", "failed", "error", "passed"]) == [1, 0, 1, 0, 1]


def test_old_flakiness_decays() -> None:
    recent = agg_of("P" * 30 + "K")
    old = agg_of("K" + "P" * 30)
    assert recent is not None and old is not None
    assert old.score == pytest.approx(A**30 / sum(A**i for i in range(31)))
    assert recent.score > 0.05 > old.score


def test_no_annotation_without_history() -> None:
    assert annotate_failure(None) == ()


def test_new_failure() -> None:
    (a,) = annotate_failure(agg_of("PPPPPPP"))
    assert a.kind == "new_failure" and a.text == "new failure: passed its last 5 runs"
    (a,) = annotate_failure(agg_of("P"))
    assert a.text == "new failure: passed its last run"
    # a flaky run among the last five: not new
    assert [a.kind for a in annotate_failure(agg_of("PPPPPPPKPPP"), flaky_threshold=1)] == []
    # fixed long ago, clean since: new (the old flips have decayed under the threshold)
    assert [a.kind for a in annotate_failure(agg_of("FF" + "P" * 40))] == ["new_failure"]
    # known flaky wins over new
    assert [a.kind for a in annotate_failure(agg_of("PKPKPPPPP"))] == ["known_flaky"]


def test_known_flaky() -> None:
    agg = agg_of("PPKPPPPKPPPPFPPPPPPK")  # 20 runs, 3 flaky and 1 failed
    assert agg is not None
    (a,) = annotate_failure(agg)
    assert a.kind == "known_flaky" and (a.failed, a.of) == (4, 20)
    assert a.score == pytest.approx(score_of_outcomes([CODE[c] for c in agg.recent]))
    assert a.text == f"known flaky (score {agg.score:.2f}): failed 4 of its last 20 runs"
    (a,) = annotate_failure(agg, window=5, min_flips=1)
    assert (a.failed, a.of) == (1, 5)
    # too few runs, or under the threshold: not known flaky
    assert annotate_failure(agg_of("PK")) == ()
    assert annotate_failure(agg, flaky_threshold=0.9) == ()


def test_failing_since() -> None:
    kinds = annotate_failure(agg_of("PPPPPPPPPFFE"), flaky_threshold=1)
    (a,) = kinds
    assert a.kind == "failing_since"
    assert (a.since_run, a.since_label, a.since_start, a.streak) == ("r9", "c9", 109.0, 3)
    assert a.text == "failing since run c9 (3 runs before this one)"
    (a,) = annotate_failure(agg_of("PF", labels=False), flaky_threshold=1)
    assert a.text == "failing since run r1 (1 run before this one)"
    assert a.as_dict()["kind"] == "failing_since"


def test_annotations_combine() -> None:
    kinds = [a.kind for a in annotate_failure(agg_of("PKPFPKPF"))]
    assert kinds == ["known_flaky", "failing_since"]


def test_concentration() -> None:
    assert concentration({"h1": 4, "h2": 1}, {"h1": 5, "h2": 6}) == ("h1", 4, 5)
    assert concentration({"h1": 2, "h2": 2}, {"h1": 3, "h2": 3}) is None  # spread
    assert concentration({"h1": 2}, {"h1": 2, "h2": 3}) is None  # too few failures
    assert concentration({"h1": 5}, {"h1": 5}) is None  # it never ran anywhere else


histories = st.lists(st.sampled_from(OUTCOMES), max_size=300)


@given(histories)
@settings(max_examples=300, deadline=None)
def test_score_in_unit_interval_and_fold_matches_the_formula(outcomes: list[str]) -> None:
    s = score_of_outcomes(outcomes)
    assert 0.0 <= s <= 1.0
    agg = None
    for i, o in enumerate(outcomes):
        agg = fold(agg, "t", o, run_id=str(i), start=float(i))
        assert 0.0 <= agg.score <= 1.0
    assert (agg.score if agg else 0.0) == pytest.approx(s, abs=1e-9)
    if agg is not None:
        assert agg.runs == len(outcomes)
        assert agg.passed + agg.failed + agg.flaky + agg.errors + agg.skipped == agg.runs


@given(histories, st.sampled_from(OUTCOMES))
@settings(max_examples=300, deadline=None)
def test_a_flip_never_lowers_the_score_and_a_steady_run_never_raises_it(
    outcomes: list[str], nxt: str,
) -> None:
    before = score_of_outcomes(outcomes)
    after = score_of_outcomes([*outcomes, nxt])
    f = flips([*outcomes, nxt])
    if nxt == "skipped":
        assert after == before
    elif f[-1] == 1:
        assert after >= before - 1e-12
    else:
        assert after <= before + 1e-12


@given(st.lists(st.sampled_from(["passed", "skipped"]), max_size=100),
       st.lists(st.sampled_from(["failed", "error", "skipped"]), max_size=100))
def test_steady_histories_score_zero(passing: list[str], failing: list[str]) -> None:
    assert score_of_outcomes(passing) == 0.0
    assert score_of_outcomes(failing) == 0.0
    # one change of status in a steady history is one flip
    if any(o != "skipped" for o in passing) and any(o != "skipped" for o in failing):
        assert sum(flips(passing + failing)) == 1


@given(histories)
@settings(max_examples=200, deadline=None)
def test_annotations_are_total(outcomes: list[str]) -> None:
    agg = None
    for i, o in enumerate(outcomes):
        agg = fold(agg, "t", o, run_id=str(i), start=float(i))
    for a in annotate_failure(agg):
        assert a.kind in ("new_failure", "known_flaky", "failing_since") and a.text
        if a.kind == "known_flaky":
            assert a.failed is not None and a.of is not None and 0 <= a.failed <= a.of


def test_a_flaky_run_after_a_long_clean_history() -> None:
    agg = agg_of("P" * 400 + "K")
    assert agg is not None and agg.score == pytest.approx(1 - A, rel=1e-6)
    after = agg_of("P" * 400 + "K" + "P" * 27)  # two half-lives later
    assert after is not None and after.score == pytest.approx((1 - A) / 4, rel=0.05)


def test_known_flaky_needs_flips_not_one_break() -> None:
    # broke once and kept failing: one flip, a score over the threshold, but failing, not flaky
    broke = agg_of("PPPFF")
    assert broke is not None and broke.score > 0.1 and flips_of_recent(broke, 40) == 1
    assert [a.kind for a in annotate_failure(broke)] == ["failing_since"]
    flaky = agg_of("PPKPF")
    assert flaky is not None and flips_of_recent(flaky, 40) == 2
    assert next(a.kind for a in annotate_failure(flaky)) == "known_flaky"
    # the window: the flip into it counts, the ones before it do not
    assert flips_of_recent(agg_of("KKPP") or broke, 2) == 0
    assert flips_of_recent(agg_of("PFPP") or broke, 2) == 1
