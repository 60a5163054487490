"""A short Markdown summary of a report, for CI pages: ``--dtf-summary-md PATH``.

GitHub Actions shows ``$GITHUB_STEP_SUMMARY`` on the run's page; GitLab and
Buildkite users point the option at their own annotation files
(docs/reports.md). Formatted from the JSON report's dict, as the terminal is,
so the two agree. Every list is capped; every piece of report text is escaped
and cut, so hostile error text cannot break the page.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .terminal import counts_line, failures_by_category

__all__ = ["LIMIT", "summary_markdown", "write_summary_md"]

LIMIT = 10  # tests or patterns listed per block
TEXT_LIMIT = 200  # characters of one template or reason
GITHUB_ENV = "GITHUB_STEP_SUMMARY"
_SPECIAL = frozenset("\\`*_[]<>|~&")


def summary_markdown(report: Mapping[str, Any], *, limit: int = LIMIT) -> str:
    """The summary: counts, failures by category, new failures against known flaky, patterns,
    flaky and quarantined tests; each list at most ``limit`` long."""
    summary = report.get("summary") or {}
    tests: Sequence[Mapping[str, Any]] = report.get("tests") or []
    run = report.get("run") or {}
    status = run.get("exit_status")
    icon = "✅" if status == 0 else "❌" if status is not None else "ℹ️"
    out = [f"## {icon} pytest-dtf-errors: {_text(counts_line(summary))}", ""]
    facts = []
    if status is not None:
        facts.append(f"exit status {status}")
    if run.get("duration") is not None:
        facts.append(f"{run['duration']:.1f} s")
    workers = run.get("workers") or []
    if workers:
        hosts = {w.get("host") for w in workers if w.get("host")}
        facts.append(f"{len(workers)} workers" + (f" on {len(hosts)} hosts" if len(hosts) > 1 else ""))
    if summary.get("budget_used") or summary.get("retries"):
        budget = summary.get("budget")
        facts.append(f"retries {summary.get('budget_used', 0)}" + (f" of {budget}" if budget is not None else ""))
    if run.get("label"):
        facts.append(f"run {_code(str(run['label']))}")
    if facts:
        out += [" · ".join(facts), ""]

    by_cat = failures_by_category(tests)
    if by_cat:
        out += ["| category | failed attempts | tests |", "| --- | ---: | ---: |"]
        out += [f"| {_cell(cat)} | {n} | {t} |" for cat, (n, t) in by_cat.items()]
        out.append("")

    failed = [t for t in tests if t.get("outcome") in ("failed", "error") and not t.get("quarantine")]
    new = [t for t in failed if _kind(t) == "new_failure" or (t.get("repeat") or {}).get("verdict") == "new flaky"]
    known = [t for t in failed if _kind(t) == "known_flaky"]
    other = [t for t in failed if t not in new and t not in known]
    out += _block("New failures", new, limit, _why)
    out += _block("Known flaky, failed again", known, limit, _why)
    out += _block("Failed" if not (new or known) else "Other failures", other, limit, _why)
    out += _block("Flaky (passed on a retry)", [t for t in tests if t.get("outcome") == "flaky"], limit, _trail)
    quarantined = [t for t in tests if t.get("quarantine") and t.get("outcome") in ("failed", "error")]
    out += _block(
        "Quarantined (failed; the exit status ignores them)", quarantined, limit,
        lambda t: _text(str((t.get("quarantine") or {}).get("reason") or "")),
    )

    patterns = report.get("patterns") or []
    if patterns:
        out += [f"### Error patterns ({len(patterns)})", "",
                "| id | category | scope | count | tests | template | hint |",
                "| --- | --- | --- | ---: | ---: | --- | --- |"]
        for p in patterns[:limit]:
            out.append(
                f"| {_cell(p.get('id'))} | {_cell(p.get('category'))} | {_cell(p.get('scope'))} "
                f"| {p.get('count', 0)} | {p.get('distinct_tests', 0)} | {_code(str(p.get('template') or ''), table=True)} "
                f"| {_cell(p.get('hint'))} |"
            )
        out += _more(len(patterns), limit, "patterns")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_summary_md(path: str, report: Mapping[str, Any], *, append: bool) -> None:
    """Write (or, for ``$GITHUB_STEP_SUMMARY``, append) the summary to ``path``."""
    text = summary_markdown(report)
    with open(path, "a" if append else "w", encoding="utf-8") as f:
        if append and f.tell():
            f.write("\n")
        f.write(text)


def summary_target(asked: str | None, invocation_dir: str, environ: Mapping[str, str] = os.environ) -> tuple[str, bool] | None:
    """(the file, append to it) that ``--dtf-summary-md`` names, or ``$GITHUB_STEP_SUMMARY``; None for none."""
    if asked is not None and asked.strip().lower() == "off":
        return None
    if asked:
        return (asked if os.path.isabs(asked) else os.path.join(invocation_dir, asked)), False
    github = environ.get(GITHUB_ENV)
    return (github, True) if github else None


def _kind(t: Mapping[str, Any]) -> str | None:
    notes = (t.get("history") or {}).get("annotations") or ()
    return str(notes[0].get("kind")) if notes else None


def _why(t: Mapping[str, Any]) -> str:
    notes = [str(a.get("text")) for a in (t.get("history") or {}).get("annotations") or ()]
    repeat = t.get("repeat") or {}
    if repeat.get("verdict") == "new flaky":
        notes.insert(0, f"new flaky: {repeat.get('passed')} of {repeat.get('runs')} runs passed")
    if t.get("reason") and not notes:
        notes.append(str(t["reason"]))
    if not notes:
        notes.append(_trail(t))
    return _text("; ".join(notes))


def _trail(t: Mapping[str, Any]) -> str:
    attempts = t.get("attempts") or []
    parts = [f"{a.get('node')} {a.get('outcome')}" + (f" [{a.get('category')}]" if a.get("outcome") in ("failed", "error") and a.get("category") else "")
             for a in attempts[:5]]
    if len(attempts) > 5:
        parts.append(f"... {len(attempts) - 5} more")
    return _text(" → ".join(parts))


def _block(title: str, tests: Sequence[Mapping[str, Any]], limit: int, say: Any) -> list[str]:
    if not tests:
        return []
    out = [f"### {title} ({len(tests)})", ""]
    out += [f"- {_code(str(t.get('nodeid')))}: {say(t)}" for t in tests[:limit]]
    out += _more(len(tests), limit, "tests")
    out.append("")
    return out


def _more(total: int, limit: int, what: str) -> list[str]:
    return [f"- … and {total - limit} more {what} (the JSON report has them all)"] if total > limit else []


def _text(value: str) -> str:
    """Report text made inert in Markdown and HTML, on one line, cut to TEXT_LIMIT."""
    one = _one_line(value)
    # backslash escapes (GFM): no emphasis, link, code span, HTML tag, entity or table cell
    # can start in it; the rest of the punctuation is inert after "- `nodeid`: "
    return "".join(
        f"\\{ch}" if ch in _SPECIAL else ch if ch.isprintable() else "?" for ch in one
    )


def _one_line(value: str) -> str:
    """``value`` on one line, cut to TEXT_LIMIT (only a bounded head of it is read)."""
    one = " ".join(value[: TEXT_LIMIT * 4].split())
    return one if len(one) <= TEXT_LIMIT else one[: TEXT_LIMIT - 1] + "…"


def _cell(value: object) -> str:
    return _text("" if value is None else str(value))


def _code(value: str, *, table: bool = False) -> str:
    """A code span that no backtick or newline in ``value`` can end early (nor a pipe a table cell)."""
    one = _one_line(value)
    one = "".join(ch if ch.isprintable() else "?" for ch in one)
    if table:
        one = one.replace("|", "\\|")  # GFM: a pipe ends a cell, also in a code span
    fence = "`" * (max((len(run) for run in _backtick_runs(one)), default=0) + 1)
    pad = " " if one.startswith("`") or one.endswith("`") else ""
    return f"{fence}{pad}{one}{pad}{fence}"


def _backtick_runs(text: str) -> list[str]:
    runs: list[str] = []
    current = ""
    for ch in text:
        if ch == "`":
            current += ch
        elif current:
            runs.append(current)
            current = ""
    if current:
        runs.append(current)
    return runs
