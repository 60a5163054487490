"""Every project in conftest_examples/ runs, with the command its README gives (issue 7).

Each example is copied into ``pytester.path/conftest_examples/NAME`` and run
from ``pytester.path`` with the arguments of the command on the first line of
its README, as a user would from the repository root, plus ``--dtf-report``.
The two-host example runs on the ``multihost`` fixture (root and netns; skipped
without them).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import multihost_fixture as mf
import pytest
from conftest import load_report, outcomes, run
from multihost_fixture import MultiHost, run_pytest

from pytest_dtf_errors import settings as dtf_settings
from pytest_dtf_errors.report import validate

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "conftest_examples"
OURS = (
    "custom_category",
    "custom_recovery",
    "custom_hardware_tag",
    "veto_retries",
    "pyproject_config",
    "gpu_pinning",
    "two_hosts",
)


def readme_command(name: str) -> list[str]:
    """The command on the first line of the example's README: ``Run: `pytest ...```."""
    first = (EXAMPLES / name / "README.md").read_text().splitlines()[0]
    found = re.search(r"Run: `([^`]+)`\s*$", first)
    assert found, f"{name}/README.md: the first line ends with Run: `COMMAND`"
    return shlex.split(found.group(1))


def example_args(name: str) -> list[str]:
    cmd = readme_command(name)
    assert cmd[:2] == ["pytest", f"conftest_examples/{name}"], cmd
    return cmd[1:]


def copy_example(pytester: pytest.Pytester, name: str) -> Path:
    target = pytester.path / "conftest_examples" / name
    shutil.copytree(
        EXAMPLES / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.json")
    )
    return target


def run_example(pytester: pytest.Pytester, name: str, *extra: str) -> tuple[pytest.RunResult, dict]:
    """Run the README's command from pytester.path (the "repository root")."""
    copy_example(pytester, name)
    result = run(pytester, *example_args(name), *extra, "--dtf-report", "r.json")
    report = load_report(pytester.path / "r.json")
    validate(report)
    return result, report


def by_nodeid(report: dict) -> dict[str, dict]:
    return {t["nodeid"]: t for t in report["tests"]}


# -- the READMEs ----------------------------------------------------------------


def test_every_example_has_a_readme_whose_first_line_says_what_it_shows_and_how_to_run_it():
    index = (EXAMPLES / "README.md").read_text()
    for name in OURS:
        first = (EXAMPLES / name / "README.md").read_text().splitlines()[0]
        assert len(first) > 40 and not first.startswith("#"), name
        args = readme_command(name)
        assert args[0] == "pytest" and args[1] == f"conftest_examples/{name}"
        assert first in index, f"conftest_examples/README.md lists {name} with its line"
    listed = set(re.findall(r"\[`?([a-z_]+)/`?\]\(", index))
    folders = {p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders <= listed, folders - listed


# -- custom categories and patterns ----------------------------------------------


def test_custom_category_from_the_subclass_and_the_hook_and_from_config(pytester):
    result, report = run_example(pytester, "custom_category")
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result) == {"flaky": 2, "rerun": 3}
    tests = by_nodeid(report)

    render = tests["test_license.py::test_render"]
    assert render["outcome"] == "flaky"
    first, second = render["attempts"]
    assert (first["category"], first["rule"]) == ("custom_error", "hook:pytest_dtf_classify")
    assert first["decision"]["retry"] and second["outcome"] == "passed"

    upload = tests["test_quota.py::test_upload"]
    assert upload["outcome"] == "flaky"
    assert [a["outcome"] for a in upload["attempts"]] == ["failed", "failed", "passed"]
    for attempt in upload["attempts"][:2]:
        assert attempt["category"] == "quota_exceeded"
        assert attempt["rule"] == "user-pattern:(?i)quota exceeded for project"
    # pytest_dtf_report added a key before the report was written
    assert report["custom_failures"] == {"custom_error": 1, "quota_exceeded": 2}


# -- a custom recovery strategy ------------------------------------------------------


