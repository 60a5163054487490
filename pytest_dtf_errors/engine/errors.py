"""The engine's one error type for configuration mistakes (imported without the rest of the engine)."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration problem: ``key`` is the full key path, ``message`` what is wrong."""

    def __init__(self, key: str, message: str, source: str | None = None) -> None:
        super().__init__(key, message)
        self.key = key
        self.message = message
        self.source = source

    def __str__(self) -> str:
        text = f"{self.key}: {self.message}" if self.key else self.message
        return f"{self.source}: {text}" if self.source else text
