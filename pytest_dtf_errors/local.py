"""In-process retries and repeats, for runs without xdist (no ``-n``, or ``-p no:xdist``).

The same session decides (``session.attempts``); retries run in this process. A retry without a
delay runs at once, and so do a repeated test's runs (``--dtf-repeat``, a new test's extra runs),
one after another; one with a delay runs after the other tests instead of
sleeping, and only sleeps what is left of its delay when nothing else is left.
A retry goes through pytest's own ``pytest_runtest_protocol`` call, so every
plugin that wraps a test's protocol (pytest-timeout's timer, faulthandler)
wraps each attempt.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Generator

import pytest

from .session.attempts import Attempts
from .session.plan import RetryPlan
from .worker import ATTEMPTS
from .xdist.patches import runtestprotocol


class LocalRunner:
    """The dispatcher of a single-process session: the one worker is "local"."""

    def __init__(self, attempts: Attempts) -> None:
        self.attempts = attempts
        attempts.dispatcher = self
        self.items: dict[str, pytest.Item] = {}
        self.now: list[RetryPlan] = []
        self.later: list[tuple[float, int, RetryPlan]] = []
        self._seq = itertools.count()
        self._retrying = False  # a retry is in pytest's protocol call: pytest runs it

    # -- the Dispatcher protocol ----------------------------------------------
    def add_retry(self, plan: RetryPlan) -> None:
        due = plan.due if plan.due is not None else plan.decided
        if due <= time.monotonic():
            self.now.append(plan)
        else:
            heapq.heappush(self.later, (due, next(self._seq), plan))

    def cancel_retry(self, nodeid: str) -> bool:
        before = len(self.now) + len(self.later)
        self.now = [r for r in self.now if r.nodeid != nodeid]
        self.later = [e for e in self.later if e[2].nodeid != nodeid]
        heapq.heapify(self.later)
        return len(self.now) + len(self.later) != before

    # -- hooks -------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.attempts.collected(item.nodeid for item in session.items)
        if self.attempts.repeats.active:  # a run after the loop (a peer's test) finds its item
            self.items.update((item.nodeid, item) for item in session.items)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        if self._retrying:
            return None
        settings = self.attempts.settings
        if not (settings.retry or self.attempts.repeats.active) or settings.peer:
            return None  # nothing to retry or repeat here: pytest (or the peer plugin) runs it
        if settings.peer_installed and item.get_closest_marker("flaky") is not None:
            return None  # @pytest.mark.flaky belongs to its plugin
        self.items[item.nodeid] = item
        self._run(item, nextitem, attempt=1)
        session = item.session
        while self.now and not (session.shouldfail or session.shouldstop):  # -x stops the runs too
            self._retry(self.now.pop(0), nextitem)
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        reason, outcome = "the session ended before it ran", "error"
        try:
            result = yield
            self._run_delayed(session)
            return result
        except KeyboardInterrupt:
            reason, outcome = "the session was interrupted", "skipped"
            raise
        finally:
            stop = session.shouldfail or session.shouldstop
            if stop:
                reason, outcome = f"session stopped: {stop}", "skipped"
            # pytest stops at a collection error before any test ran, and reports none of them
            collection_stop = bool(session.testsfailed) and not session.config.option.continue_on_collection_errors
            if collection_stop and not self.items:
                reason = "a collection error stopped the session"
            self.attempts.finish_unfinished(reason, outcome, emit=not (collection_stop and not self.items))

    def _run_delayed(self, session: pytest.Session) -> None:
        while (self.now or self.later) and not (session.shouldfail or session.shouldstop):
            if self.now:
                plan = self.now.pop(0)
            else:
                due, _, plan = heapq.heappop(self.later)
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # nothing else is left to run meanwhile
            self._retry(plan, None)

    def _retry(self, plan: RetryPlan, nextitem: pytest.Item | None) -> None:
        plan.dispatched = time.monotonic()
        self._run(self.items[plan.nodeid], nextitem, plan.next_attempt, plan.timeout_factor)

    def _run(
        self, item: pytest.Item, nextitem: pytest.Item | None, attempt: int, factor: float = 1.0
    ) -> None:
        # the shape the link gives a worker (xdist/messages.AttemptMeta)
        item.config.stash[ATTEMPTS][item.nodeid] = {
            "nodeid": item.nodeid, "attempt": attempt, "timeout_factor": factor, "hardware": [],
        }
        if attempt == 1:  # inside pytest's protocol call for the item
            item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            runtestprotocol(item, nextitem=nextitem, log=True)
            item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            return
        hook = item.config.hook
        if item.config.pluginmanager.hasplugin("timeout"):
            # the first attempt's timer may still run around an immediate retry
            hook.pytest_timeout_cancel_timer(item=item)
        self._retrying = True
        try:
            hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        finally:
            self._retrying = False
