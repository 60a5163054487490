"""Structured recovery actions: plain JSON-ready dicts the controller executes.

Each constructor returns ``{"kind": ..., ...}``; ``KINDS`` lists every kind and
``describe`` turns one into the human sentence used in ``actions_taken``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "KINDS",
    "avoid_node",
    "describe",
    "mark_unavailable",
    "prefer_hardware",
    "prefer_other_node",
    "quarantine_node",
    "require_hardware",
    "restart_worker",
    "scale_timeout",
]

Action = dict[str, Any]

KINDS = (
    "avoid_node",
    "mark_unavailable",
    "require_hardware",
    "prefer_hardware",
    "prefer_other_node",
    "quarantine_node",
    "scale_timeout",
    "restart_worker",
)


def avoid_node(node: str) -> Action:
    """Do not run the retry on ``node`` (hard constraint)."""
    return {"kind": "avoid_node", "node": str(node)}


def mark_unavailable(node: str, hardware: str) -> Action:
    """``hardware`` on ``node`` is unusable for the rest of the run."""
    return {"kind": "mark_unavailable", "node": str(node), "hardware": str(hardware)}


def require_hardware(hardware: Iterable[str]) -> Action:
    """The retry must run on a worker carrying one of ``hardware``."""
    return {"kind": "require_hardware", "hardware": [str(h) for h in hardware]}


def prefer_hardware(hardware: Iterable[str]) -> Action:
    """The retry should run on a worker carrying one of ``hardware`` if one exists."""
    return {"kind": "prefer_hardware", "hardware": [str(h) for h in hardware]}


def prefer_other_node(node: str) -> Action:
    """Run the retry elsewhere if another worker is free (soft preference)."""
    return {"kind": "prefer_other_node", "node": str(node)}


def quarantine_node(node: str, reason: str) -> Action:
    """Send no more tests to ``node``."""
    return {"kind": "quarantine_node", "node": str(node), "reason": str(reason)}


def scale_timeout(factor: float) -> Action:
    """Multiply the test's timeout by ``factor`` for the retry."""
    return {"kind": "scale_timeout", "factor": float(factor)}


def restart_worker(node: str) -> Action:
    """Replace the worker process ``node``."""
    return {"kind": "restart_worker", "node": str(node)}


def describe(action: Action) -> str:
    """One human-readable sentence for an action dict."""
    kind = action.get("kind")
    node = action.get("node", "?")
    hw = action.get("hardware")
    hw_text = ", ".join(hw) if isinstance(hw, list) else str(hw)
    if kind == "avoid_node":
        return f"reallocate the task away from {node}"
    if kind == "mark_unavailable":
        return f"mark {hw_text} on {node} as unavailable"
    if kind == "require_hardware":
        return f"require hardware: {hw_text}"
    if kind == "prefer_hardware":
        return f"prefer hardware: {hw_text}"
    if kind == "prefer_other_node":
        return f"prefer a worker other than {node}"
    if kind == "quarantine_node":
        return f"quarantine {node} ({action.get('reason', '')})"
    if kind == "scale_timeout":
        return f"scale the timeout by {action.get('factor')}"
    if kind == "restart_worker":
        return f"restart worker {node}"
    return f"action {kind}"
