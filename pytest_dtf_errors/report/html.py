"""The HTML report: one self-contained page with a worker timeline, patterns and tests.

`render_html(report)` turns the JSON report's dict (`json_report.build_report`, or a
saved file) into one HTML file with its CSS and JS inline: no network, so it opens
offline and keeps as a CI artifact. The page's data (`page_data`) are the report
compacted (interned strings, times in ms from the run's start) and bounded (every
text cut, one budget for the long ones), embedded as JSON in a
``<script type="application/json">`` with ``<``, ``>``, ``&``, U+2028 and U+2029
escaped, so no error text can end the element. The script builds the page with
``textContent`` only; a Content-Security-Policy allows no fetch at all and only the
page's own script (by its hash).

Marks that have no time of their own in the report are placed by `marks`: a crash
at its attempt's end, a quarantined or lost worker at its last attempt's end, a
poisoning at its culprit's attempt, a replacement worker at its first attempt, and
a breaker trip at the end of the first attempt it stopped.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from .json_report import write_bytes_atomic
from .terminal import counts_line

__all__ = ["embed_json", "marks", "page_data", "render_html", "write_html"]

PAGE_VERSION = 1
OUTCOMES = ("passed", "failed", "error", "skipped", "flaky")  # index = the page's outcome code
FAILED = ("failed", "error")

# Bounds on report text (characters). Long texts (messages, tracebacks, forensics)
# share one budget; once it is spent, a message keeps SHORT_CHARS and the long
# ones are left out (the JSON report has them whole).
MESSAGE_CHARS = 2_000
TRACEBACK_CHARS = 6_000
FORENSICS_CHARS = 8_000
SHORT_CHARS = 160
NAME_CHARS = 1_000  # nodeids, worker ids, templates
TEXT_BUDGET = 800_000
LIST_CAP = 50  # tests named per pattern, breaker trip, poisoning, history event

_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_NATURAL = re.compile(r"(\d+)")


# -- entry points ----------------------------------------------------------
def write_html(path: str | os.PathLike[str], report: Mapping[str, Any]) -> None:
    """Write the page of ``report`` to path atomically (as the JSON report is written)."""
    write_bytes_atomic(path, render_html(report).encode("utf-8"))


def render_html(report: Mapping[str, Any]) -> str:
    """The whole page: one HTML document, CSS and JS inline, the data embedded as JSON."""
    data = page_data(report)
    css, js = _asset("report.css"), _asset("report.js")
    script_hash = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    csp = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
    )
    title = "pytest-dtf-errors: " + counts_line(report.get("summary") or {})
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{html.escape(_clean(title, NAME_CHARS))}</title>\n"
        f"<style>\n{css}</style>\n</head>\n<body>\n"
        '<noscript><p>This report draws its timeline and tables with JavaScript; '
        "the data are in the JSON report.</p></noscript>\n"
        '<main id="dtf"></main>\n'
        f'<script type="application/json" id="dtf-data">{embed_json(data)}</script>\n'
        f"<script>{js}</script>\n</body>\n</html>\n"
    )


def embed_json(obj: Any) -> str:
    """JSON that is safe inside a script element: no ``<``, ``>``, ``&``, U+2028, U+2029."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


@cache
def _asset(name: str) -> str:
    text = resources.files(__package__).joinpath(f"html_assets/{name}").read_text(encoding="utf-8")
    if "</" in text.replace("<\\/", ""):  # would end the inline element early
        raise ValueError(f"html_assets/{name} must not contain '</'")
    return text


# -- the page's data -------------------------------------------------------
class _Texts:
    """Interns short strings and bounds long ones against one shared budget."""

    __slots__ = ("budget", "cut", "index", "raw", "strings")

    def __init__(self, budget: int) -> None:
        self.strings: list[str] = []
        self.index: dict[str, int] = {}  # table text -> its index
        self.raw: dict[str, int] = {}  # a long text as given -> its index
        self.budget = budget
        self.cut = 0  # texts cut or left out

    def ref(self, value: Any, limit: int = NAME_CHARS) -> int:
        """The index of ``value`` (cut to limit) in the string table; -1 for None."""
        if value is None:
            return -1
        text = _clean(value, limit)
        if len(text) < len(str(value)):
            self.cut += 1
        i = self.index.get(text)
        if i is None:
            i = self.index[text] = len(self.strings)
            self.strings.append(text)
        return i

    def long(self, value: Any, limit: int, *, keep_short: bool = False) -> int:
        """Like ref for a long text, charged to the budget; -1 when left out."""
        if value is None or value == "":
            return -1
        text = _safe_str(value)
        if text in self.raw:
            return self.raw[text]
        if self.budget <= 0:
            if not keep_short:
                self.cut += 1
                return -1
            limit = SHORT_CHARS
        known = len(self.strings)
        i = self.raw[text] = self.ref(text, limit)
        if i >= known:
            self.budget -= len(self.strings[i])
        return i


