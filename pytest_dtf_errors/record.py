"""The error record: the one JSON-ready dict that carries a failure from a worker.

Its fields are listed once, here (RECORD_FIELDS); everything that builds a
record goes through this module. Error text is untrusted: any size, any bytes,
exceptions whose ``str()`` raises. Work per record is bounded.
"""

from __future__ import annotations

import traceback
from types import TracebackType
from typing import Any

from .engine.groups import group_members

RECORD_FIELDS = (
    "type",  # class name, e.g. "ConnectionRefusedError"
    "qualname",  # module-qualified, e.g. "requests.exceptions.ConnectionError"
    "mro",  # qualified class names, most derived first
    "message",  # str(exc), cut to MAX_MESSAGE
    "traceback",  # formatted traceback, cut to MAX_TRACEBACK
    "frames",  # top in-app frames: [{"file", "line", "function"}]
    "chain",  # cause / context / group members, each a record (depth-bounded)
    "phase",  # setup / call / teardown / crash
    "worker",  # worker id ("gw0") or "local"
    "hardware_context",  # {"hardware_type": "cuda", "tags": [...]} of the worker
    "stderr_tail",  # last lines of captured stderr
)

MAX_MESSAGE = 4096
MAX_TRACEBACK = 8192
MAX_STDERR = 2048
MAX_FRAMES = 5
MAX_CHAIN = 5
MAX_GROUP_MEMBERS = 5


def encodable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates) as backslash escapes."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def cut(text: str, limit: int) -> str:
    """Keep the head and the tail of ``text`` within ``limit`` characters; UTF-8 encodable."""
    if len(text) > limit:
        half = limit // 2
        text = f"{text[:half]}\n...[{len(text) - limit} chars cut]...\n{text[-half:]}"
    return encodable(text)


def safe_str(obj: object, limit: int = MAX_MESSAGE) -> str:
    """``str(obj)`` that never raises and never returns more than ``limit`` chars."""
    try:
        text = str(obj)
        if type(text) is not str:  # a str subclass may carry a hostile __len__ or slicing
            text = str.__str__(text)
    except BaseException as exc:  # noqa: BLE001 - hostile __str__
        try:
            return f"<unprintable {type(obj).__name__}: str() raised {type(exc).__name__}>"
        except BaseException:  # noqa: BLE001
            return "<unprintable object>"
    return cut(text, limit)


def _qualname(cls: type) -> str:
    module = getattr(cls, "__module__", None) or "builtins"
    return encodable(f"{module}.{getattr(cls, '__qualname__', cls.__name__)}")


def _frames(tb: TracebackType | None, rootdir: str | None) -> list[dict[str, Any]]:
    """The innermost in-app frames (not site-packages, not the stdlib), innermost first."""
    out: list[dict[str, Any]] = []
    try:
        entries = traceback.extract_tb(tb, limit=50)
    except Exception:  # noqa: BLE001
        return out
    for entry in reversed(entries):
        filename = entry.filename or ""
        if "site-packages" in filename or "/lib/python" in filename:
            continue
        if rootdir and filename.startswith(rootdir):
            filename = filename[len(rootdir) :].lstrip("/")
        out.append({"file": encodable(filename), "line": entry.lineno,
                    "function": encodable(entry.name)})
        if len(out) >= MAX_FRAMES:
            break
    return out


def _format_tb(exc: BaseException) -> str:
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=20))
    except BaseException:  # noqa: BLE001 - formatting calls __str__ too
        text = f"{type(exc).__name__}: {safe_str(exc)}"
    return cut(text, MAX_TRACEBACK)


