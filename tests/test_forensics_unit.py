"""Crash forensics, the pure parts: the OOM rule, the cgroup limit, the text, the files, the wire."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from pytest_dtf_errors import forensics
from pytest_dtf_errors.engine import record as records
from pytest_dtf_errors.ledger import Attempt, Ledger
from pytest_dtf_errors.report import junit
from pytest_dtf_errors.session.workers import WorkerBook
from pytest_dtf_errors.xdist import messages
from pytest_dtf_errors.xdist.link import Links

GIB = 1024


# -- the OOM rule -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("signal", "peak", "memory", "limit", "words"),
    [
        pytest.param("SIGKILL", 7987, {"MemTotal": 64 * GIB, "MemAvailable": 50 * GIB}, (8 * GIB, "cgroup memory.max"),
                     "likely OOM-killed at 7.8 GiB RSS (memory limit 8.0 GiB, cgroup memory.max)", id="cgroup"),
        pytest.param("SIGKILL", 7987, {"MemTotal": 8 * GIB, "MemAvailable": 4 * GIB}, None,
                     "likely OOM-killed at 7.8 GiB RSS (memory limit 8.0 GiB, MemTotal)", id="memtotal"),
        pytest.param("SIGKILL", 5000, {"MemTotal": 8 * GIB}, (64 * GIB, "cgroup"),
                     "likely OOM-killed at 4.9 GiB RSS (memory limit 8.0 GiB, MemTotal)", id="smaller-wins"),
        pytest.param("SIGKILL", 400, {"MemTotal": 64 * GIB, "MemAvailable": 1 * GIB}, None,
                     "likely OOM-killed at 400 MiB RSS (the machine had 1.0 GiB of 64.0 GiB available)",
                     id="machine-nearly-out"),
        pytest.param("SIGKILL", None, {"rss_mb": 5000, "MemTotal": 8 * GIB}, None,
                     "likely OOM-killed at 4.9 GiB RSS (memory limit 8.0 GiB, MemTotal)", id="last-beat-rss"),
        pytest.param("SIGKILL", 1000, {"MemTotal": 64 * GIB, "MemAvailable": 50 * GIB}, (8 * GIB, "cgroup"), None,
                     id="far-from-limit"),
        pytest.param("SIGSEGV", 7987, {"MemTotal": 8 * GIB}, None, None, id="not-sigkill"),
        pytest.param("SIGKILL", 7987, {}, None, None, id="no-limit-known"),
        pytest.param(None, None, {}, None, None, id="nothing"),
    ],
)
def test_oom_verdict(signal, peak, memory, limit, words):
    assert forensics.oom_verdict(signal, peak, memory, limit) == words


def test_oom_threshold_is_a_parameter():
    memory = {"MemTotal": 10 * GIB}
    assert forensics.oom_verdict("SIGKILL", 3 * GIB, memory) is None
    assert forensics.oom_verdict("SIGKILL", 3 * GIB, memory, near=0.25) is not None


# -- the cgroup limit ---------------------------------------------------------------------
def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_cgroup_v2_limit_is_the_smallest_on_the_path(tmp_path):
    root = tmp_path / "cg"
    proc = _write(tmp_path / "cgroup", "0::/user.slice/job.scope\n")
    _write(root / "user.slice" / "memory.max", f"{16 * 2**30}\n")
    _write(root / "user.slice" / "job.scope" / "memory.max", "max\n")
    assert forensics.memory_limit(str(root), str(proc)) == (16 * GIB, str(root / "user.slice" / "memory.max"))


def test_cgroup_v2_in_a_container_reads_the_namespace_root(tmp_path):
    root = tmp_path / "cg"
    proc = _write(tmp_path / "cgroup", "0::/\n")
    _write(root / "memory.max", f"{2 * 2**30}\n")
    assert forensics.memory_limit(str(root), str(proc)) == (2 * GIB, str(root / "memory.max"))


def test_cgroup_v1_limit_and_its_no_limit_value(tmp_path):
    root = tmp_path / "cg"
    proc = _write(tmp_path / "cgroup", "12:cpu,cpuacct:/x\n4:memory:/docker/abc\n")
    # the container's view: its cgroup is mounted at the root, the path does not exist
    _write(root / "memory" / "memory.limit_in_bytes", f"{512 * 2**20}\n")
    assert forensics.memory_limit(str(root), str(proc)) == (512, str(root / "memory" / "memory.limit_in_bytes"))
    _write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    assert forensics.memory_limit(str(root), str(proc)) is None


def test_no_cgroup_no_limit(tmp_path):
    assert forensics.memory_limit(str(tmp_path / "none"), str(tmp_path / "absent")) is None


# -- the text ----------------------------------------------------------------------------
FAULT = """\
Fatal Python error: Segmentation fault

