"""The scheduler alone, with fake workers: placement, grouping, retries, flush, crashes.

A real WorkerBook holds the worker facts; the callbacks and the link are fakes
that record what the scheduler told them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_dtf_errors.session.plan import RetryPlan
from pytest_dtf_errors.session.workers import WorkerBook
from pytest_dtf_errors.xdist.scheduler import FIRST_CHUNK, MAX_CHUNK, DtfScheduling, scope_key


@dataclass(eq=False)
class FakeGateway:
    id: str


@dataclass(eq=False)
class FakeNode:
    """What the scheduler uses of xdist's WorkerController."""

    name: str
    log: list[tuple[object, ...]] = field(default_factory=list)  # shared with the FakeLinks
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
        self.log.append(("runtest", self.name, list(indices)))

    def send_steal(self, indices: list[int]) -> None:
        self._check()
        self.stolen.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


class FakeCallbacks:
    """The session's side of the scheduler: what it was told."""

    def __init__(self) -> None:
        self.collection: list[str] | None = None
        self.skipped: list[tuple[list[str], tuple[str, ...]]] = []  # first attempts (reason None)
        self.lost: list[tuple[str, str]] = []  # promised retries that cannot be placed: (nodeid, reason)
        self.start_requests: list[RetryPlan] = []

    def collected(self, nodeids: list[str]) -> None:
        self.collection = list(nodeids)

    def start_worker(self, plan: RetryPlan) -> bool:
        self.start_requests.append(plan)
        return False  # no worker can be started

    def unplaceable(self, nodeids: list[str], requirement: tuple[str, ...], reason: str | None) -> None:
        if reason is None:
            self.skipped.append((list(nodeids), requirement))
        else:
            self.lost.extend((nodeid, reason) for nodeid in nodeids)


class FakeLinks:
    """Records each attempt number sent ahead of a retry."""

    def __init__(self, log: list[tuple[object, ...]]) -> None:
        self.log = log
        self.attempts: list[tuple[str, RetryPlan]] = []

    def send_attempt(self, name: str, plan: RetryPlan) -> None:
        self.attempts.append((name, plan))
        self.log.append(("attempt", name, plan.nodeid, plan.next_attempt))

    @property
    def dispatched(self) -> list[tuple[str, str]]:
        """(test, worker) of every retry sent, in order."""
        return [(plan.nodeid, name) for name, plan in self.attempts]


@dataclass
class Run:
    sched: DtfScheduling
    workers: list[FakeNode]
    book: WorkerBook
    callbacks: FakeCallbacks
    links: FakeLinks
    log: list[tuple[object, ...]]


def make(
    ids,
    nodes=("gw0", "gw1"),
    mode="load",
    tags=None,
    requirements=None,
    fallbacks=None,
    groups=None,
    needs=None,
    gpu_counts=None,
    pinned=None,
    hosts=None,
) -> Run:
    book = WorkerBook()
    for name in nodes:
        book.node(name).linked = True  # the flush item can be sent
        if tags and name in tags:
            book.add_tags(name, tags[name])
        book.node(name).gpu_count = (gpu_counts or {}).get(name)  # as the worker reported it
        book.node(name).gpus = (pinned or {}).get(name)  # as --dtf-gpus-per-worker pinned it
        book.node(name).host = (hosts or {}).get(name)
    for nodeid, req in (requirements or {}).items():
        book.requirements[nodeid] = {"any": list(req), "fallback": list((fallbacks or {}).get(nodeid, ()))}
    book.requirements.update(needs or {})  # whole requirements: gpus=, exclusive=
    book.groups.update(groups or {})
    log: list[tuple[object, ...]] = []
    callbacks, links = FakeCallbacks(), FakeLinks(log)
    # no pytest config (nothing reads it here); the fake link has Links' one method the scheduler calls
    config: Any = None
    link: Any = links
    sched = DtfScheduling(config, len(nodes), mode, book, callbacks, link, wake_at=lambda t: None)
    workers = [FakeNode(n, log) for n in nodes]
    for w in workers:
        sched.add_node(w)
        sched.add_node_collection(w, ids)
    sched.schedule()
    return Run(sched, workers, book, callbacks, links, log)


