"""Overhead benchmark: 2,000 trivially passing tests at -n 2, with and without the plugin.

    .venv/bin/python bench/overhead.py [--repeat 7] [--tests 2000] [--json out.json] [--phases]
                                       [--loaded | --history] [--no-compile]

Compares ``--dtf-retry`` (the plugin active, retries on) against
``-p no:dtf_errors`` (the plugin not loaded); ``--loaded`` compares the
plugin loaded but not asked (no dtf option) instead; ``--history`` compares
``--dtf-retry`` without a history against ``--dtf-retry --dtf-history FILE``
(read at start and written at the end of every run, so the file grows by a
run each time). pytest-rerunfailures, flaky and
pytest-retry are disabled in both. The two configurations alternate
(off on off on ...; the order flips every other round) ``--repeat`` times;
the table shows every run, the median and the ratio of the medians. Figures
go to BENCHMARKS.md; nothing is asserted.

``--phases`` loads ``bench/phase_timing.py`` into every session and adds a
table: for each phase of the session, the controller's wall clock and CPU time
and the workers' CPU time when they reached it (medians), off against on.

The plugin's modules are compiled to bytecode first, as pip does when it
installs the package (pytest and xdist were compiled when they were
installed). ``--no-compile`` removes the plugin's bytecode instead: an
editable checkout under PYTHONDONTWRITEBYTECODE=1 (this machine sets it)
compiles the plugin's modules in every process of every run.
"""

from __future__ import annotations

import compileall
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Config,
    base_parser,
    config_json,
    disable,
    machine,
    only,
    run_pytest,
    table,
    write_json,
)

TESTS = '''\
import pytest


@pytest.mark.parametrize("i", range({n}))
def test_pass(i):
    assert i >= 0
'''


