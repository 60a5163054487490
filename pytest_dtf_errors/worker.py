"""Worker side: turns a failing phase into an error record on its report.

Runs in every xdist worker and, without xdist, in the one pytest process.
It also answers the two things only the worker knows: which hardware a test
asks for (sent to the controller once, after collection) and which attempt
of a test is running (told by the controller over the DTF link).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator
from typing import Any

import pytest

# engine.record (and hardware) are imported on first need: a worker of a run that
# did not ask for dtf pays no start-up for them (under PYTHONDONTWRITEBYTECODE pytest
# rewrites and compiles every imported module of a plugin in every process)

# Attempt metadata for in-process runs; xdist workers get theirs over the link.
LOCAL_ATTEMPTS: dict[str, dict[str, Any]] = {}


class HardwareMismatchError(Exception):
    """A test ran on a worker that lacks the hardware its marker asks for."""


def attempt_meta(nodeid: str) -> dict[str, Any]:
    link = sys.modules.get("_dtf_link")
    if link is not None:
        meta = link.attempts.get(nodeid)
        if meta:
            return meta
    return LOCAL_ATTEMPTS.get(nodeid, {})


def hardware_requirement(item: pytest.Item) -> dict[str, Any] | None:
    """The ``@pytest.mark.hardware(...)`` of an item, or None.

    ``hardware("cuda", "rocm")`` means any of them; ``fallback=`` names what a
    retry may use when no worker with the hardware is left.
    """
    marker = item.get_closest_marker("hardware")
    if marker is None:
        return None
    wanted = [str(a).lower() for a in marker.args]
    fallback = marker.kwargs.get("fallback") or ()
    if isinstance(fallback, str):
        fallback = (fallback,)
    return {"any": wanted, "fallback": [str(f).lower() for f in fallback]}


def xdist_groups(items: list[pytest.Item]) -> dict[str, str]:
    """``@pytest.mark.xdist_group`` names, as xdist's loadgroup reads them.

    xdist appends them to the nodeid on the worker; with pytest 9.2 that
    suffix no longer reaches the controller, so they are sent over the link.
    """
    groups = {}
    for item in items:
        names = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
        if names:
            groups[item.nodeid] = "_".join(sorted(names))
    return groups


class WorkerPlugin:
    """Hooks that run where the tests run."""

    def __init__(
        self,
        config: pytest.Config,
        worker_id: str,
        detect_tags: Callable[[], list[str]],
        missing: str | None = None,
        announce: bool = True,
    ) -> None:
        self.config = config
        self.missing = missing  # "skip" or "fail" a test whose hardware is absent; None: a retry moves it
        self.worker_id = worker_id
        self._detect_tags = detect_tags
        self._tags: list[str] | None = None
        self.rootdir = str(config.rootpath)
        if announce:
            self._send(("tags", self.tags))  # before "workerready": the header shows them

    @property
    def tags(self) -> list[str]:
        """This worker's hardware tags, detected on first use."""
        if self._tags is None:
            self._tags = self._detect_tags()
        return self._tags

    @staticmethod
    def _send(message: tuple[str, Any]) -> bool:
        link = sys.modules.get("_dtf_link")
        if link is None:
            return False
        try:
            link.channel.send(message)
        except Exception:  # noqa: BLE001 - without the link tests still run
            return False
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        reqs = {}
        for item in session.items:
            # "in keywords" is a cheap pre-check (it also matches a node named "hardware")
            req = hardware_requirement(item) if "hardware" in item.keywords else None
            if req is not None:
                reqs[item.nodeid] = req
        if reqs:  # a suite without hardware markers pays nothing per test
            guard = HardwareGuard(self.worker_id, self.tags, reqs, self.missing)
            self.config.pluginmanager.register(guard, "dtf_hardware_guard")
        self._send(("requirements", reqs))
        if getattr(self.config.option, "loadgroup", False):
            self._send(("groups", xdist_groups(session.items)))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not report.failed:
            return report
        if item.get_closest_marker("flaky") is not None:
            report.dtf_peer_marked = True  # type: ignore[attr-defined]
        if call.excinfo is not None:
            from .engine.record import from_exception, to_wire

            report.dtf_error = to_wire(from_exception(  # type: ignore[attr-defined]
                call.excinfo.value,
                phase=call.when,
                worker=self.worker_id,
                hardware=self.tags,
                stderr=report.capstderr,
                rootdir=self.rootdir,
            ))
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: Any) -> None:
        # before xdist's worker sends str(message), which execnet refuses with a lone surrogate
        if not hasattr(self.config, "workerinput"):
            return
        try:
            text = str(warning_message.message)
        except Exception:  # noqa: BLE001 - a hostile __str__: xdist's problem as before
            return
        from .engine.record import _encodable, _encodes

        if not _encodes(text):
            warning_message.message = _encodable(text)  # xdist sends a plain str as it is
        if not _encodes(warning_message.filename):
            warning_message.filename = _encodable(warning_message.filename)

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(
        self, report: pytest.CollectReport | pytest.TestReport
    ) -> Generator[None, dict[str, Any] | None, dict[str, Any] | None]:
        data = yield
        if data is None:
            return data
        # a passing report carries the test's text only in its sections and properties
        passed = report.passed and not getattr(report, "user_properties", None)
        if passed and all(type(text) is not str or text.isascii() for _name, text in report.sections):
            return data  # ASCII encodes: most passing reports never import engine.record
        from .engine.record import _encodes, wire_safe

        if passed and all(_encodes(text) for _name, text in report.sections):
            return data
        return wire_safe(data)


