"""Crash forensics end to end: real crashes on real workers, and what the reports say of them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from conftest import load_report, run

SEGFAULT = """
import ctypes

def test_a():
    pass

def test_b():
    pass

def test_segv():
    ctypes.string_at(0)
"""
SEGV_LINE = 'test_crash.py", line 10 in test_segv'


@pytest.fixture
def tmp_dir(pytester, monkeypatch):
    """The sessions' temp dir (TMPDIR), to see what they leave behind."""
    path = pytester.path / "tmp"
    path.mkdir()
    monkeypatch.setenv("TMPDIR", str(path))
    return path


def _tests(path) -> dict[str, dict]:
    return {t["nodeid"].split("::")[1]: t for t in load_report(path)["tests"]}


def _system_err(path, name: str) -> str:
    cases = [c for c in ET.parse(path).getroot().iter("testcase") if c.get("name") == name]
    assert len(cases) == 1, cases
    err = cases[0].find("system-err")
    assert err is not None, ET.tostring(cases[0], encoding="unicode")
    return err.text or ""


@pytest.mark.parametrize("pytest_faulthandler", ["on", "off"])
def test_segfault_report_has_the_traceback_the_last_tests_and_the_signal(pytester, tmp_dir, pytest_faulthandler):
    pytester.makepyfile(test_crash=SEGFAULT)
    extra = ["-p", "no:faulthandler"] if pytest_faulthandler == "off" else []
    result = run(
        pytester, "-n", "2", "--dist", "loadfile", "--dtf-retry", "--dtf-max-retries", "1",
        "--dtf-report", "r.json", "--junitxml", "j.xml", "-o", "junit_logging=system-err", *extra,
    )
    out = result.stdout.str()
    assert result.ret == 1, out
    segv = _tests(pytester.path / "r.json")["test_segv"]
    assert segv["outcome"] == "failed"
    first, last = segv["attempts"]
    text = first["error"]["forensics"]
    assert SEGV_LINE in text, text  # faulthandler's traceback of the crashing thread
    assert "Fatal Python error: Segmentation fault" in text
    assert text.index("Current thread") < text.index(SEGV_LINE)
    assert "killed by SIGSEGV" in text
    # the loadfile worker ran test_a, then test_b, then crashed: nearest first
    assert text.index("test_crash.py::test_b (passed") < text.index("test_crash.py::test_a (passed"), text
    assert SEGV_LINE in last["error"]["forensics"]
    # the terminal's dtf section of the final crash
    section = out[out.index("-- dtf --"):]
    assert f"crash forensics of {last['node']}" in section and SEGV_LINE in section, out
    # JUnit: every crashed attempt's forensics in the testcase's <system-err>
    err = _system_err(pytester.path / "j.xml", "test_segv")
    assert err.count(SEGV_LINE) == 2 and "--- dtf crash forensics ---" in err, err
    # the workers' files went with the session: the clean ones at their exit, the rest at its end
    assert not list(tmp_dir.iterdir())


OOM = """
import os, signal, time

def test_hog():
    block = b"x" * (300 << 20)  # touched: resident
    time.sleep(1.5)  # a heartbeat reports it
    os.kill(os.getpid(), signal.SIGKILL)
    del block

def test_small_kill():
    time.sleep(1.5)
    os.kill(os.getpid(), signal.SIGKILL)
"""
# the controller reads the workers' cgroup limit; here it is 400 MiB
LIMIT_CONFTEST = """
import pytest_dtf_errors.forensics as forensics
forensics.memory_limit = lambda *args, **kwargs: (400, "test limit")
"""


def test_sigkill_after_a_big_allocation_is_likely_oom(pytester):
    pytester.makepyfile(test_oom=OOM)
    pytester.makeconftest(LIMIT_CONFTEST)
    result = run(pytester, "-n", "2", "--dtf-retry", "--dtf-max-retries", "0", "--dtf-report", "r.json")
    out = result.stdout.str()
    assert result.ret == 1, out
    tests = _tests(pytester.path / "r.json")
    hog = tests["test_hog"]["attempts"][0]
    assert (hog["error"]["type"], hog["category"]) == ("WorkerOOMKilled", "resource_exhausted"), hog
    text = hog["error"]["forensics"]
    assert "likely OOM-killed at 3" in text and "MiB RSS (memory limit 400 MiB, test limit)" in text, text
    assert "likely OOM-killed at" in hog["error"]["message"]
    assert "peak RSS 3" in text and "killed by SIGKILL" in text
    assert "faulthandler: wrote nothing (SIGKILL cannot be caught)" in text
    # a SIGKILL of a small worker is a crash, not an OOM
    small = tests["test_small_kill"]["attempts"][0]
    assert (small["error"]["type"], small["category"]) == ("WorkerCrash", "worker_crashed"), small
    assert "likely OOM" not in small["error"]["forensics"]
    assert "likely OOM-killed at 3" in out  # the terminal's dtf section


def test_a_proxied_workers_file_is_sent_by_its_replacement(pytester, tmp_dir):
    """A worker behind ``--px`` is not the controller's child: its replacement on that host reads
    its predecessor's file and sends it over the link."""
    pytester.makepyfile(test_crash=SEGFAULT)
    result = run(
        pytester, "--px", "popen//id=proxy", "--tx", "popen//via=proxy", "--dist", "load",
        "--dtf-retry", "--dtf-max-retries", "1", "--dtf-report", "r.json",
    )
    assert result.ret == 1, result.stdout.str()
    segv = _tests(pytester.path / "r.json")["test_segv"]
    first = segv["attempts"][0]["error"]["forensics"]
    assert "its file is on the worker's host" in first
    assert f"faulthandler ({segv['attempts'][0]['node']}, sent by " in first, first
    assert SEGV_LINE in first, first
    assert not [p for p in tmp_dir.iterdir() if p.name.endswith(".faulthandler")]  # read, then removed


def test_not_asked_for_nothing_changes(pytester, tmp_dir):
    """Without dtf's scheduler: no file, no forensics; pytest's faulthandler writes to stderr as before."""
    pytester.makepyfile(test_crash=SEGFAULT)
    result = run(pytester, "-n", "2", "--dtf-report", "r.json")
    assert result.ret == 1, result.stdout.str()
    segv = _tests(pytester.path / "r.json")["test_segv"]
    assert "forensics" not in segv["attempts"][0]["error"]
    assert SEGV_LINE in result.stderr.str()
    assert not list(tmp_dir.iterdir())