Thread 0x00007f0000000001 (most recent call first):
  File "/x/_worker_link.py", line 70 in beat
  File "/usr/lib/python3.11/threading.py", line 975 in run

Current thread 0x00007f0000000002 (most recent call first):
  File "/usr/lib/python3.11/ctypes/__init__.py", line 519 in string_at
  File "/p/test_crash.py", line 11 in test_segv
  File "/p/_pytest/python.py", line 166 in pytest_pyfunc_call

Extension modules: _cffi_backend (total: 1)
"""


def test_fault_traceback_puts_the_crashing_thread_first():
    text = forensics.fault_traceback(FAULT)
    assert text.startswith("Fatal Python error: Segmentation fault")
    assert text.index("Current thread") < text.index("Thread 0x00007f0000000001") < text.index("Extension modules")
    assert 'test_crash.py", line 11 in test_segv' in text


def test_fault_traceback_is_bounded():
    text = forensics.fault_traceback(FAULT + "  File x\n" * 100_000, limit=500)
    assert len(text) < 600 and text.endswith("more characters)")


def _attempt(nodeid, node, started, finished=True, outcome="passed"):
    att = Attempt(nodeid, 1, node)
    att.started = started
    att.finished = started + 0.5 if finished else None
    att.outcome = outcome
    att.duration = 0.25
    return att


def test_last_tests_are_the_workers_ended_attempts_nearest_first_capped():
    atts = [_attempt(f"t.py::t{i}", "gw0", float(i)) for i in range(15)]
    atts += [_attempt("t.py::other", "gw1", 100.0), _attempt("t.py::running", "gw0", 200.0, finished=False)]
    got = [a.nodeid for a in forensics.last_tests(atts, "gw0")]
    assert got == [f"t.py::t{i}" for i in range(14, 4, -1)]
    assert len(forensics.last_tests(atts, "gw0", cap=3)) == 3


def test_compose_names_the_exit_the_memory_the_last_tests_and_the_traceback():
    text = forensics.compose(
        "gw0", exitcode=-11, signal_name="SIGSEGV", fault=FAULT,
        recent=[_attempt("t.py::b", "gw0", 2.0, outcome="failed"), _attempt("t.py::a", "gw0", 1.0)],
        peak_rss_mb=812, memory={"rss_mb": 800, "MemTotal": 16 * GIB, "MemAvailable": 8 * GIB},
        limit=(4 * GIB, "cgroup memory.max"),
    )
    lines = text.splitlines()
    assert lines[0] == "crash forensics of gw0:"
    assert "  ended: killed by SIGSEGV (exit code -11)" in lines
    assert ("  memory: peak RSS 812 MiB; RSS at the last heartbeat 800 MiB; limit 4.0 GiB (cgroup memory.max); "
            "machine 8.0 GiB available of 16.0 GiB") in lines
    assert lines.index("    t.py::b (failed, 0.25 s)") < lines.index("    t.py::a (passed, 0.25 s)")
    assert '      File "/p/test_crash.py", line 11 in test_segv' in lines


@pytest.mark.parametrize(
    ("fault", "signal", "line"),
    [
        (None, "SIGSEGV", "  faulthandler: its file is on the worker's host; a replacement worker there sends it"),
        ("", "SIGKILL", "  faulthandler: wrote nothing (SIGKILL cannot be caught)"),
        ("", None, "  faulthandler: wrote nothing"),
    ],
)
def test_compose_without_a_traceback_says_why(fault, signal, line):
    text = forensics.compose("gw1", exitcode=None, signal_name=signal, fault=fault, recent=[], peak_rss_mb=None,
                             memory={}, oom=None)
    assert line in text.splitlines()
    assert "  memory: unknown (no heartbeat)" in text and "  last tests on gw1: none before it" in text


def test_the_crash_record_carries_the_text():
    rec = records.crash("t.py::x", "gw0", exitcode=-9, signal_name="SIGKILL", hardware=None, forensics="F")
    assert rec["forensics"] == "F"
    assert "forensics" not in records.crash("t.py::x", "gw0", exitcode=1, signal_name=None, hardware=None)


# -- the files ---------------------------------------------------------------------------
def test_read_file_never_raises_and_follows_no_link(tmp_path):
    assert forensics.read_file(str(tmp_path / "absent")) == ""
    real = tmp_path / "real"
    real.write_bytes(b"Fatal \xff error")
    (tmp_path / "link").symlink_to(real)
    assert forensics.read_file(str(tmp_path / "link")) == ""
    assert forensics.read_file(str(real), limit=5) == "Fatal"
    assert forensics.read_file(str(real), remove=True) == "Fatal \ufffd error"
    assert not real.exists()


WORKER = """
import faulthandler, sys
from pytest_dtf_errors.forensics import FaultFile

