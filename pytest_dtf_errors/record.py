"""Temporary: the error record moved to ``pytest_dtf_errors.engine.record``.

Kept for the importers that are being rewritten (controller, distributed, plugin);
import from ``pytest_dtf_errors.engine.record``. This module goes with them.
"""

from __future__ import annotations

from .engine.record import *
from .engine.record import (
    CRASH_TYPES,
    CRASH_WORDS,
    MAX_CHAIN,
    MAX_FRAMES,
    MAX_GROUP_MEMBERS,
    MAX_MESSAGE,
    MAX_MRO,
    MAX_STDERR,
    MAX_TRACEBACK,
    MAX_TYPE,
    RECORD_FIELDS,
    WORKER_LOST,
    ErrorRecord,
    Frame,
    HardwareContext,
    crash,
    cut,
    encodable,
    from_exception,
    from_longrepr,
    from_wire,
    safe_str,
    to_wire,
    wire_safe,
)

__all__ = [
    "CRASH_TYPES",
    "CRASH_WORDS",
    "MAX_CHAIN",
    "MAX_FRAMES",
    "MAX_GROUP_MEMBERS",
    "MAX_MESSAGE",
    "MAX_MRO",
    "MAX_STDERR",
    "MAX_TRACEBACK",
    "MAX_TYPE",
    "RECORD_FIELDS",
    "WORKER_LOST",
    "ErrorRecord",
    "Frame",
    "HardwareContext",
    "crash",
    "cut",
    "encodable",
    "from_exception",
    "from_longrepr",
    "from_wire",
    "safe_str",
    "to_wire",
    "wire_safe",
]