def retry(nodeid, node="gw0", attempt=1, delay=0.0, prefer_hardware=(), **where) -> RetryPlan:
    """A promised retry of ``nodeid``, whose attempt ``attempt`` failed on ``node``."""
    plan = RetryPlan(nodeid, attempt, node, retry=True, **where)
    plan.prefer_hardware = tuple(prefer_hardware)
    plan.delay = delay
    plan.promise()
    return plan


def complete_all(sched, worker):
    for index in list(sched.node2pending[worker]):
        sched.mark_test_complete(worker, index)


def test_every_test_is_sent_exactly_once_and_the_run_finishes():
    ids = [f"t.py::test_{i}" for i in range(40)]
    run = make(ids)
    sched, workers = run.sched, run.workers
    for _ in range(100):
        for w in workers:
            complete_all(sched, w)
        if sched.tests_finished:
            break
    sent = sorted(i for w in workers for i in w.sent if i != sched.flush_index)
    assert sent == list(range(40))
    assert sched.tests_finished and not sched.has_pending
    assert run.callbacks.collection == ids


def test_a_worker_gets_the_flush_item_when_nothing_follows_its_last_test():
    run = make(["a", "b"])
    sched, (w0, w1) = run.sched, run.workers
    assert sched.flush_index == 2
    # both tests went to workers; nothing is left to follow them: each is flushed
    assert all(w.sent[-1] == sched.flush_index for w in (w0, w1) if w.sent)
    assert not sched.tests_finished  # the flushed tests still run


def test_an_unlinked_worker_gets_no_flush_item():
    # the flush item is the DTF link's no-op: a worker without the link would not know it
    run = make(["a", "b"], nodes=("gw0",))
    assert run.workers[0].sent == [0, 1, run.sched.flush_index]
    book = WorkerBook()
    sched = DtfScheduling(None, 1, "load", book, FakeCallbacks(), FakeLinks([]), wake_at=lambda t: None)
    w0 = FakeNode("gw0")
    sched.add_node(w0)
    sched.add_node_collection(w0, ["a", "b"])
    sched.schedule()
    assert w0.sent == [0, 1] and sched.flushed == set()


def test_flush_completion_is_ignored():
    run = make(["a"])
    sched, (w0, w1) = run.sched, run.workers
    pending = {w: list(p) for w, p in sched.node2pending.items()}
    sent = (list(w0.sent), list(w1.sent))
    assert sched.flush_index in w0.sent
    sched.mark_test_complete(w0, sched.flush_index, duration=5.0)  # no KeyError, nothing changes
    assert {w: list(p) for w, p in sched.node2pending.items()} == pending
    assert (w0.sent, w1.sent) == sent  # no top-up, no second flush
    assert sched.test_seconds is None  # not counted as a test's duration
    assert sched.flushed == {w0}
    assert not sched.tests_finished  # "a" still runs


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
    run = make(ids, mode="loadfile")
    sched, workers = run.sched, run.workers
    for _ in range(20):
        for w in workers:
            complete_all(sched, w)
    for f in range(4):
        owners = {w.name for w in workers for i in w.sent if i < 12 and ids[i].startswith(f"f{f}.py")}
        assert len(owners) == 1


def test_loadgroup_keeps_a_group_from_the_book_on_one_worker():
    ids = [f"t{i}.py::test" for i in range(8)]
    groups = {ids[i]: "db" for i in (1, 4, 6)}
    run = make(ids, mode="loadgroup", groups=groups)
    for _ in range(20):
        for w in run.workers:
            complete_all(run.sched, w)
    owners = {w.name for w in run.workers for i in w.sent if i in (1, 4, 6)}
    assert len(owners) == 1
    assert sorted(i for w in run.workers for i in w.sent if i != run.sched.flush_index) == list(range(8))


