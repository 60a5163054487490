"""Crash forensics: what a dead worker leaves behind, made into its crash record's ``forensics`` text.

Worker side (``enable_on_worker``): faulthandler writes into a file of the
worker's own, kept open for the worker's life and removed when it ends
cleanly; a replacement on a remote host reads its predecessor's file and
sends it over the DTF link. Controller side (``CrashForensics`` and the pure
functions): where each worker's file is, the memory limit, the OOM rule and
the text itself (faulthandler's traceback, the last tests, the exit, memory).
Only when the controller asked (dtf's scheduler runs): it sends the
``dtf_forensics`` entry of ``workerinput``. No heavy imports: workers load it.
"""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypedDict, final

import pytest

if TYPE_CHECKING:
    from .ledger import Attempt
    from .session.workers import Memory

__all__ = [
    "LAST_TESTS", "MAX_FAULT", "NEAR_LIMIT", "WORKERINPUT_KEY", "CrashForensics", "FaultInput", "compose",
    "controller", "describe", "enable_on_worker", "fault_traceback", "last_tests", "local_spec", "memory_limit", "oom_verdict",
    "read_file", "size",
]

WORKERINPUT_KEY = "dtf_forensics"
LAST_TESTS = 10  # the last tests listed, nearest first
MAX_FAULT = 16_000  # characters of faulthandler's output kept (the crashing thread first)
NEAR_LIMIT = 0.5  # a SIGKILL with the peak RSS at least this share of the memory limit: likely the OOM killer
LOW_AVAILABLE = 0.05  # ... or with less than this share of the machine's memory available at the last beat
_NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as a huge page-aligned number


class FaultInput(TypedDict):
    """Controller -> worker in ``workerinput``: where to write, and predecessors' files to send."""

    path: str  # absolute (a local worker), or a file name under the worker's own temp dir
    predecessors: dict[str, str]  # dead worker id -> its path, as above (a remote replacement reads them)


# -- files (both sides) --------------------------------------------------------------
def _resolve(path: str) -> str:
    if os.path.isabs(path):
        return path
    import tempfile  # only remote workers need it

    return os.path.join(tempfile.gettempdir(), path)


def read_file(path: str, limit: int = 4 * MAX_FAULT, remove: bool = False) -> str:
    """The text of a faulthandler file, at most ``limit`` characters ("" when absent); never raises."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            data = os.read(fd, limit)
        finally:
            os.close(fd)
        if remove:
            os.unlink(path)
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


# -- the worker ----------------------------------------------------------------------
def enable_on_worker(config: pytest.Config) -> None:
    """On an xdist worker the controller asked: send the predecessors' files, and keep faulthandler's
    output in this worker's file from the session's start (pytest's own plugin takes stderr at configure)."""
    sent = getattr(config, "workerinput", {}).get(WORKERINPUT_KEY)
    if not isinstance(sent, dict) or not isinstance(sent.get("path"), str):
        return
    predecessors = sent.get("predecessors")
    if isinstance(predecessors, dict) and predecessors:
        _send_predecessors(config, {str(k): str(v) for k, v in predecessors.items()})
    config.pluginmanager.register(FaultFile(_resolve(sent["path"])), "dtf_forensics")


def _send_predecessors(config: pytest.Config, predecessors: dict[str, str]) -> None:
    from .worker import LINK
    from .xdist.messages import forensics_to_wire

    link = config.stash.get(LINK, None)
    for dead, path in predecessors.items():
        text = read_file(_resolve(path), remove=True)
        if link is not None:
            try:
                link.channel.send(forensics_to_wire(dead, text))
            except Exception:  # noqa: BLE001 - a closed link: the session is over
                return


@final
class FaultFile:
    """faulthandler's target on a worker, open for the worker's life; removed on a clean end."""

    __slots__ = ("fd", "path", "was_enabled")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.was_enabled = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        try:
            self.fd = os.open(self.path, flags, 0o600)
        except OSError:
            return  # no file: faulthandler stays where pytest put it
        self.was_enabled = faulthandler.is_enabled()
        faulthandler.enable(file=self.fd, all_threads=True)

    @pytest.hookimpl(tryfirst=True)  # before pytest's faulthandler plugin disables and restores its own
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.fd is None:
            return
        faulthandler.disable()  # before the file closes: a later crash must not write into a reused fd
        os.close(self.fd)
        self.fd = None
        try:
            os.unlink(self.path)
        except OSError:
            pass
        if self.was_enabled and not config.pluginmanager.has_plugin("faulthandler"):
            faulthandler.enable()  # it was on stderr before us (PYTHONFAULTHANDLER) and nobody restores it


# -- the controller: pure ------------------------------------------------------------------
def size(mb: float) -> str:
    """``312 MiB`` below a GiB, ``7.8 GiB`` above."""
    return f"{mb / 1024:.1f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def oom_verdict(
    signal_name: str | None,
    peak_rss_mb: int | None,
    memory: Memory | Mapping[str, int],
    limit: tuple[int, str] | None = None,
    near: float = NEAR_LIMIT,
) -> str | None:
    """The words for a SIGKILL that looks like the OOM killer's, or None.

    ``limit`` is the worker's cgroup limit (MiB, and where it was read); the
    machine's MemTotal from the last heartbeat counts too, the smaller wins.
    Likely OOM: the peak RSS reached ``near`` of that limit, or the machine
    had under 5% of its memory available at the last heartbeat.
    """
    if signal_name != "SIGKILL":
        return None
    total, avail = memory.get("MemTotal"), memory.get("MemAvailable")
    rss = peak_rss_mb if peak_rss_mb is not None else memory.get("rss_mb")
    limits = [limit] if limit is not None and limit[0] > 0 else []
    if total:
        limits.append((total, "MemTotal"))
    if not limits:
        return None
    cap, source = min(limits)
    at = f"likely OOM-killed at {size(rss)} RSS" if rss is not None else "likely OOM-killed"
    if rss is not None and rss >= near * cap:
        return f"{at} (memory limit {size(cap)}, {source})"
    if total and avail is not None and avail < LOW_AVAILABLE * total:
        return f"{at} (the machine had {size(avail)} of {size(total)} available)"
    return None


