"""The pytest-xdist hooks of the controller, thin: each hands its event to its owner.

GPU pinning at node set-up; the DTF link and the WorkerBook's facts at node
configuration; dtf's scheduler when retries or routing are asked for; worker
deaths turned into error records; silent workers and unreachable hosts
declared lost; and at the end of the loop, every test an outcome.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator, Sequence
from typing import Any

import pytest

from .. import marks
from .. import settings as dtf_settings
from ..engine import record as records
from ..session.attempts import Attempts
from ..session.plan import RetryPlan
from . import hosts, patches
from .link import EVENT, TICK, Links, Waker
from .patches import DSession, WorkerNode
from .scheduler import SUPPORTED_MODES, DtfScheduling, node_id

__all__ = ["XdistHooks"]


class XdistHooks:
    """Controller-side hooks that only exist when xdist runs the session."""

    def __init__(self, config: pytest.Config, attempts: Attempts, routing: bool = False) -> None:
        self.config = config
        self.attempts = attempts
        self.settings = attempts.settings
        self.book = attempts.workers
        self.routing = routing  # hardware routing was asked for: the header shows the workers' tags
        self.links = Links(self.book)
        self.sched: DtfScheduling | None = None
        self.waker: Waker | None = None
        self.nodes: dict[str, WorkerNode] = {}  # worker id -> xdist's WorkerController, in start order
        self.interrupted = False
        self._events_installed = False
        attempts.on_quarantine = self._quarantined
        attempts.on_restart = self._restart

    @property
    def dsession(self) -> DSession:
        return patches.dsession(self.config)

    def _say(self, line: str) -> None:
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        if tr is not None:
            tr.write_line(line, yellow=True)

    # -- workers start -------------------------------------------------------------
    @pytest.hookimpl
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: Sequence[Any]) -> None:
        """``--dtf-gpus-per-worker N``: each local worker gets its own GPUs.

        The slice is written into the spec's environment, so a replacement
        worker (xdist copies the spec) keeps the slot of the one it replaces.
        """
        if not self.settings.gpus_per_worker:
            return
        from .. import hardware

        hardware.pin_gpus(specs, self.settings.gpus_per_worker)

    @pytest.hookimpl
    def pytest_configure_node(self, node: WorkerNode) -> None:
        """Record the worker; open the DTF link when dtf's scheduler runs."""
        name = node_id(node)
        self.nodes[name] = node
        node.workerinput[dtf_settings.WORKERINPUT_KEY] = self.settings.for_workers()
        host = hosts.node_host(node)
        self.book.configured(name, host, (node.gateway.spec.env or {}).get("CUDA_VISIBLE_DEVICES"))
        if not self.settings.schedule:
            return  # xdist's own scheduler: no link, no heartbeats, nothing of xdist changed
        # imported only when asked: a run without dtf's scheduler pays nothing for it
        from .. import forensics

        crash = forensics.controller(self.config)
        # the worker's faulthandler file, and (remote) the files of the dead it is to send
        node.workerinput[forensics.WORKERINPUT_KEY] = crash.worker_input(name, host, forensics.local_spec(node.gateway.spec))
        ds = self.dsession
        if not self._events_installed:
            patches.install_event(ds, EVENT, self.links.on_event)
            patches.install_event(ds, TICK, self._on_tick)
            self._events_installed = True

            def received(sender: str, dead: str, text: str) -> None:  # on the loop thread
                nodeid = crash.received(dead)
                if nodeid is not None:
                    body = forensics.fault_traceback(text) if text.strip() else "wrote nothing"
                    lines = "\n".join(f"    {line}" for line in body.splitlines())
                    self.attempts.add_forensics(nodeid, dead, f"  faulthandler ({dead}, sent by {sender}):\n{lines}")

            self.links.on_forensics = received
        # xdist's own schedulers (--dist each) must not see the flush item
        why = self.links.open(node, name, patches.event_put(ds), flush=self.config.getvalue("dist") != "each")
        if why is not None:
            self._say(f"dtf: no link to {name} ({why}); it runs without heartbeats")
        self.book.add_tags(name, ["cpu"])  # the worker sends what it detects (and its hooks add)

    @pytest.hookimpl
    def pytest_testnodeready(self, node: WorkerNode) -> None:
        name = node_id(node)
        self.book.now_ready(name)
        rec = self.book.node(name)
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        # with -v, like xdist's own per-worker lines, or when hardware routing is asked for
        if tr is not None and (self.config.option.verbose > 0 or self.routing):
            gpus = f", CUDA_VISIBLE_DEVICES={rec.gpus!r}" if rec.gpus is not None else ""
            tr.write_line(f"[{name}] dtf: host {rec.host}, hardware {','.join(rec.hardware)}{gpus}")

    # -- the scheduler ---------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> DtfScheduling | None:
        dist = config.getvalue("dist")
        if not self.settings.schedule:
            return None  # not asked for retries or routing: xdist's own scheduler, unchanged
        if dist == "each":
            if self.settings.retry:
                self._say(
                    "dtf: --dist each is left to xdist: every worker runs every test, "
                    "so failures are categorized but not retried"
                )
            return None
        if dist not in SUPPORTED_MODES:
            self._say(
                f"dtf: --dist {dist} is not supported by the retry scheduler; "
                "falling back to --dist load"
            )
        ds = self.dsession
        self.waker = Waker(patches.event_put(ds))
        # the history's durations (None without one): first attempts go out longest first
        self.sched = DtfScheduling(
            config, patches.spec_count(config), dist, self.book, self, self.links, self.waker.wake_at, log,
            durations=self.attempts.known,
        )
        self.attempts.dispatcher = self.sched
        self.attempts.track_completions = True
        patches.wrap_clone_node(ds, self._guarded_clone)
        patches.wrap_teardown_nodes(ds, self._guarded_teardown)
        self.waker.start()
        return self.sched

    def _quarantined(self, node: str) -> None:
        """The session quarantined ``node``: its unstarted work moves now."""
        if self.sched is not None:
            self._say(f"dtf: quarantined {node}: {self.book.node(node).quarantine_reason}")
            self.sched.schedule()

    def _restart(self, node: str, reason: str) -> None:
        """``restart_worker`` of a live worker: it gets no more work, its queue moves, and
        once its running test is done it is replaced by a fresh process from its spec
        (same host, same GPUs). A replacement does not count against --max-worker-restart."""
        rec = self.book.node(node)
        if self.sched is None or rec.retiring or rec.lost or not rec.ready or node not in self.nodes:
            return
        self.book.retire(node, reason)
        self._say(f"dtf: restarting {node}: {reason}")
        self.sched.schedule()

    # -- the scheduler's callbacks ------------------------------------------------------
    def collected(self, nodeids: list[str]) -> None:
        self.attempts.collected(nodeids)

    def start_worker(self, plan: RetryPlan) -> bool:
        """Start a worker for a retry when every worker able to run it has been shut down."""
        ds = self.dsession
        if ds is None or patches.stopping(ds):
            return False
        avoid = plan.avoid | plan.prefer_not
        names = self.book.candidates(avoid, plan.hardware) or self.book.candidates((), plan.hardware)
        candidates = [self.nodes[n] for n in names if n in self.nodes]
        if not candidates:
            return False
        template = candidates[-1]
        try:
            patches.start_worker(ds, template)
        except Exception as exc:  # noqa: BLE001 - a host that cannot be reached
            self._say(f"dtf: could not start a worker for a retry: {exc!r}")
            return False
        self._say(f"dtf: started a worker for a retry (from {node_id(template)}'s spec)")
        return True

    def unplaceable(self, nodeids: list[str], requirement: tuple[str, ...], reason: str | None) -> None:
        if reason is not None:
            for nodeid in nodeids:
                self.attempts.retry_unplaceable(nodeid, reason)
            return
        seen = ", ".join(
            f"{name}[{','.join(rec.hardware)}]" for name, rec in sorted(self.book.nodes.items()) if name in self.nodes
        ) or "none"
        why = f"requires hardware {' or '.join(requirement)}; no worker has it (workers: {seen})"
        outcome = "failed" if self.settings.missing_hardware == "fail" else "skipped"
        for nodeid in nodeids:
            self.attempts.fail_final(nodeid, outcome, why)

    # -- lost workers and hosts ------------------------------------------------------------
    def _guarded_clone(self, original: patches.CloneNode, node: WorkerNode) -> WorkerNode | None:
        """Replacing a worker on a host that cannot be reached marks the host lost instead
        of raising INTERNALERROR or hanging on connect()."""
        self.book.replacing = 0
        spec = node.gateway.spec
        host = hosts.spec_host(spec)
        why = hosts.reachable(self.dsession, spec, min(3.0, self.settings.heartbeat_timeout))
        if why is None:
            try:
                return original(node)
            except Exception as exc:  # noqa: BLE001 - execnet raises many kinds
                why = f"{type(exc).__name__}: {exc}"
        self.book.lose_host(host, why)
        self._say(f"dtf: host {host} is lost ({why}); its work moves to the other workers")
        if self.sched is not None:
            self.sched.schedule()
        return None

    def _guarded_teardown(self, teardown: Any) -> None:
        """Tearing down the gateways of lost workers and hosts never blocks or raises."""
        group = patches.gateway_group(self.dsession)
        for name, node in self.nodes.items():
            if self.book.node(name).lost:
                patches.forget_gateway(group, node.gateway)
        for host in self.book.lost_hosts:
            for gateway in list(group):
                if hosts.spec_host(gateway.spec) == host or gateway.id == host:
                    patches.forget_gateway(group, gateway)
        done = threading.Event()

        def run() -> None:
            # a dead proxy raises: nothing is left to tear down then
            with contextlib.suppress(Exception):
                teardown()
            done.set()

        threading.Thread(target=run, name="dtf-teardown", daemon=True).start()
        done.wait(patches.TEARDOWN_TIMEOUT)

    def _on_tick(self, at: float) -> None:
        """The waker's tick, on the loop thread: silent workers, then due retries."""
        if self.sched is None:
            return
        timeout = self.settings.heartbeat_timeout
        running = {node_id(n): n for n in self.sched.nodes}
        for name, silent in self.book.silent(timeout, at):
            if name in running:
                self.declare_lost(running[name], f"no heartbeat for {silent:.1f} s (timeout {timeout:g} s)")
        if self.sched.collection is not None:
            self.sched.schedule()

    def declare_lost(self, node: WorkerNode, reason: str) -> None:
        """A silent worker: fail its running test as WORKER_DISCONNECTED and move its queue."""
        name = node_id(node)
        self.book.lose(name, reason)
        self._say(f"dtf: worker {name} is lost: {reason}")
        _stop_local(node)
        ds = self.dsession
        patches.drop_events(ds, lambda n: self.book.node(node_id(n)).lost)
        patches.handle_worker_down(ds, node, f"dtf: {reason}")

    # -- crashes -----------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        from .. import forensics

        node = patches.report_node(report)
        name = node_id(node) if node is not None else "?"
        rec = self.book.node(name)
        lost = rec.lost
        exitcode, signame = (None, None) if lost else patches.exit_status(node)
        local = node is not None and forensics.local_spec(node.gateway.spec)
        crash = forensics.controller(self.config) if self.settings.schedule else None
        oom = forensics.oom_verdict(signame, rec.peak_rss_mb, rec.memory, crash.limit() if crash and local else None)
        typename = "WorkerCrash"
        detail = ""
        timing_out, rec.timing_out = rec.timing_out, None
        if lost:
            typename, detail = records.WORKER_LOST, rec.lost_reason or ""
        elif timing_out == crashitem:
            typename, detail = "WorkerTimeout", "pytest-timeout (--timeout-method=thread) ended it"
        elif exitcode is None and node is not None and not getattr(node.gateway.spec, "popen", False):
            typename, detail = records.WORKER_LOST, "the connection to its host broke"
        elif signame in ("SIGSEGV", "SIGBUS", "SIGABRT"):
            typename = "WorkerSegfault"
        elif oom is not None:
            typename, detail = "WorkerOOMKilled", oom
        text = ""
        if crash is not None:  # the files, heartbeats and the ledger's worker facts come with dtf's scheduler
            text = forensics.describe(
                crash,
                (att for test in self.attempts.ledger for att in test.attempts),
                name,
                local=local,
                exitcode=exitcode,
                signal_name=signame,
                peak_rss_mb=rec.peak_rss_mb,
                memory=rec.memory,
                oom=oom if typename == "WorkerOOMKilled" else None,
            )
            if not local and node is not None:
                crash.await_remote(name, rec.host or hosts.node_host(node), crashitem)
        marks.set_error(report, records.crash(
            crashitem,
            name,
            typename=typename,
            exitcode=exitcode,
            signal_name=signame,
            hardware=list(rec.hardware) or None,
            detail=detail,
            forensics=text,
        ))

    @pytest.hookimpl
    def pytest_testnodedown(self, node: WorkerNode, error: object) -> None:
        """xdist calls this first when a worker ends; it replaces a dead one afterwards, if it
        may. A retired one (restart_worker) is replaced here."""
        name = node_id(node)
        self.book.down(name)
        if error is not None:
            self.book.replacing = 1 if patches.will_replace(self.dsession) else 0
        elif self.book.node(name).retiring and self.sched is not None and self.sched.has_pending:
            try:
                patches.start_worker(self.dsession, node)
            except Exception as exc:  # noqa: BLE001 - a host that cannot be reached
                self._say(f"dtf: could not replace {name}: {exc!r}")

    # -- the end of the loop ----------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        try:
            return (yield)
        except KeyboardInterrupt:
            self.interrupted = True
            raise
        except RuntimeError as exc:
            if self.sched is None or "no active workers" not in str(exc):
                raise
            # every host is lost: the tests left get outcomes below, not an INTERNALERROR
            self._say(f"dtf: {exc}")
            return True
        finally:
            if self.waker is not None:
                self.waker.stop()
            self.links.close_all()
            reason, outcome = self._end_reason()
            if self.sched is not None and self.sched.collection is not None and outcome == "error":
                self.book.replacing = 0
                self.sched.give_up_unplaceable()  # hardware nobody has any more: skipped
            self.attempts.finish_unfinished(reason, outcome)

    def _end_reason(self) -> tuple[str, str]:
        ds = self.dsession
        if self.interrupted:
            return "the session was interrupted", "skipped"
        summary = patches.summary_report(ds)
        if summary:
            return f"xdist stopped: {summary}", "error"
        stop = patches.should_stop(ds)
        if stop:
            return f"session stopped: {stop}", "skipped"
        return "the session ended before it ran", "error"


def _stop_local(node: WorkerNode) -> None:
    """The local process of a silent worker is killed (a hung or stopped popen
    worker, the ``ssh`` client of a host gone silent): its work has moved on,
    and a process left behind would outlive the session."""
    spec = node.gateway.spec
    if not (getattr(spec, "popen", False) or getattr(spec, "ssh", None)) or getattr(spec, "via", None):
        return
    patches.kill_client(node.gateway, wait=False)  # called on the loop thread
