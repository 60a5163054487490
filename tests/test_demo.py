"""The demo suite (conftest_examples/demo) runs and shows what its README says."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "conftest_examples" / "demo"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict]:
    """One run of the demo at -n 2 --dtf-retry --dtf-report, shared by the checks below."""
    project = tmp_path_factory.mktemp("demo")
    for f in DEMO.iterdir():
        if f.is_file() and f.suffix in (".py", ".toml", ".md"):
            shutil.copy(f, project / f.name)
    report = project / "errors.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dtf-retry", "--dtf-report", str(report)],
        cwd=project, capture_output=True, text=True, timeout=120, check=False,
    )
    out = proc.stdout + proc.stderr
    assert report.is_file(), out
    return proc.returncode, out, json.loads(report.read_text())


def by_name(report: dict) -> dict[str, dict]:
    return {t["nodeid"]: t for t in report["tests"]}


def test_demo_exits_1_for_the_assertion_and_the_database(demo_run):
    rc, out, report = demo_run
    assert rc == 1, out
    s = report["summary"]
    assert (s["passed"], s["flaky"], s["failed"], s["error"]) == (1, 3, 9, 0), out
    assert s["total"] == 13


def test_flaky_network_test_passes_on_another_worker(demo_run):
    _, out, report = demo_run
    t = by_name(report)["test_network.py::test_fetch_prices"]
    assert t["outcome"] == "flaky", out
    first, second = t["attempts"]
    assert first["outcome"] == "failed"
    assert first["category"] == "network_connection_error"
    assert second["outcome"] == "passed"
    if first["node"] == second["node"]:
        # only when no other worker could take it when it was due: the demo's crash and its
        # node-specific failure take gw0 down or quarantine it, and a loaded machine may reach
        # the retry's due time before the replacement is up (the scheduler's "better there than
        # nowhere")
        others = [n for n in report["nodes"] if n["id"] != first["node"]]
        assert any(n["crashes"] or n["quarantined"] or n["lost"] for n in others), out


def test_node_specific_failure_moves_to_another_worker(demo_run):
    _, out, report = demo_run
    t = by_name(report)["test_node.py::test_write_build_artifact"]
    assert t["outcome"] == "flaky", out
    first, second = t["attempts"]
    assert first["category"] == "resource_exhausted"
    assert second["outcome"] == "passed"
    if first["node"] == second["node"]:
        # only when no other worker could take it when it was due: the demo's crash and its
        # node-specific failure take gw0 down or quarantine it, and a loaded machine may reach
        # the retry's due time before the replacement is up (the scheduler's "better there than
        # nowhere")
        others = [n for n in report["nodes"] if n["id"] != first["node"]]
        assert any(n["crashes"] or n["quarantined"] or n["lost"] for n in others), out


def test_crash_is_recovered(demo_run):
    _, out, report = demo_run
    t = by_name(report)["test_crash.py::test_native_extension"]
    assert t["outcome"] == "flaky", out
    first, second = t["attempts"]
    assert first["outcome"] in ("failed", "error")  # the worker died in the test's call
    assert first["category"] == "worker_crashed"
    assert second["outcome"] == "passed"
    if first["node"] == second["node"]:
        # only when no other worker could take it when it was due: the demo's crash and its
        # node-specific failure take gw0 down or quarantine it, and a loaded machine may reach
        # the retry's due time before the replacement is up (the scheduler's "better there than
        # nowhere")
        others = [n for n in report["nodes"] if n["id"] != first["node"]]
        assert any(n["crashes"] or n["quarantined"] or n["lost"] for n in others), out


def test_assertion_is_not_retried(demo_run):
    _, out, report = demo_run
    t = by_name(report)["test_pricing.py::test_apply_discount"]
    assert t["outcome"] == "failed", out
    assert len(t["attempts"]) == 1
    assert t["attempts"][0]["category"] == "test_assertion_error"


def test_systemic_database_pattern_trips_the_breaker(demo_run):
    _, out, report = demo_run
    db = {k: v for k, v in by_name(report).items() if k.startswith("test_database.py::")}
    assert len(db) == 8
    assert all(t["outcome"] == "failed" for t in db.values()), out
    assert all(a["category"] == "network_connection_error"
               for t in db.values() for a in t["attempts"])
    # Without the breaker: 8 tests x 3 attempts. It trips after 3 failed retries.
    attempts = sum(len(t["attempts"]) for t in db.values())
    assert attempts < 8 * 3, out
    assert report["breaker"], out
    trip = report["breaker"][0]
    assert set(trip["tests"]) <= set(db)
    assert trip["tests"], out
    assert report["summary"]["breaker_cancelled"] >= 1
    pattern = next(p for p in report["patterns"] if p["id"] == trip["pattern"])
    # systemic when both workers saw it; "node" when one worker happened to run them all
    assert pattern["scope"] in ("systemic", "node")
    assert "breaker" in out and "systemic" in out


def test_every_database_test_says_the_breaker_stopped_it(demo_run):
    # as the README says: each one names the systemic pattern, with one message,
    # "retry cancelled: ..." where a retry was waiting
    _, out, report = demo_run
    (trip,) = report["breaker"]
    db = [t for t in report["tests"] if t["nodeid"].startswith("test_database.py::")]
    for t in db:
        last = t["attempts"][-1]["decision"]["reason"]
        assert trip["reason"] in last, (t["nodeid"], last)
        if t["nodeid"] in trip["tests"]:
            assert t["reason"] == f"retry cancelled: {trip['reason']}"
    assert f"breaker: pattern {trip['pattern']} cancelled {len(trip['tests'])} retr" in out


def test_the_final_line_counts_the_retries_that_ran(demo_run):
    _, out, report = demo_run
    s = report["summary"]
    ran = sum(len(t["attempts"]) - 1 for t in report["tests"])
    assert s["retries"] == s["budget_used"] == ran
    last = next(line for line in reversed(out.splitlines()) if " in " in line and "passed" in line)
    assert f"{ran} rerun" in last, last
    assert f"retries: {ran} used of budget 50" in out