def test_hardware_tests_go_only_to_workers_with_the_tag():
    ids = ["gpu1", "gpu2", "any1", "any2", "any3"]
    run = make(
        ids, tags={"gw0": ["cpu", "cuda"], "gw1": ["cpu"]}, requirements={"gpu1": ["cuda"], "gpu2": ["cuda"]}
    )
    w0, w1 = run.workers
    assert 0 in w0.sent and 1 in w0.sent
    assert 0 not in w1.sent and 1 not in w1.sent


def test_hardware_ruled_out_on_a_worker_is_not_routed_there():
    ids = ["gpu1", "gpu2", "any1"]
    tags = {"gw0": ["cpu", "cuda"], "gw1": ["cpu", "cuda"]}
    run = make(ids, tags=tags, requirements={"gpu1": ["cuda"], "gpu2": ["cuda"]})
    run.book.mark_unavailable("gw0", "cuda")
    assert run.book.tags("gw0") == {"cpu"}
    plan = retry("gpu1", node="gw1", hardware=("cuda",))
    for w in run.workers:
        complete_all(run.sched, w)
    run.sched.add_retry(plan)
    run.sched.schedule()
    assert run.links.dispatched == [("gpu1", "gw1")]


def test_tests_whose_hardware_nobody_has_are_given_up_or_sent_to_their_fallback():
    ids = ["tpu", "tpu_or_cpu", "plain"]
    run = make(ids, requirements={"tpu": ["tpu"], "tpu_or_cpu": ["tpu"]}, fallbacks={"tpu_or_cpu": ["cpu"]})
    assert run.callbacks.skipped == [(["tpu"], ("tpu",))]
    assert [nodeid for nodeid, _ in run.links.dispatched] == ["tpu_or_cpu"]  # runs on cpu, told so like a retry
    [(_, plan)] = run.links.attempts
    assert (plan.next_attempt, plan.hardware) == (1, ("cpu",))  # still its first attempt


def test_a_retry_waits_for_its_due_time_then_avoids_the_failed_worker():
    run = make(["a", "b"])
    sched, (w0, w1) = run.sched, run.workers
    complete_all(sched, w0)
    complete_all(sched, w1)
    sched.add_retry(retry("a", delay=0.2, attempt=1, avoid={"gw0"}))
    sched.schedule()
    assert run.links.dispatched == []
    assert not sched.tests_finished, "a waiting retry keeps the run going"
    time.sleep(0.21)
    sched.schedule()
    assert run.links.dispatched == [("a", "gw1")]


def test_a_waiting_retry_asks_to_be_woken_at_its_due_time():
    run = make(["a"])
    wakes: list[float] = []
    run.sched.wake_at = wakes.append
    plan = retry("a", delay=30)
    run.sched.add_retry(plan)
    run.sched.schedule()
    assert plan.due is not None and wakes and set(wakes) == {plan.due}


def test_a_retry_prefers_other_workers_but_takes_the_failed_one_if_need_be():
    run = make(["a"], nodes=("gw0", "gw1"))
    _w0, w1 = run.workers
    w1.shutting_down = True
    run.sched.add_retry(retry("a", prefer_not={"gw0"}))
    run.sched.schedule()
    assert run.links.dispatched == [("a", "gw0")]


def test_a_retry_goes_to_a_worker_it_does_not_prefer_not():
    run = make(["a", "b", "c"], nodes=("gw0", "gw1", "gw2"))
    for w in run.workers:
        complete_all(run.sched, w)
    run.sched.add_retry(retry("a", prefer_not={"gw0", "gw1"}))
    run.sched.schedule()
    assert run.links.dispatched == [("a", "gw2")]


def test_a_hard_avoid_on_the_only_worker_left_still_runs_rather_than_is_lost():
    run = make(["a"], nodes=("gw0",))
    run.sched.add_retry(retry("a", avoid={"gw0"}))
    run.sched.schedule()
    assert run.links.dispatched == [("a", "gw0")]
    assert run.callbacks.lost == []


