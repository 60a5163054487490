"""The history's read at start: ``read_tests()`` on 20,000 tests with 500 runs each.

    python bench/history_read.py [--tests 20000] [--runs 500] [--rounds 7]
                                 [--path FILE] [--keep] [--no-results]

Builds a history file of ``--tests`` tests x ``--runs`` runs (the runs, every
per-test result row, an attempt row for each failed or flaky result, and each
test's aggregate), then, in a fresh interpreter per round, times what the
plugin does at start: ``SQLiteHistory.open(path)`` and ``read_tests()`` (every
nodeid with its score and mean duration), and then one test's full aggregate
(what a failure's annotations read). It prints the median and the slowest
round. Target: ``read_tests()`` at most 50 ms.

The file is built fast, not through ``write_run`` (that would fold 10 million
results one by one): results go in with ``executemany``, and the aggregates
come from the store's own ``score.fold`` over each test's outcomes, folded
once per distinct history (the tests share 64 generated histories: mostly
stable, some flaky at various rates, some broken for a while) and copied for
each nodeid. Then one more run of every test goes through ``write_run``, the
cost at session end, and is printed too. The OS page cache is warm (the file
was just written), as on a CI runner that restored its cache just before.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_dtf_errors.history import (
    AttemptRecord,
    RunRecord,
    SQLiteHistory,
    TestAggregate,
    TestResult,
    fold,
)

TEST_INSERT = "INSERT INTO tests (nodeid, score, duration, state) VALUES (?, ?, ?, ?)"
SHAPES = 64

READ = """
import time
t0 = time.perf_counter()
from pytest_dtf_errors.history import SQLiteHistory
t1 = time.perf_counter()
store = SQLiteHistory.open({path!r})
t2 = time.perf_counter()
tests = store.read_tests()
t3 = time.perf_counter()
assert len(tests) == {tests}, len(tests)
first = next(iter(tests))
t4 = time.perf_counter()
assert tests[first].runs > 0  # one test's full aggregate, as for a failure's annotations
t5 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t5 - t4)
"""


def shapes(runs: int, rng: random.Random) -> list[list[str]]:
    """SHAPES outcome histories of ``runs`` runs, oldest first."""
    out = []
    for k in range(SHAPES):
        kind = k % 8
        if kind < 4:  # stable
            seq = ["passed"] * runs
        elif kind < 6:  # flaky at 2 % to 20 %
            p = 0.02 + 0.18 * rng.random()
            seq = [rng.choices(["passed", "flaky", "failed"], [1 - p, p * 0.8, p * 0.2])[0]
                   for _ in range(runs)]
        elif kind == 6:  # broken for a stretch, then fixed
            a = rng.randrange(runs)
            b = min(runs, a + rng.randrange(1, 30))
            seq = ["passed"] * a + ["failed"] * (b - a) + ["passed"] * (runs - b)
        else:  # sometimes skipped
            seq = [rng.choice(["passed", "passed", "passed", "skipped"]) for _ in range(runs)]
        out.append(seq)
    return out


def build(path: Path, n_tests: int, n_runs: int, results: bool) -> float:
    rng = random.Random(14)
    seqs = shapes(n_runs, rng)
    t0 = time.perf_counter()
    store = SQLiteHistory.open(path)
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    # built in one go, not in WAL: a 10-million-row transaction would first fill the WAL
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    # the results' run index is built once at the end, not row by row
    conn.execute("DROP INDEX results_run")
    starts = [1_700_000_000.0 + 3600.0 * r for r in range(n_runs)]
    conn.executemany(
        "INSERT INTO runs (run_id, start, label, source, written) VALUES (?, ?, ?, ?, ?)",
        [(f"run{r:04d}", starts[r], f"{r:040x}", "bench", starts[r]) for r in range(n_runs)],
    )
    conn.execute("INSERT INTO patterns VALUES ('fp', 'network_timeout', 'timed out after <n> s')")
    folded: list[TestAggregate] = []
    for seq in seqs:
        agg = None
        for r, outcome in enumerate(seq):
            agg = fold(agg, "", outcome, run_id=f"run{r:04d}", start=starts[r],
                       label=f"{r:040x}", duration=0.05)
        assert agg is not None
        folded.append(agg)
    for i in range(n_tests):
        nodeid = f"tests/pkg{i % 97:02d}/test_mod{i % 1000:03d}.py::test_case_{i}"
        k = i % SHAPES
        if results:
            conn.executemany(
                "INSERT INTO results (nodeid, run_id, outcome, duration, attempts) "
                "VALUES (?, ?, ?, 0.05, ?)",
                [(nodeid, f"run{r:04d}", o, 2 if o == "flaky" else 1)
                 for r, o in enumerate(seqs[k])],
            )
            conn.executemany(
                "INSERT INTO attempts (nodeid, run_id, attempt, outcome, category, fingerprint, "
                "worker, host, hardware, duration, message) "
                "VALUES (?, ?, 1, 'failed', 'network_timeout', 'fp', ?, 'h1', NULL, 0.05, "
                "'timed out after 5 s')",
                [(nodeid, f"run{r:04d}", f"gw{r % 4}")
                 for r, o in enumerate(seqs[k]) if o in ("flaky", "failed")],
            )
        agg = folded[k].copy()
        agg.nodeid = nodeid
        conn.execute(TEST_INSERT, (nodeid, agg.score, agg.duration_mean, agg.to_state()))
    conn.execute("CREATE INDEX results_run ON results (run_id)")
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - t0


def one_more_run(path: Path, n_tests: int, n_runs: int) -> float:
    store = SQLiteHistory.open(path)
    nodeids = list(store.read_tests())
    tests = tuple(
        TestResult(n, "passed", 0.05, (AttemptRecord(1, "passed", worker="gw0", duration=0.05),))
        for n in nodeids[:n_tests]
    )
    run = RunRecord("next", 1_700_000_000.0 + 3600.0 * n_runs, tests, label="next")
    t0 = time.perf_counter()
    assert store.write_run(run)
    took = time.perf_counter() - t0
    store.close()
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tests", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--path", type=Path, help="where to build it (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the file")
    ap.add_argument("--no-results", action="store_true",
                    help="write only runs and aggregates (what read_tests reads)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="dtf-history-bench-")
    path = args.path or Path(tmp.name) / "history.sqlite"
    if path.exists():
        sys.exit(f"{path} exists")
    built = build(path, args.tests, args.runs, not args.no_results)
    SQLiteHistory.open(path).close()  # back in WAL mode, as the plugin leaves it
    size = path.stat().st_size / 2**20
    print(f"built {args.tests} tests x {args.runs} runs in {built:.1f} s: {path} ({size:.0f} MiB)")
    code = READ.format(path=str(path), tests=args.tests)
    imports, opens, reads, ones = [], [], [], []
    for _ in range(args.rounds):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True).stdout.split()
        imports.append(float(out[0]))
        opens.append(float(out[1]))
        reads.append(float(out[2]))
        ones.append(float(out[3]))
    ms = 1000.0
    print(f"import pytest_dtf_errors.history: median {statistics.median(imports) * ms:.1f} ms")
    print(f"SQLiteHistory.open: median {statistics.median(opens) * ms:.1f} ms, "
          f"max {max(opens) * ms:.1f} ms")
    print(f"read_tests() of {args.tests} tests: median {statistics.median(reads) * ms:.1f} ms, "
          f"max {max(reads) * ms:.1f} ms ({args.rounds} fresh processes; target <= 50 ms)")
    print(f"one test's full aggregate (index[nodeid]): median "
          f"{statistics.median(ones) * ms:.2f} ms")
    wrote = one_more_run(path, args.tests, args.runs)
    print(f"write_run of one more run of {args.tests} tests: {wrote * ms:.0f} ms")
    if args.keep:
        print(f"kept {path}")
    else:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
