"""restart_worker on a live worker: it gets no more work, and a fresh process replaces it."""

from __future__ import annotations

import json
import textwrap

import pytest

CONFTEST = textwrap.dedent(
    """
    import os
    from pathlib import Path

    from pytest_dtf_errors.engine import ErrorCategory, RecoveryStrategy, actions


    class PoisonedContext(RecoveryStrategy):
        name = "poisoned"

        def recover(self, task_id, error, context):
            worker = context.get("worker_id")
            return {"success": True, "strategy": "poisoned", "actions_taken": ["restart the worker"],
                    "retry_recommended": True,
                    "actions": [actions.restart_worker(worker), actions.avoid_node(worker)]}

        def is_applicable(self, error_category, hardware_type=None):
            return error_category in [ErrorCategory.RESOURCE_UNAVAILABLE]


    def pytest_dtf_recovery_strategies(config):
        return [PoisonedContext()]


    def pytest_runtest_setup(item):
        # which process ran which test
        with open(Path(os.environ["PIDS"]), "a") as f:
            f.write(f"{os.environ.get('PYTEST_XDIST_WORKER')} {os.getpid()} {item.nodeid}\\n")
    """
)

TESTS = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    def test_poisons(dtf_attempt):
        if dtf_attempt == 1:
            raise BlockingIOError("device busy: context is poisoned")

    import pytest

    @pytest.mark.parametrize("i", range(12))
    def test_after(i): time.sleep(0.4)
    """
)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=TESTS)
    monkeypatch.setenv("PIDS", str(pytester.path / "pids.txt"))
    return pytester


def test_restart_worker_replaces_the_live_worker_with_a_fresh_process(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(
        "-n", "2", "--dtf-retry", "--dtf-report", "r.json", "-p", "no:cacheprovider", "-p", "no:randomly"
    )
    assert result.parseoutcomes() == {"passed": 12, "flaky": 1, "rerun": 1}
    assert result.ret == 0
    text = result.stdout.str()
    runs = [line.split() for line in (project.path / "pids.txt").read_text().splitlines()]
    first = next(r for r in runs if r[2].endswith("test_poisons"))
    assert f"dtf: restarting {first[0]}: engine" in text
    # the restarted process runs at most the two tests it had taken (the running one's next
    # item cannot be stolen back); a fresh worker, with a new id, runs tests after it
    after = runs[runs.index(first) + 1:]
    assert len([r for r in after if r[1] == first[1]]) <= 2, runs
    fresh = [r for r in after if r[0] not in ("gw0", "gw1")]
    assert fresh and all(r[1] != first[1] for r in fresh), runs
    report = json.loads((project.path / "r.json").read_text())
    nodes = {n["id"] for n in report["nodes"]}
    assert len(nodes) == 3, nodes  # gw0, gw1 and the replacement
    poisons = next(t for t in report["tests"] if t["nodeid"].endswith("test_poisons"))
    assert {"kind": "restart_worker", "node": first[0]} in poisons["attempts"][0]["actions"]
    assert poisons["attempts"][1]["node"] != first[0]


def test_restart_worker_without_xdist_is_not_carried_out(project: pytest.Pytester) -> None:
    """One process: nothing to restart; the retry runs in process and the run goes on."""
    result = project.runpytest_subprocess("-p", "no:xdist", "--dtf-retry", "-p", "no:cacheprovider")
    assert result.parseoutcomes() == {"passed": 12, "flaky": 1, "rerun": 1}
    assert result.ret == 0
    assert "restarting" not in result.stdout.str()
