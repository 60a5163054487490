"""Retry-delay benchmark: 40% of the tests fail once with a network error, delay 1 s.

    .venv/bin/python bench/retry_delay.py [--repeat 3] [--tests 50] [--json out.json]

Generates a suite of N tests (default 50) that each sleep 0.1 s; 40% of them
raise ``ConnectionRefusedError`` on their first run and pass after. The
"first run" is told by a marker file per test in a fresh directory for each
session (the first run creates it and raises), so the suite works the same
under every retry plugin. Runs at ``-n 2``, each configuration ``--repeat``
times, interleaved (a b c d a b c d ...), and prints the median wall time
and its ratio to (a):

  (a) no failures      the same suite with no test failing, no retry plugin
  (b) dtf-errors       --dtf-retry; NETWORK_CONNECTION_ERROR: max_retries 2,
                       delay 1 s, jitter 0 ([tool.dtf] of the suite); budget 1000
  (c) rerunfailures    --reruns 2 --reruns-delay 1
  (d) pytest-retry     --retries 2 --retry-delay 1

Each run must end with every test passed (passed + flaky == N, nothing failed,
exit status 0); a run that does not is reported and marks the figures bad.

The tests also log when each attempt ran (worker, start, end), so the script
can say where the wall time goes: start-up (process start to first test),
the span of the tests, the tail (last test's end to exit) and how busy the
two workers were. Figures go to BENCHMARKS.md; nothing is asserted.
"""

from __future__ import annotations

import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Config,
    base_parser,
    config_json,
    machine,
    only,
    run_pytest,
    table,
    write_json,
)

SLEEP = 0.1
DELAY = 1.0

PYPROJECT = """\
[tool.pytest.ini_options]

[tool.dtf.retry_policies.NETWORK_CONNECTION_ERROR]
max_retries = 2
retry_delay_seconds = {delay}
retry_jitter = 0.0
"""

TESTS = '''\
import os
import time

import pytest

DIR = os.environ["BENCH_DIR"]
FAIL = os.environ.get("BENCH_FAIL") == "1"
FAIL_ONCE = {fail_once!r}


@pytest.mark.parametrize("i", range({n}))
def test_work(i):
    start = time.time()
    time.sleep({sleep})
    failing = FAIL and i in FAIL_ONCE and not os.path.exists(os.path.join(DIR, "m%d" % i))
    if failing:
        open(os.path.join(DIR, "m%d" % i), "w").close()
    with open(os.path.join(DIR, "attempts.log"), "a") as f:
        f.write("%d %s %.6f %.6f %d\\n" % (i, os.environ.get("PYTEST_XDIST_WORKER", "-"),
                                          start, time.time(), failing))
    if failing:
        raise ConnectionRefusedError(111, "Connection refused")
'''


def failing_indices(n: int, share: float = 0.4) -> list[int]:
    """An even spread: test i fails once when floor((i+1)*share) > floor(i*share)."""
    return [i for i in range(n) if int((i + 1) * share) > int(i * share)]


def make_suite(root: Path, n: int) -> tuple[Path, list[int]]:
    suite = root / "suite"
    suite.mkdir()
    fail = failing_indices(n)
    (suite / "pyproject.toml").write_text(PYPROJECT.format(delay=DELAY))
    (suite / "test_suite.py").write_text(TESTS.format(fail_once=fail, n=n, sleep=SLEEP))
    return suite, fail


def configs() -> list[Config]:
    base = ["-n", "2", "-q", "-p", "no:cacheprovider"]
    return [
        Config("a", "(a) no failures, plain -n 2", base + only(None)),
        Config("b", "(b) dtf-errors --dtf-retry", base + only("dtf_errors")
               + ["--dtf-retry", "--dtf-retry-budget", "1000"]),
        Config("c", "(c) rerunfailures --reruns 2 --reruns-delay 1", base + only("rerunfailures")
               + ["--reruns", "2", "--reruns-delay", "1"]),
        Config("d", "(d) pytest-retry --retries 2 --retry-delay 1", base + only("pytest-retry")
               + ["--retries", "2", "--retry-delay", "1"]),
    ]


def timeline(log: Path, t_start: float, t_end: float) -> dict[str, float]:
    """Where one run's wall time went, from the tests' own log of their attempts."""
    rows: list[tuple[int, str, float, float, bool]] = []
    for line in log.read_text().splitlines():
        f = line.split()
        rows.append((int(f[0]), f[1], float(f[2]), float(f[3]), f[4] == "1"))
    first = min(r[2] for r in rows)
    last = max(r[3] for r in rows)
    busy: dict[str, float] = {}
    for _, worker, start, end, _failed in rows:
        busy[worker] = busy.get(worker, 0.0) + (end - start)
    span = last - first
    # The retry delay itself: from a test's failing attempt to the start of its next one.
    by_test: dict[int, list[tuple[float, float, bool]]] = {}
    for i, _, start, end, failed in rows:
        by_test.setdefault(i, []).append((start, end, failed))
    gaps = []
    for attempts in by_test.values():
        attempts.sort()
        for prev, nxt in itertools.pairwise(attempts):
            if prev[2]:
                gaps.append(nxt[0] - prev[1])
    return {
        "startup": first - t_start,  # interpreter, collection, workers starting
        "span": span,  # first test's start to last test's end
        "tail": t_end - last,  # last test's end to process exit
        "busy_share": sum(busy.values()) / (span * max(len(busy), 1)) if span > 0 else 0.0,
        "attempts": len(rows),
        "workers": len(busy),
        "retry_gap_median": statistics.median(gaps) if gaps else 0.0,
        "retry_gap_max": max(gaps) if gaps else 0.0,
        "last_first_failure_to_end": (t_end - max((r[3] for r in rows if r[4]), default=t_end)),
    }


