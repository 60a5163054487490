"""pytest-dtf-errors: error categories, cross-worker retries, hardware routing and
error-pattern reports for pytest-xdist runs.

The public Python API is the guide's: the error engine (usable without pytest)
and ``integrate_error_handler`` for any coordinator; and ``RetryPlan``, what the
``pytest_dtf_retry_decision`` hook edits. Names are imported on
first use, so loading the pytest plugin on a worker does not load the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API, the one list: name -> the module that defines it, imported on first use.
_PUBLIC = {
    "DistributedErrorHandler": "engine.handler",
    "ErrorCategory": "engine.categories",
    "HardwareRecoveryStrategy": "engine.recovery",
    "NetworkRecoveryStrategy": "engine.recovery",
    "RecoveryStrategy": "engine.recovery",
    "ResourceRecoveryStrategy": "engine.recovery",
    "RetryPlan": "session.plan",
    "RetryPolicy": "engine.retry",
    "TestExecutionRecoveryStrategy": "engine.recovery",
    "WorkerRecoveryStrategy": "engine.recovery",
    "integrate_error_handler": "coordinator_error_integration",
}

__all__ = ["__version__"] + list(_PUBLIC)

if TYPE_CHECKING:  # for type checkers only: tests/test_exports_unit.py holds it to _PUBLIC
    from .coordinator_error_integration import integrate_error_handler as integrate_error_handler
    from .engine.categories import ErrorCategory as ErrorCategory
    from .engine.handler import DistributedErrorHandler as DistributedErrorHandler
    from .engine.recovery import HardwareRecoveryStrategy as HardwareRecoveryStrategy
    from .engine.recovery import NetworkRecoveryStrategy as NetworkRecoveryStrategy
    from .engine.recovery import RecoveryStrategy as RecoveryStrategy
    from .engine.recovery import ResourceRecoveryStrategy as ResourceRecoveryStrategy
    from .engine.recovery import TestExecutionRecoveryStrategy as TestExecutionRecoveryStrategy
    from .engine.recovery import WorkerRecoveryStrategy as WorkerRecoveryStrategy
    from .engine.retry import RetryPolicy as RetryPolicy
    from .session.plan import RetryPlan as RetryPlan


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later reads do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
