"""What dtf writes on a pytest report, listed once, with one typed way in and out.

``dtf_error`` is the failure's error record (built on the worker, or by the
controller for a dead worker); the flags say what dtf made of the report.
They travel in the report's ``__dict__`` (xdist serializes it whole), so
they are plain attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pytest

    from .engine.record import ErrorRecord

__all__ = ["Flag", "error", "mark", "marked", "set_error"]

Flag = Literal[
    "dtf_synthetic",  # made up by the controller (not run, cancelled, unplaceable)
    "dtf_flaky",  # the call passed on a retry after a failed attempt
    "dtf_victim",  # the call passed on a fresh worker after a poisoned one failed it
    "dtf_hidden",  # a lost worker's test that had passed: shown once already
    "dtf_peer_marked",  # @pytest.mark.flaky: the peer retry plugin owns it
    "dtf_quarantined",  # the failure of a quarantined test: the exit status ignores it
]
ERROR = "dtf_error"


def mark(report: pytest.TestReport, flag: Flag) -> None:
    setattr(report, flag, True)


def marked(report: pytest.TestReport, flag: Flag) -> bool:
    return bool(vars(report).get(flag))


def set_error(report: pytest.TestReport, record: ErrorRecord | dict[str, object]) -> None:
    setattr(report, ERROR, record)


def error(report: pytest.TestReport) -> ErrorRecord | None:
    """The report's error record, checked: it may come from an untrusted worker."""
    data = vars(report).get(ERROR)
    if data is None:
        return None
    from .engine.record import from_wire

    return from_wire(data)
