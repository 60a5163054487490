import socket
import time

import pytest


@pytest.mark.parametrize("i", range(8))
def test_anywhere(i):
    time.sleep(0.05)
    assert socket.gethostname()


@pytest.mark.hardware("cuda")
@pytest.mark.parametrize("i", range(2))
def test_on_the_gpu_host(i):
    time.sleep(0.05)
