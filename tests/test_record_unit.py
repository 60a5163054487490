"""The error record: bounded, JSON-ready, whatever the exception does; one builder for the
guide API and the plugin, and one wire format between worker and controller."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dtf_errors.engine import DistributedErrorHandler, ErrorClassifier, record


class NoStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("nope")


class WeirdStr(Exception):
    def __str__(self):  # type: ignore[override]
        return 42  # noqa: PLE0307 - the hostile case under test


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return caught


def test_fields_are_the_listed_ones_and_json_ready():
    rec = record.from_exception(raised(ConnectionRefusedError(111, "Connection refused")), phase="call", worker="gw0", hardware=["cpu", "cuda"])
    assert set(record.RECORD_FIELDS) <= set(rec)
    assert rec["type"] == "ConnectionRefusedError"
    assert rec["mro"][:2] == ["builtins.ConnectionRefusedError", "builtins.ConnectionError"]
    assert rec["hardware_context"] == {"hardware_type": "cuda", "tags": ["cpu", "cuda"]}
    assert rec["frames"] and rec["frames"][0]["function"] == "raised"
    json.dumps(rec)


def test_the_chain_is_recorded_and_bounded():
    def deep(n: int) -> BaseException:
        try:
            if n == 0:
                raise OSError(28, "No space left on device")
            raise RuntimeError(f"level {n}") from deep(n - 1)
        except BaseException as exc:  # noqa: BLE001
            return exc

    rec = record.from_exception(deep(20))
    depth, node = 0, rec
    while node["chain"]:
        node = node["chain"][0]
        depth += 1
    assert depth == record.MAX_CHAIN
    assert DistributedErrorHandler().classify(record.from_exception(deep(1))).category.value == "resource_exhausted"


def test_a_cycle_in_the_context_chain_terminates():
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    rec = record.from_exception(a)
    assert json.loads(json.dumps(rec)) == rec
    messages, node = [rec["message"]], rec
    while node["chain"]:
        [node] = node["chain"]
        assert node["relation"] == "context"
        messages.append(node["message"])
    # the cycle is followed to the depth bound, not forever
    assert messages == ["a", "b", "a", "b", "a", "b"][: record.MAX_CHAIN + 1]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is new in 3.11")
def test_exception_groups_record_their_members():
    members = [ConnectionError("x"), TimeoutError("y")]
    group = ExceptionGroup("many", members)  # noqa: F821 - a builtin since 3.11
    rec = record.from_exception(raised(group))
    assert [m["type"] for m in rec["chain"] if m["relation"] == "group"] == ["ConnectionError", "TimeoutError"]


def test_hostile_str_and_huge_messages():
    assert "unprintable NoStr" in record.from_exception(raised(NoStr()))["message"]
    assert "unprintable WeirdStr" in record.from_exception(raised(WeirdStr()))["message"]
    rec = record.from_exception(raised(ValueError("x" * 10_000_000)))
    assert len(rec["message"]) <= record.MAX_MESSAGE + 100
    assert len(rec["traceback"]) <= record.MAX_TRACEBACK + 100


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.binary()), st.sampled_from([ValueError, OSError, ConnectionError, AssertionError]))
def test_any_message_gives_a_json_ready_classifiable_record(message, kind):
    rec = record.from_exception(raised(kind(message)), phase="call", worker="gw1")
    assert json.loads(json.dumps(rec)) == rec
    assert (rec["type"], rec["phase"], rec["worker"]) == (kind.__name__, "call", "gw1")
    assert len(rec["message"]) <= record.MAX_MESSAGE + 100
    result = DistributedErrorHandler().classify(rec)
    assert isinstance(result.category.value, str) and result.rule
    if kind is AssertionError:
        assert result.category.value == "test_assertion_error"


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=2000))
def test_records_rebuilt_from_a_longrepr_are_bounded(text):
    rec = record.from_longrepr(text * 10, phase="setup", worker="gw0")
    json.dumps(rec)
    assert len(rec["message"]) <= record.MAX_MESSAGE + 100


def test_crash_records_carry_signal_and_type():
    rec = record.crash("t.py::test", "gw3", typename="WorkerSegfault", exitcode=-11, signal_name="SIGSEGV", hardware=["cpu"])
    assert rec["type"] == "WorkerSegfault" and rec["signal"] == "SIGSEGV"
    assert "killed by SIGSEGV" in rec["message"]


# any code point, lone surrogates included (st.text() leaves them out)
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT, st.sampled_from([ValueError, OSError, ConnectionError, AssertionError]))
def test_every_string_of_a_record_encodes_to_utf8(message, kind):
    rec = record.from_exception(raised(kind(message)), phase="call", worker="gw1")
    json.dumps(rec, ensure_ascii=False).encode("utf-8")
    if message.isascii():
        assert rec["message"] == message


def test_a_lone_surrogate_is_kept_as_an_escape():
    rec = record.from_exception(raised(Exception("bad \udcff text")))
    assert rec["message"] == "bad \\udcff text"
    assert "bad \\udcff text" in rec["traceback"]
    assert record.encodable("naïve ü") == "naïve ü"
    odd = type("OddError", (Exception,), {"__module__": "mod\udcff"})
    assert record.from_exception(raised(odd("x")))["qualname"] == "mod\\udcff.OddError"
    escaped = record.from_exception(raised(ValueError("\udcff" * 100_000)))["message"]
    assert len(escaped) <= record.MAX_MESSAGE + 100 and escaped.startswith("\\udcff")


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.one_of(st.none(), st.integers(), ANY_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(ANY_TEXT, inner, max_size=4)),
    max_leaves=20,
))
def test_wire_safe_makes_any_serialized_report_sendable(value):
    safe = record.wire_safe(value)
    json.dumps(safe, ensure_ascii=False).encode("utf-8")
    if json.dumps(value, ensure_ascii=False).isascii():
        assert safe is value  # nothing to fix: nothing copied


def test_members_that_fail_the_test_are_recorded_wherever_they_stand_in_a_group():
    try:
        group_type = ExceptionGroup  # a builtin since 3.11
    except NameError:  # Python 3.10: pytest's own dependency
        from exceptiongroup import ExceptionGroup as group_type
    inner = group_type("inner", [ValueError("v"), AssertionError("deep")])
    members = [ConnectionError(str(i)) for i in range(30)] + [inner, SyntaxError("late")]
    rec = record.from_exception(raised(group_type("big", members)))
    kept = [m["type"] for m in rec["chain"] if m["relation"] == "group"]
    assert len(kept) == record.MAX_GROUP_MEMBERS
    assert kept[:2] == ["ExceptionGroup", "SyntaxError"] and set(kept[2:]) == {"ConnectionError"}
    # an assertion (in the nested group) ranks before a syntax error
    assert DistributedErrorHandler().classify(rec).category.value == "test_assertion_error"


# --------------------------------------------------------------------------- the wire


def test_the_fields_are_listed_once_in_the_typed_record():
    assert record.RECORD_FIELDS == tuple(
        k for k in record.ErrorRecord.__annotations__ if k in record.ErrorRecord.__required_keys__)
    assert {"relation", "exitcode", "signal", "teardown_error", "forensics"} == record.ErrorRecord.__optional_keys__


@settings(max_examples=200, deadline=None)
@given(st.one_of(ANY_TEXT, st.binary(max_size=300), st.text(max_size=300)),
       st.sampled_from([ValueError, OSError, ConnectionError, AssertionError, TimeoutError]),
       st.booleans())
def test_a_built_record_crosses_the_wire_unchanged(message, kind, with_cause):
    exc = raised(kind(message))
    if with_cause:
        try:
            raise RuntimeError(message) from exc
        except RuntimeError as outer:
            exc = outer
    rec = record.from_exception(exc, phase="call", worker="gw1", hardware=["cpu", "cuda"],
                                stderr=str(message))
    wire = record.to_wire(rec)
    json.dumps(wire, ensure_ascii=False).encode("utf-8")
    assert record.from_wire(json.loads(json.dumps(wire))) == rec


def test_huge_text_crosses_the_wire_bounded_and_unchanged():
    rec = record.from_exception(raised(ValueError("x" * 10_000_000)), stderr="e" * 1_000_000)
    assert record.from_wire(record.to_wire(rec)) == rec


class HostileMapping(dict):
    def get(self, key, default=None):
        raise RuntimeError("no get for you")


WIRE_KEYS = st.sampled_from([*record.ErrorRecord.__annotations__, "hardware_type", "tags", "file",
                             "line", "function", "x"])
ANY_WIRE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), ANY_TEXT, st.binary(max_size=40),
              st.integers(0, 60_000).map("y\udcff".__mul__)),
    lambda inner: st.one_of(st.lists(inner, max_size=8), st.tuples(inner, inner),
                            st.dictionaries(st.one_of(WIRE_KEYS, ANY_TEXT), inner, max_size=8)),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None)
@given(ANY_WIRE)
def test_from_wire_makes_a_bounded_record_of_anything(data):
    rec = record.from_wire(data)
    assert set(record.RECORD_FIELDS) <= set(rec) <= set(record.ErrorRecord.__annotations__) - {
        "teardown_error"}  # the controller's field: no worker sends it
    json.dumps(rec, ensure_ascii=False).encode("utf-8")
    assert record.from_wire(rec) == rec  # what it accepted, it accepts as it is
    node, depth = rec, 0
    while node["chain"]:
        assert len(node["chain"]) <= 2 + record.MAX_GROUP_MEMBERS
        node, depth = node["chain"][0], depth + 1
    assert depth <= record.MAX_CHAIN
    assert len(rec["message"]) <= record.MAX_MESSAGE + 100
    assert len(rec["traceback"]) <= record.MAX_TRACEBACK + 100
    assert len(rec["stderr_tail"]) <= record.MAX_STDERR
    assert all(len(m) <= record.MAX_TYPE + 100 for m in rec["mro"])
    assert len(rec["mro"]) <= record.MAX_MRO and len(rec["frames"]) <= record.MAX_FRAMES
    ErrorClassifier().classify(rec)


def test_from_wire_never_raises_and_bounds_what_it_reads():
    assert record.from_wire(None)["message"] == ""
    assert record.from_wire(b"\xff bytes")["message"] == "\ufffd bytes"
    assert "unreadable" in record.from_wire(HostileMapping(type="x"))["message"]
    deep: dict = {"type": "ConnectionRefusedError"}
    for _ in range(100):
        deep = {"type": "RuntimeError", "chain": [deep] * 50, "relation": "cause"}
    rec = record.from_wire(deep)
    assert len(json.dumps(rec)) < 10_000_000
    loop: dict = {"type": "RuntimeError", "message": "loop"}
    loop["chain"] = [loop]
    assert record.from_wire(loop)["chain"][0]["type"] == "RuntimeError"
    odd = record.from_wire({"type": 42, "message": ["not", "text"], "frames": [{"line": True}],
                            "exitcode": 2**80, "hardware_context": {"tags": "cuda"}})
    assert (odd["type"], odd["message"], odd["frames"][0]["line"], odd["exitcode"]) == ("42", "", None, None)
    assert odd["hardware_context"] == {"hardware_type": None, "tags": []}


# --------------------------------------------------------------------------- one record for the guide API and the plugin


def chained() -> BaseException:
    requests_error = type("ConnectionError", (ConnectionError,), {"__module__": "requests.exceptions"})
    try:
        try:
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except OSError as exc:
                raise requests_error("Max retries exceeded") from exc
        except ConnectionError as exc:
            raise RuntimeError("could not fetch settings") from exc
    except RuntimeError as exc:
        return exc


def in_context() -> BaseException:
    try:
        try:
            raise FileNotFoundError(2, "No such file or directory")
        except OSError:
            raise RuntimeError("while cleaning up")
    except RuntimeError as exc:
        return exc


def group_of(*members: BaseException) -> BaseException:
    try:
        group_type = ExceptionGroup  # a builtin since 3.11
    except NameError:  # Python 3.10: pytest's own dependency
        from exceptiongroup import ExceptionGroup as group_type
    return raised(group_type("unhandled errors in a TaskGroup", list(members)))


class HostileConnection(ConnectionError):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


# a third-party-like module's subclasses of built-in errors
BackendUnreachable = type("BackendUnreachable", (ConnectionError,), {"__module__": "acme.net"})
RequestsTimeout = type("Timeout", (OSError,), {"__module__": "requests.exceptions"})

# (exception, category, rule) as the guide API classified each before the builders were one
SAME_EXCEPTIONS = {
    "chained": (chained, "NETWORK_CONNECTION_ERROR", "chain:cause->type:ConnectionRefusedError"),
    "context": (in_context, "RESOURCE_NOT_FOUND", "chain:context->type:FileNotFoundError"),
    "group": (lambda: group_of(ValueError("v"), TimeoutError("t"), ConnectionRefusedError("c")),
              "NETWORK_TIMEOUT", "chain:group->type:TimeoutError"),
    "group-assert": (lambda: group_of(*[ConnectionError("x")] * 3, AssertionError("late")),
                     "TEST_ASSERTION_ERROR", "chain:group->type:AssertionError"),
    "nested-group": (lambda: group_of(ValueError("v"), group_of(KeyError("k"), MemoryError())),
                     "RESOURCE_EXHAUSTED", "chain:group->chain:group->type:MemoryError"),
    "hostile-str": (lambda: raised(NoStr()), "UNKNOWN", "default"),
    "hostile-str-connection": (lambda: raised(HostileConnection()), "NETWORK_CONNECTION_ERROR",
                               "mro:builtins.ConnectionError"),
    "third-party-subclass": (lambda: raised(BackendUnreachable("backend down")),
                             "NETWORK_CONNECTION_ERROR", "mro:builtins.ConnectionError"),
    "third-party-qualified": (lambda: raised(RequestsTimeout("read timed out")),
                              "NETWORK_TIMEOUT", "type:requests.exceptions.Timeout"),
}


def through_the_plugin(exc: BaseException) -> object:
    """What the controller classifies: built on the worker, sent as JSON, read back."""
    rec = record.from_exception(exc, phase="call", worker="gw0", hardware=["cpu"], rootdir="/")
    return record.from_wire(json.loads(json.dumps(record.to_wire(rec))))


@pytest.mark.parametrize("case", SAME_EXCEPTIONS.values(), ids=SAME_EXCEPTIONS.keys())
def test_the_guide_api_and_the_plugin_classify_an_exception_alike(case):
    make, category, rule = case
    exc = make()
    guide = ErrorClassifier().classify(exc)
    handled = DistributedErrorHandler().handle_error("t", exc, {"worker_id": "gw0"})
    plugin = ErrorClassifier().classify(through_the_plugin(exc))
    assert (guide.category.name, guide.rule) == (category, rule)
    assert (handled["category"].name, handled["rule"]) == (category, rule)
    assert (plugin.category.name, plugin.rule) == (category, rule)
    assert plugin.detail == guide.detail


def test_a_nested_chain_is_read_as_the_root_cause_decides():
    rec = record.from_exception(chained())
    assert [link["relation"] for link in rec["chain"]] == ["cause"]  # nested: the cause's own is below
    assert rec["chain"][0]["chain"][0]["type"] == "ConnectionRefusedError"
    assert ErrorClassifier().classify(rec).rule == "chain:cause->type:ConnectionRefusedError"


def test_the_guide_apis_exceptions_carry_no_made_up_hardware():
    exc = raised(RuntimeError("no CUDA-capable device is detected"))
    assert record.from_exception(exc)["hardware_context"] == {"hardware_type": None, "tags": []}
    result = DistributedErrorHandler().handle_error("t", exc, {"worker_id": "gw0"})
    assert result["category"].name == "HARDWARE_NOT_AVAILABLE"
    assert not [a for a in result["recovery_action"]["actions"] if a["kind"] == "mark_unavailable"]


@settings(max_examples=100, deadline=None)
@given(st.one_of(ANY_TEXT, st.binary(max_size=300)),
       st.sampled_from([ValueError, OSError, ConnectionError, AssertionError, TimeoutError]))
def test_a_record_that_crossed_the_wire_classifies_as_its_exception(message, kind):
    try:
        raise RuntimeError(message) from raised(kind(message))
    except RuntimeError as exc:
        assert ErrorClassifier().classify(through_the_plugin(exc)) == ErrorClassifier().classify(exc)
