"""integrate_error_handler: route any coordinator's errors through the engine first.

Works with any object that has ``handle_task_error(task_id, error, ...)`` and/or
``handle_worker_error(worker_id, error, ...)`` (the guide's coordinator, the
pytest-xdist controller adapter, or your own). Each is wrapped so that the
engine's ``handle_error`` runs first; its result is stored on
``coordinator.last_error_result`` and passed to the original method as the
``error_result`` keyword if the method accepts it. The engine never breaks the
coordinator: if it fails, the original method still runs.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from .engine.handler import DistributedErrorHandler

__all__ = ["integrate_error_handler"]

logger = logging.getLogger("distributed_error_handler")

_CONTEXT_KEYS = ("worker_id", "host", "hardware_type", "attempt_count", "test_id", "timeout",
                 "node_failures", "required_hardware", "alternative_hardware")
_MAX_TRACKED = 10_000


def _accepts_result(func: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD or p.name == "error_result" for p in params)


def _wrap(coordinator: Any, original: Callable[..., Any], handler: DistributedErrorHandler,
          kind: str) -> Callable[..., Any]:
    attempts: OrderedDict[str, int] = OrderedDict()
    pass_result = _accepts_result(original)

    def engine_first(ident: Any, error: Any, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            ctx: dict[str, Any] = {}
            given = kwargs.get("context")
            if isinstance(given, Mapping):
                ctx.update(given)
            ctx.update({k: kwargs[k] for k in _CONTEXT_KEYS if k in kwargs})
            task_id = str(ident) if kind == "task" else f"worker:{ident}"
            if kind == "worker":
                ctx.setdefault("worker_id", ident)
            if "attempt_count" not in ctx:
                attempts[task_id] = attempts.pop(task_id, 0) + 1
                while len(attempts) > _MAX_TRACKED:
                    attempts.popitem(last=False)
                ctx["attempt_count"] = attempts[task_id]
            result = handler.handle_error(task_id, error, ctx)
        except Exception:
            logger.exception("error handler failed on %s %r", kind, ident)
            return None
        coordinator.last_error_result = result
        return result

    def call_args(result: dict[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        if pass_result and result is not None and "error_result" not in kwargs:
            return {**kwargs, "error_result": result}
        return kwargs

    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def async_wrapper(ident: Any, error: Any, *args: Any, **kwargs: Any) -> Any:
            result = engine_first(ident, error, kwargs)
            return await original(ident, error, *args, **call_args(result, kwargs))

        wrapper: Callable[..., Any] = async_wrapper
    else:
        @functools.wraps(original)
        def sync_wrapper(ident: Any, error: Any, *args: Any, **kwargs: Any) -> Any:
            result = engine_first(ident, error, kwargs)
            return original(ident, error, *args, **call_args(result, kwargs))

        wrapper = sync_wrapper
    wrapper._dtf_wrapped = True  # type: ignore[attr-defined]
    return wrapper


def integrate_error_handler(coordinator: Any,
                            handler: DistributedErrorHandler | None = None) -> Any:
    """Wrap the coordinator's error methods so the engine handles each error first.

    Attaches ``coordinator.error_handler`` (the given handler, one already set on the
    coordinator, or a new one built from ``coordinator.error_handler_config``) and
    returns the coordinator. Calling it twice does not wrap twice.
    """
    if handler is None:
        existing = getattr(coordinator, "error_handler", None)
        handler = existing if isinstance(existing, DistributedErrorHandler) else \
            DistributedErrorHandler(getattr(coordinator, "error_handler_config", None))
    coordinator.error_handler = handler
    if not hasattr(coordinator, "last_error_result"):
        coordinator.last_error_result = None
    for name, kind in (("handle_task_error", "task"), ("handle_worker_error", "worker")):
        original = getattr(coordinator, name, None)
        if not callable(original) or getattr(original, "_dtf_wrapped", False):
            continue
        setattr(coordinator, name, _wrap(coordinator, original, handler, kind))
    return coordinator
