"""The DTF link: a second execnet channel to every worker, beside xdist's own.

It carries the workers' hardware tags, test requirements, xdist groups,
heartbeats (their RSS makes the worker's peak), a predecessor's faulthandler file
and pytest-timeout's last word to the controller, and each retry's
attempt number to the worker. As in xdist's ``workermanage``, execnet's
receiver thread only puts an event on the DSession queue; ``on_event`` then
writes the facts into the WorkerBook on the loop thread.
"""

from __future__ import annotations

import contextlib
import heapq
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import execnet

from .. import _worker_link
from ..session.plan import RetryPlan
from ..session.workers import WorkerBook
from . import messages
from .patches import Event, WorkerNode

__all__ = ["EVENT", "LINK_TIMEOUT", "TICK", "Links", "Waker"]

LINK_TIMEOUT = 30.0
HEARTBEAT_INTERVAL = 1.0
EVENT = "dtf_link"  # DSession.worker_dtf_link(worker, message, received)
TICK = "dtf_tick"  # DSession.worker_dtf_tick(at)
TICK_PERIOD = 0.5  # the loop is woken at least this often (heartbeat checks)


class Waker(threading.Thread):
    """Puts a tick event on the DSession queue when a retry is due, and periodically.

    The DSession loop only wakes on worker events or every 2 s; a retry must
    go out at most 0.1 s after its due time even when every worker is quiet.
    """

    def __init__(self, put: Callable[[Event], None], period: float = TICK_PERIOD) -> None:
        super().__init__(name="dtf-waker", daemon=True)
        self.put = put
        self.period = period
        self.cond = threading.Condition()
        self.due: list[float] = []
        self.stopped = False

    def wake_at(self, when: float) -> None:
        with self.cond:
            heapq.heappush(self.due, when)
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()

    def run(self) -> None:
        last = time.monotonic()
        while True:
            with self.cond:
                if self.stopped:
                    return
                now = time.monotonic()
                nxt = min(self.due[0] if self.due else now + self.period, last + self.period)
                if nxt > now:
                    self.cond.wait(nxt - now)
                    continue
                while self.due and self.due[0] <= now:
                    heapq.heappop(self.due)
            last = time.monotonic()
            self.put((TICK, {"at": last}))


class Links:
    """The link of every worker, by worker id."""

    def __init__(self, book: WorkerBook) -> None:
        self.book = book
        self.channels: dict[str, Any] = {}  # worker id -> execnet channel
        self._source: str | None = None
        # (sender, dead worker, text): a replacement sent its predecessor's faulthandler file
        self.on_forensics: Callable[[str, str, str], None] | None = None

    def open(self, node: WorkerNode, name: str, put: Callable[[Event], None], flush: bool) -> str | None:
        """Open the link to ``node``; None, or why it could not be opened.

        It runs on the worker before xdist's own code, which must not start
        before it ends (execnet's main_thread_only model).
        """
        try:
            channel = node.gateway.remote_exec(self._link_source())
            channel.send(messages.params_to_wire(HEARTBEAT_INTERVAL, flush))
            channel.receive(timeout=LINK_TIMEOUT)  # hello: the link code ran
            link = channel.receive(timeout=LINK_TIMEOUT)

            def received(message: object, name: str = name) -> None:  # execnet's receiver thread
                put((EVENT, {"worker": name, "message": message, "received": time.monotonic()}))

            link.setcallback(received)
        except (execnet.RemoteError, execnet.TimeoutError, OSError, EOFError) as exc:
            return type(exc).__name__
        self.channels[name] = link
        rec = self.book.node(name)
        rec.linked = True
        rec.last_seen = time.monotonic()
        return None

    def _link_source(self) -> str:
        if self._source is None:
            self._source = inspect.getsource(_worker_link)
        return self._source

    def on_event(self, worker: str, message: object, received: float) -> None:
        """A link message from ``worker``, on the loop thread."""
        rec = self.book.node(worker)
        rec.last_seen = received
        parsed = messages.from_wire(message)
        if parsed is None:
            return
        if parsed[0] == "hb":
            rec.memory = parsed[1]
            rss = parsed[1].get("rss_mb")
            if rss is not None and (rec.peak_rss_mb is None or rss > rec.peak_rss_mb):
                rec.peak_rss_mb = rss
        elif parsed[0] == "tags":
            self.book.add_tags(worker, parsed[1])
        elif parsed[0] == "requirements":
            self.book.requirements.update(parsed[1])
        elif parsed[0] == "groups":
            self.book.groups.update(parsed[1])
        elif parsed[0] == "timeout":
            rec.timing_out = parsed[1]["nodeid"]
        elif parsed[0] == "gpus":
            rec.gpu_count = parsed[1]
        elif parsed[0] == "forensics" and self.on_forensics is not None:
            self.on_forensics(worker, parsed[1]["worker"], parsed[1]["text"])

    def send_attempt(self, name: str, plan: RetryPlan) -> None:
        """Tell the worker which attempt of ``plan.nodeid`` it is about to run."""
        link = self.channels.get(name)
        if link is None:
            return
        with contextlib.suppress(OSError):
            link.send(messages.attempt_to_wire(plan.nodeid, plan.next_attempt, plan.timeout_factor, plan.hardware))

    def close_all(self) -> None:
        """Close the links before xdist tears the gateways down: nothing waits on them."""
        for link in self.channels.values():
            with contextlib.suppress(Exception):  # a dead gateway
                link.close()
        self.channels.clear()
