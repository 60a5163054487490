"""Fixtures of the demo: a fake disk that is full on one worker, a fake database that is down.

Nothing here touches the network or the real disk; the failures are raised as
the real ones would be, so the plugin categorizes them as it would in a real run.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "local")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory shared by all workers of this run, inside pytest's own temp dir.

    xdist gives each worker a base temp dir of its own in one folder of the
    run; pytest keeps the last few runs' and removes older ones.
    """
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@pytest.fixture
def artifact_disk(run_dir: Path):
    """Writes a build artifact. The disk of one worker is full.

    Which worker? The first one that writes an artifact in this run: it claims
    the full disk (an atomic create of a file), so the demo behaves the same
    however xdist hands out the tests. Every later write on that worker fails
    with ENOSPC, on every other worker it works.
    """
    claim = run_dir / "full-disk-worker"
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pass
    else:
        os.write(fd, worker_id().encode())
        os.close(fd)
    full_disk_worker = claim.read_text()

    def write(name: str, data: bytes) -> int:
        if worker_id() == full_disk_worker:
            raise OSError(errno.ENOSPC, "No space left on device", f"/var/cache/build/{name}")
        return len(data)

    return write


@pytest.fixture
def database():
    """A database client whose server is down for the whole run."""

    class Client:
        def connect(self, shard: int) -> None:
            raise ConnectionRefusedError(
                111,
                f"could not connect to server: Connection refused (db-{shard}.internal:54{shard:02d})",
            )

    return Client()
