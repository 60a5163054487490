"""The error record: the one JSON-ready dict that carries a failure (stdlib only).

Every record is built here, from an exception (``from_exception``), a report's
text (``from_longrepr``) or a worker's death (``crash``); the guide API and the
plugin classify the same record for the same exception. Its fields are listed
once (``ErrorRecord``); a worker sends ``to_wire(record)`` and the controller
reads what arrived with ``from_wire(data)``. Error text is untrusted: any size,
any bytes, exceptions whose ``str()`` raises. Work per record is bounded.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import TypedDict, TypeVar, cast

from .groups import group_members

__all__ = [
    "CRASH_TYPES",
    "CRASH_WORDS",
    "MAX_CHAIN",
    "MAX_FRAMES",
    "MAX_GROUP_MEMBERS",
    "MAX_MESSAGE",
    "MAX_MRO",
    "MAX_STDERR",
    "MAX_TRACEBACK",
    "MAX_TYPE",
    "RECORD_FIELDS",
    "WORKER_LOST",
    "ErrorRecord",
    "Frame",
    "HardwareContext",
    "crash",
    "cut",
    "encodable",
    "from_exception",
    "from_longrepr",
    "from_wire",
    "safe_str",
    "to_wire",
    "wire_safe",
]

MAX_MESSAGE = 4096
MAX_TRACEBACK = 8192
MAX_STDERR = 2048
MAX_TYPE = 256  # a type name, an mro entry, a function name
MAX_MRO = 20
MAX_FRAMES = 5
MAX_CHAIN = 5  # depth: cause of a cause of ...
MAX_GROUP_MEMBERS = 5
_MAX_LINKS = 2 + MAX_GROUP_MEMBERS  # a cause, a context, the group members
_MAX_PATH = 1024
_MAX_TAGS = 64
_MAX_INT = 2**63
_CUT_MARK = 48  # room for cut()'s marker: a text cut once arrives as it left


class Frame(TypedDict):
    """One in-app frame of a traceback."""

    file: str  # relative to the rootdir when under it
    line: int | None
    function: str


class HardwareContext(TypedDict):
    """The hardware of the worker that ran the test."""

    hardware_type: str | None  # the first accelerator tag, else "cpu"; None: not known
    tags: list[str]


class _Fields(TypedDict):
    type: str  # class name, e.g. "ConnectionRefusedError"
    qualname: str  # module-qualified, e.g. "requests.exceptions.ConnectionError"
    mro: list[str]  # qualified class names, most derived first
    message: str  # str(exc), cut to MAX_MESSAGE
    traceback: str  # formatted traceback, cut to MAX_TRACEBACK (the outer record only)
    frames: list[Frame]  # top in-app frames, innermost first
    chain: list[ErrorRecord]  # cause / context / group members, each a record (depth-bounded)
    phase: str | None  # setup / call / teardown / crash
    worker: str | None  # worker id ("gw0") or "local"
    hardware_context: HardwareContext  # of the worker
    stderr_tail: str  # last lines of captured stderr (the outer record only)


class ErrorRecord(_Fields, total=False):
    """A failure, JSON-ready: the fields every record has, and those only some have."""

    relation: str  # a chain member: "cause", "context" or "group"
    exitcode: int | None  # a crash record: the worker's exit code
    signal: str | None  # a crash record: the signal that ended the worker
    teardown_error: ErrorRecord  # the controller's: the teardown failed too (never sent)
    forensics: str  # a crash record: what the controller learnt of the death (traceback, last tests, memory)


#: The fields of every record, in order.
RECORD_FIELDS: tuple[str, ...] = tuple(_Fields.__annotations__)
_WIRE_FIELDS: tuple[str, ...] = tuple(k for k in ErrorRecord.__annotations__ if k != "teardown_error")


# --------------------------------------------------------------------------- text


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
    """Keep the head and the tail of ``text``: ``limit`` characters and a marker; UTF-8 encodable."""
    if len(text) > limit:
        half = limit // 2
        text = f"{text[:half]}\n...[{len(text) - limit} chars cut]...\n{text[-half:]}"
    escaped = encodable(text)
    if len(escaped) > limit + _CUT_MARK:  # the escapes of lone surrogates made it longer
        return cut(escaped, limit)
    return escaped


def safe_str(obj: object, limit: int = MAX_MESSAGE) -> str:
    """``str(obj)``, cut to ``limit`` chars (head and tail) and UTF-8 encodable; never raises.

    None is ``""``; bytes are decoded (UTF-8, bad bytes replaced); a ``str()`` that
    raises gives ``<unprintable TYPE: str() raised ERROR>``.
    """
    if obj is None:
        return ""
    try:
        if isinstance(obj, str):
            text = obj if type(obj) is str else str.__str__(obj)  # a subclass: no user code
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            text = bytes(obj[: limit * 4]).decode("utf-8", "replace")
        else:
            text = str(obj)
            if type(text) is not str:  # a str subclass may carry a hostile __len__ or slicing
                text = str.__str__(text)
    except BaseException as exc:  # noqa: BLE001 - hostile __str__
        try:
            return f"<unprintable {type(obj).__name__}: str() raised {type(exc).__name__}>"
        except BaseException:  # noqa: BLE001
            return "<unprintable object>"
    return cut(text, limit)


# --------------------------------------------------------------------------- builders


def _qualname(cls: type) -> str:
    module = getattr(cls, "__module__", None) or "builtins"
    return cut(f"{module}.{getattr(cls, '__qualname__', cls.__name__)}", MAX_TYPE)


def _frames(tb: TracebackType | None, rootdir: str | None) -> list[Frame]:
    """The innermost in-app frames (not site-packages, not the stdlib), innermost first."""
    out: list[Frame] = []
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
        out.append({"file": cut(filename, _MAX_PATH), "line": entry.lineno,
                    "function": cut(entry.name, MAX_TYPE)})
        if len(out) >= MAX_FRAMES:
            break
    return out


def _format_tb(exc: BaseException) -> str:
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=20))
    except BaseException:  # noqa: BLE001 - formatting calls __str__ too
        text = f"{type(exc).__name__}: {safe_str(exc)}"
    return cut(text, MAX_TRACEBACK)


def _hardware_context(tags: list[str] | None) -> HardwareContext:
    if tags is None:
        return {"hardware_type": None, "tags": []}
    accel = [t for t in tags if t != "cpu"]
    return {"hardware_type": accel[0] if accel else "cpu", "tags": list(tags)}


def from_exception(
    exc: BaseException,
    *,
    phase: str | None = None,
    worker: str | None = None,
    hardware: list[str] | None = None,
    stderr: str | None = None,
    rootdir: str | None = None,
    _depth: int = 0,
) -> ErrorRecord:
    """The record of one exception and, bounded, of its chain.

    ``hardware`` is the worker's tags; None (the guide API's exceptions) leaves the
    hardware not known (``hardware_type`` None).
    """
    cls = type(exc)
    record: ErrorRecord = {
        "type": cut(cls.__name__, MAX_TYPE),
        "qualname": _qualname(cls),
        "mro": [_qualname(c) for c in cls.__mro__[:MAX_MRO]],
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
        chain: list[ErrorRecord] = []
        linked: list[tuple[str, object]] = [("cause", exc.__cause__)]
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
    forensics: str = "",
) -> ErrorRecord:
    """The record of a worker that died while running ``nodeid``; ``forensics``: what the
    controller learnt of the death (faulthandler's traceback, the last tests, memory)."""
    how = f"killed by {signal_name}" if signal_name else f"exit code {exitcode}"
    if exitcode is None and not signal_name:
        how = "connection lost"
    ended = CRASH_WORDS.get(typename, "crashed")
    message = f"worker {worker!r} {ended} while running {nodeid!r} ({how})"
    if detail:
        message += f": {detail}"
    rec: ErrorRecord = {
        "type": typename,
        "qualname": f"pytest_dtf_errors.{typename}",
        "mro": [f"pytest_dtf_errors.{typename}"],
        "message": message,
        "traceback": "",
        "frames": [],
        "chain": [],
        "phase": "crash",
        "worker": worker,
        "hardware_context": _hardware_context(hardware or []),
        "stderr_tail": "",
        "exitcode": exitcode,
        "signal": signal_name,
    }
    if forensics:
        rec["forensics"] = forensics
    return rec


def from_longrepr(text: str, *, phase: str | None, worker: str | None) -> ErrorRecord:
    """A record for a failure that arrived without one (an old worker, a plugin's report)."""
    last = text.strip().splitlines()[-1] if text.strip() else ""
    typename, _, message = last.partition(": ")
    if not typename.replace(".", "").replace("_", "").isalnum():
        typename, message = "Failed", last
    typename = typename.lstrip("E ").strip() or "Failed"
    return {
        "type": cut(typename.rsplit(".", 1)[-1], MAX_TYPE),
        "qualname": cut(typename, MAX_TYPE),
        "mro": [],
        "message": cut(message, MAX_MESSAGE),
        "traceback": cut(text, MAX_TRACEBACK),
        "frames": [],
        "chain": [],
        "phase": phase,
        "worker": worker,
        "hardware_context": _hardware_context([]),
        "stderr_tail": "",
    }


# --------------------------------------------------------------------------- the wire

_T = TypeVar("_T")


def wire_safe(value: _T) -> _T:
    """``value`` (a serialized report) with every string UTF-8 encodable.

    execnet refuses a lone surrogate ("bad \\udcff text") anywhere in a message;
    xdist then loses the report and stops the session with an INTERNALERROR.
    One C-speed encode says whether anything needs fixing; only then is the
    value walked, and containers are copied only where something changed.
    """
    import json  # already imported by pytest and xdist

    try:
        json.dumps(value, ensure_ascii=False, check_circular=False).encode("utf-8")
    except RecursionError:  # a cycle: execnet could not send it either
        return value
    except (UnicodeEncodeError, TypeError, ValueError):
        return cast("_T", _encodable(value))
    return value


def _encodes(text: object) -> bool:
    if type(text) is not str or text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _encodable(value: object) -> object:
    if type(value) is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        out = None
        for k, v in value.items():
            k2, v2 = _encodable(k), _encodable(v)
            if k2 is not k or v2 is not v:
                if out is None:
                    out = dict(value)
                if k2 is not k:
                    del out[k]
                out[k2] = v2
        return value if out is None else out
    if isinstance(value, (list, tuple)):
        items = [_encodable(v) for v in value]
        if any(a is not b for a, b in zip(items, value)):
            return type(value)(items) if type(value) in (list, tuple) else items
        return value
    return value


def to_wire(record: ErrorRecord) -> dict[str, object]:
    """What a worker sends: the record's fields, every string UTF-8 encodable.

    A record of this module's builders is JSON-ready as it is; only the
    encoding is checked (one C-speed dump), and nothing is copied but the top dict.
    """
    fields: Mapping[str, object] = record
    return wire_safe({k: fields[k] for k in _WIRE_FIELDS if k in fields})


def from_wire(data: object) -> ErrorRecord:
    """What the controller accepts from a worker: any object -> a record; never raises.

    Every field is there and of its type, every text cut to its bound, the chain
    no deeper or wider than a builder makes it; unknown keys are dropped. A
    record of this module's builders comes back equal.
    """
    try:
        return _record_from_wire(data, 0)
    except Exception as exc:  # noqa: BLE001 - a hostile mapping: the record says so
        return _blank(f"<unreadable error record: {type(exc).__name__}>")


def _blank(message: str) -> ErrorRecord:
    return {"type": "", "qualname": "", "mro": [], "message": message, "traceback": "",
            "frames": [], "chain": [], "phase": None, "worker": None,
            "hardware_context": _hardware_context(None), "stderr_tail": ""}


def _text(value: object, limit: int) -> str:
    """A text field: a string cut to ``limit``; a number or bytes as text; anything else ""."""
    if type(value) is str:
        if len(value) <= limit + _CUT_MARK:  # as cut() left it, or shorter
            value = encodable(value)
            if len(value) <= limit + _CUT_MARK:
                return value
        return cut(value, limit)
    if isinstance(value, (str, bytes, bytearray, int, float)):
        return safe_str(value, limit)
    return ""


def _optional_text(value: object, limit: int) -> str | None:
    return None if value is None else _text(value, limit)


def _int(value: object) -> int | None:
    return value if type(value) is int and -_MAX_INT < value < _MAX_INT else None


def _items(value: object, limit: int) -> list[object]:
    return list(value[:limit]) if isinstance(value, (list, tuple)) else []


def _record_from_wire(data: object, depth: int) -> ErrorRecord:
    if not isinstance(data, Mapping):
        return _blank(_text(data, MAX_MESSAGE))
    get = data.get
    hw = get("hardware_context")
    hardware: HardwareContext = _hardware_context(None)
    if isinstance(hw, Mapping):
        hardware = {"hardware_type": _optional_text(hw.get("hardware_type"), MAX_TYPE),
                    "tags": [_text(t, MAX_TYPE) for t in _items(hw.get("tags"), _MAX_TAGS)]}
    top = depth == 0
    record: ErrorRecord = {
        "type": _text(get("type"), MAX_TYPE),
        "qualname": _text(get("qualname"), MAX_TYPE),
        "mro": [_text(m, MAX_TYPE) for m in _items(get("mro"), MAX_MRO)],
        "message": _text(get("message"), MAX_MESSAGE),
        "traceback": _text(get("traceback"), MAX_TRACEBACK) if top else "",
        "frames": [{"file": _text(f.get("file"), _MAX_PATH), "line": _int(f.get("line")),
                    "function": _text(f.get("function"), MAX_TYPE)}
                   for f in _items(get("frames"), MAX_FRAMES) if isinstance(f, Mapping)],
        "chain": [_record_from_wire(link, depth + 1) for link in _items(get("chain"), _MAX_LINKS)
                  if isinstance(link, Mapping)] if depth < MAX_CHAIN else [],
        "phase": _optional_text(get("phase"), MAX_TYPE),
        "worker": _optional_text(get("worker"), MAX_TYPE),
        "hardware_context": hardware,
        "stderr_tail": _text(get("stderr_tail"), MAX_STDERR)[-MAX_STDERR:] if top else "",
    }
    if "relation" in data:
        record["relation"] = _text(get("relation"), MAX_TYPE)
    if "exitcode" in data:
        record["exitcode"] = _int(get("exitcode"))
    if "signal" in data:
        record["signal"] = _optional_text(get("signal"), MAX_TYPE)
    if "forensics" in data and top:  # the controller's text on a crash record (crash())
        record["forensics"] = _text(get("forensics"), 4 * MAX_TRACEBACK)
    return record
