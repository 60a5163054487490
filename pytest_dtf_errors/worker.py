"""Worker side: turns a failing phase into an error record on its report.

Runs in every xdist worker and, without xdist, in the one pytest process.
It also answers the two things only the worker knows: which hardware a test
asks for (sent to the controller once, after collection) and which attempt
of a test is running (told by the controller over the DTF link).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

from . import marks

if TYPE_CHECKING:
    from .session.workers import Requirement
    from .xdist.messages import AttemptMeta

# engine.record (and hardware) are imported on first need: a worker of a run that
# did not ask for dtf pays no start-up for them (under PYTHONDONTWRITEBYTECODE pytest
# rewrites and compiles every imported module of a plugin in every process)

# The DTF link's state on an xdist worker (None without a link): its channel, its
# parameters and the attempts the controller announced
LINK: pytest.StashKey[Any] = pytest.StashKey()
# nodeid -> {"attempt", "timeout_factor", ...}: the link's on a worker, the in-process runner's locally
ATTEMPTS: pytest.StashKey[dict[str, dict[str, Any]]] = pytest.StashKey()


def install(config: pytest.Config) -> None:
    """Put the worker's state on ``config.stash``. The link code runs (remote_exec) before
    pytest starts on the worker and can only publish itself as a module: read it once, here."""
    link = sys.modules.get("_dtf_link")
    config.stash[LINK] = link
    config.stash[ATTEMPTS] = link.attempts if link is not None else {}


def attempt_meta(config: pytest.Config, nodeid: str) -> AttemptMeta | dict[str, Any]:
    """The controller's word on the attempt of ``nodeid`` running here; {} for a first attempt."""
    data = config.stash.get(ATTEMPTS, {}).get(nodeid)
    if not data:
        return {}
    from .xdist.messages import attempt_from_wire

    return attempt_from_wire(data) or {}


def _link(config: pytest.Config) -> Any:
    return config.stash.get(LINK, None)


class HardwareMismatchError(Exception):
    """A test ran on a worker that lacks the hardware its marker asks for."""


MAX_GPUS = 1024  # the most GPUs hardware(gpus=N) may ask for


def hardware_requirement(item: pytest.Item) -> Requirement | None:
    """The ``@pytest.mark.hardware(...)`` of an item, or None.

    ``hardware("cuda", "rocm")`` means any of them; ``fallback=`` names what a
    retry may use when no worker with the hardware is left; ``gpus=N`` asks for
    a worker that holds at least N GPUs; ``exclusive=True`` for no other test
    on its host while it runs. A bad ``gpus=`` or ``exclusive=`` is left out
    here and fails the test (:func:`marker_problem`).
    """
    marker = item.get_closest_marker("hardware")
    if marker is None:
        return None
    wanted = [str(a).lower() for a in marker.args]
    fallback = marker.kwargs.get("fallback") or ()
    if isinstance(fallback, str):
        fallback = (fallback,)
    req: Requirement = {"any": wanted, "fallback": [str(f).lower() for f in fallback]}
    gpus = marker.kwargs.get("gpus")
    if _whole(gpus) and gpus:
        req["gpus"] = gpus
    if marker.kwargs.get("exclusive") is True:
        req["exclusive"] = True
    return req


def marker_problem(item: pytest.Item) -> str | None:
    """What is wrong with an item's ``hardware(gpus=, exclusive=)``, or None."""
    marker = item.get_closest_marker("hardware")
    if marker is None:
        return None
    gpus = marker.kwargs.get("gpus")
    if gpus is not None and not _whole(gpus):
        return f"hardware(gpus=...) must be a whole number of GPUs from 0 to {MAX_GPUS}, got {gpus!r}"
    exclusive = marker.kwargs.get("exclusive")
    if exclusive is not None and not isinstance(exclusive, bool):
        return f"hardware(exclusive=...) must be True or False, got {exclusive!r}"
    return None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_GPUS


def _gpu_count() -> int:
    """The GPUs this process can use (CUDA_VISIBLE_DEVICES applied), detected without torch."""
    from .hardware import detect_hardware

    return int(detect_hardware().get("gpu_count") or 0)


