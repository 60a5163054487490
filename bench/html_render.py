"""The HTML report at 10,000 tests: file size, build time, and render time in a real browser.

    python bench/html_render.py [--tests 10000] [--rounds 5] [--out report.html] [--json FILE]

Builds a synthetic JSON report (``synthetic_report``: 16 workers on 4 hosts, 2 %
flaky tests retried on another worker, 0.8 % failing after 3 attempts, 0.2 %
errors, a crashed worker and its replacement, a quarantined worker, a breaker
trip, history annotations and sparklines on every failed or flaky test,
pytest-sized tracebacks), checks it against the report's schema, renders the
page (``render_html``) and opens it in headless Chromium (Debian's ``chromium``
and ``chromium-driver``, through selenium with the system chromedriver: nothing
is downloaded) ``--rounds`` times, each a fresh page load. Per load it reads
``dtfRenderMs`` (from navigation start to the end of the page's script: data
parsed, timeline, tables drawn) and ``dtfPaintMs`` (after the next two animation
frames: style, layout and paint done). Targets: under about 2 MB, under 2 s.

``synthetic_report`` and ``chromium`` are also used by tests/test_html_unit.py and
tests/test_html_browser.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

TRACEBACK = """Traceback (most recent call last):
  File "/usr/lib/python3.12/site-packages/_pytest/runner.py", line 341, in from_call
    result: TResult | None = func()
                             ^^^^^^
  File "/usr/lib/python3.12/site-packages/_pytest/runner.py", line 242, in <lambda>
    lambda: runtest_hook(item=item, **kwds), when=when, reraise=reraise
            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.12/site-packages/pluggy/_hooks.py", line 513, in __call__
    return self._hookexec(self.name, self._hookimpls.copy(), kwargs, firstresult)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.12/site-packages/_pytest/python.py", line 159, in pytest_pyfunc_call
    result = testfunction(**testargs)
             ^^^^^^^^^^^^^^^^^^^^^^^^
  File "/src/app/{module}.py", line {line}, in {func}
    {code}
  File "/src/app/client.py", line 88, in request
    return self._session.send(prepared, timeout=self.timeout)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
{error}
"""

# (category, error type, message template, retried?, pattern id)
FAILURES = [
    ("network_connection_error", "ConnectionRefusedError",
     "[Errno 111] could not connect to server: Connection refused (db-{n}.internal:5432)", True, "P1"),
    ("network_timeout", "TimeoutError", "read timed out after 30.0 s waiting for https://api.internal/v{n}", True, "P2"),
    ("resource_exhausted", "OSError", "[Errno 28] No space left on device: '/tmp/build-{n}/out.bin'", True, "P3"),
    ("test_assertion_error", "AssertionError", "assert {n} == {m}\n +  where {n} = compute_total(order_{n})", False, "P4"),
    ("test_import_error", "ModuleNotFoundError", "No module named 'plugin_{n}'", False, "P5"),
]


def synthetic_report(tests: int = 10_000, *, workers_per_host: int = 4, hosts: int = 4, seed: int = 15) -> dict[str, Any]:
    """A JSON report (schema 2) of a run of ``tests`` tests, with what a real big run shows."""
    rnd = random.Random(seed)
    t0 = 1_796_000_000.0
    host_names = [f"ci-host-{chr(97 + h)}" for h in range(hosts)]
    workers = [(f"gw{h * workers_per_host + i}", host_names[h]) for h in range(hosts) for i in range(workers_per_host)]
    hw = {w: (["cpu", "cuda"] if host == host_names[0] else ["cpu"]) for w, host in workers}
    crashed, replacement = workers[5][0], f"gw{len(workers)}"
    hw[replacement] = hw[crashed]
    quarantined = workers[9][0]
    clock = {w: t0 + 2.0 + rnd.random() for w, _ in workers}
    host_of = dict(workers)
    host_of[replacement] = host_of[crashed]
    alive = [w for w, _ in workers]
    pattern_hits: dict[str, dict[str, Any]] = {}
    out_tests: list[dict[str, Any]] = []
    crash_at = tests // 3
    quarantine_at = tests // 2
    breaker_tests: list[str] = []
    rec: dict[str, Any] = {}

    def attempt(n: int, node: str, outcome: str, duration: float, failure: tuple[Any, ...] | None,
                retry: bool | None, i: int) -> dict[str, Any]:
        nodeid = rec["nodeid"]
        start = clock[node]
        clock[node] = start + duration + 0.002
        a: dict[str, Any] = {
            "attempt": n, "node": node, "host": host_of[node], "hardware": hw[node], "outcome": outcome,
            "phase": None, "category": None, "rule": None, "error": None, "duration": round(duration, 6),
            "decision": None, "actions": [], "pattern": None, "started": start, "finished": start + duration,
        }
        if failure is not None:
            category, etype, template, _retried, pid = failure
            message = template.format(n=i % 97, m=i % 89 + 1)
            a.update(
                phase="call" if outcome == "failed" else "setup", category=category, rule=f"type:{etype}", pattern=pid,
                error={
                    "type": etype, "message": message, "qualname": f"builtins.{etype}",
                    "traceback": TRACEBACK.format(module=f"mod_{i % 40}", line=10 + i % 300, func=f"test_case_{i}",
                                                  code="response = client.request('GET', url)",
                                                  error=f"{etype}: {message}"),
                },
                decision={"retry": bool(retry), "delay": 0.5 if retry else 0.0,
                          "reason": f"{category}: retry {n}, preferably on another worker" if retry
                          else f"{category} is not retried"},
                actions=[{"kind": "prefer_other_node", "node": node}] if retry else [],
            )
            hit = pattern_hits.setdefault(pid, {"count": 0, "tests": set(), "nodes": set(), "hosts": set(),
                                                "failure": failure, "example": None})
            hit["count"] += 1
            hit["tests"].add(nodeid)
            hit["nodes"].add(node)
            hit["hosts"].add(host_of[node])
            hit["example"] = hit["example"] or {"test": nodeid, "message": message}
        return a

    def pick(exclude: str | None = None) -> str:
        choices = [w for w in alive if w != exclude]
        return min(choices, key=lambda w: clock[w])

    for i in range(tests):
        nodeid = f"tests/suite_{i % 40:02d}/test_module_{i % 250:03d}.py::test_case_{i}[param-{i % 7}]"
        duration = min(rnd.lognormvariate(-2.3, 1.0), 8.0)
        r = rnd.random()
        node = pick()
        rec = {"nodeid": nodeid, "reason": None}
        if i == crash_at:
            crash = attempt(1, crashed, "error", 0.05, None, None, i)
            crash.update(
                phase="crash", category="worker_crashed", rule="type:WorkerCrash", pattern="P6",
                error={"type": "WorkerCrash", "message": f"worker '{crashed}' crashed while running '{nodeid}' (exit code -11)",
                       "forensics": f"crash forensics of {crashed}:\n  ended: killed by SIGSEGV (exit code -11)\n"
                       "  memory: peak RSS 812 MiB; limit 8.0 GiB\n  last tests on gw5 (nearest first):\n"
                       + "".join(f"    tests/suite_00/test_module_{k:03d}.py::test_case_{k} (passed, 0.12 s)\n" for k in range(10))},
                decision={"retry": True, "delay": 0.0, "reason": f"worker_crashed: retry 1, not on {crashed}"},
                actions=[{"kind": "restart_worker", "node": crashed}],
            )
            alive.remove(crashed)
            alive.append(replacement)
            clock[replacement] = clock[crashed] + 1.5
            pattern_hits["P6"] = {"count": 1, "tests": {nodeid}, "nodes": {crashed}, "hosts": {host_of[crashed]},
                                  "failure": ("worker_crashed", "WorkerCrash", "", True, "P6"),
                                  "example": {"test": nodeid, "message": crash["error"]["message"]}}
            rec.update(outcome="flaky", attempts=[crash, attempt(2, pick(crashed), "passed", duration, None, None, i)])
        elif r < 0.015:
            rec.update(outcome="skipped", attempts=[attempt(1, node, "skipped", 0.001, None, None, i)])
        elif r < 0.035:  # flaky: fails, passes on another worker
            failure = FAILURES[rnd.randrange(3)]
            first = attempt(1, node, "failed", duration, failure, True, i)
            clock_after = first["finished"] + 0.5
            other = pick(node)
            clock[other] = max(clock[other], clock_after)
            rec.update(outcome="flaky", attempts=[first, attempt(2, other, "passed", duration, None, None, i)])
        elif r < 0.043:  # fails after retries, or a real assertion (not retried)
            failure = FAILURES[rnd.randrange(len(FAILURES) - 1)]
            if failure[3]:
                atts = [attempt(1, node, "failed", duration, failure, True, i)]
                for n in (2, 3):
                    other = pick(atts[-1]["node"])
                    clock[other] = max(clock[other], atts[-1]["finished"] + 0.5 * n)
                    atts.append(attempt(n, other, "failed", duration, failure, n < 3, i))
                if failure[4] == "P1" and len(breaker_tests) < 20:
                    breaker_tests.append(nodeid)
            else:
                atts = [attempt(1, node, "failed", duration, failure, False, i)]
            rec.update(outcome="failed", attempts=atts)
        elif r < 0.045:
            rec.update(outcome="error", attempts=[attempt(1, node, "error", duration, FAILURES[4], False, i)])
        else:
            rec.update(outcome="passed", attempts=[attempt(1, node, "passed", duration, None, None, i)])
        if i == quarantine_at and quarantined in alive:
            alive.remove(quarantined)
        if rec["outcome"] in ("failed", "flaky", "error"):
            recent = "".join(rnd.choice("PPPPPPPPKF") for _ in range(20))
            rec["history"] = {
                "score": round(rnd.random() * 0.4, 3), "runs": 40, "recent": recent,
                "annotations": [{"kind": "known_flaky", "text": "known flaky (score 0.2): failed 3 of its last 40 runs",
                                 "score": 0.2, "failed": 3, "of": 40}]
                if "F" in recent else [{"kind": "new_failure", "text": "new failure: passed its last 20 runs"}],
            }
        out_tests.append(rec)

    end = max(clock.values()) + 0.5
    counts = {k: sum(1 for t in out_tests if t["outcome"] == k) for k in ("passed", "failed", "skipped", "flaky", "error")}
    attempts = sum(len(t["attempts"]) for t in out_tests)
    scope = {"P1": "systemic", "P2": "systemic", "P3": "node", "P4": "test", "P5": "test", "P6": "node"}
    all_workers = [w for w, _ in workers] + [replacement]
    return {
        "schema_version": 2,
        "run": {
            "id": "0" * 32, "label": "synthetic-10k", "plugin": "0.1.0", "pytest": "9.2.0", "xdist": "3.8.0",
            "start": "2026-11-30T10:13:20.000Z", "start_epoch": t0, "end": "2026-11-30T10:15:30.000Z",
            "end_epoch": end, "duration": round(end - t0, 3), "args": ["-n", "16", "--dtf-retry"],
            "workers": [{"id": w, "host": host_of[w], "hardware": hw[w]} for w in all_workers],
            "exit_status": 1, "collection_errors": 0, "repeats": None,
        },
        "summary": {
            **counts, "total": len(out_tests), "attempts": attempts, "retries": attempts - len(out_tests),
            "budget": 500, "budget_note": None, "budget_used": attempts - len(out_tests),
            "breaker_cancelled": len(breaker_tests), "quarantined": 0, "victims": 0,
        },
        "tests": out_tests,
        "patterns": [
            {"id": pid, "category": h["failure"][0], "count": h["count"], "tests": sorted(h["tests"]),
             "distinct_tests": len(h["tests"]), "nodes": sorted(h["nodes"]), "hardware": ["cpu"],
             "hosts": sorted(h["hosts"]), "scope": scope[pid], "template": h["failure"][2].replace("{n}", "<n>").replace("{m}", "<n>"),
             "example": h["example"], "hint": f"{len(h['tests'])} tests on {len(h['nodes'])} workers"}
            for pid, h in sorted(pattern_hits.items(), key=lambda kv: -kv[1]["count"])
        ],
        "nodes": [
            {"id": w, "host": host_of[w], "hardware": hw[w], "gpus": None, "crashes": int(w == crashed),
             "quarantined": w == quarantined, "quarantine_reason": "3 node-scoped failures in 60 s" if w == quarantined else None,
             "quarantine_declined": None, "lost": False, "lost_reason": None}
            for w in all_workers
        ],
        "breaker": [{"pattern": "P1", "reason": "pattern P1 is systemic: it failed in 40 tests and 5 retries did not help, "
                     "so the breaker stopped its retries", "tests": breaker_tests}] if breaker_tests else [],
        "unavailable": [], "lost_hosts": [], "poisoned": [], "exclusive": [], "collection_errors": [],
        "history": {"file": ".dtf-history.sqlite", "runs": 40, "known_tests": tests, "warning": None,
                    "quarantined": [], "events": []},
    }


# -- the browser ---------------------------------------------------------------
def chromium_missing() -> str | None:
    """None when headless Chromium can run here (Debian's chromium and chromium-driver,
    selenium), else what is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return f"{' and '.join(missing)} missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium, or the test extra)"
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 1000, *, dark: bool = False) -> Iterator[Any]:
    """A headless Chromium driven by the system chromedriver, its console log kept.

    Selenium Manager (which would download a driver or a browser) is never run: the
    driver's path is given, and its finder is replaced by one that refuses."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common import selenium_manager

    def refuse(self: Any, args: list[str]) -> dict[str, str]:
        raise RuntimeError(f"selenium-manager must not run (asked {args})")

    selenium_manager.SeleniumManager.binary_paths = refuse  # type: ignore[method-assign]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="dtf-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", "--disable-background-networking",
                f"--window-size={width},{height}", f"--user-data-dir={profile}", "--hide-scrollbars"):
        options.add_argument(arg)
    if dark:
        options.add_argument("--force-dark-mode")
        options.add_argument("--blink-settings=preferredColorScheme=0")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver: Any, path: str | os.PathLike[str], timeout: float = 20.0) -> float:
    """Load the page at path and wait for its script to finish; dtfRenderMs."""
    driver.get(Path(path).resolve().as_uri())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ms = driver.execute_script(
            "return document.documentElement.getAttribute('data-ready') ? window.dtfRenderMs : null")
        if ms is not None:
            return float(ms)
        time.sleep(0.02)
    raise TimeoutError(f"the page at {path} did not finish drawing in {timeout} s")


def painted_ms(driver: Any) -> float:
    """ms from navigation start until two animation frames after the script ended."""
    return float(driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())));"))


FRAME = """
const done = arguments[arguments.length - 1];
const t0 = performance.now();
ACTION;
requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));
"""
ACTIONS = {
    "zoom in (+)": "document.querySelector('.tl-wrap').dispatchEvent(new KeyboardEvent('keydown', {key: '+', bubbles: true}))",
    "pan (→)": "document.querySelector('.tl-wrap').dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}))",
    "lay every bar out again": "window.dispatchEvent(new Event('resize'))",
    "highlight a pattern": "document.querySelector('#patterns tbody tr').click()",
    "sort the tests": "document.querySelector('#tests th button[data-sort=duration]').click()",
    "open a test": "document.querySelector('#tests tbody tr').click()",
}


def interactions(driver: Any) -> dict[str, float]:
    """ms from each action to two animation frames later (its frame painted), on the loaded page."""
    out: dict[str, float] = {}
    for name, action in ACTIONS.items():
        if name == "lay every bar out again":
            time.sleep(0.3)  # the timeline lays its bars out again once still: wait for that first
        out[name] = float(driver.execute_async_script(FRAME.replace("ACTION", action)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=None, help="keep the page here (default: a temp file)")
    parser.add_argument("--json", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pytest_dtf_errors.report import validate
    from pytest_dtf_errors.report.html import render_html

    report = synthetic_report(args.tests)
    validate(report)
    json_bytes = len(json.dumps(report).encode())
    builds = []
    for _ in range(3):
        start = time.perf_counter()
        page = render_html(report)
        builds.append(time.perf_counter() - start)
    payload = page.encode("utf-8")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dtf-html-")) / "report.html"
    out.write_bytes(payload)
    s = report["summary"]
    print(f"{s['total']:,} tests, {s['attempts']:,} attempts, {len(report['run']['workers'])} workers; "
          f"JSON report {json_bytes / 1e6:.2f} MB")
    print(f"page: {len(payload) / 1e6:.2f} MB ({len(payload):,} bytes); built in "
          f"{statistics.median(builds) * 1000:.0f} ms (median of 3)")
    missing = chromium_missing()
    if missing:
        print(f"no browser: {missing}")
        return 1
    renders, paints = [], []
    with chromium() as driver:
        for _ in range(args.rounds):
            renders.append(open_page(driver, out))
            paints.append(painted_ms(driver))
        actions = interactions(driver)
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        counts = driver.execute_script(
            "return ['.lane', '.bar', '.arrow', '.mark'].map((s) => document.querySelectorAll('svg.tl ' + s).length)")
        version = driver.capabilities.get("browserVersion")
    print(f"Chromium {version} headless: lanes {counts[0]}, bars {counts[1]:,}, arrows {counts[2]}, marks {counts[3]}")
    print("script done (ms): " + " ".join(f"{r:.0f}" for r in renders) + f"; median {statistics.median(renders):.0f}")
    print("painted (ms):     " + " ".join(f"{p:.0f}" for p in paints) + f"; median {statistics.median(paints):.0f}")
    print("then (ms to the next painted frame): " + "; ".join(f"{k} {v:.0f}" for k, v in actions.items()))
    if errors:
        print(f"console errors: {errors}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "tests": s["total"], "attempts": s["attempts"], "bytes": len(payload), "build_s": builds,
            "render_ms": renders, "paint_ms": paints, "interactions_ms": actions, "chromium": version,
            "console_errors": errors,
        }, indent=2))
    ok = len(payload) < 2_000_000 and statistics.median(paints) < 2000 and not errors
    print("targets (< 2 MB, < 2 s, no console error): " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
