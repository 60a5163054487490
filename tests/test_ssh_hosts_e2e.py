"""Real ssh hosts (issue 11, section 7): `--tx ssh=...` workers on hosts that die or go silent.

Each case: 40 tests on two fake hosts, each a network namespace running its
own sshd (key-only, a dedicated ssh_config passed with ``//ssh_config=``;
tests/multihost_fixture.py, ``MultiHost(ssh=True)``). Host B is killed or cut
off after a few results. Needs root, netns and OpenSSH: skipped without them,
a failure under CI (DTF_REQUIRE_NETNS=1).
"""

from __future__ import annotations

import json

import multihost_fixture as mf
import pytest
from multihost_fixture import MultiHost, run_pytest, write_sample_project

from pytest_dtf_errors.report import validate

HEARTBEAT = 3.0
# the end of the run after the fault: detection (the heartbeat timeout for a
# silent host), the reachability probe (3 s at most) and a slow start-up margin
# on a loaded 2-core box; the hang this guards against lasted minutes
END_BOUND = HEARTBEAT + 12
COMMON = mf.dtf_args(HEARTBEAT)

pytestmark = pytest.mark.multihost(ssh=True)


def _run(mh: MultiHost, tmp_path, fault):
    proj, _ = write_sample_project(tmp_path)
    report = tmp_path / "report.json"
    args = ["-d", *mh.ssh_specs(), "--rsyncdir", str(proj), *COMMON, "--dtf-report", str(report), str(proj)]
    r = run_pytest(args, cwd=proj, timeout=HEARTBEAT + 45, fault=fault, after_results=8, testrunuid=True)
    return r, report


def _check(mh: MultiHost, r: mf.RunResult, report_path) -> dict:
    assert not r.timed_out, r.text()
    assert r.fault_t is not None and r.fault_to_end is not None, r.describe()
    assert r.fault_to_end < END_BOUND, r.text()
    assert "INTERNALERROR" not in r.output, r.text()
    report = json.loads(report_path.read_text())
    validate(report)
    tests = report["tests"]
    assert len(tests) == 40 and len({t["nodeid"] for t in tests}) == 40, "every test exactly once"
    assert all(t["outcome"] in ("passed", "flaky") for t in tests), [
        (t["nodeid"], t["outcome"], t.get("reason")) for t in tests if t["outcome"] not in ("passed", "flaky")
    ]
    assert r.rc == 0, r.text()
    assert mh.ssh_clients() == [], "no ssh client outlives pytest"
    return report


def test_ssh_killed_host_is_a_lost_connection_not_a_crash(multihost: MultiHost, tmp_path):
    r, report_path = _run(multihost, tmp_path, lambda: multihost.kill_host("B"))
    report = _check(multihost, r, report_path)
    moved = [t for t in report["tests"] if t["outcome"] == "flaky"]
    assert moved, "the test running on host B was retried"
    for test in moved:
        first = test["attempts"][0]
        assert first["category"] == "worker_disconnected", first
        assert "exit code 255" not in json.dumps(first), "255 is the ssh client's status, not the test's"
    assert "exit code 255" not in r.output
    assert [h["host"] for h in report["lost_hosts"]] == ["root@hostB"], report["lost_hosts"]
    assert "is lost" in r.output


def test_ssh_host_gone_silent_ends_on_its_own(multihost: MultiHost, tmp_path):
    r, report_path = _run(multihost, tmp_path, lambda: multihost.link_down("B"))
    report = _check(multihost, r, report_path)
    assert [n["id"] for n in report["nodes"] if n.get("lost")] == ["hostB"]
    assert [h["host"] for h in report["lost_hosts"]] == ["root@hostB"], report["lost_hosts"]
    for test in report["tests"]:
        if test["outcome"] == "flaky":
            assert test["attempts"][0]["category"] == "worker_disconnected", test
