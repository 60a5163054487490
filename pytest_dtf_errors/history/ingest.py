"""A ``--dtf-report`` JSON report -> the ``RunRecord`` the history writes.

Used by ``python -m pytest_dtf_errors.history ingest`` to merge reports from
other machines or CI shards. The run id is the report's ``run.id`` when it has
one, else ``derive_run_id``: a hash of the run's start epoch, command line and
plugin version, so the same report ingested twice is the same run. A
pattern's fingerprint is a hash of its category and template (pattern ids
like ``P1`` are per run; the template is what stays the same across runs).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from ..report.json_report import read_json
from .values import OUTCOME_CODES, AttemptRecord, RunRecord, TestResult

__all__ = ["derive_run_id", "fingerprint", "load_report", "run_from_report"]


def fingerprint(category: str | None, template: str) -> str:
    """A pattern's id across runs: 16 hex digits of a hash of its category and template."""
    return hashlib.sha256(f"{category or ''}\0{template}".encode()).hexdigest()[:16]


def derive_run_id(run: Mapping[str, Any]) -> str:
    """A stable id for a report's run without ``run.id``: start epoch, args, plugin version."""
    key = json.dumps(
        [run.get("start_epoch"), [str(a) for a in run.get("args") or ()], run.get("plugin")],
        sort_keys=True, default=str,
    )
    return "r-" + hashlib.sha256(key.encode()).hexdigest()[:20]


def load_report(path: str) -> dict[str, Any]:
    """The JSON report at ``path``; ValueError with a one-line message if it is not one."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("run"), dict) \
            or not isinstance(data.get("tests"), list):
        raise ValueError(f"{path} is not a pytest-dtf-errors report (no run or tests)")  # noqa: TRY004
    return data


def run_from_report(data: Mapping[str, Any], source: str | None = None) -> RunRecord:
    """The run a report describes; ValueError if it lacks the run's start or the tests."""
    run = data.get("run")
    tests = data.get("tests")
    if not isinstance(run, Mapping) or not isinstance(tests, list):
        raise ValueError("not a pytest-dtf-errors report (no run or tests)")  # noqa: TRY004
    start = _number(run.get("start_epoch"))
    if start is None:
        raise ValueError("the report's run has no start_epoch")
    run_id = run.get("id")
    run_id = str(run_id) if isinstance(run_id, (str, int)) and run_id != "" else derive_run_id(run)
    label = run.get("label")
    patterns: dict[str, tuple[str | None, str]] = {}
    by_id: dict[str, str] = {}
    for p in data.get("patterns") or ():
        if isinstance(p, Mapping) and p.get("id") is not None:
            category = None if p.get("category") is None else str(p.get("category"))
            template = str(p.get("template") or "")
            fp = fingerprint(category, template)
            patterns[fp] = (category, template)
            by_id[str(p["id"])] = fp
    results: list[TestResult] = []
    for t in tests:
        if not isinstance(t, Mapping) or not isinstance(t.get("nodeid"), str):
            continue
        outcome = t.get("outcome")
        if outcome not in OUTCOME_CODES:
            continue
        attempts = tuple(
            _attempt(a, i, by_id) for i, a in enumerate(t.get("attempts") or (), 1)
            if isinstance(a, Mapping)
        )
        # one run's time, what scheduling wants: retries and repeats do not make a test look longer
        duration = sum(a.duration for a in attempts) / len(attempts) if attempts else 0.0
        results.append(TestResult(t["nodeid"], str(outcome), duration, attempts))
    return RunRecord(
        run_id, start, tuple(results),
        label=label if isinstance(label, str) and label else None,
        source=source, patterns=patterns,
    )


def _attempt(a: Mapping[str, Any], index: int, patterns: Mapping[str, str]) -> AttemptRecord:
    error = a.get("error")
    message = error.get("message") if isinstance(error, Mapping) else None
    hardware = a.get("hardware")
    if isinstance(hardware, (list, tuple)):
        hardware = ",".join(str(h) for h in hardware) or None
    number = a.get("attempt")
    return AttemptRecord(
        number if isinstance(number, int) and not isinstance(number, bool) else index,
        str(a.get("outcome") or "error"),
        category=_str(a.get("category")),
        fingerprint=patterns.get(str(a.get("pattern"))) if a.get("pattern") is not None else None,
        worker=_str(a.get("node")),
        host=_str(a.get("host")),
        hardware=_str(hardware),
        duration=_number(a.get("duration")) or 0.0,
        message=None if message is None else str(message),
    )


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
