"""Every touch of pytest-xdist's, execnet's and pytest's private or undocumented API.

One function per touch, each named after what it does for us, its docstring
naming the private thing it touches. ``tests/test_patches.py`` checks each one
against the installed xdist, execnet and pytest: a release that renames
something fails there, and this module is the one place to update.

Imports of xdist stay inside the functions: the module is imported in runs
without xdist too. One touch lives elsewhere: ``plugin._not_rewritten``
(pytest's ``AssertionRewritingHook._must_rewrite``) must run before any other
module of the package is imported; it is tested here with the rest.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, final

from _pytest.runner import runtestprotocol  # pytest's private: one test's setup/call/teardown

if TYPE_CHECKING:
    import pytest

__all__ = [
    "TEARDOWN_TIMEOUT",
    "active_nodes",
    "collection_diff",
    "drop_events",
    "dsession",
    "event_put",
    "exit_status",
    "forget_gateway",
    "gateway_group",
    "handle_worker_down",
    "install_event",
    "kill_client",
    "proxy_alive",
    "report_node",
    "restart_limit",
    "runtestprotocol",
    "send_tests",
    "should_stop",
    "shutting_down",
    "spec_count",
    "start_worker",
    "steal_tests",
    "stopping",
    "summary_report",
    "will_replace",
    "wrap_clone_node",
    "wrap_teardown_nodes",
]

DSession = Any  # xdist.dsession.DSession
WorkerNode = Any  # xdist.workermanage.WorkerController
Gateway = Any  # execnet.Gateway
Group = Any  # execnet.Group
Event = tuple[str, dict[str, Any]]  # a queue item: ("name", kwargs of DSession.worker_<name>)
CloneNode = Callable[[WorkerNode], WorkerNode]

TEARDOWN_TIMEOUT = 5.0  # the most the end of a session waits on gateways


# -- pytest ----------------------------------------------------------------------


# -- the DSession ----------------------------------------------------------------


def dsession(config: pytest.Config) -> DSession | None:
    """xdist's controller, the plugin it registers under the (undocumented) name "dsession"."""
    return config.pluginmanager.getplugin("dsession")


def install_event(ds: DSession, name: str, handler: Callable[..., object]) -> None:
    """Handle our event ``name``: ``DSession.loop_once`` calls ``ds.worker_<name>(**kwargs)``."""
    setattr(ds, f"worker_{name}", handler)


def event_put(ds: DSession) -> Callable[[Event], None]:
    """``DSession.queue.put``: an event put there wakes xdist's loop (it waits on that queue)."""
    put: Callable[[Event], None] = ds.queue.put
    return put


def wrap_clone_node(ds: DSession, around: Callable[[CloneNode, WorkerNode], WorkerNode]) -> None:
    """Wrap ``DSession._clone_node`` (private; replaces dead workers): around(original, node)."""
    original = ds._clone_node
    ds._clone_node = lambda node: around(original, node)


def start_worker(ds: DSession, template: WorkerNode) -> WorkerNode:
    """A worker from ``template``'s spec: ``DSession._clone_node`` (private; wrapped if it was)."""
    # set once xdist triggered shutdown: a worker starting after it would be shut down at once
    ds.shuttingdown = False
    return ds._clone_node(template)


def wrap_teardown_nodes(ds: DSession, around: Callable[[Callable[[], None]], None]) -> None:
    """Wrap ``DSession.nodemanager.teardown_nodes`` (ends every gateway): ``around(original)``."""
    nodemanager = ds.nodemanager
    if nodemanager is not None:
        teardown = nodemanager.teardown_nodes
        nodemanager.teardown_nodes = lambda: around(teardown)


@final
class _DropIfLost:
    """One ``DSession.worker_*`` event handler that ignores the events of lost workers."""

    __slots__ = ("is_lost", "method")

    def __init__(
        self, method: Callable[..., object], is_lost: Callable[[WorkerNode], bool]
    ) -> None:
        self.method = method
        self.is_lost = is_lost

    def __call__(self, *args: Any, **kwargs: Any) -> object:
        node = kwargs.get("node", args[0] if args else None)
        if node is not None and hasattr(node, "gateway") and self.is_lost(node):
            return None
        return self.method(*args, **kwargs)


def drop_events(ds: DSession, is_lost: Callable[[WorkerNode], bool]) -> None:
    """Wrap every ``DSession.worker_*`` event handler: drop the events of workers ``is_lost`` names.

    A late result of a lost worker can then never produce a second outcome.
    Idempotent: the first call's ``is_lost`` stays.
    """
    if isinstance(getattr(ds, "worker_errordown", None), _DropIfLost):
        return
    for name in dir(type(ds)):
        if name.startswith("worker_"):
            setattr(ds, name, _DropIfLost(getattr(ds, name), is_lost))


def handle_worker_down(ds: DSession, node: WorkerNode, error: str) -> None:
    """xdist's own ``DSession.worker_errordown`` (past drop_events): fails its test, replaces it."""
    handler = ds.worker_errordown
    original = handler.method if isinstance(handler, _DropIfLost) else handler
    original(node=node, error=error)


