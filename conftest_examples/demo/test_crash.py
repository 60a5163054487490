"""A crash: the first attempt takes its worker down (os._exit); xdist replaces the worker and
the retry passes on another one."""

import os


def test_native_extension(dtf_attempt):
    if dtf_attempt == 1:
        os._exit(1)  # as a segfaulting C extension would: no exception, the process is gone
    assert True
