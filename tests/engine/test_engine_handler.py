"""DistributedErrorHandler: the facade's decisions, strategy priority, report, logging."""

from __future__ import annotations

import json
import logging
import random

from pytest_dtf_errors.engine import (
    DistributedErrorHandler,
    ErrorCategory,
    NetworkRecoveryStrategy,
    RecoveryStrategy,
    RetryPolicy,
    load_config,
)

E = ErrorCategory
CONN = {"type": "ConnectionError", "message": "Connection refused", "traceback": "...",
        "hardware_context": {"hardware_type": "cuda", "device_id": 0}}


def test_categorize_and_classify():
    h = DistributedErrorHandler()
    assert h.categorize_error(CONN) is E.NETWORK_CONNECTION_ERROR
    assert h.classify(CONN).rule == "type:ConnectionError"
    assert h.explain(CONN) == h.classify(CONN)


def test_should_retry_follows_policy_and_attempts():
    h = DistributedErrorHandler(rng=random.Random(0))
    retry, delay = h.should_retry("t", CONN, 1)
    assert retry and 0.45 <= delay <= 0.55
    retry, delay = h.should_retry("t", CONN, 2)
    assert retry and 0.9 <= delay <= 1.1
    assert h.should_retry("t", CONN, 3) == (False, 0.0)
    assert h.should_retry("t", {"type": "AssertionError", "message": "timed out"}, 1) == (False, 0.0)
    assert h.should_retry("t", CONN, "garbage")[0] is True


def test_rng_injection_is_deterministic():
    a = DistributedErrorHandler(rng=random.Random(5))
    b = DistributedErrorHandler(rng=random.Random(5))
    assert [a.should_retry("t", CONN, 1) for _ in range(5)] == \
        [b.should_retry("t", CONN, 1) for _ in range(5)]
    assert isinstance(DistributedErrorHandler().rng, random.Random)


def test_policy_for_and_config_overrides_merge_with_defaults():
    h = DistributedErrorHandler({"retry_policies": {"RESOURCE_EXHAUSTED": {
        "max_retries": 10, "retry_delay_seconds": 30, "retry_backoff_factor": 1.5}}})
    p = h.policy_for(E.RESOURCE_EXHAUSTED)
    assert (p.max_retries, p.retry_delay_seconds, p.retry_backoff_factor) == (10, 30.0, 1.5)
    assert p.max_retry_delay_seconds == 30.0  # the default cap (10) is raised to the delay
    assert p.retry_jitter == 0.1  # from the default policy
    assert h.policy_for("network_timeout").max_retries == 2
    assert h.policy_for("bogus").max_retries == 0


def test_custom_category_without_policy_is_not_retried():
    cat = ErrorCategory.register("HANDLER_TEST_CAT")
    h = DistributedErrorHandler({"error_categories": {"MyErr": "HANDLER_TEST_CAT"}})
    assert h.categorize_error({"type": "MyErr"}) is cat
    assert h.should_retry("t", {"type": "MyErr"}, 1) == (False, 0.0)
    h2 = DistributedErrorHandler({"error_categories": {"MyErr": "HANDLER_TEST_CAT"},
                                  "retry_policies": {"HANDLER_TEST_CAT": {"max_retries": 1}}})
    assert h2.should_retry("t", {"type": "MyErr"}, 1)[0] is True


def test_handle_error_result_shape():
    h = DistributedErrorHandler(rng=random.Random(1))
    ctx = {"worker_id": "worker1", "hardware_type": "cuda", "attempt_count": 1}
    r = h.handle_error("task123", CONN, ctx)
    assert set(r) >= {"retry", "retry_delay", "category", "rule", "detail", "pattern_id",
                      "recovery_action", "attempt_count"}
    assert r["retry"] is True and r["retry_delay"] > 0
    assert r["category"] is E.NETWORK_CONNECTION_ERROR
    assert r["pattern_id"] == "P1"
    assert r["recovery_action"]["strategy"] == "network"
    assert r["recovery_action"]["actions"] == [{"kind": "prefer_other_node", "node": "worker1"}]
    assert r["recovery_action"]["actions_taken"]
    assert ctx == {"worker_id": "worker1", "hardware_type": "cuda", "attempt_count": 1}
    json.dumps(r)


def test_handle_error_assertion_not_retried_and_exhausted_attempts():
    h = DistributedErrorHandler()
    r = h.handle_error("t", {"type": "AssertionError", "message": "connection refused"}, {})
    assert r["retry"] is False and r["retry_delay"] == 0.0
    assert r["recovery_action"]["strategy"] == "test_execution"
    r = h.handle_error("t", CONN, {"attempt_count": 3})
    assert r["retry"] is False and r["attempt_count"] == 3


