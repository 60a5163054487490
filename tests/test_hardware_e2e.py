"""Hardware-aware scheduling end to end: tags, routing, hardware errors, quarantine, pinning."""

from __future__ import annotations

import re

import pytest
from conftest import LOGGING_CONFTEST, attempts_log, load_report, outcomes, run

CUDA_AND_CPU = ["-d", "--tx", "popen//env:DTF_HARDWARE=cuda", "--tx", "popen//env:DTF_HARDWARE==cpu"]
NO_GPU = "[tool.dtf]\nbreaker_min_tests = 1000\n"


@pytest.fixture
def project(pytester: pytest.Pytester):
    def make(tests: str, toml: str = NO_GPU) -> pytest.Pytester:
        pytester.makeconftest(LOGGING_CONFTEST)
        pytester.makepyprojecttoml(toml)
        pytester.makepyfile(test_suite=tests)
        return pytester

    return make


def test_hardware_tests_run_only_on_workers_with_the_hardware(project):
    p = project(
        """
import pytest
@pytest.mark.hardware("cuda")
@pytest.mark.parametrize("i", range(6))
def test_gpu(log, i):
    log("gpu%d" % i)

@pytest.mark.parametrize("i", range(6))
def test_any(log, i):
    log("any%d" % i)
"""
    )
    result = run(p, *CUDA_AND_CPU, "--strict-markers", "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    log = attempts_log(p.path / "attempts.log")
    assert {w for name, att in log.items() if name.startswith("gpu") for _, w, _ in att} == {"gw0"}
    # one header line per worker, in the order their tags arrive
    result.stdout.fnmatch_lines(["*gw0*dtf: host localhost, hardware cpu,cuda*"])
    result.stdout.fnmatch_lines(["*gw1*dtf: host localhost, hardware cpu"])
    nodes = {n["id"]: n for n in load_report(p.path / "r.json")["nodes"]}
    assert "cuda" in nodes["gw0"]["hardware"] and "cuda" not in nodes["gw1"]["hardware"]


def test_missing_hardware_is_skipped_naming_it_and_the_workers(project):
    p = project(
        """
import pytest
@pytest.mark.hardware("tpu")
def test_tpu(log):
    log("tpu")

def test_ok():
    pass
"""
    )
    result = run(p, "-n", "2", "--dtf-retry", "-rs")
    assert result.ret == 0
    assert outcomes(result) == {"passed": 1, "skipped": 1}
    result.stdout.fnmatch_lines(["*requires hardware tpu; no worker has it (workers: gw0[[]*], gw1[[]*])*"])
    assert "tpu" not in attempts_log(p.path / "attempts.log")


def test_missing_hardware_can_be_a_failure(project):
    p = project(
        """
import pytest
@pytest.mark.hardware("tpu")
def test_tpu():
    pass
""",
        toml='[tool.dtf]\nmissing_hardware = "fail"\n',
    )
    result = run(p, "-n", "2")
    assert result.ret == 1
    assert outcomes(result) == {"failed": 1}


def test_without_xdist_the_marker_is_checked_against_this_machine(project):
    p = project(
        """
import pytest
@pytest.mark.hardware("tpu")
def test_tpu():
    pass

@pytest.mark.hardware("cpu")
def test_cpu():
    pass
"""
    )
    result = run(p, "-p", "no:xdist", "-rs")
    assert outcomes(result) == {"passed": 1, "skipped": 1}
    result.stdout.fnmatch_lines(["*requires hardware tpu; this machine has cpu*"])


HW_ERROR = """
import os, pytest
@pytest.mark.hardware("cuda", fallback={fallback})
@pytest.mark.parametrize("i", range(8))
def test_kernel(log, i):
    log("k%d" % i)
    if os.environ["PYTEST_XDIST_WORKER"] == "gw0":
        raise RuntimeError("CUDA error: no CUDA-capable device is detected")
"""


def test_hardware_error_moves_to_another_worker_with_the_hardware(project):
    p = project(HW_ERROR.format(fallback=None))
    result = run(
        p, "-d", "--tx", "2*popen//env:DTF_HARDWARE=cuda", "--tx", "popen//env:DTF_HARDWARE==cpu",
        "--dtf-retry", "--dtf-report", "r.json",
    )
    assert result.ret == 0, result.stdout.str()
    report = load_report(p.path / "r.json")
    moved = [t for t in report["tests"] if len(t["attempts"]) > 1]
    assert moved, "some kernel tests must have started on gw0"
    for test in moved:
        first, second = test["attempts"]
        assert first["node"] == "gw0" and first["category"] == "hardware_not_available"
        # gw1, or a worker started from gw1's spec at the tail of the run
        assert second["node"] != "gw0" and "cuda" in second["hardware"]
        assert second["outcome"] == "passed"
    assert {"node": "gw0", "hardware": "cuda"} in report["unavailable"]
    log = attempts_log(p.path / "attempts.log")
    assert "gw2" not in {w for att in log.values() for _, w, _ in att}, "the cpu worker never runs them"


def test_hardware_error_falls_back_to_the_hardware_the_marker_allows(project):
    p = project(HW_ERROR.format(fallback='"cpu"'))
    result = run(p, *CUDA_AND_CPU, "--dtf-retry", "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    tests = load_report(p.path / "r.json")["tests"]
    moved = [t for t in tests if len(t["attempts"]) == 2]
    assert moved
    for test in moved:
        first, second = test["attempts"]
        assert first["node"] == "gw0" and "cuda" not in second["hardware"]
    # once gw0's cuda is marked unavailable, tests not yet run go to the fallback directly
    for test in tests:
        if len(test["attempts"]) == 1:
            assert test["outcome"] == "passed"


def test_hardware_error_without_alternative_fails_with_the_reason(project):
    p = project(HW_ERROR.format(fallback=None))
    result = run(p, *CUDA_AND_CPU, "--dtf-retry")
    assert result.ret == 1
    assert outcomes(result)["failed"] >= 1
    result.stdout.fnmatch_lines(["*hardware_not_available*no other worker has the hardware*"])


def test_node_with_a_broken_disk_is_quarantined(project):
    p = project(
        """
import errno, os, time, pytest
@pytest.mark.parametrize("i", range(24))
def test_io(log, i):
    log("io%d" % i)
    time.sleep(0.05)
    if os.environ["PYTEST_XDIST_WORKER"] == "gw0":
        raise OSError(errno.ENOSPC, "No space left on device")
""",
        toml="[tool.dtf]\nquarantine_threshold = 2\nbreaker_min_tests = 1000\n",
    )
    result = run(p, "-n", "2", "--dtf-retry", "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    report = load_report(p.path / "r.json")
    gw0 = next(n for n in report["nodes"] if n["id"] == "gw0")
    assert gw0["quarantined"]
    result.stdout.fnmatch_lines(["*quarantined*gw0*"])
    log = attempts_log(p.path / "attempts.log")
    on_gw0 = sum(1 for att in log.values() for _, w, _ in att if w == "gw0")
    assert on_gw0 < 24, "queued work moved away from the quarantined worker"


def test_errors_every_worker_has_quarantine_none_of_them(project):
    # A flaky server fails tests once on whichever worker runs them: each
    # worker sees tests fail there and pass elsewhere, but the error is not
    # the worker's (the bench's retry suite quarantined one worker before).
    p = project(
        """
import os, time, pytest
@pytest.mark.parametrize("i", range(24))
def test_net(log, dtf_attempt, i):
    log("net%d" % i)
    time.sleep(0.05)
    if dtf_attempt == 1 and i % 2 == 0:
        raise ConnectionRefusedError(111, "Connection refused")
""",
        toml="[tool.dtf]\nquarantine_threshold = 2\nbreaker_min_tests = 1000\n",
    )
    result = run(p, "-n", "2", "--dtf-retry", "--dtf-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    report = load_report(p.path / "r.json")
    failed_on = {t["attempts"][0]["node"] for t in report["tests"] if t["outcome"] == "flaky"}
    assert failed_on == {"gw0", "gw1"}, "both workers saw the error"
    assert not [n["id"] for n in report["nodes"] if n["quarantined"]]
    assert "quarantined" not in result.stdout.str()


def test_gpu_pinning_gives_each_worker_its_own_gpus(project, fake_gpus):
    p = project(
        """
import os, pytest
@pytest.mark.parametrize("i", range(8))
def test_where(i):
    with open("gpus.log", "a") as f:
        f.write("%s %s\\n" % (os.environ["PYTEST_XDIST_WORKER"], os.environ.get("CUDA_VISIBLE_DEVICES")))
"""
    )
    result = run(p, "-n", "2", "--dtf-gpus-per-worker", "2")
    assert result.ret == 0, result.stdout.str()
    seen = dict(line.split() for line in (p.path / "gpus.log").read_text().splitlines())
    assert seen == {"gw0": "0,1", "gw1": "2,3"}
    # workers get ready in either order
    result.stdout.fnmatch_lines(["*gw0*CUDA_VISIBLE_DEVICES='0,1'*"])
    result.stdout.fnmatch_lines(["*gw1*CUDA_VISIBLE_DEVICES='2,3'*"])


def test_gpu_pinning_indexes_into_the_users_visible_devices(project, fake_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    p = project(
        """
import os
def test_where():
    with open("gpus.log", "a") as f:
        f.write("%s %s\\n" % (os.environ["PYTEST_XDIST_WORKER"], os.environ.get("CUDA_VISIBLE_DEVICES")))
"""
    )
    result = run(p, "-n", "2", "--dtf-gpus-per-worker", "1")
    assert result.ret == 0
    # workers get ready in either order
    result.stdout.fnmatch_lines(["*gw0*CUDA_VISIBLE_DEVICES='3'*"])
    result.stdout.fnmatch_lines(["*gw1*CUDA_VISIBLE_DEVICES='1'*"])


def test_replacement_after_a_crash_keeps_the_gpu_slot(project, fake_gpus):
    p = project(
        """
import os, pytest
def test_crash(dtf_attempt):
    if dtf_attempt == 1:
        os._exit(1)

@pytest.mark.parametrize("i", range(6))
def test_more(i):
    pass
"""
    )
    result = run(p, "-n", "2", "--dtf-gpus-per-worker", "2", "--dtf-retry")
    assert result.ret == 0, result.stdout.str()
    text = result.stdout.str()
    crashed = re.search(r"\[(gw\d)\] node down", text).group(1)
    slots = dict(re.findall(r"\[(gw\d)\] dtf: host \S+, hardware \S+, CUDA_VISIBLE_DEVICES='([\d,]*)'", text))
    assert "gw2" in slots, "xdist replaced the crashed worker"
    assert slots["gw2"] == slots[crashed]