def fault_traceback(text: str, limit: int = MAX_FAULT) -> str:
    """faulthandler's output with the crashing thread's block first, cut to ``limit`` characters."""
    lines = text.rstrip().splitlines()
    head: list[str] = []
    blocks: list[list[str]] = []
    for line in lines:
        if line.startswith(("Current thread ", "Thread ")):
            blocks.append([line])
        elif blocks and (line.startswith(" ") or not line.strip()):
            blocks[-1].append(line)
        elif blocks:
            blocks.append([line])  # "Extension modules: ..." and the like
        else:
            head.append(line)
    current = [b for b in blocks if b[0].startswith("Current thread ")]
    others = [b for b in blocks if not b[0].startswith("Current thread ")]
    parts = ["\n".join(head).strip(), *("\n".join(block).rstrip() for block in current + others)]
    out = "\n\n".join(p for p in parts if p)
    if len(out) > limit:
        out = out[:limit] + f"\n... ({len(out) - limit} more characters)"
    return out


def last_tests(attempts: Iterable[Attempt], node: str, cap: int = LAST_TESTS) -> list[Attempt]:
    """The attempts that ended on ``node``, nearest first, at most ``cap``."""
    ended = [a for a in attempts if a.node == node and a.finished is not None]
    ended.sort(key=lambda a: a.started, reverse=True)
    return ended[:cap]


def _how(exitcode: int | None, signal_name: str | None) -> str:
    if signal_name:
        return f"killed by {signal_name}" + (f" (exit code {exitcode})" if exitcode is not None else "")
    return f"exit code {exitcode}" if exitcode is not None else "no exit status known (not a local process, or lost)"


def compose(
    worker: str,
    *,
    exitcode: int | None,
    signal_name: str | None,
    fault: str | None,
    recent: Iterable[Attempt],
    peak_rss_mb: int | None,
    memory: Memory | Mapping[str, int],
    limit: tuple[int, str] | None = None,
    oom: str | None = None,
) -> str:
    """The crash record's ``forensics`` text. ``fault``: faulthandler's output, "" when the file
    was empty, None when it is on another host (the replacement there sends it)."""
    lines = [f"crash forensics of {worker}:", f"  ended: {_how(exitcode, signal_name)}"]
    mem: list[str] = []
    if peak_rss_mb is not None:
        mem.append(f"peak RSS {size(peak_rss_mb)}")
    if memory.get("rss_mb") is not None:
        mem.append(f"RSS at the last heartbeat {size(memory['rss_mb'])}")
    if limit is not None:
        mem.append(f"limit {size(limit[0])} ({limit[1]})")
    if memory.get("MemTotal"):
        mem.append(f"machine {size(memory.get('MemAvailable', 0))} available of {size(memory['MemTotal'])}")
    lines.append("  memory: " + ("; ".join(mem) if mem else "unknown (no heartbeat)"))
    if oom:
        lines.append(f"  {oom}")
    recent = list(recent)
    if recent:
        lines.append(f"  last tests on {worker} (nearest first):")
        lines.extend(f"    {a.nodeid} ({a.outcome}, {a.duration:.2f} s)" for a in recent)
    else:
        lines.append(f"  last tests on {worker}: none before it")
    if fault is None:
        lines.append("  faulthandler: its file is on the worker's host; a replacement worker there sends it")
    elif fault.strip():
        lines.append(f"  faulthandler ({worker}):")
        lines.extend(f"    {line}" for line in fault_traceback(fault).splitlines())
    else:
        why = " (SIGKILL cannot be caught)" if signal_name == "SIGKILL" else ""
        lines.append(f"  faulthandler: wrote nothing{why}")
    return "\n".join(lines)


