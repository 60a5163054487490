"""GPU-sized tests end to end, with a fake nvidia-smi of 4 GPUs: hardware(gpus=N) routing,
mixed --dtf-gpus-per-worker sizes, and hardware(exclusive=True) running alone on its host."""

from __future__ import annotations

import ast
import json

import pytest
from conftest import outcomes, run

from pytest_dtf_errors import settings as dtf_settings
from pytest_dtf_errors.engine.errors import ConfigError

# each test appends "name worker CUDA_VISIBLE_DEVICES start end" to where.log
WHERE = """
import os, time, pytest

def where(name, seconds=0.0):
    start = time.time()
    time.sleep(seconds)
    with open(os.path.join(os.path.dirname(__file__), "where.log"), "a") as f:
        f.write("%s %s %r %.6f %.6f\\n" % (name, os.environ.get("PYTEST_XDIST_WORKER", "local"),
                os.environ.get("CUDA_VISIBLE_DEVICES"), start, time.time()))
"""


def where_log(pytester: pytest.Pytester) -> dict[str, list[tuple[str, str | None, float, float]]]:
    out: dict[str, list[tuple[str, str | None, float, float]]] = {}
    path = pytester.path / "where.log"
    for line in path.read_text().splitlines() if path.exists() else []:
        name, worker, cvd, start, end = line.split()
        out.setdefault(name, []).append((worker, ast.literal_eval(cvd), float(start), float(end)))
    return out


@pytest.fixture
def project(pytester: pytest.Pytester):
    def make(tests: str) -> pytest.Pytester:
        pytester.makepyfile(helpers=WHERE)
        pytester.makepyprojecttoml("[tool.dtf]\nbreaker_min_tests = 1000\n")
        pytester.makepyfile(test_suite="from helpers import where\n" + tests)
        return pytester

    return make


SIZED = """
import pytest

@pytest.mark.hardware("cuda", gpus=2)
@pytest.mark.parametrize("i", range(3))
def test_big(i):
    where("big%d" % i)

@pytest.mark.parametrize("i", range(6))
def test_small(i):
    where("small%d" % i)
"""


def test_a_gpus_test_runs_only_on_the_worker_that_holds_enough_gpus(project, fake_gpus):
    p = project(SIZED)
    tx = ["--dist", "load", "--tx", "popen//env:CUDA_VISIBLE_DEVICES=0", "--tx", "popen//env:CUDA_VISIBLE_DEVICES=1,2"]
    result = run(p, *tx, "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result) == {"passed": 9}
    log = where_log(p)
    assert {log[f"big{i}"][0][:2] for i in range(3)} == {("gw1", "1,2")}
    report = json.loads((p.path / "r.json").read_text())
    ran_on = {t["nodeid"].split("::")[-1]: t["attempts"][0]["node"] for t in report["tests"]}
    assert {ran_on[f"test_big[{i}]"] for i in range(3)} == {"gw1"}


def test_a_gpus_test_no_worker_can_hold_is_skipped_with_the_reason(project, fake_gpus):
    p = project(SIZED)
    result = run(p, "-n", "2", "--dtf-gpus-per-worker", "1", "-rs")
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result) == {"passed": 6, "skipped": 3}
    result.stdout.fnmatch_lines(["*requires hardware cuda with 2 GPUs; no worker has it (workers: gw0*, gw1*)*"])
    assert not [n for n in where_log(p) if n.startswith("big")]


def test_mixed_gpus_per_worker_gives_slices_that_do_not_overlap(project, fake_gpus):
    p = project(SIZED)
    result = run(p, "-n", "3", "--dtf-gpus-per-worker", "1,1,2")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*gw0*CUDA_VISIBLE_DEVICES='0'*"])
    result.stdout.fnmatch_lines(["*gw1*CUDA_VISIBLE_DEVICES='1'*"])
    result.stdout.fnmatch_lines(["*gw2*CUDA_VISIBLE_DEVICES='2,3'*"])
    log = where_log(p)
    assert {log[f"big{i}"][0][:2] for i in range(3)} == {("gw2", "2,3")}
    seen = {worker: cvd for runs in log.values() for worker, cvd, _, _ in runs}
    assert seen.items() <= {"gw0": "0", "gw1": "1", "gw2": "2,3"}.items()


@pytest.mark.parametrize(("visible", "expected"), [(None, "passed"), ("0", "skipped")])
def test_without_xdist_gpus_are_counted_on_this_machine(project, fake_gpus, monkeypatch, visible, expected):
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    p = project(SIZED)
    result = run(p, "-p", "no:xdist", "-rs", "test_suite.py::test_big[0]")
    assert outcomes(result) == {expected: 1}, result.stdout.str()
    if expected == "skipped":
        result.stdout.fnmatch_lines(["*requires hardware cuda with 2 GPUs; this machine has cpu, cuda and 1 GPU*"])


