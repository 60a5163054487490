"""Hooks pytest-dtf-errors declares. Implement them in conftest.py or a plugin.

Every hook is optional. Examples that run are in conftest_examples/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .engine import ErrorCategory, RecoveryStrategy
    from .session.plan import RetryPlan


@pytest.hookspec(firstresult=True)
def pytest_dtf_classify(
    error: dict[str, Any], context: dict[str, Any], config: pytest.Config
) -> ErrorCategory | str | None:
    """Classify a failure before the built-in rules.

    ``error`` is the error record (type, qualname, mro, message, traceback,
    chain, phase, worker, hardware_context); ``context`` has test_id,
    worker_id, host, hardware_type and attempt_count. Return an
    ``ErrorCategory`` or its name or value to decide; return None to let the
    next implementation and then the built-in rules decide. First result wins.
    Runs on the controller.
    """


@pytest.hookspec
def pytest_dtf_retry_decision(plan: RetryPlan, error: dict[str, Any], config: pytest.Config) -> None:
    """Adjust or veto the retry decision of one failed attempt.

    ``plan`` holds the decision (``retry``, ``delay``, ``reason``) and where
    the retry may run (``avoid``, ``prefer_not``: sets of worker ids;
    ``hardware``: tags, any of which the worker needs). Change it in place:
    ``plan.veto("smoke tests are never retried")`` or ``plan.move()`` to send
    the retry to another worker. Budget, breaker and policy caps apply before
    this hook; a plan a hook turns into a retry still counts against the
    budget. Runs on the controller, once per failed attempt.
    """


@pytest.hookspec
def pytest_dtf_recovery_strategies(config: pytest.Config) -> list[RecoveryStrategy] | None:
    """Contribute recovery strategies to the engine.

    Return objects implementing the engine's ``RecoveryStrategy``
    (``is_applicable(error_category, hardware_type=None)`` and
    ``recover(task_id, error, context) -> dict``), e.g. the guide's
    ``CustomRecoveryStrategy``. They are consulted before the built-in ones.
    Structured ``actions`` in their result are executed like the built-ins'.
    Called once, on the controller, at session start.
    """


@pytest.hookspec
def pytest_dtf_hardware_tags(config: pytest.Config) -> list[str] | None:
    """Contribute hardware tags of this worker, for hardware the plugin cannot detect.

    Runs on each worker (and in-process without xdist) at start-up, e.g. to
    return ``["tpu"]`` when an environment variable says a TPU is attached.
    ``@pytest.mark.hardware("tpu")`` tests are then routed to that worker.
    """


@pytest.hookspec
def pytest_dtf_report(report: dict[str, Any], config: pytest.Config) -> None:
    """Add to the JSON report (``--dtf-report``) before it is written.

    ``report`` follows the packaged schema; add keys, do not remove the
    contract's. Runs on the controller at the end of the session.
    """