def _cgroup_value(path: str) -> int | None:
    try:
        with open(path) as f:
            raw = f.read().strip()
    except OSError:
        return None
    if not raw.isdigit() or int(raw) >= _NO_LIMIT:
        return None  # "max": no limit
    return int(raw) // 2**20


def memory_limit(root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> tuple[int, str] | None:
    """This process's cgroup memory limit in MiB and the file it came from (the smallest on its
    cgroup's path, v2 ``memory.max`` or v1 ``memory.limit_in_bytes``), or None without one."""
    try:
        with open(proc_cgroup) as f:
            entries = [line.strip().split(":", 2) for line in f if line.count(":") >= 2]
    except OSError:
        entries = []
    candidates: list[str] = []
    for _, controllers, rel in entries:
        if controllers == "":  # v2
            base, name = root, "memory.max"
        elif "memory" in controllers.split(","):  # v1
            base, name = os.path.join(root, "memory"), "memory.limit_in_bytes"
        else:
            continue
        parts = [p for p in rel.split("/") if p and p != ".."]
        for i in range(len(parts), -1, -1):
            candidates.append(os.path.join(base, *parts[:i], name))
    if not entries:
        candidates = [os.path.join(root, "memory.max"), os.path.join(root, "memory", "memory.limit_in_bytes")]
    found = [(v, path) for path in candidates if (v := _cgroup_value(path)) is not None]
    return min(found) if found else None


def local_spec(spec: object) -> bool:
    """An execnet spec of a popen worker on this machine (no ``via``): its files are the controller's."""
    return bool(getattr(spec, "popen", False)) and not getattr(spec, "via", None)


# -- the controller: state -------------------------------------------------------------------
@final
class CrashForensics:
    """The controller's forensics state: every worker's file, and the crashes on remote hosts
    whose file a replacement there is to send."""

    __slots__ = ("_limit", "dir", "paths", "token", "waiting")

    def __init__(self) -> None:
        import secrets

        self.token = secrets.token_hex(6)  # this session's files, not a guessable name
        self.dir: str | None = None  # the local workers' files (created on first need)
        self.paths: dict[str, str] = {}  # worker id -> its path, as the worker was told
        self.waiting: dict[str, dict[str, str]] = {}  # host -> {dead worker: crashed test}
        self._limit: tuple[tuple[int, str] | None] | None = None

    def worker_input(self, name: str, host: str, local: bool) -> FaultInput:
        """What a new worker is told: its file, and (on a remote host) its predecessors' to send."""
        if local:
            if self.dir is None:
                import tempfile

                self.dir = tempfile.mkdtemp(prefix="pytest-dtf-forensics-")
            path = os.path.join(self.dir, f"{name}.faulthandler")
        else:
            path = f"pytest-dtf-{self.token}-{name}.faulthandler"
        self.paths[name] = path
        waiting = {} if local else self.waiting.get(host, {})
        return {"path": path, "predecessors": {dead: self.paths[dead] for dead in waiting if dead in self.paths}}

    def read_local(self, name: str) -> str:
        path = self.paths.get(name)
        return read_file(path) if path is not None and os.path.isabs(path) else ""

    def await_remote(self, name: str, host: str, nodeid: str) -> None:
        """A remote worker died running ``nodeid``: the next worker started on ``host`` sends its file."""
        self.waiting.setdefault(host, {})[name] = nodeid

    def received(self, dead: str) -> str | None:
        """A replacement sent ``dead``'s file: the test it crashed on, once (None if not asked for)."""
        for crashes in self.waiting.values():
            if dead in crashes:
                return crashes.pop(dead)
        return None

    def limit(self) -> tuple[int, str] | None:
        """The cgroup limit of the local workers (children share the controller's cgroup), read once."""
        if self._limit is None:
            self._limit = (memory_limit(),)
        return self._limit[0]

    def cleanup(self) -> None:
        if self.dir is not None:
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


_STATE: pytest.StashKey[CrashForensics] = pytest.StashKey()


def controller(config: pytest.Config) -> CrashForensics:
    """The session's forensics state on ``config.stash``; its files go at the config's cleanup."""
    state = config.stash.get(_STATE, None)
    if state is None:
        state = config.stash[_STATE] = CrashForensics()
        config.add_cleanup(state.cleanup)
    return state


def describe(
    state: CrashForensics,
    attempts: Iterable[Attempt],
    worker: str,
    *,
    local: bool,
    exitcode: int | None,
    signal_name: str | None,
    peak_rss_mb: int | None,
    memory: Memory | Mapping[str, int],
    oom: str | None,
) -> str:
    """``compose`` with what the controller holds: the local file, the ledger's last tests."""
    return compose(
        worker,
        exitcode=exitcode,
        signal_name=signal_name,
        fault=state.read_local(worker) if local else None,
        recent=last_tests(attempts, worker),
        peak_rss_mb=peak_rss_mb,
        memory=memory,
        limit=state.limit() if local else None,
        oom=oom,
    )