def make_suite(root: Path, n: int) -> Path:
    suite = root / "suite"
    suite.mkdir()
    (suite / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    # Several files, as a real suite has; 200 tests per file.
    per_file = 200
    for k in range(0, n, per_file):
        count = min(per_file, n - k)
        (suite / f"test_pass_{k // per_file:02d}.py").write_text(TESTS.format(n=count))
    return suite


def configs(loaded: bool = False, history: Path | None = None) -> list[Config]:
    """``-p no:dtf_errors`` against ``--dtf-retry``, or (``loaded``) against the plugin loaded, not asked;
    or (``history``) ``--dtf-retry`` against ``--dtf-retry`` with a history file."""
    base = ["-n", "2", "-q", "-p", "no:cacheprovider"]
    if history is not None:
        retry = base + only("dtf_errors") + ["--dtf-retry"]
        return [
            Config("off", "--dtf-retry", retry),
            Config("on", "--dtf-retry --dtf-history", [*retry, f"--dtf-history={history}"]),
        ]
    on = (Config("on", "loaded, not asked", base + only("dtf_errors")) if loaded
          else Config("on", "--dtf-retry", base + only("dtf_errors") + ["--dtf-retry"]))
    return [
        Config("off", "-p no:dtf_errors", base + disable("dtf_errors", "rerunfailures", "flaky",
                                                          "pytest-retry")),
        on,
    ]


def main() -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--repeat", type=int, default=7, help="runs per configuration (default 7)")
    parser.add_argument("--tests", type=int, default=2000, help="tests in the suite (default 2000)")
    parser.add_argument("--phases", action="store_true",
                        help="also time the phases of each session (bench/phase_timing.py)")
    parser.add_argument("--no-compile", action="store_true",
                        help="remove the plugin's bytecode instead of compiling it first")
    parser.add_argument("--loaded", action="store_true",
                        help="compare the plugin loaded but not asked (no --dtf-retry) instead")
    parser.add_argument("--history", action="store_true",
                        help="compare --dtf-retry without and with a history file instead")
    args = parser.parse_args()
    compile_plugin(remove=args.no_compile)

    root = Path(tempfile.mkdtemp(prefix="dtf-bench-overhead-"))
    suite = make_suite(root, args.tests)
    info = machine()
    print(f"suite: {args.tests} passing tests, -n 2, {args.repeat} alternating runs each; "
          f"plugin bytecode {'removed' if args.no_compile else 'compiled first'}")
    print(f"machine: {info['cpus']} CPUs, load average at start {info['loadavg_at_start']}, "
          f"Python {info['python']}; {info['date']}")
    print(f"suite dir: {suite}")

    off, on = configs(args.loaded, root / "history.sqlite" if args.history else None)
    phases_log = root / "phases.log"
    envs: dict[str, dict[str, str]] = {"off": {}, "on": {}}
    if args.phases:
        for c in (off, on):
            c.args = [*c.args, "-p", "phase_timing"]
            envs[c.key] = {"PYTHONPATH": str(Path(__file__).resolve().parent),
                           "DTF_PHASES_LOG": str(phases_log), "CFG": c.key}
    # One warm-up run of each (imports into the page cache, .pyc files written), not counted.
    for c in (off, on):
        run_pytest(c, suite, args.tests, env=envs[c.key])
        c.runs.clear()
    phases_log.unlink(missing_ok=True)
    for rep in range(args.repeat):
        order = (off, on) if rep % 2 == 0 else (on, off)
        for c in order:
            run = run_pytest(c, suite, args.tests, env=envs[c.key])
            print(f"  {c.key:>3} run {rep + 1}: {run.seconds:6.2f} s wall, {run.cpu_seconds:6.2f} s CPU"
                  f"  {'ok' if run.ok else 'NOT OK'}"
                  f"  [{run.final_line}]", flush=True)

    ratio = on.median / off.median
    # The ratio within each round (neighbouring runs share the machine's load at the time).
    pair_ratios = [b.seconds / a.seconds for a, b in zip(off.runs, on.runs)]
    cpu_ratio = on.cpu_median / off.cpu_median
    rows = [[c.label, " ".join(f"{r.seconds:.2f}" for r in c.runs), f"{c.median:.2f}",
             f"{c.median / off.median:.3f}x", f"{c.cpu_median:.2f}",
             f"{c.cpu_median / off.cpu_median:.3f}x", "ok" if c.ok else "NOT OK"]
            for c in (off, on)]
    print()
    print(table(rows, ["configuration", "wall runs (s)", "median s", "vs off", "CPU median s",
                       "vs off", "outcome"]))
    print(f"ratio of medians: {ratio:.3f}x; per-round ratios: "
          + " ".join(f"{r:.3f}" for r in pair_ratios)
          + f" (median {statistics.median(pair_ratios):.3f}x)")
    print(f"CPU time (session + workers, user + system): ratio of medians {cpu_ratio:.3f}x;"
          " less disturbed by other load on the machine than wall time")

    phases = phase_table(phases_log) if args.phases else None
    if phases:
        print()
        print(table(phases, ["phase reached", "ctl wall off", "on", "+", "ctl CPU off", "on", "+",
                             "worker CPU off", "on", "+"]))

    write_json(args.json, {
        "benchmark": "overhead",
        "machine": info,
        "suite": {"tests": args.tests, "workers": 2, "repeat": args.repeat,
                  "plugin_bytecode_compiled": not args.no_compile},
        "configs": [config_json(c, suite, off.median) for c in (off, on)],
        "ratio": round(ratio, 4),
        "cpu_ratio": round(cpu_ratio, 4),
        "pair_ratios": [round(r, 4) for r in pair_ratios],
        "phases": phases,
    })
    if args.keep:
        print(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if off.ok and on.ok else 1


def compile_plugin(remove: bool = False) -> None:
    """Write the plugin's .pyc files, as pip does at install time (forced: a same-second edit counts).

    ``remove``: delete them instead (the editable checkout without bytecode).
    """
    import pytest_dtf_errors

    package = Path(pytest_dtf_errors.__file__).parent
    if remove:
        for cache in package.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
    else:
        compileall.compile_dir(str(package), force=True, quiet=1)


def phase_table(log: Path) -> list[list[str]]:
    """Median seconds at each phase, per configuration, from phase_timing's lines."""
    marks: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for line in log.read_text().splitlines():
        cfg, proc, *pairs = line.split()
        for pair in pairs:
            key, value = pair.split("=")
            if proc == "ctl":
                kind = "ctl wall" if key.startswith("wall_") else "ctl CPU"
            else:
                kind = "worker CPU"
            marks[(kind, key.removeprefix("wall_"), cfg)].append(float(value))
    rows = []
    for phase in ("configure", "collected", "first_report", "sessionfinish", "unconfigure", "exit"):
        row = [phase]
        for kind in ("ctl wall", "ctl CPU", "worker CPU"):
            off = marks.get((kind, phase, "off"))
            on = marks.get((kind, phase, "on"))
            if not off or not on:
                row += ["-", "-", "-"]
                continue
            a, b = statistics.median(off), statistics.median(on)
            row += [f"{a:.3f}", f"{b:.3f}", f"{b - a:+.3f}"]
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
