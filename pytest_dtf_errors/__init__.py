"""pytest-dtf-errors: error categories, cross-worker retries, hardware routing and
error-pattern reports for pytest-xdist runs.

The public Python API is the guide's: the error engine (usable without pytest)
and ``integrate_error_handler`` for any coordinator. Names are imported on
first use, so loading the pytest plugin on a worker does not load the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "DistributedErrorHandler": "engine",
    "ErrorCategory": "engine",
    "HardwareRecoveryStrategy": "engine",
    "NetworkRecoveryStrategy": "engine",
    "RecoveryStrategy": "engine",
    "ResourceRecoveryStrategy": "engine",
    "RetryPolicy": "engine",
    "TestExecutionRecoveryStrategy": "engine",
    "WorkerRecoveryStrategy": "engine",
    "integrate_error_handler": "coordinator_error_integration",
}

__all__ = [
    "DistributedErrorHandler",
    "ErrorCategory",
    "HardwareRecoveryStrategy",
    "NetworkRecoveryStrategy",
    "RecoveryStrategy",
    "ResourceRecoveryStrategy",
    "RetryPolicy",
    "TestExecutionRecoveryStrategy",
    "WorkerRecoveryStrategy",
    "__version__",
    "integrate_error_handler",
]

if TYPE_CHECKING:
    from .coordinator_error_integration import integrate_error_handler
    from .engine import (
        DistributedErrorHandler,
        ErrorCategory,
        HardwareRecoveryStrategy,
        NetworkRecoveryStrategy,
        RecoveryStrategy,
        ResourceRecoveryStrategy,
        RetryPolicy,
        TestExecutionRecoveryStrategy,
        WorkerRecoveryStrategy,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