class HardwareGuard:
    """Stops a test that landed on a worker without its hardware.

    Registered only when a collected test has a hardware marker.
    """

    def __init__(
        self, worker_id: str, tags: list[str], requirements: dict[str, dict[str, Any]], missing: str | None
    ) -> None:
        self.worker_id = worker_id
        self.tags = set(tags)
        self.requirements = requirements
        self.missing = missing  # in-process: "skip" or "fail" a test whose hardware is absent

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        req = self.requirements.get(item.nodeid)
        if req is None or set(req["any"]) & self.tags:
            return
        allowed = attempt_meta(item.nodeid).get("hardware") or ()
        if allowed and set(allowed) & self.tags:
            return  # a retry sent on fallback hardware
        have = ", ".join(sorted(self.tags))
        if self.missing is not None:
            reason = f"requires hardware {' or '.join(req['any'])}; this machine has {have}"
            if self.missing == "fail":
                pytest.fail(reason, pytrace=False)
            raise pytest.skip.Exception(reason, _use_item_location=True)
        raise HardwareMismatchError(
            f"test needs {'/'.join(req['any'])} but worker {self.worker_id} has {have or 'nothing'}"
        )


class TimeoutScaler:
    """Gives a retry more time under pytest-timeout (registered only with it).

    pytest-timeout calls this hook only for a test it times: without a
    timeout, tests pay nothing for it. On an xdist worker under
    ``--timeout-method=thread`` it also sets the timer itself, so that the
    controller hears "timeout" over the DTF link before pytest-timeout ends
    the worker with ``os._exit(1)``: the dead worker is a WORKER_TIMEOUT,
    not a crash.
    """

    def __init__(self) -> None:
        self._scaling = False

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> object:
        if self._scaling:
            return None  # the call below, with the scaled settings
        replace = getattr(settings, "_replace", None)
        if replace is None or not settings.timeout:
            return None
        factor = float(attempt_meta(item.nodeid).get("timeout_factor") or 1.0)
        if factor > 1.0:
            settings = replace(timeout=settings.timeout * factor)
        link = sys.modules.get("_dtf_link")
        if link is not None and settings.method == "thread":
            return _thread_timer(item, settings, link.channel)
        if factor <= 1.0:
            return None
        self._scaling = True
        try:
            return item.config.hook.pytest_timeout_set_timer(item=item, settings=settings)
        finally:
            self._scaling = False


def _thread_timer(item: pytest.Item, settings: Any, channel: Any) -> bool:
    """pytest-timeout's thread timer, telling the controller before it kills the worker."""
    import contextlib
    import threading

    import pytest_timeout

    def expire() -> None:
        if settings.disable_debugger_detection or not pytest_timeout.is_debugging():
            # written to the pipe before os._exit: the controller reads it first;
            # without the link it is a plain crash
            with contextlib.suppress(Exception):
                channel.send(("timeout", {"nodeid": item.nodeid, "timeout": settings.timeout}))
        pytest_timeout.timeout_timer(item, settings)  # dumps the stacks, os._exit(1)

    timer = threading.Timer(settings.timeout, expire)
    timer.name = f"pytest_timeout {item.nodeid}"

    def cancel() -> None:
        timer.cancel()
        timer.join()

    item.cancel_timeout = cancel  # type: ignore[attr-defined] # what pytest-timeout's cancel hook calls
    timer.start()
    return True


class FlushItem(pytest.Item):
    """A no-op item appended to a worker's items, after its collection was reported.

    An xdist worker runs a test only once it knows the next one. When the
    controller has nothing to follow a worker's last test (the tail of a run,
    a retry waiting out its delay), it sends this item's index: the held test
    runs with this as its next item (module and class fixtures are torn down,
    session ones kept) and the worker goes on waiting for work, instead of
    holding the test until shutdown.
    """

    def runtest(self) -> None:  # never called: FlushPlugin takes the protocol
        pass


class FlushPlugin:
    """Worker-only: provides the flush item and runs it as a no-op."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        link = sys.modules.get("_dtf_link")
        if link is not None and link.params.get("flush"):  # only our scheduler sends it
            session.items.append(FlushItem.from_parent(session, name="dtf-flush"))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        return True if isinstance(item, FlushItem) else None