def from_exception(
    exc: BaseException,
    *,
    phase: str | None = None,
    worker: str | None = None,
    hardware: list[str] | None = None,
    stderr: str | None = None,
    rootdir: str | None = None,
    _depth: int = 0,
) -> dict[str, Any]:
    """Build the error record of one exception (and, bounded, of its chain)."""
    cls = type(exc)
    record: dict[str, Any] = {
        "type": encodable(cls.__name__),
        "qualname": _qualname(cls),
        "mro": [_qualname(c) for c in cls.__mro__][:20],
        "message": safe_str(exc),
        "traceback": _format_tb(exc) if _depth == 0 else "",
        "frames": _frames(exc.__traceback__, rootdir),
        "chain": [],
        "phase": phase,
        "worker": worker,
        "hardware_context": _hardware_context(hardware),
        "stderr_tail": cut(stderr, MAX_STDERR)[-MAX_STDERR:] if stderr else "",
    }
    if _depth < MAX_CHAIN:
        chain: list[dict[str, Any]] = []
        linked = [("cause", exc.__cause__)]
        if not exc.__suppress_context__:
            linked.append(("context", exc.__context__))
        for member in group_members(exc, MAX_GROUP_MEMBERS, MAX_CHAIN):
            linked.append(("group", member))
        for relation, other in linked:
            if isinstance(other, BaseException) and other is not exc:
                sub = from_exception(other, rootdir=rootdir, _depth=_depth + 1)
                sub["relation"] = relation
                chain.append(sub)
        record["chain"] = chain
    return record


def _hardware_context(tags: list[str] | None) -> dict[str, Any]:
    tags = list(tags or [])
    accel = [t for t in tags if t != "cpu"]
    return {"hardware_type": accel[0] if accel else "cpu", "tags": tags}


# A worker that went silent (heartbeats stopped, connection broke), not one seen dying.
WORKER_LOST = "WorkerLost"

# Record types of worker deaths; the plugin maps them to categories.
CRASH_TYPES = {
    "WorkerCrash": "WORKER_CRASHED",
    "WorkerSegfault": "SYSTEM_CRASH",
    "WorkerOOMKilled": "RESOURCE_EXHAUSTED",
    WORKER_LOST: "WORKER_DISCONNECTED",
    "HardwareMismatchError": "HARDWARE_MISMATCH",
}


# How each kind of worker death reads in its record's message.
CRASH_WORDS = {"WorkerTimeout": "was ended by pytest-timeout", WORKER_LOST: "was lost"}


def crash(
    nodeid: str,
    worker: str,
    *,
    typename: str = "WorkerCrash",
    exitcode: int | None,
    signal_name: str | None,
    hardware: list[str] | None,
    detail: str = "",
) -> dict[str, Any]:
    """The record of a worker that died while running ``nodeid``."""
    how = f"killed by {signal_name}" if signal_name else f"exit code {exitcode}"
    if exitcode is None and not signal_name:
        how = "connection lost"
    ended = CRASH_WORDS.get(typename, "crashed")
    message = f"worker {worker!r} {ended} while running {nodeid!r} ({how})"
    if detail:
        message += f": {detail}"
    return {
        "type": typename,
        "qualname": f"pytest_dtf_errors.{typename}",
        "mro": [f"pytest_dtf_errors.{typename}"],
        "message": message,
        "traceback": "",
        "frames": [],
        "chain": [],
        "phase": "crash",
        "worker": worker,
        "hardware_context": _hardware_context(hardware),
        "stderr_tail": "",
        "exitcode": exitcode,
        "signal": signal_name,
    }


def from_longrepr(text: str, *, phase: str | None, worker: str | None) -> dict[str, Any]:
    """A record for a failure that arrived without one (an old worker, a plugin's report)."""
    last = text.strip().splitlines()[-1] if text.strip() else ""
    typename, _, message = last.partition(": ")
    if not typename.replace(".", "").replace("_", "").isalnum():
        typename, message = "Failed", last
    typename = typename.lstrip("E ").strip() or "Failed"
    return {
        "type": typename.rsplit(".", 1)[-1],
        "qualname": typename,
        "mro": [],
        "message": cut(message, MAX_MESSAGE),
        "traceback": cut(text, MAX_TRACEBACK),
        "frames": [],
        "chain": [],
        "phase": phase,
        "worker": worker,
        "hardware_context": _hardware_context(None),
        "stderr_tail": "",
    }
