"""ErrorCategory: the 21 categories of the guide, extensible from Python and config.

A plain ``enum.Enum`` with members cannot be subclassed, yet the guide extends
the categories with ``class CustomErrorCategory(ErrorCategory)``. So categories
are ``str`` instances created by a metaclass: UPPER_CASE string attributes of
``ErrorCategory`` or any subclass become members of one shared registry, and
every member is also set on ``ErrorCategory`` itself, so after the subclass is
defined ``ErrorCategory.CUSTOM_ERROR`` resolves to the same object.

Members compare and hash like their value (``"network_timeout"``), so they
serialize to JSON as that value and work as dict keys next to plain strings.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

__all__ = ["FAMILIES", "ErrorCategory", "UnknownCategoryError"]

FAMILIES = ("resource", "network", "test", "hardware", "worker", "system", "other", "custom")

_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_BUILTIN_FAMILY = {
    "RESOURCE": "resource",
    "NETWORK": "network",
    "TEST": "test",
    "HARDWARE": "hardware",
    "WORKER": "worker",
    "SYSTEM": "system",
}


class UnknownCategoryError(KeyError, ValueError):
    """Raised by ``ErrorCategory.lookup`` for a name or value that is not a category."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown category"


def _value(value: str) -> Any:
    """Declare a member in a class body (typed as the member for type checkers)."""
    return value