def test_custom_recovery_strategy_action_keeps_the_retry_off_the_failing_worker(pytester):
    result, report = run_example(pytester, "custom_recovery")
    assert result.ret == 0, result.stdout.str()
    failed = [t for t in report["tests"] if len(t["attempts"]) > 1]
    assert failed, "the first worker to check out a license has a broken daemon"
    assert all(t["outcome"] in ("passed", "flaky") for t in report["tests"])
    bad = {t["attempts"][0]["node"] for t in failed}
    assert len(bad) == 1, "one worker has the broken daemon"
    for test in failed:
        first, second = test["attempts"]
        assert first["category"] == "resource_unavailable"
        assert first["rule"] == "user-type:LicenseCheckoutError"
        # the custom strategy's action, not the built-in resource strategy's prefer_other_node
        assert first["actions"] == [{"kind": "avoid_node", "node": first["node"]}]
        assert second["node"] != first["node"] and second["outcome"] == "passed"


# -- a custom hardware tag -------------------------------------------------------------


def test_hardware_tag_from_the_hook_routes_tpu_tests_to_that_worker(pytester):
    result, report = run_example(pytester, "custom_hardware_tag")
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result) == {"passed": 6}
    nodes = {n["id"]: n["hardware"] for n in report["nodes"]}
    assert "tpu" in nodes["gw0"] and "tpu" not in nodes["gw1"]
    tpu = [t for t in report["tests"] if "test_matmul_on_tpu" in t["nodeid"]]
    assert len(tpu) == 3
    assert {a["node"] for t in tpu for a in t["attempts"]} == {"gw0"}


def test_hardware_tag_hook_runs_in_process_too(pytester, monkeypatch):
    copy_example(pytester, "custom_hardware_tag")
    monkeypatch.setenv("HAS_TPU", "1")
    result = run(pytester, "conftest_examples/custom_hardware_tag", "-p", "no:xdist")
    assert outcomes(result) == {"passed": 6}, result.stdout.str()


# -- vetoing and moving retries ----------------------------------------------------------


def test_retry_decision_hook_vetoes_smoke_and_moves_the_other(pytester):
    result, report = run_example(pytester, "veto_retries")
    assert result.ret == 1, result.stdout.str()
    tests = by_nodeid(report)

    smoke = tests["tests/smoke/test_health.py::test_service_health"]
    assert smoke["outcome"] == "failed"
    (only,) = smoke["attempts"]
    assert only["category"] == "network_connection_error"
    assert only["decision"]["retry"] is False
    assert only["decision"]["reason"].startswith("smoke tests are never retried")
    result.stdout.fnmatch_lines(["*network_connection_error*: smoke tests are never retried*"])

    moved = tests["tests/test_jobs.py::test_enqueue"]
    assert moved["outcome"] == "flaky"
    first, second = moved["attempts"]
    assert first["decision"]["retry"] is True
    assert second["node"] != first["node"] and second["outcome"] == "passed"


# -- [tool.dtf] in pyproject.toml ---------------------------------------------------------


def test_pyproject_policies_budget_and_missing_hardware_are_used(pytester):
    result, report = run_example(pytester, "pyproject_config")
    assert result.ret == 1, result.stdout.str()
    assert report["summary"]["budget"] == 20  # retry_budget
    tests = by_nodeid(report)

    def attempts(name: str) -> list[dict]:
        return tests[f"test_service.py::{name}"]["attempts"]

    assert tests["test_service.py::test_flaky_download"]["outcome"] == "flaky"
    # NETWORK_CONNECTION_ERROR max_retries = 1 (the default would be 2): two attempts
    down = attempts("test_service_down")
    assert [a["outcome"] for a in down] == ["failed", "failed"]
    assert down[-1]["decision"] == {"retry": False, "delay": 0.0, "reason": "network_connection_error: 1 of 1 retries used"}
    assert down[0]["decision"]["delay"] == pytest.approx(0.1)  # retry_delay_seconds, no jitter
    # error_categories maps the type; RESOURCE_UNAVAILABLE max_retries = 3
    db = attempts("test_db_locked")
    assert [a["outcome"] for a in db] == ["failed", "failed", "passed"]
    assert {(a["category"], a["rule"]) for a in db[:2]} == {("resource_unavailable", "user-type:OperationalError")}
    # missing_hardware = "fail"
    fpga = tests["test_service.py::test_fpga_bitstream"]
    assert fpga["outcome"] == "failed" and fpga["attempts"] == []
    assert "requires hardware fpga" in fpga["reason"]
    assert len(attempts("test_totals")) == 1