def test_a_retry_whose_only_fitting_worker_is_avoided_runs_or_is_reported():
    # CUDA out of memory (resource_exhausted: avoid gw0) on the only cuda worker, beside a cpu one
    run = make(["a", "b"], tags={"gw0": ["cpu", "cuda"], "gw1": ["cpu"]}, requirements={"a": ["cuda"]})
    for _ in range(5):
        for w in run.workers:
            complete_all(run.sched, w)
    assert run.sched.tests_finished
    run.sched.add_retry(retry("a", avoid={"gw0"}, hardware=("cuda",)))
    run.sched.schedule()
    assert run.links.dispatched == [("a", "gw0")]  # better on the avoided worker than nowhere
    assert not run.sched.retries  # else tests_finished never comes: the session hangs


def test_a_retry_that_avoids_every_live_worker_runs_or_is_reported():
    # the decision hook (or an engine action) may avoid more than the failed worker
    run = make(["a", "b"])
    for w in run.workers:
        complete_all(run.sched, w)
    run.sched.add_retry(retry("a", avoid={"gw0", "gw1"}))
    run.sched.schedule()
    assert [nodeid for nodeid, _ in run.links.dispatched] == ["a"]
    assert not run.sched.retries


def test_a_retry_nobody_can_run_is_reported_not_lost():
    run = make(["a"], nodes=("gw0",), tags={"gw0": ["cpu"]})
    plan = retry("a", hardware=("cuda",))
    run.sched.add_retry(plan)
    assert run.callbacks.start_requests == [plan]  # nobody alive fits: a worker is asked for
    run.sched.schedule()
    assert run.callbacks.lost and "cuda" in run.callbacks.lost[0][1]
    assert run.callbacks.lost == [("a", "no worker with cuda is left")]
    assert not run.sched.retries


def test_prefer_hardware_picks_a_worker_with_the_preferred_tag():
    tags = {"gw0": ["cpu"], "gw1": ["cpu"], "gw2": ["cpu", "cuda"]}
    run = make(["a", "b", "c"], nodes=("gw0", "gw1", "gw2"), tags=tags)
    for w in run.workers:
        complete_all(run.sched, w)
    run.sched.add_retry(retry("a", prefer_hardware=("cuda",)))
    run.sched.schedule()
    # without the preference gw0 (first, as idle as the others) would take it
    assert run.links.dispatched == [("a", "gw2")]


def test_prefer_hardware_wins_over_a_shorter_queue():
    tags = {"gw0": ["cpu"], "gw1": ["cpu", "cuda"]}
    run = make([f"t{i}" for i in range(20)], tags=tags)
    w0, w1 = run.workers
    while any(run.sched.queues.values()) or run.sched.node2pending[w0]:
        complete_all(run.sched, w0)  # gw0 runs everything left; gw1 still has its first batch
    assert run.sched.node2pending[w1] and not run.sched.node2pending[w0]
    run.sched.add_retry(retry("t0", prefer_hardware=("cuda",)))
    run.sched.schedule()
    assert run.links.dispatched == [("t0", "gw1")]


def test_prefer_hardware_is_soft_any_fitting_worker_runs_the_retry():
    tags = {"gw0": ["cpu"], "gw1": ["cpu", "cuda"], "gw2": ["cpu"]}
    # the preferred worker is avoided: another one runs it, nothing is unplaceable
    run = make(["a", "b", "c"], nodes=("gw0", "gw1", "gw2"), tags=tags)
    for w in run.workers:
        complete_all(run.sched, w)
    run.sched.add_retry(retry("a", node="gw1", avoid={"gw1"}, prefer_hardware=("cuda",)))
    run.sched.schedule()
    assert run.links.dispatched == [("a", "gw0")]
    # nobody has the preferred tag: the usual choice
    run = make(["a", "b"], tags={"gw0": ["cpu"], "gw1": ["cpu"]})
    for w in run.workers:
        complete_all(run.sched, w)
    run.sched.add_retry(retry("a", prefer_not={"gw0"}, prefer_hardware=("tpu",)))
    run.sched.schedule()
    assert run.links.dispatched == [("a", "gw1")]
    assert run.callbacks.lost == [] and not run.sched.retries


