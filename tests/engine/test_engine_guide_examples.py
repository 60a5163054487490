"""The guide's code examples, run as written (only the import paths are ours)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from pytest_dtf_errors.engine import ErrorCategory


def test_custom_error_handling_example(capsys):
    from pytest_dtf_errors.engine import DistributedErrorHandler

    # Create error handler
    error_handler = DistributedErrorHandler()

    # Handle an error
    error = {
        "type": "ConnectionError",
        "message": "Connection refused",
        "traceback": "...",
        "hardware_context": {
            "hardware_type": "cuda",
            "device_id": 0
        }
    }

    context = {
        "worker_id": "worker1",
        "hardware_type": "cuda",
        "attempt_count": 1
    }

    result = error_handler.handle_error("task123", error, context)

    # Check result
    if result["retry"]:
        print(f"Retry recommended with delay: {result['retry_delay']} seconds")

    if result["recovery_action"]:
        print(f"Recovery actions: {result['recovery_action']['actions_taken']}")

    out = capsys.readouterr().out
    assert "Retry recommended with delay:" in out
    assert "Recovery actions: [" in out
    assert result["category"] is ErrorCategory.NETWORK_CONNECTION_ERROR


def test_configuring_error_handling_example():
    from pytest_dtf_errors.engine import DistributedErrorHandler, ErrorCategory

    config = {
        # Custom error category mapping
        "error_categories": {
            "MyCustomError": ErrorCategory.RESOURCE_EXHAUSTED
        },

        # Custom retry policies
        "retry_policies": {
            "RESOURCE_EXHAUSTED": {
                "max_retries": 10,
                "retry_delay_seconds": 30,
                "retry_backoff_factor": 1.5
            }
        },

        # Custom error message patterns
        "error_patterns": {
            r"(?i)custom\s+error\s+pattern": "TEST_ASSERTION_ERROR"
        },

        # Similarity threshold for error aggregation
        "similarity_threshold": 0.75
    }

    # Create error handler with custom configuration
    error_handler = DistributedErrorHandler(config)

    assert error_handler.categorize_error({"type": "MyCustomError", "message": ""}) \
        is ErrorCategory.RESOURCE_EXHAUSTED
    assert error_handler.categorize_error({"type": "ValueError",
                                           "message": "a Custom  Error pattern"}) \
        is ErrorCategory.TEST_ASSERTION_ERROR
    assert error_handler.policy_for(ErrorCategory.RESOURCE_EXHAUSTED).max_retries == 10
    retry, delay = error_handler.should_retry("t", {"type": "MyCustomError"}, 1)
    assert retry and 27 <= delay <= 33
    assert error_handler.error_aggregator.similarity_threshold == 0.75


def test_extending_the_system_examples():
    # Adding Custom Error Categories
    import enum  # noqa: F401  (the guide imports it)

    from pytest_dtf_errors.engine import ErrorCategory

    # Create a subclass with additional categories
    class CustomErrorCategory(ErrorCategory):
        CUSTOM_ERROR = "custom_error"

    # Adding Custom Recovery Strategies
    from pytest_dtf_errors.engine import RecoveryStrategy

    class CustomRecoveryStrategy(RecoveryStrategy):
        """Custom recovery strategy."""

        def recover(self, task_id, error, context):
            """Implement custom recovery logic."""
            recovery_result = {
                "success": False,
                "strategy": "custom",
                "actions_taken": [],
                "retry_recommended": False
            }

            # Implement custom recovery logic
            recovery_result["actions_taken"].append("custom_action")
            recovery_result["success"] = True
            recovery_result["retry_recommended"] = True

            return recovery_result

        def is_applicable(self, error_category, hardware_type=None):
            """Determine if this strategy applies to the error."""
            return error_category in [
                ErrorCategory.CUSTOM_ERROR
            ]

    # Integrating Custom Strategies
    from pytest_dtf_errors.engine import DistributedErrorHandler

    handler = DistributedErrorHandler()
    handler.recovery_strategies.append(CustomRecoveryStrategy())

    assert ErrorCategory.CUSTOM_ERROR is CustomErrorCategory.CUSTOM_ERROR
    assert json.dumps(ErrorCategory.CUSTOM_ERROR) == '"custom_error"'
    strategy = handler.get_recovery_strategy(ErrorCategory.CUSTOM_ERROR)
    assert isinstance(strategy, CustomRecoveryStrategy)
    assert handler.get_recovery_strategy(ErrorCategory.NETWORK_TIMEOUT).name == "network"

    # A custom category reached through the config, handled by the custom strategy.
    configured = DistributedErrorHandler({
        "error_categories": {"LicenseError": "CUSTOM_ERROR"},
        "retry_policies": {"CUSTOM_ERROR": {"max_retries": 1, "retry_delay_seconds": 0}},
    })
    configured.recovery_strategies.append(CustomRecoveryStrategy())
    result = configured.handle_error("t1", {"type": "LicenseError", "message": "no seat"}, {})
    assert result["category"] is ErrorCategory.CUSTOM_ERROR
    assert result["recovery_action"]["actions_taken"] == ["custom_action"]
    assert result["recovery_action"]["actions"] == []
    assert result["retry"] is True


def test_coordinator_integration_example():
    from pytest_dtf_errors.coordinator_error_integration import integrate_error_handler

    class Coordinator:
        def __init__(self):
            self.seen = []

        def handle_task_error(self, task_id, error, error_result=None):
            self.seen.append((task_id, error_result))

    coordinator = Coordinator()
    # After coordinator is initialized
    coordinator = integrate_error_handler(coordinator)
    coordinator.handle_task_error("task1", {"type": "ConnectionError", "message": "refused"})
    assert coordinator.seen[0][1]["category"] is ErrorCategory.NETWORK_CONNECTION_ERROR


def test_logging_example():
    import logging as guide_logging

    guide_logging.getLogger("distributed_error_handler").setLevel(guide_logging.DEBUG)
    try:
        assert logging.getLogger("distributed_error_handler").isEnabledFor(logging.DEBUG)
    finally:
        guide_logging.getLogger("distributed_error_handler").setLevel(logging.NOTSET)


def test_engine_example_runs():
    out = subprocess.run([sys.executable, "-m", "pytest_dtf_errors.engine"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert "network_connection_error (rule type:ConnectionError)" in out
    assert "resource_exhausted (rule type:torch.OutOfMemoryError)" in out
    assert "test_assertion_error" in out and "No retry" in out
    assert "Patterns:" in out
