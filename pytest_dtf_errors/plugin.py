"""pytest entry point (``-p no:dtf_errors`` turns it off): options, markers, wiring.

Thin on purpose: decisions live in ``session/``, placement in ``xdist/`` and
``local``, reports in ``report/``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest


def _not_rewritten(finders: Iterable[object], package: str | None = __package__) -> None:
    """Keep pytest from assertion-rewriting the rest of this package.

    pytest marks every package of an installed pytest11 plugin for assertion
    rewriting. A rewritten module skips the bytecode pip wrote at install, and
    under PYTHONDONTWRITEBYTECODE=1 (common in containers) it is parsed, rewritten
    and compiled again in every process: about 0.2 s per pytest process and per
    xdist worker here (BENCHMARKS.md). The plugin's own asserts need no rewriting.
    ``_must_rewrite`` is pytest's (private); without it the modules are rewritten as before.
    """
    for finder in finders:
        marked = getattr(finder, "_must_rewrite", None)
        if isinstance(marked, set):
            marked.discard(package)


_not_rewritten(sys.meta_path)  # before the imports below

from . import marks
from . import settings as dtf_settings
from . import worker as dtf_worker
from .worker import FlushPlugin, TimeoutScaler, WorkerPlugin, attempt_meta

if TYPE_CHECKING:
    from .session.attempts import Attempts
    from .session.memory import Memory

CONTROLLER = "dtf_controller"
ATTEMPTS: pytest.StashKey[Attempts] = pytest.StashKey()  # the controller's session state (not on workers)


def pytest_addoption(parser: pytest.Parser) -> None:
    dtf_settings.addoptions(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    _not_rewritten([pluginmanager.rewrite_hook])  # a later session in this process (pytester)
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hardware(*tags, fallback=None, gpus=None, exclusive=False): run only on a worker with "
        "any of these hardware tags (e.g. \"cuda\") and at least gpus GPUs, alone on its host if "
        "exclusive; fallback names what a retry may use when none is left",
    )
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        dtf_worker.install(config)
        # the controller validated the settings and sends what a worker needs
        sent = dtf_settings.worker_settings(workerinput)
        if sent["retry"]:
            # The controller counts final failures for --maxfail; a worker would
            # count failures that are going to be retried and stop too early.
            config.option.maxfail = 0
        schedule = sent["schedule"]
        if schedule:  # faulthandler into this worker's file, a dead predecessor's sent (crash forensics)
            from .forensics import enable_on_worker

            enable_on_worker(config)
        # under xdist's own scheduler nobody routes: a test whose hardware this worker
        # lacks is skipped (or failed) here, as in a run without xdist
        missing = None if schedule else sent["missing"]
        worker = WorkerPlugin(
            config, str(workerinput.get("workerid", "?")), lambda: _worker_tags(config), missing,
            announce=schedule,  # the scheduler routes by the tags: detected now, sent at once
        )
        config.pluginmanager.register(worker, "dtf_worker")
        if schedule:  # retries (and so timeouts to scale) and the flush item come only with it
            config.pluginmanager.register(FlushPlugin(), "dtf_flush")
            _scale_timeouts(config)
        return
    settings, engine_config = dtf_settings.load_settings(config)
    if config.option.collectonly:
        return
    # the controller's rooms: not imported on workers
    from .ledger import Ledger
    from .session.attempts import Attempts
    from .session.workers import WorkerBook

    routing = _routing_asked(config, settings)
    memory = _memory(config, settings, routing)
    # dtf's scheduler: retries, routing, repeats, or a history (new tests' repeats, longest first)
    settings.schedule = settings.retry or routing or settings.repeat > 0 or memory is not None
    settings.peer = _active_peer(config)
    settings.peer_installed = _installed_peer(config)
    def make_handler() -> Any:
        from .engine.handler import DistributedErrorHandler

        handler = DistributedErrorHandler(dtf_settings.engine_config(engine_config))
        for strategies in config.hook.pytest_dtf_recovery_strategies(config=config):
            handler.recovery_strategies.extend(strategies or [])
        return handler

    ledger = Ledger(retry_budget=settings.retry_budget, workers=WorkerBook(settings.hardware))
    attempts = Attempts(config, settings, make_handler, ledger)
    config.stash[ATTEMPTS] = attempts
    if memory is not None:
        attempts.known = memory.open()
    config.pluginmanager.register(DtfSession(config, attempts, memory), CONTROLLER)
    if _distributed(config):
        from .xdist.hooks import XdistHooks

        config.pluginmanager.register(XdistHooks(config, attempts, routing=routing), "dtf_xdist")
    else:
        from .local import LocalRunner

        dtf_worker.install(config)
        tags = _local_tags(config, settings.hardware)
        ledger.workers.node("local").hardware = tags
        config.pluginmanager.register(LocalRunner(attempts), "dtf_local")
        config.pluginmanager.register(
            WorkerPlugin(config, "local", lambda: tags, missing=settings.missing_hardware), "dtf_worker"
        )
        if settings.retry:
            _scale_timeouts(config)


def _routing_asked(config: pytest.Config, settings: dtf_settings.Settings) -> bool:
    """Hardware routing was asked for: GPU pinning, a hardware table, ``missing_hardware = "fail"``,
    a ``pytest_dtf_hardware_tags`` hook (in a conftest.py loaded at start), or workers given their
    own hardware (``--tx popen//env:DTF_HARDWARE=cuda``); then dtf's scheduler runs, retries or not."""
    if settings.gpus_per_worker or settings.hardware or settings.missing_hardware != "skip":
        return True
    if config.pluginmanager.hook.pytest_dtf_hardware_tags.get_hookimpls():
        return True
    specs = getattr(config.option, "tx", None) or []
    return any("env:DTF_HARDWARE=" in str(spec) or "env:CUDA_VISIBLE_DEVICES=" in str(spec) for spec in specs)


def _memory(config: pytest.Config, settings: dtf_settings.Settings, routing: bool) -> Memory | None:
    """The history this run uses: ``--dtf-history PATH``, else the file in pytest's cache dir
    when dtf is asked for (retries, routing, repeats); none with ``off``, or without a path
    under ``-p no:cacheprovider``. A run that asks dtf for nothing writes nothing."""
    asked = settings.history
    if asked is not None and asked.strip().lower() == "off":
        return None
    if asked is not None and asked.strip():
        path = Path(asked)
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
    else:
        cache = getattr(config, "cache", None)
        if cache is None or not (settings.retry or routing or settings.repeat > 0):
            return None
        try:
            path = cache.mkdir("dtf") / "history.sqlite"
        except OSError:
            return None  # a read-only checkout: pytest's cache warns about it itself
    from .session.memory import Memory

    return Memory(path, settings.quarantine, apply_quarantine=not settings.no_quarantine)


def _scale_timeouts(config: pytest.Config) -> None:
    """Retries get more time under pytest-timeout."""
    if config.pluginmanager.hasplugin("timeout"):
        config.pluginmanager.register(TimeoutScaler(), "dtf_timeout")


def _distributed(config: pytest.Config) -> bool:
    return bool(
        config.pluginmanager.hasplugin("xdist")
        and getattr(config.option, "dist", "no") != "no"
    )


def _worker_tags(config: pytest.Config) -> list[str]:
    """Detected on the worker itself, in parallel with the others' start-up."""
    from .hardware import detect_hardware

    tags = list(detect_hardware().get("tags") or ["cpu"])
    return sorted(set(tags) | _hook_tags(config))


def _hook_tags(config: pytest.Config) -> set[str]:
    return {
        str(tag).lower()
        for tags in config.hook.pytest_dtf_hardware_tags(config=config)
        for tag in (tags or [])
    }


def _local_tags(config: pytest.Config, extra: dict[str, list[str]]) -> list[str]:
    from .hardware import detect_hardware

    found = set(detect_hardware().get("tags") or ["cpu"])
    return sorted(found | set(extra.get("local", [])) | _hook_tags(config))


def _active_peer(config: pytest.Config) -> str | None:
    """Another retry plugin that will retry this run's failures itself."""
    pm = config.pluginmanager
    reruns = getattr(config.option, "reruns", None)
    if pm.hasplugin("rerunfailures") and reruns:
        return f"pytest-rerunfailures (--reruns {reruns})"
    if pm.hasplugin("flaky") and getattr(config.option, "force_flaky", False):
        return "flaky (--force-flaky)"
    return None


def _installed_peer(config: pytest.Config) -> str | None:
    pm = config.pluginmanager
    for name, label in (("rerunfailures", "pytest-rerunfailures"), ("flaky", "flaky")):
        if pm.hasplugin(name):
            return label
    return None


class OutcomeWords:
    """The terminal's words and letters for dtf's outcomes: rerun, flaky, victim, a lost worker's pass."""

    @pytest.hookimpl
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, Any] | None:
        outcome = report.outcome
        if outcome == "passed":
            if marks.marked(report, "dtf_flaky") and report.when == "call":
                return "flaky", "L", ("FLAKY", {"yellow": True})
            if marks.marked(report, "dtf_victim") and report.when == "call":
                return "victim", "V", ("VICTIM", {"yellow": True})
            if marks.marked(report, "dtf_hidden"):
                return "", "", ""  # a lost worker's test that had passed: shown once already
        elif outcome == "failed" and marks.marked(report, "dtf_quarantined"):
            return "quarantined", "Q", ("QUARANTINED", {"yellow": True})
        elif outcome == "rerun":
            return "rerun", "R", ("RERUN", {"yellow": True})
        return None


