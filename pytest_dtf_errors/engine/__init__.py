"""The error engine: pure Python (stdlib + rapidfuzz); imports neither pytest nor xdist.

Names are imported from their module on first use, so a process that only
needs the config loader (a pytest worker) does not pay for the classifier,
the patterns or rapidfuzz.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "actions": None,
    "ErrorCategory": "categories",
    "Classification": "classify",
    "ErrorClassifier": "classify",
    "coerce_record": "classify",
    "ConfigError": "config",
    "DtfConfig": "config",
    "load_config": "config",
    "load_config_file": "config",
    "load_pyproject": "config",
    "DistributedErrorHandler": "handler",
    "ErrorAggregator": "patterns",
    "ErrorPattern": "patterns",
    "normalize_message": "patterns",
    "record": None,
    "HardwareRecoveryStrategy": "recovery",
    "NetworkRecoveryStrategy": "recovery",
    "RecoveryStrategy": "recovery",
    "ResourceRecoveryStrategy": "recovery",
    "TestExecutionRecoveryStrategy": "recovery",
    "WorkerRecoveryStrategy": "recovery",
    "RetryPolicy": "retry",
    "default_policies": "retry",
}

if TYPE_CHECKING:
    from . import actions, record
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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name] or name}")
    value = module if _EXPORTS[name] is None else getattr(module, name)
    globals()[name] = value
    return value

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
    "record",
]
