"""Each touch of xdist's, execnet's and pytest's private API, against the installed ones.

A release of xdist, execnet or pytest that renames or changes one of them
fails here, naming what moved; ``pytest_dtf_errors/xdist/patches.py`` is the
one place to update.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import execnet
import pytest
from _pytest.assertion.rewrite import AssertionRewritingHook
from xdist.dsession import DSession
from xdist.workermanage import NodeManager, WorkerController

from pytest_dtf_errors import plugin
from pytest_dtf_errors.xdist import patches

# our plugin and the bench's retry plugins stay out: only xdist's and pytest's behaviour is tested
ISOLATED = ("-p", "no:dtf_errors", "-p", "no:pytest-retry", "-p", "no:flaky")

# the events xdist's workers send (xdist/remote.py), each handled by DSession.worker_<name>
WORKER_EVENTS = {
    "collectionfinish",
    "collectreport",
    "errordown",
    "internal_error",
    "logfinish",
    "logstart",
    "runtest_protocol_complete",
    "testreport",
    "unscheduled",
    "warning_recorded",
    "workerfinished",
    "workerready",
}


class StubSched:
    """The least of xdist's Scheduling protocol DSession's loop and worker_errordown use."""

    nodes: tuple[Any, ...] = ()
    tests_finished = False

    def remove_node(self, node: Any) -> str | None:
        return None


class Channel:
    """Records what a WorkerController sends its worker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, item: tuple[str, dict[str, Any]]) -> None:
        self.sent.append(item)


