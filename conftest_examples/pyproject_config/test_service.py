import pytest


class OperationalError(Exception):
    """Stands in for sqlite3.OperationalError / a DB driver's error."""


def test_flaky_download(dtf_attempt):
    if dtf_attempt == 1:
        raise ConnectionResetError(104, "Connection reset by peer")


def test_service_down():
    raise ConnectionRefusedError(111, "Connection refused (billing.internal:443)")


def test_db_locked(dtf_attempt):
    if dtf_attempt < 3:
        raise OperationalError("database is locked")


@pytest.mark.hardware("fpga")
def test_fpga_bitstream():
    pass


def test_totals():
    assert sum([1, 2, 3]) == 7
