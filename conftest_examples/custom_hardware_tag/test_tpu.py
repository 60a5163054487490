import os

import pytest


@pytest.mark.hardware("tpu")
@pytest.mark.parametrize("shape", [(8, 128), (128, 128), (1024, 8)])
def test_matmul_on_tpu(shape):
    # only a worker that the hook tagged "tpu" gets here
    assert os.environ.get("HAS_TPU") == "1"


@pytest.mark.parametrize("shape", [(8, 128), (128, 128), (1024, 8)])
def test_matmul_reference(shape):
    rows, cols = shape
    assert rows * cols > 0
