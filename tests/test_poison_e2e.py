"""Sticky GPU errors: a poisoned worker is replaced, its victims retried, its culprit named.

The GPU is a fake with CUDA's behaviour: once a kernel faults, every later call
in the same process fails with the same error, until the process ends.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from pytest_dtf_errors.report import validate

CONFTEST = textwrap.dedent(
    """
    import pytest

    STICKY = (
        "CUDA error: an illegal memory access was encountered\\n"
        "CUDA kernel errors might be asynchronously reported at some other API call, "
        "so the stacktrace below might be incorrect."
    )
    _context = {"poisoned": False}  # one per process, like a CUDA context


    class FakeGPU:
        def launch(self, out_of_bounds=False):
            if out_of_bounds:
                _context["poisoned"] = True
            if _context["poisoned"]:
                raise RuntimeError(STICKY)


    @pytest.fixture
    def gpu():
        return FakeGPU()
    """
)

TESTS = textwrap.dedent(
    """
    import time

    def test_0_culprit(gpu, dtf_attempt):
        gpu.launch(out_of_bounds={bad})

    def test_1_victim(gpu):
        time.sleep(0.05)
        gpu.launch()

    def test_2_victim(gpu):
        time.sleep(0.05)
        gpu.launch()

    def test_3_victim(gpu):
        time.sleep(0.05)
        gpu.launch()
    """
)

OTHER = textwrap.dedent(
    """
    import time, pytest

    @pytest.mark.parametrize("i", range(6))
    def test_cpu(i):
        time.sleep(0.3)
    """
)


def _project(pytester: pytest.Pytester, bad: str) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gpu=TESTS.format(bad=bad), test_other=OTHER)
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_subprocess(
        "--dtf-retry", "--dtf-report", "r.json", "--junitxml", "j.xml", "-p", "no:cacheprovider",
        "-p", "no:randomly", *args,
    )
    report = json.loads((pytester.path / "r.json").read_text())
    validate(report)
    return result, report


def _tests(report: dict) -> dict[str, dict]:
    return {t["nodeid"].split("::")[-1]: t for t in report["tests"]}


def test_a_culprit_that_always_faults_is_confirmed_on_a_fresh_worker_and_its_victims_pass(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester, bad="True")
    result, report = _run(pytester, "-n", "2", "--dist", "loadfile")
    tests = _tests(report)
    culprit = tests["test_0_culprit"]
    assert culprit["outcome"] == "failed"
    assert len(culprit["attempts"]) == 2
    assert all(a["category"] == "hardware_not_available" for a in culprit["attempts"])
    first, second = culprit["attempts"][0]["node"], culprit["attempts"][1]["node"]
    assert first != second
    assert culprit["reason"].startswith(f"reproduced on a fresh worker ({second}: illegal memory access)")
    assert f" on {first} failed after it" in culprit["reason"]
    assert culprit["poison"]["role"] == "culprit"
    victims = [t for t in tests.values() if (t.get("poison") or {}).get("role") == "victim"]
    # test_1 was the culprit's next item there: it ran on the poisoned worker whatever happens
    assert "test_1_victim" in {t["nodeid"].split("::")[-1] for t in victims}
    for v in victims:
        assert v["outcome"] == "passed", v
        assert v["attempts"][0]["node"] == first and v["attempts"][-1]["node"] != first
        assert v["reason"].startswith("victim of test_gpu.py::test_0_culprit (illegal memory access poisoned")
    # the tests of the poisoned worker that had not started ran elsewhere, without failing
    assert tests["test_3_victim"]["outcome"] == "passed"
    assert report["summary"]["victims"] == len(victims)
    assert report["summary"]["flaky"] == 0  # victims are not flaky
    poisoned = report["poisoned"]
    assert poisoned[0]["worker"] == first and poisoned[0]["culprit"].endswith("test_0_culprit")
    assert poisoned[0]["reproduced_on"] == second
    assert sorted(poisoned[0]["victims"]) == sorted(v["nodeid"] for v in victims)
    text = result.stdout.str()
    assert f"dtf: restarting {first}: illegal memory access poisoned its GPU context" in text
    assert "poisoned workers (2): one sticky GPU error each, not one failure per test" in text
    assert f"{first}: illegal memory access, first hit by test_gpu.py::test_0_culprit (the suspected culprit)" in text
    assert f"it poisoned {second} too: reproduced on a fresh worker" in text
    assert "VICTIM" not in text or "victim" in text  # the word shows in -v only
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes.get("victim") == len(victims)
    assert result.ret == 1
    # JUnit properties name culprit and victims
    import xml.etree.ElementTree as ET

    cases = {c.get("name"): c for c in ET.parse(pytester.path / "j.xml").getroot().iter("testcase")}
    props = {name: {p.get("name"): p.get("value") for p in case.iter("property")} for name, case in cases.items()}
    assert props["test_0_culprit"]["dtf_poison_role"] == "culprit"
    assert props["test_1_victim"]["dtf_poison_role"] == "victim"
    assert props["test_1_victim"]["dtf_culprit"] == "test_gpu.py::test_0_culprit"
    assert props["test_1_victim"]["dtf_poison_worker"] == first
    assert props["test_1_victim"]["dtf_poison_signature"] == "illegal memory access"
    assert "dtf_poison_role" not in props["test_cpu[0]"]


def test_a_culprit_that_faults_once_is_flaky(pytester: pytest.Pytester) -> None:
    _project(pytester, bad="dtf_attempt == 1")
    result, report = _run(pytester, "-n", "2", "--dist", "loadfile")
    tests = _tests(report)
    assert tests["test_0_culprit"]["outcome"] == "flaky"
    assert tests["test_1_victim"]["outcome"] == "passed"
    assert tests["test_1_victim"]["poison"]["role"] == "victim"
    assert "it passed on a fresh worker: flaky" in result.stdout.str()
    assert result.ret == 0


def test_without_xdist_the_poisoned_session_is_named_and_not_retried_in_process(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester, bad="True")
    result, report = _run(pytester, "-p", "no:xdist")
    tests = _tests(report)
    culprit = tests["test_0_culprit"]
    assert culprit["outcome"] == "failed" and len(culprit["attempts"]) == 1
    assert "without xdist a retry would run in the same poisoned process" in culprit["reason"]
    for name in ("test_1_victim", "test_2_victim", "test_3_victim"):
        assert tests[name]["outcome"] == "failed"
        assert tests[name]["poison"] == {
            "role": "victim", "worker": "local", "signature": "illegal memory access",
            "culprit": "test_gpu.py::test_0_culprit",
        }
    assert "the rest of the session ran in a poisoned GPU context: 3 tests failed after it" in result.stdout.str()
    assert result.ret == 1
