"""ErrorClassifier: every rule, the order of the rules, and malformed records."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dtf_errors.engine import Classification, ErrorCategory, ErrorClassifier, load_config
from pytest_dtf_errors.engine.classify import (
    BUILTIN_PATTERNS,
    MAX_MESSAGE_CHARS,
    TRIGGERS,
    coerce_record,
    safe_text,
    truncate,
)

E = ErrorCategory
C = ErrorClassifier()


def classify(type_name="", message="", **extra):
    return C.classify({"type": type_name, "message": message, **extra})


# type name, message, expected category, expected rule
CASES = [
    # types, qualified or not
    ("ConnectionError", "Connection refused", E.NETWORK_CONNECTION_ERROR, "type:ConnectionError"),
    ("requests.exceptions.ConnectionError", "x", E.NETWORK_CONNECTION_ERROR,
     "type:ConnectionError"),
    ("ConnectionRefusedError", "", E.NETWORK_CONNECTION_ERROR, "type:ConnectionRefusedError"),
    ("requests.exceptions.Timeout", "", E.NETWORK_TIMEOUT, "type:requests.exceptions.Timeout"),
    ("requests.exceptions.ReadTimeout", "", E.NETWORK_TIMEOUT, "type:ReadTimeout"),
    ("httpx.ConnectError", "", E.NETWORK_CONNECTION_ERROR, "type:ConnectError"),
    ("TimeoutError", "", E.NETWORK_TIMEOUT, "type:TimeoutError"),
    ("socket.timeout", "timed out", E.NETWORK_TIMEOUT, "type:socket.timeout"),
    ("socket.gaierror", "[Errno -2] Name or service not known", E.NETWORK_CONNECTION_ERROR,
     "type:socket.gaierror"),
    ("MemoryError", "", E.RESOURCE_EXHAUSTED, "type:MemoryError"),
    ("FileNotFoundError", "[Errno 2] No such file", E.RESOURCE_NOT_FOUND, "type:FileNotFoundError"),
    ("ImportError", "cannot import name 'x'", E.TEST_IMPORT_ERROR, "type:ImportError"),
    ("ModuleNotFoundError", "No module named 'requests'", E.TEST_IMPORT_ERROR,
     "type:ModuleNotFoundError"),
    ("torch.OutOfMemoryError", "CUDA out of memory.", E.RESOURCE_EXHAUSTED,
     "type:torch.OutOfMemoryError"),
    ("torch.cuda.OutOfMemoryError", "", E.RESOURCE_EXHAUSTED, "type:torch.cuda.OutOfMemoryError"),
    ("_pytest.fixtures.FixtureLookupError", "", E.TEST_DEPENDENCY_ERROR, "type:FixtureLookupError"),
    ("WorkerCrashed", "", E.WORKER_CRASHED, "type:WorkerCrashed"),
    ("SystemError", "", E.SYSTEM_CRASH, "type:SystemError"),
    # hierarchy from a built-in name alone
    ("ConnectionAbortedError", "", E.NETWORK_CONNECTION_ERROR, "mro:builtins.ConnectionError"),
    ("ConnectionResetError", "", E.NETWORK_CONNECTION_ERROR, "mro:builtins.ConnectionError"),
    ("BrokenPipeError", "", E.NETWORK_CONNECTION_ERROR, "mro:builtins.ConnectionError"),
    ("builtins.ConnectionAbortedError", "", E.NETWORK_CONNECTION_ERROR,
     "mro:builtins.ConnectionError"),
    # hard types: the message never matters
    ("AssertionError", "Connection refused: timed out, CUDA out of memory",
     E.TEST_ASSERTION_ERROR, "type:AssertionError"),
    ("SyntaxError", "[Errno 111] Connection refused", E.TEST_SYNTAX_ERROR, "type:SyntaxError"),
    ("IndentationError", "timed out", E.TEST_SYNTAX_ERROR, "type:IndentationError"),
    ("TabError", "503 Server Error", E.TEST_SYNTAX_ERROR, "type:TabError"),
    ("Failed", "expected a network error: connection refused", E.TEST_ASSERTION_ERROR,
     "type:Failed"),
    ("_pytest.outcomes.Failed", "boom", E.TEST_ASSERTION_ERROR, "type:Failed"),
    # pytest-timeout
    ("Failed", "Timeout >1.0s", E.WORKER_TIMEOUT, "pattern:pytest-timeout"),
    ("_pytest.outcomes.Failed", "Failed: Timeout >30s", E.WORKER_TIMEOUT,
     "pattern:pytest-timeout"),
    ("", "+++++++++++++++++ Timeout ++++++++++++++++++", E.WORKER_TIMEOUT,
     "pattern:pytest-timeout"),
    # errno
    ("OSError", "[Errno 28] No space left on device", E.RESOURCE_EXHAUSTED, "errno:ENOSPC"),
    ("OSError", "[Errno 12] Cannot allocate memory", E.RESOURCE_EXHAUSTED, "errno:ENOMEM"),
    ("OSError", "[Errno 24] Too many open files", E.SYSTEM_RESOURCE_LIMIT, "errno:EMFILE"),
    ("OSError", "[Errno 11] Resource temporarily unavailable", E.RESOURCE_UNAVAILABLE,
     "errno:EAGAIN"),
    ("OSError", "[Errno 111] Connection refused", E.NETWORK_CONNECTION_ERROR,
     "errno:ECONNREFUSED"),
    ("OSError", "[Errno 110] Connection timed out", E.NETWORK_TIMEOUT, "errno:ETIMEDOUT"),
    ("RuntimeError", "socket failed with ECONNRESET", E.NETWORK_CONNECTION_ERROR,
     "errno:ECONNRESET"),
    ("OSError", "[Errno 98] Address already in use", E.RESOURCE_UNAVAILABLE, "errno:EADDRINUSE"),
    # message patterns
    ("AcceleratorError", ("CUDA error: an illegal memory access was encountered\nCUDA kernel errors "
     "might be asynchronously reported"), E.HARDWARE_NOT_AVAILABLE, "pattern:cuda-sticky"),
    ("RuntimeError", "CUDA error: device-side assert triggered", E.HARDWARE_NOT_AVAILABLE,
     "pattern:cuda-sticky"),
    ("CUDARuntimeError", "cudaErrorMisalignedAddress: misaligned address", E.HARDWARE_NOT_AVAILABLE,
     "pattern:cuda-sticky"),
    ("CudaAPIError", "[719] Call to cuCtxSynchronize results in CUDA_ERROR_LAUNCH_FAILED",
     E.HARDWARE_NOT_AVAILABLE, "pattern:cuda-sticky"),
    ("RuntimeError", "HIP error: an illegal memory access was encountered", E.HARDWARE_NOT_AVAILABLE,
     "pattern:cuda-sticky"),
    # a sticky error first: the out-of-memory text after it is a consequence
    ("RuntimeError", "CUDA error: uncorrectable ECC error encountered; CUDA error: out of memory",
     E.HARDWARE_NOT_AVAILABLE, "pattern:cuda-sticky"),
    ("RuntimeError", "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.10 GiB total)",
     E.RESOURCE_EXHAUSTED, "pattern:cuda-oom"),
    ("RuntimeError", "CUDA error: out of memory", E.RESOURCE_EXHAUSTED, "pattern:cuda-oom"),
    ("RuntimeError", "No CUDA GPUs are available", E.HARDWARE_NOT_AVAILABLE,
     "pattern:cuda-no-device"),
    ("RuntimeError", "CUDA error: no CUDA-capable device is detected", E.HARDWARE_NOT_AVAILABLE,
     "pattern:cuda-no-device"),
    ("RuntimeError", "Found no NVIDIA driver on your system. Please check", E.HARDWARE_NOT_AVAILABLE,
     "pattern:cuda-no-device"),
    ("AssertionError", "Torch not compiled with CUDA enabled", E.TEST_ASSERTION_ERROR,
     "type:AssertionError"),
    ("RuntimeError", "The NVIDIA driver on your system is too old (found version 10020)",
     E.HARDWARE_COMPATIBILITY_ERROR, "pattern:cuda-incompatible"),
    ("RuntimeError", "CUDA error: no kernel image is available for execution on the device",
     E.HARDWARE_COMPATIBILITY_ERROR, "pattern:cuda-incompatible"),
    ("requests.exceptions.HTTPError",
     "503 Server Error: Service Unavailable for url: http://api.local/v1", E.NETWORK_SERVER_ERROR,
     "pattern:http-5xx"),
    ("urllib.error.HTTPError", "HTTP Error 502: Bad Gateway", E.NETWORK_SERVER_ERROR,
     "pattern:http-5xx"),
    ("httpx.HTTPStatusError",
     "Server error '500 Internal Server Error' for url 'http://x/y'", E.NETWORK_SERVER_ERROR,
     "pattern:http-5xx"),
    ("urllib3.exceptions.MaxRetryError",
     ("HTTPSConnectionPool(host='x', port=443): Max retries exceeded with url: / "
      "(Caused by ResponseError('too many 503 error responses'))"), E.NETWORK_SERVER_ERROR,
     "pattern:http-5xx"),
    ("requests.exceptions.HTTPError", "404 Client Error: Not Found for url: http://x",
     E.RESOURCE_NOT_FOUND, "pattern:not-found"),
    ("requests.exceptions.HTTPError", "429 Client Error: Too Many Requests", E.RESOURCE_UNAVAILABLE,
     "pattern:rate-limited"),
    ("urllib.error.URLError", "<urlopen error [Errno -3] Temporary failure in name resolution>",
     E.NETWORK_CONNECTION_ERROR, "pattern:dns-failure"),
    ("urllib3.exceptions.NameResolutionError", "Failed to resolve 'db.internal'",
     E.NETWORK_CONNECTION_ERROR, "type:NameResolutionError"),
    ("psycopg2.OperationalError",
     'could not connect to server: Connection refused\n\tIs the server running on host "db"',
     E.NETWORK_CONNECTION_ERROR, "pattern:db-connection-refused"),
    ("psycopg.OperationalError",
     'connection to server at "127.0.0.1", port 5432 failed: Connection refused',
     E.NETWORK_CONNECTION_ERROR, "pattern:db-connection-refused"),
    ("MySQLdb.OperationalError", "(2003, \"Can't connect to MySQL server on 'db' (111)\")",
     E.NETWORK_CONNECTION_ERROR, "pattern:db-connection-refused"),
    ("redis.exceptions.ResponseError", "Error 111 connecting to localhost:6379. Connection refused.",
     E.NETWORK_CONNECTION_ERROR, "pattern:db-connection-refused"),
    ("sqlalchemy.exc.OperationalError", "(sqlite3.OperationalError) database is locked",
     E.RESOURCE_UNAVAILABLE, "pattern:resource-busy"),
    ("RuntimeError", "request timed out after 30s", E.NETWORK_TIMEOUT, "pattern:network-timeout"),
    ("ValueError", "Fatal Python error: Segmentation fault", E.WORKER_CRASHED,
     "pattern:worker-crash"),
    ("", "[gw3] node down: Not properly terminated", E.WORKER_CRASHED, "pattern:worker-crash"),
    ("Exception", "fixture 'db_session' not found", E.TEST_DEPENDENCY_ERROR,
     "pattern:fixture-missing"),
    ("RuntimeError", "can't start new thread", E.SYSTEM_RESOURCE_LIMIT, "pattern:too-many-files"),
    ("RuntimeError", "std::bad_alloc", E.RESOURCE_EXHAUSTED, "pattern:host-oom"),
    ("RuntimeError", "write failed: No space left on device", E.RESOURCE_EXHAUSTED,
     "pattern:disk-full"),
    ("RuntimeError", "upstream: connection reset by peer", E.NETWORK_CONNECTION_ERROR,
     "pattern:connection-refused"),
    ("Exception", "worker gw2 disconnected", E.WORKER_DISCONNECTED, "pattern:worker-lost"),
    # default
    ("KeyError", "'missing'", E.UNKNOWN, "default"),
    ("ValueError", "bad value", E.UNKNOWN, "default"),
    ("", "", E.UNKNOWN, "default"),
]


@pytest.mark.parametrize(("type_name", "message", "category", "rule"), CASES,
                         ids=[f"{c[0] or 'notype'}-{c[3]}" for c in CASES])
def test_rule(type_name, message, category, rule):
    result = classify(type_name, message)
    assert (result.category, result.rule) == (category, rule)
    assert isinstance(result.detail, str) and result.detail


def test_classification_is_frozen_and_serializable():
    result = classify("ConnectionError", "x")
    assert isinstance(result, Classification)
    with pytest.raises(AttributeError):
        result.category = E.UNKNOWN  # type: ignore[misc]
    assert result.to_dict() == {"category": "network_connection_error",
                                "rule": "type:ConnectionError", "detail": result.detail}


def test_explain_is_classify():
    record = {"type": "OSError", "message": "[Errno 28] No space left on device"}
    assert C.explain(record) == C.classify(record)
    assert C.categorize(record) is E.RESOURCE_EXHAUSTED


def test_mro_list_decides_for_unknown_subclass():
    record = {"type": "myapp.errors.BackendDown", "message": "backend",
              "mro": ["myapp.errors.BackendDown", "builtins.ConnectionRefusedError",
                      "builtins.ConnectionError", "builtins.OSError", "builtins.Exception",
                      "builtins.BaseException", "builtins.object"]}
    result = C.classify(record)
    assert result.category is E.NETWORK_CONNECTION_ERROR
    assert result.rule == "mro:builtins.ConnectionRefusedError"


def test_mro_assertion_subclass_is_hard():
    record = {"type": "mylib.CheckFailed", "message": "connection refused",
              "mro": ["mylib.CheckFailed", "builtins.AssertionError", "builtins.Exception"]}
    result = C.classify(record)
    assert result.category is E.TEST_ASSERTION_ERROR
    assert result.rule == "mro:builtins.AssertionError"


def test_torch_oom_via_mro_as_the_real_one_is():
    record = {"type": "torch.OutOfMemoryError",
              "message": "CUDA out of memory. Tried to allocate 20.00 MiB",
              "mro": ["torch.OutOfMemoryError", "builtins.RuntimeError", "builtins.Exception"]}
    assert C.classify(record).category is E.RESOURCE_EXHAUSTED


def test_chain_root_cause_decides_for_generic_outer():
    record = {"type": "RuntimeError", "message": "could not fetch settings",
              "chain": [{"type": "requests.exceptions.ConnectionError", "message": "x",
                         "relation": "cause"},
                        {"type": "ConnectionRefusedError", "message": "[Errno 111]",
                         "relation": "cause"}]}
    result = C.classify(record)
    assert result.category is E.NETWORK_CONNECTION_ERROR
    assert result.rule == "chain:cause->type:ConnectionRefusedError"


def test_chain_does_not_override_specific_outer_type():
    record = {"type": "AssertionError", "message": "",
              "chain": [{"type": "ConnectionRefusedError", "relation": "cause"}]}
    assert C.classify(record).category is E.TEST_ASSERTION_ERROR
    record = {"type": "ImportError", "message": "",
              "chain": [{"type": "TimeoutError", "relation": "cause"}]}
    assert C.classify(record).category is E.TEST_IMPORT_ERROR


def test_chain_unknown_cause_falls_back_to_outer_message():
    record = {"type": "RuntimeError", "message": "CUDA out of memory.",
              "chain": [{"type": "KeyError", "message": "x", "relation": "cause"}]}
    assert C.classify(record).rule == "pattern:cuda-oom"


def test_context_is_weaker_than_outer_message():
    record = {"type": "RuntimeError", "message": "503 Server Error: Service Unavailable",
              "chain": [{"type": "ImportError", "relation": "context"}]}
    assert C.classify(record).category is E.NETWORK_SERVER_ERROR
    record = {"type": "RuntimeError", "message": "step failed",
              "chain": [{"type": "ImportError", "relation": "context"}]}
    result = C.classify(record)
    assert result.category is E.TEST_IMPORT_ERROR
    assert result.rule == "chain:context->type:ImportError"


def test_exception_group_members():
    record = {"type": "ExceptionGroup", "message": "unhandled errors in a TaskGroup (1 sub-exception)",
              "chain": [{"type": "TimeoutError", "relation": "group"}]}
    result = C.classify(record)
    assert result.category is E.NETWORK_TIMEOUT
    assert result.rule == "chain:group->type:TimeoutError"


def test_a_builders_record_is_read_by_its_qualified_name():
    record = {"type": "Timeout", "qualname": "requests.exceptions.Timeout", "message": "x",
              "mro": ["requests.exceptions.Timeout", "builtins.OSError"]}
    assert C.classify(record).rule == "type:requests.exceptions.Timeout"
    unknown = C.classify({"type": "ValueError", "qualname": "builtins.ValueError"})
    assert unknown.detail == "No rule matched ValueError."


def test_a_nested_chain_is_read_flat_and_its_root_cause_decides():
    root = {"type": "TimeoutError", "message": "", "relation": "cause"}
    middle = {"type": "requests.exceptions.ConnectionError", "relation": "cause", "chain": [root]}
    nested = {"type": "RuntimeError", "message": "outer",
              "chain": [{"type": "RuntimeError", "relation": "cause", "chain": [middle]}]}
    flat = {"type": "RuntimeError", "message": "outer",
            "chain": [{"type": "RuntimeError", "relation": "cause"},
                      {"type": "requests.exceptions.ConnectionError", "relation": "cause"}, root]}
    assert C.classify(nested) == C.classify(flat)
    assert C.classify(nested).rule == "chain:cause->type:TimeoutError"


def test_a_cause_that_is_a_group_is_read_with_its_members():
    group = {"type": "ExceptionGroup", "message": "1 sub-exception", "relation": "cause",
             "chain": [{"type": "AssertionError", "relation": "group"}]}
    result = C.classify({"type": "RuntimeError", "message": "setup", "chain": [group]})
    assert (result.category, result.rule) == (E.TEST_ASSERTION_ERROR,
                                              "chain:cause->chain:group->type:AssertionError")


def test_nested_chain_depth_is_bounded():
    link: dict = {"type": "ConnectionRefusedError", "relation": "cause"}
    for _ in range(50):
        link = {"type": "RuntimeError", "message": "wrap", "relation": "cause", "chain": [link]}
    assert C.classify({"type": "RuntimeError", "chain": [link]}).category is E.UNKNOWN


def test_self_referencing_chain_terminates():
    record: dict = {"type": "RuntimeError", "message": "loop"}
    record["chain"] = [record]
    assert C.classify(record).category is E.UNKNOWN


def test_stderr_tail_is_consulted_after_the_message():
    record = {"type": "", "message": "", "stderr_tail": "Fatal Python error: Segmentation fault"}
    result = C.classify(record)
    assert result.category is E.WORKER_CRASHED
    assert "stderr" in result.detail


def test_type_from_traceback_last_line():
    record = {"traceback": "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                           "ConnectionResetError: [Errno 104] Connection reset by peer"}
    assert C.classify(record).category is E.NETWORK_CONNECTION_ERROR


def test_exception_objects_are_accepted():
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise RuntimeError("wrapper") from exc
    except RuntimeError as exc:
        outer = exc
    result = C.classify(outer)
    assert result.category is E.NETWORK_CONNECTION_ERROR
    assert result.rule.startswith("chain:cause->")
    record = coerce_record(outer)
    assert record["type"] == "RuntimeError"
    assert record["mro"][0] == "builtins.RuntimeError"
    assert record["chain"][0]["relation"] == "cause"


def test_strings_and_none_are_accepted():
    assert C.classify("CUDA out of memory").category is E.RESOURCE_EXHAUSTED
    assert C.classify(None).category is E.UNKNOWN
    assert C.classify(12345).category is E.UNKNOWN


class Unprintable:
    def __str__(self):
        raise RuntimeError("no str for you")


@pytest.mark.parametrize("record", [
    {"type": 42, "message": ["a", "list"]},
    {"type": b"ConnectionError", "message": b"\xff\xfe\xfa connection refused"},
    {"type": Unprintable(), "message": Unprintable()},
    {"type": "RuntimeError", "message": "x", "chain": "not a list"},
    {"type": "RuntimeError", "message": "x", "chain": [1, None, "s"]},
    {"type": "RuntimeError", "message": "x", "mro": "builtins.ConnectionError"},
    {"type": "RuntimeError", "message": "x", "mro": [None, 3, Unprintable()]},
    {"type": "x" * 100_000, "message": None, "traceback": Unprintable()},
    {},
])
def test_malformed_records_never_raise(record):
    assert isinstance(C.classify(record), Classification)


def test_bytes_message_is_decoded():
    result = C.classify({"type": "OSError", "message": b"\xff [Errno 28] No space left on device"})
    assert result.rule == "errno:ENOSPC"


def test_huge_message_is_cut_head_and_tail():
    head = "CUDA out of memory. " + "x" * 5_000_000
    assert C.classify({"type": "RuntimeError", "message": head}).rule == "pattern:cuda-oom"
    tail = "y" * 5_000_000 + " No space left on device"
    assert C.classify({"type": "RuntimeError", "message": tail}).rule == "pattern:disk-full"
    middle = "z" * 3_000_000 + " connection refused " + "z" * 3_000_000
    assert C.classify({"type": "RuntimeError", "message": middle}).category is E.UNKNOWN


def test_truncate_and_safe_text():
    assert truncate("abc", 10) == "abc"
    cut = truncate("a" * 100 + "b" * 100, 20)
    assert cut.startswith("a" * 10) and cut.endswith("b" * 10) and "cut" in cut
    assert len(safe_text("q" * 10**6)) < MAX_MESSAGE_CHARS + 64
    assert safe_text(Unprintable()) == "<unprintable Unprintable: str() raised RuntimeError>"
    assert safe_text(None) == ""


def test_user_type_mapping_wins_over_everything():
    cfg = load_config({"error_categories": {"AssertionError": "NETWORK_TIMEOUT",
                                            "myapp.FlakyBackend": "NETWORK_SERVER_ERROR",
                                            "Base": "RESOURCE_UNAVAILABLE"}})
    c = ErrorClassifier(cfg)
    r = c.classify({"type": "AssertionError", "message": "x"})
    assert (r.category, r.rule) == (E.NETWORK_TIMEOUT, "user-type:AssertionError")
    r = c.classify({"type": "myapp.FlakyBackend"})
    assert (r.category, r.rule) == (E.NETWORK_SERVER_ERROR, "user-type:myapp.FlakyBackend")
    r = c.classify({"type": "pkg.Derived", "mro": ["pkg.Derived", "pkg.Base", "builtins.Exception"]})
    assert (r.category, r.rule) == (E.RESOURCE_UNAVAILABLE, "user-type:Base")


def test_user_pattern_comes_after_hard_types_and_before_tables():
    cfg = load_config({"error_patterns": {r"(?i)custom\s+error\s+pattern": "TEST_DEPENDENCY_ERROR",
                                          r"flaky backend": "NETWORK_SERVER_ERROR"}})
    c = ErrorClassifier(cfg)
    r = c.classify({"type": "ValueError", "message": "a CUSTOM error  pattern here"})
    assert (r.category, r.rule) == (E.TEST_DEPENDENCY_ERROR,
                                    r"user-pattern:(?i)custom\s+error\s+pattern")
    r = c.classify({"type": "ConnectionError", "message": "flaky backend"})
    assert r.rule == "user-pattern:flaky backend"
    r = c.classify({"type": "AssertionError", "message": "flaky backend"})
    assert r.category is E.TEST_ASSERTION_ERROR


def test_builtin_patterns_are_lower_case_safe():
    # patterns run on the lower-cased text: an upper-case escape (\D, \S, \W, \B) would change
    for pid, _, rx in BUILTIN_PATTERNS:
        assert not re.search(r"\\[DSWBAZ]", rx), pid
        assert pid in TRIGGERS


@pytest.mark.parametrize(("pid", "category", "rx"), BUILTIN_PATTERNS,
                         ids=[p[0] for p in BUILTIN_PATTERNS])
def test_every_pattern_is_tested_here(pid, category, rx):
    rules = {c[3] for c in CASES}
    assert f"pattern:{pid}" in rules


def test_trigger_words_do_not_hide_matches():
    """Brute force over every pattern == word-triggered search, on all case messages."""
    from pytest_dtf_errors.engine.classify import _COMPILED, _WORD

    for _, message, _, _ in CASES:
        lower = message.lower()
        words = set(_WORD.findall(lower))
        for pid, _, compiled, triggers in _COMPILED:
            if compiled.search(lower):
                assert not words.isdisjoint(triggers), (pid, message)


def test_cache_returns_same_answer():
    c = ErrorClassifier()
    rec = {"type": "RuntimeError", "message": "CUDA out of memory"}
    first = c.classify(rec)
    assert c.classify(dict(rec)) is first
    c.cache_clear()
    assert c.classify(rec) == first


GROUP_MEMBERS = [
    {"type": "ConnectionRefusedError", "message": "connection refused"},
    {"type": "TimeoutError", "message": "timed out"},
    {"type": "ValueError", "message": "plain"},
    {"type": "MemoryError", "message": ""},
    {"type": "OSError", "message": "[Errno 28] No space left on device"},
    {"type": "AssertionError", "message": "assert 1 == 2"},
    {"type": "ModuleNotFoundError", "message": "No module named 'x'"},
    {"type": "ExceptionGroup", "message": "inner",
     "chain": [{"type": "BrokenPipeError", "message": "", "relation": "group"},
               {"type": "SyntaxError", "message": "bad", "relation": "group"}]},
]


def _group(members, message="group (n sub-exceptions)"):
    return {"type": "ExceptionGroup", "message": message,
            "chain": [dict(m, relation="group") for m in members]}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(range(len(GROUP_MEMBERS))), min_size=1, max_size=6).flatmap(
    lambda idx: st.tuples(st.just(idx), st.permutations(idx))))
def test_an_exception_group_is_decided_the_same_whatever_the_member_order(pair):
    first, second = pair
    a = ErrorClassifier().classify(_group([GROUP_MEMBERS[i] for i in first]))
    b = ErrorClassifier().classify(_group([GROUP_MEMBERS[i] for i in second]))
    assert a == b
    kinds = {GROUP_MEMBERS[i]["type"] for i in first}
    if "AssertionError" in kinds:
        assert a.category is E.TEST_ASSERTION_ERROR


@pytest.mark.parametrize("message", ["request timed out", "connection refused", "ENOSPC"])
def test_an_assertion_in_a_group_decides_before_the_message_and_a_cause(message):
    record = _group([{"type": "ConnectionError", "message": "x"},
                     {"type": "AssertionError", "message": "wrong"}], message)
    record["chain"].append({"type": "TimeoutError", "message": "", "relation": "cause"})
    result = C.classify(record)
    assert (result.category, result.rule) == (E.TEST_ASSERTION_ERROR,
                                              "chain:group->type:AssertionError")


def test_a_group_of_unknown_members_is_unknown_and_retryable_members_rank_by_category():
    assert C.classify(_group([{"type": "ValueError"}, {"type": "KeyError"}])).category is E.UNKNOWN
    mixed = _group([{"type": "ValueError"}, {"type": "ConnectionRefusedError"},
                    {"type": "MemoryError"}])
    assert C.classify(mixed).category is E.RESOURCE_EXHAUSTED  # RESOURCE_* come first


def test_an_assertion_far_down_a_big_group_is_recorded():
    from pytest_dtf_errors.engine.classify import coerce_record

    try:
        group_type = ExceptionGroup  # a builtin since 3.11
    except NameError:  # Python 3.10: pytest's own dependency
        from exceptiongroup import ExceptionGroup as group_type
    group = group_type("many", [ConnectionError("x")] * 20 + [AssertionError("late")])
    rec = coerce_record(group)
    assert "AssertionError" in [m["type"] for m in rec["chain"]]
    assert C.classify(rec).category is E.TEST_ASSERTION_ERROR


@pytest.mark.parametrize("typename, category", [
    ("WorkerCrash", E.WORKER_CRASHED), ("WorkerSegfault", E.SYSTEM_CRASH),
    ("WorkerOOMKilled", E.RESOURCE_EXHAUSTED), ("WorkerLost", E.WORKER_DISCONNECTED),
    ("HardwareMismatchError", E.HARDWARE_MISMATCH),
])
def test_the_plugins_crash_records_are_built_in_types_not_user_ones(typename, category):
    from pytest_dtf_errors.engine.record import CRASH_TYPES

    assert CRASH_TYPES[typename] == category.name  # the plugin's table and ours agree
    record = {"type": typename, "mro": [f"pytest_dtf_errors.{typename}"],
              "message": "worker 'gw0' crashed while running 't.py::x' (killed by SIGKILL)"}
    result = C.classify(record)
    assert (result.category, result.rule) == (category, f"type:{typename}")