def test_prefer_hardware_does_not_override_required_hardware():
    tags = {"gw0": ["cpu", "tpu"], "gw1": ["cpu", "cuda"]}
    run = make(["a", "b"], tags=tags)
    for w in run.workers:
        complete_all(run.sched, w)
    run.sched.add_retry(retry("a", hardware=("cuda",), prefer_hardware=("tpu",)))
    run.sched.schedule()
    assert run.links.dispatched == [("a", "gw1")]


def test_a_sent_retry_is_stamped_and_its_attempt_told_over_the_link_first():
    run = make(["a", "b"])
    for w in run.workers:
        complete_all(run.sched, w)
    plan = retry("a", node="gw0", attempt=2, avoid={"gw0"})
    assert plan.dispatched is None
    run.log.clear()
    before = time.monotonic()
    run.sched.add_retry(plan)
    run.sched.schedule()
    after = time.monotonic()
    assert plan.dispatched is not None and before <= plan.dispatched <= after
    assert run.links.attempts == [("gw1", plan)]
    assert plan.next_attempt == 3
    # the attempt number reaches the worker before the test does
    assert run.log[:2] == [("attempt", "gw1", "a", 3), ("runtest", "gw1", [0])]
    assert run.sched.sent == {("gw1", 0): plan}


def test_crash_item_is_the_first_unfinished_test_and_the_rest_are_requeued():
    ids = [f"t{i}" for i in range(8)]
    run = make(ids)
    sched, (w0, _w1) = run.sched, run.workers
    pending = list(sched.node2pending[w0])
    # the first test reported its teardown but its completion event never came
    run.book.node("gw0").unconfirmed.add(ids[pending[0]])
    crashed = sched.remove_node(w0)
    assert crashed == ids[pending[1]]
    queued = [i for q in sched.queues.values() for u in q for i in u]
    assert set(pending[2:]) <= set(queued)
    assert run.book.node("gw0").unconfirmed == set()


def test_a_completion_confirms_a_reported_test():
    ids = [f"t{i}" for i in range(8)]
    run = make(ids)
    w0 = run.workers[0]
    first = run.sched.node2pending[w0][0]
    run.book.node("gw0").unconfirmed.add(ids[first])
    run.sched.mark_test_complete(w0, first)
    assert run.book.node("gw0").unconfirmed == set()
    # now the crash item is the test that was running next
    assert run.sched.remove_node(w0) == ids[run.workers[0].sent[1]]


def test_a_retry_sent_to_a_worker_that_dies_is_retried_again_not_lost():
    run = make(["a", "b", "c"])
    sched, (w0, w1) = run.sched, run.workers
    for w in (w0, w1):
        complete_all(sched, w)
    sched.add_retry(retry("a"))
    sched.schedule()
    target = next(w for w in (w0, w1) if w.name == run.links.dispatched[0][1])
    sched.node2pending[target].insert(0, 2)  # something runs before it
    sched.remove_node(target)
    assert [r.nodeid for r in sched.retries] == ["a"]


def test_a_worker_that_died_before_xdist_says_so_gets_nothing_and_loses_nothing():
    # CI saw it: gw1 crashed, and gw2's collection event was handled before
    # gw1's "down" event; the scheduler's send to gw1 raised OSError.
    ids = [f"t{i}" for i in range(40)]
    run = make(ids)
    sched, (w0, w1) = run.sched, run.workers
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
    run = make(["a", "b"])
    sched, (w0, w1) = run.sched, run.workers
    for w in (w0, w1):
        complete_all(sched, w)
    w0.closed = True
    sched.add_retry(retry("a", prefer_not={"gw1"}))
    sched.schedule()
    assert run.links.dispatched[-1] == ("a", "gw1")
    assert 0 in sched.node2pending[w1] and not sched.retries


def test_quarantine_steals_only_what_the_worker_has_not_taken():
    ids = [f"t{i}" for i in range(30)]
    run = make(ids)
    sched, (w0, w1) = run.sched, run.workers
    pending = list(sched.node2pending[w0])
    assert len(pending) > 2
    run.book.quarantine("gw0", "why")
    sched.schedule()
    assert w0.stolen == pending[2:]
    sched.remove_pending_tests_from_node(w0, w0.stolen)
    assert sched.node2pending[w0] == pending[:2]
    # what was stolen runs on the other worker, and nothing more goes to gw0
    sent_to_w0 = list(w0.sent)
    for _ in range(100):
        complete_all(sched, w1)
        if not any(sched.queues.values()):
            break
    assert set(pending[2:]) <= set(w1.sent)
    assert w0.sent == sent_to_w0


