"""integrate_error_handler on coordinators of several shapes."""

from __future__ import annotations

import asyncio

import pytest_dtf_errors
from pytest_dtf_errors.coordinator_error_integration import integrate_error_handler
from pytest_dtf_errors.engine import DistributedErrorHandler, ErrorCategory

E = ErrorCategory
CONN = {"type": "ConnectionError", "message": "Connection refused"}


def test_exported_from_package():
    assert pytest_dtf_errors.integrate_error_handler is integrate_error_handler


class Plain:
    def __init__(self):
        self.calls = []

    def handle_task_error(self, task_id, error, worker_id=None):
        self.calls.append(("task", task_id, error, worker_id))
        return "orig-task"

    def handle_worker_error(self, worker_id, error):
        self.calls.append(("worker", worker_id, error))
        return "orig-worker"


def test_plain_methods_still_called_and_result_stored():
    c = integrate_error_handler(Plain())
    assert isinstance(c.error_handler, DistributedErrorHandler)
    assert c.handle_task_error("t1", CONN, worker_id="gw2") == "orig-task"
    assert c.calls == [("task", "t1", CONN, "gw2")]
    assert c.last_error_result["category"] is E.NETWORK_CONNECTION_ERROR
    assert c.last_error_result["recovery_action"]["actions"] == [
        {"kind": "prefer_other_node", "node": "gw2"}]
    assert c.handle_worker_error("gw3", {"type": "WorkerCrashed", "message": "died"}) == "orig-worker"
    assert c.last_error_result["category"] is E.WORKER_CRASHED
    assert {"kind": "restart_worker", "node": "gw3"} in c.last_error_result["recovery_action"]["actions"]


def test_attempts_are_counted_per_task():
    c = integrate_error_handler(Plain())
    results = []
    for _ in range(3):
        c.handle_task_error("t1", CONN)
        results.append(c.last_error_result)
    assert [r["attempt_count"] for r in results] == [1, 2, 3]
    assert [r["retry"] for r in results] == [True, True, False]


class Kwargs:
    def __init__(self):
        self.results = []

    def handle_task_error(self, task_id, error, **kwargs):
        self.results.append(kwargs.get("error_result"))


def test_result_passed_as_kwarg_when_accepted_and_context_used():
    c = integrate_error_handler(Kwargs())
    c.handle_task_error("t", CONN, context={"attempt_count": 2, "worker_id": "gw1"})
    assert c.results[0]["attempt_count"] == 2


def test_idempotent_and_existing_handler_reused():
    handler = DistributedErrorHandler()
    c = Plain()
    c.error_handler = handler
    integrate_error_handler(c)
    wrapped = c.handle_task_error
    integrate_error_handler(c)
    assert c.handle_task_error is wrapped
    assert c.error_handler is handler
    other = DistributedErrorHandler()
    assert integrate_error_handler(Plain(), other).error_handler is other


def test_config_from_coordinator_attribute():
    c = Plain()
    c.error_handler_config = {"similarity_threshold": 0.5}
    integrate_error_handler(c)
    assert c.error_handler.config.similarity_threshold == 0.5


def test_coordinator_without_methods():
    class Nothing:
        pass

    n = integrate_error_handler(Nothing())
    assert isinstance(n.error_handler, DistributedErrorHandler)


def test_engine_failure_does_not_break_coordinator():
    class Exploding(DistributedErrorHandler):
        def handle_error(self, *a, **k):
            raise RuntimeError("engine bug")

    c = integrate_error_handler(Plain(), Exploding())
    assert c.handle_task_error("t", CONN) == "orig-task"
    assert c.last_error_result is None


def test_async_methods_are_wrapped_async():
    class Async:
        async def handle_task_error(self, task_id, error, error_result=None):
            return error_result

    c = integrate_error_handler(Async())
    result = asyncio.run(c.handle_task_error("t", TimeoutError("x")))
    assert result["category"] is E.NETWORK_TIMEOUT


def test_exceptions_and_strings_as_errors():
    c = integrate_error_handler(Plain())
    c.handle_task_error("t", MemoryError())
    assert c.last_error_result["category"] is E.RESOURCE_EXHAUSTED
    c.handle_worker_error("gw1", "Segmentation fault (core dumped)")
    assert c.last_error_result["category"] is E.WORKER_CRASHED
