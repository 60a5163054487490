"""Start-up and per-test cost of the plugin installed but not asked, as CPU time.

    python bench/startup.py --python ENV/bin/python [--python OTHER/bin/python]
                            [--rounds 8] [--tests 2000] [-n 0] [--dtf-retry]

For each interpreter (a virtual environment with the plugin installed the way
pip installs it: a wheel, not an editable checkout), runs a suite of passing
tests with ``-p no:dtf_errors`` and with the plugin loaded (no dtf option),
alternating (``--dtf-retry``: the loaded run asks for retries), and prints the median CPU time (user + system of pytest and the
xdist workers it waited for) of each. CPU time is steadier than wall time on a
shared 2-CPU machine. Run it as the project's machines run: with
``PYTHONDONTWRITEBYTECODE=1`` set, pytest's rewritten modules are never cached.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

SUITE = 'import pytest\n@pytest.mark.parametrize("i", range({n}))\ndef test_pass(i):\n    assert i >= 0\n'


def cpu_of(cmd: list[str], cwd: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", action="append", required=True, help="an interpreter to measure")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--tests", type=int, default=2000)
    ap.add_argument("-n", dest="workers", default="0", help="xdist workers (0: in-process)")
    ap.add_argument("--dtf-retry", action="store_true", help="the loaded run asks: --dtf-retry")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dtf-bench-startup-"))
    (root / "test_pass.py").write_text(SUITE.format(n=args.tests))
    (root / "pytest.ini").write_text("[pytest]\n")
    dist = ["-p", "no:xdist"] if args.workers == "0" else ["-n", args.workers]
    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(args.rounds):
            for py in args.python:
                asked = ["--dtf-retry"] if args.dtf_retry else []
                for label, extra in (("off", ["-p", "no:dtf_errors"]), ("loaded", asked)):
                    cmd = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *dist, *extra]
                    cpu.setdefault((py, label), []).append(cpu_of(cmd, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.tests} passing tests, {'in-process' if args.workers == '0' else f'-n {args.workers}'}, "
          f"{args.rounds} rounds, PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')}")
    for py in args.python:
        off, on = (statistics.median(cpu[(py, k)]) for k in ("off", "loaded"))
        print(f"{py}: -p no:dtf_errors {off:.3f} s CPU, loaded {on:.3f} s ({on - off:+.3f} s, {on / off:.3f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
