"""DtfConfig: one validated configuration from a dict, ``[tool.dtf]`` or a TOML file.

Every problem raises ``ConfigError(key, message)``; its ``str`` names the full
key path, e.g. ``retry_policies.NETWORK_TIMEOUT.max_retries: must be an
integer from 0 to 1000, got -1``. Errors from a file are prefixed by the file.

User regexes (``error_patterns``) are compiled with RE2 (google-re2), whose
matching time is linear in the text, so no pattern can hang a run; a pattern
RE2 cannot take (backreferences, lookaround, ...) is a ConfigError naming it.
The message is cut to ``MAX_MESSAGE_CHARS`` characters (4096) before matching.
The built-in patterns (``classify.BUILTIN_PATTERNS``) are ours, reviewed, and
stay on ``re``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .categories import ErrorCategory
from .errors import ConfigError
from .retry import POLICY_BOUNDS, POLICY_FIELDS, check_policy_field

__all__ = [
    "KNOWN_KEYS",
    "ConfigError",
    "DtfConfig",
    "UserRegex",
    "check_regex",
    "load_config",
    "load_config_file",
    "load_pyproject",
]

KNOWN_KEYS = ("custom_categories", "error_categories", "retry_policies", "error_patterns",
              "similarity_threshold")
MAX_REGEX_CHARS = 1000

Validator = Callable[[Any, str], Any]


@dataclass
class DtfConfig:
    """The validated configuration the engine (and the plugin, via ``extras``) reads."""

    error_categories: dict[str, ErrorCategory] = field(default_factory=dict)
    retry_policies: dict[ErrorCategory, dict[str, Any]] = field(default_factory=dict)
    error_patterns: dict[str, ErrorCategory] = field(default_factory=dict)
    similarity_threshold: float = 0.8
    custom_categories: list[ErrorCategory] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    source: str = "config"


# --------------------------------------------------------------------------- regex safety


class UserRegex:
    """A user pattern compiled by RE2: ``search`` runs in time linear in the text."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._compiled = compiled

    def search(self, text: str) -> bool:
        """True if the pattern matches anywhere in ``text`` (any str, lone surrogates too)."""
        try:
            return self._compiled.search(text) is not None
        except UnicodeEncodeError:  # RE2 reads UTF-8; a lone surrogate is searched as its escape
            return self._compiled.search(
                text.encode("utf-8", "backslashreplace").decode("utf-8")) is not None


def check_regex(pattern: str) -> UserRegex:
    """Compile a user regex with RE2; raise ValueError if RE2 cannot take it.

    RE2 guarantees matching in linear time, so no pattern can hang a run; in
    exchange it has no backreferences, lookaround, atomic groups or possessive
    quantifiers, and ``\\w``, ``\\d``, ``\\b`` are ASCII-only.
    """
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"regex longer than {MAX_REGEX_CHARS} characters")
    import re2  # only a project with error_patterns pays its import

    options = re2.Options()
    options.log_errors = False  # the message goes into our ValueError, not to stderr
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(
            f"RE2 cannot take this regex ({reason}); user patterns run on RE2, which "
            f"matches in linear time and has no backreferences, lookaround, atomic groups "
            f"or possessive quantifiers"
        ) from None
    except UnicodeEncodeError:
        raise ValueError("regex is not valid UTF-8 text (a lone surrogate)") from None
    return UserRegex(pattern, compiled)


# --------------------------------------------------------------------------- value checks


def _category(value: Any, key: str) -> ErrorCategory:
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a category name, got {type(value).__name__} {value!r}")
    try:
        return ErrorCategory.lookup(value)
    except KeyError:
        raise ConfigError(
            key, f"unknown category {value!r}; known: {', '.join(ErrorCategory.names())}"
        ) from None


def _table(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"must be a table/dict, got {type(value).__name__}")
    for k in value:
        if not isinstance(k, str) or not k:
            raise ConfigError(key, f"keys must be non-empty strings, got {k!r}")
    return value


def _number(value: Any, key: str, *, lo: float = 0.0, hi: float | None = None) -> float:
    want = f"a number between {lo:g} and {hi:g}" if hi is not None else "a non-negative number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"must be {want}, got {type(value).__name__} {value!r}")
    if math.isnan(value) or math.isinf(value) or value < lo or (hi is not None and value > hi):
        raise ConfigError(key, f"must be {want}, got {value!r}")
    return float(value)


