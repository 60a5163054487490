"""WorkerBook: the one owner of every fact about the run's workers.

Host, hardware tags, GPUs, unavailable hardware, quarantine, lost workers and
hosts, starting workers, the last heartbeat, memory, the test pytest-timeout
is about to end, and what the workers reported of the tests they collected
(hardware markers, xdist groups): each lives here and nowhere else. The
scheduler reads it, the decisions read it, the reports read its records
through the ledger. Pure: no pytest, no xdist.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypedDict, final

__all__ = ["Memory", "NodeRecord", "Requirement", "WorkerBook"]


class _Required(TypedDict):
    any: list[str]
    fallback: list[str]


class Requirement(_Required, total=False):
    """A test's ``@pytest.mark.hardware``: any of these tags; what a retry may fall back to;
    how many GPUs the worker must hold; whether it must run alone on its host."""

    gpus: int
    exclusive: bool


class Memory(TypedDict, total=False):
    """A heartbeat's memory figures, in MiB."""

    rss_mb: int
    MemTotal: int
    MemAvailable: int


class NodeDict(TypedDict):
    """A worker as the JSON report writes it."""

    id: str
    host: str | None
    hardware: list[str]
    gpus: str | None
    crashes: int
    quarantined: bool
    quarantine_reason: str | None
    quarantine_declined: str | None
    lost: bool
    lost_reason: str | None


@final
class NodeRecord:
    """One worker as the controller saw it."""

    __slots__ = (
        "crashes", "gpu_count", "gpus", "hardware", "host", "id", "last_seen", "linked", "lost", "lost_reason",
        "memory", "peak_rss_mb", "poisoned", "quarantine_declined", "quarantine_reason", "quarantined",
        "ready", "retiring", "timing_out", "unconfirmed",
    )

    def __init__(self, id: str) -> None:
        self.id = id
        self.host: str | None = None
        # replaced when it changes, never changed in place: attempts share it
        self.hardware: list[str] = []
        self.gpus: str | None = None  # CUDA_VISIBLE_DEVICES given by --dtf-gpus-per-worker
        self.gpu_count: int | None = None  # GPUs the worker sees, as it reported them
        self.crashes = 0
        self.quarantined = False
        self.quarantine_reason: str | None = None
        # the evidence would have quarantined it (or nearly): why it was not
        self.quarantine_declined: str | None = None
        self.lost = False
        self.lost_reason: str | None = None
        self.linked = False  # the DTF link is up (heartbeats, the flush item)
        self.last_seen: float | None = None  # time.monotonic() of its last link message
        self.memory: Memory = {}
        self.peak_rss_mb: int | None = None  # the largest RSS a heartbeat reported
        # the sticky GPU error that poisoned its process (the signature), if one did
        self.poisoned: str | None = None
        self.timing_out: str | None = None  # the test pytest-timeout's thread method is ending
        self.ready = False  # started and ready for work (False again once it is down)
        self.retiring: str | None = None  # why it is being replaced by a fresh process (restart_worker)
        # tests whose last report arrived and whose completion xdist has not reported yet
        self.unconfirmed: set[str] = set()

    def __repr__(self) -> str:
        return f"NodeRecord(id={self.id!r}, host={self.host!r}, hardware={self.hardware!r})"

    def to_dict(self) -> NodeDict:
        return {
            "id": self.id,
            "host": self.host,
            "hardware": list(self.hardware),
            "gpus": self.gpus,
            "crashes": self.crashes,
            "quarantined": self.quarantined,
            "quarantine_reason": self.quarantine_reason,
            "quarantine_declined": self.quarantine_declined,
            "lost": self.lost,
            "lost_reason": self.lost_reason,
        }


