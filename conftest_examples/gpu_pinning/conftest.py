"""The GPUs this worker was given, as CUDA numbers them."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def my_gpus() -> list[str]:
    """Entries of this worker's CUDA_VISIBLE_DEVICES; the first is cuda:0."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return [g for g in (value or "").split(",") if g]