def test_a_lost_worker_gets_no_more_work():
    ids = [f"t{i}" for i in range(30)]
    run = make(ids)
    sched, (w0, w1) = run.sched, run.workers
    run.book.lose("gw1", "no heartbeat")
    sent = list(w1.sent)
    for _ in range(100):
        complete_all(sched, w0)
        if not any(sched.queues.values()):
            break
    assert w1.sent[: len(sent)] == sent
    assert not set(w1.sent[len(sent):]) - {sched.flush_index}


def test_cancelled_retries_are_gone():
    run = make(["a"])
    run.sched.add_retry(retry("a", delay=60))
    assert run.sched.cancel_retry("a") is True
    assert run.sched.cancel_retry("a") is False
    assert run.sched.retries == []


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
    run = make(ids)
    sched, (w0, _) = run.sched, run.workers
    assert len(sched.node2pending[w0]) == FIRST_CHUNK  # before any duration is known
    for _ in range(3):  # let the average settle
        queued = queued_ahead(sched, w0, seconds)
    assert low <= queued <= high


# -- GPU-sized tests: hardware(gpus=N) ----------------------------------------------------
CUDA2 = {"gw0": ["cpu", "cuda"], "gw1": ["cpu", "cuda"]}


def sent_tests(run, worker):
    return [run.sched.collection[i] for i in worker.sent if i != run.sched.flush_index]


def test_a_gpus_test_goes_only_to_a_worker_that_holds_enough_gpus():
    ids = ["big1", "big2", "a", "b", "c"]
    needs = {n: {"any": ["cuda"], "fallback": [], "gpus": 2} for n in ("big1", "big2")}
    run = make(ids, tags=CUDA2, needs=needs, gpu_counts={"gw0": 1, "gw1": 2})
    w0, w1 = run.workers
    for _ in range(10):
        for w in run.workers:
            complete_all(run.sched, w)
    assert {"big1", "big2"} <= set(sent_tests(run, w1))
    assert not {"big1", "big2"} & set(sent_tests(run, w0))
    assert run.sched.tests_finished and run.callbacks.skipped == []


def test_a_pinned_worker_holds_its_slice_until_it_reports_a_count():
    ids = ["big", "a"]
    needs = {"big": {"any": [], "fallback": [], "gpus": 2}}
    run = make(ids, needs=needs, pinned={"gw0": "0", "gw1": "2,3"})
    assert "big" in sent_tests(run, run.workers[1]) and "big" not in sent_tests(run, run.workers[0])
    # the worker's own count wins over its pinned slice (it is what CUDA lets it see)
    run = make(ids, needs=needs, pinned={"gw0": "0", "gw1": "2,3"}, gpu_counts={"gw0": 2, "gw1": 0})
    assert "big" in sent_tests(run, run.workers[0]) and "big" not in sent_tests(run, run.workers[1])


def test_a_gpus_test_no_worker_can_hold_is_skipped_naming_the_count():
    needs = {"big": {"any": ["cuda"], "fallback": [], "gpus": 4}, "any4": {"any": [], "fallback": [], "gpus": 4}}
    run = make(["big", "any4", "a"], tags=CUDA2, needs=needs, gpu_counts={"gw0": 1, "gw1": 2})
    assert sorted(run.callbacks.skipped) == [(["any4"], ("4 GPUs",)), (["big"], ("cuda with 4 GPUs",))]
    assert "big" not in sent_tests(run, run.workers[0]) + sent_tests(run, run.workers[1])


