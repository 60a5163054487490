"""Memory across runs: the history store, the flakiness score and a failure's annotations.

Standalone for now; the plugin writes a run at session end and reads
``read_tests()`` at start. The default file is ``history.sqlite`` in pytest's
cache dir under ``dtf`` (``config.cache.mkdir("dtf")``), which is
``.pytest_cache/d/dtf/history.sqlite`` under the rootdir unless ``cache_dir``
moves it; the CLI's default is that path under the current directory.
"""

from __future__ import annotations

from .ingest import derive_run_id, fingerprint, load_report, run_from_report
from .score import DECAY, Annotation, annotate_failure, concentration, fold, score_of_outcomes
from .store import (
    SCHEMA_VERSION,
    FailureStats,
    HistoryStore,
    HistoryUnusable,
    OpenedHistory,
    PastRun,
    QuarantineState,
    SQLiteHistory,
    fresh_path_beside,
    open_history,
    write_with_fallback,
)
from .values import (
    AttemptRecord,
    QuarantineEvent,
    RunRecord,
    TestAggregate,
    TestIndex,
    TestResult,
)

__all__ = [
    "DECAY",
    "DEFAULT_PATH",
    "SCHEMA_VERSION",
    "Annotation",
    "AttemptRecord",
    "FailureStats",
    "HistoryStore",
    "HistoryUnusable",
    "OpenedHistory",
    "PastRun",
    "QuarantineEvent",
    "QuarantineState",
    "RunRecord",
    "SQLiteHistory",
    "TestAggregate",
    "TestIndex",
    "TestResult",
    "annotate_failure",
    "concentration",
    "derive_run_id",
    "fingerprint",
    "fold",
    "fresh_path_beside",
    "load_report",
    "open_history",
    "run_from_report",
    "score_of_outcomes",
    "write_with_fallback",
]

# relative to the current directory (the CLI) or the rootdir (pytest's cache dir)
DEFAULT_PATH = ".pytest_cache/d/dtf/history.sqlite"