class FakeNode:
    """A worker as DSession sees one: a gateway with an id and a spec (hashable, as xdist's)."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name, spec=execnet.XSpec("popen"))


def fake_node(name: str) -> Any:
    return FakeNode(name)


def process(gateway: Any) -> Any:
    """The local process of a popen gateway (execnet's private ``_io.popen``)."""
    return gateway._io.popen


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def xdist_config(pytester: pytest.Pytester) -> pytest.Config:
    return pytester.parseconfig(
        *ISOLATED, "--tx", "2*popen", "--dist", "load", "--max-worker-restart", "1",
        "--maxfail", "1",
    )  # fmt: skip


@pytest.fixture
def ds(xdist_config: pytest.Config) -> Any:
    """A real DSession, as xdist's pytest_configure makes it, before the session starts."""
    session = DSession(xdist_config)
    session.sched = StubSched()
    session.shouldstop = False  # as its pytest_runtestloop starts
    return session


@pytest.fixture
def group() -> Iterator[execnet.Group]:
    group = execnet.Group()
    yield group
    group.terminate(timeout=2)


# -- pytest -------------------------------------------------------------------------


def test_not_rewritten_unmarks_a_package_in_pytests_rewrite_hook(
    xdist_config: pytest.Config,
) -> None:
    hook = AssertionRewritingHook(xdist_config)
    hook.mark_rewrite("dtf_patches_probe")
    assert isinstance(hook._must_rewrite, set), "AssertionRewritingHook._must_rewrite moved"
    assert "dtf_patches_probe" in hook._must_rewrite
    plugin._not_rewritten([object(), hook], "dtf_patches_probe")
    assert "dtf_patches_probe" not in hook._must_rewrite


def test_runtestprotocol_runs_each_test(pytester: pytest.Pytester) -> None:
    # in a process of its own: flaky, where installed, patches pytest's runner in this one
    pytester.makeconftest(
        """
        import pytest
        from pytest_dtf_errors.xdist import patches

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_protocol(item, nextitem):
            reports = patches.runtestprotocol(item, nextitem=nextitem, log=True)
            print("ran", item.name, [r.when for r in reports])
            return True
        """
    )
    pytester.makepyfile("def test_x(): pass\ndef test_y(): assert 0")
    result = pytester.runpytest_subprocess(*ISOLATED, "-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1, failed=1)
    assert "ran test_x ['setup', 'call', 'teardown']" in result.stdout.str()
    assert {"item", "log", "nextitem"} <= set(inspect.signature(patches.runtestprotocol).parameters)


# -- the DSession --------------------------------------------------------------------


def test_dsession_is_the_plugin_xdist_registers(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure(*ISOLATED, "--tx", "popen", "--dist", "load")
    assert isinstance(patches.dsession(config), DSession), "xdist no longer registers 'dsession'"
    assert patches.dsession(pytester.parseconfigure(*ISOLATED)) is None


def test_install_event_is_called_by_the_dsession_loop(ds: Any) -> None:
    seen: list[dict[str, Any]] = []
    patches.install_event(ds, "dtf_tick", lambda **kwargs: seen.append(kwargs))
    patches.event_put(ds)(("dtf_tick", {"due": 1.5}))
    ds._active_nodes.add(fake_node("gw0"))  # loop_once raises with no worker left
    ds.loop_once()
    assert seen == [{"due": 1.5}], "DSession.loop_once no longer dispatches to worker_<name>"


def test_wrap_clone_node_sees_xdist_replace_a_crashed_worker(ds: Any) -> None:
    cloned: list[tuple[Any, Any]] = []

    def around(original: Any, node: Any) -> None:
        cloned.append((original, node))

    patches.wrap_clone_node(ds, around)
    a, b = fake_node("gw0"), fake_node("gw1")
    ds._active_nodes.update({a, b})
    assert set(patches.active_nodes(ds)) == {a, b}
    assert patches.restart_limit(ds) == (1, 0), "_max_worker_restart / _failed_nodes_count moved"
    assert patches.will_replace(ds) and not patches.stopping(ds)

    ds.worker_errordown(a, "crashed")  # xdist's own handling: within the limit, replaced
    assert [node for _, node in cloned] == [a], "xdist no longer replaces workers by _clone_node"
    assert cloned[0][0].__func__ is DSession._clone_node
    assert patches.active_nodes(ds) == [b]
    assert patches.restart_limit(ds) == (1, 1)
    assert not patches.will_replace(ds) and not patches.stopping(ds)
    assert patches.summary_report(ds) is None

    ds.worker_errordown(b, "crashed")  # over the limit: not replaced, the session stops
    assert [node for _, node in cloned] == [a]
    assert patches.stopping(ds)
    assert patches.summary_report(ds) == "maximum crashed workers reached: 1", "_summary_report"
    assert ds.session_finished


def test_start_worker_reopens_a_session_xdist_shut_down(ds: Any) -> None:
    cloned: list[Any] = []

    def around(original: Any, node: Any) -> str:
        cloned.append(node)
        return "new"

    patches.wrap_clone_node(ds, around)
    ds.triggershutdown()  # xdist's: the last test was sent
    assert ds.session_finished
    template = fake_node("gw0")
    assert patches.start_worker(ds, template) == "new"
    assert cloned == [template]  # through the wrapper
    assert not ds.session_finished, "DSession.shuttingdown no longer ends the session"


def test_start_worker_clones_the_spec_with_xdist(ds: Any) -> None:
    made: list[Any] = []

    def setup_node(spec: execnet.XSpec, putevent: Any) -> str:
        made.append((spec, putevent))
        return "clone"

    ds.nodemanager = SimpleNamespace(group=execnet.Group(), setup_node=setup_node)
    template = SimpleNamespace(gateway=SimpleNamespace(spec=execnet.XSpec("popen//id=crashed")))
    assert patches.start_worker(ds, template) == "clone"
    ((spec, putevent),) = made
    assert spec.popen and spec.id == "gw0"  # the template's spec, a new id from the group
    assert putevent == patches.event_put(ds)
    assert "clone" in patches.active_nodes(ds)


def test_should_stop_and_report_node_from_a_failed_report(ds: Any) -> None:
    assert patches.should_stop(ds) is None
    node = fake_node("gw0")
    report = pytest.TestReport("t.py::test_x", ("t.py", 0, "test_x"), {}, "failed", None, "call")
    ds.worker_testreport(node, report)  # --maxfail 1
    assert patches.report_node(report) is node, "xdist no longer sets report.node"
    assert patches.should_stop(ds) == "stopping after 1 failures"
    assert patches.stopping(ds)


def test_restart_limit_reads_max_worker_restart(pytester: pytest.Pytester) -> None:
    default = DSession(pytester.parseconfig(*ISOLATED, "-n", "3"))
    assert patches.restart_limit(default) == (12, 0)  # 4 per worker
    unlimited = DSession(pytester.parseconfig(*ISOLATED, "--tx", "popen"))
    assert patches.restart_limit(unlimited) == (None, 0)
    assert patches.will_replace(unlimited)


def test_drop_events_wraps_every_worker_event(ds: Any) -> None:
    calls: list[tuple[str, Any]] = []
    # stand-ins for xdist's handlers, on the instance as drop_events finds them
    ds.worker_logstart = lambda node, nodeid, location: calls.append(("logstart", node))
    ds.worker_errordown = lambda node, error: calls.append(("errordown", node))
    lost, live = fake_node("gw0"), fake_node("gw1")

    patches.drop_events(ds, lambda node: node is lost)
    handlers = {n.removeprefix("worker_") for n in vars(ds) if n.startswith("worker_")}
    assert WORKER_EVENTS <= handlers, f"DSession lost event handlers: {WORKER_EVENTS - handlers}"
    ds.worker_logstart(node=lost, nodeid="t", location=("t.py", 0, "t"))
    ds.worker_logstart(lost, "t", ("t.py", 0, "t"))
    ds.worker_errordown(node=lost, error="late")
    ds.worker_logstart(node=live, nodeid="t", location=("t.py", 0, "t"))
    assert calls == [("logstart", live)]

    patches.drop_events(ds, lambda node: True)  # idempotent: the first is_lost stays
    ds.worker_logstart(live, "t", ("t.py", 0, "t"))
    assert calls == [("logstart", live)] * 2

    patches.handle_worker_down(ds, lost, "dtf: no heartbeat")
    assert calls[-1] == ("errordown", lost)


def test_drop_events_drops_queued_events_of_lost_workers(ds: Any) -> None:
    lost = fake_node("gw0")
    ds._active_nodes.add(lost)
    replaced: list[Any] = []
    patches.wrap_clone_node(ds, lambda original, node: replaced.append(node))
    patches.drop_events(ds, lambda node: node is lost)
    patches.event_put(ds)(("workerfinished", {"node": lost}))  # would raise: no workeroutput
    ds.loop_once()
    assert patches.active_nodes(ds) == [lost]
    patches.handle_worker_down(ds, lost, "dtf: lost")  # the real worker_errordown, past the filter
    assert patches.active_nodes(ds) == []
    assert replaced == [lost]
    assert patches.restart_limit(ds) == (1, 1)


def test_handle_worker_down_without_drop_events(ds: Any) -> None:
    node = fake_node("gw0")
    ds._active_nodes.add(node)
    patches.wrap_clone_node(ds, lambda original, node: None)
    patches.handle_worker_down(ds, node, "dtf: lost")
    assert patches.restart_limit(ds) == (1, 1)
    assert patches.active_nodes(ds) == []


def test_wrap_teardown_nodes_is_called_at_session_finish(
    ds: Any, xdist_config: pytest.Config
) -> None:
    patches.wrap_teardown_nodes(ds, lambda original: None)  # no nodemanager yet: nothing happens
    ds.nodemanager = NodeManager(xdist_config, specs=["popen"])
    originals: list[Any] = []

    def around(original: Any) -> None:
        originals.append(original)
        original()

    patches.wrap_teardown_nodes(ds, around)
    ds.pytest_sessionfinish()  # xdist's own end of the session
    assert [o.__func__ for o in originals] == [NodeManager.teardown_nodes], (
        "xdist no longer ends its gateways in DSession.nodemanager.teardown_nodes"
    )


def test_gateway_group_and_proxy_alive(ds: Any, xdist_config: pytest.Config) -> None:
    ds.nodemanager = NodeManager(xdist_config, specs=["popen"])
    group = patches.gateway_group(ds)
    assert isinstance(group, execnet.Group)
    try:
        proxy = group.makegateway("popen//id=px")
        assert patches.proxy_alive(ds, "px")
        assert not patches.proxy_alive(ds, "nope")
        patches.kill_client(proxy)
        assert eventually(lambda: not patches.proxy_alive(ds, "px")), "hasreceiver() stays True"
    finally:
        group.terminate(timeout=2)


# -- the gateways -----------------------------------------------------------------


def test_kill_client_and_exit_status_of_a_popen_gateway(group: execnet.Group) -> None:
    gateway = group.makegateway("popen")
    node = SimpleNamespace(gateway=gateway)
    assert process(gateway).poll() is None, "execnet's popen gateway has no _io.popen"
    patches.kill_client(gateway)
    assert patches.exit_status(node) == (-9, "SIGKILL")


def test_exit_status_of_a_worker_that_exited(group: execnet.Group) -> None:
    gateway = group.makegateway("popen")
    gateway.remote_exec("import os; os._exit(3)")
    process(gateway).wait(timeout=10)  # exit_status itself waits 2 s at most
    assert patches.exit_status(SimpleNamespace(gateway=gateway)) == (3, None)


def test_exit_status_only_of_popen_workers(group: execnet.Group) -> None:
    gateway = group.makegateway("popen")
    ssh_like = SimpleNamespace(spec=execnet.XSpec("ssh=example.org"), _io=gateway._io)
    assert patches.exit_status(SimpleNamespace(gateway=ssh_like)) == (None, None)
    assert patches.exit_status(SimpleNamespace(gateway=None)) == (None, None)
    patches.kill_client(SimpleNamespace(), wait=True)  # no process: nothing to kill
    patches.kill_client(gateway, wait=False)
    assert process(gateway).wait(timeout=10) == -9


def test_forget_gateway_unregisters_and_ends_it(group: execnet.Group) -> None:
    gateway = group.makegateway("popen")
    kept = group.makegateway("popen")
    assert callable(gateway._io.close_read) and callable(gateway._io.close_write)
    patches.forget_gateway(group, gateway)
    assert list(group) == [kept], "execnet.Group._unregister no longer removes the gateway"
    assert process(gateway).wait(timeout=10) == -9
    patches.forget_gateway(group, gateway)  # already gone: no error


# -- the scheduler's side ------------------------------------------------------------


def test_spec_count_counts_tx_specs(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig(*ISOLATED, "--tx", "3*popen", "--tx", "ssh=h")
    assert patches.spec_count(config) == 4
    with pytest.raises(pytest.UsageError):
        patches.spec_count(pytester.parseconfig(*ISOLATED))


def test_collection_diff(xdist_config: pytest.Config) -> None:
    assert patches.collection_diff(["a", "b"], ["a", "b"], "gw0", "gw1") is None
    message = patches.collection_diff(["a", "b"], ["a", "c"], "gw0", "gw1")
    assert message is not None
    assert "gw0" in message and "gw1" in message and "-b" in message and "+c" in message


def test_worker_commands(xdist_config: pytest.Config) -> None:
    nodemanager = NodeManager(xdist_config, specs=["popen"])
    gateway = SimpleNamespace(id="gw0", spec=execnet.XSpec("popen"))
    node = WorkerController(nodemanager, gateway, xdist_config, putevent=lambda event: None)
    node.channel = Channel()
    patches.send_tests(node, [1, 2])
    patches.steal_tests(node, [2])
    assert node.channel.sent == [("runtests", {"indices": [1, 2]}), ("steal", {"indices": [2]})]
    assert not patches.shutting_down(node)
    node.shutdown()
    assert patches.shutting_down(node)