class Config:
    class pluginmanager:
        @staticmethod
        def has_plugin(name):
            return False

ff = FaultFile(sys.argv[1])
ff.pytest_sessionstart(None)
if sys.argv[2] == "crash":
    faulthandler._sigsegv()
ff.pytest_unconfigure(Config)
print("enabled after:", faulthandler.is_enabled())
"""


def test_fault_file_holds_a_crash_and_goes_on_a_clean_end(tmp_path):
    path = tmp_path / "gw0.faulthandler"
    crashed = subprocess.run([sys.executable, "-c", WORKER, str(path), "crash"], check=False, capture_output=True, text=True)
    assert crashed.returncode == -11
    assert "Fatal Python error: Segmentation fault" in path.read_text()
    assert "Current thread" in path.read_text() and crashed.stderr == ""
    clean = subprocess.run([sys.executable, "-c", WORKER, str(path), "clean"], check=False, capture_output=True, text=True)
    assert clean.returncode == 0 and "enabled after: False" in clean.stdout, clean.stderr
    assert not path.exists()


def test_controller_files_local_and_remote(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    state = forensics.CrashForensics()
    local = state.worker_input("gw0", "localhost", local=True)
    assert os.path.isabs(local["path"]) and local["path"].startswith(str(tmp_path)) and not local["predecessors"]
    remote = state.worker_input("gw1", "10.0.0.7", local=False)
    assert not os.path.isabs(remote["path"]) and state.token in remote["path"]
    state.await_remote("gw1", "10.0.0.7", "t.py::crashed")
    assert state.worker_input("gw2", "10.0.0.8", local=False)["predecessors"] == {}  # another host
    assert state.worker_input("gw3", "10.0.0.7", local=False)["predecessors"] == {"gw1": remote["path"]}
    assert state.received("gw1") == "t.py::crashed"
    assert state.received("gw1") is None  # once
    assert state.received("gw9") is None  # never asked for
    with open(local["path"], "w") as f:
        f.write("Fatal Python error: Aborted\n")
    assert state.read_local("gw0").startswith("Fatal Python error: Aborted")
    assert state.read_local("gw1") == ""  # not on this machine
    state.cleanup()
    assert not os.path.exists(os.path.dirname(local["path"]))


# -- the wire and the link --------------------------------------------------------------
def test_forensics_message_round_trip_and_hostile_input():
    assert messages.from_wire(messages.forensics_to_wire("gw0", "text")) == ("forensics", {"worker": "gw0", "text": "text"})
    assert messages.from_wire(("forensics", {"worker": "w" * 1000, "text": 5})) == (
        "forensics", {"worker": "w" * 200, "text": ""})
    huge = messages.from_wire(("forensics", {"worker": "gw0", "text": "x" * 10**6}))
    assert huge is not None and len(huge[1]["text"]) == messages.MAX_FORENSICS
    assert messages.from_wire(("forensics", "text")) is None


def test_heartbeats_make_the_peak_rss_and_a_sent_file_reaches_the_callback():
    book = WorkerBook()
    links = Links(book)
    for rss in (100, 350, 200):
        links.on_event("gw0", ("hb", {"t": 1.0, "rss_mb": rss, "MemTotal": 1000}), 1.0)
    rec = book.node("gw0")
    assert rec.peak_rss_mb == 350 and rec.memory["rss_mb"] == 200
    links.on_event("gw0", ("hb", {"t": 1.0}), 2.0)
    assert rec.peak_rss_mb == 350
    got = []
    links.on_event("gw2", messages.forensics_to_wire("gw1", "T"), 3.0)  # no callback: dropped
    links.on_forensics = lambda *args: got.append(args)
    links.on_event("gw2", messages.forensics_to_wire("gw1", "T"), 3.0)
    assert got == [("gw2", "gw1", "T")]


# -- JUnit ---------------------------------------------------------------------------------
JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="1">
<testcase classname="t" name="test_x"><error message="crashed">worker crashed</error>
<system-err>captured stderr</system-err></testcase></testsuite></testsuites>"""


