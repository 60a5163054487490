import os

import pytest


@pytest.mark.hardware("cuda")
@pytest.mark.parametrize("step", range(4))
def test_worker_sees_its_own_gpus(request, my_gpus, step):
    assert my_gpus, "a worker tagged cuda sees at least one GPU"
    # N, or a list of sizes ("1,1,2"): no worker holds more than the largest
    sizes = str(request.config.getoption("dtf_gpus_per_worker") or 0).split(",")
    per_worker = max(int(size) for size in sizes)
    if per_worker and os.environ.get("PYTEST_XDIST_WORKER"):
        # N GPUs each (fewer when the machine has fewer than N), never one twice
        assert len(my_gpus) <= per_worker, my_gpus
        assert len(set(my_gpus)) == len(my_gpus), my_gpus


def test_runs_anywhere():
    assert True