class DtfSession:
    """Session-level hooks on the controller: outcomes, summary, reports, exit status."""

    def __init__(self, config: pytest.Config, attempts: Attempts, memory: Memory | None = None) -> None:
        self.config = config
        self.attempts = attempts
        self.memory = memory
        self.words: OutcomeWords | None = None
        self.collection_errors: dict[str, str] = {}  # nodeid -> message (each worker reports it)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        s = self.attempts.settings
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        if tr is None:
            return
        if s.retry and s.peer:
            tr.write_line(f"dtf: {s.peer} is active; it retries failures, dtf only categorizes", yellow=True)
        self._notes()

    def _notes(self) -> None:
        """The history's warnings, one line each, once."""
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        if self.memory is not None and tr is not None:
            for line in self.memory.notes:
                tr.write_line(line, yellow=True)
            self.memory.notes.clear()

    @pytest.hookimpl(tryfirst=True)  # "rerun" before the terminal and JUnit see the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        own = self.attempts.on_report(report)
        if report.failed and self.memory is not None and self.memory.is_quarantined(report.nodeid):
            marks.mark(report, "dtf_quarantined")  # a final failure: retried ones are "rerun" now
            own = True
        if own and self.words is None:
            # registered with the first report that needs it (the terminal asks it
            # right after this hook): a run where all pass pays no call per report
            self.words = OutcomeWords()
            self.config.pluginmanager.register(self.words, "dtf_outcome_words")

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and report.nodeid not in self.collection_errors:
            from .engine.record import MAX_TRACEBACK, safe_str

            self.collection_errors[report.nodeid] = safe_str(report.longrepr, MAX_TRACEBACK)

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
        ledger = self.attempts.ledger
        # before junitxml writes its file: every test has its outcome
        self.attempts.finish_unfinished("the session ended before it ran")
        ledger.finished = time.time()
        memory = self.memory
        if memory is not None:
            memory.annotate(ledger)
            memory.releases(ledger)
            if getattr(session, "exitstatus", exitstatus) == pytest.ExitCode.TESTS_FAILED \
                    and self._only_quarantined_failed():
                session.exitstatus = pytest.ExitCode.OK  # what failed is quarantined
        if self.attempts.settings.fail_on_flaky and getattr(session, "exitstatus", exitstatus) == 0 \
                and ledger.flaky():
            session.exitstatus = dtf_settings.EXIT_FLAKY
        try:
            return (yield)
        finally:
            # a session pytester builds by hand (getitems) never gets an exitstatus
            self._write_reports(int(getattr(session, "exitstatus", exitstatus)))

    def _only_quarantined_failed(self) -> bool:
        """Every failure of the run is a quarantined test's (and there is one)."""
        from .session.memory import quarantined_failures

        ledger = self.attempts.ledger
        ignored = quarantined_failures(ledger, self.memory)
        failed = sum(1 for rec in ledger if rec.final in ("failed", "error"))
        return bool(ignored) and len(ignored) == failed and not self.collection_errors

    def _write_reports(self, exitstatus: int) -> None:
        settings = self.attempts.settings
        ledger = self.attempts.ledger
        xmlpath = getattr(self.config.option, "xmlpath", None)
        path = settings.report
        memory = self.memory
        summary_md = self._summary_md()
        # every output but JUnit is written from the report's data, built once
        wants_data = bool(path or settings.html or memory is not None or summary_md is not None)
        if not wants_data and not xmlpath:
            return
        from . import report

        data = None
        if wants_data:
            data = report.build_report(
                ledger, self.attempts.patterns(), run_info=self._run_info(exitstatus),
                history=memory.history_section() if memory is not None else None,
            )
        if memory is not None and data is not None:
            memory.write(data)
            self._notes()
        try:
            if xmlpath and os.path.isfile(xmlpath):  # not --junitxml=/dev/null
                report.rewrite_junit(xmlpath, ledger, prefix=getattr(self.config.option, "junitprefix", None))
            if path and data is not None:
                self.config.hook.pytest_dtf_report(report=data, config=self.config)
                report.write_atomic(str(self._target(path)), data)
        except OSError as exc:  # a directory, a full disk, no permission: say so, no traceback
            self._warn(f"pytest-dtf-errors: report not written: {exc}")
        if settings.html and data is not None:
            from .report.html import write_html

            try:
                write_html(str(self._target(settings.html)), data)
            except OSError as exc:
                self._warn(f"pytest-dtf-errors: HTML report not written: {exc}")
        if summary_md is not None and data is not None:
            from .report.markdown import write_summary_md

            try:
                write_summary_md(summary_md[0], data, append=summary_md[1])
            except OSError as exc:
                self._warn(f"pytest-dtf-errors: Markdown summary not written: {exc}")

    def _target(self, path: str) -> Path:
        target = Path(path)
        return target if target.is_absolute() else Path(self.config.invocation_params.dir) / target

    def _summary_md(self) -> tuple[str, bool] | None:
        """Where the Markdown summary goes: ``--dtf-summary-md PATH``, else appended to
        ``$GITHUB_STEP_SUMMARY`` when dtf is asked for (a run that asks nothing writes nothing)."""
        settings = self.attempts.settings
        asked = settings.summary_md
        if asked is None and not (settings.schedule or settings.report or settings.html):
            return None
        from .report.markdown import summary_target

        return summary_target(asked, str(self.config.invocation_params.dir))

    def _warn(self, line: str) -> None:
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        if tr is not None:
            tr.write_line(line, red=True)

    def _run_info(self, exitstatus: int) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        def ver(dist: str) -> str | None:
            try:
                return version(dist)
            except PackageNotFoundError:
                return None

        return {
            "label": self.attempts.settings.run_label or _git_commit(Path(self.config.rootpath)),
            "plugin_version": ver("pytest-dtf-errors"),
            "pytest_version": pytest.__version__,
            "xdist_version": ver("pytest-xdist"),
            "args": [str(a) for a in self.config.invocation_params.args],
            "exit_status": exitstatus,
            "repeats": self.attempts.repeats.session_info(),
            "collection_errors": [
                {"nodeid": nodeid, "message": message}
                for nodeid, message in self.collection_errors.items()
            ],
        }

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        ledger = self.attempts.ledger
        repeats = self.attempts.repeats
        extra: list[str] = []
        asked = repeats.settings.repeat or repeats.settings.new_test_repeats is not None
        # why they are off is said when they were asked for (a first run's empty history is no news)
        if repeats.active or (asked and (repeats.off is not None or repeats.settings.repeat)):
            from .session.repeats import summary_lines

            extra = summary_lines(ledger, repeats, verbose=self.config.option.verbose)
        if ledger.quiet() and not extra and not (self.memory is not None and self.memory.events):
            return
        from .report import write_summary

        write_summary(
            terminalreporter,
            ledger,
            self.attempts.patterns(),
            verbose=self.config.option.verbose,
            budget=ledger.retry_budget,
            history=self.memory.history_section() if self.memory is not None else None,
            extra=extra,
        )


def _git_commit(root: Path) -> str | None:
    """The commit checked out at ``root`` (read from .git, no git process), or None."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree or submodule: "gitdir: PATH"
            git = (root / git.read_text().partition("gitdir:")[2].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None  # a detached HEAD
        ref = head[4:].strip()
        common = git / "commondir"  # a worktree keeps its branches in the main .git
        bases = [git, (git / common.read_text().strip()).resolve()] if common.is_file() else [git]
        for base in bases:
            if (base / ref).is_file():
                return (base / ref).read_text().strip() or None
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    sha, _, name = line.partition(" ")
                    if name == ref:
                        return sha
    except (OSError, UnicodeDecodeError):
        return None
    return None


@pytest.fixture
def dtf_attempt(request: pytest.FixtureRequest) -> int:
    """The 1-based number of the attempt of this test that is running."""
    return int(attempt_meta(request.config, request.node.nodeid).get("attempt") or 1)
