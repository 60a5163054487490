"""The DTF link's messages, each with its fields listed once and one to-wire / from-wire pair.

A message is ``(kind, data)``. Workers send ``tags``, ``requirements``,
``groups``, ``timeout``, ``forensics`` (a dead predecessor's faulthandler
file) (and the heartbeat ``hb``, built by the stdlib-only
``_worker_link``, which imports nothing of the package); the controller sends
the link's parameters once and ``attempt`` before each retry. What arrives from a worker
is untrusted: ``from_wire`` keeps what has the right shape and drops the rest.
Stdlib only: workers import it.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from ..session.workers import Memory, Requirement

__all__ = [
    "AttemptMeta", "Forensics", "Heartbeat", "LinkParams", "Message", "attempt_from_wire", "attempt_to_wire",
    "forensics_to_wire", "from_wire", "gpus_to_wire", "groups_to_wire", "params_to_wire", "requirements_to_wire",
    "tags_to_wire", "timeout_to_wire",
]


class LinkParams(TypedDict):
    """Controller -> worker, once, as the link opens (read by the stdlib-only ``_worker_link``)."""

    heartbeat_interval: float
    flush: bool  # dtf's scheduler sends the flush item (not under xdist's own schedulers)


class AttemptMeta(TypedDict):
    """Controller -> worker, before a retry: which attempt it is and how to run it."""

    nodeid: str
    attempt: int
    timeout_factor: float
    hardware: list[str]


class Heartbeat(Memory, total=False):
    """Worker -> controller, every second: the time and the memory figures."""

    t: float


class TimedOut(TypedDict):
    """Worker -> controller: pytest-timeout's thread method is about to end the worker."""

    nodeid: str
    timeout: float


class Forensics(TypedDict):
    """Worker -> controller, at start: the faulthandler file a dead worker left on this host."""

    worker: str  # the dead worker's id
    text: str


MAX_FORENSICS = 64_000  # characters of a predecessor's file the controller keeps

Message = (
    tuple[Literal["hb"], Heartbeat]
    | tuple[Literal["tags"], list[str]]
    | tuple[Literal["requirements"], dict[str, Requirement]]
    | tuple[Literal["groups"], dict[str, str]]
    | tuple[Literal["timeout"], TimedOut]
    | tuple[Literal["gpus"], int]
    | tuple[Literal["forensics"], Forensics]
)


# -- to the wire -------------------------------------------------------------------
def params_to_wire(heartbeat_interval: float, flush: bool) -> LinkParams:
    return {"heartbeat_interval": heartbeat_interval, "flush": flush}


def attempt_to_wire(
    nodeid: str, attempt: int, timeout_factor: float, hardware: tuple[str, ...]
) -> tuple[Literal["attempt"], AttemptMeta]:
    return "attempt", {
        "nodeid": nodeid, "attempt": attempt, "timeout_factor": timeout_factor, "hardware": list(hardware),
    }


def tags_to_wire(tags: list[str]) -> tuple[Literal["tags"], list[str]]:
    return "tags", list(tags)


def requirements_to_wire(reqs: dict[str, Requirement]) -> tuple[Literal["requirements"], dict[str, Requirement]]:
    return "requirements", reqs


MAX_GPUS = 1024  # the most GPUs a requirement may ask for (hardware(gpus=N))


def groups_to_wire(groups: dict[str, str]) -> tuple[Literal["groups"], dict[str, str]]:
    return "groups", groups


def gpus_to_wire(count: int) -> tuple[Literal["gpus"], int]:
    """Worker -> controller, at start: how many GPUs the worker sees."""
    return "gpus", int(count)


def timeout_to_wire(nodeid: str, timeout: float) -> tuple[Literal["timeout"], TimedOut]:
    return "timeout", {"nodeid": nodeid, "timeout": timeout}


def forensics_to_wire(worker: str, text: str) -> tuple[Literal["forensics"], Forensics]:
    return "forensics", {"worker": worker, "text": text}


# -- from the wire (untrusted) --------------------------------------------------------
def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def attempt_from_wire(data: object) -> AttemptMeta | None:
    """On the worker: the controller's word on a test's attempt, or None."""
    if not isinstance(data, dict):
        return None
    attempt, factor = _number(data.get("attempt")), _number(data.get("timeout_factor"))
    return {
        "nodeid": str(data.get("nodeid")),
        "attempt": int(attempt) if attempt is not None and attempt >= 1 else 1,
        "timeout_factor": factor if factor is not None and factor >= 1.0 else 1.0,
        "hardware": _strings(data.get("hardware")),
    }


def from_wire(message: object) -> Message | None:
    """A worker's message in its typed shape, or None if it is not one."""
    if not isinstance(message, (tuple, list)) or len(message) != 2:
        return None
    kind, data = message
    if kind == "hb" and isinstance(data, dict):
        beat: Heartbeat = {}
        for key in ("rss_mb", "MemTotal", "MemAvailable"):
            number = _number(data.get(key))
            if number is not None:
                beat[key] = int(number)
        return "hb", beat
    if kind == "tags":
        return "tags", _strings(data)
    if kind == "requirements" and isinstance(data, dict):
        reqs: dict[str, Requirement] = {}
        for nodeid, req in data.items():
            if isinstance(req, dict):
                need: Requirement = {"any": _strings(req.get("any")), "fallback": _strings(req.get("fallback"))}
                gpus = _number(req.get("gpus"))
                if gpus is not None and gpus.is_integer() and 1 <= gpus <= MAX_GPUS:
                    need["gpus"] = int(gpus)
                if req.get("exclusive") is True:
                    need["exclusive"] = True
                reqs[str(nodeid)] = need
        return "requirements", reqs
    if kind == "groups" and isinstance(data, dict):
        return "groups", {str(k): str(v) for k, v in data.items()}
    if kind == "gpus":
        count = _number(data)
        return ("gpus", int(count)) if count is not None and 0 <= count < 1_000_000 else None
    if kind == "forensics" and isinstance(data, dict):
        text = data.get("text")
        left: Forensics = {
            "worker": str(data.get("worker"))[:200],
            "text": text[:MAX_FORENSICS] if isinstance(text, str) else "",
        }
        return "forensics", left
    if kind == "timeout" and isinstance(data, dict):
        timed_out: TimedOut = {"nodeid": str(data.get("nodeid")), "timeout": _number(data.get("timeout")) or 0.0}
        return "timeout", timed_out
    return None