def test_junit_system_err_keeps_its_text_and_adds_the_forensics_once(tmp_path):
    ledger = Ledger()
    att = ledger.new_attempt("t.py::test_x", "gw0")
    att.outcome, att.phase, att.category = "failed", "crash", "system_crash"
    att.error = records.crash("t.py::test_x", "gw0", exitcode=-11, signal_name="SIGSEGV", hardware=None,
                              forensics="crash forensics of gw0:\n  ended: killed by SIGSEGV")
    ledger.finalize("t.py::test_x", "failed")
    path = tmp_path / "j.xml"
    path.write_text(JUNIT)
    for _ in range(2):  # a second rewrite replaces, never repeats
        junit.rewrite(path, ledger)
        err = ET.parse(path).getroot().find(".//testcase/system-err")
        assert err is not None and err.text is not None
        assert err.text.startswith("captured stderr\n--- dtf crash forensics ---\nattempt 1 on gw0:\n")
        assert err.text.count("killed by SIGSEGV") == 1


def test_junit_writes_a_system_err_when_pytest_wrote_none(tmp_path):
    ledger = Ledger()
    att = ledger.new_attempt("t.py::test_x", "gw0")
    att.outcome, att.phase = "failed", "crash"
    att.error = records.crash("t.py::test_x", "gw0", exitcode=-9, signal_name="SIGKILL", hardware=None,
                              forensics="crash forensics of gw0:")
    ledger.finalize("t.py::test_x", "failed")
    path = tmp_path / "j.xml"
    path.write_text(JUNIT.replace("<system-err>captured stderr</system-err>", ""))
    junit.rewrite(path, ledger)
    err = ET.parse(path).getroot().find(".//testcase/system-err")
    assert err is not None and err.text == textwrap.dedent("""\
        --- dtf crash forensics ---
        attempt 1 on gw0:
        crash forensics of gw0:""")


def test_local_spec_is_a_popen_without_via():
    import execnet

    assert forensics.local_spec(execnet.XSpec("popen"))
    assert not forensics.local_spec(execnet.XSpec("popen//via=proxy"))
    assert not forensics.local_spec(execnet.XSpec("ssh=host"))
    assert not forensics.local_spec(execnet.XSpec("socket=10.0.0.7:8888"))
