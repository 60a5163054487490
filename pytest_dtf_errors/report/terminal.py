"""The end-of-session "dtf error summary": lines formatted from the report dict.

The terminal formats exactly what `json_report.build_report` returns, and
`python -m pytest_dtf_errors.report` formats a saved report with the same
functions, so the screen, the file and a CI artifact read back agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..ledger import Ledger
from .json_report import build_report, default_hint, normalize_pattern

Line = tuple[str, dict[str, bool]]

DEFAULT_WIDTH = 80
SHORT_LIMIT = 5  # tests / patterns listed per block without -v
SECTION_TITLE = "dtf error summary"
_OUTCOME_ORDER = ("failed", "error", "flaky", "passed", "skipped")


# -- entry points ------------------------------------------------------------
def summary_lines(
    ledger: Ledger,
    patterns: list[dict[str, Any]],
    *,
    verbose: int,
    budget: int | None,
    width: int = DEFAULT_WIDTH,
    history: Mapping[str, Any] | None = None,
) -> list[Line]:
    """Lines (text, TerminalWriter markup) of the summary; [] when there is nothing to say."""
    if ledger.quiet() and not (history and history.get("events")):
        return []  # the common case: skip building the whole report
    report = build_report(ledger, patterns, run_info={}, history=history)
    if budget is not None:
        report["summary"]["budget"] = budget
    return report_lines(report, verbose=verbose, width=width)


def write_summary(
    terminalreporter: Any,
    ledger: Ledger,
    patterns: list[dict[str, Any]],
    *,
    verbose: int,
    budget: int | None,
    history: Mapping[str, Any] | None = None,
    extra: Sequence[str] = (),
) -> None:
    """Write the "dtf error summary" section to pytest's terminal reporter, if any;
    ``extra`` lines (the repeats') end it, and are shown in a run with nothing else to say."""
    tw = getattr(terminalreporter, "_tw", None)
    width = getattr(tw, "fullwidth", None) or DEFAULT_WIDTH
    lines = summary_lines(ledger, patterns, verbose=verbose, budget=budget, width=width, history=history)
    lines += [(line, {}) for line in extra]
    if not lines:
        return
    terminalreporter.write_sep("=", SECTION_TITLE)
    for text, markup in lines:
        terminalreporter.write_line(text, **markup)


# -- formatting a report dict ------------------------------------------------
def report_lines(report: Mapping[str, Any], *, verbose: int, width: int) -> list[Line]:
    """The summary of a report dict (built or loaded); [] when nothing failed or retried."""
    if _quiet(report):
        return []
    summary = report.get("summary", {})
    tests = report.get("tests", [])
    full = verbose >= 1
    limit = None if full else SHORT_LIMIT
    out: list[Line] = [(counts_line(summary), _counts_markup(summary))]
    out += [(line, {"red": True}) for line in poison_lines(report, full)]

    by_cat = failures_by_category(tests)
    if by_cat:
        parts = [f"{cat} {n} ({t} test{'s' * (t != 1)})" for cat, (n, t) in by_cat.items()]
        out.append(("failures by category: " + ", ".join(parts), {"red": True}))

    flaky = [t for t in tests if t.get("outcome") == "flaky"]
    if flaky:
        out.append((f"flaky tests ({len(flaky)}):", {"yellow": True, "bold": True}))
        out += _test_block(flaky, full, limit, width)
    quarantined = [t for t in tests if t.get("quarantine") and t.get("outcome") in ("failed", "error")]
    if quarantined:
        out.append((
            f"quarantined tests ({len(quarantined)}): failed, and the exit status ignores it",
            {"yellow": True, "bold": True},
        ))
        out += _test_block(quarantined, full, limit, width)
    failed = [
        t
        for t in tests
        if t.get("outcome") in ("failed", "error") and not t.get("quarantine")
        and (full or len(t.get("attempts") or ()) > 1 or t.get("reason") or t.get("history"))
    ]
    if failed:
        title = "failed tests" if full else "failed after retries or not run"
        out.append((f"{title} ({len(failed)}):", {"red": True, "bold": True}))
        out += _test_block(failed, full, limit, width)

    out += [(line, {}) for line in retry_lines(report, full)]

    patterns = report.get("patterns") or []
    if patterns:
        out.append((f"error patterns ({len(patterns)}):", {"bold": True}))
        out += [(line, {}) for line in pattern_table(patterns, width, limit=limit)]

    out += [(line, {"yellow": True}) for line in infrastructure_lines(report)]
    out += [(line, {}) for line in history_lines(report)]
    return out


def history_lines(report: Mapping[str, Any]) -> list[str]:
    """The history's line: what it knew, and this run's quarantine decisions."""
    h = report.get("history")
    if not isinstance(h, Mapping) or not (h.get("runs") or h.get("events") or h.get("warning")):
        return []  # a first run: nothing known, nothing decided
    lines = [f"history: {h.get('runs', 0)} earlier runs of {h.get('known_tests', 0)} tests in {h.get('file')}"]
    for e in h.get("events") or ():
        verb = "quarantined" if e.get("decision") == "quarantine" else "released"
        lines.append(f"  {verb} {e.get('nodeid')}: {_one_line(e.get('reason'))}")
    return lines


def counts_line(summary: Mapping[str, Any]) -> str:
    """'2 failed, 1 flaky, 7 passed' in pytest's order, zero counts left out."""
    parts = [
        f"{summary[k]} {k}{'s' * (k == 'error' and summary[k] != 1)}"  # pytest's "2 errors"
        for k in _OUTCOME_ORDER
        if summary.get(k)
    ]
    quarantined = summary.get("quarantined")
    if quarantined and summary.get("failed"):
        parts[[p.endswith(" failed") for p in parts].index(True)] += f" ({quarantined} of them quarantined)"
    victims = summary.get("victims")
    if victims and summary.get("passed"):
        parts[[p.endswith(" passed") for p in parts].index(True)] += f" ({victims} of them victims)"
    total = summary.get("total")
    text = ", ".join(parts) or "no tests"
    return f"{text} (of {total} tests)" if total is not None else text


def failures_by_category(tests: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """category -> (failed attempts, distinct tests), most frequent first."""
    attempts: Counter[str] = Counter()
    in_tests: dict[str, set[str]] = {}
    for t in tests:
        for a in t.get("attempts") or ():
            if a.get("outcome") in ("failed", "error"):
                cat = a.get("category") or "uncategorized"
                attempts[cat] += 1
                in_tests.setdefault(cat, set()).add(t.get("nodeid", ""))
    return {cat: (n, len(in_tests[cat])) for cat, n in attempts.most_common()}


def retry_lines(report: Mapping[str, Any], full: bool) -> list[str]:
    """Retries used out of the budget, and what the breaker cancelled."""
    s = report.get("summary", {})
    lines = []
    used, budget, retries = s.get("budget_used", 0), s.get("budget"), s.get("retries", 0)
    if used or retries:
        of = f" of budget {budget}" if budget is not None else ""
        if budget is not None and s.get("budget_note"):
            of += f" ({s['budget_note']})"
        extra = f" ({retries} re-runs in all)" if retries != used else ""
        lines.append(f"retries: {used} used{of}{extra}")
    for trip in report.get("breaker") or ():
        cancelled = list(trip.get("tests") or ())
        lines.append(
            f"breaker: pattern {trip.get('pattern')} cancelled {len(cancelled)} "
            f"retr{'y' if len(cancelled) == 1 else 'ies'}: {trip.get('reason')}"
        )
        shown = cancelled if full else cancelled[:SHORT_LIMIT]
        lines += [f"  {nodeid}" for nodeid in shown]
        if len(shown) < len(cancelled):
            lines.append(f"  ... and {len(cancelled) - len(shown)} more (-v for all)")
    return lines


def poison_lines(report: Mapping[str, Any], full: bool) -> list[str]:
    """Each poisoned worker as one problem: its culprit, then what became of its victims."""
    poisoned = report.get("poisoned") or []
    if not poisoned:
        return []
    outcome = {t.get("nodeid"): t.get("outcome") for t in report.get("tests") or ()}
    lines = [f"poisoned workers ({len(poisoned)}): one sticky GPU error each, not one failure per test"]
    for p in poisoned:
        culprit, victims = p.get("culprit"), list(p.get("victims") or ())
        lines.append(f"  {p.get('worker')}: {p.get('signature')}, first hit by {culprit} (the suspected culprit)")
        n = f"{len(victims)} test{'s' * (len(victims) != 1)}"
        if p.get("worker") == "local":
            lines.append(f"    the rest of the session ran in a poisoned GPU context: {n} failed after it")
        elif victims:
            passed = sum(1 for v in victims if outcome.get(v) == "passed")
            lines.append(f"    {n} failed after it there (its victims): {passed} passed on fresh workers")
        if victims and full:
            lines += [f"      {v}: {outcome.get(v)}" for v in victims]
        if p.get("reproduced_on"):
            lines.append(f"    it poisoned {p['reproduced_on']} too: reproduced on a fresh worker")
        elif outcome.get(culprit) == "flaky":
            lines.append("    it passed on a fresh worker: flaky")
    return lines


def infrastructure_lines(report: Mapping[str, Any]) -> list[str]:
    """Quarantined workers, unavailable (worker, hardware) pairs, lost hosts."""
    lines = []
    quarantined = [n for n in report.get("nodes") or () if n.get("quarantined")]
    if quarantined:
        parts = []
        for n in quarantined:
            why = n.get("quarantine_reason")
            crashes = n.get("crashes") or 0
            detail = "; ".join(
                x for x in (f"{crashes} crash{'es' * (crashes != 1)}" if crashes else "", why) if x
            )
            parts.append(f"{n.get('id')} ({detail})" if detail else str(n.get("id")))
        lines.append("quarantined workers: " + ", ".join(parts))
    declined = [n for n in report.get("nodes") or () if n.get("quarantine_declined")]
    for n in declined:
        lines.append(f"not quarantined: {n.get('id')} ({n['quarantine_declined']})")
    unavailable = report.get("unavailable") or []
    if unavailable:
        pairs = ", ".join(f"{u.get('node')}: {u.get('hardware')}" for u in unavailable)
        lines.append("unavailable hardware: " + pairs)
    exclusive = report.get("exclusive") or []
    if exclusive:
        drained = sum(float(e.get("drained_seconds") or 0) for e in exclusive)
        ran_on = sorted({str(e.get("host")) for e in exclusive})
        lines.append(
            f"exclusive tests: {len(exclusive)} ran alone on their host ({', '.join(ran_on)}); "
            f"draining the host's other workers took {drained:.1f} s"
        )
    lost = report.get("lost_hosts") or []
    if lost:
        hosts = ", ".join(
            f"{h.get('host')} ({h.get('reason')})" if h.get("reason") else str(h.get("host"))
            for h in lost
        )
        lines.append("lost hosts: " + hosts)
    return lines


# -- the pattern table ---------------------------------------------------------
_COLUMNS = (  # header, max width, right-aligned
    ("id", 12, False),
    ("category", 26, False),
    ("count", 6, True),
    ("tests", 6, True),
    ("workers", 16, False),
    ("hardware", 14, False),
    ("scope", 8, False),
)
_MIN_TEMPLATE = 30  # narrower than this, the template gets a line of its own


def pattern_table(
    patterns: Sequence[Mapping[str, Any]], width: int = DEFAULT_WIDTH, *, limit: int | None = None
) -> list[str]:
    """An ASCII table of error patterns, each row followed by its example and hint.

    The template column takes the width left over; on a terminal too narrow
    for that it moves to a line of its own under its row. `limit` keeps the
    largest patterns and says how many were left out.
    """
    rows = sorted((normalize_pattern(p) for p in patterns), key=lambda p: -p["count"])
    shown = rows if limit is None else rows[:limit]
    cells = [
        [
            str(p["id"]),
            p["category"],
            str(p["count"]),
            str(p["distinct_tests"]),
            _names(p["nodes"]),
            _names(p["hardware"]),
            p["scope"],
        ]
        for p in shown
    ]
    widths = [
        min(cap, max([len(header)] + [len(row[i]) for row in cells]))
        for i, (header, cap, _) in enumerate(_COLUMNS)
    ]
    template_width = width - sum(widths) - len(widths)
    inline = template_width >= _MIN_TEMPLATE

    def render(values: Sequence[str], template: str) -> str:
        out = []
        for value, w, (_, _, right) in zip(values, widths, _COLUMNS):
            value = _clip(value, w)
            out.append(value.rjust(w) if right else value.ljust(w))
        if inline:
            out.append(_clip(template, template_width))
        return " ".join(out).rstrip()

    lines = [render([h for h, _, _ in _COLUMNS], "template")]
    longest = max([len("template")] + [len(_one_line(p["template"])) for p in shown])
    lines.append(render(["-" * w for w in widths], "-" * min(template_width, longest)))
    for p, row in zip(shown, cells):
        lines.append(render(row, _one_line(p["template"])))
        if not inline:
            lines.append(_clip("    template: " + _one_line(p["template"]), width))
        example = p.get("example") or {}
        if example.get("test") or example.get("message"):
            text = ": ".join(str(x) for x in (example.get("test"), example.get("message")) if x)
            lines.append(_clip("    e.g. " + _one_line(text), width))
        lines.append(_clip("    hint: " + _one_line(p.get("hint") or default_hint(p)), width))
    if len(shown) < len(rows):
        lines.append(f"... and {len(rows) - len(shown)} more patterns (-v for all)")
    return lines


# -- helpers -------------------------------------------------------------------
def _quiet(report: Mapping[str, Any]) -> bool:
    s = report.get("summary", {})
    if s.get("failed") or s.get("error") or s.get("flaky"):
        return False
    if (
        s.get("retries") or s.get("budget_used") or report.get("breaker") or report.get("poisoned")
        or report.get("exclusive")
    ):
        return False
    if infrastructure_lines(report):
        return False
    if (report.get("history") or {}).get("events"):
        return False
    return not any(
        a.get("outcome") in ("failed", "error")
        for t in report.get("tests") or ()
        for a in t.get("attempts") or ()
    )


def _counts_markup(summary: Mapping[str, Any]) -> dict[str, bool]:
    if summary.get("failed") or summary.get("error"):
        return {"red": True, "bold": True}
    if summary.get("flaky"):
        return {"yellow": True, "bold": True}
    return {"green": True, "bold": True}


def _test_block(
    tests: Sequence[Mapping[str, Any]], full: bool, limit: int | None, width: int
) -> list[Line]:
    shown = tests if limit is None else tests[:limit]
    out: list[Line] = []
    for t in shown:
        attempts = t.get("attempts") or []
        head = f"  {t.get('nodeid')}: {len(attempts)} attempt{'s' * (len(attempts) != 1)}"
        repeat = t.get("repeat")
        if repeat and not full:  # its runs, summed up: a trail of 50 runs says less
            from ..session.repeats import describe

            out.append((_clip(f"  {t.get('nodeid')}: {describe(repeat)}", width), {}))
        elif not full:
            trail = _trail(attempts)
            out.append((f"{head}: {trail}" if trail else head, {}))
        else:
            out.append((head, {}))
            for a in attempts:
                head_line, *message = _attempt_full(a)  # the message is clipped, not the facts
                out.append((head_line, {}))
                out += [(_clip(text, width), {}) for text in message]
        if t.get("reason"):
            out.append((_clip(f"    reason: {_one_line(t['reason'])}", width), {}))
        quarantine = t.get("quarantine")
        if quarantine:
            out.append((_clip(f"    quarantined: {_one_line(quarantine.get('reason'))}", width), {}))
        for note in (t.get("history") or {}).get("annotations") or ():
            out.append((_clip(f"    history: {_one_line(note.get('text'))}", width), {}))
        for s in t.get("suspects") or ():
            names = list(s.get("tests") or ())
            text = ", ".join(names if full else names[:3]) + (", ..." if not full and len(names) > 3 else "")
            line = f"    ran after, on {s.get('node')} (nearest first): {text}"
            out.append((line if full else _clip(line, width), {}))
    if len(shown) < len(tests):
        out.append((f"  ... and {len(tests) - len(shown)} more (-v for all)", {}))
    return out


def _trail(attempts: Sequence[Mapping[str, Any]]) -> str:
    """'gw0 failed [network_timeout] -> gw1 passed'; a repeated category is named once."""
    parts, last = [], None
    for a in attempts:
        text = f"{a.get('node')} {a.get('outcome')}"
        category = a.get("category") if a.get("outcome") in ("failed", "error") else None
        if category and category != last:
            text += f" [{category}]"
        last = category
        parts.append(text)
    return " -> ".join(parts)


def _attempt_full(a: Mapping[str, Any]) -> list[str]:
    """An attempt's where, what and decision; its error message on a second line."""
    where = str(a.get("node"))
    if a.get("host"):
        where += f"@{a['host']}"
    if a.get("hardware"):
        where += f" ({','.join(a['hardware'])})"
    text = f"    #{a.get('attempt')} {where}: {a.get('outcome')}"
    if a.get("phase") and a.get("outcome") in ("failed", "error"):
        text += f" in {a['phase']}"
    if a.get("category"):
        text += f" [{a['category']}" + (f" by {a['rule']}" if a.get("rule") else "") + "]"
    text += f" {a.get('duration') or 0:.2f}s"
    decision = a.get("decision")
    if decision:
        if decision.get("retry"):
            text += f" -> retry after {decision.get('delay') or 0:g}s"
        else:
            text += " -> no retry"
        if decision.get("reason"):
            text += f" ({decision['reason']})"
    lines = [text]
    error = a.get("error") or {}
    message = ": ".join(str(x) for x in (error.get("type"), error.get("message")) if x)
    if message:
        lines.append(f"       {_one_line(message)}")
    return lines


def _names(values: Sequence[str]) -> str:
    if not values:
        return "-"
    joined = ",".join(values)
    return joined if len(joined) <= 16 else f"{len(values)} ({values[0]},...)"


def _one_line(text: Any) -> str:
    return " ".join(str(text)[:4096].split())  # bounded: error text can be any size


def _clip(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    return text[: width - 3] + "..."