def test_a_retry_of_a_gpus_test_keeps_its_gpu_count_but_not_on_fallback_hardware():
    needs = {"big": {"any": ["cuda"], "fallback": ["cpu"], "gpus": 2}}
    run = make(["big", "a"], tags=CUDA2, needs=needs, gpu_counts={"gw0": 1, "gw1": 2})
    for w in run.workers:
        complete_all(run.sched, w)
    # failed on gw1 (avoid it): gw0 has too few GPUs, so gw1 runs it again rather than nowhere
    run.sched.add_retry(retry("big", node="gw1", avoid={"gw1"}, hardware=("cuda",)))
    run.sched.schedule()
    assert run.links.dispatched == [("big", "gw1")]
    complete_all(run.sched, run.workers[1])
    # on its fallback hardware the marker's count no longer applies
    run.sched.add_retry(retry("big", node="gw1", attempt=2, avoid={"gw1"}, hardware=("cpu",)))
    run.sched.schedule()
    assert run.links.dispatched[-1] == ("big", "gw0")


def test_a_retry_of_a_gpus_test_nobody_can_hold_is_reported():
    needs = {"big": {"any": ["cuda"], "fallback": [], "gpus": 2}}
    run = make(["big", "a"], tags=CUDA2, needs=needs, gpu_counts={"gw0": 2, "gw1": 1})
    for w in run.workers:
        complete_all(run.sched, w)
    run.book.lose("gw0", "gone")
    run.sched.remove_node(run.workers[0])
    run.sched.add_retry(retry("big", hardware=("cuda",)))
    run.sched.schedule()
    assert run.callbacks.lost == [("big", "no worker with cuda with 2 GPUs is left")]


# -- exclusive tests: hardware(exclusive=True) ---------------------------------------------
ALONE = {"any": [], "fallback": [], "exclusive": True}


def test_an_exclusive_test_runs_first_alone_then_the_others_resume():
    ids = ["x", "a", "b", "c", "d"]
    run = make(ids, needs={"x": ALONE})
    sched, (w0, w1) = run.sched, run.workers
    # the host is drained (nothing runs yet): x goes out alone, flushed so that it runs now
    assert w0.sent == [0, sched.flush_index] and w1.sent == []
    assert not sched.tests_finished and sched.has_pending
    assert run.book.exclusive_runs == [("x", "localhost", pytest.approx(0.0, abs=0.5))]
    sched.mark_test_complete(w0, 0)
    assert sched.drains == {}
    assert {i for i in w0.sent + w1.sent if i != sched.flush_index} == {0, 1, 2, 3, 4}


def test_an_exclusive_retry_drains_its_host_while_running_tests_finish():
    ids = ["x"] + [f"t{i}" for i in range(12)]
    run = make(ids, needs={"x": ALONE})
    sched, (w0, w1) = run.sched, run.workers
    sched.mark_test_complete(w0, 0)  # x's first attempt, alone; the others got work
    assert len(sched.node2pending[w0]) >= 2 and len(sched.node2pending[w1]) >= 2
    sent = (list(w0.sent), list(w1.sent))
    sched.add_retry(retry("x"))
    sched.schedule()
    assert (w0.sent, w1.sent) == sent, "a drained host's workers get nothing, not even the retry"
    time.sleep(0.05)  # the tests running there take their time
    # their running tests finish; each holds its last (not started: nothing follows it)
    for w in (w0, w1):
        while len(sched.node2pending[w]) > 1:
            sched.mark_test_complete(w, sched.node2pending[w][0])
    [(name, plan)] = run.links.attempts
    target = w0 if name == "gw0" else w1
    assert plan.nodeid == "x" and target.sent[-1] == sched.flush_index
    other = w1 if target is w0 else w0
    assert other.sent == sent[other is w1], "the other worker still waits"
    assert run.book.exclusive_runs[-1][:2] == ("x", "localhost") and run.book.exclusive_runs[-1][2] >= 0.05
    sched.mark_test_complete(target, 0)  # the exclusive test is done: work again
    for _ in range(50):
        for w in (w0, w1):
            complete_all(sched, w)
        if sched.tests_finished:
            break
    assert sched.tests_finished and sched.drains == {}
    assert sorted({i for w in (w0, w1) for i in w.sent} - {sched.flush_index}) == list(range(len(ids)))


