"""The HTML report without a browser: one self-contained file, hostile text escaped, bounded
size, marks placed where the report gives no time, the CLI's --html and the plugin's --dtf-html."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import html
import importlib.util
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import run

from pytest_dtf_errors.report import validate
from pytest_dtf_errors.report.__main__ import main as report_main
from pytest_dtf_errors.report.html import (
    SHORT_CHARS,
    TEXT_BUDGET,
    TRACEBACK_CHARS,
    embed_json,
    page_data,
    render_html,
    write_html,
)

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_796_000_000.0


def load_bench() -> Any:
    """bench/html_render.py as a module (its synthetic report is shared with the benchmark)."""
    spec = importlib.util.spec_from_file_location("dtf_bench_html_render", ROOT / "bench" / "html_render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def attempt(n: int, node: str, outcome: str, start: float, *, pattern: str | None = None,
            message: str | None = None, retry: bool | None = None, **extra: Any) -> dict[str, Any]:
    a: dict[str, Any] = {
        "attempt": n, "node": node, "host": "h1", "hardware": ["cpu"], "outcome": outcome, "phase": None,
        "category": None, "rule": None, "error": None, "duration": 0.1, "decision": None, "actions": [],
        "pattern": pattern, "started": T0 + start, "finished": T0 + start + 0.1,
    }
    if message is not None:
        a.update(phase="call", category="network_timeout", rule="type:TimeoutError",
                 error={"type": "TimeoutError", "message": message})
    if retry is not None:
        a["decision"] = {"retry": retry, "delay": 0.5, "reason": "network_timeout: retry 1" if retry else "not retried"}
    a.update(extra)
    return a


def small_report(tests: list[dict[str, Any]], *, check: bool = True, **parts: Any) -> dict[str, Any]:
    attempts = sum(len(t["attempts"]) for t in tests)
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "skipped", "flaky", "error")}
    workers = sorted({a["node"] for t in tests for a in t["attempts"]})
    report = {
        "schema_version": 2,
        "run": {
            "id": "r1", "label": None, "plugin": "0.1.0", "pytest": "9", "xdist": "3.8", "start": "2026-01-01T00:00:00.000Z",
            "start_epoch": T0, "end": "2026-01-01T00:00:10.000Z", "end_epoch": T0 + 10, "duration": 10.0, "args": [],
            "workers": [{"id": w, "host": "h1", "hardware": ["cpu"]} for w in workers], "exit_status": 1,
            "collection_errors": 0, "repeats": None,
        },
        "summary": {**counts, "total": len(tests), "attempts": attempts, "retries": attempts - len(tests),
                    "budget": 10, "budget_note": None, "budget_used": attempts - len(tests), "breaker_cancelled": 0,
                    "quarantined": 0, "victims": 0},
        "tests": [{"reason": None, **t} for t in tests],
        "patterns": [], "nodes": [], "breaker": [], "unavailable": [], "lost_hosts": [], "poisoned": [],
        "exclusive": [], "collection_errors": [], "history": None,
    }
    report.update(parts)
    if check:
        validate(report)
    return report


class Links(HTMLParser):
    """Every URL-bearing attribute and element of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        for name, value in attrs:
            if name in ("src", "href", "action", "formaction", "poster", "data", "srcset", "xlink:href"):
                self.urls.append((tag, name, value or ""))


