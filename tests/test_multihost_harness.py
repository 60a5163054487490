"""Tests of the multi-host harness itself (tests/multihost_fixture.py), with plain xdist.

The inner pytest runs pass ``-p no:dtf_errors`` so that our own (possibly
unfinished) plugin is not involved; blocking a plugin name that is not
installed yet is harmless.  Every test here needs root + network namespaces:
it skips without them, or fails when DTF_REQUIRE_NETNS=1 (CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import multihost_fixture as mf
import pytest
from multihost_fixture import MultiHost, require_netns, run_pytest, write_sample_project

# The fixtures come from the plugin: tests/conftest.py has
# `pytest_plugins = [..., "multihost_fixture"]` (or run with -p multihost_fixture).

PLAIN = [
    "-p",
    "no:dtf_errors",
    *mf.REMOTE_UNSAFE_PLUGINS_OFF,
    "-p",
    "no:warnings",
    "-p",
    "no:cacheprovider",
    "-v",
]


def _by_netns(records):
    return Counter((r["netns"], r["hw"]) for r in records)


def _assert_both_hosts(mh: MultiHost, records, n=40):
    assert len(records) == n, records
    seen = _by_netns(records)
    for h in mh.hosts.values():
        assert seen[(h.ns, h.hardware)] > 0, (h.ns, seen)
    # nothing ran anywhere else (e.g. in the root namespace) or with wrong hardware
    assert sum(seen[(h.ns, h.hardware)] for h in mh.hosts.values()) == n, seen


def test_require_netns_skip_or_fail(monkeypatch):
    monkeypatch.setattr(mf, "_reason_cache", ["no netns here"])
    monkeypatch.delenv("DTF_REQUIRE_NETNS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no netns here"):
        require_netns()
    monkeypatch.setenv("DTF_REQUIRE_NETNS", "1")
    with pytest.raises(pytest.fail.Exception, match="DTF_REQUIRE_NETNS=1 but no netns here"):
        require_netns()
    monkeypatch.setattr(mf, "_reason_cache", [None])
    require_netns()  # available: neither skip nor fail


def test_result_line_regex():
    m = mf.RESULT_LINE.match("[hostB] [ 22%] FAILED test_hosts.py::test_sleep[9]")
    assert (m.group("node"), m.group("word"), m.group("nodeid")) == (
        "hostB",
        "FAILED",
        "test_hosts.py::test_sleep[9]",
    )
    m = mf.RESULT_LINE.match("[gw3] [100%] RERUN test_hosts.py::test_sleep[1] ")
    assert m.group("word") == "RERUN"
    m = mf.RESULT_LINE.match("test_x.py::test_a FLAKY                      [ 50%]")
    assert (m.group("nodeid2"), m.group("word2")) == ("test_x.py::test_a", "FLAKY")
    assert not mf.RESULT_LINE.match("FAILED test_hosts.py::test_sleep[9] - worker 'hostB' crashed")
    assert not mf.RESULT_LINE.match("[hostB] node down: Not properly terminated")


def test_baseline_socket(multihost: MultiHost, tmp_path):
    proj, results = write_sample_project(tmp_path)
    args = ["-d", *multihost.tx_specs(), "--rsyncdir", proj, *PLAIN, proj]
    r = run_pytest(args, cwd=proj, timeout=60, testrunuid=True)
    assert r.rc == 0, r.text()
    assert r.counts == Counter(PASSED=40), r.describe()
    assert r.summary == {"passed": 40}, r.describe()
    assert set(r.counts_by_node) == {"hostA", "hostB"}
    recs = r.executed(results)
    _assert_both_hosts(multihost, recs)
    # the socket server *is* the worker: its pid is still alive, in its namespace
    for rec in recs:
        assert multihost.host_of_pid(rec["pid"]) == multihost.host_of_netns(rec["netns"])
        assert rec["pid"] in multihost.server_pids()
        assert "pyexecnetcache" in rec["file"]


def test_baseline_proxy(multihost: MultiHost, tmp_path):
    proj, results = write_sample_project(tmp_path)
    args = ["-d", *multihost.px_specs(workers=2), *PLAIN, proj]
    r = run_pytest(args, cwd=proj, timeout=60, testrunuid=True)
    assert r.rc == 0, r.text()
    assert r.counts == Counter(PASSED=40) and r.summary == {"passed": 40}, r.describe()
    recs = r.executed(results)
    _assert_both_hosts(multihost, recs)
    workers = {(rec["netns"], rec["worker"], rec["pid"]) for rec in recs}
    assert len({w[1] for w in workers}) == 4, workers  # gw0..gw3, two per host
    servers = set(multihost.server_pids())
    assert not servers & {rec["pid"] for rec in recs}  # fresh popen workers, not the servers
    assert not any("pyexecnetcache" in rec["file"] for rec in recs)  # popen: no rsync


@pytest.mark.multihost(ssh=True)
def test_baseline_ssh(multihost: MultiHost, tmp_path):
    """Real ssh gateways: key-only login to each namespace's sshd through our own ssh_config."""
    proj, results = write_sample_project(tmp_path)
    args = ["-d", *multihost.ssh_specs(), "--rsyncdir", proj, *PLAIN, proj]
    r = run_pytest(args, cwd=proj, timeout=60, testrunuid=True)
    assert r.rc == 0, r.text()
    assert r.counts == Counter(PASSED=40) and r.summary == {"passed": 40}, r.describe()
    assert set(r.counts_by_node) == {"hostA", "hostB"}
    recs = r.executed(results)
    _assert_both_hosts(multihost, recs)
    for rec in recs:  # a fresh python per ssh session, in its host's own rsync dir
        assert rec["pid"] not in multihost.server_pids()
        assert rec["file"].startswith(multihost.host(multihost.host_of_netns(rec["netns"])).hostdir)
    assert multihost.ssh_clients() == []


