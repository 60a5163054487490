"""Property tests: arbitrary text, bytes, huge and hostile inputs never raise or hang."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_dtf_errors.engine import (
    Classification,
    DistributedErrorHandler,
    ErrorAggregator,
    ErrorCategory,
    ErrorClassifier,
    normalize_message,
)
from pytest_dtf_errors.engine.classify import _COMPILED, _WORD, BUILTIN_PATTERNS

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# Generous hang guard only: speed is measured in bench/engine.py, not asserted here.
HANG_GUARD_S = 20.0
C = ErrorClassifier()

TYPES = st.sampled_from(["", "RuntimeError", "OSError", "AssertionError", "Failed",
                         "requests.exceptions.HTTPError", "psycopg2.OperationalError",
                         "ConnectionAbortedError", "x.y.Z"])
PHRASES = st.sampled_from(["CUDA out of memory", "connection refused", "[Errno 28]", "timed out",
                           "503 Server Error", "Timeout >1.0s", "Name or service not known",
                           "no CUDA-capable device", "fixture 'db' not found", "ECONNRESET"])
ANY_VALUE = st.one_of(st.none(), st.text(), st.binary(), st.integers(), st.floats(),
                      st.lists(st.text(max_size=5), max_size=3))


class Hostile:
    def __str__(self):
        raise RuntimeError("__str__ raises")

    def __repr__(self):
        raise RuntimeError("__repr__ raises")


@SETTINGS
@given(st.text())
def test_normalize_any_text(text):
    out = normalize_message(text)
    assert isinstance(out, str)
    assert normalize_message(out) == normalize_message(out)  # deterministic


@SETTINGS
@given(st.binary())
def test_normalize_and_classify_bytes(data):
    assert isinstance(normalize_message(data), str)
    assert isinstance(C.classify({"type": "OSError", "message": data}), Classification)


@SETTINGS
@given(TYPES, st.text(), st.lists(PHRASES, max_size=3), st.text(max_size=20))
def test_classify_arbitrary_text(type_name, text, phrases, suffix):
    message = text + " ".join(phrases) + suffix
    result = C.classify({"type": type_name, "message": message})
    assert isinstance(result.category, ErrorCategory)
    if type_name == "AssertionError":
        assert result.category is ErrorCategory.TEST_ASSERTION_ERROR


@SETTINGS
@given(st.dictionaries(st.sampled_from(["type", "message", "traceback", "mro", "chain", "phase",
                                        "stderr_tail", "frames", "hardware_context"]),
                       ANY_VALUE))
def test_classify_and_aggregate_malformed_records(record):
    assert isinstance(C.classify(record), Classification)
    assert ErrorAggregator().add_error(record, {"test_id": "t"}).startswith("P")


@SETTINGS
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=200), st.lists(PHRASES, max_size=4))
def test_trigger_words_never_hide_a_match(text, phrases):
    """The word prefilter gives the same answer as searching every pattern."""
    lower = (text + " " + " ".join(phrases)).lower()
    words = set(_WORD.findall(lower))
    for pid, _, compiled, triggers in _COMPILED:
        if compiled.search(lower):
            assert not words.isdisjoint(triggers), pid
    assert len(_COMPILED) == len(BUILTIN_PATTERNS)


def test_ten_megabyte_message_hostile_str_and_bad_utf8_are_bounded():
    handler = DistributedErrorHandler()
    big = ("x" * 1000 + " 12 0xdead /a/b ") * 10_000  # ~10 MB
    inputs = [
        {"type": "RuntimeError", "message": big},
        {"type": "RuntimeError", "message": big.encode()},
        {"type": "OSError", "message": b"\xff\xfe\xfd" * 3_000_000},
        {"type": Hostile(), "message": Hostile(), "traceback": Hostile(), "stderr_tail": Hostile(),
         "mro": [Hostile()], "chain": [{"type": Hostile(), "message": Hostile()}],
         "frames": [{"file": Hostile(), "function": Hostile()}]},
        {"type": "RuntimeError", "message": "(" * 5_000_000 + "a" * 5_000_000},
        Hostile(),
    ]
    start = time.monotonic()
    for record in inputs:
        result = handler.handle_error("t", record, {"worker_id": Hostile(), "test_id": "x"})
        assert isinstance(result["category"], ErrorCategory)
        assert isinstance(normalize_message(record.get("message") if isinstance(record, dict)
                                            else record), str)
    assert time.monotonic() - start < HANG_GUARD_S


def test_user_pattern_runs_only_on_truncated_text():
    handler = DistributedErrorHandler({"error_patterns": {r"a{1,5}b": "NETWORK_TIMEOUT"}})
    start = time.monotonic()
    assert handler.categorize_error({"type": "ValueError", "message": "a" * 10_000_000}) \
        is ErrorCategory.UNKNOWN
    assert time.monotonic() - start < HANG_GUARD_S
