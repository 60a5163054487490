"""Duration-aware scheduling (the LPT rule) on a real DtfScheduling with fake workers.

The history's durations come as a ``TestIndex`` built directly; a small
discrete-event simulation plays the workers (a worker runs a test only once
it knows the next one, or was sent the flush item, or is shutting down), so
the placement and the makespan are checked without processes.
"""

from __future__ import annotations

import random
import statistics
from types import SimpleNamespace
from typing import Any

import pytest
from test_scheduling_unit import FakeCallbacks, FakeLinks, FakeNode, complete_all, retry

from pytest_dtf_errors.history.values import TestIndex
from pytest_dtf_errors.session.workers import WorkerBook
from pytest_dtf_errors.xdist.scheduler import QUEUE_SECONDS, DtfScheduling


def index(durations: dict[str, float]) -> TestIndex:
    """The history as read at start: nodeid -> (nodeid, score, mean duration)."""
    return TestIndex({n: (n, 0.0, d) for n, d in durations.items()}, load=lambda n: None)


class Node(FakeNode):
    """A fake worker that also notes how many tests it had pending when each batch came."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sched: DtfScheduling | None = None
        self.batches: list[tuple[int, list[int]]] = []  # (tests pending before, batch)

    def send_runtest_some(self, indices: list[int]) -> None:
        assert self.sched is not None
        before = len(self.sched.node2pending.get(self, []))
        super().send_runtest_some(indices)
        if indices != [self.sched.flush_index]:
            self.batches.append((before, list(indices)))


def make(ids, durations=None, nodes=("gw0", "gw1"), mode="load", groups=None, linked=True, config=None):
    book = WorkerBook()
    for name in nodes:
        book.node(name).linked = linked
    book.groups.update(groups or {})
    log: list[tuple[object, ...]] = []
    link: Any = FakeLinks(log)
    sched = DtfScheduling(
        config, len(nodes), mode, book, FakeCallbacks(), link, wake_at=lambda t: None, durations=durations
    )
    workers = [Node(n, log) for n in nodes]
    for w in workers:
        w.sched = sched
        sched.add_node(w)
        sched.add_node_collection(w, ids)
    sched.schedule()
    return sched, workers


def simulate(
    sched: DtfScheduling, workers: list[Node], seconds: list[float], crash: tuple[Node, float] | None = None
) -> tuple[float, list[int]]:
    """Play the workers to the end: (makespan, the tests in the order they started).

    ``crash``: that worker dies at that time, its running test with it (xdist asks
    ``remove_node`` for it); the others go on.
    """
    workers = list(workers)
    taken = {w: 0 for w in workers}  # how much of what it was sent a worker has started
    running: dict[Node, tuple[int, float]] = {}  # worker -> (index, ends at)
    started: list[int] = []
    crashed: set[int] = set()
    now = 0.0
    for _ in range(100_000):
        for w in workers:
            queue = w.sent[taken[w]:]
            if w not in running and queue and (len(queue) >= 2 or w.shutting_down):
                index = queue[0]
                taken[w] += 1
                flush = index == sched.flush_index
                running[w] = (index, now + (0.0 if flush else seconds[index]))
                if not flush:
                    started.append(index)
        if not running:
            break
        w = min(running, key=lambda n: running[n][1])
        if crash is not None and crash[0] in running and running[w][1] > crash[1]:
            dead, now = crash[0], crash[1]
            crash = None
            running.pop(dead)
            workers.remove(dead)
            crashed.add(sched.collection.index(sched.remove_node(dead)))
            sched.schedule()
            continue
        index, now = running.pop(w)
        sched.mark_test_complete(w, index, 0.0 if index == sched.flush_index else seconds[index])
        if sched.tests_finished:
            for n in workers:
                n.shutting_down = True  # DSession shuts the workers down
    assert sched.tests_finished
    ran = sorted(i for i in started if i not in crashed)
    assert ran == [i for i in range(len(seconds)) if i not in crashed], "every test runs exactly once"
    return now, started


def skewed(n=200, seed=0):
    """A few tests of 2-5 s among many of 10-50 ms, the longest one last."""
    rng = random.Random(seed)
    seconds = [rng.uniform(0.010, 0.050) for _ in range(n)]
    for position, long in zip((30, 80, 130, 170, n - 1), (2.0, 3.0, 4.0, 2.5, 5.0)):
        seconds[position] = long
    ids = [f"test_suite.py::test_{i}" for i in range(n)]
    return ids, seconds


def bound(seconds: list[float], workers: int) -> float:
    return max(max(seconds), sum(seconds) / workers)


def test_load_hands_the_longest_tests_out_first_one_per_idle_worker():
    ids = ["t::a", "t::b", "t::c", "t::d", "t::e"]
    sched, (w0, w1) = make(ids, index({"t::a": 0.01, "t::b": 0.02, "t::c": 3.0, "t::d": 0.03, "t::e": 5.0}))
    # the 5 s test and the 3 s test start at once, each alone (flushed), nothing behind them
    assert w0.sent == [4, sched.flush_index]
    assert w1.sent == [2, sched.flush_index]
    assert list(sched.queues[((), 0, False)]) == [[3], [1], [0]]  # the rest, longest first


def test_a_test_the_history_has_not_seen_counts_as_the_median():
    ids = ["t::short", "t::new", "t::mid", "t::long"]
    sched, _ = make(ids, index({"t::short": 0.1, "t::mid": 1.0, "t::long": 2.0}), nodes=("gw0",))
    assert sched.expected == [0.1, 1.0, 1.0, 2.0]
    # longest first; the new test (the median, 1.0) keeps its collection place before its equal
    assert sched.node2pending[sched.nodes[0]] == [3]
    assert [u for u in sched.queues[((), 0, False)]] == [[1], [2], [0]]


@pytest.mark.parametrize(
    ("mode", "ids", "groups"),
    [
        ("loadfile", ["a.py::x", "b.py::x", "b.py::y", "b.py::z", "c.py::x"], None),
        ("loadscope", ["t.py::A::x", "t.py::B::x", "t.py::B::y", "t.py::B::z", "t.py::C::x"], None),
        ("loadgroup", ["t.py::v", "t.py::w@g", "t.py::x@g", "t.py::y@g", "t.py::z"], None),
    ],
)
def test_scopes_go_out_by_their_summed_duration(mode, ids, groups):
    # the first unit is one 1.5 s test, the second three of 0.6 s (1.8 s), the third one 0.1 s;
    # by count the three-test unit would lead too, so the single test is made the longest
    seconds = [1.5, 0.6, 0.6, 0.6, 0.1]
    durations = index(dict(zip(ids, seconds)))
    sched, workers = make(ids, durations, nodes=("gw0",), mode=mode, groups=groups)
    order = [batch for _, batch in workers[0].batches] + [u for u in sched.queues[((), 0, False)]]
    assert order[0] == [1, 2, 3]  # 1.8 s in all
    assert [i for batch in order for i in batch] == [1, 2, 3, 0, 4]
    durations = index(dict(zip(ids, [2.0, 0.6, 0.6, 0.6, 0.1])))  # now the single test is longer
    sched, workers = make(ids, durations, nodes=("gw0",), mode=mode, groups=groups)
    assert workers[0].batches[0][1] == [0]


def test_no_loadscope_reorder_keeps_the_scopes_in_collection_order():
    ids = ["a.py::x", "b.py::x", "b.py::y"]
    config: Any = SimpleNamespace(option=SimpleNamespace(loadscopereorder=False))
    _, workers = make(ids, index({"a.py::x": 0.1, "b.py::x": 1, "b.py::y": 1}), nodes=("gw0",),
                      mode="loadfile", config=config)
    assert workers[0].batches[0][1] == [0]


def test_a_long_test_is_never_queued_behind_another_test():
    ids, seconds = skewed()
    sched, workers = make(ids, index(dict(zip(ids, seconds))), nodes=("gw0", "gw1", "gw2", "gw3"))
    simulate(sched, workers, seconds)
    for w in workers:
        for before, batch in w.batches:
            queued = [seconds[i] for i in batch[1:]] + [seconds[i] for i in batch[:1] if before]
            assert sum(queued) <= QUEUE_SECONDS, (w.name, before, batch)


def test_an_unlinked_worker_gets_the_shortest_test_behind_a_long_one():
    # without the link there is no flush item: a lone test would wait, so one follows it
    ids = ["t::a", "t::b", "t::c", "t::d"]
    sched, (w0, w1) = make(ids, index({"t::a": 0.01, "t::b": 4.0, "t::c": 3.0, "t::d": 0.02}), linked=False)
    assert w0.sent == [1, 0]  # the 4 s test, then the shortest, not the 3 s one
    assert w1.sent == [2, 3]
    assert sched.flushed == set()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_skewed_suite_ends_within_ten_percent_of_the_bound(seed):
    ids, seconds = skewed(seed=seed)
    sched, workers = make(ids, index(dict(zip(ids, seconds))), nodes=("gw0", "gw1", "gw2", "gw3"))
    lpt, started = simulate(sched, workers, seconds)
    assert lpt <= 1.10 * bound(seconds, 4)
    assert started[0] == len(ids) - 1  # the 5 s test, collected last, started first
    sched, workers = make(ids, None, nodes=("gw0", "gw1", "gw2", "gw3"))
    plain, _ = simulate(sched, workers, seconds)
    assert plain >= 1.3 * bound(seconds, 4)  # collection order: the long test last, the tail long


def test_durations_that_are_off_still_put_the_long_tests_first():
    ids, seconds = skewed()
    rng = random.Random(5)
    remembered = {n: s * rng.uniform(0.5, 1.5) for n, s in zip(ids, seconds)}
    sched, workers = make(ids, index(remembered), nodes=("gw0", "gw1", "gw2", "gw3"))
    lpt, _ = simulate(sched, workers, seconds)
    assert lpt <= 1.10 * bound(seconds, 4)


def test_with_new_tests_and_a_crashed_worker_every_test_still_runs_once():
    ids, seconds = skewed()
    known = {n: s for n, s in zip(ids, seconds) if not n.endswith(("3", "7"))}  # a fifth are new
    sched, workers = make(ids, index(known), nodes=("gw0", "gw1", "gw2", "gw3"))
    # gw3 has tests queued behind its running one at 4.0 s; they go to the others
    simulate(sched, workers, seconds, crash=(workers[3], 4.0))
    assert sched.expected is not None and sched.expected[3] == statistics.median(known.values())


@pytest.mark.parametrize("durations", [None, "empty", "unrelated"], ids=["none", "empty", "unrelated"])
@pytest.mark.parametrize("mode", ["load", "loadfile"])
def test_without_a_known_duration_everything_goes_as_without_a_history(durations, mode):
    ids, seconds = skewed()
    ids = [f"f{i % 7}.py::test_{i}" for i in range(len(ids))]
    history = {None: None, "empty": index({}), "unrelated": index({"other.py::t": 9.0})}[durations]
    sched, workers = make(ids, history, nodes=("gw0", "gw1", "gw2"), mode=mode)
    simulate(sched, workers, seconds)
    base, base_workers = make(ids, None, nodes=("gw0", "gw1", "gw2"), mode=mode)
    simulate(base, base_workers, seconds)
    assert sched.expected is None
    assert workers[0].log == base_workers[0].log  # the same batches to the same workers, in order


def test_a_worker_running_a_long_test_gets_nothing_behind_it():
    ids = ["t::long", "t::a", "t::b", "t::c"]
    sched, (w0, w1) = make(ids, index({"t::long": 3.0, "t::a": 0.02, "t::b": 0.02, "t::c": 0.02}))
    assert w0.sent == [0, sched.flush_index]
    sched.schedule()  # another event: the short tests still wait for gw1, not behind the long one
    assert w0.sent == [0, sched.flush_index]
    assert [i for i in w1.sent if i != sched.flush_index] == [1, 2]
    complete_all(sched, w1)
    assert w0.sent == [0, sched.flush_index] and 3 in w1.sent


def test_a_retry_goes_to_the_worker_with_less_expected_work_not_fewer_tests():
    ids = ["t::long", "t::a", "t::b", "t::c", "t::flaky"]
    durations = index({"t::long": 3.0, "t::a": 0.05, "t::b": 0.05, "t::c": 0.05, "t::flaky": 0.01})
    sched, (w0, w1, _) = make(ids, durations, nodes=("gw0", "gw1", "gw2"))
    assert w0.sent[0] == 0 and len(sched.node2pending[w0]) == 1  # the long test, alone
    assert len(sched.node2pending[w1]) == 1  # one test each: by count gw0 would do
    sched.add_retry(retry("t::flaky", node="gw2"))
    sched.schedule()
    assert sched.links.dispatched == [("t::flaky", "gw1")]  # 0.05 s queued there, 3 s on gw0
