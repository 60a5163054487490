"""Tag workers that have a TPU, which the plugin does not detect by itself."""

from __future__ import annotations

import os


def pytest_dtf_hardware_tags(config):
    """Runs on each worker at start-up (and in-process without xdist)."""
    if os.environ.get("HAS_TPU") == "1":
        return ["tpu"]
    return None
