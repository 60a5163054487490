"""The reports end to end (issue 5): real sessions with -n 2 and in-process.

The terminal (pytest's final line, its per-test status lines and the "dtf error
summary"), the --dtf-report JSON and the rewritten --junitxml file must tell the
same story test by test; every report validates against the packaged schema and
is written atomically, also after a KeyboardInterrupt or a crashed worker.
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import LOGGING_CONFTEST, MODES, attempts_log, load_report, run

from pytest_dtf_errors.report import validate
from pytest_dtf_errors.report.terminal import counts_line

junitparser = pytest.importorskip("junitparser")

FINAL = ("passed", "failed", "skipped", "flaky", "error")
# pytest's final line pluralizes "errors"; the JSON summary says "error"
LINE_KEY = {
    "passed": "passed",
    "failed": "failed",
    "skipped": "skipped",
    "flaky": "flaky",
    "error": "errors",
}
STATUS = {
    "PASSED": "passed",
    "FAILED": "failed",
    "ERROR": "error",
    "SKIPPED": "skipped",
    "FLAKY": "flaky",
}

POLICY = """
[tool.dtf]
breaker_min_tests = 1000

[tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR]
max_retries = {retries}
retry_delay_seconds = 0.0
retry_jitter = 0.0
"""


@pytest.fixture
def project(pytester: pytest.Pytester):
    def make(tests: str, retries: int = 2, conftest: str = "") -> pytest.Pytester:
        pytester.makeconftest(LOGGING_CONFTEST + conftest)
        pytester.makepyprojecttoml(POLICY.format(retries=retries))
        pytester.makepyfile(test_suite=tests)
        return pytester

    return make


# -- helpers -------------------------------------------------------------------
def checked_report(path: Path, nodeids: list[str]) -> dict[str, Any]:
    """The report at path: schema-valid, every collected test exactly once, counts adding up."""
    data = load_report(path)
    validate(data)
    ids = [t["nodeid"] for t in data["tests"]]
    assert len(ids) == len(set(ids)), f"a test appears twice: {Counter(ids).most_common(3)}"
    assert sorted(ids) == sorted(nodeids)
    summary = data["summary"]
    by_outcome = Counter(t["outcome"] for t in data["tests"])
    assert {k: summary[k] for k in FINAL} == {k: by_outcome[k] for k in FINAL}
    assert summary["total"] == len(nodeids)
    assert summary["attempts"] == sum(len(t["attempts"]) for t in data["tests"])
    return data


def by_nodeid(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["nodeid"]: t for t in data["tests"]}


def assert_no_temp_files(directory: Path, *expected: str) -> None:
    assert sorted(p.name for p in directory.iterdir()) == sorted(expected)


def final_line_counts(result: pytest.RunResult) -> dict[str, int]:
    """pytest's final line in the JSON summary's terms (rerun left out)."""
    counts = result.parseoutcomes()
    return {k: counts.get(LINE_KEY[k], 0) for k in FINAL if counts.get(LINE_KEY[k], 0)}


def json_counts(data: dict[str, Any]) -> dict[str, int]:
    return {k: data["summary"][k] for k in FINAL if data["summary"][k]}


def terminal_statuses(result: pytest.RunResult, prefix: str) -> dict[str, list[str]]:
    """Per nodeid, the -v status words (PASSED, RERUN, FLAKY, ...) in the order they came."""
    words = "|".join([*STATUS, "RERUN"])
    pattern = re.compile(
        rf"(?:\b({words}) ({re.escape(prefix)}\S+)|({re.escape(prefix)}\S+) ({words})\b)"
    )
    out: dict[str, list[str]] = {}
    for line in result.outlines:
        if "short test summary info" in line:
            break
        m = pattern.search(line)
        if m:
            word, nodeid = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
            out.setdefault(nodeid, []).append(word)
    return out


def dtf_section(result: pytest.RunResult) -> list[str]:
    """The lines of the "dtf error summary" section (without its title)."""
    lines = result.outlines
    start = next(
        (i for i, line in enumerate(lines) if re.match(r"^=+ dtf error summary =+$", line)), None
    )
    if start is None:
        return []
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if re.match(r"^[=_-]{3,} .* [=_-]{3,}$", lines[i])
        ),
        len(lines),
    )
    return lines[start + 1 : end]


def table_row(pt: dict[str, Any]) -> str:
    """A regex for a pattern's row in the table: id, category, count, tests, ..., scope."""
    head = (
        rf"^{re.escape(str(pt['id']))}\s+{pt['category']}\s+{pt['count']}\s+{pt['distinct_tests']}"
    )
    return head + rf"\s+\S+\s+\S+\s+{pt['scope']}\b"


