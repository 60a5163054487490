import os


def test_enqueue(dtf_attempt, tmp_path_factory):
    # the queue broker is unreachable from the first worker that tries
    # one file for all workers of the run, in pytest's temp dir (xdist: one folder per worker in it)
    marker = tmp_path_factory.getbasetemp().parent / "enqueue-first-worker"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "local")
    if dtf_attempt == 1:
        marker.write_text(worker)
        raise ConnectionRefusedError(111, "Connection refused (queue.internal:5672)")
    assert marker.read_text() != worker, "the retry runs on another worker"
