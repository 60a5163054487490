"""A recovery strategy of our own, contributed with pytest_dtf_recovery_strategies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_dtf_errors.engine import ErrorCategory, RecoveryStrategy, actions


class LicenseRecoveryStrategy(RecoveryStrategy):
    """The guide's CustomRecoveryStrategy, returning a structured action too."""

    name = "license"

    def recover(self, task_id, error, context):
        worker = context.get("worker_id")
        recovery_result = {
            "success": False,
            "strategy": "license",
            "actions_taken": [],
            "retry_recommended": False,
            # structured actions are executed by the plugin, like the built-ins'
            "actions": [],
        }
        if worker:
            recovery_result["actions"].append(actions.avoid_node(worker))
            recovery_result["actions_taken"].append(f"license daemon on {worker} is suspect: retry elsewhere")
        recovery_result["success"] = True
        recovery_result["retry_recommended"] = True
        return recovery_result

    def is_applicable(self, error_category, hardware_type=None):
        return error_category in [ErrorCategory.RESOURCE_UNAVAILABLE]


def pytest_dtf_recovery_strategies(config):
    return [LicenseRecoveryStrategy()]


# -- the pretend license daemon ------------------------------------------------


class LicenseCheckoutError(Exception):
    pass


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "local")


@pytest.fixture
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory shared by all workers of this run, inside pytest's own temp dir.

    xdist gives each worker a base temp dir of its own in one folder of the
    run; pytest keeps the last few runs' and removes older ones.
    """
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@pytest.fixture
def license(run_dir: Path):
    """Checks out a license. The daemon of the first worker to ask is broken."""
    claim = run_dir / "license-claim"
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pass
    else:
        os.write(fd, worker_id().encode())
        os.close(fd)
    if worker_id() == claim.read_text():
        raise LicenseCheckoutError(f"license daemon not responding on {worker_id()} (port 27000)")
    return "seat-1"
