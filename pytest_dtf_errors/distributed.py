"""The xdist glue: ties the controller to xdist's DSession.

It supplies the scheduler, opens the DTF link to every worker (hardware
tags, heartbeats, attempt numbers), turns worker deaths into error records,
wakes the DSession loop when a retry is due, starts a worker when a retry
has nobody left to run it, and makes sure every test ends with an outcome.
"""

from __future__ import annotations

import contextlib
import heapq
import inspect
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Generator, Sequence
from typing import Any

import execnet
import pytest

from . import _worker_link
from . import record as records
from . import settings as dtf_settings
from .controller import Controller, RetryRequest
from .scheduling import SUPPORTED_MODES, DtfScheduling, Retry, node_id

LINK_TIMEOUT = 30.0
TEARDOWN_TIMEOUT = 5.0  # the most the end of a session waits on gateways
TICK_PERIOD = 0.5  # the loop is woken at least this often (heartbeat checks)


class Waker(threading.Thread):
    """Puts a tick event on the DSession queue when a retry is due, and periodically.

    The DSession loop only wakes on worker events or every 2 s; a retry must
    go out at most 0.1 s after its due time even when every worker is quiet.
    """

    def __init__(self, put: Any, period: float = TICK_PERIOD) -> None:
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
            self.put(("dtf_tick", {}))


def _spec_host(spec: Any) -> str:
    if getattr(spec, "socket", None):
        return str(spec.socket).rsplit(":", 1)[0]
    if getattr(spec, "ssh", None):
        return str(spec.ssh)
    if getattr(spec, "via", None):
        return f"via {spec.via}"
    return "localhost"


