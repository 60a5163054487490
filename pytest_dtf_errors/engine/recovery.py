"""RecoveryStrategy and the guide's five strategies: an error -> structured actions.

A strategy's ``recover`` returns the guide's dict (success, strategy,
actions_taken, retry_recommended) plus ``actions``: structured action dicts
from ``actions.py`` that a coordinator executes. Context keys read here:
worker_id, host, hardware_type, attempt_count, test_id, timeout (seconds or
None), node_failures (recent distinct failing tests on that node), and the
optional required_hardware / alternative_hardware (lists of hardware types).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from . import actions as act
from .categories import ErrorCategory
from .classify import coerce_record

__all__ = [
    "HardwareRecoveryStrategy",
    "NetworkRecoveryStrategy",
    "RecoveryStrategy",
    "ResourceRecoveryStrategy",
    "TestExecutionRecoveryStrategy",
    "WorkerRecoveryStrategy",
    "builtin_strategies",
]

E = ErrorCategory


def _category(error: Mapping[str, Any], context: Mapping[str, Any]) -> ErrorCategory | None:
    for value in (context.get("category"), error.get("category")):
        if value is not None:
            try:
                return ErrorCategory.lookup(value)
            except KeyError:
                return None
    return None


def _hw_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(v) for v in value]
    return []


class RecoveryStrategy(abc.ABC):
    """Decides what to do about one error of the categories it is applicable to."""

    #: Short name put in the result's "strategy" key.
    name = "base"
    #: A node with at least this many recent distinct failing tests is quarantined.
    quarantine_after = 3

    @abc.abstractmethod
    def recover(self, task_id: str, error: Any, context: Mapping[str, Any]) -> dict[str, Any]:
        """Return {success, strategy, actions_taken, retry_recommended, actions}."""

    @abc.abstractmethod
    def is_applicable(self, error_category: ErrorCategory, hardware_type: str | None = None) -> bool:
        """True if this strategy handles ``error_category`` (on ``hardware_type``)."""

    def _result(self, actions: list[dict[str, Any]], retry: bool,
                notes: list[str] | None = None) -> dict[str, Any]:
        return {
            "success": True,
            "strategy": self.name,
            "actions_taken": list(notes or []) + [act.describe(a) for a in actions],
            "retry_recommended": retry,
            "actions": actions,
        }

    def _quarantine(self, node: str | None, context: Mapping[str, Any],
                    reason: str) -> list[dict[str, Any]]:
        failures = context.get("node_failures")
        if node and isinstance(failures, int) and failures >= self.quarantine_after:
            return [act.quarantine_node(node, f"{failures} failing tests: {reason}")]
        return []


class _CategoryStrategy(RecoveryStrategy):
    """A built-in strategy: applicable to the categories in its CATEGORIES set."""

    CATEGORIES: frozenset[ErrorCategory] = frozenset()

    def is_applicable(self, error_category: ErrorCategory, hardware_type: str | None = None) -> bool:
        return error_category in self.CATEGORIES


class ResourceRecoveryStrategy(_CategoryStrategy):
    """Memory, disk, files, ports: retry on another node, quarantine a node that keeps failing."""

    name = "resource"
    CATEGORIES = frozenset({E.RESOURCE_EXHAUSTED, E.RESOURCE_NOT_FOUND, E.RESOURCE_UNAVAILABLE,
                            E.SYSTEM_RESOURCE_LIMIT})

    def recover(self, task_id: str, error: Any, context: Mapping[str, Any]) -> dict[str, Any]:
        error = coerce_record(error)
        node = context.get("worker_id")
        cat = _category(error, context)
        notes = [f"requested resource cleanup for {task_id}"]
        actions: list[dict[str, Any]] = []
        if node:
            if cat in (E.RESOURCE_UNAVAILABLE, E.RESOURCE_NOT_FOUND):
                actions.append(act.prefer_other_node(node))
            else:
                actions.append(act.avoid_node(node))
            actions += self._quarantine(node, context, "resources exhausted")
        return self._result(actions, True, notes)


class NetworkRecoveryStrategy(_CategoryStrategy):
    """Timeouts, refused connections, 5xx: back off, longer timeout, another node if free."""

    name = "network"
    CATEGORIES = frozenset({E.NETWORK_TIMEOUT, E.NETWORK_CONNECTION_ERROR, E.NETWORK_SERVER_ERROR})
    timeout_factor = 1.5

    def recover(self, task_id: str, error: Any, context: Mapping[str, Any]) -> dict[str, Any]:
        error = coerce_record(error)
        node = context.get("worker_id")
        cat = _category(error, context)
        actions: list[dict[str, Any]] = []
        notes = ["requested reconnection"]
        if cat in (E.NETWORK_TIMEOUT, None):
            actions.append(act.scale_timeout(self.timeout_factor))
        if cat is E.NETWORK_SERVER_ERROR:
            notes = ["backing off: the server answered with an error"]
        if node:
            actions.append(act.prefer_other_node(node))
        return self._result(actions, True, notes)


class HardwareRecoveryStrategy(_CategoryStrategy):
    """Missing or incompatible hardware: mark it unavailable on the node, run elsewhere."""

    name = "hardware"
    CATEGORIES = frozenset({E.HARDWARE_NOT_AVAILABLE, E.HARDWARE_MISMATCH,
                            E.HARDWARE_COMPATIBILITY_ERROR})

    def recover(self, task_id: str, error: Any, context: Mapping[str, Any]) -> dict[str, Any]:
        error = coerce_record(error)
        node = context.get("worker_id")
        hw_ctx = error.get("hardware_context")
        hw = context.get("hardware_type") or (
            hw_ctx.get("hardware_type") if isinstance(hw_ctx, Mapping) else None)
        cat = _category(error, context)
        actions: list[dict[str, Any]] = []
        if node and hw and cat is not E.HARDWARE_MISMATCH:
            actions.append(act.mark_unavailable(node, hw))
        if node:
            actions.append(act.avoid_node(node))
        required = _hw_list(context.get("required_hardware"))
        if required:
            actions.append(act.require_hardware(required))
        alternatives = [h for h in _hw_list(context.get("alternative_hardware")) if h != hw]
        if alternatives:
            actions.append(act.prefer_hardware(alternatives))
        return self._result(actions, True, ["updated hardware requirements"])


class WorkerRecoveryStrategy(_CategoryStrategy):
    """Crashed, lost or slow workers: restart, retry elsewhere, quarantine repeat offenders."""

    name = "worker"
    CATEGORIES = frozenset({E.WORKER_DISCONNECTED, E.WORKER_TIMEOUT, E.WORKER_CRASHED,
                            E.SYSTEM_CRASH})
    timeout_factor = 2.0

    def recover(self, task_id: str, error: Any, context: Mapping[str, Any]) -> dict[str, Any]:
        error = coerce_record(error)
        node = context.get("worker_id")
        cat = _category(error, context)
        actions: list[dict[str, Any]] = []
        notes: list[str] = []
        if cat is E.WORKER_TIMEOUT:
            actions.append(act.scale_timeout(self.timeout_factor))
            notes.append(f"marked {node or 'the worker'} as slow")
        if node:
            if cat in (E.WORKER_CRASHED, E.SYSTEM_CRASH):
                actions.append(act.restart_worker(node))
            actions.append(act.avoid_node(node) if cat is not E.WORKER_TIMEOUT
                           else act.prefer_other_node(node))
            actions += self._quarantine(node, context, f"worker {cat.value if cat else 'error'}")
        return self._result(actions, True, notes)


class TestExecutionRecoveryStrategy(_CategoryStrategy):
    """Assertion, import, syntax and dependency errors: recorded, never retried."""

    __test__ = False  # not a pytest test class
    name = "test_execution"
    CATEGORIES = frozenset({E.TEST_ASSERTION_ERROR, E.TEST_IMPORT_ERROR, E.TEST_DEPENDENCY_ERROR,
                            E.TEST_SYNTAX_ERROR})

    def recover(self, task_id: str, error: Any, context: Mapping[str, Any]) -> dict[str, Any]:
        cat = _category(coerce_record(error), context)
        notes = [f"recorded test failure of {context.get('test_id') or task_id}"]
        if cat is E.TEST_DEPENDENCY_ERROR:
            notes.insert(0, "checked dependencies: missing fixture or package")
        return self._result([], False, notes)


def builtin_strategies() -> list[RecoveryStrategy]:
    """Fresh instances of the five built-in strategies, in the guide's order."""
    return [ResourceRecoveryStrategy(), NetworkRecoveryStrategy(), HardwareRecoveryStrategy(),
            WorkerRecoveryStrategy(), TestExecutionRecoveryStrategy()]