@final
class WorkerBook:
    """Every worker of the session, and the facts of hosts and hardware between them."""

    def __init__(self, host_tags: dict[str, list[str]] | None = None) -> None:
        self.nodes: dict[str, NodeRecord] = {}
        self.host_tags = host_tags or {}  # config: worker id or host -> extra tags
        self.unavailable: set[tuple[str, str]] = set()  # (worker, hardware) a hardware error ruled out
        self.lost_hosts: dict[str, str] = {}  # host -> why it cannot be reached
        self.starting: set[str] = set()  # configured, not ready yet
        self.replacing = 0  # a crashed worker's replacement xdist is about to start
        self.requirements: dict[str, Requirement] = {}  # nodeid -> its hardware marker
        self.groups: dict[str, str] = {}  # nodeid -> its xdist_group (--dist loadgroup)
        # exclusive tests run: (nodeid, host, seconds the host's other workers were drained)
        self.exclusive_runs: list[tuple[str, str, float]] = []

    def __iter__(self) -> Iterator[NodeRecord]:
        return iter(self.nodes.values())

    def node(self, name: str) -> NodeRecord:
        rec = self.nodes.get(name)
        if rec is None:
            rec = self.nodes[name] = NodeRecord(name)
        return rec

    # -- facts, as they arrive ---------------------------------------------------
    def configured(self, name: str, host: str, gpus: str | None) -> None:
        """A worker was started on ``host`` (with ``gpus`` pinned, if any)."""
        rec = self.node(name)
        rec.host = host
        if gpus is not None:
            rec.gpus = gpus
        self.starting.add(name)

    def now_ready(self, name: str) -> None:
        self.node(name).ready = True
        self.starting.discard(name)

    def down(self, name: str) -> None:
        self.node(name).ready = False
        self.starting.discard(name)

    def add_tags(self, name: str, tags: Iterable[str]) -> None:
        """Tags a worker detected (or its hooks added), with the config's for it and its host."""
        rec = self.node(name)
        extra = self.host_tags.get(name, []) + self.host_tags.get(rec.host or "", [])
        rec.hardware = sorted({*rec.hardware, *tags, *extra})

    def mark_unavailable(self, name: str, hardware: str) -> None:
        self.unavailable.add((name, hardware))

    def quarantine(self, name: str, reason: str) -> None:
        rec = self.node(name)
        rec.quarantined = True
        rec.quarantine_reason = reason
        rec.quarantine_declined = None

    def retire(self, name: str, reason: str) -> None:
        """Replace the worker by a fresh process once its running test is done."""
        self.node(name).retiring = reason

    def lose(self, name: str, reason: str) -> None:
        rec = self.node(name)
        rec.lost = True
        rec.lost_reason = reason

    def lose_host(self, host: str, reason: str) -> None:
        self.lost_hosts[host] = reason

    # -- questions ----------------------------------------------------------------
    def requirement(self, nodeid: str) -> tuple[str, ...]:
        info = self.requirements.get(nodeid)
        return tuple(info["any"]) if info else ()

    def fallback(self, nodeid: str) -> tuple[str, ...]:
        info = self.requirements.get(nodeid)
        return tuple(info.get("fallback") or ()) if info else ()

    def starting_workers(self) -> int:
        """Workers on their way: started and not ready, or a replacement xdist will start."""
        return len(self.starting) + self.replacing

    def tags(self, name: str) -> set[str]:
        """The tags a worker can still run: its own, less the hardware ruled out there."""
        rec = self.nodes.get(name)
        if rec is None or not rec.hardware:
            return {"cpu"}
        if not self.unavailable:
            return set(rec.hardware)
        return {t for t in rec.hardware if (name, t) not in self.unavailable}

    def takes_work(self, name: str) -> bool:
        rec = self.nodes.get(name)
        return rec is None or not (rec.quarantined or rec.lost or rec.retiring)

    def candidates(self, avoid: Iterable[str] = (), hardware: tuple[str, ...] = ()) -> list[str]:
        """Workers, in start order, that could run a retry needing any of ``hardware``:
        not avoided, lost or quarantined, on a host that is not lost. Workers shut down
        at the tail of the run count: a retry starts a new worker from their spec."""
        skip = set(avoid)
        out = []
        for name, rec in self.nodes.items():
            if name in skip or rec.lost or rec.quarantined or rec.retiring or rec.host in self.lost_hosts:
                continue
            if not hardware or self.tags(name) & set(hardware):
                out.append(name)
        return out

    def same_host(self, name: str) -> set[str]:
        """Workers on ``name``'s host, unless that is this machine."""
        host = self.node(name).host
        if host in (None, "localhost"):
            return set()
        return {n for n, rec in self.nodes.items() if rec.host == host}

    def quarantined_others(self, name: str) -> int:
        return sum(1 for n in self.nodes.values() if n.quarantined and n.id != name)

    def silent(self, timeout: float, now: float) -> list[tuple[str, float]]:
        """Linked workers not heard from for over ``timeout`` seconds: (name, seconds)."""
        return [
            (name, now - rec.last_seen)
            for name, rec in self.nodes.items()
            if rec.last_seen is not None and not rec.lost and now - rec.last_seen > timeout
        ]
