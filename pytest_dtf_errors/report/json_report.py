"""The JSON report: one dict built from the ledger, its schema, and atomic writes.

`build_report` is the one place the ledger becomes report data; the terminal
summary formats that same dict, so the terminal and the file always agree.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from ..ledger import FINAL_OUTCOMES, Ledger, TestRecord

SCHEMA_VERSION = 2  # 2: run.id and run.label, history, tests[].history / quarantine / repeat
SCOPES = ("test", "node", "hardware", "systemic")
NO_OUTCOME_REASON = "no outcome recorded"


# -- building --------------------------------------------------------------
def build_report(
    ledger: Ledger, patterns: list[dict[str, Any]], *, run_info: Mapping[str, Any],
    history: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the JSON-ready report of one session (the contract in schema.json).

    ``history``: the history's section (``session.memory``), None without one."""
    roles = poison_roles(ledger)
    tests = [_test_dict(rec, roles.get(rec.nodeid)) for rec in ledger]
    end = ledger.finished if ledger.finished is not None else time.time()
    nodes = [_jsonable(n.to_dict()) for n in ledger.nodes.values()]
    return {
        "schema_version": SCHEMA_VERSION,
        "run": _run_dict(ledger, run_info, end),
        "summary": summary_counts(ledger, tests),
        "tests": tests,
        "patterns": [normalize_pattern(p) for p in patterns],
        "nodes": nodes,
        "breaker": _jsonable(list(ledger.breaker_trips)),
        "unavailable": [{"node": node, "hardware": hw} for node, hw in sorted(ledger.unavailable)],
        "lost_hosts": [
            {"host": host, "reason": reason} for host, reason in sorted(ledger.lost_hosts.items())
        ],
        "poisoned": [_jsonable(p.to_dict()) for p in ledger.poisonings],
        "exclusive": [
            {"nodeid": nodeid, "host": host, "drained_seconds": round(seconds, 3)}
            for nodeid, host, seconds in ledger.exclusive_runs
        ],
        "collection_errors": _collection_errors(run_info),
        "history": None if history is None else _jsonable(dict(history)),
    }