def test_an_exclusive_test_drains_only_its_own_host():
    ids = ["x"] + [f"t{i}" for i in range(6)]
    hosts = {"gw0": "h1", "gw1": "h1", "gw2": "h2"}
    needs = {"x": {"any": ["cuda"], "fallback": [], "exclusive": True}}
    tags = {"gw0": ["cpu", "cuda"], "gw1": ["cpu"], "gw2": ["cpu"]}
    run = make(ids, nodes=("gw0", "gw1", "gw2"), needs=needs, hosts=hosts, tags=tags)
    w0, w1, w2 = run.workers
    assert w0.sent == [0, run.sched.flush_index] and w1.sent == []
    assert [i for i in w2.sent if i != run.sched.flush_index], "the other host goes on working"
    assert run.book.exclusive_runs == [("x", "h1", pytest.approx(0.0, abs=0.5))]


def test_a_crash_of_the_exclusive_test_frees_its_host():
    run = make(["x", "a", "b"], needs={"x": ALONE})
    sched, (w0, w1) = run.sched, run.workers
    assert sched.remove_node(w0) == "x"
    assert sched.drains == {}
    sched.schedule()
    assert {1, 2} <= set(w1.sent)


def test_exclusive_tests_run_one_at_a_time():
    run = make(["x", "y", "a"], needs={"x": ALONE, "y": ALONE})
    sched, (w0, w1) = run.sched, run.workers
    assert [i for i in w0.sent + w1.sent if i != sched.flush_index] == [0]
    sched.mark_test_complete(w0, 0)
    assert [i for i in w0.sent + w1.sent if i != sched.flush_index] == [0, 1]
    assert [nodeid for nodeid, _host, _s in run.book.exclusive_runs] == ["x", "y"]


def test_an_exclusive_test_without_a_linked_worker_runs_like_any_other():
    # without the link there is no flush item: a test sent alone would wait forever
    book = WorkerBook()
    book.requirements["x"] = dict(ALONE)
    callbacks = FakeCallbacks()
    sched = DtfScheduling(None, 1, "load", book, callbacks, FakeLinks([]), wake_at=lambda t: None)
    w0 = FakeNode("gw0")
    sched.add_node(w0)
    sched.add_node_collection(w0, ["x", "a"])
    sched.schedule()
    assert sorted(w0.sent) == [0, 1] and sched.drains == {} and book.exclusive_runs == []


def test_requirements_from_the_wire_keep_gpus_and_exclusive_and_drop_bad_values():
    from pytest_dtf_errors.xdist.messages import from_wire, requirements_to_wire

    sent = {
        "a": {"any": ["cuda"], "fallback": [], "gpus": 2, "exclusive": True},
        "b": {"any": [], "fallback": [], "gpus": "2", "exclusive": "yes"},
        "c": {"any": [], "fallback": [], "gpus": 0},
        "d": {"any": [], "fallback": [], "gpus": 2.5},
        "e": {"any": [], "fallback": [], "gpus": True},
        "f": {"any": [], "fallback": [], "gpus": 10**9},
    }
    kind, reqs = from_wire(requirements_to_wire(sent))
    assert kind == "requirements"
    assert reqs["a"] == {"any": ["cuda"], "fallback": [], "gpus": 2, "exclusive": True}
    assert all(reqs[n] == {"any": [], "fallback": []} for n in "bcdef")


def test_a_run_goes_to_a_worker_that_does_not_hold_the_test_already():
    run = make(["a", "b", "c", "d"], nodes=("gw0", "gw1"))
    sched, (w0, w1) = run.sched, run.workers
    held = next(w for w in (w0, w1) if sched.index_of["a"] in sched.node2pending[w])
    other = w1 if held is w0 else w0
    for i in range(3):  # the other worker has more queued, and is still the one picked
        sched.node2pending[other].append(sched.index_of["d"] + 100 + i)
    assert sched._pick(retry("a", node="gw9"), [w0, w1]) is other
    # if every fitting worker holds it, one of them still runs it
    sched.node2pending[other].append(sched.index_of["a"])
    assert sched._pick(retry("a", node="gw9"), [w0, w1]) is not None
