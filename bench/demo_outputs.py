"""The demo's terminal, JSON and JUnit outputs with timings taken out, to diff two installs.

    python bench/demo_outputs.py --python ENV/bin/python --out DIR [--runs N]
    python bench/demo_outputs.py --compare DIR_A DIR_B   # unified diff, exit 1 when they differ

Runs ``python -m pytest . -n 2 --dtf-retry --dtf-report report.json --junitxml junit.xml
-p no:cacheprovider`` in a temp copy of conftest_examples/demo with the given interpreter, and
writes DIR/terminal.txt, DIR/report.json and DIR/junit.xml. Replaced: durations, timestamps and
epoch times, JUnit's time=/timestamp=/hostname=, the temp dir, the interpreter, site-packages
and plugin paths, pids, memory figures and object addresses. Three orderings that follow the
race between the two workers are made canonical (see ORDERING below). With ``--runs N`` the demo
runs N times: the first run goes to DIR, the others to DIR/run-2 ..., and the script lists the
distinct outputs.

Even so the demo is not deterministic, and this is left in: how many retries go to the worker
that replaces the crashed one (gw2) rather than to the surviving one depends on when gw2 is up,
and with it the database pattern's scope (systemic when both ran its tests, node when only one
did) and whether the breaker trips before test_query_orders[1]'s retry (8 or 7 reruns).
``--compare`` therefore accepts DIR_B when it equals DIR_A or any output below it (DIR_A/run-*;
more baseline runs can go to ``--out DIR_A/more --runs N``); otherwise it prints the unified diff
to the closest of them and exits 1.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

DEMO = Path(__file__).resolve().parent.parent / "conftest_examples" / "demo"
FILES = ("terminal.txt", "report.json", "junit.xml")
ARGS = ("-m", "pytest", ".", "-n", "2", "--dtf-retry", "--dtf-report", "report.json",
        "--junitxml", "junit.xml", "-p", "no:cacheprovider")
WIDTH = 80  # COLUMNS for the run, and the width separator lines are re-centred to
# JSON keys whose values are clock readings, durations, pids or memory figures
VOLATILE_KEYS = frozenset({"start", "end", "start_epoch", "end_epoch", "duration", "started",
                           "finished", "due", "dispatched", "t", "pid", "rss_mb", "MemTotal",
                           "MemAvailable"})
SUBS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"0x[0-9a-f]{6,16}\b"), "0x<addr>"),  # object reprs
    (re.compile(r"/tmp/pytest-of-[^/\s]+/pytest-\d+"), "<basetemp>"),
    (re.compile(r"\b(pid[ =:]+)\d+"), r"\1<pid>"),
]
SEP = re.compile(r"^([=_-])\1{2,} (.*) \1{2,}$")  # pytest's separator lines
FINAL_TIME = re.compile(r" in \d+(\.\d+)?s( \(\d+:\d\d:\d\d\))?")  # "in 3.81s (0:00:03)"
WORKER = re.compile(r"\bgw\d+\b")
WORKER_LIST = re.compile(r"\bgw\d+(?:,gw\d+)+\b")  # the pattern table's workers column
# ORDERING. Seen in 43 baseline runs, each of these varies with nothing else changing:
# 1. Which of gw0/gw1 gets the crashing test (the other one runs the rest; gw2 replaces the
#    crashed one): a mirror image of the same run. Worker ids are renumbered in order of first
#    appearance in the JSON report's tests (collection order, then attempts), so the worker of
#    test_crash's first attempt is always gw0; lists of workers are then sorted by id.
# 2. The progress line: results that arrive at about the same time swap places. Its letters
#    are sorted (their counts kept).
# 3. JUnit testcases are written in the order final results arrive: sorted by (classname, name).
PROGRESS = re.compile(r"^([.FEsxXRL]+)( +\[ *\d+%\])$")
TESTCASE = re.compile(r"<testcase\b[^>]*?(?:/>|>.*?</testcase>)", re.DOTALL)
CASE_KEY = re.compile(r'\b(?:classname|name)="([^"]*)"')  # a testcase's first two attributes


class Norm:
    """The replacements of one run: paths to placeholders, then SUBS, then worker ids."""

    def __init__(self, paths: list[tuple[str, str]], workers: dict[str, str]) -> None:
        self.paths, self.workers = paths, workers

    def __call__(self, text: str, esc: Callable[[str], str] = str) -> str:
        for path, placeholder in self.paths:
            text = text.replace(path, esc(placeholder))
        for pattern, repl in SUBS:
            text = pattern.sub(esc(repl), text)
        return WORKER.sub(lambda m: self.workers.get(m[0], m[0]), text)


def by_id(worker: str) -> int:
    return int(worker[2:])


def sep(char: str, title: str) -> str:
    """A separator line as pytest's TerminalWriter.sep draws it at WIDTH columns."""
    n = max((WIDTH - len(title) - 2) // 2, 1)
    line = f"{char * n} {title} {char * n}"
    return line + char if len(line) + 1 <= WIDTH else line


def paths(python: str, cwd: Path) -> list[tuple[str, str]]:
    """(path, placeholder) for the interpreter, its prefix and where the plugin is installed
    (found from cwd, the demo's dir, as the demo finds it)."""
    code = ("import sys, sysconfig, pathlib, importlib.util as u;"
            "s = u.find_spec('pytest_dtf_errors');"
            "print(sys.executable); print(sysconfig.get_paths()['purelib']);"
            "print(pathlib.Path(s.origin).parent.parent if s and s.origin else ''); print(sys.prefix)")
    found = subprocess.run([python, "-c", code], cwd=cwd, capture_output=True, text=True,
                           check=True).stdout.split("\n")
    names = ["<python>", "<site-packages>", "<site-packages>", "<prefix>"]
    out = [(python, "<python>"), *zip(found, names)]
    out += [(str(Path(p).resolve()), r) for p, r in out if p]
    return sorted({(p, r) for p, r in out if p}, key=lambda pr: -len(pr[0]))


def worker_map(*texts: str) -> dict[str, str]:
    """ORDERING 1: worker ids to gw0, gw1, ... in order of first appearance in the texts."""
    try:
        tests = json.dumps(json.loads(texts[0]).get("tests"))
    except (ValueError, AttributeError):
        tests = ""
    seen = dict.fromkeys(WORKER.findall(tests + "".join(texts)))
    return {w: f"gw{i}" for i, w in enumerate(seen)}


def terminal(text: str, norm: Norm) -> str:
    lines = []
    for line in text.splitlines():
        new = WORKER_LIST.sub(lambda m: ",".join(sorted(m[0].split(","), key=by_id)), norm(line))
        if m := SEP.match(new):
            title = FINAL_TIME.sub(" in <t>s", m[2])
            if new != line or title != m[2]:
                # the title's length changed: draw its line again, as pytest would
                new = sep(m[1], title)
        elif m := PROGRESS.match(new):
            new = "".join(sorted(m[1])) + m[2]  # ORDERING 2
        lines.append(new)
    return "\n".join(lines) + "\n"


def report(text: str, norm: Norm) -> str:
    def walk(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: "<t>" if k in VOLATILE_KEYS and v is not None else walk(v)
                    for k, v in o.items()}
        if isinstance(o, list):
            o = [walk(v) for v in o]
            if o and all(isinstance(v, str) and WORKER.fullmatch(v) for v in o):
                return sorted(o, key=by_id)  # ORDERING 1: a set of workers
            if o and all(isinstance(v, dict) and WORKER.fullmatch(str(v.get("id"))) for v in o):
                return sorted(o, key=lambda v: by_id(v["id"]))  # run.workers, nodes
            return o
        return norm(o) if isinstance(o, str) else o

    try:
        data = json.loads(text)
    except ValueError:
        return norm(text)
    return json.dumps(walk(data), indent=1, ensure_ascii=False) + "\n"


def junit(text: str, norm: Norm) -> str:
    # "*", not "<t>": the placeholders must keep the XML well-formed
    text = norm(re.sub(r' (time|timestamp|hostname)="[^"]*"', r' \1="*"', text), escape)
    ordered = iter(sorted(TESTCASE.findall(text), key=lambda c: CASE_KEY.findall(c)[:2]))
    return TESTCASE.sub(lambda _: next(ordered), text)  # ORDERING 3


def run_demo(python: str, out: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="dtf-demo-") as tmp:
        work = Path(tmp) / "demo"
        shutil.copytree(DEMO, work, ignore=shutil.ignore_patterns("__pycache__"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env.update(COLUMNS=str(WIDTH), PY_COLORS="0", PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run([python, *ARGS], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        raw = {"terminal.txt": proc.stdout + proc.stderr + f"# exit status {proc.returncode}\n"}
        for name in FILES[1:]:
            raw[name] = (work / name).read_text() if (work / name).exists() else "missing\n"
        subs = [(str(work.resolve()), "<demo>"), (str(work), "<demo>"), *paths(python, work)]
        norm = Norm(subs, worker_map(raw["report.json"], raw["terminal.txt"], raw["junit.xml"]))
    out.mkdir(parents=True, exist_ok=True)
    for name, fn in zip(FILES, (terminal, report, junit)):
        (out / name).write_text(fn(raw[name], norm))
    return proc.returncode


def diff(a: Path, b: Path) -> list[str]:
    lines: list[str] = []
    for name in FILES:
        fa, fb = a / name, b / name
        ta = fa.read_text().splitlines(True) if fa.exists() else []
        tb = fb.read_text().splitlines(True) if fb.exists() else []
        lines += difflib.unified_diff(ta, tb, str(fa), str(fb))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--python", help="the interpreter whose install runs the demo")
    ap.add_argument("--out", type=Path, help="where the three normalized files go")
    ap.add_argument("--runs", type=int, default=1, help="run the demo N times (default 1)")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("DIR_A", "DIR_B"))
    args = ap.parse_args(argv)
    if args.compare:
        a, b = args.compare
        below = sorted({f.parent for f in a.rglob("terminal.txt")} - {a, b})
        diffs = {d: diff(d, b) for d in [a, *below]}
        same = [d for d, lines in diffs.items() if not lines]
        if same:
            print(f"{b} matches {same[0]}")
            return 0
        closest: list[str] = min(diffs.values(), key=len)
        sys.stdout.writelines(closest)
        return 1
    if not (args.python and args.out):
        ap.error("--python and --out are required (or --compare DIR_A DIR_B)")
    dirs = [args.out] + [args.out / f"run-{i}" for i in range(2, args.runs + 1)]
    for d in dirs:
        print(f"{d}: demo exit status {run_demo(args.python, d)}")
    groups: dict[Path, list[Path]] = {}
    for d in dirs:
        groups.setdefault(next((g for g in groups if not diff(g, d)), d), []).append(d)
    print(f"{len(groups)} distinct output(s) in {len(dirs)} run(s):")
    for g, same in groups.items():
        print(f"  {g}: {len(same)} run(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