def _policy(value: Any, key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, v in _table(value, key).items():
        k = f"{key}.{name}"
        if name in POLICY_BOUNDS:
            try:
                out[name] = check_policy_field(name, v)
            except (TypeError, ValueError) as exc:
                raise ConfigError(k, str(exc)) from None
        elif name in ("categories_to_retry", "categories_to_skip"):
            if not isinstance(v, (list, tuple)):
                raise ConfigError(k, f"must be a list of category names, got {type(v).__name__}")
            out[name] = [_category(c, f"{k}[{i}]") for i, c in enumerate(v)]
        else:
            raise ConfigError(k, f"unknown key; expected one of: {', '.join(POLICY_FIELDS)}")
    return out


def _custom_categories(value: Any, key: str) -> list[ErrorCategory]:
    if isinstance(value, Mapping):
        items = [(n, v, f"{key}.{n}") for n, v in _table(value, key).items()]
    elif isinstance(value, (list, tuple)):
        items = [(n, None, f"{key}[{i}]") for i, n in enumerate(value)]
    else:
        raise ConfigError(key, f"must be a list of names or a table of name = value, "
                               f"got {type(value).__name__}")
    out = []
    for name, val, k in items:
        if not isinstance(name, str) or (val is not None and not isinstance(val, str)):
            raise ConfigError(k, f"must be a string, got {name if val is None else val!r}")
        try:
            out.append(ErrorCategory.register(name, val))
        except ValueError as exc:
            raise ConfigError(k, str(exc)) from None
    return out


# --------------------------------------------------------------------------- loaders


def load_config(
    data: Mapping[str, Any] | None,
    *,
    source: str = "config",
    extra_keys: Mapping[str, Validator] | None = None,
    prefix: str = "",
) -> DtfConfig:
    """Validate ``data`` (the guide's keys, plus ``extra_keys``) into a DtfConfig.

    ``source`` other than "config" (a file name) prefixes error messages;
    ``prefix`` (e.g. "tool.dtf.") is put before every key path.
    """
    shown = None if source in ("config", "") else source
    try:
        return _load(data or {}, source, extra_keys or {}, prefix)
    except ConfigError as exc:
        if exc.source is None:
            exc.source = shown
        raise


def _load(data: Any, source: str, extra_keys: Mapping[str, Validator], prefix: str) -> DtfConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(prefix.rstrip(".") or "config",
                          f"must be a table/dict, got {type(data).__name__}")
    cfg = DtfConfig(source=source)
    for key in data:
        if key not in KNOWN_KEYS and key not in extra_keys:
            known = ", ".join(list(KNOWN_KEYS) + sorted(extra_keys))
            raise ConfigError(f"{prefix}{key}", f"unknown key; expected one of: {known}")
    # custom categories first: the other keys may name them
    if "custom_categories" in data:
        cfg.custom_categories = _custom_categories(data["custom_categories"],
                                                   f"{prefix}custom_categories")
    if "error_categories" in data:
        key = f"{prefix}error_categories"
        for type_name, cat in _table(data["error_categories"], key).items():
            cfg.error_categories[type_name] = _category(cat, f"{key}.{type_name}")
    if "retry_policies" in data:
        key = f"{prefix}retry_policies"
        for cat_name, policy in _table(data["retry_policies"], key).items():
            k = f"{key}.{cat_name}"
            try:
                cat = ErrorCategory.lookup(cat_name)
            except KeyError:
                raise ConfigError(k, f"unknown category {cat_name!r}; known: "
                                     f"{', '.join(ErrorCategory.names())}") from None
            cfg.retry_policies[cat] = _policy(policy, k)
    if "error_patterns" in data:
        key = f"{prefix}error_patterns"
        for rx, cat in _table(data["error_patterns"], key).items():
            k = f"{key}.{rx!r}"
            try:
                check_regex(rx)
            except ValueError as exc:
                raise ConfigError(k, str(exc)) from None
            cfg.error_patterns[rx] = _category(cat, k)
    if "similarity_threshold" in data:
        cfg.similarity_threshold = _number(data["similarity_threshold"],
                                           f"{prefix}similarity_threshold", lo=0.0, hi=1.0)
    for name, validator in extra_keys.items():
        if name in data:
            k = f"{prefix}{name}"
            try:
                cfg.extras[name] = validator(data[name], k)
            except ConfigError:
                raise
            except (ValueError, TypeError) as exc:
                raise ConfigError(k, str(exc)) from None
    return cfg


def _read_toml(path: str | Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef,unused-ignore]
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read: {exc.strerror or exc}") from None
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), f"not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), f"invalid TOML: {exc}") from None
    return data


def load_config_file(path: str | Path,
                     extra_keys: Mapping[str, Validator] | None = None) -> DtfConfig:
    """A standalone TOML file with the config keys at its top level.

    A file holding only a ``[tool.dtf]`` table (a pyproject-style snippet) is
    read from that table.
    """
    data = _read_toml(path)
    tool = data.get("tool")
    if set(data) == {"tool"} and isinstance(tool, Mapping) and set(tool) == {"dtf"}:
        return load_config(tool["dtf"], source=str(path), extra_keys=extra_keys, prefix="tool.dtf.")
    return load_config(data, source=str(path), extra_keys=extra_keys)


def load_pyproject(path: str | Path,
                   extra_keys: Mapping[str, Validator] | None = None) -> DtfConfig | None:
    """``[tool.dtf]`` of a pyproject.toml, or None if the file has no such table."""
    data = _read_toml(path)
    tool = data.get("tool")
    if not isinstance(tool, Mapping) or "dtf" not in tool:
        return None
    return load_config(tool["dtf"], source=str(path), extra_keys=extra_keys, prefix="tool.dtf.")
