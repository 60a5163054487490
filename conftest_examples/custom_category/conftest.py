"""A custom category in the guide's subclass style, chosen by pytest_dtf_classify."""

from __future__ import annotations

from pytest_dtf_errors.engine import ErrorCategory


class CustomErrorCategory(ErrorCategory):
    """The guide's way: a subclass adds members; ErrorCategory.CUSTOM_ERROR resolves too."""

    CUSTOM_ERROR = "custom_error"


def pytest_dtf_classify(error, context, config):
    """Decide before the built-in rules; None lets the next rule decide."""
    if error.get("type") == "LicenseError":
        return CustomErrorCategory.CUSTOM_ERROR
    return None


def pytest_dtf_report(report, config):
    """Add to the JSON report (--dtf-report) before it is written: failures per category of ours."""
    ours = ("custom_error", "quota_exceeded")
    report["custom_failures"] = {
        c: sum(a["category"] == c for t in report["tests"] for a in t["attempts"]) for c in ours
    }
