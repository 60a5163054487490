"""`python -m pytest_dtf_errors.report errors.json`: print a saved report.

Reads a --dtf-report file (a CI artifact, say) and prints its summary counts
and pattern table with the terminal summary's own formatting; with
``--html out.html`` it writes the HTML report of it instead (the page
``--dtf-html`` writes). Exit status 0,
or 2 with a one-line message when the file is missing or not a valid report,
or 141 (128 + SIGPIPE, as a shell reports for ``| head``) when the reader of
its output went away.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any

from .json_report import read_json, validate
from .terminal import counts_line, report_lines

EXIT_BROKEN_PIPE = 141


def load(path: str) -> dict[str, Any]:
    """The report at path, validated; ValueError with a message saying what is wrong."""
    data = read_json(path)
    try:
        validate(data)
    except ValueError as exc:
        raise ValueError(f"{path} is not a pytest-dtf-errors report: {exc}") from None
    return data  # type: ignore[no-any-return]


def run_line(run: dict[str, Any]) -> str:
    """One line on where the report came from."""
    versions = ", ".join(
        f"{name} {run[key]}"
        for key, name in (("plugin", "pytest-dtf-errors"), ("pytest", "pytest"), ("xdist", "xdist"))
        if run.get(key)
    )
    workers = len(run.get("workers") or ())
    return f"run: {versions or 'versions unknown'}; {run.get('start')} -> {run.get('end')}; {workers} worker{'s' * (workers != 1)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_dtf_errors.report",
        description="Print the summary and error-pattern table of a saved --dtf-report file, "
        "or write its HTML report (--html).",
    )
    parser.add_argument("report", help="the JSON file written by --dtf-report")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="every test and pattern")
    parser.add_argument(
        "--width", type=int, default=None, help="line width (default: the terminal's)"
    )
    parser.add_argument(
        "--html", metavar="PATH", default=None,
        help="write the HTML report (timeline, patterns, tests) to PATH instead of printing",
    )
    args = parser.parse_args(argv)
    try:
        report = load(args.report)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.html:
        from .html import write_html

        try:
            write_html(args.html, report)
        except OSError as exc:
            print(f"error: HTML report not written: {exc}", file=sys.stderr)
            return 2
        print(f"HTML report: {args.html}")
        return 0
    width = args.width or shutil.get_terminal_size((80, 24)).columns
    lines = report_lines(report, verbose=args.verbose, width=width)
    if not lines:
        lines = [(counts_line(report["summary"]), {})]
    try:
        print(f"dtf report: {args.report}")
        print(run_line(report["run"]))
        for text, _markup in lines:
            print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader left (`| head`): end as a tool ended by SIGPIPE does, without a
        # traceback, and send what Python would flush at exit to /dev/null
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return 0


if __name__ == "__main__":
    sys.exit(main())
