"""pytest-dtf-errors: error categories, cross-worker retries, hardware routing and
error-pattern reports for pytest-xdist runs.

The public Python API is the guide's: the error engine (usable without pytest)
and ``integrate_error_handler`` for any coordinator.
"""

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

__version__ = "0.1.0"

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
