"""Veto retries of smoke tests; always move one test's retry to another worker."""

from __future__ import annotations

from pathlib import PurePosixPath

ALWAYS_MOVE = {"tests/test_jobs.py::test_enqueue"}


def pytest_dtf_retry_decision(plan, error, config):
    """plan: pytest_dtf_errors.controller.RetryPlan, changed in place."""
    path = PurePosixPath(plan.nodeid.split("::")[0])
    if path.parts[:2] == ("tests", "smoke") and plan.retry:
        plan.veto("smoke tests are never retried: a smoke failure must stop the pipeline")
    if plan.nodeid in ALWAYS_MOVE:
        plan.move()  # never on plan.node, the worker that failed