class XdistGlue:
    """Controller-side hooks that only exist when xdist runs the session."""

    def __init__(
        self,
        config: pytest.Config,
        controller: Controller,
        host_tags: dict[str, list[str]],
        gpus_per_worker: int = 0,
        routing: bool = False,
    ) -> None:
        self.config = config
        self.routing = routing  # hardware routing was asked for: the header shows the workers' tags
        self.gpus_per_worker = gpus_per_worker
        self.controller = controller
        self.host_tags = host_tags  # config: worker id or host -> extra tags
        self.sched: DtfScheduling | None = None
        self.waker: Waker | None = None
        self.links: dict[str, Any] = {}
        self.last_seen: dict[str, float] = {}
        self.memory: dict[str, dict[str, Any]] = {}
        self.timed_out: dict[str, str] = {}  # worker -> the test pytest-timeout's thread method ends it for
        self.tags: dict[str, list[str]] = {}
        self.nodes: dict[str, Any] = {}
        self.replacing = 0  # a crashed worker's replacement xdist is about to start
        self.interrupted = False
        self._source: str | None = None
        self.groups: dict[str, str] = {}  # nodeid -> xdist_group name (--dist loadgroup)
        self.lost: set[str] = set()
        self.originals: dict[str, Any] = {}
        controller.dispatcher = self

    @property
    def dsession(self) -> Any:
        return self.config.pluginmanager.getplugin("dsession")

    # -- GPU pinning -------------------------------------------------------------
    @pytest.hookimpl
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: Sequence[Any]) -> None:
        """``--dtf-gpus-per-worker N``: each local worker gets its own GPUs.

        The slice is written into the spec's environment, so a replacement
        worker (xdist copies the spec) keeps the slot of the one it replaces.
        """
        per_worker = int(self.gpus_per_worker or 0)
        if per_worker <= 0:
            return
        from . import hardware

        total = hardware.count_gpus()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        slot = 0
        for spec in specs:
            if not getattr(spec, "popen", False) or getattr(spec, "via", None):
                continue  # a remote host's GPUs are its own business
            if spec.env is None:
                spec.env = {}
            spec.env["CUDA_VISIBLE_DEVICES"] = hardware.gpu_slice(slot, per_worker, visible, total)
            slot += 1

    @pytest.hookimpl
    def pytest_testnodeready(self, node: Any) -> None:
        name = node_id(node)
        rec = self.controller.ledger.node(name)
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        # with -v, like xdist's own per-worker lines, or when hardware routing is asked for
        if tr is not None and (self.config.option.verbose > 0 or self.routing):
            gpus = f", CUDA_VISIBLE_DEVICES={rec.gpus!r}" if rec.gpus is not None else ""
            tr.write_line(f"[{name}] dtf: host {rec.host}, hardware {','.join(rec.hardware)}{gpus}")

    # -- scheduler -------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        from xdist.workermanage import parse_tx_spec_config

        dist = config.getvalue("dist")
        if not self.controller.settings.schedule:
            return None  # not asked for retries or routing: xdist's own scheduler, unchanged
        if dist == "each":
            if self.controller.settings.retry:
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
        self.sched = DtfScheduling(config, len(parse_tx_spec_config(config)), dist, self, log)
        ds = self.dsession
        self._guard(ds)
        self.waker = Waker(ds.queue.put)
        self.waker.start()
        return self.sched

    def _guard(self, ds: Any) -> None:
        """Wrap the few DSession entry points a lost worker or host would break.

        - events from a worker declared lost are dropped: a late result can
          never produce a second outcome;
        - replacing a worker on a host that cannot be reached marks the host
          lost instead of raising INTERNALERROR or hanging on connect();
        - tearing down gateways of lost hosts never blocks or raises.
        """
        ds.worker_dtf_tick = self._on_tick
        self.originals["_clone_node"] = ds._clone_node
        ds._clone_node = self._guarded_clone
        nodemanager = ds.nodemanager
        if nodemanager is not None:
            teardown = nodemanager.teardown_nodes
            nodemanager.teardown_nodes = lambda: self._guarded_teardown(teardown)

    def _filter_lost_events(self, ds: Any) -> None:
        """From the first lost worker on, events from lost workers are dropped."""
        if self.originals.get("worker_errordown") is not None:
            return
        for name in dir(type(ds)):
            if name.startswith("worker_"):
                original = getattr(ds, name)
                self.originals[name] = original
                setattr(ds, name, self._drop_if_lost(original))

    def _drop_if_lost(self, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            node = kwargs.get("node", args[0] if args else None)
            if node is not None and hasattr(node, "gateway") and node_id(node) in self.lost:
                return None
            return method(*args, **kwargs)

        return call

    def _reachable(self, spec: Any) -> str | None:
        """None if a new gateway for ``spec`` can be made, else why not."""
        timeout = min(3.0, self.controller.settings.heartbeat_timeout)
        if getattr(spec, "via", None):
            group = self.dsession.nodemanager.group
            try:
                proxy = group[spec.via]
            except KeyError:
                return f"proxy {spec.via} is gone"
            return None if proxy.hasreceiver() else f"proxy {spec.via} is gone"
        if getattr(spec, "socket", None):
            host, _, port = str(spec.socket).rpartition(":")
            try:
                with socket.create_connection((host, int(port)), timeout=timeout) as probe:
                    probe.sendall(b"''\n")  # the socket server evals one line; this one is a no-op
            except OSError as exc:
                return f"cannot connect to {spec.socket}: {exc.strerror or exc}"
        if getattr(spec, "ssh", None):
            # ssh has no connect timeout by default: a silent host would block the loop for minutes
            address = _ssh_address(spec, timeout)
            if address is not None:
                try:
                    socket.create_connection(address, timeout=timeout).close()
                except OSError as exc:
                    return f"cannot connect to {address[0]}:{address[1]}: {exc.strerror or exc}"
        return None

    def _guarded_clone(self, node: Any) -> Any:
        self.replacing = 0
        spec = node.gateway.spec
        host = _spec_host(spec)
        why = self._reachable(spec)
        if why is None:
            try:
                return self.originals["_clone_node"](node)
            except Exception as exc:  # noqa: BLE001 - execnet raises many kinds
                why = f"{type(exc).__name__}: {exc}"
        self.controller.ledger.lost_hosts[host] = why
        self._say(f"dtf: host {host} is lost ({why}); its work moves to the other workers")
        if self.sched is not None:
            self.sched.schedule()
        return None

    def _guarded_teardown(self, teardown: Any) -> None:
        group = self.dsession.nodemanager.group
        for name in self.lost:
            node = self.nodes.get(name)
            if node is not None:
                _forget_gateway(group, node.gateway)
        for host in self.controller.ledger.lost_hosts:
            for gateway in list(group):
                if _spec_host(gateway.spec) == host or gateway.id == host:
                    _forget_gateway(group, gateway)
        done = threading.Event()

        def run() -> None:
            # a dead proxy raises: nothing is left to tear down then
            with contextlib.suppress(Exception):
                teardown()
            done.set()

        threading.Thread(target=run, name="dtf-teardown", daemon=True).start()
        done.wait(TEARDOWN_TIMEOUT)

    # -- silent workers --------------------------------------------------------------
    def _check_heartbeats(self) -> None:
        if self.sched is None:
            return
        timeout = self.controller.settings.heartbeat_timeout
        now = time.monotonic()
        for node in list(self.sched.nodes):
            name = node_id(node)
            seen = self.last_seen.get(name)
            if seen is None or name in self.lost or now - seen <= timeout:
                continue
            self.declare_lost(node, f"no heartbeat for {now - seen:.1f} s (timeout {timeout:g} s)")

    def declare_lost(self, node: Any, reason: str) -> None:
        """A silent worker: fail its running test as WORKER_DISCONNECTED and move its queue."""
        name = node_id(node)
        self.lost.add(name)
        rec = self.controller.ledger.node(name)
        rec.lost = True
        rec.lost_reason = reason
        self._say(f"dtf: worker {name} is lost: {reason}")
        _stop_local(node)
        self._filter_lost_events(self.dsession)
        self.originals["worker_errordown"](node=node, error=f"dtf: {reason}")

    def _say(self, line: str) -> None:
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        if tr is not None:
            tr.write_line(line, yellow=True)

    def _on_tick(self) -> None:
        self._check_heartbeats()
        if self.sched is not None and self.sched.collection is not None:
            self.sched.schedule()

    # -- the link ----------------------------------------------------------------
    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        """Open the DTF link. It runs on the worker before xdist's own code, which
        must not start before it ends (execnet's main_thread_only model)."""
        name = node_id(node)
        self.nodes[name] = node
        node.workerinput[dtf_settings.WORKERINPUT_KEY] = self.controller.settings.for_workers()
        rec = self.controller.ledger.node(name)
        rec.host = _spec_host(node.gateway.spec)
        if not self.controller.settings.schedule:
            return  # xdist's own scheduler: no link, no heartbeats, nothing of xdist changed
        tags = ["cpu"]  # the worker sends what it detects (and its hooks add) at start-up
        try:
            channel = node.gateway.remote_exec(self._link_source())
            # xdist's own schedulers (--dist each) must not see the flush item
            flush = self.config.getvalue("dist") != "each"
            channel.send({"heartbeat_interval": 1.0, "flush": flush})
            channel.receive(timeout=LINK_TIMEOUT)  # hello: the link code ran
            link = channel.receive(timeout=LINK_TIMEOUT)
            link.setcallback(lambda msg, name=name: self._on_link(name, msg))
            self.links[name] = link
            self.last_seen[name] = time.monotonic()
        except (execnet.RemoteError, execnet.TimeoutError, OSError, EOFError) as exc:
            self._say(f"dtf: no link to {name} ({type(exc).__name__}); it runs without heartbeats")
        extra = self.host_tags.get(name, []) + self.host_tags.get(rec.host or "", [])
        self._set_tags(name, tags + extra)
        gpus = (node.gateway.spec.env or {}).get("CUDA_VISIBLE_DEVICES")
        if gpus is not None:
            rec.gpus = gpus

    def _link_source(self) -> str:
        if self._source is None:
            self._source = inspect.getsource(_worker_link)
        return self._source

    def _set_tags(self, name: str, tags: list[str]) -> None:
        unique = sorted(set(tags))
        self.tags[name] = unique
        self.controller.ledger.node(name).hardware = unique

    def _on_link(self, name: str, message: Any) -> None:
        """Runs in execnet's receiver thread: record, never block."""
        try:
            kind, data = message
        except (TypeError, ValueError):
            return
        self.last_seen[name] = time.monotonic()
        if kind == "hb":
            self.memory[name] = data
        elif kind == "requirements":
            self.controller.requirements.update(data)
        elif kind == "groups":
            self.groups.update(data)
        elif kind == "timeout":
            self.timed_out[name] = str(data.get("nodeid"))
        elif kind == "tags":
            self._set_tags(name, list(self.tags.get(name, [])) + list(data))

    def reported(self, nodeid: str, report: pytest.TestReport) -> None:
        """A test's teardown report arrived (the controller calls this, not a hook per report)."""
        node = report.__dict__.get("node")
        if node is not None and self.sched is not None:
            self.sched.test_reported(node, nodeid)

    # -- crashes -------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        node = getattr(report, "node", None)
        name = node_id(node) if node is not None else "?"
        lost = name in self.lost
        exitcode, signame = (None, None) if lost else _exit_status(node)
        typename = "WorkerCrash"
        detail = ""
        if lost:
            typename, detail = records.WORKER_LOST, self.controller.ledger.node(name).lost_reason or ""
        elif self.timed_out.pop(name, None) == crashitem:
            typename, detail = "WorkerTimeout", "pytest-timeout (--timeout-method=thread) ended it"
        elif exitcode is None and node is not None and not getattr(node.gateway.spec, "popen", False):
            typename, detail = records.WORKER_LOST, "the connection to its host broke"
        elif signame == "SIGSEGV" or signame == "SIGBUS" or signame == "SIGABRT":
            typename = "WorkerSegfault"
        elif signame == "SIGKILL" and self._looked_oom(name):
            typename = "WorkerOOMKilled"
        report.dtf_error = records.crash(  # type: ignore[attr-defined]
            crashitem,
            name,
            typename=typename,
            exitcode=exitcode,
            signal_name=signame,
            hardware=self.tags.get(name),
            detail=detail,
        )

    def _looked_oom(self, name: str) -> bool:
        """A SIGKILL looks like the OOM killer when memory was nearly gone at the last beat."""
        mem = self.memory.get(name) or {}
        total, avail, rss = mem.get("MemTotal"), mem.get("MemAvailable"), mem.get("rss_mb")
        if not total:
            return False
        return (avail is not None and avail < 0.05 * total) or (rss is not None and rss > 0.5 * total)

    # -- the Dispatcher protocol --------------------------------------------------
    def submit(self, request: RetryRequest) -> None:
        assert self.sched is not None
        index = self.sched.index_of[request.nodeid]
        self.sched.add_retry(
            Retry(
                nodeid=request.nodeid,
                index=index,
                due=request.due,
                attempt=request.attempt,
                avoid=set(request.avoid),
                prefer_not=set(request.prefer_not),
                hardware=request.hardware,
                timeout_factor=request.timeout_factor,
            )
        )

    def cancel(self, nodeid: str) -> bool:
        return self.sched is not None and self.sched.cancel_retry(nodeid)

    def quarantine(self, node: str) -> None:
        if self.sched is not None:
            self.sched.quarantine(node)
            self._say(f"dtf: quarantined {node}: {self.controller.ledger.node(node).quarantine_reason}")

    def mark_unavailable(self, node: str, hardware: str) -> None:
        if self.sched is not None:
            self.sched.mark_unavailable(node, hardware)

    def other_workers(self, node: str, hardware: tuple[str, ...] = ()) -> int:
        """Workers other than ``node`` that could run a retry needing ``hardware``.

        Workers already shut down at the tail of the run count: a retry starts
        a new worker from their spec.
        """
        return len(self._templates({node}, hardware))

    def _templates(self, avoid: set[str], hardware: tuple[str, ...]) -> list[Any]:
        quarantined = self.sched.quarantined if self.sched is not None else set()
        out = []
        for name, n in self.nodes.items():
            if name in avoid or name in self.lost or name in quarantined:
                continue
            if _spec_host(n.gateway.spec) in self.controller.ledger.lost_hosts:
                continue
            tags = {t for t in self.tags.get(name, []) if (name, t) not in self.controller.ledger.unavailable}
            if not hardware or tags & set(hardware):
                out.append(n)
        return out

    # -- the Placement protocol (asked by the scheduler) ---------------------------
    def node_tags(self, node_id: str) -> list[str]:
        return self.tags.get(node_id, ["cpu"])

    def requirement(self, nodeid: str) -> tuple[str, ...]:
        return self.controller.requirement(nodeid)

    def can_flush(self, node: Any) -> bool:
        """The worker has the flush item: its link is up (it added the item at start)."""
        return node_id(node) in self.links

    def group(self, nodeid: str) -> str | None:
        return self.groups.get(nodeid)

    def fallback(self, nodeid: str) -> tuple[str, ...]:
        return self.controller.fallback(nodeid)

    def collected(self, nodeids: Sequence[str]) -> None:
        self.controller.collected(list(nodeids))

    def before_retry(self, node: Any, retry: Retry) -> None:
        self.controller.retry_dispatched(retry.nodeid)
        link = self.links.get(node_id(node))
        if link is None:
            return
        meta = {
            "nodeid": retry.nodeid,
            "attempt": retry.attempt,
            "timeout_factor": retry.timeout_factor,
            "hardware": list(retry.hardware),
        }
        try:
            link.send(("attempt", meta))
        except OSError:
            pass

    def retry_unplaceable(self, retry: Retry, reason: str) -> None:
        self.controller.retry_unplaceable(retry.nodeid, reason)

    def tests_unplaceable(self, nodeids: list[str], requirement: tuple[str, ...]) -> None:
        seen = ", ".join(f"{n}[{','.join(t)}]" for n, t in sorted(self.tags.items())) or "none"
        reason = f"requires hardware {' or '.join(requirement)}; no worker has it (workers: {seen})"
        outcome = "failed" if self.controller.settings.missing_hardware == "fail" else "skipped"
        for nodeid in nodeids:
            self.controller.fail_final(nodeid, outcome, reason)

    def next_due(self, due: float) -> None:
        if self.waker is not None:
            self.waker.wake_at(due)

    def starting_workers(self) -> int:
        ds = self.dsession
        if ds is None or self.sched is None:
            return 0
        starting = len([n for n in ds._active_nodes if n not in self.sched.node2pending])
        return starting + self.replacing

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """xdist calls this first when a worker dies; it replaces it afterwards, if it may."""
        if error is None:
            return
        ds = self.dsession
        limit = getattr(ds, "_max_worker_restart", None)
        will_restart = limit is None or getattr(ds, "_failed_nodes_count", 0) + 1 <= limit
        self.replacing = 1 if will_restart else 0

    def _stopping(self) -> bool:
        ds = self.dsession
        limit = getattr(ds, "_max_worker_restart", None)
        over = limit is not None and getattr(ds, "_failed_nodes_count", 0) > limit
        return bool(over or getattr(ds, "shouldstop", False))

    def spawn_worker(self, avoid: set[str], hardware: tuple[str, ...] = ()) -> bool:
        """Start a worker for a retry when every worker able to run it has been shut down."""
        ds = self.dsession
        if ds is None or self._stopping():
            return False
        candidates = self._templates(avoid, hardware) or self._templates(set(), hardware)
        if not candidates:
            return False
        template = candidates[-1]
        ds.shuttingdown = False
        try:
            ds._clone_node(template)
        except Exception as exc:  # noqa: BLE001 - a host that cannot be reached
            self._say(f"dtf: could not start a worker for a retry: {exc!r}")
            return False
        self._say(f"dtf: started a worker for a retry (from {node_id(template)}'s spec)")
        return True

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
            self._close_links()
            reason, outcome = self._end_reason()
            if self.sched is not None and self.sched.collection is not None and outcome == "error":
                self.replacing = 0
                self.sched.give_up_unplaceable()  # hardware nobody has any more: skipped
            self.controller.finish_unfinished(reason, outcome)

    def _close_links(self) -> None:
        """Close the links before xdist tears the gateways down: nothing waits on them."""
        for link in self.links.values():
            with contextlib.suppress(Exception):  # a dead gateway
                link.close()
        self.links.clear()

    def _end_reason(self) -> tuple[str, str]:
        ds = self.dsession
        if self.interrupted:
            return "the session was interrupted", "skipped"
        summary = getattr(ds, "_summary_report", None)
        if summary:
            return f"xdist stopped: {summary}", "error"
        stop = getattr(ds, "shouldstop", None)
        if stop:
            return f"session stopped: {stop}", "skipped"
        return "the session ended before it ran", "error"


def _ssh_address(spec: Any, timeout: float) -> tuple[str, int] | None:
    """The address ``ssh`` would connect to for ``spec`` (its ssh_config applied by
    ``ssh -G``, which reads the config only); None where a proxy stands between."""
    argv = ["ssh", "-G", *(["-F", str(spec.ssh_config)] if spec.ssh_config else []), *str(spec.ssh).split()]
    try:
        out = subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode:
        return None
    options = dict(line.partition(" ")[::2] for line in out.stdout.splitlines())
    if options.get("proxycommand", "none") != "none" or options.get("proxyjump", "none") != "none":
        return None
    try:
        return options["hostname"], int(options.get("port", "22"))
    except (KeyError, ValueError):
        return None


def _forget_gateway(group: Any, gateway: Any) -> None:
    """Drop a dead gateway from execnet's group and close it in the background."""
    try:
        group._unregister(gateway)
    except (KeyError, ValueError, AttributeError):
        pass
    threading.Thread(target=_quiet_exit, args=(gateway,), daemon=True).start()


def _quiet_exit(gateway: Any) -> None:
    _kill_client(gateway)
    with contextlib.suppress(Exception):
        gateway._io.close_read()
        gateway._io.close_write()


def _kill_client(gateway: Any, wait: bool = True) -> None:
    """Kill the local process behind a lost gateway (the ``ssh`` client of an ssh
    gateway): waiting on a silent host, it would outlive the session. ``wait``
    reaps it (never on the loop thread: that may take TEARDOWN_TIMEOUT)."""
    popen = getattr(getattr(gateway, "_io", None), "popen", None)
    if popen is not None:
        with contextlib.suppress(OSError):
            popen.kill()
        if wait:
            with contextlib.suppress(Exception):
                popen.wait(timeout=TEARDOWN_TIMEOUT)


def _stop_local(node: Any) -> None:
    """The local process of a silent worker is killed (a hung or stopped popen
    worker, the ``ssh`` client of a host gone silent): its work has moved on,
    and a process left behind would outlive the session."""
    spec = node.gateway.spec
    if not (getattr(spec, "popen", False) or getattr(spec, "ssh", None)) or getattr(spec, "via", None):
        return
    _kill_client(node.gateway, wait=False)  # called on the loop thread


def _exit_status(node: Any) -> tuple[int | None, str | None]:
    """Exit code and signal of a dead popen worker, where execnet shows them.

    Only a popen worker's: an ssh gateway's process is the ssh client, whose
    status (255) says the connection broke, not how the worker ended.
    """
    gateway = getattr(node, "gateway", None)
    if not getattr(getattr(gateway, "spec", None), "popen", False):
        return None, None
    popen = getattr(getattr(gateway, "_io", None), "popen", None)
    if popen is None:
        return None, None
    try:
        code = popen.wait(timeout=2)
    except Exception:  # noqa: BLE001
        return None, None
    if code is not None and code < 0:
        try:
            return code, signal.Signals(-code).name
        except ValueError:
            return code, f"signal {-code}"
    return code, None

