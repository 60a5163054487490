"""An order-dependent failure names the tests that ran before it in its worker process."""

from __future__ import annotations

import json
import textwrap

import pytest

TESTS = textwrap.dedent(
    """
    import os

    def test_a_polluter():
        os.environ["DTF_TEST_POLLUTED"] = "1"  # state left behind in this process

    def test_b_innocent():
        pass

    def test_c_polluted():
        if os.environ.get("DTF_TEST_POLLUTED"):
            raise ConnectionRefusedError(111, "the shared client is in a bad state")
    """
)


def test_a_failure_that_passes_elsewhere_lists_what_ran_before_it_there(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_order=TESTS, test_more="def test_x(): pass\ndef test_y(): pass\n")
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadfile", "--dtf-retry", "--dtf-report", "r.json", "-p", "no:cacheprovider",
        "-p", "no:randomly", "-v",
    )
    assert result.ret == 0
    report = json.loads((pytester.path / "r.json").read_text())
    polluted = next(t for t in report["tests"] if t["nodeid"].endswith("test_c_polluted"))
    assert polluted["outcome"] == "flaky"
    failed_on = polluted["attempts"][0]["node"]
    assert polluted["suspects"] == [{
        "node": failed_on,
        "attempt": 1,
        "tests": ["test_order.py::test_b_innocent", "test_order.py::test_a_polluter"],
    }]
    result.stdout.fnmatch_lines([
        f"    ran after, on {failed_on} (nearest first): test_order.py::test_b_innocent, test_order.py::test_a_polluter",
    ])
    # a test that passed at once has no suspects
    assert all("suspects" not in t for t in report["tests"] if t is not polluted)
