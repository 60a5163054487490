"""GPU cascade benchmark: one test poisons its worker's (fake) CUDA context, 40 run after it there.

    .venv/bin/python bench/cascade.py [--repeat 3] [--victims 40] [--json out.json]

The suite: ``test_gpu.py`` holds the culprit (an out-of-bounds kernel, every
attempt) followed by N tests that use the GPU; ``test_cpu.py`` holds 40 CPU
tests. The GPU is a fake with CUDA's sticky behaviour: once a kernel faults,
every later GPU call in that process raises "CUDA error: an illegal memory
access was encountered". ``--dist loadfile`` at ``-n 4`` sends all of
``test_gpu.py`` to one worker, as a GPU suite's module often is. Configurations:

  (a) plain xdist       no retry plugin
  (b) dtf-errors        --dtf-retry
  (c) rerunfailures     --reruns 2 (reruns in the same, poisoned, process)

For each: failed tests, test attempts run, and wall time (median of the
runs). Nothing is asserted; figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser, final_counts, machine, only, pytest_cmd, table, write_json

CONFTEST = '''\
import pytest

_context = {"poisoned": False}  # one per process, like a CUDA context


class FakeGPU:
    def launch(self, out_of_bounds=False):
        if out_of_bounds:
            _context["poisoned"] = True
        if _context["poisoned"]:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")


@pytest.fixture
def gpu():
    return FakeGPU()
'''

GPU_TESTS = '''\
import time

import pytest


def test_000_culprit(gpu):
    gpu.launch(out_of_bounds=True)


@pytest.mark.parametrize("i", range({n}))
def test_kernel(gpu, i):
    time.sleep(0.02)
    gpu.launch()
'''

CPU_TESTS = '''\
import time

import pytest


@pytest.mark.parametrize("i", range(40))
def test_cpu(i):
    time.sleep(0.05)
'''


def configs() -> list[tuple[str, str, list[str]]]:
    base = ["-n", "4", "--dist", "loadfile", "-q", "-p", "no:cacheprovider"]
    return [
        ("a", "(a) plain xdist", base + only(None)),
        ("b", "(b) dtf-errors --dtf-retry", base + only("dtf_errors") + ["--dtf-retry"]),
        ("c", "(c) rerunfailures --reruns 2", base + only("rerunfailures") + ["--reruns", "2"]),
    ]


def main() -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (default 3)")
    parser.add_argument("--victims", type=int, default=40, help="GPU tests after the culprit (default 40)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dtf-bench-cascade-"))
    suite = root / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_gpu.py").write_text(GPU_TESTS.format(n=args.victims))
    (suite / "test_cpu.py").write_text(CPU_TESTS)
    total = 1 + args.victims + 40
    info = machine()
    print(f"suite: 1 culprit + {args.victims} GPU tests after it in one module, 40 CPU tests; "
          f"-n 4 --dist loadfile; {args.repeat} runs each")
    print(f"machine: {info['cpus']} CPUs, load average at start {info['loadavg_at_start']}, "
          f"Python {info['python']}; {info['date']}")
    results: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in configs()}
    for rep in range(args.repeat):
        for key, _label, cmd_args in configs():
            report = root / f"report-{key}-{rep}.json"
            extra = [f"--dtf-report={report}"] if key == "b" else []
            t0 = time.perf_counter()
            proc = subprocess.run(pytest_cmd([*cmd_args, *extra]), cwd=suite, capture_output=True,
                                  text=True, timeout=600, check=False)
            seconds = time.perf_counter() - t0
            counts, line = final_counts(proc.stdout + proc.stderr)
            if key == "b" and report.exists():
                data = json.loads(report.read_text())
                attempts = data["summary"]["attempts"]
                victims = len({v for p in data.get("poisoned") or () for v in p["victims"]})
            else:
                attempts = total + counts.get("rerun", 0)
                victims = 0
            results[key].append({"seconds": seconds, "rc": proc.returncode, "failed": counts.get("failed", 0),
                                 "attempts": attempts, "victims": victims, "final_line": line})
    rows = []
    for key, label, cmd_args in configs():
        runs = results[key]
        rows.append([
            label,
            " ".join(f"{r['seconds']:.2f}" for r in runs),
            f"{statistics.median(r['seconds'] for r in runs):.2f}",
            str(statistics.median(r["failed"] for r in runs)),
            str(statistics.median(r["attempts"] for r in runs)),
            str(runs[-1]["final_line"]),
        ])
    print(table(rows, ["configuration", "runs (s)", "median", "failed", "attempts", "last final line"]))
    for key, label, cmd_args in configs():
        print(f"{label}: python -m pytest {' '.join(cmd_args)}")
    write_json(args.json, {"machine": info, "victims": args.victims, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