def page_data(report: Mapping[str, Any]) -> dict[str, Any]:
    """The compact, bounded model the page's script reads (the keys in report.js)."""
    texts = _Texts(TEXT_BUDGET)
    run = _mapping(report.get("run"))
    summary = _mapping(report.get("summary"))
    tests_in = [t for t in _list(report.get("tests")) if isinstance(t, Mapping)]
    t0 = _number(run.get("start_epoch"))
    if t0 is None:
        starts = [_number(a.get("started")) for t in tests_in for a in _attempts(t)]
        t0 = min((s for s in starts if s is not None), default=0.0)
    workers = _workers(report, tests_in)
    windex = {w["id"]: i for i, w in enumerate(workers)}
    patterns, pindex = _patterns(report, tests_in, texts)
    categories: list[str] = []
    cindex: dict[str, int] = {}
    mark_list = marks(report, workers, tests_in, t0, texts)  # first: forensics before the budget goes
    _link_replacements(workers, mark_list)
    no_arrows = not summary.get("retries")  # --dist each: the attempts are the workers' runs
    details: list[dict[str, int]] = []
    tests: list[list[Any]] = []
    files: dict[str, int] = {}  # a nodeid's file part, once
    span = 0.0
    for t in tests_in:
        rows = []
        previous: Mapping[str, Any] | None = None
        for n, a in enumerate(_attempts(t), 1):
            start, end = _times(a, t0)
            if end is not None:
                span = max(span, end)
            category = a.get("category")
            c = -1
            if isinstance(category, str):
                c = cindex.setdefault(category, len(categories))
                if c == len(categories):
                    categories.append(_clean(category, NAME_CHARS))
            pattern = a.get("pattern")
            retry = int(
                previous is not None and not no_arrows and t.get("repeat") is None
                and previous.get("outcome") in FAILED
            )
            x = _detail(a, texts)
            if x:
                details.append(x)
            row: list[Any] = [
                windex.get(str(a.get("node")), -1), start,
                None if start is None or end is None else round(end - start, 1),
                _ms(_number(a.get("duration")) or 0.0),
                _outcome(a.get("outcome"), attempt=True), c,
                pindex.get(str(pattern), -1) if pattern is not None else -1,
                len(details) - 1 if x else -1, retry,
                a.get("attempt") if _is_int(a.get("attempt")) else n,
            ]
            rows.append(_trim(row, [0, -1, -1, -1, 0, n]))
            previous = a
        info = _test_info(t, texts)
        nodeid = _clean(t.get("nodeid"), NAME_CHARS)
        where, sep, name = nodeid.partition("::")
        file = files.setdefault(where, len(files)) if sep else -1
        tests.append(_trim([file, sep + name if sep else nodeid, _outcome(t.get("outcome")), rows, info], [{}]))
    end_epoch = _number(run.get("end_epoch"))
    if end_epoch is not None:
        span = max(span, _ms(end_epoch - t0) or 0.0)
    return {
        "v": PAGE_VERSION,
        "run": _run(run, texts),
        "summary": {k: _scalar(v) for k, v in summary.items()},
        "span": round(span, 1),
        "outcomes": list(OUTCOMES),
        "workers": workers,
        "categories": categories,
        "patterns": patterns,
        "files": list(files),
        "tests": tests,
        "details": details,
        "marks": mark_list,
        "breaker": [
            {"pattern": _clean(b.get("pattern"), NAME_CHARS), "reason": _clean(b.get("reason"), MESSAGE_CHARS),
             "tests": len(_list(b.get("tests"))), "names": [_clean(n, NAME_CHARS) for n in _list(b.get("tests"))[:LIST_CAP]]}
            for b in _list(report.get("breaker"))[:LIST_CAP] if isinstance(b, Mapping)
        ],
        "poisoned": [
            {"worker": _clean(p.get("worker"), NAME_CHARS), "signature": _clean(p.get("signature"), MESSAGE_CHARS),
             "culprit": _clean(p.get("culprit"), NAME_CHARS), "victims": len(_list(p.get("victims"))),
             "reproduced_on": None if p.get("reproduced_on") is None else _clean(p.get("reproduced_on"), NAME_CHARS)}
            for p in _list(report.get("poisoned"))[:LIST_CAP] if isinstance(p, Mapping)
        ],
        "lost_hosts": [
            {"host": _clean(h.get("host"), NAME_CHARS), "reason": _clean(h.get("reason"), MESSAGE_CHARS)}
            for h in _list(report.get("lost_hosts"))[:LIST_CAP] if isinstance(h, Mapping)
        ],
        "unavailable": [
            {"node": _clean(u.get("node"), NAME_CHARS), "hardware": _clean(u.get("hardware"), NAME_CHARS)}
            for u in _list(report.get("unavailable")) if isinstance(u, Mapping)
        ][:LIST_CAP],
        "collection_errors": [
            {"nodeid": _clean(e.get("nodeid"), NAME_CHARS), "message": _clean(e.get("message"), MESSAGE_CHARS)}
            for e in _list(report.get("collection_errors"))[:LIST_CAP] if isinstance(e, Mapping)
        ],
        "history": _history(report.get("history")),
        "strings": texts.strings,
        "cut": texts.cut,
    }


