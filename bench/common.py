"""Shared helpers of the plugin benchmarks (bench/retry_delay.py, bench/overhead.py).

Each measured command is a real pytest session in a subprocess; the wall time
is taken around it (``time.perf_counter``), so it includes interpreter start,
collection and the xdist workers' start-up, as a user sees it.

Plugin names for ``-p no:NAME`` (the pytest11 entry-point names; an unknown
name is silently accepted by pytest, so they were checked with
``--trace-config``): ``dtf_errors``, ``rerunfailures``, ``flaky`` and
``pytest-retry`` (not ``retry``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

PLUGINS = ("dtf_errors", "rerunfailures", "flaky", "pytest-retry")


def disable(*names: str) -> list[str]:
    """``-p no:NAME`` for each name."""
    out: list[str] = []
    for n in names:
        assert n in PLUGINS, n
        out += ["-p", f"no:{n}"]
    return out


def only(name: str | None) -> list[str]:
    """Disable every retry plugin except ``name`` (None: disable them all)."""
    return disable(*(p for p in PLUGINS if p != name))


# The final line, e.g. "== 30 passed, 20 flaky, 20 rerun in 5.12s ==".
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|flaky|rerun|retried|xfailed|xpassed|warnings?)")


def final_counts(output: str) -> tuple[dict[str, int], str]:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    for line in reversed(lines):
        if re.search(r" in \d+(\.\d+)?s", line):
            counts: dict[str, int] = {}
            for n, word in _COUNT.findall(line):
                word = {"error": "errors", "warning": "warnings"}.get(word, word)
                counts[word] = counts.get(word, 0) + int(n)
            return counts, line.strip(" =")
    return {}, lines[-1] if lines else ""


@dataclass
class Run:
    label: str
    seconds: float
    cpu_seconds: float  # user + system time of the session and its workers
    rc: int
    counts: dict[str, int]
    final_line: str
    ok: bool


@dataclass
class Config:
    key: str
    label: str
    args: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def cpu_median(self) -> float:
        return statistics.median(r.cpu_seconds for r in self.runs)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)


def pytest_cmd(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", *args]


def run_pytest(config: Config, cwd: Path, expect_total: int, env: dict[str, str] | None = None,
               timeout: float = 600) -> Run:
    """Run one pytest session, time it, and check every test passed in the end."""
    full_env = dict(os.environ)
    full_env.pop("PYTEST_ADDOPTS", None)
    full_env.pop("PYTEST_PLUGINS", None)
    full_env.update(env or {})
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(pytest_cmd(config.args), cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    out = proc.stdout + proc.stderr
    counts, line = final_counts(out)
    ok = (proc.returncode == 0 and counts.get("failed", 0) == 0 and counts.get("errors", 0) == 0
          and counts.get("passed", 0) + counts.get("flaky", 0) == expect_total)
    run = Run(config.label, seconds, cpu, proc.returncode, counts, line, ok)
    config.runs.append(run)
    if not ok:
        sys.stderr.write(f"!! {config.label}: rc={proc.returncode}, {line!r}\n{out[-3000:]}\n")
    return run


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def machine() -> dict[str, object]:
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for dist in ("pytest", "pytest-xdist", "pytest-dtf-errors", "pytest-rerunfailures",
                 "pytest-retry", "flaky"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "loadavg_at_start": load,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    p.add_argument("--keep", action="store_true", help="keep the generated suite (its path is printed)")
    return p


def write_json(path: str | None, data: dict[str, object]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2) + "\n")
        print(f"figures written to {path}")


def config_json(c: Config, cwd: Path, baseline: float | None) -> dict[str, object]:
    return {
        "key": c.key,
        "label": c.label,
        "command": "python -m pytest " + " ".join(c.args),
        "cwd": str(cwd),
        "seconds": [round(r.seconds, 3) for r in c.runs],
        "median": round(c.median, 3) if c.runs else None,
        "ratio": round(c.median / baseline, 3) if baseline and c.runs else None,
        "cpu_seconds": [round(r.cpu_seconds, 3) for r in c.runs],
        "cpu_median": round(c.cpu_median, 3) if c.runs else None,
        "ok": c.ok,
        "final_lines": [r.final_line for r in c.runs],
        "runs": [asdict(r) for r in c.runs],
    }