# -- GPU pinning ---------------------------------------------------------------------------


def test_gpu_pinning_with_a_fake_nvidia_smi(pytester, fake_gpus):
    result, report = run_example(pytester, "gpu_pinning")
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result) == {"passed": 5}
    nodes = {n["id"]: n for n in report["nodes"]}
    assert (nodes["gw0"]["gpus"], nodes["gw1"]["gpus"]) == ("0,1", "2,3")
    assert all("cuda" in n["hardware"] for n in nodes.values())
    # workers get ready in either order
    result.stdout.fnmatch_lines(["*gw0*CUDA_VISIBLE_DEVICES='0,1'*"])
    result.stdout.fnmatch_lines(["*gw1*CUDA_VISIBLE_DEVICES='2,3'*"])


# -- two hosts -------------------------------------------------------------------------------


def test_two_hosts_command_on_two_fake_hosts(multihost: MultiHost, tmp_path):
    proj = tmp_path / "two_hosts"
    shutil.copytree(EXAMPLES / "two_hosts", proj, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # the README's command, with the fake hosts' addresses and the copied project
    args = example_args("two_hosts")
    specs = iter(multihost.tx_specs(["A", "B"])[1::2])
    args = [next(specs) if a.startswith("socket=") else a for a in args]
    args = [str(proj) if a == "conftest_examples/two_hosts" else a for a in args]
    for flag in mf.REMOTE_UNSAFE_PLUGINS_OFF[1::2]:
        assert flag in args, f"the README's command turns off {flag}"
    report_path = tmp_path / "r.json"
    r = run_pytest([*args, "--dtf-report", str(report_path)], cwd=tmp_path, timeout=60, echo=False)
    assert not r.timed_out and r.rc == 0, r.text()
    report = json.loads(report_path.read_text())
    validate(report)
    nodes = {n["id"]: n for n in report["nodes"]}
    assert set(nodes) == {"hostA", "hostB"}
    assert nodes["hostA"]["host"] != nodes["hostB"]["host"]
    assert "cuda" in nodes["hostA"]["hardware"] and "cuda" not in nodes["hostB"]["hardware"]
    assert report["summary"]["passed"] == 10
    ran_on = {t["nodeid"]: t["attempts"][0]["node"] for t in report["tests"]}
    assert {n for k, n in ran_on.items() if "test_on_the_gpu_host" in k} == {"hostA"}
    assert set(ran_on.values()) == {"hostA", "hostB"}, "both hosts ran tests"


# -- docs/extending.md ----------------------------------------------------------------------


def test_extending_doc_lists_every_option_and_ini_key_once_and_every_hook():
    text = (ROOT / "docs" / "extending.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    cells = " ".join(table)
    for o in dtf_settings.OPTIONS:
        if o.flag:
            assert cells.count(f"`{o.flag}`") == 1, o.flag
        if o.ini:
            assert cells.count(f"`{dtf_settings.ini_name(o)}`") == 1, o.key
        assert cells.count(f"`{o.key}`") == 1, o.key
    for key in ("--dtf-config", "error_categories", "error_patterns", "retry_policies",
                "similarity_threshold", "custom_categories"):
        assert cells.count(f"`{key}`") == 1, key
    from pytest_dtf_errors import hookspecs

    for hook in (n for n in dir(hookspecs) if n.startswith("pytest_dtf_")):
        assert f"`{hook}(" in text, hook  # its signature ...
        assert f"def {hook}(" in text, hook  # ... and a one-line example