def test_ssh_client_left_waiting_is_killed_by_down(tmp_path):
    """An ssh client stuck connecting to a silent host is ours: down() ends it."""
    mf.require_sshd()
    mh = MultiHost(ssh=True)
    try:
        mh.up()
        mh.link_down("B")
        client = subprocess.Popen(
            ["ssh", "-F", mh.ssh_config, "hostB", "true"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if mh.ssh_clients():
                break
            mf.time.sleep(0.02)
        assert [c.split(":")[0] for c in mh.ssh_clients()] == [str(client.pid)]
        assert client.poll() is None, "a silent host: the connect waits"
    finally:
        mh.down()
    assert client.wait(timeout=5) == -9
    assert mh.leftovers() == []


def test_kill_server_is_noticed(multihost: MultiHost, tmp_path):
    """Fault injection works: plain xdist notices a killed server at once (README a2)."""
    proj, _results = write_sample_project(tmp_path)
    args = ["-d", *multihost.tx_specs(), "--rsyncdir", proj, "--max-worker-restart=0", *PLAIN, proj]
    r = run_pytest(
        args,
        cwd=proj,
        timeout=60,
        fault=lambda: multihost.kill_server("B"),
        after_results=8,
        testrunuid=True,
    )
    assert r.fault_t is not None and r.fault_error is None, r.text()
    assert r.down_t is not None and r.detect_delay < 5, r.text()
    assert "[hostB] node down" in r.output
    assert r.rc == 1 and r.counts["FAILED"] == 1, r.describe()
    assert not multihost.server_pids("B") and multihost.server_pids("A")


def test_flap_loses_nothing(multihost: MultiHost, tmp_path):
    """link_down + background link_up: buffered results arrive after the flap (README b2)."""
    proj, results = write_sample_project(tmp_path)
    args = ["-d", *multihost.tx_specs(), "--rsyncdir", proj, *PLAIN, proj]
    r = run_pytest(
        args,
        cwd=proj,
        timeout=60,
        fault=lambda: multihost.flap("B", 1.5),
        after_results=8,
        testrunuid=True,
    )
    assert r.rc == 0 and r.counts == Counter(PASSED=40), r.text()
    assert r.down_t is None
    assert r.fault_to_end >= 1.0, r.describe()  # the run waited for B's link
    _assert_both_hosts(multihost, r.executed(results))
    assert multihost.link_is_up("B")


def test_proxy_kill_workers_and_restore(multihost: MultiHost, tmp_path):
    """kill_workers kills B's popen worker only; restore() gives fresh servers."""
    proj, _results = write_sample_project(tmp_path, n_tests=20)
    args = ["-d", *multihost.px_specs(workers=1), "--max-worker-restart=0", *PLAIN, proj]
    killed = []
    r = run_pytest(
        args,
        cwd=proj,
        timeout=60,
        after_results=4,
        testrunuid=True,
        fault=lambda: killed.extend(multihost.kill_workers("B")),
    )
    assert killed and not set(killed) & set(multihost.server_pids()), killed
    assert "node down" in r.output and r.counts["FAILED"] == 1, r.text()
    assert len(multihost.server_pids("B")) == 1  # the host stays up
    old = set(multihost.server_pids())
    multihost.link_down("A")
    multihost.restore()
    assert multihost.link_is_up("A")
    new = set(multihost.server_pids())
    assert len(new) == 2 and not old & new


def test_several_servers_and_clean_teardown(tmp_path):
    require_netns()
    mh = MultiHost(hosts={"A": "cuda", "B": "cpu", "C": "cpu"}, servers_per_host=2)
    try:
        mh.up()
        assert len(mh.server_pids()) == 6
        assert set(mh.namespaces) <= set(mf.netns_list())
        proj, results = write_sample_project(tmp_path, n_tests=24, sleep=0.05)
        args = ["-d", *mh.tx_specs(), "--rsyncdir", proj, *PLAIN, proj]
        r = run_pytest(args, cwd=proj, timeout=60, testrunuid=True)
        assert r.rc == 0 and r.counts == Counter(PASSED=24), r.text()
        assert len(r.counts_by_node) == 6, r.counts_by_node
        _assert_both_hosts(mh, r.executed(results), n=24)
        # a stray process inside a namespace, and a link left down
        stray = subprocess.Popen(
            ["setsid", "ip", "netns", "exec", mh.ns("C"), "sleep", "300"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            if mh.host_of_pid(stray.pid) == "C":
                break
            mf.time.sleep(0.02)
        assert stray.pid in mh.pids("C") and stray.pid in mh.worker_pids("C")
        mh.link_down("B")
        servers = mh.server_pids()
    finally:
        mh.down()
    assert stray.wait(timeout=5) == -9
    assert not [p for p in servers if mf._pid_alive(p)]
    assert not [n for n in mf.netns_list() if n.startswith(mh.prefix)]
    assert not [n for n in mf.link_names() if n.startswith(mh.prefix)]
    assert not os.path.exists(mh.state_dir)
    assert mh.leftovers() == []
    mh.down()  # idempotent


def test_stale_session_is_swept(tmp_path):
    """A session whose owner died (SIGKILLed pytest) is cleaned by the next up()."""
    require_netns()
    here, state = os.path.dirname(mf.__file__), str(tmp_path / "state")
    code = (
        f"import sys, os; sys.path.insert(0, {here!r})\n"
        "import multihost_fixture as mf\n"
        f"mh = mf.MultiHost(state_root={state!r}).up()\n"
        "print(mh.prefix, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    try:
        p = subprocess.run(
            [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
        )
        prefix = p.stdout.strip()
        assert p.returncode == -9 and prefix.startswith("dtf"), p
        assert [n for n in mf.netns_list() if n.startswith(prefix)]
        assert mf.pids_in_netns(prefix + "B")  # its servers outlived it
    finally:
        swept = mf.sweep_stale(state)
    assert swept == [prefix]
    assert not [n for n in mf.netns_list() if n.startswith(prefix)]
    assert not [n for n in mf.link_names() if n.startswith(prefix)]