def _workers(report: Mapping[str, Any], tests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per worker that ran or was known, hosts in order of appearance, ids natural."""
    found: dict[str, dict[str, Any]] = {}

    def entry(wid: Any, host: Any = None) -> dict[str, Any]:
        key = str(wid)
        w = found.get(key)
        if w is None:
            w = found[key] = {
                "id": _clean(key, NAME_CHARS), "host": None, "hw": [], "crashes": 0, "quarantined": None,
                "declined": None, "lost": None, "gpus": None, "replaces": None, "replaced_by": None,
            }
        if w["host"] is None and host is not None:
            w["host"] = _clean(host, NAME_CHARS)
        return w

    run = _mapping(report.get("run"))
    for raw in _list(run.get("workers")):
        if isinstance(raw, Mapping) and raw.get("id") is not None:
            w = entry(raw["id"], raw.get("host"))
            w["hw"] = w["hw"] or [_clean(h, NAME_CHARS) for h in _list(raw.get("hardware"))]
    for node in _list(report.get("nodes")):
        if not isinstance(node, Mapping) or node.get("id") is None:
            continue
        w = entry(node["id"], node.get("host"))
        w["hw"] = w["hw"] or [_clean(h, NAME_CHARS) for h in _list(node.get("hardware"))]
        w["crashes"] = node.get("crashes") if _is_int(node.get("crashes")) else 0
        if node.get("quarantined"):
            w["quarantined"] = _clean(node.get("quarantine_reason") or "quarantined", MESSAGE_CHARS)
        if node.get("quarantine_declined"):
            w["declined"] = _clean(node.get("quarantine_declined"), MESSAGE_CHARS)
        if node.get("lost"):
            w["lost"] = _clean(node.get("lost_reason") or "lost", MESSAGE_CHARS)
        if node.get("gpus") is not None:
            w["gpus"] = _clean(json.dumps(_scalar_tree(node.get("gpus"))), NAME_CHARS)
    for t in tests:
        for a in _attempts(t):
            if a.get("node") is not None:
                entry(a["node"], a.get("host"))
    hosts: dict[str, int] = {}
    for w in found.values():
        w["host"] = w["host"] or "local"
        hosts.setdefault(w["host"], len(hosts))
    return sorted(found.values(), key=lambda w: (hosts[w["host"]], _natural(w["id"])))


def _patterns(
    report: Mapping[str, Any], tests: Sequence[Mapping[str, Any]], texts: _Texts,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    out: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for p in _list(report.get("patterns")):
        if not isinstance(p, Mapping):
            continue
        pid = str(p.get("id"))
        if pid in index:
            continue
        names = p.get("tests")
        example = _mapping(p.get("example"))
        index[pid] = len(out)
        out.append({
            "id": _clean(pid, NAME_CHARS),
            "category": _clean(p.get("category") or "unknown", NAME_CHARS),
            "scope": _clean(p.get("scope") or "test", NAME_CHARS),
            "count": p.get("count") if _is_int(p.get("count")) else 0,
            "tests": p.get("distinct_tests") if _is_int(p.get("distinct_tests")) else len(_list(names)),
            "names": [_clean(n, NAME_CHARS) for n in _list(names)[:LIST_CAP]],
            "nodes": [_clean(n, NAME_CHARS) for n in _list(p.get("nodes"))[:LIST_CAP]],
            "hardware": [_clean(n, NAME_CHARS) for n in _list(p.get("hardware"))[:LIST_CAP]],
            "hosts": [_clean(n, NAME_CHARS) for n in _list(p.get("hosts"))[:LIST_CAP]],
            "template": _clean(p.get("template") or "", NAME_CHARS),
            "example": {
                "test": None if example.get("test") is None else _clean(example.get("test"), NAME_CHARS),
                "message": texts.long(example.get("message"), MESSAGE_CHARS, keep_short=True),
            },
            "hint": _clean(p.get("hint") or "", MESSAGE_CHARS),
        })
    for t in tests:  # an attempt naming a pattern the list lacks still gets highlighted
        for a in _attempts(t):
            named = a.get("pattern")
            if named is not None and str(named) not in index:
                index[str(named)] = len(out)
                out.append({
                    "id": _clean(named, NAME_CHARS), "category": _clean(a.get("category") or "unknown", NAME_CHARS),
                    "scope": "test", "count": 0, "tests": 0, "names": [], "nodes": [], "hardware": [],
                    "hosts": [], "template": "", "example": {"test": None, "message": -1}, "hint": "",
                })
    return out, index


def _detail(a: Mapping[str, Any], texts: _Texts) -> dict[str, int]:
    """What the attempt's panel shows beyond its row: error, decision, actions (string refs)."""
    x: dict[str, int] = {}
    for key in ("phase", "rule"):
        if a.get(key) is not None:
            x[key] = texts.ref(a.get(key))
    error = a.get("error")
    if isinstance(error, Mapping):
        x["type"] = texts.ref(error.get("type") or "error")
        x["message"] = texts.long(error.get("message"), MESSAGE_CHARS, keep_short=True)
        for key, limit in (("traceback", TRACEBACK_CHARS), ("forensics", FORENSICS_CHARS),
                           ("stderr_tail", TRACEBACK_CHARS)):
            i = texts.long(error.get(key), limit)
            if i >= 0:
                x[key] = i
        teardown = error.get("teardown_error")
        if isinstance(teardown, Mapping):
            x["teardown"] = texts.long(
                f"{teardown.get('type') or 'error'}: {_safe_str(teardown.get('message'))}",
                MESSAGE_CHARS, keep_short=True,
            )
    elif error is not None:
        x["message"] = texts.long(error, MESSAGE_CHARS, keep_short=True)
    decision = a.get("decision")
    if isinstance(decision, Mapping):
        x["retry"] = 1 if decision.get("retry") else 0
        delay = _number(decision.get("delay"))
        if delay:
            x["delay"] = texts.ref(f"{delay:g}")
        x["decision"] = texts.ref(decision.get("reason") or "", MESSAGE_CHARS)
    actions = [
        " ".join(_safe_str(v) for v in (act.get("kind"), act.get("node"), act.get("hardware")) if v is not None)
        for act in _list(a.get("actions")) if isinstance(act, Mapping)
    ]
    if actions:
        x["actions"] = texts.ref(", ".join(actions), MESSAGE_CHARS)
    return x


def _test_info(t: Mapping[str, Any], texts: _Texts) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if t.get("reason"):
        info["reason"] = texts.ref(t.get("reason"), MESSAGE_CHARS)
    q = t.get("quarantine")
    if isinstance(q, Mapping):
        info["quarantine"] = {
            "reason": _clean(q.get("reason") or "", MESSAGE_CHARS),
            "score": _number(q.get("score")), "since": _number(q.get("since")),
        }
    poison = t.get("poison")
    if isinstance(poison, Mapping):
        info["poison"] = {k: _scalar(poison.get(k)) for k in ("role", "worker", "signature", "culprit", "victims")}
    repeat = t.get("repeat")
    if isinstance(repeat, Mapping):
        info["repeat"] = {k: _scalar(v) for k, v in repeat.items() if not isinstance(v, (list, dict))}
    history = t.get("history")
    if isinstance(history, Mapping):
        recent = history.get("recent")
        info["history"] = {
            "score": _number(history.get("score")),
            "runs": history.get("runs") if _is_int(history.get("runs")) else None,
            "recent": re.sub("[^PKFES]", "", recent)[-40:] if isinstance(recent, str) else "",
            "notes": [
                {"kind": _clean(n.get("kind"), NAME_CHARS), "text": texts.ref(n.get("text"), MESSAGE_CHARS)}
                for n in _list(history.get("annotations"))[:10] if isinstance(n, Mapping)
            ],
        }
    suspects = [
        f"{_safe_str(s.get('node'))} attempt {_safe_str(s.get('attempt'))}: "
        + ", ".join(_safe_str(n) for n in _list(s.get("tests"))[:10])
        for s in _list(t.get("suspects"))[:10] if isinstance(s, Mapping)
    ]
    if suspects:
        info["suspects"] = [texts.ref(s, MESSAGE_CHARS) for s in suspects]
    return info


def _run(run: Mapping[str, Any], texts: _Texts) -> dict[str, Any]:
    out = {k: _scalar(run.get(k)) for k in (
        "id", "label", "plugin", "pytest", "xdist", "start", "end", "duration", "exit_status",
        "collection_errors",
    )}
    out["args"] = _clean(" ".join(_safe_str(a) for a in _list(run.get("args"))), MESSAGE_CHARS)
    repeats = run.get("repeats")
    out["repeats"] = None if repeats is None else _clean(json.dumps(_scalar_tree(repeats)), MESSAGE_CHARS)
    return out


def _history(history: Any) -> dict[str, Any] | None:
    if not isinstance(history, Mapping):
        return None
    return {
        "file": _scalar(history.get("file")),
        "runs": _scalar(history.get("runs")),
        "known_tests": _scalar(history.get("known_tests")),
        "warning": _scalar(history.get("warning")),
        "quarantined": len(_list(history.get("quarantined"))),
        "events": [
            {"nodeid": _clean(e.get("nodeid"), NAME_CHARS), "decision": _clean(e.get("decision"), NAME_CHARS),
             "reason": _clean(e.get("reason"), MESSAGE_CHARS)}
            for e in _list(history.get("events"))[:LIST_CAP] if isinstance(e, Mapping)
        ],
    }


# -- marks: events drawn on the timeline -----------------------------------
_Located = tuple[int, int, Mapping[str, Any], "float | None", "float | None"]


class _Marks:
    """The marks of one run, and what placing them needs: each attempt's place and each
    worker's first start and last end (ms)."""

    __slots__ = ("located", "out", "spans", "tests", "texts", "windex", "workers")

    def __init__(self, workers: Sequence[Mapping[str, Any]], tests: Sequence[Mapping[str, Any]],
                 t0: float, texts: _Texts) -> None:
        self.workers = workers
        self.tests = tests
        self.texts = texts
        self.windex = {w["id"]: i for i, w in enumerate(workers)}
        self.spans: dict[str, tuple[float, float]] = {}
        self.located: list[_Located] = []  # (test, attempt, its dict, start, end)
        self.out: list[dict[str, Any]] = []
        for ti, t in enumerate(tests):
            for ai, a in enumerate(_attempts(t)):
                start, end = _times(a, t0)
                self.located.append((ti, ai, a, start, end))
                node = _clean(a.get("node"), NAME_CHARS)
                if start is not None and end is not None:
                    first, last = self.spans.get(node, (start, end))
                    self.spans[node] = (min(first, start), max(last, end))

    def last_end(self, worker: str) -> float | None:
        span = self.spans.get(worker)
        return None if span is None else span[1]

    def add(self, kind: str, worker: str | None, t: float | None, label: str, text: Any,
            test: int = -1, attempt: int = -1) -> None:
        self.out.append({
            "kind": kind, "worker": -1 if worker is None else self.windex.get(worker, -1),
            "t": None if t is None else round(t, 1), "test": test, "attempt": attempt,
            "label": _clean(label, NAME_CHARS),
            "text": self.texts.long(text, FORENSICS_CHARS, keep_short=True),
        })


def marks(
    report: Mapping[str, Any], workers: Sequence[Mapping[str, Any]], tests: Sequence[Mapping[str, Any]],
    t0: float, texts: _Texts,
) -> list[dict[str, Any]]:
    """[{kind, worker (index, -1: every lane), t (ms), test, attempt, label, text}] of the run.

    kinds: crash, lost, quarantine, poison, replacement, breaker. Where the report
    gives no time, the mark sits at the related attempt (see the module docstring)."""
    m = _Marks(workers, tests, t0, texts)
    dead = _crash_marks(m, report)
    poisoned = _poison_marks(m, report)
    claimed: set[str] = set()
    for worker, when in sorted({**dead, **poisoned}.items(), key=lambda kv: kv[1] or 0.0):
        repl = _replacement(worker, when, workers, m.spans, claimed)
        if repl is None:
            continue
        claimed.add(repl)
        why = "was poisoned" if worker in poisoned else "died"
        span = m.spans.get(repl)
        ran = f"its first test at {span[0] / 1000:.3f} s" if span else "it ran no test"
        m.add("replacement", repl, span[0] if span else when, f"{repl} replaces {worker}",
              f"{repl} is the first new worker on {worker}'s host after {worker} {why} ({ran})")
        m.out[-1]["replaces"] = worker
    _breaker_marks(m, report)
    return m.out


def _crash_marks(m: _Marks, report: Mapping[str, Any]) -> dict[str, float | None]:
    """Deaths (at the crashed attempt's end), quarantined and lost workers (at their last
    attempt's end); the dead workers and when they died."""
    dead: dict[str, float | None] = {}
    for ti, ai, a, start, end in m.located:
        error = _mapping(a.get("error"))
        if a.get("phase") == "crash" or error.get("forensics"):
            node = _clean(a.get("node"), NAME_CHARS)
            text = error.get("forensics") or error.get("message") or "the worker died"
            m.add("crash", node, end if end is not None else start, f"{node} died", text, ti, ai)
            dead.setdefault(node, end)
    for n in _list(report.get("nodes")):
        if not isinstance(n, Mapping) or n.get("id") is None:
            continue
        node = _clean(n["id"], NAME_CHARS)
        last = m.last_end(node)
        if _is_int(n.get("crashes")) and n["crashes"] and node not in dead:
            m.add("crash", node, last, f"{node} died", f"{node} crashed {n['crashes']} time(s) between tests")
            dead[node] = last
        if n.get("quarantined"):
            m.add("quarantine", node, last, f"{node} quarantined", n.get("quarantine_reason") or "quarantined")
        if n.get("lost"):
            m.add("lost", node, last, f"{node} lost", n.get("lost_reason") or "lost")
    lost = {mark["worker"] for mark in m.out if mark["kind"] == "lost"}
    for h in _list(report.get("lost_hosts")):
        if not isinstance(h, Mapping):
            continue
        host = _clean(h.get("host"), NAME_CHARS)
        for w in m.workers:
            if w["host"] == host and m.windex[w["id"]] not in lost:
                m.add("lost", w["id"], m.last_end(w["id"]), f"host {host} lost", h.get("reason") or "host lost")
    return dead


def _poison_marks(m: _Marks, report: Mapping[str, Any]) -> dict[str, float | None]:
    """Each poisoned worker, at its culprit's attempt there; the workers and when."""
    poisoned: dict[str, float | None] = {}
    for p in _list(report.get("poisoned")):
        if not isinstance(p, Mapping):
            continue
        culprit = p.get("culprit")
        victims = len(_list(p.get("victims")))
        for raw in (p.get("worker"), p.get("reproduced_on")):
            if raw is None:
                continue
            worker = _clean(raw, NAME_CHARS)
            hit = next((
                (ti, ai, end) for ti, ai, a, _s, end in m.located
                if m.tests[ti].get("nodeid") == culprit and _clean(a.get("node"), NAME_CHARS) == worker
            ), (-1, -1, m.last_end(worker)))
            m.add("poison", worker, hit[2], f"{worker} poisoned",
                  f"{_safe_str(p.get('signature'))}: culprit {_safe_str(culprit)}; {victims} victim(s) after it",
                  hit[0], hit[1])
            poisoned.setdefault(worker, hit[2])
    return poisoned


def _breaker_marks(m: _Marks, report: Mapping[str, Any]) -> None:
    """Each trip, at the end of the first attempt it stopped (else the pattern's last one)."""
    for b in _list(report.get("breaker")):
        if not isinstance(b, Mapping):
            continue
        reason, pattern = b.get("reason"), b.get("pattern")
        ends = [(end, ti, ai) for ti, ai, a, _s, end in m.located if end is not None and a.get("pattern") == pattern]
        stopped = [
            (end, ti, ai) for ti, ai, a, _s, end in m.located
            if end is not None and a.get("pattern") == pattern and _mapping(a.get("decision")).get("reason") == reason
        ]
        end, ti, ai = min(stopped) if stopped else (max(ends)[0], -1, -1) if ends else (None, -1, -1)
        m.add("breaker", None, end, f"breaker {_safe_str(pattern)}",
              f"{_safe_str(reason)} ({len(_list(b.get('tests')))} retries cancelled)", ti, ai)


def _replacement(
    dead: str, when: float | None, workers: Sequence[Mapping[str, Any]],
    spans: Mapping[str, tuple[float, float]], claimed: set[str],
) -> str | None:
    """The first worker on the dead one's host that started its tests after it died, else
    one there that ran no test and comes after it (xdist numbers a replacement next)."""
    ids = [w["id"] for w in workers]
    host = next((w["host"] for w in workers if w["id"] == dead), None)
    if when is None or host is None:
        return None
    free = [w["id"] for w in workers if w["host"] == host and w["id"] != dead and w["id"] not in claimed]
    started = [(spans[w][0], w) for w in free if w in spans and spans[w][0] >= when]
    if started:
        return min(started)[1]
    idle = [w for w in free if w not in spans and ids.index(w) > ids.index(dead)]
    return idle[0] if idle else None


def _link_replacements(workers: list[dict[str, Any]], mark_list: Sequence[Mapping[str, Any]]) -> None:
    """Name each replacement's predecessor on its lane, and the other way round."""
    by_id = {w["id"]: w for w in workers}
    for m in mark_list:
        if m["kind"] == "replacement" and m["worker"] >= 0:
            new = workers[m["worker"]]
            new["replaces"] = m["replaces"]
            if m["replaces"] in by_id:
                by_id[m["replaces"]]["replaced_by"] = new["id"]


# -- small helpers ---------------------------------------------------------
def _trim(row: list[Any], defaults: Sequence[Any]) -> list[Any]:
    """row without its trailing fields that equal the defaults of the last len(defaults)."""
    base = len(row) - len(defaults)
    end = len(row)
    while end > base and row[end - 1] == defaults[end - 1 - base]:
        end -= 1
    return row[:end]


def _attempts(t: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [a for a in _list(t.get("attempts")) if isinstance(a, Mapping)]


def _times(a: Mapping[str, Any], t0: float) -> tuple[float | None, float | None]:
    """(start, end) in ms from the run's start; None where the report has no time."""
    started, finished = _number(a.get("started")), _number(a.get("finished"))
    duration = _number(a.get("duration")) or 0.0
    if started is None and finished is not None:
        started = finished - duration
    if started is None:
        return None, None
    if finished is None or finished < started:
        finished = started + duration
    return _ms(started - t0), _ms(finished - t0)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def _outcome(value: Any, *, attempt: bool = False) -> int:
    if value in OUTCOMES and not (attempt and value == "flaky"):
        return OUTCOMES.index(value)
    return OUTCOMES.index("passed" if attempt and value == "flaky" else "error")


def _safe_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - report text is untrusted
        return f"<unprintable {type(value).__name__}>"


def _clean(value: Any, limit: int) -> str:
    """``value`` as text without lone surrogates or control characters, at most ~limit long."""
    text = _safe_str(value)
    if len(text) > limit:
        head = max(limit // 4, 1)
        tail = max(limit - head - 40, 1)
        text = f"{text[:head]}\n… [{len(text) - head - tail:,} characters cut] …\n{text[-tail:]}"
    return _BAD_CHARS.sub("\ufffd", text)


def _natural(text: str) -> list[Any]:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in _NATURAL.split(text) if p]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _scalar(value: Any) -> Any:
    """A JSON scalar of the report as the page may show it (text bounded and cleaned)."""
    if value is None or isinstance(value, bool) or _is_int(value):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return _clean(value if isinstance(value, str) else json.dumps(_scalar_tree(value)), MESSAGE_CHARS)


def _scalar_tree(value: Any, depth: int = 0) -> Any:
    """A small JSON-ready copy (depth and lengths capped) of an odd nested value."""
    if depth > 4:
        return "…"
    if isinstance(value, Mapping):
        return {_clean(k, 100): _scalar_tree(v, depth + 1) for k, v in list(value.items())[:LIST_CAP]}
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return [_scalar_tree(v, depth + 1) for v in list(value)[:LIST_CAP]]
    if value is None or isinstance(value, bool) or _is_int(value):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return _clean(value, MESSAGE_CHARS)
