"""Multi-host runs with --dtf-retry: lost hosts and silent workers lose nothing (issue 6).

Each case: 40 tests on two fake hosts (network namespaces with execnet socket
servers, tests/multihost_fixture.py); host B is cut off after a few results.
Needs root and netns: skipped without them, a failure under CI
(DTF_REQUIRE_NETNS=1).
"""

from __future__ import annotations

import json

import multihost_fixture as mf
import pytest
from multihost_fixture import MultiHost, run_pytest, write_sample_project

from pytest_dtf_errors.report import validate

HEARTBEAT = 5.0
COMMON = mf.dtf_args(HEARTBEAT)


def _check(r: mf.RunResult, report_path, n: int = 40) -> dict:
    assert not r.timed_out, r.text()
    assert r.elapsed - (r.fault_t or 0) < HEARTBEAT + 20, r.describe()
    report = json.loads(report_path.read_text())
    validate(report)
    tests = report["tests"]
    assert len(tests) == n and len({t["nodeid"] for t in tests}) == n, "every test exactly once"
    assert all(t["outcome"] in ("passed", "flaky") for t in tests), [
        (t["nodeid"], t["outcome"], t.get("reason")) for t in tests if t["outcome"] not in ("passed", "flaky")
    ]
    assert r.rc == 0, r.text()
    # the terminal and the JSON report agree
    summary = report["summary"]
    terminal = r.summary
    expected = dict(summary, passed=summary["passed"] + _passed_then_rerun(r))
    for key in ("passed", "flaky", "failed"):
        assert terminal.get(key, 0) == expected[key], (terminal, summary)
    assert "INTERNALERROR" not in r.output
    return report


def _passed_then_rerun(r: mf.RunResult) -> int:
    """Tests shown PASSED and then RERUN: their worker was killed after the
    call passed, before the teardown report. xdist reports the test again as
    its crash item and dtf retries that crash, so pytest's line counts the
    first pass too; the JSON has one outcome per test (flaky)."""
    passed: set[str] = set()
    count = 0
    for _, line in r.lines:
        words = line.split()
        if len(words) >= 2 and words[-2] in ("PASSED", "RERUN"):
            if words[-2] == "PASSED":
                passed.add(words[-1])
            elif words[-1] in passed:
                count += 1
    return count


def _run(mh: MultiHost, tmp_path, fault, specs, proj_args):
    proj, results = write_sample_project(tmp_path)
    report = tmp_path / "report.json"
    args = ["-d", *specs, *proj_args(proj), *COMMON, "--dtf-report", str(report), str(proj)]
    r = run_pytest(args, cwd=proj, timeout=HEARTBEAT + 60, fault=fault, after_results=8, testrunuid=True)
    return r, report, results


def _socket(mh):
    return mh.tx_specs(), lambda proj: ["--rsyncdir", str(proj)]


def test_killed_server_host_is_lost_and_its_work_moves(multihost: MultiHost, tmp_path):
    specs, extra = _socket(multihost)
    r, report_path, _ = _run(multihost, tmp_path, lambda: multihost.kill_server("B"), specs, extra)
    report = _check(r, report_path)
    assert report["lost_hosts"], "the summary names the lost host"
    assert multihost.addr("B") in json.dumps(report["lost_hosts"])
    assert "is lost" in r.output


def test_link_down_is_noticed_by_heartbeat(multihost: MultiHost, tmp_path):
    specs, extra = _socket(multihost)
    r, report_path, _ = _run(multihost, tmp_path, lambda: multihost.link_down("B"), specs, extra)
    report = _check(r, report_path)
    assert r.detect_delay is not None and r.detect_delay < HEARTBEAT + 3, r.describe()
    lost = [n for n in report["nodes"] if n.get("lost")]
    assert [n["id"] for n in lost] == ["hostB"]
    moved = [t for t in report["tests"] if t["outcome"] == "flaky"]
    for test in moved:
        assert test["attempts"][0]["category"] == "worker_disconnected"


def test_short_link_flap_loses_and_duplicates_nothing(multihost: MultiHost, tmp_path):
    specs, extra = _socket(multihost)
    r, report_path, results = _run(multihost, tmp_path, lambda: multihost.flap("B", 3.0), specs, extra)
    report = _check(r, report_path)
    assert report["summary"]["passed"] == 40 and report["summary"]["flaky"] == 0
    assert not [n for n in report["nodes"] if n.get("lost")]
    assert all(len(t["attempts"]) == 1 for t in report["tests"])
    assert len(r.executed(results)) == 40


def test_proxied_worker_killed_is_replaced_through_its_proxy(multihost: MultiHost, tmp_path):
    specs = multihost.px_specs(workers=1)
    r, report_path, _ = _run(
        multihost, tmp_path, lambda: multihost.kill_workers("B"), specs, lambda proj: []
    )
    report = _check(r, report_path)
    crashed = [t for t in report["tests"] if t["outcome"] == "flaky"]
    assert len(crashed) <= 1
    assert "replacing crashed worker" in r.output


@pytest.mark.multihost(servers_per_host=2)
def test_retries_go_to_another_host(multihost: MultiHost, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (proj / "test_net.py").write_text(
        "import os, pytest\n"
        "@pytest.mark.parametrize('i', range(12))\n"
        "def test_net(i, dtf_attempt):\n"
        "    if os.environ.get('DTF_HOST_NAME') == 'B' and dtf_attempt == 1:\n"
        "        raise ConnectionRefusedError(111, 'Connection refused')\n"
    )
    report = tmp_path / "report.json"
    args = ["-d", *multihost.tx_specs(), "--rsyncdir", str(proj), *COMMON, "--dtf-report", str(report), str(proj)]
    r = run_pytest(args, cwd=proj, timeout=90)
    assert r.rc == 0, r.text()
    data = json.loads(report.read_text())
    hosts = {n["id"]: n["host"] for n in data["nodes"]}
    moved = [t for t in data["tests"] if len(t["attempts"]) == 2]
    assert moved, "some tests ran on host B first"
    for t in moved:
        first, second = (hosts[a["node"]] for a in t["attempts"])
        assert first == multihost.addr("B") and second == multihost.addr("A"), t


def test_late_results_from_a_lost_worker_make_no_second_outcome(multihost: MultiHost, tmp_path):
    # the link comes back after the worker was declared lost: whatever it sends then is dropped
    specs, extra = _socket(multihost)
    r, report_path, _ = _run(
        multihost, tmp_path, lambda: multihost.flap("B", HEARTBEAT + 3.0), specs, extra
    )
    report = _check(r, report_path)
    assert [n["id"] for n in report["nodes"] if n.get("lost")] == ["hostB"]
    lines = [line for _, line in r.lines if "test_sleep[" in line and (" PASSED " in line or " FLAKY " in line)]
    reported = [line.split()[-1] for line in lines]
    assert len(reported) == len(set(reported)) == 40, "every test has exactly one final line"