def active_nodes(ds: DSession) -> list[WorkerNode]:
    """``DSession._active_nodes`` (private): the workers started and not down yet, ready or not."""
    return list(ds._active_nodes)


def restart_limit(ds: DSession) -> tuple[int | None, int]:
    """``DSession._max_worker_restart``, ``_failed_nodes_count`` (private): limit, crashes yet."""
    return getattr(ds, "_max_worker_restart", None), getattr(ds, "_failed_nodes_count", 0)


def will_replace(ds: DSession) -> bool:
    """xdist replaces the worker whose death it reports (``worker_errordown``'s restart rule)."""
    limit, failed = restart_limit(ds)
    return limit is None or failed + 1 <= limit


def should_stop(ds: DSession) -> str | None:
    """``DSession.shouldstop`` (undocumented; set from runtestloop on): why the session stops."""
    stop = getattr(ds, "shouldstop", None)
    return str(stop) if stop else None


def stopping(ds: DSession) -> bool:
    """xdist ends the session: more crashes than ``--max-worker-restart``, or ``should_stop``."""
    limit, failed = restart_limit(ds)
    return (limit is not None and failed > limit) or should_stop(ds) is not None


def summary_report(ds: DSession) -> str | None:
    """``DSession._summary_report`` (private): why xdist stopped ("maximum crashed workers ...")."""
    summary = getattr(ds, "_summary_report", None)
    return str(summary) if summary else None


def report_node(report: pytest.TestReport) -> WorkerNode | None:
    """The worker behind a report on the controller: xdist's undocumented ``report.node``."""
    return report.__dict__.get("node")


# -- the gateways -----------------------------------------------------------------


def gateway_group(ds: DSession) -> Group:
    """``DSession.nodemanager.group``: the execnet group of the workers and ``--px`` proxies."""
    return ds.nodemanager.group


def proxy_alive(ds: DSession, via: str) -> bool:
    """The ``--px`` gateway ``via`` is in xdist's ``nodemanager.group`` and still receiving."""
    try:
        proxy = gateway_group(ds)[via]
    except KeyError:
        return False
    return bool(proxy.hasreceiver())


def forget_gateway(group: Group, gateway: Gateway) -> None:
    """Drop a dead gateway from its group (private ``Group._unregister``); close it aside."""
    try:
        group._unregister(gateway)
    except (KeyError, ValueError, AttributeError):
        pass
    threading.Thread(target=_quiet_exit, args=(gateway,), daemon=True).start()


def _quiet_exit(gateway: Gateway) -> None:
    kill_client(gateway)
    with contextlib.suppress(Exception):
        gateway._io.close_read()
        gateway._io.close_write()


def kill_client(gateway: Gateway, wait: bool = True) -> None:
    """Kill the local process behind a gateway (execnet's private ``_io.popen``; ssh's client).

    Waiting on a silent host, it would outlive the session. ``wait`` reaps it
    (never on the loop thread: that may take TEARDOWN_TIMEOUT).
    """
    popen = getattr(getattr(gateway, "_io", None), "popen", None)
    if popen is not None:
        with contextlib.suppress(OSError):
            popen.kill()
        if wait:
            with contextlib.suppress(Exception):
                popen.wait(timeout=TEARDOWN_TIMEOUT)


def exit_status(node: WorkerNode) -> tuple[int | None, str | None]:
    """Exit code and signal name of a dead popen worker, from execnet's private ``_io.popen``.

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


# -- the scheduler's side ------------------------------------------------------------


def spec_count(config: pytest.Config) -> int:
    """How many workers ``-n`` / ``--tx`` start (``xdist.workermanage.parse_tx_spec_config``).

    Raises pytest.UsageError when there are none.
    """
    from xdist.workermanage import parse_tx_spec_config

    return len(parse_tx_spec_config(config))


def collection_diff(
    first: Sequence[str], other: Sequence[str], first_id: str, other_id: str
) -> str | None:
    """xdist's message for two workers' different collections (``xdist.report``), None if equal."""
    from xdist.report import report_collection_diff

    message = report_collection_diff(first, other, first_id, other_id)
    return None if message is None else str(message)


def send_tests(node: WorkerNode, indices: Sequence[int]) -> None:
    """Queue tests on a worker: ``WorkerController.send_runtest_some`` (undocumented)."""
    node.send_runtest_some(indices)


def steal_tests(node: WorkerNode, indices: Sequence[int]) -> None:
    """Take back tests not started: ``WorkerController.send_steal`` (undocumented)."""
    node.send_steal(indices)


def shut_down(node: WorkerNode) -> None:
    """End a worker once its queue is done: ``WorkerController.shutdown`` (undocumented). OSError if gone."""
    node.shutdown()


def shutting_down(node: WorkerNode) -> bool:
    """The worker takes no more work: ``WorkerController.shutting_down`` (undocumented)."""
    return bool(node.shutting_down)
