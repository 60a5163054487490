"""The xdist scheduler: load distribution that is retry-aware and hardware-aware.

``DtfScheduling`` meets xdist's ``Scheduling`` protocol plus two methods,
``add_retry`` and ``cancel_retry``. First attempts are work *units*: one test
with ``--dist load``, one scope, file or group with ``loadscope`` /
``loadfile`` / ``loadgroup``. Retries are ``RetryPlan``s with a due time and
placement constraints; the session decides them, this module only places
them. Worker facts (tags, GPUs, unavailable hardware, quarantine, the link)
are read from the WorkerBook; the scheduler calls back through ``Callbacks``.

What a test needs of a worker is a ``Need``: any of its marker's tags, at
least ``gpus=`` GPUs, and for ``exclusive=True`` its host to itself. An
exclusive test *drains* its host: the host's workers get no more work, and
once none runs a test the exclusive one is sent to one of them; when it is
done they get work again. The time spent draining goes into the WorkerBook's
``exclusive_runs``.

With the history's durations (``Durations``), first attempts go out longest
first (the LPT rule): each queue's units are ordered by their expected seconds
(a test the history has not seen counts as the median), a long unit goes only
to a worker with nothing queued, and a worker gets about ``QUEUE_SECONDS`` of
expected work behind its running test rather than a count of tests. Without
durations the order and the batches are those of a run without a history.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol, final

import pytest

from ..session.plan import RetryPlan
from ..session.workers import WorkerBook
from . import patches
from .link import Links
from .patches import WorkerNode

__all__ = [
    "ANYWHERE", "SUPPORTED_MODES", "Callbacks", "DtfScheduling", "Durations", "Need", "describe", "node_id", "scope_key",
]

SUPPORTED_MODES = ("load", "loadscope", "loadfile", "loadgroup")
# How much work a worker has queued ahead: about QUEUE_SECONDS of it, judged
# from the tests' durations so far (FIRST_CHUNK before any is known), at most
# MAX_CHUNK tests. Short queues let a retry start soon; long ones spare a
# suite of fast tests a command (and a wake-up of the worker) every few tests.
QUEUE_SECONDS = 0.25
FIRST_CHUNK = 100
MAX_CHUNK = 500
REFILL_BELOW = 3  # keep at least this many queued so a worker never waits for its next item

Need = tuple[tuple[str, ...], int, bool]  # (any of these tags, at least this many GPUs, its host alone)
ANYWHERE: Need = ((), 0, False)


def describe(need: Need) -> str:
    """``cuda or rocm with 2 GPUs``: a need as the skip reason names it."""
    tags, gpus, _ = need
    count = f"{gpus} GPU{'s' if gpus != 1 else ''}" if gpus else ""
    return f"{' or '.join(tags)} with {count}" if tags and count else " or ".join(tags) or count


class Callbacks(Protocol):
    """What the scheduler tells the session (the xdist hooks implement it)."""

    def collected(self, nodeids: list[str]) -> None:
        """The workers agreed on the collection: these tests will run."""

    def start_worker(self, plan: RetryPlan) -> bool:
        """Nobody alive can run ``plan``: start a worker for it. True if one is on its way."""

    def unplaceable(self, nodeids: list[str], requirement: tuple[str, ...], reason: str | None) -> None:
        """These tests can run nowhere: first attempts needing ``requirement`` no worker has
        (``reason`` None; a GPU count is part of the name: ``("cuda with 2 GPUs",)``), or a
        promised retry that cannot be placed (``reason`` says why)."""


class Durations(Protocol):
    """What the scheduler reads of the history (``history.values.TestIndex`` is one)."""

    def __contains__(self, nodeid: object) -> bool:
        """The history has seen this test."""

    def duration(self, nodeid: str) -> float:
        """A seen test's mean duration in seconds."""


def scope_key(nodeid: str, mode: str, group: str | None = None) -> str:
    """The unit a first attempt is sent in, as xdist's own schedulers group it."""
    if mode == "loadfile":
        return nodeid.split("::", 1)[0]
    if mode == "loadscope":
        return nodeid.rsplit("::", 1)[0]
    if mode == "loadgroup":
        if "@" in nodeid:
            return "@" + nodeid.rsplit("@", 1)[-1]
        if group is not None:
            return "@" + group
    return nodeid


def node_id(node: WorkerNode) -> str:
    return str(node.gateway.id)