def embedded(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="dtf-data">(.*?)</script>', page, re.DOTALL)
    assert match, "no data element"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def strings_of(data: dict[str, Any]) -> list[str]:
    return data["strings"]


# -- self-contained ---------------------------------------------------------------
def test_the_page_is_one_file_that_loads_nothing():
    page = render_html(bench.synthetic_report(200))
    parser = Links()
    parser.feed(page)
    assert all(value.startswith("data:") for _tag, _name, value in parser.urls), parser.urls
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page), "a CSS url() that fetches"
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", page)
    assert not re.search(r"@import|\bfetch\(|XMLHttpRequest|WebSocket|EventSource|sendBeacon", page)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert [s.get("type") for s in scripts] == ["application/json", None]
    assert not any("src" in s for s in scripts)
    assert not any(tag == "link" and attrs.get("rel") == "stylesheet" for tag, attrs in parser.tags)
    # outside the report's own text, the only URL is the SVG namespace the script creates elements in
    code = re.sub(r'(id="dtf-data">).*?(</script>)', r"\1\2", page, flags=re.DOTALL)
    assert set(re.findall(r"https?://[^\s\"'<>]+", code)) == {"http://www.w3.org/2000/svg"}


def test_the_content_security_policy_allows_only_the_page_s_own_script():
    page = render_html(bench.synthetic_report(20))
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1))
    assert "default-src 'none'" in csp and "connect-src" not in csp
    script = re.search(r"<script>(.*?)</script>", page, re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp


def test_the_assets_ship_in_the_wheel():
    """pyproject's package-data names every file under report/html_assets (the page reads them)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"\[tool\.setuptools\.package-data\]\s*\n(.*?)(\n\[|\Z)", text, re.DOTALL).group(1)
    globs = re.findall(r'"([^"]+)"', re.search(r"pytest_dtf_errors\s*=\s*\[(.*?)\]", block, re.DOTALL).group(1))
    assets = ROOT / "pytest_dtf_errors"
    for f in (assets / "report" / "html_assets").iterdir():
        rel = f.relative_to(assets).as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not package data ({globs})"


# -- hostile text ---------------------------------------------------------------
HOSTILE = (
    "</script><script>window.pwned = 1</script><!-- <script> ]]> & &amp; \u2028\u2029 "
    "\x00\x01\x1b[31m \ud800 \udfff \x7f \xff\xfe bytes: " + "".join(map(chr, range(128, 256)))
)


def hostile_report() -> dict[str, Any]:
    huge = "x" * 3_000_000 + HOSTILE
    return small_report(
        [
            {"nodeid": "t.py::test_<b>bold</b>[</script>]", "outcome": "failed",
             "attempts": [attempt(1, "gw0", "failed", 1.0, pattern="P1", message=HOSTILE, retry=True,
                                  error={"type": "</script>", "message": HOSTILE, "traceback": huge}),
                          attempt(2, "gw1", "failed", 2.0, pattern="P1", message=huge, retry=False)]},
        ],
        patterns=[{"id": "P1", "category": "network_timeout", "count": 2, "tests": ["t.py::test_x"], "distinct_tests": 1,
                   "nodes": ["gw0", "gw1"], "hardware": [], "hosts": ["h1"], "scope": "test",
                   "template": HOSTILE, "example": {"test": "t.py::test_x", "message": HOSTILE}, "hint": HOSTILE}],
    )


def test_hostile_text_cannot_end_the_data_element():
    page = render_html(hostile_report())
    page.encode("utf-8")  # no lone surrogate survives
    assert page.count("<script") == 2 and page.count("</script>") == 2
    body = page.split('id="dtf-data">', 1)[1].split("</script>", 1)[0]
    for bad in ("<", ">", "&", "\u2028", "\u2029", "\x00"):
        assert bad not in body
    data = embedded(page)
    texts = strings_of(data)
    # the text is still there, as text: the script shows it with textContent
    assert any("</script><script>window.pwned = 1</script>" in s for s in texts)
    assert "t.py::test_<b>bold</b>[</script>]" == data["files"][data["tests"][0][0]] + data["tests"][0][1]
    assert not any(re.search("[\ud800-\udfff\x00-\x08]", s) for s in texts)


def test_huge_text_is_cut():
    page = render_html(hostile_report())
    assert len(page.encode()) < 200_000
    texts = strings_of(embedded(page))
    assert max(map(len, texts)) < 10_000
    assert any("characters cut]" in s for s in texts)
    assert embedded(page)["cut"] >= 1


def test_the_text_budget_bounds_a_run_where_everything_fails():
    tests = [
        {"nodeid": f"t.py::test_{i}", "outcome": "failed",
         "attempts": [attempt(1, "gw0", "failed", i * 0.01, message=f"{i} " + "m" * 10_000,
                              error={"type": "E", "message": f"{i} " + "m" * 10_000, "traceback": f"{i}" + "t" * 10_000})]}
        for i in range(2_000)
    ]
    page = render_html(small_report(tests, check=False))
    assert len(page.encode()) < 2_000_000
    data = embedded(page)
    assert data["cut"] > 1_000  # later tracebacks left out, later messages short
    assert all(len(s) <= TRACEBACK_CHARS + 100 for s in data["strings"])
    assert sum(len(s) for s in data["strings"]) < TEXT_BUDGET + 2_000 * SHORT_CHARS + 100_000


def test_embed_json_round_trips():
    value = {"a": HOSTILE.replace("\ud800", "").replace("\udfff", ""), "b": [1, 2.5, None, True]}
    text = embed_json(value)
    assert not re.search("[<>&\u2028\u2029]", text)
    assert json.loads(text) == value


# -- size -----------------------------------------------------------------------
def test_the_synthetic_report_is_a_valid_report():
    validate(bench.synthetic_report(300))  # the 10,000 tests' shape, validated quicker


def test_ten_thousand_tests_fit_in_two_megabytes():
    report = bench.synthetic_report(10_000)
    page = render_html(report).encode("utf-8")
    assert len(page) < 2_000_000, len(page)
    data = embedded(page.decode())
    assert len(data["tests"]) == 10_000
    assert sum(len(t[3]) for t in data["tests"]) == report["summary"]["attempts"]


# -- the data the page draws ------------------------------------------------------
def test_rows_retry_arrows_and_lanes():
    report = small_report([
        {"nodeid": "a.py::test_flaky", "outcome": "flaky",
         "attempts": [attempt(1, "gw0", "failed", 1.0, pattern="P1", message="timed out", retry=True),
                      attempt(2, "gw1", "passed", 2.0)]},
        {"nodeid": "a.py::test_ok", "outcome": "passed", "attempts": [attempt(1, "gw10", "passed", 0.5)]},
        {"nodeid": "b.py::test_repeated", "outcome": "passed", "repeat": {"kind": "repeat", "runs": 2, "passed": 1},
         "attempts": [attempt(1, "gw2", "failed", 1.0), attempt(2, "gw1", "passed", 3.0)]},
        {"nodeid": "not_run", "outcome": "error", "reason": "not run: worker gone", "attempts": []},
    ], patterns=[{"id": "P1", "category": "network_timeout", "count": 1, "tests": ["a.py::test_flaky"],
                  "distinct_tests": 1, "nodes": ["gw0"], "hardware": [], "hosts": ["h1"], "scope": "test",
                  "template": "timed out", "example": None, "hint": "only a.py::test_flaky"}])
    data = page_data(report)
    assert [w["id"] for w in data["workers"]] == ["gw0", "gw1", "gw2", "gw10"]  # natural order
    files = data["files"]
    flaky, ok, repeated, not_run = data["tests"]
    assert files[flaky[0]] + flaky[1] == "a.py::test_flaky" and flaky[2] == data["outcomes"].index("flaky")
    first, second = flaky[3]
    assert first[:2] == [0, 1000.0] and first[2] == 100.0  # gw0, 1 s after the start, 100 ms long
    assert first[6] == 0 and first[7] >= 0  # pattern P1, a detail
    assert second[8] == 1  # a retry: the arrow's end
    assert ok[3] == [[3, 500.0, 100.0, 100.0]]  # a passed first attempt: the defaults left out
    assert all(len(row) < 9 or row[8] == 0 for row in repeated[3])  # a repeat's runs are not retries
    assert not_run[0] == -1 and not_run[1] == "not_run" and not_run[3] == []
    detail = data["details"][first[7]]
    assert data["strings"][detail["message"]] == "timed out" and detail["retry"] == 1
    assert data["strings"][not_run[4]["reason"]] == "not run: worker gone"


def test_no_arrows_when_nothing_was_retried():
    """--dist each: every worker runs every test; its attempts are runs, not retries."""
    report = small_report([
        {"nodeid": "a.py::t", "outcome": "failed",
         "attempts": [attempt(1, "gw0", "failed", 1.0, message="x"), attempt(2, "gw1", "failed", 1.0, message="x")]},
    ])
    report["summary"]["retries"] = 0
    assert all(len(row) < 9 or row[8] == 0 for row in page_data(report)["tests"][0][3])


def test_marks_are_placed_at_their_related_attempts():
    breaker_reason = "pattern P1 is systemic: the breaker stopped its retries"
    crash = attempt(1, "gw0", "error", 1.0, phase="crash", category="worker_crashed", pattern="P2",
                    error={"type": "WorkerCrash", "message": "worker 'gw0' crashed", "forensics": "crash forensics of gw0: SIGSEGV"})
    report = small_report(
        [
            {"nodeid": "a.py::test_early", "outcome": "passed", "attempts": [attempt(1, "gw1", "passed", 0.2)]},
            {"nodeid": "a.py::test_early2", "outcome": "passed", "attempts": [attempt(1, "gw3", "passed", 0.3)]},
            {"nodeid": "a.py::test_crash", "outcome": "flaky", "attempts": [crash, attempt(2, "gw2", "passed", 4.0)]},
            {"nodeid": "a.py::test_db1", "outcome": "failed",
             "attempts": [attempt(1, "gw1", "failed", 2.0, pattern="P1", message="refused", retry=False)]},
            {"nodeid": "a.py::test_db2", "outcome": "failed",
             "attempts": [attempt(1, "gw1", "failed", 3.0, pattern="P1", message="refused",
                                  decision={"retry": False, "delay": 0.0, "reason": breaker_reason})]},
            {"nodeid": "a.py::test_late", "outcome": "passed", "attempts": [attempt(1, "gw3", "passed", 6.0)]},
            {"nodeid": "a.py::test_gpu", "outcome": "failed",
             "attempts": [attempt(1, "gw3", "failed", 7.0, message="illegal memory access")]},
        ],
        nodes=[
            {"id": "gw0", "host": "h1", "hardware": ["cpu"], "gpus": None, "crashes": 1, "quarantined": False,
             "quarantine_reason": None, "quarantine_declined": None, "lost": False, "lost_reason": None},
            {"id": "gw1", "host": "h1", "hardware": ["cpu"], "gpus": None, "crashes": 0, "quarantined": True,
             "quarantine_reason": "3 node failures", "quarantine_declined": None, "lost": False, "lost_reason": None},
        ],
        breaker=[{"pattern": "P1", "reason": breaker_reason, "tests": ["a.py::test_db1"]}],
        poisoned=[{"worker": "gw3", "signature": "illegal memory access", "culprit": "a.py::test_gpu",
                   "victims": [], "reproduced_on": None}],
    )
    data = page_data(report)
    by_kind = {m["kind"]: m for m in data["marks"]}
    names = [w["id"] for w in data["workers"]]
    assert set(by_kind) == {"crash", "replacement", "quarantine", "breaker", "poison"}
    crash_mark = by_kind["crash"]
    assert names[crash_mark["worker"]] == "gw0" and crash_mark["t"] == 1100.0  # the crashed attempt's end
    assert data["strings"][crash_mark["text"]] == "crash forensics of gw0: SIGSEGV"
    assert (crash_mark["test"], crash_mark["attempt"]) == (2, 0)
    repl = by_kind["replacement"]
    # gw2 is the first worker on gw0's host that started after gw0 died
    assert names[repl["worker"]] == "gw2" and repl["t"] == 4000.0
    assert data["workers"][names.index("gw2")]["replaces"] == "gw0"
    assert data["workers"][names.index("gw0")]["replaced_by"] == "gw2"
    assert names[by_kind["quarantine"]["worker"]] == "gw1" and by_kind["quarantine"]["t"] == 3100.0  # its last attempt
    breaker = by_kind["breaker"]
    assert breaker["worker"] == -1 and breaker["t"] == 3100.0 and breaker["test"] == 4  # the first attempt it stopped
    assert names[by_kind["poison"]["worker"]] == "gw3" and by_kind["poison"]["t"] == 7100.0  # the culprit's attempt


def test_page_data_survives_odd_reports():
    """Missing times, unknown outcomes and workers, patterns the list lacks: a page, no exception."""
    odd = {
        "run": {"workers": ["gwX", {"id": None}], "exit_status": None},
        "summary": {"retries": 1, "budget": float("nan")},
        "tests": [
            {"nodeid": 5, "outcome": "weird", "attempts": [
                {"node": None, "outcome": "rerun", "pattern": "P9", "started": None, "finished": None},
                {"node": "gw1", "outcome": "failed", "started": "x", "finished": T0, "duration": float("inf"),
                 "error": "just a string", "decision": {"retry": True}, "actions": [{"kind": "k"}, 3]},
            ]},
            "not a test",
        ],
        "patterns": [{"id": 7}, "nope"],
        "nodes": [{"id": "gw1", "crashes": True, "quarantined": 1}],
        "breaker": [{"pattern": "P9"}],
        "history": {"events": [{"nodeid": None}]},
    }
    data = page_data(odd)
    assert data["tests"][0][1] == "5"
    page = render_html(odd)
    assert embedded(page)["patterns"][-1]["id"] == "P9"


# -- the CLI and the plugin ---------------------------------------------------------
def test_cli_writes_the_page_of_a_saved_report(tmp_path, capsys):
    report = bench.synthetic_report(30)
    src = tmp_path / "errors.json"
    src.write_text(json.dumps(report))
    out = tmp_path / "sub" / "page.html"
    assert report_main([str(src), "--html", str(out)]) == 0
    assert f"HTML report: {out}" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8") == render_html(json.loads(src.read_text()))
    assert report_main([str(src), "--html", str(tmp_path)]) == 2  # a directory
    assert "HTML report not written" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert report_main([str(tmp_path / "bad.json"), "--html", str(out)]) == 2


def test_write_html_is_atomic_and_utf8(tmp_path):
    out = tmp_path / "p.html"
    out.write_text("old")
    write_html(out, hostile_report())
    assert out.read_bytes().startswith(b"<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["p.html"]


def test_dtf_html_writes_the_page(pytester):
    pytester.makepyfile(test_one="def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n")
    result = run(pytester, "-p", "no:xdist", "--dtf-retry", "--dtf-html=out/page.html")
    assert result.ret == 1
    page = (pytester.path / "out" / "page.html").read_text(encoding="utf-8")
    data = embedded(page)
    names = sorted(data["files"][t[0]] + t[1] for t in data["tests"])
    assert names == ["test_one.py::test_bad", "test_one.py::test_ok"]
    assert data["run"]["exit_status"] == 1
    assert "report not written" not in result.stdout.str()


def test_dtf_html_into_a_directory_is_a_message(pytester):
    pytester.makepyfile(test_one="def test_ok():\n    pass\n")
    (pytester.path / "d").mkdir()
    result = run(pytester, "-p", "no:xdist", "--dtf-html=d")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*HTML report not written*"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize("size", [0, 1])
def test_tiny_reports(size):
    tests = [{"nodeid": "a.py::t", "outcome": "passed", "attempts": [attempt(1, "local", "passed", 0.0)]}][:size]
    data = embedded(render_html(small_report(tests)))
    assert len(data["tests"]) == size
