import os
import tempfile
from pathlib import Path


def test_enqueue(dtf_attempt, testrun_uid):
    # the queue broker is unreachable from the first worker that tries
    marker = Path(tempfile.gettempdir()) / f"dtf-veto-{testrun_uid}"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "local")
    if dtf_attempt == 1:
        marker.write_text(worker)
        raise ConnectionRefusedError(111, "Connection refused (queue.internal:5672)")
    assert marker.read_text() != worker, "the retry runs on another worker"
