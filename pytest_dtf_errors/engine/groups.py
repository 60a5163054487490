"""Exception groups: which members a bounded error record keeps (stdlib only).

Used by the one record builder (``engine.record``), which workers import
without the rest of the engine.
"""

from __future__ import annotations

# Member types recorded first when a group has more members than a record keeps.
_DECISIVE_TYPES = (AssertionError, SyntaxError, ImportError)
_MAX_GROUP_SCAN = 10_000


def _decisive(exc: BaseException, depth: int) -> bool:
    if isinstance(exc, _DECISIVE_TYPES) or type(exc).__name__ == "Failed":
        return True
    members = getattr(exc, "exceptions", None)
    if depth <= 0 or not isinstance(members, (list, tuple)):
        return False
    return any(isinstance(m, BaseException) and _decisive(m, depth - 1)
               for m in members[:_MAX_GROUP_SCAN])


def group_members(exc: BaseException, limit: int, depth: int) -> list[BaseException]:
    """Up to ``limit`` members of an exception group: those that may fail the test
    (assertion, syntax, import, pytest.fail, or a group holding one, ``depth`` levels
    down) first, then the others, each in the group's order, so the classifier sees
    them wherever they stand."""
    members = getattr(exc, "exceptions", None)
    if not isinstance(members, (list, tuple)):
        return []
    members = [m for m in members[:_MAX_GROUP_SCAN] if isinstance(m, BaseException)]
    if len(members) <= limit:
        return members
    first = [m for m in members if _decisive(m, depth)]
    return (first + [m for m in members if not _decisive(m, depth)])[:limit]