def junit_cases(path: Path) -> dict[str, list[Any]]:
    """'classname.name' -> the junitparser TestCases with that name."""
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = [xml] if isinstance(xml, junitparser.TestSuite) else list(xml)
    out: dict[str, list[Any]] = {}
    for suite in suites:
        for case in suite:
            out.setdefault(f"{case.classname}.{case.name}", []).append(case)
    return out


def junit_suite_counts(path: Path) -> dict[str, int]:
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = [xml] if isinstance(xml, junitparser.TestSuite) else list(xml)
    return {
        k: sum(getattr(s, k) or 0 for s in suites)
        for k in ("tests", "failures", "errors", "skipped")
    }


def junit_key(nodeid: str) -> str:
    path, _, name = nodeid.partition("::")
    return f"{path.removesuffix('.py').replace('/', '.')}.{name}"


def junit_outcome(case: Any, element: ET.Element) -> str:
    kinds = {type(r).__name__ for r in case.result}
    if "Failure" in kinds:
        return "failed"
    if "Error" in kinds:
        return "error"
    if "Skipped" in kinds:
        return "skipped"
    if element.find("flakyFailure") is not None or element.find("flakyError") is not None:
        return "flaky"
    return "passed"


def etree_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {f"{c.get('classname')}.{c.get('name')}": c for c in root.iter("testcase")}


def properties(case: Any) -> dict[str, str]:
    props = case.child(junitparser.Properties)
    return {} if props is None else {p.name: p.value for p in props}


# -- 1. the terminal, the JSON and JUnit agree -----------------------------------
BROKEN_FIXTURE = """
@pytest.fixture
def broken():
    raise RuntimeError("fixture setup failed")
"""

MIXED = """
import pytest

def test_pass(log):
    log("pass")

def test_flaky(log, dtf_attempt):
    log("flaky")
    if dtf_attempt == 1:
        raise ConnectionRefusedError(111, "Connection refused to api.internal:8080")

def test_refused(log):
    log("refused")
    raise ConnectionRefusedError(111, "Connection refused to db.internal:5432")

def test_assert(log):
    log("assert")
    assert 1 == 2, "wrong answer"

def test_skip(log):
    log("skip")
    pytest.skip("not today")

def test_setup_error(broken):
    pass
"""
MIXED_IDS = [
    f"test_suite.py::test_{n}"
    for n in ("pass", "flaky", "refused", "assert", "skip", "setup_error")
]
MIXED_OUTCOMES = {
    "test_suite.py::test_pass": "passed",
    "test_suite.py::test_flaky": "flaky",
    "test_suite.py::test_refused": "failed",
    "test_suite.py::test_assert": "failed",
    "test_suite.py::test_skip": "skipped",
    "test_suite.py::test_setup_error": "error",
}
# attempts: the flaky test twice, the always-refused one 1 + max_retries (2)
MIXED_ATTEMPTS = {
    "test_suite.py::test_pass": 1,
    "test_suite.py::test_flaky": 2,
    "test_suite.py::test_refused": 3,
    "test_suite.py::test_assert": 1,
    "test_suite.py::test_skip": 1,
    "test_suite.py::test_setup_error": 1,
}


