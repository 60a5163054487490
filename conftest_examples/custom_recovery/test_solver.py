import pytest


@pytest.mark.parametrize("model", ["beam", "truss", "shell", "solid"])
def test_solve(license, model):
    assert license == "seat-1"
