"""The scheduler alone, with fake workers: placement, grouping, retries, flush, crashes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from pytest_dtf_errors.scheduling import FIRST_CHUNK, MAX_CHUNK, DtfScheduling, Retry, scope_key


@dataclass(eq=False)
class FakeGateway:
    id: str


@dataclass(eq=False)
class FakeNode:
    """What the scheduler uses of xdist's WorkerController."""

    name: str
    sent: list[int] = field(default_factory=list)
    stolen: list[int] = field(default_factory=list)
    shutting_down: bool = False
    closed: bool = False  # the worker died; xdist has not said so yet

    def __post_init__(self) -> None:
        self.gateway = FakeGateway(self.name)

    def _check(self) -> None:
        if self.closed:
            raise OSError("cannot send (already closed?)")  # what execnet raises

    def send_runtest_some(self, indices: list[int]) -> None:
        self._check()
        self.sent.extend(indices)

    def send_steal(self, indices: list[int]) -> None:
        self._check()
        self.stolen.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


class FakePlacement:
    def __init__(self, tags=None, requirements=None, fallbacks=None, groups=None):
        self.tags = tags or {}
        self.requirements = requirements or {}
        self.fallbacks = fallbacks or {}
        self.groups = groups or {}
        self.unplaceable: list[tuple[str, str]] = []
        self.skipped: list[tuple[list[str], tuple[str, ...]]] = []
        self.dispatched: list[tuple[str, str]] = []
        self.spawned = 0

    def node_tags(self, node_id): return self.tags.get(node_id, ["cpu"])
    def requirement(self, nodeid): return tuple(self.requirements.get(nodeid, ()))
    def fallback(self, nodeid): return tuple(self.fallbacks.get(nodeid, ()))
    def group(self, nodeid): return self.groups.get(nodeid)
    def can_flush(self, node): return True
    def collected(self, nodeids): self.collection = list(nodeids)
    def before_retry(self, node, retry): self.dispatched.append((retry.nodeid, node.name))
    def retry_unplaceable(self, retry, reason): self.unplaceable.append((retry.nodeid, reason))
    def tests_unplaceable(self, nodeids, requirement): self.skipped.append((nodeids, requirement))
    def spawn_worker(self, avoid, hardware=()):
        self.spawned += 1
        return False
    def starting_workers(self): return 0
    def next_due(self, due): pass


def make(ids, nodes=("gw0", "gw1"), mode="load", **placement):
    place = FakePlacement(**placement)
    sched = DtfScheduling(None, len(nodes), mode, place)
    workers = [FakeNode(n) for n in nodes]
    for w in workers:
        sched.add_node(w)
        sched.add_node_collection(w, ids)
    sched.schedule()
    return sched, workers, place


def complete_all(sched, worker):
    for index in list(sched.node2pending[worker]):
        sched.mark_test_complete(worker, index)


def test_every_test_is_sent_exactly_once_and_the_run_finishes():
    ids = [f"t.py::test_{i}" for i in range(40)]
    sched, workers, _ = make(ids)
    for _ in range(100):
        for w in workers:
            complete_all(sched, w)
        if sched.tests_finished:
            break
    sent = sorted(i for w in workers for i in w.sent if i != sched.flush_index)
    assert sent == list(range(40))
    assert sched.tests_finished and not sched.has_pending


def test_a_worker_gets_the_flush_item_when_nothing_follows_its_last_test():
    sched, (w0, w1), _ = make(["a", "b"])
    assert sched.flush_index == 2
    # both tests went to workers; nothing is left to follow them: each is flushed
    assert all(w.sent[-1] == sched.flush_index for w in (w0, w1) if w.sent)
    assert not sched.tests_finished  # the flushed tests still run


def test_flush_completion_is_ignored():
    sched, (w0, _), _ = make(["a"])
    sched.mark_test_complete(w0, sched.flush_index)  # no KeyError, nothing changes