def run_mixed(
    project, mode: str, *extra: str
) -> tuple[pytest.Pytester, pytest.RunResult, dict[str, Any]]:
    p = project(MIXED, conftest=BROKEN_FIXTURE)
    result = run(
        p,
        "--dtf-retry",
        "--dtf-report",
        "out/report.json",
        "--junitxml",
        "out/junit.xml",
        *extra,
        *MODES[mode],
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert_no_temp_files(p.path / "out", "report.json", "junit.xml")
    return p, result, checked_report(p.path / "out" / "report.json", MIXED_IDS)


@pytest.mark.parametrize("mode", MODES)
def test_terminal_json_and_junit_agree_test_by_test(project, mode):
    p, result, data = run_mixed(project, mode, "-v")
    tests = by_nodeid(data)

    # the JSON: outcomes and attempts as the suite dictates, and as the tests ran them
    assert {n: t["outcome"] for n, t in tests.items()} == MIXED_OUTCOMES
    assert {n: len(t["attempts"]) for n, t in tests.items()} == MIXED_ATTEMPTS
    ran = attempts_log(p.path / "attempts.log")
    assert sorted(ran) == ["assert", "flaky", "pass", "refused", "skip"]
    for name, entries in ran.items():
        assert len(entries) == len(tests[f"test_suite.py::test_{name}"]["attempts"]), name
    assert data["summary"]["retries"] == 3
    flaky_first = tests["test_suite.py::test_flaky"]["attempts"][0]
    assert (flaky_first["outcome"], flaky_first["phase"]) == ("failed", "call")
    assert flaky_first["category"] == "network_connection_error"
    assert flaky_first["error"]["type"] == "ConnectionRefusedError"
    setup = tests["test_suite.py::test_setup_error"]["attempts"][0]
    assert (setup["outcome"], setup["phase"]) == ("error", "setup")
    assert all(
        a["category"] == "network_connection_error" and a["outcome"] == "failed"
        for a in tests["test_suite.py::test_refused"]["attempts"]
    )

    # the terminal: the final line, every test's -v status, the dtf summary
    assert final_line_counts(result) == json_counts(data)
    assert result.parseoutcomes().get("rerun") == data["summary"]["retries"]
    statuses = terminal_statuses(result, "test_suite.py::")
    for nodeid, t in tests.items():
        words = statuses.get(nodeid, [])
        final_words = [w for w in words if w != "RERUN"]
        assert final_words and STATUS[final_words[-1]] == t["outcome"], (nodeid, words)
        assert words.count("RERUN") == len(t["attempts"]) - 1, (nodeid, words)
    section = dtf_section(result)
    assert section[0] == counts_line(data["summary"])
    for nodeid, t in tests.items():
        if t["outcome"] not in ("passed", "skipped"):
            n = len(t["attempts"])
            assert f"  {nodeid}: {n} attempt{'s' * (n != 1)}" in section, nodeid

    # JUnit: each test once, with the JSON's outcome, Surefire's children and properties
    junit = p.path / "out" / "junit.xml"
    cases = junit_cases(junit)
    elements = etree_cases(junit)
    assert sorted(cases) == sorted(junit_key(n) for n in MIXED_IDS), (
        "one testcase per test, no other"
    )
    assert all(len(c) == 1 for c in cases.values()), {k: len(c) for k, c in cases.items()}
    for nodeid, t in tests.items():
        key = junit_key(nodeid)
        case, element = cases[key][0], elements[key]
        assert junit_outcome(case, element) == t["outcome"], nodeid
        failed = [a for a in t["attempts"] if a["outcome"] in ("failed", "error")]
        props = properties(case)
        if failed or len(t["attempts"]) > 1:
            assert props.get("dtf_category") == failed[-1]["category"], nodeid
            assert props.get("dtf_attempts") == str(len(t["attempts"])), nodeid
        else:
            assert "dtf_category" not in props and "dtf_attempts" not in props, nodeid
    assert junit_suite_counts(junit) == {
        "tests": 6,
        "failures": data["summary"]["failed"],
        "errors": data["summary"]["error"],
        "skipped": data["summary"]["skipped"],
    }

    flaky = elements[junit_key("test_suite.py::test_flaky")]
    flaky_failed = [
        a for a in tests["test_suite.py::test_flaky"]["attempts"] if a["outcome"] == "failed"
    ]
    children = flaky.findall("flakyFailure")
    assert len(children) == len(flaky_failed) == 1
    assert flaky.find("failure") is None and flaky.find("error") is None
    assert_surefire_child(children[0], flaky_failed[0], "api.internal:8080")

    refused = elements[junit_key("test_suite.py::test_refused")]
    refused_attempts = tests["test_suite.py::test_refused"]["attempts"]
    assert len(refused.findall("failure")) == 1 and refused.find("error") is None
    reruns = refused.findall("rerunFailure")
    assert len(reruns) == len(refused_attempts) - 1 == 2
    for child, attempt in zip(reruns, refused_attempts):
        assert_surefire_child(child, attempt, "db.internal:5432")

    # one more pass through the schema: it does reject what it should
    broken = load_report(p.path / "out" / "report.json")
    broken["tests"][0]["outcome"] = "weird"
    with pytest.raises(ValueError, match=r"tests\[0\]\.outcome"):
        validate(broken)


def assert_surefire_child(child: ET.Element, attempt: dict[str, Any], needle: str) -> None:
    """A <flakyFailure>/<rerunFailure> as Surefire writes it, telling the attempt's story."""
    assert child.get("message") == attempt["error"]["message"]
    assert needle in child.get("message", "")
    assert child.get("type") == attempt["error"]["type"] == "ConnectionRefusedError"
    traces = child.findall("stackTrace")
    assert len(traces) == 1 and "ConnectionRefusedError" in (traces[0].text or "")


# -- 3. atomic writes --------------------------------------------------------------
INTERRUPTED = """
def test_a(log):
    log("a")

def test_b(log):
    log("b")
    raise KeyboardInterrupt

def test_c(log):
    log("c")
"""


@pytest.mark.parametrize("mode", MODES)
def test_keyboard_interrupt_still_replaces_the_report_whole(project, mode):
    p = project(INTERRUPTED)
    out = p.path / "out"
    out.mkdir()
    # an older, longer report: a write that does not replace the file whole leaves its tail
    old = '{"schema_version": 1, "old": true, "padding": "%s"}\n' % ("x" * 50_000)
    (out / "report.json").write_text(old)
    result = run(p, "--dtf-report", "out/report.json", *MODES[mode])

    assert_no_temp_files(out, "report.json")
    data = checked_report(out / "report.json", [f"test_suite.py::test_{n}" for n in "abc"])
    assert "old" not in data
    tests = by_nodeid(data)
    assert tests["test_suite.py::test_a"]["outcome"] == "passed"

    # what the report says about the interrupted and the unrun test, all checked at once
    problems = []
    interrupted = tests["test_suite.py::test_b"]
    if interrupted["outcome"] not in ("failed", "error"):
        problems.append(f"test_b (interrupted) has outcome {interrupted['outcome']!r}")
    outcomes = [a["outcome"] for a in interrupted["attempts"]]
    if outcomes not in (["failed"], ["error"]):  # it ran and was interrupted: it did not pass
        problems.append(f"test_b (interrupted) has attempts {outcomes}, want one failed or error")
    if "before it ran" in (interrupted["reason"] or ""):
        problems.append(f"test_b ran, but its reason says {interrupted['reason']!r}")
    last = tests["test_suite.py::test_c"]  # on -n 2 the other worker may have run it
    if last["attempts"] and last["outcome"] != "passed":
        problems.append(f"test_c ran and passed, but its outcome is {last['outcome']!r}")
    if not last["attempts"] and (
        last["outcome"] == "passed" or not (last["reason"] or "").startswith("not run")
    ):
        problems.append(
            f"test_c did not run: outcome {last['outcome']!r}, reason {last['reason']!r}"
        )
    if dtf_section(result)[:1] != [counts_line(data["summary"])]:
        problems.append(
            f"dtf summary {dtf_section(result)[:1]} != JSON {counts_line(data['summary'])!r}"
        )
    internal = [line for line in result.outlines if line.startswith("INTERNALERROR")]
    if internal:
        problems.append("INTERNALERROR:\n" + "\n".join(internal[-3:]))
    if result.ret != pytest.ExitCode.INTERRUPTED:
        problems.append(f"exit status {result.ret}, want {pytest.ExitCode.INTERRUPTED!r}")
    assert not problems, "\n".join(problems)


CRASHING = """
import os

def test_a(log):
    log("a")

def test_crash(log):
    log("crash")
    os._exit(1)

def test_c(log):
    log("c")
"""


@pytest.mark.parametrize("retry", [False, True], ids=["no-retry", "dtf-retry"])
def test_crashed_worker_report_is_valid_and_says_worker_crashed(project, retry):
    p = project(CRASHING)
    out = p.path / "out"
    args = ["--dtf-report", "out/report.json", "--junitxml", "out/junit.xml", "-n", "2"]
    result = run(p, *(["--dtf-retry"] if retry else []), *args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()

    assert_no_temp_files(out, "report.json", "junit.xml")
    ids = [f"test_suite.py::test_{n}" for n in ("a", "crash", "c")]
    data = checked_report(out / "report.json", ids)
    tests = by_nodeid(data)
    crashed = tests["test_suite.py::test_crash"]
    ran = len(attempts_log(p.path / "attempts.log")["crash"])
    assert len(crashed["attempts"]) == ran == (3 if retry else 1)  # worker_crashed: 2 retries
    assert crashed["outcome"] in ("failed", "error")
    for attempt in crashed["attempts"]:
        assert attempt["category"] == "worker_crashed", attempt
        assert attempt["outcome"] in ("failed", "error"), attempt  # never passed
    crashed_on = {a["node"] for a in crashed["attempts"]}
    nodes = {n["id"]: n for n in data["nodes"]}
    assert all(nodes[n]["crashes"] >= 1 for n in crashed_on)
    assert tests["test_suite.py::test_a"]["outcome"] == "passed"
    assert tests["test_suite.py::test_c"]["outcome"] == "passed"
    [pattern] = [pt for pt in data["patterns"] if pt["category"] == "worker_crashed"]
    assert pattern["count"] == len(crashed["attempts"])

    # the terminal and JUnit tell the same story as the JSON
    problems = []
    if final_line_counts(result) != json_counts(data):
        problems.append(f"final line {final_line_counts(result)} != JSON {json_counts(data)}")
    if dtf_section(result)[:1] != [counts_line(data["summary"])]:
        problems.append(
            f"dtf summary {dtf_section(result)[:1]} != JSON {counts_line(data['summary'])!r}"
        )
    cases = junit_cases(out / "junit.xml")
    if sorted(cases) != sorted(junit_key(n) for n in ids) or any(
        len(c) != 1 for c in cases.values()
    ):
        got = [(k, len(c)) for k, c in cases.items()]
        problems.append(f"JUnit testcases {got}, want each of {[junit_key(n) for n in ids]} once")
    element = etree_cases(out / "junit.xml").get(junit_key("test_suite.py::test_crash"))
    if element is None or element.find("error") is None and element.find("failure") is None:
        problems.append("JUnit: the crashed test has no <error>/<failure>")
    elif len(element.findall("rerunError")) != len(crashed["attempts"]) - 1:
        problems.append(
            f"JUnit: {len(element.findall('rerunError'))} <rerunError>"
            f" for {len(crashed['attempts'])} attempts"
        )
    counts = junit_suite_counts(out / "junit.xml")
    if counts["tests"] != 3:
        problems.append(f"JUnit suite counts {counts}, want 3 tests")
    assert not problems, "\n".join(problems)


# -- 4. the pattern table ------------------------------------------------------------
# 30 tests on a database refusal and 10 on a cache refusal, interleaved so that the
# first chunk each worker gets holds both kinds: each pattern really spans two workers.
SERVICES = """
import pytest

CASES = [("cache", j // 4) if j % 4 == 0 else ("db", j - j // 4 - 1) for j in range(40)]

@pytest.mark.parametrize("kind,i", CASES, ids=["%s-%d" % c for c in CASES])
def test_service(kind, i):
    if kind == "db":
        ip = "10.%d.%d.%d" % (i % 7, (i * 37) % 256, 1 + (i * 11) % 250)
        raise ConnectionRefusedError(
            111,
            f"could not connect to server: Connection refused\\n\\tIs the server running on host "
            f"\\"db-{i}.prod\\" ({ip}) and accepting TCP/IP connections on port {5432 + i}?",
        )
    raise ConnectionError(f"Error 111 connecting to redis-{i}:{6379 + i}. Connection refused.")
"""
SERVICE_IDS = [f"test_suite.py::test_service[db-{i}]" for i in range(30)] + [
    f"test_suite.py::test_service[cache-{i}]" for i in range(10)
]


def check_patterns(result: pytest.RunResult, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Exactly a database and a cache pattern; JSON and terminal agree on them."""
    patterns = data["patterns"]
    detail = [(pt["id"], pt["count"], pt["distinct_tests"], pt["template"]) for pt in patterns]
    assert len(patterns) == 2, f"want 2 patterns, got {detail}"
    found = {}
    for pt in patterns:
        listed = pt["tests"] if isinstance(pt["tests"], list) else []
        kind = "db" if all("[db-" in t for t in listed) else "cache"
        found[kind] = pt
    assert sorted(found) == ["cache", "db"], detail
    assert (found["db"]["distinct_tests"], found["cache"]["distinct_tests"]) == (30, 10), detail

    tests = by_nodeid(data)
    for kind, pt in found.items():
        attempts = [a for n, t in tests.items() if f"[{kind}-" in n for a in t["attempts"]]
        assert {a["pattern"] for a in attempts} == {pt["id"]}, kind
        assert pt["count"] == len(attempts), kind  # count: failed attempts, retries included
        assert pt["category"] == "network_connection_error", pt
        assert pt["scope"] == "systemic", pt
        assert len(pt["nodes"]) >= 2, pt
        assert f"[{kind}-" in pt["example"]["test"], pt
        assert not re.search(r"db-\d|redis-\d|543\d|637\d|10\.\d", pt["template"]), pt["template"]
    assert sum(pt["count"] for pt in patterns) == data["summary"]["attempts"]

    section = dtf_section(result)
    assert "error patterns (2):" in section
    for pt in patterns:
        row = table_row(pt)
        assert any(re.match(row, line) for line in section), (row, section)
    by_cat = (
        f"failures by category: network_connection_error {data['summary']['attempts']} (40 tests)"
    )
    assert by_cat in section, section
    return found


def test_pattern_table_two_services_down(project):
    p = project(SERVICES)
    result = run(p, "--dtf-report", "out/report.json", "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    data = checked_report(p.path / "out" / "report.json", SERVICE_IDS)
    assert final_line_counts(result) == json_counts(data) == {"failed": 40}
    found = check_patterns(result, data)
    assert (found["db"]["count"], found["cache"]["count"]) == (30, 10)
    assert {w["id"] for w in data["run"]["workers"]} == {"gw0", "gw1"}


def test_pattern_counts_include_retried_attempts(project):
    p = project(SERVICES, retries=1)
    result = run(
        p, "--dtf-retry", "--dtf-retry-budget", "6", "--dtf-report", "out/report.json", "-n", "2"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    data = checked_report(p.path / "out" / "report.json", SERVICE_IDS)
    assert final_line_counts(result) == json_counts(data) == {"failed": 40}
    assert data["summary"]["retries"] == result.parseoutcomes().get("rerun") == 6
    found = check_patterns(result, data)
    assert found["db"]["count"] + found["cache"]["count"] == 46


# -- 5. reading a saved report -------------------------------------------------------
def test_saved_report_prints_like_the_terminal(project):
    p, result, data = run_mixed(project, "inprocess")
    section = dtf_section(result)
    width = len(next(line for line in result.outlines if "dtf error summary" in line))
    path = p.path / "out" / "report.json"
    cli = subprocess.run(
        [sys.executable, "-m", "pytest_dtf_errors.report", "--width", str(width), str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.splitlines()
    assert lines[0] == f"dtf report: {path}"
    assert lines[2] == "2 failed, 1 error, 1 flaky, 1 passed, 1 skipped (of 6 tests)"
    assert f"error patterns ({len(data['patterns'])}):" in lines
    for pt in data["patterns"]:
        row = table_row(pt)
        assert any(re.match(row, line) for line in lines), row
    assert lines[2:] == section, "the saved report prints as the terminal summary did"

    missing = subprocess.run(
        [sys.executable, "-m", "pytest_dtf_errors.report", str(p.path / "nope.json")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