def _describe(req: Requirement) -> str:
    """``cuda or rocm with 2 GPUs``: what a requirement asks of a worker."""
    tags = " or ".join(req["any"])
    gpus = req.get("gpus", 0)
    count = f"{gpus} GPU{'s' if gpus != 1 else ''}" if gpus else ""
    return f"{tags} with {count}" if tags and count else tags or count


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
        if announce and _link(config) is not None:
            from .xdist import messages

            self._send(messages.tags_to_wire(self.tags))  # before "workerready": the header shows them

    @property
    def tags(self) -> list[str]:
        """This worker's hardware tags, detected on first use."""
        if self._tags is None:
            self._tags = self._detect_tags()
        return self._tags

    def _send(self, message: tuple[str, Any]) -> bool:
        link = _link(self.config)
        if link is None:
            return False
        try:
            link.channel.send(message)
        except Exception:  # noqa: BLE001 - without the link tests still run
            return False
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        reqs: dict[str, Requirement] = {}
        problems: dict[str, str] = {}
        for item in session.items:
            # "in keywords" is a cheap pre-check (it also matches a node named "hardware")
            req = hardware_requirement(item) if "hardware" in item.keywords else None
            if req is not None:
                reqs[item.nodeid] = req
                problem = marker_problem(item)
                if problem is not None:
                    problems[item.nodeid] = problem
        # counted only when a test asks for GPUs: other runs pay no second detection
        gpus = _gpu_count() if any("gpus" in req for req in reqs.values()) else None
        if reqs:  # a suite without hardware markers pays nothing per test
            guard = HardwareGuard(self.worker_id, self.tags, reqs, self.missing, gpus or 0, problems)
            self.config.pluginmanager.register(guard, "dtf_hardware_guard")
        if _link(self.config) is None:
            return
        from .xdist import messages

        if gpus is not None:
            self._send(messages.gpus_to_wire(gpus))  # before the requirements that need it
        self._send(messages.requirements_to_wire(reqs))
        if getattr(self.config.option, "loadgroup", False):
            self._send(messages.groups_to_wire(xdist_groups(session.items)))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not report.failed:
            return report
        if item.get_closest_marker("flaky") is not None:
            marks.mark(report, "dtf_peer_marked")
        if call.excinfo is not None:
            from .engine.record import from_exception, to_wire

            marks.set_error(report, to_wire(from_exception(
                call.excinfo.value,
                phase=call.when,
                worker=self.worker_id,
                hardware=self.tags,
                stderr=report.capstderr,
                rootdir=self.rootdir,
            )))
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
    """Stops a test that landed on a worker without its hardware or enough GPUs.

    Registered only when a collected test has a hardware marker.
    """

    def __init__(
        self,
        worker_id: str,
        tags: list[str],
        requirements: dict[str, Requirement],
        missing: str | None,
        gpus: int = 0,
        problems: dict[str, str] | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.tags = set(tags)
        self.requirements = requirements
        self.missing = missing  # in-process: "skip" or "fail" a test whose hardware is absent
        self.gpus = gpus  # GPUs this process can use (counted only when a test asks for some)
        self.problems = problems or {}  # nodeid -> what is wrong with its marker

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        req = self.requirements.get(item.nodeid)
        if req is None:
            return
        problem = self.problems.get(item.nodeid)
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        if req.get("exclusive") and self.missing is not None and self.worker_id != "local":
            self._warn_not_alone(item)
        wanted = req.get("gpus", 0)
        if (not req["any"] or set(req["any"]) & self.tags) and self.gpus >= wanted:
            return
        allowed = attempt_meta(item.config, item.nodeid).get("hardware") or ()
        if allowed and set(allowed) & self.tags:
            return  # a retry (or a first attempt) sent on fallback hardware
        have = ", ".join(sorted(self.tags))
        if wanted:
            have += f" and {self.gpus} GPU{'s' if self.gpus != 1 else ''}"
        if self.missing is not None:
            reason = f"requires hardware {_describe(req)}; this machine has {have}"
            if self.missing == "fail":
                pytest.fail(reason, pytrace=False)
            raise pytest.skip.Exception(reason, _use_item_location=True)
        raise HardwareMismatchError(
            f"test needs {_describe(req).replace(' or ', '/')} but worker {self.worker_id} has {have or 'nothing'}"
        )

    @staticmethod
    def _warn_not_alone(item: pytest.Item) -> None:
        """xdist's own scheduler runs the session: nothing keeps other tests off this host."""
        workerinput = getattr(item.config, "workerinput", {})
        if int(workerinput.get("workercount") or 1) > 1:
            import warnings

            warnings.warn(pytest.PytestWarning(
                "hardware(exclusive=True) is kept only by dtf's scheduler (--dtf-retry or hardware "
                "routing, docs/hardware.md); under xdist's own scheduler this test ran beside others"
            ), stacklevel=1)


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
        factor = float(attempt_meta(item.config, item.nodeid).get("timeout_factor") or 1.0)
        if factor > 1.0:
            settings = replace(timeout=settings.timeout * factor)
        link = _link(item.config)
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

    from .xdist import messages

    def expire() -> None:
        if settings.disable_debugger_detection or not pytest_timeout.is_debugging():
            # written to the pipe before os._exit: the controller reads it first;
            # without the link it is a plain crash
            with contextlib.suppress(Exception):
                channel.send(messages.timeout_to_wire(item.nodeid, settings.timeout))
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
        link = _link(session.config)
        if link is not None and link.params.get("flush"):  # only our scheduler sends it
            session.items.append(FlushItem.from_parent(session, name="dtf-flush"))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        return True if isinstance(item, FlushItem) else None