def test_a_bad_gpus_value_fails_the_test_saying_why(project, fake_gpus):
    p = project(
        """
import pytest

@pytest.mark.hardware("cuda", gpus="two")
def test_bad():
    pass
"""
    )
    result = run(p, "-p", "no:xdist")
    assert outcomes(result) == {"errors": 1}  # in its setup, as a missing fixture would be
    result.stdout.fnmatch_lines(["*hardware(gpus=...) must be a whole number of GPUs from 0 to 1024, got 'two'*"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1,x", "--dtf-gpus-per-worker: entry 2 of '1,x' must be a int, got 'x'"),
        ("1,,2", "--dtf-gpus-per-worker: entry 2 of '1,,2' must be a int, got ''"),
        ("1,2000", "--dtf-gpus-per-worker: entry 2 of '1,2000' must be between 0 and 1024, got '2000'"),
        ("-1", "--dtf-gpus-per-worker: must be between 0 and 1024, got '-1'"),
    ],
)
def test_bad_gpus_per_worker_is_a_usage_error_naming_the_key(value, message):
    with pytest.raises(ConfigError) as info:
        dtf_settings.BY_KEY["gpus_per_worker"].check(value, "--dtf-gpus-per-worker")
    assert str(info.value) == message


def test_gpus_per_worker_reads_a_number_a_list_or_a_toml_list():
    check = dtf_settings.BY_KEY["gpus_per_worker"].check
    assert check("2", "k") == 2
    assert check("1, 1,2", "k") == (1, 1, 2)
    assert check([0, 2], "k") == (0, 2)
    assert check(0, "k") == 0


def test_bad_gpus_per_worker_stops_the_run_at_start(pytester):
    pytester.makepyfile("def test_a(): pass")
    result = run(pytester, "-n", "2", "--dtf-gpus-per-worker", "1,two")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest-dtf-errors: --dtf-gpus-per-worker: entry 2 of '1,two'*"])


EXCLUSIVE = """
import pytest

@pytest.mark.hardware(exclusive=True)
def test_alone(dtf_attempt):
    where("alone%d" % dtf_attempt, 0.4)
    if dtf_attempt == 1:
        raise ConnectionRefusedError(111, "could not connect to server: Connection refused")

@pytest.mark.parametrize("i", range(48))
def test_other(i):
    where("other%d" % i, 0.1)
"""


def test_an_exclusive_test_runs_while_no_other_test_of_its_host_runs(project):
    p = project(EXCLUSIVE)
    result = run(p, "-n", "3", "--dtf-retry", "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result) == {"passed": 48, "rerun": 1, "flaky": 1}, result.stdout.str()
    log = where_log(p)
    alone = log["alone1"] + log["alone2"]  # the first attempt, then its retry: each drained the host
    others = [r for name, runs in log.items() if name.startswith("other") for r in runs]
    assert len(alone) == 2 and len(others) == 48
    for _, _, start, end in alone:
        overlapping = [(w, s, e) for w, _, s, e in others if s < end and e > start]
        assert not overlapping, (start, end, overlapping)
    # the retry (due 0.5 s after the first attempt) came while the others ran: they went on
    # before it, stopped for it and resumed after it
    first_end, (_, _, retry_start, retry_end) = log["alone1"][0][3], log["alone2"][0]
    assert any(first_end < s and e <= retry_start for _, _, s, e in others)
    assert any(s >= retry_end for _, _, s, _ in others)
    report = json.loads((p.path / "r.json").read_text())
    finals = {t["nodeid"].split("::")[-1]: t["outcome"] for t in report["tests"]}
    assert finals["test_alone"] == "flaky" and list(finals.values()).count("passed") == 48
    # the time spent draining is in the reports
    assert [e["nodeid"].split("::")[-1] for e in report["exclusive"]] == ["test_alone", "test_alone"]
    assert all(e["host"] == "localhost" and e["drained_seconds"] >= 0 for e in report["exclusive"])
    assert "exclusive tests: 2 ran alone on their host (localhost); draining the host's other workers took" in (
        result.stdout.str()
    )


def test_under_xdists_own_scheduler_an_exclusive_test_runs_with_a_warning(project):
    p = project(
        """
import pytest

@pytest.mark.hardware(exclusive=True)
def test_alone():
    where("alone")

def test_other():
    where("other")
"""
    )
    result = run(p, "-n", "2")  # nothing asks for dtf's scheduler
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result) == {"passed": 2, "warnings": 1}
    result.stdout.fnmatch_lines(["*hardware(exclusive=True) is kept only by dtf's scheduler*"])
