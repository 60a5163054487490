"""The xdist scheduler: load distribution that is retry-aware and hardware-aware.

It implements xdist's ``Scheduling`` protocol and nothing more. First
attempts are work *units*: one test with ``--dist load``, one scope, file or
group with ``loadscope`` / ``loadfile`` / ``loadgroup``. Retries are single
tests with a due time and placement constraints; the controller decides
them, this module only places them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController

SUPPORTED_MODES = ("load", "loadscope", "loadfile", "loadgroup")
# How much work a worker has queued ahead: about QUEUE_SECONDS of it, judged
# from the tests' durations so far (FIRST_CHUNK before any is known), at most
# MAX_CHUNK tests. Short queues let a retry start soon; long ones spare a
# suite of fast tests a command (and a wake-up of the worker) every few tests.
QUEUE_SECONDS = 0.25
FIRST_CHUNK = 100
MAX_CHUNK = 500
REFILL_BELOW = 3  # keep at least this many queued so a worker never waits for its next item


@dataclass
class Retry:
    """A promised retry of one test, waiting for its due time and a worker."""

    nodeid: str
    index: int
    due: float
    attempt: int
    avoid: set[str] = field(default_factory=set)  # hard: never these workers
    prefer_not: set[str] = field(default_factory=set)  # soft: other workers first
    hardware: tuple[str, ...] = ()  # any of these tags; () = anything
    timeout_factor: float = 1.0


class Placement(Protocol):
    """What the scheduler asks of the controller."""

    def node_tags(self, node_id: str) -> list[str]: ...
    def requirement(self, nodeid: str) -> tuple[str, ...]: ...
    def fallback(self, nodeid: str) -> tuple[str, ...]: ...
    def group(self, nodeid: str) -> str | None: ...
    def can_flush(self, node: WorkerController) -> bool: ...
    def collected(self, nodeids: Sequence[str]) -> None: ...
    def before_retry(self, node: WorkerController, retry: Retry) -> None: ...
    def retry_unplaceable(self, retry: Retry, reason: str) -> None: ...
    def tests_unplaceable(self, nodeids: list[str], requirement: tuple[str, ...]) -> None: ...
    def spawn_worker(self, avoid: set[str], hardware: tuple[str, ...] = ()) -> bool: ...
    def starting_workers(self) -> int: ...
    def next_due(self, due: float) -> None: ...


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


def node_id(node: Any) -> str:
    return str(node.gateway.id)


class DtfScheduling:
    """xdist ``Scheduling`` with a retry queue, worker constraints and hardware routing."""

    def __init__(
        self, config: Any, numnodes: int, mode: str, placement: Placement, log: Any = None
    ) -> None:
        self.config = config  # peers (pytest-rerunfailures) read sched.config
        self.numnodes = numnodes
        self.mode = mode if mode in SUPPORTED_MODES else "load"
        self.placement = placement
        self.log = log
        self.node2collection: dict[WorkerController, list[str]] = {}
        self.node2pending: dict[WorkerController, list[int]] = {}
        self.collection: list[str] | None = None
        self.index_of: dict[str, int] = {}
        # requirement -> queue of units (lists of indices); () = runs anywhere
        self.queues: dict[tuple[str, ...], deque[list[int]]] = {}
        self.retries: list[Retry] = []
        self.sent_retries: dict[tuple[str, int], Retry] = {}
        self.quarantined: set[str] = set()
        self.unavailable: set[tuple[str, str]] = set()
        # indices whose teardown report arrived, per worker (its completion event may lag)
        self.reported: dict[WorkerController, set[int]] = {}
        self.flushed: set[WorkerController] = set()  # the last thing sent was the flush item
        # workers whose channel closed before xdist told us they went down
        self.unreachable: set[WorkerController] = set()
        self.flush_index = -1  # index of the workers' no-op item (worker.FlushItem)
        self.refill_below = REFILL_BELOW  # top a worker up when it has fewer queued
        self.test_seconds: float | None = None  # moving average of a test's duration
        self._ordered: list[tuple[tuple[str, ...], deque[list[int]]]] | None = None
        self.aborted = False  # the workers collected different tests

    # -- the protocol ------------------------------------------------------
    @property
    def nodes(self) -> list[WorkerController]:
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
        if self.collection is None or self.retries or not self.node2collection:
            return False
        for node, pending in self.node2pending.items():
            # a flushed worker runs its last test by itself; an unflushed one needs shutdown()
            if len(pending) > 1 or (pending and node in self.flushed):
                return False
        return not any(self.queues.values())

    @property
    def has_pending(self) -> bool:
        return bool(
            self.retries
            or any(self.queues.values())
            or any(self.node2pending.values())
        )

    def add_node(self, node: WorkerController) -> None:
        assert node not in self.node2pending
        self.node2pending[node] = []

    def add_node_collection(self, node: WorkerController, collection: Sequence[str]) -> None:
        self.node2collection[node] = list(collection)
        if self.collection is not None and list(collection) != self.collection:
            # A worker that collected something else would run the wrong tests.
            self._say(f"dtf: {node_id(node)} collected a different test set; it gets no work")
            self.quarantined.add(node_id(node))

    def test_reported(self, node: WorkerController, nodeid: str) -> None:
        """The last report of a test arrived from ``node`` (its completion event may lag)."""
        index = self.index_of.get(nodeid)
        if index is not None and index in self.node2pending.get(node, ()):
            done = self.reported.get(node)
            if done is None:
                done = self.reported[node] = set()
            done.add(index)

    def mark_test_complete(self, node: WorkerController, item_index: int, duration: float = 0) -> None:
        if item_index == self.flush_index:
            return
        done = self.reported.get(node)
        if done:
            done.discard(item_index)
        mean = self.test_seconds
        self.test_seconds = duration if mean is None else mean + (duration - mean) * 0.05
        pending = self.node2pending.get(node)
        if pending is not None and item_index in pending:
            pending.remove(item_index)
        if self.sent_retries:
            self.sent_retries.pop((node_id(node), item_index), None)
        # the hot path: one test done, top up this worker (the others have their own events)
        if self.retries:
            self._dispatch_retries(time.monotonic())
        if pending is not None and len(pending) < self.refill_below and self._takes_work(node):
            self._fill(node)

    def mark_test_pending(self, item: str) -> None:
        """A peer plugin (pytest-rerunfailures) asks for a test to run again."""
        index = self.index_of.get(item)
        if index is not None:
            self._queue(self.placement.requirement(item)).appendleft([index])
            self.schedule()

    def remove_pending_tests_from_node(self, node: WorkerController, indices: Sequence[int]) -> None:
        pending = self.node2pending.get(node, [])
        for index in indices:
            if index in pending:
                pending.remove(index)
            self._requeue(node, index)
        self.schedule()

    def remove_node(self, node: WorkerController) -> str | None:
        self.unreachable.discard(node)
        pending = self.node2pending.pop(node)
        self.node2collection.pop(node, None)
        # A worker can die after a test's last report but before its
        # "protocol complete" event: that test is done, not the crash item.
        done = self.reported.pop(node, set())
        while pending and pending[0] in done:
            done.discard(pending.pop(0))
        if not pending:
            return None
        assert self.collection is not None
        crashed, rest = pending[0], pending[1:]
        self.sent_retries.pop((node_id(node), crashed), None)
        for index in reversed(rest):
            self._requeue(node, index)
        return self.collection[crashed]

    def schedule(self) -> None:
        if not self.collection_is_completed or self.aborted:
            return
        if self.collection is None:
            self._start()
        self.give_up_unplaceable()
        self._dispatch_retries(time.monotonic())
        for node in self._live_nodes():
            self._fill(node)

    # -- controller-facing -------------------------------------------------
    def add_retry(self, retry: Retry) -> None:
        self.retries.append(retry)
        self.placement.next_due(retry.due)
        if not any(
            self._eligible(n, retry, strict=False) for n in self._live_nodes()
        ) and not self.placement.starting_workers():
            # Every worker is shutting down or gone: start one for this retry.
            self.placement.spawn_worker(retry.avoid | retry.prefer_not, retry.hardware)

    def cancel_retry(self, nodeid: str) -> bool:
        """Drop a waiting retry (the breaker stopped it). True if one was waiting."""
        before = len(self.retries)
        self.retries = [r for r in self.retries if r.nodeid != nodeid]
        return len(self.retries) != before

    def quarantine(self, node_name: str) -> None:
        """Stop sending work to a worker and move what it has not started."""
        self.quarantined.add(node_name)
        for node, pending in self.node2pending.items():
            if node_id(node) != node_name:
                continue
            # the first is running and the second already taken off the worker's
            # queue (as the running test's next item); the rest can be stolen
            if len(pending) > 2 and not self._command(node, node.send_steal, pending[2:]):
                continue
            self._flush(node)

    def mark_unavailable(self, node_name: str, hardware: str) -> None:
        self.unavailable.add((node_name, hardware))

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
        self.placement.collected(first)
        units: dict[tuple[tuple[str, ...], str], list[int]] = {}
        for index, nodeid in enumerate(first):
            req = self.placement.requirement(nodeid)
            group = self.placement.group(nodeid) if self.mode == "loadgroup" else None
            units.setdefault((req, scope_key(nodeid, self.mode, group)), []).append(index)
        ordered = list(units.items())
        option = getattr(self.config, "option", None)
        if self.mode != "load" and getattr(option, "loadscopereorder", True):
            ordered.sort(key=lambda kv: -len(kv[1]))  # the largest scope first, as xdist does
        for (req, _), unit in ordered:
            self._queue(req).append(unit)

    def _same_collections(self, first: list[str]) -> bool:
        """As xdist: workers that collected different tests end the run with a collection error."""
        from xdist.report import report_collection_diff

        nodes = list(self.node2collection.items())
        same = True
        for node, collection in nodes[1:]:
            msg = report_collection_diff(first, collection, node_id(nodes[0][0]), node_id(node))
            if msg:
                same = False
                self._say(msg)
                report = pytest.CollectReport(node_id(node), "failed", longrepr=msg, result=[])
                self.config.hook.pytest_collectreport(report=report)
        return same

    def _queue(self, req: tuple[str, ...]) -> deque[list[int]]:
        q = self.queues.get(req)
        if q is None:
            q = self.queues[req] = deque()
            self._ordered = None
        return q

    def _requeue(self, node: WorkerController, index: int) -> None:
        retry = self.sent_retries.pop((node_id(node), index), None)
        if retry is not None:
            retry.due = time.monotonic()
            self.retries.append(retry)
        else:
            assert self.collection is not None
            self._queue(self.placement.requirement(self.collection[index])).appendleft([index])

    def _takes_work(self, node: WorkerController) -> bool:
        return (
            not node.shutting_down
            and node not in self.unreachable
            and node_id(node) not in self.quarantined
        )

    def _live_nodes(self) -> list[WorkerController]:
        return [n for n in self.node2pending if self._takes_work(n)]

    def tags(self, node: WorkerController) -> set[str]:
        name = node_id(node)
        return {t for t in self.placement.node_tags(name) if (name, t) not in self.unavailable}

    def _fits(self, node: WorkerController, req: tuple[str, ...]) -> bool:
        return not req or bool(self.tags(node) & set(req))

    def _eligible(self, node: WorkerController, retry: Retry, strict: bool = True) -> bool:
        if node_id(node) in retry.avoid and strict:
            return False
        return self._fits(node, retry.hardware)

    def _dispatch_retries(self, now: float) -> None:
        if not self.retries:
            return
        live = self._live_nodes()
        keep: list[Retry] = []
        for retry in sorted(self.retries, key=lambda r: r.due):
            if retry.due > now + 0.005:
                keep.append(retry)
                self.placement.next_due(retry.due)
                continue
            node = self._pick(retry, live)
            died = False
            while node is not None:
                self.placement.before_retry(node, retry)
                if self._send(node, [retry.index]):
                    break
                live.remove(node)  # it died under us: another one runs the retry
                died = True
                node = self._pick(retry, live)
            if node is None:
                reason = None if died else self._why_unplaceable(retry)
                if reason is None:
                    keep.append(retry)  # a worker is starting (or will replace the dead)
                else:
                    self.placement.retry_unplaceable(retry, reason)
                continue
            self.sent_retries[(node_id(node), retry.index)] = retry
        self.retries = keep

    def _pick(self, retry: Retry, live: list[WorkerController]) -> WorkerController | None:
        fitting = [n for n in live if self._eligible(n, retry)]
        if not fitting and len(live) == 1 and not self.placement.starting_workers():
            # The only worker left is the one to avoid: better there than nowhere.
            fitting = [n for n in live if self._fits(n, retry.hardware)]
        if not fitting:
            return None
        return min(
            fitting,
            key=lambda n: (node_id(n) in retry.prefer_not, len(self.node2pending[n])),
        )

    def _why_unplaceable(self, retry: Retry) -> str | None:
        if self.placement.starting_workers():
            return None
        everyone = list(self.node2pending)
        if any(self._fits(n, retry.hardware) for n in everyone if not n.shutting_down):
            return None if self._live_nodes() else "every worker able to run it is quarantined"
        if retry.hardware and not any(self._fits(n, retry.hardware) for n in everyone):
            return f"no worker with {'/'.join(retry.hardware)} is left"
        if self.placement.spawn_worker(retry.avoid | retry.prefer_not, retry.hardware):
            return None
        return "no worker is left to run it"

    def give_up_unplaceable(self) -> None:
        """Tests whose hardware no live or starting worker has are skipped, not lost."""
        if not any(req and q for req, q in self.queues.items()) or self.placement.starting_workers():
            return
        assert self.collection is not None
        alive = [n for n in self.node2pending if not n.shutting_down]
        now = time.monotonic()
        for req, queue in self.queues.items():
            if not queue or not req:
                continue
            if not any(self._fits(n, req) for n in alive):
                lost = []
                for index in (i for unit in queue for i in unit):
                    nodeid = self.collection[index]
                    fallback = self.placement.fallback(nodeid)
                    if fallback and any(self._fits(n, fallback) for n in alive):
                        # the marker's fallback= hardware runs it, like a retry would
                        self.retries.append(Retry(nodeid, index, now, attempt=1, hardware=fallback))
                    else:
                        lost.append(nodeid)
                queue.clear()
                if lost:
                    self.placement.tests_unplaceable(lost, req)

    def _command(self, node: WorkerController, send: Any, *args: Any) -> bool:
        """Send one command; False if the worker's channel is already closed.

        A worker can die while its "down" event still waits in xdist's queue
        behind the event being handled: it gets nothing more from us, and
        xdist's own removal of it follows.
        """
        try:
            send(*args)
        except OSError:
            self.unreachable.add(node)
            return False
        return True

    def _send(self, node: WorkerController, indices: list[int]) -> bool:
        if not self._command(node, node.send_runtest_some, indices):
            return False
        self.node2pending[node].extend(indices)
        self.flushed.discard(node)
        return True

    def _flush(self, node: WorkerController) -> None:
        """Nothing follows this worker's last test for now: let it run anyway."""
        if (
            self.node2pending[node]
            and node not in self.flushed
            and self.flush_index >= 0
            and self.placement.can_flush(node)
            and self._command(node, node.send_runtest_some, [self.flush_index])
        ):
            self.flushed.add(node)

    def _fill(self, node: WorkerController) -> None:
        pending = self.node2pending[node]
        if len(pending) >= self.refill_below:
            return
        queues = [q for req, q in self._by_specificity() if q and self._fits(node, req)]
        if not queues:
            self.refill_below = REFILL_BELOW
            self._flush(node)
            return
        remaining = sum(len(q) for q in queues)
        live = max(1, len(self.node2pending) - len(self.quarantined))
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

    def _chunk(self) -> int:
        """Tests to queue ahead on a worker: about QUEUE_SECONDS of work."""
        if self.test_seconds is None:
            return FIRST_CHUNK
        return min(MAX_CHUNK, int(QUEUE_SECONDS / max(self.test_seconds, 1e-6)))

    def _by_specificity(self) -> list[tuple[tuple[str, ...], deque[list[int]]]]:
        # Hardware-specific work first, so generic tests do not starve it of its workers.
        if self._ordered is None:
            self._ordered = sorted(self.queues.items(), key=lambda kv: (not kv[0], kv[0]))
        return self._ordered
