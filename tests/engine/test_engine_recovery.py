"""Recovery strategies: applicability, guide result keys, structured actions."""

from __future__ import annotations

import pytest

from pytest_dtf_errors.engine import (
    ErrorCategory,
    HardwareRecoveryStrategy,
    NetworkRecoveryStrategy,
    RecoveryStrategy,
    ResourceRecoveryStrategy,
    TestExecutionRecoveryStrategy,
    WorkerRecoveryStrategy,
    actions,
)

E = ErrorCategory
KEYS = {"success", "strategy", "actions_taken", "retry_recommended", "actions"}


def ctx(category, **extra):
    base = {"worker_id": "gw1", "host": "h1", "hardware_type": "cuda", "attempt_count": 1,
            "test_id": "t::a", "timeout": 10.0, "node_failures": 0, "category": category}
    base.update(extra)
    return base


def kinds(result):
    return [a["kind"] for a in result["actions"]]


def test_abc_cannot_be_instantiated():
    with pytest.raises(TypeError):
        RecoveryStrategy()  # type: ignore[abstract]


@pytest.mark.parametrize(("strategy", "categories"), [
    (ResourceRecoveryStrategy(), {E.RESOURCE_EXHAUSTED, E.RESOURCE_NOT_FOUND,
                                  E.RESOURCE_UNAVAILABLE, E.SYSTEM_RESOURCE_LIMIT}),
    (NetworkRecoveryStrategy(), {E.NETWORK_TIMEOUT, E.NETWORK_CONNECTION_ERROR,
                                 E.NETWORK_SERVER_ERROR}),
    (HardwareRecoveryStrategy(), {E.HARDWARE_NOT_AVAILABLE, E.HARDWARE_MISMATCH,
                                  E.HARDWARE_COMPATIBILITY_ERROR}),
    (WorkerRecoveryStrategy(), {E.WORKER_DISCONNECTED, E.WORKER_TIMEOUT, E.WORKER_CRASHED,
                                E.SYSTEM_CRASH}),
    (TestExecutionRecoveryStrategy(), {E.TEST_ASSERTION_ERROR, E.TEST_IMPORT_ERROR,
                                       E.TEST_DEPENDENCY_ERROR, E.TEST_SYNTAX_ERROR}),
])
def test_is_applicable_partition(strategy, categories):
    for cat in ErrorCategory:
        assert strategy.is_applicable(cat, "cpu") == (cat in categories)
    for cat in categories:
        result = strategy.recover("task1", {"type": "X", "message": "m"}, ctx(cat))
        assert KEYS <= set(result)
        assert all(isinstance(s, str) for s in result["actions_taken"])
        assert len(result["actions_taken"]) >= 1
        assert all(a["kind"] in actions.KINDS for a in result["actions"])


def test_resource_exhausted_avoids_node_and_quarantines_repeat_offender():
    s = ResourceRecoveryStrategy()
    r = s.recover("t", {}, ctx(E.RESOURCE_EXHAUSTED))
    assert r["actions"] == [actions.avoid_node("gw1")]
    assert r["retry_recommended"] is True
    r = s.recover("t", {}, ctx(E.RESOURCE_EXHAUSTED, node_failures=3))
    assert kinds(r) == ["avoid_node", "quarantine_node"]
    r = s.recover("t", {}, ctx(E.RESOURCE_UNAVAILABLE))
    assert kinds(r) == ["prefer_other_node"]


def test_network_timeout_scales_timeout_and_prefers_other_node():
    s = NetworkRecoveryStrategy()
    r = s.recover("t", {}, ctx(E.NETWORK_TIMEOUT))
    assert r["actions"] == [actions.scale_timeout(1.5), actions.prefer_other_node("gw1")]
    r = s.recover("t", {}, ctx(E.NETWORK_CONNECTION_ERROR))
    assert kinds(r) == ["prefer_other_node"]
    r = s.recover("t", {}, ctx(E.NETWORK_SERVER_ERROR, worker_id=None))
    assert r["actions"] == [] and r["retry_recommended"]


def test_hardware_marks_unavailable_and_routes():
    s = HardwareRecoveryStrategy()
    r = s.recover("t", {}, ctx(E.HARDWARE_NOT_AVAILABLE))
    assert r["actions"][:2] == [actions.mark_unavailable("gw1", "cuda"), actions.avoid_node("gw1")]
    r = s.recover("t", {}, ctx(E.HARDWARE_MISMATCH, required_hardware=["cuda"]))
    assert kinds(r) == ["avoid_node", "require_hardware"]
    r = s.recover("t", {}, ctx(E.HARDWARE_COMPATIBILITY_ERROR, alternative_hardware=["rocm", "cuda"]))
    assert r["actions"][-1] == actions.prefer_hardware(["rocm"])
    # hardware type from the error's hardware_context when the context has none
    r = s.recover("t", {"hardware_context": {"hardware_type": "mps"}},
                  ctx(E.HARDWARE_NOT_AVAILABLE, hardware_type=None))
    assert r["actions"][0] == actions.mark_unavailable("gw1", "mps")


def test_worker_strategies():
    s = WorkerRecoveryStrategy()
    r = s.recover("t", {}, ctx(E.WORKER_CRASHED))
    assert kinds(r) == ["restart_worker", "avoid_node"]
    r = s.recover("t", {}, ctx(E.WORKER_CRASHED, node_failures=5))
    assert kinds(r) == ["restart_worker", "avoid_node", "quarantine_node"]
    r = s.recover("t", {}, ctx(E.WORKER_TIMEOUT))
    assert r["actions"] == [actions.scale_timeout(2.0), actions.prefer_other_node("gw1")]
    r = s.recover("t", {}, ctx(E.WORKER_DISCONNECTED))
    assert kinds(r) == ["avoid_node"]


def test_test_execution_never_recommends_retry():
    s = TestExecutionRecoveryStrategy()
    for cat in (E.TEST_ASSERTION_ERROR, E.TEST_SYNTAX_ERROR, E.TEST_IMPORT_ERROR,
                E.TEST_DEPENDENCY_ERROR):
        r = s.recover("t", {}, ctx(cat))
        assert r["retry_recommended"] is False and r["actions"] == []


def test_action_constructors_and_describe():
    assert actions.avoid_node("gw3") == {"kind": "avoid_node", "node": "gw3"}
    assert actions.mark_unavailable("gw3", "cuda") == {"kind": "mark_unavailable", "node": "gw3",
                                                       "hardware": "cuda"}
    assert actions.require_hardware(("cuda",)) == {"kind": "require_hardware",
                                                   "hardware": ["cuda"]}
    assert actions.prefer_hardware(["cpu"]) == {"kind": "prefer_hardware", "hardware": ["cpu"]}
    assert actions.prefer_other_node("gw1") == {"kind": "prefer_other_node", "node": "gw1"}
    assert actions.quarantine_node("gw1", "why") == {"kind": "quarantine_node", "node": "gw1",
                                                     "reason": "why"}
    assert actions.scale_timeout(2) == {"kind": "scale_timeout", "factor": 2.0}
    assert actions.restart_worker("gw1") == {"kind": "restart_worker", "node": "gw1"}
    for kind in actions.KINDS:
        assert getattr(actions, kind)
    assert "gw3" in actions.describe(actions.avoid_node("gw3"))
    assert actions.describe({"kind": "mystery"}) == "action mystery"