class _CategoryMeta(type):
    """Turns UPPER_CASE str class attributes into members of one shared registry."""

    _by_name: ClassVar[dict[str, Any]] = {}
    _by_value: ClassVar[dict[str, Any]] = {}
    _root: ClassVar[Any] = None
    _sealed: ClassVar[bool] = False  # set once the built-in members exist
    _lock: ClassVar[threading.RLock] = threading.RLock()

    def __new__(mcls, cls_name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        declared = {
            k: v for k, v in ns.items() if _NAME_RE.match(k) and isinstance(v, str)
        }
        for k in declared:
            del ns[k]
        cls = super().__new__(mcls, cls_name, bases, ns)
        if _CategoryMeta._root is None:
            _CategoryMeta._root = cls
        for k, v in declared.items():
            cls._add_member(k, v, None)  # type: ignore[attr-defined]
        _CategoryMeta._sealed = True
        return cls

    def __call__(cls, value: Any) -> Any:
        """``ErrorCategory("network_timeout")`` returns the member, like Enum."""
        return cls.lookup(value)  # type: ignore[attr-defined]

    def __iter__(cls) -> Iterator[Any]:
        return iter(list(_CategoryMeta._by_name.values()))

    def __len__(cls) -> int:
        return len(_CategoryMeta._by_name)

    def __contains__(cls, item: object) -> bool:
        if isinstance(item, str):
            return item in _CategoryMeta._by_value or item in _CategoryMeta._by_name
        return False

    def __getitem__(cls, name: str) -> Any:
        return _CategoryMeta._by_name[name]

    @property
    def __members__(cls) -> dict[str, Any]:
        return dict(_CategoryMeta._by_name)


class ErrorCategory(str, metaclass=_CategoryMeta):
    """One error category: a ``str`` equal to its lower-case value, with ``name`` and ``value``."""

    # Resource
    RESOURCE_EXHAUSTED: ClassVar[ErrorCategory] = _value("resource_exhausted")
    RESOURCE_NOT_FOUND: ClassVar[ErrorCategory] = _value("resource_not_found")
    RESOURCE_UNAVAILABLE: ClassVar[ErrorCategory] = _value("resource_unavailable")
    # Network
    NETWORK_TIMEOUT: ClassVar[ErrorCategory] = _value("network_timeout")
    NETWORK_CONNECTION_ERROR: ClassVar[ErrorCategory] = _value("network_connection_error")
    NETWORK_SERVER_ERROR: ClassVar[ErrorCategory] = _value("network_server_error")
    # Test execution
    TEST_ASSERTION_ERROR: ClassVar[ErrorCategory] = _value("test_assertion_error")
    TEST_IMPORT_ERROR: ClassVar[ErrorCategory] = _value("test_import_error")
    TEST_DEPENDENCY_ERROR: ClassVar[ErrorCategory] = _value("test_dependency_error")
    TEST_SYNTAX_ERROR: ClassVar[ErrorCategory] = _value("test_syntax_error")
    # Hardware
    HARDWARE_NOT_AVAILABLE: ClassVar[ErrorCategory] = _value("hardware_not_available")
    HARDWARE_MISMATCH: ClassVar[ErrorCategory] = _value("hardware_mismatch")
    HARDWARE_COMPATIBILITY_ERROR: ClassVar[ErrorCategory] = _value("hardware_compatibility_error")
    # Worker
    WORKER_DISCONNECTED: ClassVar[ErrorCategory] = _value("worker_disconnected")
    WORKER_TIMEOUT: ClassVar[ErrorCategory] = _value("worker_timeout")
    WORKER_CRASHED: ClassVar[ErrorCategory] = _value("worker_crashed")
    # System
    SYSTEM_CRASH: ClassVar[ErrorCategory] = _value("system_crash")
    SYSTEM_RESOURCE_LIMIT: ClassVar[ErrorCategory] = _value("system_resource_limit")
    # Other
    UNKNOWN: ClassVar[ErrorCategory] = _value("unknown")

    name: str
    _family: str
    _builtin: bool

    @classmethod
    def _add_member(cls, name: str, value: str | None, family: str | None) -> ErrorCategory:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"category name must be UPPER_CASE letters, digits, _: {name!r}")
        if value is None:
            value = name.lower()
        if not isinstance(value, str) or not value:
            raise ValueError(f"category value must be a non-empty string: {value!r}")
        if family is not None and family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}: {family!r}")
        with _CategoryMeta._lock:
            existing = _CategoryMeta._by_name.get(name)
            if existing is not None:
                if str.__str__(existing) != value:
                    raise ValueError(
                        f"category {name} already exists with value {existing.value!r}"
                    )
                return existing  # type: ignore[no-any-return]
            if value in _CategoryMeta._by_value:
                other = _CategoryMeta._by_value[value]
                raise ValueError(f"value {value!r} already belongs to category {other.name}")
            member = str.__new__(cls, value)
            member.name = name
            if family is None:
                if not _CategoryMeta._sealed and name == "UNKNOWN":
                    family = "other"
                elif not _CategoryMeta._sealed:
                    family = _BUILTIN_FAMILY.get(name.split("_", 1)[0], "other")
                else:
                    family = "custom"
            member._family = family
            member._builtin = not _CategoryMeta._sealed
            _CategoryMeta._by_name[name] = member
            _CategoryMeta._by_value[value] = member
            type.__setattr__(_CategoryMeta._root, name, member)
            return member

    @classmethod
    def register(
        cls, name: str, value: str | None = None, *, family: str | None = None
    ) -> ErrorCategory:
        """Add a category (idempotent for the same name and value); returns the member."""
        return cls._add_member(name, value, family)

    @classmethod
    def lookup(cls, key: object) -> ErrorCategory:
        """The member for a member, a name ("NETWORK_TIMEOUT") or a value ("network_timeout")."""
        if isinstance(key, ErrorCategory):
            return key
        if isinstance(key, str):
            hit = _CategoryMeta._by_name.get(key) or _CategoryMeta._by_value.get(key)
            if hit is None:
                hit = _CategoryMeta._by_name.get(key.strip().upper())
            if hit is not None:
                return hit  # type: ignore[no-any-return]
        raise UnknownCategoryError(f"unknown error category: {key!r}")

    @classmethod
    def from_name(cls, name: str) -> ErrorCategory:
        try:
            return _CategoryMeta._by_name[name]  # type: ignore[no-any-return]
        except (KeyError, TypeError):
            raise UnknownCategoryError(f"unknown error category name: {name!r}") from None

    @classmethod
    def from_value(cls, value: str) -> ErrorCategory:
        try:
            return _CategoryMeta._by_value[value]  # type: ignore[no-any-return]
        except (KeyError, TypeError):
            raise UnknownCategoryError(f"unknown error category value: {value!r}") from None

    @classmethod
    def names(cls) -> list[str]:
        return list(_CategoryMeta._by_name)

    @property
    def value(self) -> str:
        return str.__str__(self)

    @property
    def family(self) -> str:
        """"resource", "network", "test", "hardware", "worker", "system", "other" or "custom"."""
        return self._family

    @property
    def is_builtin(self) -> bool:
        """True for the 19 categories of the guide, False for added ones."""
        return self._builtin

    def __repr__(self) -> str:
        return f"<ErrorCategory.{self.name}: {self.value!r}>"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.name, self.value, self._family))

    def __copy__(self) -> ErrorCategory:
        return self

    def __deepcopy__(self, memo: Any) -> ErrorCategory:
        return self

    __hash__ = str.__hash__
    __eq__ = str.__eq__


def _restore(name: str, value: str, family: str) -> ErrorCategory:
    try:
        return ErrorCategory.from_name(name)
    except KeyError:
        return ErrorCategory.register(name, value, family=family)
