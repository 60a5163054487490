"""normalize_message, ErrorAggregator clustering, bounded memory, scope and hint."""

from __future__ import annotations

import json

import pytest

from pytest_dtf_errors.engine import ErrorAggregator, ErrorCategory, ErrorPattern, normalize_message
from pytest_dtf_errors.engine import patterns as patterns_mod

E = ErrorCategory


@pytest.mark.parametrize(("text", "expected"), [
    ("assert 3 == 4", "assert <n> == <n>"),
    ("took 1.25 s, limit -3", "took <n> s, limit <n>"),
    ("object at 0x7f3a2b1c0d90", "object at <hex>"),
    ("sha deadbeef12 mismatch", "sha <hex> mismatch"),
    ("id 123e4567-e89b-12d3-a456-426614174000 gone", "id <uuid> gone"),
    ("peer 10.0.0.12 refused", "peer <ip> refused"),
    ("peer 10.0.0.12:5432 refused", "peer <ip>:<port> refused"),
    ("peer fe80::1ff:fe23:4567:890a refused", "peer <ip> refused"),
    ("redis localhost:6379 down", "redis <host>:<port> down"),
    ("db.internal.example:5432 down", "<host>:<port> down"),
    ("at 2024-01-02T03:04:05.123Z failed", "at <timestamp> failed"),
    ("at 2024-01-02 03:04:05+01:00 failed", "at <timestamp> failed"),
    ("at 10:11:12 failed", "at <time> failed"),
    ("open /tmp/pytest-of-ci/pytest-7/data.bin", "open <path>"),
    (r"open C:\Users\ci\data.bin", "open <path>"),
    ("No module named 'foo_bar'", "No module named '<val>'"),
    ('key "abc" missing', 'key "<val>" missing'),
    ("mail bob@example.com now", "mail <email> now"),
    ("GET https://api.example.com/v1/items?id=3 failed", "GET <url> failed"),
    ("  many\t\tspaces\n here ", "many spaces here"),
])
def test_normalize(text, expected):
    assert normalize_message(text) == expected


def test_normalize_bounds_input_and_never_raises():
    class Bad:
        def __str__(self):
            raise ValueError("nope")

    assert normalize_message(Bad()) == "<unprintable Bad: str() raised ValueError>"
    assert normalize_message(None) == ""
    assert normalize_message(b"\xff\xfe 12") == "\ufffd\ufffd <n>"
    assert len(normalize_message("9 " * 5_000_000)) < 20_000


def make(agg, message, test="t1", worker="gw0", type_name="RuntimeError", hardware="cpu",
         host="h1", category=E.UNKNOWN, frames=None):
    rec = {"type": type_name, "message": message}
    if frames is not None:
        rec["frames"] = frames
    return agg.add_error(rec, {"test_id": test, "worker_id": worker, "hardware_type": hardware,
                               "host": host, "category": category})


def test_same_template_one_pattern_stable_ids():
    agg = ErrorAggregator()
    ids = [make(agg, f"connection to 10.0.0.{i}:5432 refused after {i} ms", test=f"t{i}")
           for i in range(20)]
    assert set(ids) == {"P1"}
    assert make(agg, "totally different text about widgets") == "P2"
    p1 = agg.get("P1")
    assert p1.count == 20 and len(p1.tests) == 20
    assert agg.get("nope") is None


def test_fuzzy_match_within_bucket_only():
    agg = ErrorAggregator(0.8)
    a = make(agg, "backend service returned an invalid payload for the order request")
    b = make(agg, "backend service returned an invalid payload for the order requests")
    c = make(agg, "backend service returned an invalid payload for the order requests",
             type_name="ValueError")
    d = make(agg, "backend service returned an invalid payload for the order requests",
             category=E.NETWORK_SERVER_ERROR)
    assert a == b
    assert len({a, c, d}) == 3


def test_threshold_controls_merging():
    strict = ErrorAggregator(1.0)
    loose = ErrorAggregator(0.5)
    for agg in (strict, loose):
        make(agg, "the cache server did not answer the ping")
        make(agg, "the cache server did not answer the pong request")
    assert len(strict.get_error_groups()) == 2
    assert len(loose.get_error_groups()) == 1
    with pytest.raises(ValueError):
        ErrorAggregator(1.5)


def test_frames_are_part_of_the_fingerprint():
    agg = ErrorAggregator(1.0)
    f1 = [{"file": "/src/app/db.py", "line": 10, "function": "connect"}]
    f2 = [{"file": "/src/app/api.py", "line": 99, "function": "fetch"}]
    assert make(agg, "boom", frames=f1) != make(agg, "boom", frames=f2)
    # line numbers do not split a pattern
    f1b = [{"file": "/src/app/db.py", "line": 12, "function": "connect"}]
    assert make(agg, "boom", frames=f1) == make(agg, "boom", frames=f1b)


