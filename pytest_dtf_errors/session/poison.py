"""Poisoned workers: the test that broke a worker's GPU context, and the tests it took down.

A sticky GPU error (``engine.sticky``) fails every later GPU call of its
process. On a worker, the first test that hits one is the suspected
*culprit*; the tests that hit a sticky error after it there are its
*victims*. The worker is replaced; victims are retried on fresh workers; the
culprit is retried once on a fresh worker: it is confirmed when it poisons
that one too. Pure: no pytest, no xdist.
"""

from __future__ import annotations

from typing import Literal, TypedDict, final

__all__ = ["PoisonBook", "Poisoning", "Role"]


class PoisoningDict(TypedDict):
    """One poisoning as the JSON report writes it."""

    worker: str
    signature: str
    culprit: str
    victims: list[str]
    reproduced_on: str | None  # the fresh worker the culprit poisoned too, if it did


@final
class Poisoning:
    """One worker's GPU context, poisoned by one test."""

    __slots__ = ("culprit", "reproduced_on", "signature", "victims", "worker")

    def __init__(self, worker: str, signature: str, culprit: str) -> None:
        self.worker = worker
        self.signature = signature  # e.g. "illegal memory access"
        self.culprit = culprit
        self.victims: list[str] = []  # in the order they failed
        self.reproduced_on: str | None = None

    def __repr__(self) -> str:
        return f"Poisoning({self.worker!r}, {self.signature!r}, culprit={self.culprit!r}, victims={len(self.victims)})"

    def to_dict(self) -> PoisoningDict:
        return {
            "worker": self.worker,
            "signature": self.signature,
            "culprit": self.culprit,
            "victims": list(self.victims),
            "reproduced_on": self.reproduced_on,
        }


@final
class Role:
    """What a sticky failure was: the culprit of a poisoning (``reproduced``: the second
    worker it poisoned), or one of its victims."""

    __slots__ = ("kind", "poisoning", "reproduced")

    def __init__(self, kind: Literal["culprit", "victim"], poisoning: Poisoning, reproduced: Poisoning | None = None) -> None:
        self.kind = kind
        self.poisoning = poisoning
        self.reproduced = reproduced  # the first poisoning by the same test

    def __repr__(self) -> str:
        return f"Role({self.kind!r}, {self.poisoning!r})"


@final
class PoisonBook:
    """Every poisoning of the run, by worker and by test."""

    def __init__(self) -> None:
        self.poisonings: list[Poisoning] = []
        self.by_worker: dict[str, Poisoning] = {}
        self.by_culprit: dict[str, Poisoning] = {}  # a culprit's first poisoning
        self.victim_of: dict[str, Poisoning] = {}

    def failed(self, nodeid: str, worker: str, signature: str | None) -> Role | None:
        """``nodeid`` failed on ``worker``; ``signature`` is the sticky error it hit, if any."""
        if signature is None:
            return None
        poisoned = self.by_worker.get(worker)
        if poisoned is not None:
            if nodeid not in poisoned.victims and nodeid != poisoned.culprit:
                poisoned.victims.append(nodeid)
            self.victim_of.setdefault(nodeid, poisoned)
            return Role("victim", poisoned)
        poisoning = Poisoning(worker, signature, nodeid)
        self.poisonings.append(poisoning)
        self.by_worker[worker] = poisoning
        first = self.by_culprit.get(nodeid) or self.victim_of.get(nodeid)
        if first is not None:  # it did it again, on a fresh worker
            first.reproduced_on = worker
            return Role("culprit", poisoning, reproduced=first)
        self.by_culprit[nodeid] = poisoning
        return Role("culprit", poisoning)

    def role_of(self, nodeid: str) -> tuple[str, Poisoning] | None:
        """("culprit" | "victim", the poisoning) of a test, for the reports."""
        if nodeid in self.by_culprit:
            return "culprit", self.by_culprit[nodeid]
        if nodeid in self.victim_of:
            return "victim", self.victim_of[nodeid]
        return None
