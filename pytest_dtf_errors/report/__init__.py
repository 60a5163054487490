"""Reports read from the one ledger: terminal summary, JSON report, JUnit XML."""

from .json_report import build_report, validate, write_atomic
from .junit import rewrite as rewrite_junit
from .terminal import pattern_table, summary_lines, write_summary

__all__ = [
    "build_report",
    "pattern_table",
    "rewrite_junit",
    "summary_lines",
    "validate",
    "write_atomic",
    "write_summary",
]