def test_examples_first_and_last_three():
    agg = ErrorAggregator()
    for i in range(10):
        make(agg, f"error number {i}", test=f"t{i}")
    ex = agg.get("P1").examples
    assert [e["test_id"] for e in ex] == ["t0", "t1", "t2", "t7", "t8", "t9"]
    assert set(ex[0]) == {"test_id", "message", "worker_id"}


def test_distinct_sets_are_capped(monkeypatch):
    monkeypatch.setattr(patterns_mod, "MAX_DISTINCT", 5)
    agg = ErrorAggregator()
    for i in range(50):
        make(agg, "same", test=f"t{i}", worker=f"gw{i}")
    p = agg.get("P1")
    assert p.count == 50 and len(p.tests) == 5 and p.tests.overflow


def test_pattern_count_is_capped(monkeypatch):
    monkeypatch.setattr(patterns_mod, "MAX_PATTERNS", 3)
    agg = ErrorAggregator(1.0)
    for word in ["alpha", "bravo", "charlie", "delta", "echo"]:
        make(agg, f"{word} {word} {word}")
    assert len(agg.patterns) == 3
    assert sum(p.count for p in agg.patterns.values()) == 5
    make(agg, "zulu", type_name="BrandNewError")
    assert agg.get("P0") is not None and agg.get("P0").count == 1


def test_frequent_and_groups_sorted_by_count():
    agg = ErrorAggregator()
    make(agg, "rare thing happened")
    for i in range(3):
        make(agg, "common failure in module", test=f"t{i}")
    groups = agg.get_error_groups()
    assert [g.id for g in groups] == ["P2", "P1"]
    assert [g.id for g in agg.get_frequent_errors(2)] == ["P2"]
    assert [g.id for g in agg.get_frequent_errors(1)] == ["P2", "P1"]


def test_scope_test_node_hardware_systemic():
    agg = ErrorAggregator()
    for node, hw, host in [("gw0", "cpu", "h1"), ("gw1", "cpu", "h1"), ("gw2", "cuda", "h2"),
                           ("gw3", "cuda", "h2")]:
        agg.note_node(node, hw, host)
    make(agg, "only one test", test="t1", worker="gw0")
    assert agg.get("P1").scope == "test"
    assert "t1" in agg.get("P1").hint
    for i in range(3):
        make(agg, "node bound failure", test=f"n{i}", worker="gw3", hardware="cuda", host="h2")
    assert agg.get("P2").scope == "node"
    assert agg.get("P2").hint == "all on gw3: node problem"
    make(agg, "kernel launch timed out on device", test="c1", worker="gw2", hardware="cuda", host="h2")
    make(agg, "kernel launch timed out on device", test="c2", worker="gw3", hardware="cuda", host="h2")
    assert agg.get("P3").scope == "hardware"
    assert agg.get("P3").hint == "all on cuda workers: hardware problem"
    for i, node in enumerate(["gw0", "gw2", "gw1"]):
        make(agg, "service down", test=f"s{i}", worker=node, hardware="cpu" if i != 1 else "cuda",
             host=f"h{i % 2 + 1}", category=E.NETWORK_CONNECTION_ERROR)
    p4 = agg.get("P4")
    assert p4.scope == "systemic"
    assert p4.hint == "3 tests, 2 hosts: a shared service is down"


def test_node_scope_needs_two_known_nodes():
    agg = ErrorAggregator()
    make(agg, "x", test="a")
    make(agg, "x", test="b")
    assert agg.get("P1").scope == "systemic"


def test_to_dict_is_json_ready():
    agg = ErrorAggregator()
    make(agg, "boom 1", test="b", category=E.WORKER_CRASHED)
    make(agg, "boom 2", test="a", category="worker_crashed")
    d = agg.get("P1").to_dict()
    assert set(d) == {"id", "category", "count", "tests", "nodes", "hardware", "hosts", "scope",
                      "template", "example", "hint"}
    assert d["tests"] == ["a", "b"] and d["category"] == "worker_crashed"
    assert d["template"] == "boom <n>"
    json.dumps(d)
    assert isinstance(agg.get("P1"), ErrorPattern)
    many = ErrorAggregator()
    for i in range(150):
        make(many, "same", test=f"t{i}")
    assert many.get("P1").to_dict()["tests"] == 150


def test_add_error_accepts_odd_inputs():
    agg = ErrorAggregator()
    assert agg.add_error("plain string message").startswith("P")
    assert agg.add_error(None).startswith("P")
    assert agg.add_error(ValueError("boom 3")).startswith("P")
    assert agg.add_error({"type": 5, "message": b"\xff"}, {"worker_id": ["unhashable"]})
    assert agg.add_error({"message": "x"}, {"category": "not-a-category"})
    assert agg.add_error({"message": "x"}, "not a mapping")
