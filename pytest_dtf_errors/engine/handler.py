"""DistributedErrorHandler: the guide's facade over classifier, policies, strategies, patterns."""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .categories import ErrorCategory
from .classify import Classification, ErrorClassifier, coerce_record
from .config import DtfConfig, load_config
from .patterns import ErrorAggregator
from .recovery import RecoveryStrategy, builtin_strategies
from .retry import RetryPolicy, default_policies

__all__ = ["DistributedErrorHandler"]

logger = logging.getLogger("distributed_error_handler")

_NO_RETRY = RetryPolicy(max_retries=0, retry_delay_seconds=0.0, retry_backoff_factor=1.0,
                        max_retry_delay_seconds=0.0, retry_jitter=0.0)
_AGG_CONTEXT = ("test_id", "worker_id", "hardware_type", "host")


class DistributedErrorHandler:
    """Categorizes errors, decides retries, picks a recovery strategy, groups patterns.

    ``recovery_strategies`` is a public list; ``get_recovery_strategy`` searches it
    from the end, so a strategy a user appends wins over the built-in ones.
    """

    def __init__(self, config: DtfConfig | Mapping[str, Any] | None = None, *,
                 rng: random.Random | None = None) -> None:
        if config is None or not isinstance(config, DtfConfig):
            config = load_config(config or {})
        self.config: DtfConfig = config
        self.classifier = ErrorClassifier(config)
        self.retry_policies: dict[ErrorCategory, RetryPolicy] = default_policies()
        for cat, overrides in config.retry_policies.items():
            base = self.retry_policies.get(cat, _NO_RETRY)
            fields = dict(overrides)
            # A configured delay above the default cap raises the cap rather than being cut.
            if "max_retry_delay_seconds" not in fields and "retry_delay_seconds" in fields:
                fields["max_retry_delay_seconds"] = max(base.max_retry_delay_seconds,
                                                        fields["retry_delay_seconds"])
            self.retry_policies[cat] = replace(base, **fields)
        self.recovery_strategies: list[RecoveryStrategy] = builtin_strategies()
        self.error_aggregator = ErrorAggregator(config.similarity_threshold)
        self.rng = rng if rng is not None else random.Random()
        self.error_counts: Counter[ErrorCategory] = Counter()
        self.rule_counts: Counter[str] = Counter()
        self.retries_recommended = 0
        self.total_errors = 0

    # -- classification --------------------------------------------------------------
    def classify(self, error: Any) -> Classification:
        """Category, deciding rule and a one-sentence reason for ``error``."""
        return self.classifier.classify(error)

    explain = classify

    def categorize_error(self, error: Any) -> ErrorCategory:
        return self.classifier.classify(error).category

    # -- retries ----------------------------------------------------------------------
    def policy_for(self, category: ErrorCategory | str) -> RetryPolicy:
        """The retry policy of ``category``; a category without one is never retried."""
        try:
            category = ErrorCategory.lookup(category)
        except KeyError:
            return _NO_RETRY
        return self.retry_policies.get(category, _NO_RETRY)

    def _decide(self, category: ErrorCategory, attempt_count: int) -> tuple[bool, float]:
        policy = self.policy_for(category)
        if not policy.allows(category, attempt_count):
            return False, 0.0
        return True, policy.delay_for(attempt_count, self.rng)

    def should_retry(self, task_id: str, error: Any, attempt_count: int) -> tuple[bool, float]:
        """(retry?, delay in seconds) after attempt ``attempt_count`` (1-based) failed."""
        category = self.categorize_error(error)
        retry, delay = self._decide(category, _int(attempt_count, 1))
        logger.debug("should_retry %s: %s attempt %s -> %s (%.3fs)", task_id, category.value,
                     attempt_count, retry, delay)
        return retry, delay

    # -- recovery ---------------------------------------------------------------------
    def get_recovery_strategy(self, category: ErrorCategory | str,
                              hardware_type: str | None = None) -> RecoveryStrategy | None:
        """The last strategy in ``recovery_strategies`` applicable to ``category``, or None."""
        try:
            category = ErrorCategory.lookup(category)
        except KeyError:
            return None
        for strategy in reversed(self.recovery_strategies):
            try:
                if strategy.is_applicable(category, hardware_type):
                    return strategy
            except Exception:
                logger.exception("recovery strategy %r failed in is_applicable", strategy)
        return None

    def _recover(self, strategy: RecoveryStrategy, task_id: str, record: dict[str, Any],
                 context: dict[str, Any]) -> dict[str, Any]:
        try:
            result = strategy.recover(task_id, record, context)
        except Exception as exc:
            logger.exception("recovery strategy %r failed", strategy)
            return {"success": False, "strategy": getattr(strategy, "name", type(strategy).__name__),
                    "actions_taken": [f"recovery failed: {type(exc).__name__}"],
                    "retry_recommended": True, "actions": []}
        result = dict(result) if isinstance(result, Mapping) else {}
        result.setdefault("success", False)
        result.setdefault("strategy", getattr(strategy, "name", type(strategy).__name__))
        result["actions_taken"] = list(result.get("actions_taken") or [])
        result.setdefault("retry_recommended", True)
        actions = result.get("actions")
        result["actions"] = [a for a in actions if isinstance(a, Mapping) and "kind" in a] \
            if isinstance(actions, (list, tuple)) else []
        return result

    # -- the whole decision -----------------------------------------------------------
    def handle_error(self, task_id: str, error: Any,
                     context: Mapping[str, Any] | None = None, *,
                     classification: Classification | None = None) -> dict[str, Any]:
        """Classify, decide the retry, run the recovery strategy, record the pattern.

        ``retry`` is true only if the category's policy allows another attempt and
        the recovery strategy (if any) recommends a retry. A coordinator that has
        classified the error itself passes ``classification``; the rules are skipped.
        """
        record = coerce_record(error)
        ctx = dict(context) if isinstance(context, Mapping) else {}
        attempt = _int(ctx.get("attempt_count"), 1)
        cls = classification if classification is not None else self.classifier.classify(record)
        category = cls.category
        ctx["category"] = category
        ctx.setdefault("attempt_count", attempt)
        retry, delay = self._decide(category, attempt)

        agg_ctx = {k: ctx.get(k) for k in _AGG_CONTEXT}
        agg_ctx["test_id"] = agg_ctx["test_id"] or task_id
        agg_ctx["category"] = category
        pattern_id = self.error_aggregator.add_error(record, agg_ctx)

        hardware = ctx.get("hardware_type")
        strategy = self.get_recovery_strategy(category, hardware if isinstance(hardware, str)
                                              else None)
        recovery = self._recover(strategy, task_id, record, ctx) if strategy else None
        if recovery is not None and not recovery["retry_recommended"]:
            retry, delay = False, 0.0

        self.total_errors += 1
        self.error_counts[category] += 1
        self.rule_counts[cls.rule] += 1
        if retry:
            self.retries_recommended += 1
        logger.debug("handle_error %s: %s by %s (%s); retry=%s delay=%.3f pattern=%s actions=%s",
                     task_id, category.value, cls.rule, cls.detail, retry, delay, pattern_id,
                     recovery["actions"] if recovery else [])
        return {
            "retry": retry,
            "retry_delay": delay,
            "category": category,
            "rule": cls.rule,
            "detail": cls.detail,
            "pattern_id": pattern_id,
            "recovery_action": recovery,
            "attempt_count": attempt,
        }

    # -- reporting --------------------------------------------------------------------
    def get_error_report(self) -> dict[str, Any]:
        """A JSON-ready summary: totals, counts by category and rule, and the patterns."""
        groups = self.error_aggregator.get_error_groups()
        return {
            "total_errors": self.total_errors,
            "retries_recommended": self.retries_recommended,
            "by_category": {c.value: n for c, n in self.error_counts.most_common()},
            "by_rule": dict(self.rule_counts.most_common()),
            "patterns": [p.to_dict() for p in groups],
            "frequent_patterns": [p.id for p in groups if p.count >= 2],
        }


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default