def dispatch_lateness(report: Path) -> dict[str, float]:
    """How long after its due time each retry went out to a worker (the waker's job)."""
    data = json.loads(report.read_text())
    late = [
        a["decision"]["dispatched"] - a["decision"]["due"]
        for t in data["tests"]
        for a in t["attempts"]
        if a.get("decision") and a["decision"].get("dispatched") is not None
        and a["decision"].get("due") is not None
    ]
    return {
        "retries": float(len(late)),
        "late_median": statistics.median(late) if late else 0.0,
        "late_max": max(late) if late else 0.0,
    }


def main() -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (default 3)")
    parser.add_argument("--tests", type=int, default=50, help="tests in the suite (default 50)")
    parser.add_argument("--only", default="abcd", help="configurations to run, e.g. 'ab'")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="dtf-bench-retry-"))
    suite, fail = make_suite(root, args.tests)
    info = machine()
    print(f"suite: {args.tests} tests x {SLEEP} s, {len(fail)} fail once "
          f"(ConnectionRefusedError), retry delay {DELAY} s, -n 2, {args.repeat} runs each")
    print(f"machine: {info['cpus']} CPUs, load average at start {info['loadavg_at_start']}, "
          f"Python {info['python']}; {info['date']}")
    print(f"suite dir: {suite}")

    cfgs = [c for c in configs() if c.key in args.only]
    timelines: dict[str, list[dict[str, float]]] = {c.key: [] for c in cfgs}
    for rep in range(args.repeat):
        for c in cfgs:
            run_dir = root / f"run-{c.key}-{rep}"
            run_dir.mkdir()
            env = {"BENCH_DIR": str(run_dir), "BENCH_FAIL": "0" if c.key == "a" else "1"}
            if c.key == "b":  # the JSON report says when each retry was due and sent
                env["PYTEST_ADDOPTS"] = f"--dtf-report={run_dir / 'report.json'}"
            t_start = time.time()
            run = run_pytest(c, suite, args.tests, env=env)
            t_end = time.time()
            tl = timeline(run_dir / "attempts.log", t_start, t_end)
            if c.key == "b":
                tl.update(dispatch_lateness(run_dir / "report.json"))
            timelines[c.key].append(tl)
            print(f"  {c.key} run {rep + 1}: {run.seconds:6.2f} s  {'ok' if run.ok else 'NOT OK'}"
                  f"  [{run.final_line}]", flush=True)

    base = next((c.median for c in cfgs if c.key == "a" and c.runs), None)
    rows = []
    for c in cfgs:
        tls = timelines[c.key]

        def med(k: str, tls: list[dict[str, float]] = tls) -> float:
            return statistics.median(t[k] for t in tls)

        rows.append([
            c.label,
            " ".join(f"{r.seconds:.2f}" for r in c.runs),
            f"{c.median:.2f}",
            f"{c.median / base:.2f}x" if base else "-",
            f"{med('startup'):.2f}",
            f"{med('span'):.2f}",
            f"{med('tail'):.2f}",
            f"{med('busy_share') * 100:.0f}%",
            f"{med('retry_gap_median'):.2f}" if c.key != "a" else "-",
            "ok" if c.ok else "NOT OK",
        ])
    print()
    print(table(rows, ["configuration", "runs (s)", "median s", "vs (a)", "start-up",
                       "test span", "tail", "busy", "retry gap", "outcome"]))
    print("start-up: process start to first test; test span: first test start to last test end;"
          "\ntail: last test end to exit; busy: share of the span the workers ran tests;"
          "\nretry gap: median time from a failed attempt's end to its retry's start.")
    print("final lines:", *(f"  {c.key}: {c.runs[-1].final_line}" for c in cfgs if c.runs),
          sep="\n")
    if timelines.get("b"):
        tls = timelines["b"]
        print("dtf: a retry was sent to a worker after its due time by "
              f"{statistics.median(t['late_median'] for t in tls) * 1000:.0f} ms (median of runs' "
              f"medians), at most {max(t['late_max'] for t in tls) * 1000:.0f} ms "
              f"({sum(int(t['retries']) for t in tls)} retries)")

    write_json(args.json, {
        "benchmark": "retry_delay",
        "machine": info,
        "suite": {"tests": args.tests, "sleep": SLEEP, "fail_once": len(fail), "delay": DELAY,
                  "workers": 2, "repeat": args.repeat},
        "configs": [dict(config_json(c, suite, base), timeline=timelines[c.key]) for c in cfgs],
    })
    if args.keep:
        print(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(c.ok for c in cfgs) else 1


if __name__ == "__main__":
    sys.exit(main())