@pytest.mark.parametrize(
    ("nodeid", "mode", "group", "key"),
    [
        ("d/t.py::C::test_x", "loadscope", None, "d/t.py::C"),
        ("d/t.py::test_x", "loadfile", None, "d/t.py"),
        ("d/t.py::test_x@db", "loadgroup", None, "@db"),
        ("d/t.py::test_x", "loadgroup", "db", "@db"),
        ("d/t.py::test_x", "loadgroup", None, "d/t.py::test_x"),
        ("d/t.py::test_x", "load", "db", "d/t.py::test_x"),
    ],
)
def test_scope_keys(nodeid, mode, group, key):
    assert scope_key(nodeid, mode, group) == key


def test_loadfile_sends_a_whole_file_to_one_worker():
    ids = [f"f{f}.py::test_{i}" for f in range(4) for i in range(3)]
    sched, workers, _ = make(ids, mode="loadfile")
    for _ in range(20):
        for w in workers:
            complete_all(sched, w)
    for f in range(4):
        owners = {w.name for w in workers for i in w.sent if i < 12 and ids[i].startswith(f"f{f}.py")}
        assert len(owners) == 1


def test_hardware_tests_go_only_to_workers_with_the_tag():
    ids = ["gpu1", "gpu2", "any1", "any2", "any3"]
    _sched, (w0, w1), _ = make(
        ids, tags={"gw0": ["cpu", "cuda"], "gw1": ["cpu"]}, requirements={"gpu1": ["cuda"], "gpu2": ["cuda"]}
    )
    assert 0 in w0.sent and 1 in w0.sent
    assert 0 not in w1.sent and 1 not in w1.sent


def test_tests_whose_hardware_nobody_has_are_given_up_or_sent_to_their_fallback():
    ids = ["tpu", "tpu_or_cpu", "plain"]
    _sched, (_w0, _w1), place = make(
        ids, requirements={"tpu": ["tpu"], "tpu_or_cpu": ["tpu"]}, fallbacks={"tpu_or_cpu": ["cpu"]}
    )
    assert place.skipped == [(["tpu"], ("tpu",))]
    dispatched = [nodeid for nodeid, _ in place.dispatched]
    assert dispatched == ["tpu_or_cpu"]  # runs on cpu, told so like a retry


def test_a_retry_waits_for_its_due_time_then_avoids_the_failed_worker():
    sched, (w0, w1), place = make(["a", "b"])
    complete_all(sched, w0)
    complete_all(sched, w1)
    sched.add_retry(Retry("a", 0, due=time.monotonic() + 0.2, attempt=2, avoid={"gw0"}))
    sched.schedule()
    assert place.dispatched == []
    assert not sched.tests_finished, "a waiting retry keeps the run going"
    time.sleep(0.21)
    sched.schedule()
    assert place.dispatched == [("a", "gw1")]


def test_a_retry_prefers_other_workers_but_takes_the_failed_one_if_need_be():
    sched, (_w0, w1), place = make(["a"], nodes=("gw0", "gw1"))
    w1.shutting_down = True
    sched.add_retry(Retry("a", 0, due=0, attempt=2, prefer_not={"gw0"}))
    sched.schedule()
    assert place.dispatched == [("a", "gw0")]


def test_a_hard_avoid_on_the_only_worker_left_still_runs_rather_than_is_lost():
    sched, (_w0,), place = make(["a"], nodes=("gw0",))
    sched.add_retry(Retry("a", 0, due=0, attempt=2, avoid={"gw0"}))
    sched.schedule()
    assert place.dispatched == [("a", "gw0")]


def test_a_retry_nobody_can_run_is_reported_not_lost():
    sched, (_w0,), place = make(["a"], nodes=("gw0",), tags={"gw0": ["cpu"]})
    sched.add_retry(Retry("a", 0, due=0, attempt=2, hardware=("cuda",)))
    sched.schedule()
    assert place.unplaceable and "cuda" in place.unplaceable[0][1]
    assert not sched.retries


def test_crash_item_is_the_first_unfinished_test_and_the_rest_are_requeued():
    ids = [f"t{i}" for i in range(8)]
    sched, (w0, _w1), _ = make(ids)
    pending = list(sched.node2pending[w0])
    # the first test reported its teardown but its completion event never came
    sched.test_reported(w0, ids[pending[0]])
    crashed = sched.remove_node(w0)
    assert crashed == ids[pending[1]]
    queued = [i for q in sched.queues.values() for u in q for i in u]
    assert set(pending[2:]) <= set(queued)