def test_handle_error_unknown_has_no_strategy():
    h = DistributedErrorHandler()
    r = h.handle_error("t", {"type": "KeyError", "message": "x"}, None)
    assert r["category"] is E.UNKNOWN and r["recovery_action"] is None and r["retry"] is False


class Always(RecoveryStrategy):
    name = "always"

    def __init__(self, recommend=True):
        self.recommend = recommend

    def recover(self, task_id, error, context):
        return {"success": True, "strategy": "always", "actions_taken": ["x"],
                "retry_recommended": self.recommend}

    def is_applicable(self, error_category, hardware_type=None):
        return True


def test_appended_strategy_wins_and_gets_actions_list():
    h = DistributedErrorHandler()
    assert isinstance(h.get_recovery_strategy(E.NETWORK_TIMEOUT), NetworkRecoveryStrategy)
    h.recovery_strategies.append(Always())
    assert isinstance(h.get_recovery_strategy(E.NETWORK_TIMEOUT), Always)
    r = h.handle_error("t", CONN, {})
    assert r["recovery_action"]["actions"] == []
    assert r["retry"] is True


def test_strategy_vetoes_retry():
    h = DistributedErrorHandler()
    h.recovery_strategies.append(Always(recommend=False))
    assert h.handle_error("t", CONN, {})["retry"] is False


class Broken(RecoveryStrategy):
    def recover(self, task_id, error, context):
        raise RuntimeError("bug in user strategy")

    def is_applicable(self, error_category, hardware_type=None):
        if error_category is E.NETWORK_TIMEOUT:
            raise RuntimeError("bug")
        return True


def test_broken_user_strategy_never_breaks_handling(caplog):
    h = DistributedErrorHandler()
    h.recovery_strategies.append(Broken())
    r = h.handle_error("t", CONN, {})
    assert r["recovery_action"]["success"] is False
    assert r["recovery_action"]["actions"] == []
    assert isinstance(h.get_recovery_strategy(E.NETWORK_TIMEOUT), NetworkRecoveryStrategy)


def test_strategy_returning_garbage_is_normalized():
    class Garbage(Always):
        def recover(self, task_id, error, context):
            return {"actions": ["not a dict", {"no": "kind"}, {"kind": "avoid_node", "node": "x"}]}

    h = DistributedErrorHandler()
    h.recovery_strategies.append(Garbage())
    rec = h.handle_error("t", CONN, {})["recovery_action"]
    assert rec["actions"] == [{"kind": "avoid_node", "node": "x"}]
    assert rec["actions_taken"] == [] and rec["retry_recommended"] is True


def test_error_report():
    h = DistributedErrorHandler()
    for i in range(3):
        h.handle_error(f"t{i}", CONN, {"worker_id": f"gw{i}", "test_id": f"test_{i}"})
    h.handle_error("t9", {"type": "AssertionError", "message": "assert 1 == 2"}, {})
    report = h.get_error_report()
    json.dumps(report)
    assert report["total_errors"] == 4
    assert report["by_category"] == {"network_connection_error": 3, "test_assertion_error": 1}
    assert report["by_rule"]["type:ConnectionError"] == 3
    assert report["patterns"][0]["count"] == 3
    assert report["frequent_patterns"] == ["P1"]
    assert report["retries_recommended"] == 3


def test_config_object_and_dict_and_similarity():
    cfg = load_config({"similarity_threshold": 0.75})
    assert DistributedErrorHandler(cfg).error_aggregator.similarity_threshold == 0.75
    assert DistributedErrorHandler({"similarity_threshold": 0.6}).config.similarity_threshold == 0.6


def test_debug_logging(caplog):
    logging.getLogger("distributed_error_handler").setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG, logger="distributed_error_handler"):
            DistributedErrorHandler().handle_error("task7", CONN, {})
        assert any("task7" in r.getMessage() for r in caplog.records)
    finally:
        logging.getLogger("distributed_error_handler").setLevel(logging.NOTSET)


def test_retry_policies_are_per_handler():
    a = DistributedErrorHandler()
    a.retry_policies[E.NETWORK_TIMEOUT] = RetryPolicy(max_retries=9)
    assert DistributedErrorHandler().policy_for(E.NETWORK_TIMEOUT).max_retries == 2


def test_handle_error_accepts_exceptions():
    h = DistributedErrorHandler()
    r = h.handle_error("t", TimeoutError("read timed out"), {"attempt_count": 1})
    assert r["category"] is E.NETWORK_TIMEOUT