def poison_roles(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """nodeid -> its part in a poisoning: the culprit of one, or a victim."""
    roles: dict[str, dict[str, Any]] = {}
    for p in ledger.poisonings:
        for nodeid in p.victims:
            roles.setdefault(nodeid, {"role": "victim", "worker": p.worker, "signature": p.signature,
                                      "culprit": p.culprit})
    for p in ledger.poisonings:  # a culprit is a culprit, also where it was a victim first
        if p.culprit not in roles or roles[p.culprit]["role"] != "culprit":
            roles[p.culprit] = {"role": "culprit", "worker": p.worker, "signature": p.signature,
                                "culprit": p.culprit, "victims": len(p.victims)}
    return roles


def read_json(path: str) -> Any:
    """The JSON in the file at ``path``; ValueError with a one-line message when there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None


def final_outcome(rec: TestRecord) -> tuple[str, str | None]:
    """The outcome and reason a test is reported with; a missing final is an error."""
    if rec.final in FINAL_OUTCOMES:
        return rec.final, rec.reason
    return "error", rec.reason or NO_OUTCOME_REASON


def summary_counts(ledger: Ledger, tests: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Counts of final outcomes, retries run, and the retry budget."""
    counts = {k: 0 for k in FINAL_OUTCOMES}
    if tests is None:
        for rec in ledger:
            counts[final_outcome(rec)[0]] += 1
    else:
        for t in tests:
            counts[t["outcome"]] += 1
    attempts = sum(len(rec.attempts) for rec in ledger)
    return {
        **counts,
        "total": len(ledger.tests),
        "attempts": attempts,
        # retries: attempts beyond each test's first; budget_used: what counted
        # against --dtf-retry's budget (a crash re-run may not).
        # (a repeated test's runs are not retries: tests[].repeat counts them)
        "retries": 0 if ledger.runs_per_worker else sum(rec.retries for rec in ledger if rec.repeat is None),
        "budget": ledger.retry_budget,
        "budget_note": ledger.budget_note,
        "budget_used": ledger.retries_used,
        "breaker_cancelled": sum(len(t.get("tests") or ()) for t in ledger.breaker_trips),
        # quarantined tests that failed: the exit status ignores them (counted in "failed" too)
        "quarantined": sum(
            1 for rec in ledger if rec.quarantine is not None and rec.final in ("failed", "error")
        ),
        # victims of a poisoned worker that passed on a fresh one (counted in "passed" too)
        "victims": sum(
            1 for t in (tests or ()) if t.get("outcome") == "passed" and (t.get("poison") or {}).get("role") == "victim"
        ),
    }


def normalize_pattern(p: Mapping[str, Any]) -> dict[str, Any]:
    """One pattern dict (an aggregator group's to_dict()) with every contract key."""
    out: dict[str, Any] = _jsonable(dict(p))
    out["id"] = p.get("id") if isinstance(p.get("id"), (str, int)) else str(p.get("id"))
    out["category"] = str(p.get("category") or "unknown")
    for key in ("nodes", "hardware", "hosts"):
        out[key] = _str_list(p.get(key))
    tests = p.get("tests")
    # the aggregator gives a count instead of the list when there are too many
    out["tests"] = tests if _is_count(tests) else _str_list(tests)
    out["distinct_tests"] = tests if _is_count(tests) else len(out["tests"])
    count = p.get("count")
    out["count"] = count if _is_count(count) else out["distinct_tests"]
    out["scope"] = p.get("scope") or "test"
    out["template"] = str(p.get("template") or "")
    out["example"] = _example(p.get("example"))
    out["hint"] = str(p.get("hint") or default_hint(out))
    return out


def default_hint(p: Mapping[str, Any]) -> str:
    """A one-line hint derived from a pattern's scope, for groups without one."""
    tests, nodes, hw, hosts = (p.get(k) or [] for k in ("tests", "nodes", "hardware", "hosts"))
    n_tests = tests if _is_count(tests) else len(tests)
    scope = p.get("scope")
    if scope == "node" and len(nodes) == 1:
        return f"all on {nodes[0]}: node problem"
    if scope == "hardware" and hw:
        return f"only on {', '.join(hw)} workers: hardware problem"
    if scope == "systemic":
        where = f"{len(hosts)} hosts" if hosts else f"{len(nodes)} workers"
        return f"{n_tests} tests, {where}: a shared service is down"
    if scope == "test" and not _is_count(tests) and len(tests) == 1:
        return f"only {tests[0]}: a problem of this test"
    return f"{n_tests} tests on {len(nodes)} workers"


def _test_dict(rec: TestRecord, poison: dict[str, Any] | None = None) -> dict[str, Any]:
    outcome, reason = final_outcome(rec)
    out: dict[str, Any] = {
        "nodeid": rec.nodeid,
        "outcome": outcome,
        "reason": reason,
        "attempts": [_attempt_dict(a.to_dict()) for a in rec.attempts],
    }
    if poison is not None:
        out["poison"] = poison
    if rec.suspects:
        out["suspects"] = _jsonable(rec.suspects)
    for key, value in (("history", rec.history), ("quarantine", rec.quarantine), ("repeat", rec.repeat)):
        if value is not None:
            out[key] = _jsonable(value)
    return out


def _attempt_dict(d: dict[str, Any]) -> dict[str, Any]:
    d = _jsonable(d)
    d["duration"] = _finite(d.get("duration"))
    if isinstance(d.get("error"), dict):
        d["error"].setdefault("type", None)
        d["error"].setdefault("message", None)
    return d


def _run_dict(ledger: Ledger, run_info: Mapping[str, Any], end: float) -> dict[str, Any]:
    workers = [
        {"id": n.id, "host": n.host, "hardware": list(n.hardware)} for n in ledger.nodes.values()
    ]
    known = {w["id"] for w in workers}
    for w in run_info.get("workers") or ():
        w = {"id": w} if isinstance(w, str) else dict(w)
        if w.get("id") not in known:
            known.add(w.get("id"))
            workers.append({"host": None, "hardware": [], **_jsonable(w)})
    label = run_info.get("label")
    return {
        "id": ledger.run_id,
        "label": label if isinstance(label, str) and label else None,
        "plugin": run_info.get("plugin_version"),
        "pytest": run_info.get("pytest_version"),
        "xdist": run_info.get("xdist_version"),
        "start": iso_utc(ledger.started),
        "start_epoch": ledger.started,
        "end": iso_utc(end),
        "end_epoch": end,
        "duration": round(max(0.0, end - ledger.started), 3),
        "args": [str(a) for a in run_info.get("args") or ()],
        "workers": workers,
        # pytest's exit status when the report was written (None: not given)
        "exit_status": _exit_status(run_info.get("exit_status")),
        "collection_errors": len(_collection_errors(run_info)),
        # --dtf-repeat or early flake detection: the runs per test, or the cap (session.repeats)
        "repeats": _jsonable(run_info.get("repeats")),
    }


def _exit_status(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _collection_errors(run_info: Mapping[str, Any]) -> list[dict[str, str]]:
    """[{nodeid, message}] of the files or nodes that could not be collected."""
    return [
        {"nodeid": str(e.get("nodeid") or ""), "message": str(e.get("message") or "")}
        for e in run_info.get("collection_errors") or ()
        if isinstance(e, Mapping)
    ]


def iso_utc(epoch: float) -> str:
    """ISO 8601 in UTC with a Z, to the millisecond."""
    dt = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _example(ex: Any) -> dict[str, Any] | None:
    """{test, message, ...}; the aggregator's examples name the test "test_id"."""
    if ex is None:
        return None
    if isinstance(ex, Mapping):
        out: dict[str, Any] = _jsonable(dict(ex))
        test = next((ex[k] for k in ("test", "test_id", "nodeid") if ex.get(k) is not None), None)
        out["test"] = None if test is None else str(test)
        out["message"] = None if ex.get("message") is None else str(ex.get("message"))
        return out
    return {"test": None, "message": str(ex)}


def _str_list(value: Any) -> list[str]:
    if value is None or isinstance(value, (int, float)):
        return []
    if isinstance(value, str):
        return [value]
    items = [str(v) for v in value] if isinstance(value, Iterable) else [str(value)]
    return items if isinstance(value, (list, tuple)) else sorted(items)


def _finite(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else 0.0


def _jsonable(obj: Any) -> Any:
    """A copy that json.dumps accepts: odd objects become their repr, NaN becomes None."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((_jsonable(v) for v in obj), key=repr)
    try:
        return repr(obj)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not cost the report
        return f"<unrepresentable {type(obj).__name__}>"


# -- writing ---------------------------------------------------------------
def write_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write data as JSON to path so that readers see the old file or the new one.

    Serializes first (a failure leaves everything untouched), then writes a
    temp file in the same directory, fsyncs it and renames it over path.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    # backslashreplace turns a lone surrogate into a JSON \\uXXXX escape.
    write_bytes_atomic(path, text.encode("utf-8", errors="backslashreplace"))


class ReportPathError(OSError):
    """A report path that names something other than a regular file we may replace."""


def write_bytes_atomic(path: str | os.PathLike[str], payload: bytes) -> None:
    """Atomically replace the file at path with payload (temp file + fsync + os.replace).

    A symlink is written through: its target is replaced and the link stays. A
    path that is not a regular file is never replaced: a character device or a
    FIFO (``/dev/stdout``, ``/dev/null``, a pipe) is written into; a directory,
    a block device or a socket raises ReportPathError.
    """
    given = os.path.abspath(os.fspath(path))
    try:
        mode = os.stat(given).st_mode  # follows symlinks
    except FileNotFoundError:
        mode = None  # a new file (or a dangling link's target)
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
            with open(given, "wb") as stream:  # /proc/self/fd/N magic links resolve here
                stream.write(payload)
            return
        kind = ("a directory" if stat.S_ISDIR(mode) else "a block device" if stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        raise ReportPathError(f"{given} is {kind}, not a regular file: report not written")
    path = os.path.realpath(given)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would surprise CI artifact upload
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt included: never leave the temp file
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- validating ------------------------------------------------------------
def load_schema() -> dict[str, Any]:
    """The packaged JSON Schema (draft 2020-12) of the report."""
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate(data: Any) -> None:
    """Raise ValueError naming the path of the first violation of the report schema.

    Uses jsonschema when it is importable; otherwise a small checker for the
    keywords schema.json uses.
    """
    schema = load_schema()
    try:
        import jsonschema
    except ImportError:
        error = _first_error(data, schema, schema, "$")
        if error:
            raise ValueError(f"invalid dtf report: {error}") from None
        return
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        raise ValueError(f"invalid dtf report: {_json_path(err.absolute_path)}: {err.message}")


def _json_path(parts: Iterable[Any]) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def _first_error(value: Any, schema: Any, root: dict[str, Any], path: str) -> str | None:
    """Fallback validation for the subset of JSON Schema that schema.json uses."""
    if schema is True or not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _first_error(value, target, root, path)
    if "anyOf" in schema and all(_first_error(value, s, root, path) for s in schema["anyOf"]):
        return f"{path}: matches none of the allowed forms"
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is_type(value, t) for t in names):
            return f"{path}: {value!r} is not of type {' or '.join(names)}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: {value!r} is not {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {value!r} is not one of {schema['enum']}"
    if "minimum" in schema and _is_type(value, "number") and value < schema["minimum"]:
        return f"{path}: {value!r} is less than {schema['minimum']}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                return f"{path}: {key!r} is a required property"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                err = _first_error(value[key], sub, root, f"{path}.{key}")
                if err:
                    return err
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            err = _first_error(item, schema["items"], root, f"{path}[{i}]")
            if err:
                return err
    return None
