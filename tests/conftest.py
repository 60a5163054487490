"""Shared helpers for the plugin's end-to-end tests (pytester sessions)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester", "multihost_fixture"]

# The sessions these tests run would append their Markdown summaries to a CI's own page.
os.environ.pop("GITHUB_STEP_SUMMARY", None)
# None of them uses hypothesis, whose plugin takes about 0.45 s to import in every process
# (each session's controller and workers): without it a -n 2 session starts in half the time.
os.environ["PYTEST_ADDOPTS"] = f"{os.environ.get('PYTEST_ADDOPTS', '')} -p no:hypothesispytest".strip()

# -n 2 and in-process: every behaviour is checked both ways where it applies.
MODES = {"xdist": ["-n", "2"], "inprocess": ["-p", "no:xdist"]}


def run(pytester: pytest.Pytester, *args: str, timeout: float = 120) -> pytest.RunResult:
    """A real pytest session in a subprocess (xdist needs one)."""
    # pytest-retry and flaky (the bench extra) break -d --tx workers and shadow
    # rerunfailures' marker; they are never part of these sessions.
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:pytest-retry", "-p", "no:flaky", *args, timeout=timeout
    )


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    return result.parseoutcomes()


def attempts_log(path: Path) -> dict[str, list[tuple[int, str, float]]]:
    """Lines ``name attempt worker time`` that test bodies append, grouped by name."""
    out: dict[str, list[tuple[int, str, float]]] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        name, attempt, worker, t = line.split()
        out.setdefault(name, []).append((int(attempt), worker, float(t)))
    return out


# A conftest for pytester projects: tests call log(name, dtf_attempt) to record attempts.
LOGGING_CONFTEST = '''
import os, time, pytest

LOG = os.path.join(os.path.dirname(__file__), "attempts.log")

@pytest.fixture
def log(dtf_attempt):
    def write(name):
        with open(LOG, "a") as f:
            f.write("%s %d %s %.6f\\n" % (name, dtf_attempt,
                    os.environ.get("PYTEST_XDIST_WORKER", "local"), time.time()))
    return write
'''


def project_factory(pytester: pytest.Pytester, toml: str) -> Any:
    """``make(tests, delay=0.0, extra_toml="")``: a project of one test file that logs its attempts,
    with ``toml`` (formatted with ``delay``) as its pyproject.toml."""

    def make(tests: str, delay: float = 0.0, extra_toml: str = "") -> pytest.Pytester:
        pytester.makeconftest(LOGGING_CONFTEST)
        pytester.makepyprojecttoml(toml.format(delay=delay) + extra_toml)
        pytester.makepyfile(test_suite=tests)
        return pytester

    return make


def result_words(result: pytest.RunResult, test_name: str) -> list[str]:
    """The outcome words xdist's -v prints for one test, in order ("[gw0] [ 50%] PASSED t.py::x")."""
    return [
        line.split()[-2]
        for line in result.outlines
        if line.rstrip().endswith(test_name) and line.startswith("[gw")
    ]


def load_report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def final_line(result: pytest.RunResult) -> str:
    for line in reversed(result.outlines):
        if re.search(r" in [\d.]+s", line):
            return line
    return ""


FAKE_SMI = """#!/bin/sh
printf '0, H200, 143771, GPU-aaaa\\n1, H200, 143771, GPU-bbbb\\n2, H200, 143771, GPU-cccc\\n3, H200, 143771, GPU-dddd\\n'
"""


@pytest.fixture
def fake_gpus(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake nvidia-smi with 4 GPUs first on PATH, for the controller and its workers."""
    bindir = pytester.path / "fakebin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text(FAKE_SMI)
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("NVIDIA_VISIBLE_DEVICES", raising=False)
    return bindir

