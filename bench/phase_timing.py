"""A pytest plugin that writes where a session's time goes, per process.

    PYTHONPATH=bench DTF_PHASES_LOG=/tmp/phases.log CFG=on \\
        pytest -n 2 -p phase_timing --dtf-retry ...

Each process (the controller and every xdist worker) appends one line to
``$DTF_PHASES_LOG`` at exit: ``CFG process phase=cpu_seconds ...``, the CPU
time of the process (user + system) when it reached each phase. The
controller's line also has ``wall_<phase>`` marks, seconds since this plugin loaded.
Used for the overhead breakdown in BENCHMARKS.md; nothing is asserted.
"""

from __future__ import annotations

import atexit
import os
import time
from typing import Any

_cpu: dict[str, float] = {}
_wall: dict[str, float] = {}


# -p phase_timing loads before the entry-point plugins: what came earlier is the same in both
_start = time.monotonic()


def _mark(phase: str) -> None:
    _cpu.setdefault(phase, time.process_time())
    _wall.setdefault(phase, time.monotonic() - _start)


def _write(name: str) -> None:
    path = os.environ.get("DTF_PHASES_LOG")
    if not path:
        return
    _mark("exit")
    cpu = " ".join(f"{k}={v:.4f}" for k, v in _cpu.items())
    wall = " ".join(f"wall_{k}={v:.4f}" for k, v in _wall.items()) if name == "ctl" else ""
    with open(path, "a") as f:
        f.write(f"{os.environ.get('CFG', '?')} {name} {cpu} {wall}\n")


def pytest_configure(config: Any) -> None:
    name = getattr(config, "workerinput", {}).get("workerid", "ctl")
    _mark("configure")
    atexit.register(_write, name)


def pytest_collection_finish(session: Any) -> None:
    _mark("collected")  # on a worker; the controller collects nothing under xdist


def pytest_xdist_node_collection_finished(node: Any, ids: Any) -> None:
    _mark("collected")


def pytest_runtest_logreport(report: Any) -> None:
    _mark("first_report")


def pytest_sessionfinish(session: Any) -> None:
    _mark("sessionfinish")


def pytest_unconfigure(config: Any) -> None:
    _mark("unconfigure")