@final
class _Drain:
    """An exclusive test (a unit of first attempts, or a retry) waiting for its host, then running.

    ``host``: the host drained; ``need``: what the test needs; ``unit`` or
    ``plan``: the work; ``started``: when draining began (``time.monotonic()``);
    ``node``: the worker it was sent to (None while draining); ``waiting``: its
    indices not completed yet.
    """

    __slots__ = ("host", "need", "node", "plan", "started", "unit", "waiting")

    def __init__(self, host: str, need: Need, unit: list[int] | None, plan: RetryPlan | None, started: float) -> None:
        self.host = host
        self.need = need
        self.unit = unit
        self.plan = plan
        self.started = started
        self.node: WorkerNode | None = None
        self.waiting: set[int] = set()


class DtfScheduling:
    """xdist ``Scheduling`` with a retry queue, worker constraints and hardware routing.

    ``node2collection`` / ``node2pending``: as in xdist's ``LoadScheduling``
    (pending: indices sent to the worker and not completed, the first one
    running). ``queues``: units of first attempts not sent yet, by hardware
    ``Need`` (``ANYWHERE``: runs anywhere). ``retries``: plans waiting for their
    due time or a worker; ``sent``: plans sent and not completed, by (worker,
    index), put back if the worker dies. ``refused``: workers that collected a
    different test set. ``flushed``: the last thing sent was the flush item.
    ``unreachable``: workers whose channel closed before xdist said so.
    ``drains``: by host, the exclusive test that has (or waits for) it alone.
    ``expected``: by collection index, the seconds a test is expected to take
    (from ``durations``; None without any known duration: no LPT).
    """

    def __init__(
        self,
        config: pytest.Config,
        numnodes: int,
        mode: str,
        book: WorkerBook,
        callbacks: Callbacks,
        links: Links,
        wake_at: Callable[[float], None],
        log: Callable[..., object] | None = None,
        durations: Durations | None = None,
    ) -> None:
        self.config = config  # peers (pytest-rerunfailures) read sched.config
        self.numnodes = numnodes
        self.mode = mode if mode in SUPPORTED_MODES else "load"
        self.book = book
        self.callbacks = callbacks
        self.links = links
        self.wake_at = wake_at
        self.log = log
        self.durations = durations
        self.expected: list[float] | None = None
        self.node2collection: dict[WorkerNode, list[str]] = {}
        self.node2pending: dict[WorkerNode, list[int]] = {}
        self.collection: list[str] | None = None
        self.index_of: dict[str, int] = {}
        self.queues: dict[Need, deque[list[int]]] = {}
        self.retries: list[RetryPlan] = []
        self.sent: dict[tuple[str, int], RetryPlan] = {}
        self.refused: set[WorkerNode] = set()
        self.moved: set[WorkerNode] = set()  # quarantined workers whose queued work was moved
        self.flushed: set[WorkerNode] = set()
        self.unreachable: set[WorkerNode] = set()
        self.flush_index = -1  # index of the workers' no-op item (worker.FlushItem)
        self.refill_below = REFILL_BELOW  # top a worker up when it has fewer queued
        self.test_seconds: float | None = None  # moving average of a test's duration
        self._ordered: list[tuple[Need, deque[list[int]]]] | None = None
        self.drains: dict[str, _Drain] = {}
        self.aborted = False  # the workers collected different tests

    # -- the protocol ------------------------------------------------------
    @property
    def nodes(self) -> list[WorkerNode]:
        return list(self.node2pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.node2collection) >= self.numnodes or (
            self.collection is not None and bool(self.node2collection)
        )

    @property
    def tests_finished(self) -> bool:
        if self.aborted:
            return True  # different collections: nothing runs, as with xdist
        # xdist asks after every event: the cheap "no" comes first
        if self.collection is None or self.retries or self.drains or not self.node2collection:
            return False
        for node, pending in self.node2pending.items():
            # a flushed worker runs its last test by itself; an unflushed one needs shutdown()
            if len(pending) > 1 or (pending and node in self.flushed):
                return False
        return not any(self.queues.values())

    @property
    def has_pending(self) -> bool:
        return bool(self.retries or self.drains or any(self.queues.values()) or any(self.node2pending.values()))

    def add_node(self, node: WorkerNode) -> None:
        assert node not in self.node2pending
        self.node2pending[node] = []

    def add_node_collection(self, node: WorkerNode, collection: Sequence[str]) -> None:
        self.node2collection[node] = list(collection)
        if self.collection is not None and list(collection) != self.collection:
            # A worker that collected something else would run the wrong tests.
            self._say(f"dtf: {node_id(node)} collected a different test set; it gets no work")
            self.refused.add(node)

    def mark_test_complete(self, node: WorkerNode, item_index: int, duration: float = 0) -> None:
        if item_index == self.flush_index:
            return
        name = node_id(node)
        rec = self.book.nodes.get(name)
        if rec is not None and rec.unconfirmed and self.collection is not None:
            rec.unconfirmed.discard(self.collection[item_index])
        mean = self.test_seconds
        self.test_seconds = duration if mean is None else mean + (duration - mean) * 0.05
        pending = self.node2pending.get(node)
        if pending is not None and item_index in pending:
            pending.remove(item_index)
        if self.sent:
            self.sent.pop((name, item_index), None)
        if self.drains:
            self._drain_progress(node, item_index)
        # the hot path: one test done, top up this worker (the others have their own events)
        if self.retries:
            self._dispatch_retries(time.monotonic())
        if pending is not None and len(pending) < self.refill_below:
            if self._takes_work(node):
                self._fill(node)
            elif not self.book.takes_work(name):
                self._move_off(node)

    def mark_test_pending(self, item: str) -> None:
        """A peer plugin (pytest-rerunfailures) asks for a test to run again."""
        index = self.index_of.get(item)
        if index is not None:
            self._queue(self._need(item)).appendleft([index])
            self.schedule()

    def remove_pending_tests_from_node(self, node: WorkerNode, indices: Sequence[int]) -> None:
        pending = self.node2pending.get(node, [])
        for index in indices:
            if index in pending:
                pending.remove(index)
            self._requeue(node, index)
        self.schedule()

    def remove_node(self, node: WorkerNode) -> str | None:
        self.unreachable.discard(node)
        for host, drain in list(self.drains.items()):
            if drain.node is node:
                del self.drains[host]  # its exclusive test crashed with it: the host is free
        pending = self.node2pending.pop(node)
        self.node2collection.pop(node, None)
        if not pending:
            return None
        assert self.collection is not None
        # A worker can die after a test's last report but before its
        # "protocol complete" event: that test is done, not the crash item.
        rec = self.book.nodes.get(node_id(node))
        done = rec.unconfirmed if rec is not None else set()
        while pending and self.collection[pending[0]] in done:
            done.discard(self.collection[pending.pop(0)])
        if not pending:
            return None
        crashed, rest = pending[0], pending[1:]
        self.sent.pop((node_id(node), crashed), None)
        for index in reversed(rest):
            self._requeue(node, index)
        return self.collection[crashed]

    def schedule(self) -> None:
        if not self.collection_is_completed or self.aborted:
            return
        if self.collection is None:
            self._start()
        self.give_up_unplaceable()
        now = time.monotonic()
        self._dispatch_retries(now)
        self._exclusive(now)
        for node in list(self.node2pending):
            if self._takes_work(node):
                self._fill(node)
            elif not self.book.takes_work(node_id(node)):
                self._move_off(node)

    # -- the two methods beyond the protocol -----------------------------------
    def add_retry(self, plan: RetryPlan) -> None:
        """Run ``plan`` once it is due, on a worker its constraints allow."""
        self.retries.append(plan)
        self.wake_at(plan.due if plan.due is not None else time.monotonic())
        need = self._plan_need(plan)
        if not any(self._fits(n, need) for n in self._live_nodes()) and not self.book.starting_workers():
            # Every worker is shutting down or gone: start one for this retry.
            self.callbacks.start_worker(plan)

    def cancel_retry(self, nodeid: str) -> bool:
        """Drop a waiting retry (the breaker stopped it). True if one was waiting."""
        before = len(self.retries)
        self.retries = [r for r in self.retries if r.nodeid != nodeid]
        for host, drain in list(self.drains.items()):
            if drain.plan is not None and drain.plan.nodeid == nodeid and drain.node is None:
                del self.drains[host]
                before += 1
        return len(self.retries) != before

    # -- internals ---------------------------------------------------------
    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def _start(self) -> None:
        first = next(iter(self.node2collection.values()))
        if not self._same_collections(first):
            self.aborted = True
            return
        self.collection = first
        self.flush_index = len(first)
        self.index_of = {nodeid: i for i, nodeid in enumerate(first)}
        self.callbacks.collected(first)
        self.expected = self._expected(first)
        units: dict[tuple[Need, str], list[int]] = {}
        groups = self.book.groups if self.mode == "loadgroup" else {}
        for index, nodeid in enumerate(first):
            need = self._need(nodeid)
            units.setdefault((need, scope_key(nodeid, self.mode, groups.get(nodeid))), []).append(index)
        ordered = list(units.items())
        option = getattr(self.config, "option", None)
        reorder = self.mode != "load" and getattr(option, "loadscopereorder", True)
        expected = self.expected
        if expected is not None and self.mode == "load":
            ordered.sort(key=lambda kv: -expected[kv[1][0]])  # LPT: the longest first (a unit is one test)
        elif expected is not None and reorder:
            ordered.sort(key=lambda kv: -sum(map(expected.__getitem__, kv[1])))  # the longest scope first
        elif reorder:
            ordered.sort(key=lambda kv: -len(kv[1]))  # the largest scope first, as xdist does
        for (req, _), unit in ordered:
            self._queue(req).append(unit)

    def _expected(self, nodeids: list[str]) -> list[float] | None:
        """Each test's expected seconds: the history's mean, the median of those for a new test.
        None when the history knows none of them (the order and batches stay as without it)."""
        known = self.durations
        if known is None:
            return None
        duration = known.duration
        seen = [duration(n) if n in known else None for n in nodeids]
        values = [s for s in seen if s is not None]
        if not values:
            return None
        if min(values) < 0:
            values = [max(0.0, s) for s in values]
            seen = [None if s is None else max(0.0, s) for s in seen]
        median = statistics.median(values)
        return [median if s is None else s for s in seen]

    def _same_collections(self, first: list[str]) -> bool:
        """As xdist: workers that collected different tests end the run with a collection error."""
        nodes = list(self.node2collection.items())
        same = True
        for node, collection in nodes[1:]:
            msg = patches.collection_diff(first, collection, node_id(nodes[0][0]), node_id(node))
            if msg:
                same = False
                self._say(msg)
                report = pytest.CollectReport(node_id(node), "failed", longrepr=msg, result=[])
                self.config.hook.pytest_collectreport(report=report)
        return same

    def _queue(self, need: Need) -> deque[list[int]]:
        q = self.queues.get(need)
        if q is None:
            q = self.queues[need] = deque()
            self._ordered = None
        return q

    def _requeue(self, node: WorkerNode, index: int) -> None:
        plan = self.sent.pop((node_id(node), index), None)
        if plan is not None:
            self.retries.append(plan)  # due already: it goes out with the next event
        else:
            assert self.collection is not None
            self._queue(self._need(self.collection[index])).appendleft([index])

    def _takes_work(self, node: WorkerNode) -> bool:
        return (
            not patches.shutting_down(node)
            and node not in self.unreachable
            and node not in self.refused
            and self.book.takes_work(node_id(node))
        )

    def _live_nodes(self) -> list[WorkerNode]:
        return [n for n in self.node2pending if self._takes_work(n)]

    def _move_off(self, node: WorkerNode) -> None:
        """A quarantined or retiring worker: no more work, and what it has not started moves.
        A retiring one is shut down once its last test is done (the hooks replace it)."""
        pending = self.node2pending[node]
        rec = self.book.nodes.get(node_id(node))
        if node not in self.moved:
            self.moved.add(node)
            # the first is running and the second already taken off the worker's queue (as
            # the running test's next item), or the worker is further on than its reports
            # say. xdist steals all the indices asked for or none: one at a time, each test
            # still queued there comes back
            for index in pending[2:]:
                if not self._command(node, patches.steal_tests, [index]):
                    return
        if not self._draining(node):  # its held test runs once its host is not drained
            self._flush(node)
        if not pending and rec is not None and rec.retiring and not patches.shutting_down(node):
            self._command(node, lambda n, _: patches.shut_down(n), ())

    def _need(self, nodeid: str) -> Need:
        """What a first attempt of ``nodeid`` needs of its worker (its hardware marker)."""
        req = self.book.requirements.get(nodeid)
        if req is None:
            return ANYWHERE
        return tuple(req["any"]), int(req.get("gpus", 0)), bool(req.get("exclusive", False))

    def _plan_need(self, plan: RetryPlan) -> Need:
        """A retry needs its plan's hardware; its marker's GPUs unless it runs on fallback hardware."""
        tags, gpus, exclusive = self._need(plan.nodeid)
        if plan.hardware and tuple(plan.hardware) != tags:
            gpus = 0  # fallback= (or other) hardware the plan chose: the marker's GPU count was for its own
        return tuple(plan.hardware), gpus, exclusive

    def _gpus(self, node: WorkerNode) -> int:
        """The GPUs a worker holds: as it reported them, else as pinned (--dtf-gpus-per-worker)."""
        rec = self.book.nodes.get(node_id(node))
        if rec is None:
            return 0
        if rec.gpu_count is not None:
            return rec.gpu_count
        return len([e for e in rec.gpus.split(",") if e.strip()]) if rec.gpus else 0

    def _fits(self, node: WorkerNode, need: Need) -> bool:
        tags, gpus, _ = need
        if tags and not self.book.tags(node_id(node)) & set(tags):
            return False
        return not gpus or self._gpus(node) >= gpus

    def _eligible(self, node: WorkerNode, plan: RetryPlan, need: Need) -> bool:
        return node_id(node) not in plan.avoid and self._fits(node, need)

    # -- exclusive tests: a host to themselves -------------------------------------
    def _host(self, node: WorkerNode) -> str:
        rec = self.book.nodes.get(node_id(node))
        return rec.host if rec is not None and rec.host else "localhost"

    def _linked(self, node: WorkerNode) -> bool:
        rec = self.book.nodes.get(node_id(node))
        return rec is not None and rec.linked

    def _draining(self, node: WorkerNode) -> bool:
        """The worker's host is kept for an exclusive test: it gets nothing else."""
        return bool(self.drains) and self._host(node) in self.drains

    def _quiet(self, node: WorkerNode) -> bool:
        """Runs no test and starts none until sent more: nothing pending, or only its last
        test, held (an xdist worker starts a test only once it knows the next one)."""
        pending = self.node2pending.get(node)
        if not pending or node in self.unreachable:
            return True
        return len(pending) == 1 and node not in self.flushed and not patches.shutting_down(node)

    def _alone(self, need: Need) -> bool:
        """An exclusive test can have a host to itself: a live worker it fits has the link
        (the flush item lets its test run while nothing follows it)."""
        return any(self._linked(n) and self._fits(n, need) for n in self._live_nodes())

    def _exclusive(self, now: float) -> None:
        """Drained hosts run their exclusive test; exclusive first attempts drain a host each."""
        for drain in list(self.drains.values()):
            if drain.node is None and not self._advance(drain, now):
                self._give_back(drain)
        for need, queue in list(self.queues.items()):
            if not need[2] or not queue:
                continue
            if not self._alone(need):
                if any(self._fits(n, need) for n in self._live_nodes()):
                    # no worker it fits has the link: it cannot run alone, it runs as any test does
                    self._say(f"dtf: no worker with the DTF link can run {len(queue)} exclusive test(s) alone")
                    self._queue((need[0], need[1], False)).extend(queue)
                    queue.clear()
                continue
            while queue:
                unit = queue.popleft()
                if not self._begin_drain(need, unit, None, now):
                    queue.appendleft(unit)  # every host it fits is held by another: it waits
                    break

    def _begin_drain(self, need: Need, unit: list[int] | None, plan: RetryPlan | None, now: float) -> bool:
        """Keep a host for this exclusive work: the host with the least work queued among those
        with a worker it fits. False when there is none free (the caller keeps the work)."""
        fitting = [
            n for n in self._live_nodes()
            if self._linked(n) and self._fits(n, need) and self._host(n) not in self.drains
        ]
        if plan is not None:
            eligible = [n for n in fitting if node_id(n) not in plan.avoid]
            fitting = eligible if eligible or self.book.starting_workers() else fitting
        if not fitting:
            return False
        load: dict[str, int] = {}
        for n, pending in self.node2pending.items():
            load[self._host(n)] = load.get(self._host(n), 0) + len(pending)
        best = min(fitting, key=lambda n: (plan is not None and node_id(n) in plan.prefer_not, load[self._host(n)]))
        drain = _Drain(self._host(best), need, unit, plan, now)
        self.drains[drain.host] = drain
        return self._advance(drain, now)

    def _advance(self, drain: _Drain, now: float) -> bool:
        """Send the exclusive work once no worker of its host runs a test. False: no worker
        there can run it any more; the drain is over and the caller takes the work back."""
        host_nodes = [n for n in self.node2pending if self._host(n) == drain.host]
        if not all(self._quiet(n) for n in host_nodes):
            return True
        plan = drain.plan
        fitting = [n for n in host_nodes if self._takes_work(n) and self._linked(n) and self._fits(n, drain.need)]
        if plan is not None:
            fitting = [n for n in fitting if node_id(n) not in plan.avoid] or fitting
        prefer = set(plan.prefer_hardware) if plan is not None else set()
        indices = list(drain.unit) if drain.unit is not None else [self.index_of[plan.nodeid]] if plan else []
        while fitting:
            node = min(fitting, key=lambda n: (
                plan is not None and node_id(n) in plan.prefer_not,
                bool(prefer) and not (self.book.tags(node_id(n)) & prefer),
                len(self.node2pending[n]),  # an idle one: no held test runs before it
            ))
            sent = self._send_retry(node, plan) if plan is not None else self._send(node, indices)
            if sent:
                break
            fitting.remove(node)  # it died under us: another worker of the host runs it
        else:
            del self.drains[drain.host]
            return False
        if plan is not None:
            self.sent[(node_id(node), indices[0])] = plan
        self._flush(node)
        drain.node = node
        drain.waiting = set(indices)
        assert self.collection is not None
        for n, index in enumerate(indices):  # a unit of several tests shares one drain
            self.book.exclusive_runs.append((self.collection[index], drain.host, now - drain.started if n == 0 else 0.0))
        return True

    def _give_back(self, drain: _Drain) -> None:
        """A drain that ended before its work was sent: the work waits again."""
        if drain.unit is not None:
            self._queue(drain.need).appendleft(drain.unit)
        if drain.plan is not None:
            self.retries.append(drain.plan)

    def _drain_progress(self, node: WorkerNode, index: int) -> None:
        """A test completed: an exclusive test done frees its host; a drained host may be quiet."""
        now = time.monotonic()
        freed = False
        for host, drain in list(self.drains.items()):
            if drain.node is node and index in drain.waiting:
                drain.waiting.discard(index)
                if not drain.waiting:
                    del self.drains[host]
                    freed = True
            elif drain.node is None and self._host(node) == host and not self._advance(drain, now):
                self._give_back(drain)
        if freed:
            self.schedule()  # the host's workers get work again (or the next exclusive test drains it)

    def _dispatch_retries(self, now: float) -> None:
        if not self.retries:
            return
        live = [n for n in self._live_nodes() if not self._draining(n)]
        keep: list[RetryPlan] = []
        for plan in sorted(self.retries, key=_due):
            if _due(plan) > now + 0.005:
                keep.append(plan)
                self.wake_at(_due(plan))
                continue
            need = self._plan_need(plan)
            if need[2] and self._alone(need):
                if not self._begin_drain(need, None, plan, now):
                    reason = self._why_unplaceable(plan)
                    if reason is None:
                        keep.append(plan)  # its host is drained for another exclusive test, or starting
                    else:
                        self.callbacks.unplaceable([plan.nodeid], plan.hardware, reason)
                continue
            node = self._pick(plan, live)
            died = False
            while node is not None:
                if self._send_retry(node, plan):
                    break
                live.remove(node)  # it died under us: another one runs the retry
                died = True
                node = self._pick(plan, live)
            if node is None:
                reason = None if died else self._why_unplaceable(plan)
                if reason is None:
                    keep.append(plan)  # a worker is starting (or will replace the dead)
                else:
                    self.callbacks.unplaceable([plan.nodeid], plan.hardware, reason)
                continue
            self.sent[(node_id(node), self.index_of[plan.nodeid])] = plan
        self.retries = keep

    def _send_retry(self, node: WorkerNode, plan: RetryPlan) -> bool:
        """The worker learns the attempt over the link, then gets the test."""
        plan.dispatched = time.monotonic()
        self.links.send_attempt(node_id(node), plan)
        return self._send(node, [self.index_of[plan.nodeid]])

    def _pick(self, plan: RetryPlan, live: list[WorkerNode]) -> WorkerNode | None:
        need = self._plan_need(plan)
        fitting = [n for n in live if self._eligible(n, plan, need)]
        if not fitting and not self.book.starting_workers():
            # Every worker able to run it is one to avoid: better there than nowhere.
            fitting = [n for n in live if self._fits(n, need)]
        if not fitting:
            return None
        index = self.index_of.get(plan.nodeid)
        free = [n for n in fitting if index not in self.node2pending[n]]
        if free:
            # not to a worker that holds the test already (a repeat's run, or a retry that
            # fell back onto its worker): pytest would run it as its own next item, skipping
            # the teardown and setup between the two
            fitting = free
        prefer = set(plan.prefer_hardware)
        return min(
            fitting,
            key=lambda n: (
                node_id(n) in plan.prefer_not,
                bool(prefer) and not (self.book.tags(node_id(n)) & prefer),
                self._backlog(n),
            ),
        )

    def _backlog(self, node: WorkerNode) -> float:
        """How much the worker has to do before a test sent now: its tests pending, or, with the
        history's durations, their expected seconds (one long test outweighs many short ones)."""
        pending = self.node2pending[node]
        if self.expected is None:
            return len(pending)
        return sum(self.expected[i] for i in pending)

    def _why_unplaceable(self, plan: RetryPlan) -> str | None:
        if self.book.starting_workers():
            return None
        everyone = list(self.node2pending)
        need = self._plan_need(plan)
        if any(self._fits(n, need) for n in everyone if not patches.shutting_down(n)):
            return None if self._live_nodes() else "every worker able to run it is quarantined"
        if (need[0] or need[1]) and not any(self._fits(n, need) for n in everyone):
            return f"no worker with {describe(need).replace(' or ', '/')} is left"
        if self.callbacks.start_worker(plan):
            return None
        return "no worker is left to run it"

    def give_up_unplaceable(self) -> None:
        """Tests whose hardware no live or starting worker has are skipped, not lost."""
        if not any(need[:2] != ((), 0) and q for need, q in self.queues.items()) or self.book.starting_workers():
            return
        assert self.collection is not None
        alive = [n for n in self.node2pending if not patches.shutting_down(n)]
        for need, queue in self.queues.items():
            if not queue or need[:2] == ((), 0):
                continue
            if not any(self._fits(n, need) for n in alive):
                lost = []
                for index in (i for unit in queue for i in unit):
                    nodeid = self.collection[index]
                    fallback = self.book.fallback(nodeid)
                    if fallback and any(self._fits(n, (fallback, 0, False)) for n in alive):
                        # the marker's fallback= hardware runs it, like a retry would
                        first = RetryPlan(nodeid, 0, "", retry=True, reason="fallback", hardware=fallback)
                        first.promise()
                        self.retries.append(first)
                    else:
                        lost.append(nodeid)
                queue.clear()
                if lost:
                    # the callback names the tags; a GPU count goes into that name
                    self.callbacks.unplaceable(lost, need[0] if not need[1] else (describe(need),), None)

    def _command(self, node: WorkerNode, send: Callable[[WorkerNode, Sequence[int]], None], indices: Sequence[int]) -> bool:
        """Send one command; False if the worker's channel is already closed.

        A worker can die while its "down" event still waits in xdist's queue
        behind the event being handled: it gets nothing more from us, and
        xdist's own removal of it follows.
        """
        try:
            send(node, indices)
        except OSError:
            self.unreachable.add(node)
            return False
        return True

    def _send(self, node: WorkerNode, indices: list[int]) -> bool:
        if not self._command(node, patches.send_tests, indices):
            return False
        self.node2pending[node].extend(indices)
        self.flushed.discard(node)
        return True

    def _flush(self, node: WorkerNode) -> None:
        """Nothing follows this worker's last test for now: let it run anyway."""
        if (
            self.node2pending[node]
            and node not in self.flushed
            and self.flush_index >= 0
            and self.book.node(node_id(node)).linked
            and self._command(node, patches.send_tests, [self.flush_index])
        ):
            self.flushed.add(node)

    def _fill(self, node: WorkerNode) -> None:
        pending = self.node2pending[node]
        if len(pending) >= self.refill_below or self._draining(node):
            return
        queues = [q for need, q in self._by_specificity() if q and not need[2] and self._fits(node, need)]
        if not queues:
            self.refill_below = REFILL_BELOW
            self._flush(node)
            return
        if self.expected is not None:
            self._fill_by_seconds(node, pending, queues, self.expected)
            return
        remaining = sum(len(q) for q in queues)
        live = max(1, len(self._live_nodes()))
        target = max(REFILL_BELOW + 1, min(self._chunk(), remaining // (2 * live)))
        # a few slow tests are spread over all workers, as xdist's round robin does;
        # two at least, so that a worker never waits on a lone last item
        target = min(target, max(2, -(-remaining // live)))
        if self.retries:
            target = REFILL_BELOW + 1  # short queues: a retry soon due starts soon after
        # top up at half a chunk: the next batch arrives before the worker runs dry
        self.refill_below = max(REFILL_BELOW, target // 2)
        batch: list[int] = []
        units: list[list[int]] = []
        for queue in queues:
            while queue and len(pending) + len(batch) < target:
                units.append(queue.popleft())
                batch.extend(units[-1])
                if self.mode != "load":
                    break  # one scope at a time keeps groups on one worker
            if batch:
                break
        if batch:
            if not self._send(node, batch):
                queue.extendleft(reversed(units))  # untouched, for the next worker
                return
            if not any(q for q in queues):
                self._flush(node)  # that was the last of it: let it all run

    def _fill_by_seconds(
        self, node: WorkerNode, pending: list[int], queues: list[deque[list[int]]], seconds: list[float]
    ) -> None:
        """LPT batches: a long unit only to a worker with nothing queued, then short ones behind
        its running test up to QUEUE_SECONDS, so no long test waits behind another."""
        # a worker without the link holds its last test until another follows: it needs two
        flushable = self.flush_index >= 0 and self._linked(node)
        if flushable and pending and seconds[pending[0]] > QUEUE_SECONDS:
            self._flush(node)  # nothing more behind a long test: short ones go to the others meanwhile
            return
        ahead = sum(seconds[i] for i in pending[1:])  # expected work queued behind the running test
        if ahead >= QUEUE_SECONDS / 2:
            return
        live = max(1, len(self._live_nodes()))
        remaining = sum(len(q) for q in queues)
        # units per batch: the tail spread over all workers, short queues while a retry waits
        if self.retries:
            most = max(1, REFILL_BELOW + 1 - len(pending))
        else:
            most = min(MAX_CHUNK, max(1, remaining // (2 * live)))
        held = len(pending)
        batch: list[int] = []
        front: list[list[int]] = []  # units taken from the front of ``source``, in order
        follower: list[int] | None = None  # a short unit taken from its end
        waits = False  # a unit too long to queue behind others waits for an idle worker
        source = queues[0]
        for source in queues:
            while source and len(front) < most:
                unit = source[0]
                cost = sum(seconds[i] for i in unit)
                if held + len(batch) == 0:
                    ahead = cost - seconds[unit[0]]  # an idle worker: its first test runs at once
                elif ahead + cost > QUEUE_SECONDS:
                    waits = True
                    break
                else:
                    ahead += cost
                front.append(source.popleft())
                batch.extend(unit)
                if seconds[batch[-1]] > QUEUE_SECONDS:
                    break  # nothing queues behind a long test: it runs alone
            if batch:
                break
        if not flushable and held + len(batch) == 1:
            source = next((q for q in queues if q), source) if not batch else source
            if source:
                follower = source.pop()  # the shortest left follows, not the next long one
                batch.extend(follower)
        if not batch:
            self._flush(node)  # what it holds runs; the long unit goes once it is idle
            return
        if not self._send(node, batch):
            source.extendleft(reversed(front))  # untouched, for the next worker
            if follower is not None:
                source.append(follower)
            return
        self.refill_below = max(REFILL_BELOW, len(pending) // 2)
        if waits or len(pending) == 1 or seconds[pending[-1]] > QUEUE_SECONDS or not any(q for q in queues):
            self._flush(node)  # nothing follows for now: let it all run

    def _chunk(self) -> int:
        """Tests to queue ahead on a worker: about QUEUE_SECONDS of work."""
        if self.test_seconds is None:
            return FIRST_CHUNK
        return min(MAX_CHUNK, int(QUEUE_SECONDS / max(self.test_seconds, 1e-6)))

    def _by_specificity(self) -> list[tuple[Need, deque[list[int]]]]:
        # Hardware-specific work first (the most GPUs first), so generic tests do not starve it of its workers.
        if self._ordered is None:
            self._ordered = sorted(self.queues.items(), key=lambda kv: (kv[0][:2] == ((), 0), -kv[0][1], kv[0]))
        return self._ordered


def _due(plan: RetryPlan) -> float:
    return plan.due if plan.due is not None else plan.decided