def test_a_retry_sent_to_a_worker_that_dies_is_retried_again_not_lost():
    sched, (w0, w1), place = make(["a", "b", "c"])
    for w in (w0, w1):
        complete_all(sched, w)
    sched.add_retry(Retry("a", 0, due=0, attempt=2))
    sched.schedule()
    target = next(w for w in (w0, w1) if w.name == place.dispatched[0][1])
    sched.node2pending[target].insert(0, 2)  # something runs before it
    sched.remove_node(target)
    assert [r.nodeid for r in sched.retries] == ["a"]


def test_a_worker_that_died_before_xdist_says_so_gets_nothing_and_loses_nothing():
    # CI saw it: gw1 crashed, and gw2's collection event was handled before
    # gw1's "down" event; the scheduler's send to gw1 raised OSError.
    ids = [f"t{i}" for i in range(40)]
    sched, (w0, w1), _ = make(ids)
    w1.closed = True
    before = list(sched.node2pending[w1])
    complete_all(sched, w0)
    complete_all(sched, w1)  # w1's last reports came in before it died
    sched.schedule()  # must not raise
    assert sched.node2pending[w1] == []
    assert w1 in sched.unreachable
    assert sched.remove_node(w1) is None  # nothing was running there
    for _ in range(100):
        complete_all(sched, w0)
        if sched.tests_finished:
            break
    assert sorted(set(w0.sent + before) - {sched.flush_index}) == list(range(len(ids)))


def test_a_retry_for_a_worker_that_died_unannounced_goes_to_another():
    sched, (w0, w1), place = make(["a", "b"])
    for w in (w0, w1):
        complete_all(sched, w)
    w0.closed = True
    sched.add_retry(Retry("a", 0, due=0, attempt=2, prefer_not={"gw1"}))
    sched.schedule()
    assert place.dispatched[-1] == ("a", "gw1")
    assert 0 in sched.node2pending[w1] and not sched.retries


def test_quarantine_steals_only_what_the_worker_has_not_taken():
    ids = [f"t{i}" for i in range(30)]
    sched, (w0, _w1), _ = make(ids)
    pending = list(sched.node2pending[w0])
    assert len(pending) > 2
    sched.quarantine("gw0")
    assert w0.stolen == pending[2:]
    sched.remove_pending_tests_from_node(w0, w0.stolen)
    assert sched.node2pending[w0] == pending[:2]


def test_cancelled_retries_are_gone():
    sched, _, _ = make(["a"])
    sched.add_retry(Retry("a", 0, due=time.monotonic() + 60, attempt=2))
    assert sched.cancel_retry("a") is True
    assert sched.cancel_retry("a") is False


def queued_ahead(sched, worker, seconds_per_test):
    """Run the worker's queue down to the refill point at this test speed; the queue length after the top-up."""
    for _ in range(MAX_CHUNK):
        index = sched.node2pending[worker][0]
        before = len(sched.node2pending[worker])
        sched.mark_test_complete(worker, index, seconds_per_test)
        if len(sched.node2pending[worker]) >= before:  # topped up
            return len(sched.node2pending[worker])
    raise AssertionError("never topped up")


@pytest.mark.parametrize(
    ("seconds", "low", "high"),
    [
        (0.0005, 200, MAX_CHUNK),  # fast tests: big batches, few commands and wake-ups
        (0.05, 4, 6),  # 0.25 s of queued work is 5 tests
        (2.0, 4, 4),  # slow tests: a short queue, so a retry starts soon
    ],
)
def test_a_worker_has_about_a_quarter_second_of_work_queued(seconds, low, high):
    ids = [f"t.py::test_{i}" for i in range(20_000)]
    sched, (w0, _), _ = make(ids)
    assert len(sched.node2pending[w0]) == FIRST_CHUNK  # before any duration is known
    for _ in range(3):  # let the average settle
        queued = queued_ahead(sched, w0, seconds)
    assert low <= queued <= high
