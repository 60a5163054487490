"""The error engine: pure Python (stdlib + rapidfuzz); imports neither pytest nor xdist."""

from __future__ import annotations

from . import actions
from .categories import ErrorCategory
from .classify import Classification, ErrorClassifier, coerce_record
from .config import ConfigError, DtfConfig, load_config, load_config_file, load_pyproject
from .handler import DistributedErrorHandler
from .patterns import ErrorAggregator, ErrorPattern, normalize_message
from .recovery import (
    HardwareRecoveryStrategy,
    NetworkRecoveryStrategy,
    RecoveryStrategy,
    ResourceRecoveryStrategy,
    TestExecutionRecoveryStrategy,
    WorkerRecoveryStrategy,
)
from .retry import RetryPolicy, default_policies

__all__ = [
    "Classification",
    "ConfigError",
    "DistributedErrorHandler",
    "DtfConfig",
    "ErrorAggregator",
    "ErrorCategory",
    "ErrorClassifier",
    "ErrorPattern",
    "HardwareRecoveryStrategy",
    "NetworkRecoveryStrategy",
    "RecoveryStrategy",
    "ResourceRecoveryStrategy",
    "RetryPolicy",
    "TestExecutionRecoveryStrategy",
    "WorkerRecoveryStrategy",
    "actions",
    "coerce_record",
    "default_policies",
    "load_config",
    "load_config_file",
    "load_pyproject",
    "normalize_message",
]
