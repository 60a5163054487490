"""Duration-aware scheduling (LPT) benchmark: a skewed suite at -n 4, xdist's load against ours.

    .venv/bin/python bench/lpt.py [--repeat 5] [--workers 4] [--json out.json] [--keep]

The suite (generated in a temp dir): 200 tests that sleep; 195 of 10-50 ms
(seeded, uniform) and five of 2, 2.5, 3, 4 and 5 s, spread through the file,
the 5 s one collected last. Sleeping tests use no CPU, so 4 workers on a
2-core machine still run them side by side. Configurations, interleaved
(a b c a b c ...), ``--repeat`` times each:

  (a) xdist load       ``-p no:dtf_errors``: xdist's own LoadScheduling
  (b) dtf, no history  ``--dtf-retry --dtf-history off``: our scheduler without durations
  (c) dtf + history    ``--dtf-retry --dtf-history H``, after one priming run that fills H

Every test logs its start and end (monotonic clock of the machine, worker
id); the figure is the *test span*, first test's start to last test's end,
which leaves out interpreter and worker start-up (the same for all three).
The lower bound is max(longest test, total / workers), from the tests'
nominal sleeps and from their logged durations in each run. Wall time around
the pytest process is shown too. Figures go to BENCHMARKS.md; nothing is
asserted.
"""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Config, base_parser, config_json, machine, only, run_pytest, table, write_json

TESTS = 200
LONG = {30: 2.0, 75: 3.0, 120: 2.5, 160: 4.0, TESTS - 1: 5.0}  # position -> seconds

SUITE = '''\
import os
import time

import pytest

SECONDS = {seconds!r}
LOG = os.environ["LPT_LOG"]


@pytest.mark.parametrize("i", range(len(SECONDS)))
def test_sleep(i):
    start = time.monotonic()
    time.sleep(SECONDS[i])
    with open(LOG, "a") as f:  # one short line per test, appended at once
        f.write("%d %s %.6f %.6f\\n" % (i, os.environ.get("PYTEST_XDIST_WORKER", "-"), start, time.monotonic()))
'''


def durations(seed: int = 14) -> list[float]:
    rng = random.Random(seed)
    seconds = [round(rng.uniform(0.010, 0.050), 4) for _ in range(TESTS)]
    for position, long in LONG.items():
        seconds[position] = long
    return seconds


def make_suite(root: Path, seconds: list[float]) -> Path:
    suite = root / "suite"
    suite.mkdir()
    (suite / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (suite / "test_skewed.py").write_text(SUITE.format(seconds=seconds))
    return suite


def bound(seconds: list[float], workers: int) -> float:
    """No schedule of these tests on this many workers ends sooner."""
    return max(max(seconds), sum(seconds) / workers)


def read_log(path: Path) -> tuple[float, list[float], dict[str, float]]:
    """(test span, each test's logged duration, busy seconds per worker)."""
    starts, ends, took = [], [], []
    busy: dict[str, float] = {}
    for line in path.read_text().splitlines():
        _, worker, start, end = line.split()
        s, e = float(start), float(end)
        starts.append(s)
        ends.append(e)
        took.append(e - s)
        busy[worker] = busy.get(worker, 0.0) + e - s
    return max(ends) - min(starts), took, busy


def main() -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs per configuration (default 5)")
    parser.add_argument("--workers", type=int, default=4, help="xdist workers (default 4)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="dtf-bench-lpt-"))
    seconds = durations()
    suite = make_suite(root, seconds)
    history = root / "history.sqlite"
    info = machine()
    nominal = bound(seconds, args.workers)
    print(f"suite: {TESTS} sleeping tests, {sum(seconds):.2f} s in all, longest {max(seconds):.1f} s "
          f"(collected last); -n {args.workers}; lower bound {nominal:.3f} s")
    print(f"machine: {info['cpus']} CPUs, load average at start {info['loadavg_at_start']}, "
          f"Python {info['python']}; {info['date']}")
    print(f"suite dir: {suite}")

    base = ["-n", str(args.workers), "-q", "-p", "no:cacheprovider"]
    configs = [
        Config("load", "(a) xdist load", base + only(None)),
        Config("dtf", "(b) dtf, no history", base + only("dtf_errors") + ["--dtf-retry", "--dtf-history", "off"]),
        Config("lpt", "(c) dtf + history (LPT)",
               base + only("dtf_errors") + ["--dtf-retry", "--dtf-history", str(history)]),
    ]
    spans: dict[str, list[float]] = {c.key: [] for c in configs}
    bounds: dict[str, list[float]] = {c.key: [] for c in configs}
    log = root / "tests.log"

    def once(c: Config) -> None:
        log.unlink(missing_ok=True)
        run = run_pytest(c, suite, TESTS, env={"LPT_LOG": str(log)})
        span, took, busy = read_log(log)
        spans[c.key].append(span)
        bounds[c.key].append(bound(took, args.workers))
        print(f"  {c.key:>4}: span {span:6.3f} s ({span / nominal:.3f}x bound), wall {run.seconds:6.2f} s, "
              f"busy {' '.join(f'{w}={b:.2f}' for w, b in sorted(busy.items()))}"
              f"  {'ok' if run.ok else 'NOT OK'}", flush=True)

    print("priming run of (c), not counted (fills the history):")
    once(configs[2])
    configs[2].runs.clear()
    spans["lpt"].clear()
    bounds["lpt"].clear()
    for rep in range(args.repeat):
        print(f"round {rep + 1}:")
        for c in configs:
            once(c)

    rows = []
    for c in configs:
        span = statistics.median(spans[c.key])
        measured = statistics.median(bounds[c.key])
        rows.append([c.label, " ".join(f"{s:.2f}" for s in spans[c.key]), f"{span:.3f}",
                     f"{span / nominal:.3f}x", f"{span / measured:.3f}x", f"{c.median:.2f}",
                     "ok" if c.ok else "NOT OK"])
    print()
    print(table(rows, ["configuration", "test spans (s)", "median", "vs bound", "vs measured bound",
                       "wall median", "outcome"]))
    print(f"bound: max(longest, total / {args.workers}) = {nominal:.3f} s from the nominal sleeps; "
          f"from the logged durations, median {statistics.median(b for v in bounds.values() for b in v):.3f} s")

    write_json(args.json, {
        "benchmark": "lpt",
        "machine": info,
        "suite": {"tests": TESTS, "workers": args.workers, "repeat": args.repeat, "seconds": seconds,
                  "bound": round(nominal, 4)},
        "configs": [
            {**config_json(c, suite, None), "spans": [round(s, 4) for s in spans[c.key]],
             "span_median": round(statistics.median(spans[c.key]), 4),
             "measured_bounds": [round(b, 4) for b in bounds[c.key]]}
            for c in configs
        ],
    })
    if args.keep:
        print(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(c.ok for c in configs) else 1


if __name__ == "__main__":
    sys.exit(main())
