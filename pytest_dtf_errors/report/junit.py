"""JUnit XML in Maven Surefire's rerun format, rewritten from the ledger.

pytest's --junitxml writes one <testcase> per attempt it saw; `rewrite` keeps
one per test and records the other attempts as Surefire does:
<flakyFailure>/<flakyError> under a test that passed on a retry,
<rerunFailure>/<rerunError> beside the <failure>/<error> of a test that
failed after retries. Jenkins' Flaky Test Handler, Surefire and Gradle read it.
A crashed attempt's forensics (faulthandler's traceback, the last tests, the
exit, memory) go in the testcase's <system-err>, after pytest's captured stderr.
One exception, pytest's own: a test whose last attempt failed in call and then
errored in teardown keeps a second <testcase> with the teardown's <error>
(the JUnit schema allows one result per testcase).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any

from ..ledger import Attempt, Ledger, TestRecord
from .json_report import final_outcome, poison_roles, write_bytes_atomic

_bin_xml_escape: Callable[[object], str] | None
try:  # the exact rules pytest used to name the testcase
    from _pytest.junitxml import bin_xml_escape as _bin_xml_escape
    from _pytest.junitxml import mangle_test_address
except ImportError:  # pragma: no cover - pytest moved its internals
    _bin_xml_escape = None

    def mangle_test_address(address: str) -> list[str]:
        path, bracket, params = address.partition("[")
        names = path.split("::")
        names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
        names[-1] += bracket + params
        return names


INTERIM_TAGS = ("flakyFailure", "flakyError", "rerunFailure", "rerunError")
FINAL_TAGS = ("failure", "error")
MAX_MESSAGE = 2_000
FORENSICS_HEADER = "--- dtf crash forensics ---"  # starts dtf's part of a testcase's <system-err>
MAX_TRACE = 200_000
_ILLEGAL_XML = re.compile(
    "[^\u0009\u000a\u000d\u0020-\u007e\u0080-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def testcase_key(nodeid: str, prefix: str | None = None) -> tuple[str, str]:
    """(classname, name) of the <testcase> pytest's junitxml writes for nodeid."""
    names = mangle_test_address(nodeid)
    classnames = names[:-1]
    if prefix:
        classnames.insert(0, prefix)
    return ".".join(classnames), xml_text(names[-1])


def rewrite(path: str | os.PathLike[str], ledger: Ledger, *, prefix: str | None = None) -> None:
    """Rewrite pytest's JUnit file at path so that it tells the ledger's story.

    Each ledger test keeps one <testcase> (and the teardown <error> of a
    failed call beside it, as pytest writes it); tests with failed or repeated
    attempts get Surefire's interim children and dtf_category/dtf_attempts
    properties; suite counts are recomputed. Tests whose nodeids map to the
    same classname and name (``a.b/test_x.py`` and ``a/b/test_x.py``) get one
    testcase each, written from the ledger, told apart by a dtf_nodeid
    property. Testcases the ledger does not know, and ledger tests without a
    testcase, are left as pytest wrote them.
    `prefix` is pytest's --junitprefix, if one was given. Written atomically.
    """
    tree = ET.parse(os.fspath(path))
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))

    by_key: dict[tuple[str, str], list[TestRecord]] = {}
    for rec in ledger:
        by_key.setdefault(testcase_key(rec.nodeid, prefix), []).append(rec)

    found: dict[tuple[str, str], list[tuple[ET.Element, ET.Element]]] = {}
    for suite in suites:
        for case in suite.findall("testcase"):
            if case.get("name") is None and case.get("classname") is None:
                # junitxml's trace of a report it could not place (a worker crash
                # turned into a rerun): not a test, drop it.
                suite.remove(case)
                continue
            key = (case.get("classname", ""), case.get("name", ""))
            if key in by_key:
                found.setdefault(key, []).append((suite, case))

    roles = poison_roles(ledger) if ledger.poisonings else {}
    for key, entries in found.items():
        if len(by_key[key]) == 1:
            _merge(entries, by_key[key][0], roles.get(by_key[key][0].nodeid))
        else:  # two nodeids, one name: which testcase is whose is unknown
            _rebuild(entries, by_key[key], key)

    for suite in suites:
        _recount(suite)
    if root.tag == "testsuites":
        _recount_root(root, suites)
    text = '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode")
    write_bytes_atomic(path, text.encode("utf-8"))


def _merge(
    entries: list[tuple[ET.Element, ET.Element]], rec: TestRecord, poison: dict[str, Any] | None = None
) -> None:
    """One test's testcases (one per attempt) become one, telling every attempt; a poisoned
    worker's culprit or victim says so in dtf_poison_* properties."""
    outcome = final_outcome(rec)[0]
    last = rec.failed_attempts[-1] if rec.failed_attempts else None
    keep = _choose(entries, outcome, last)
    teardown = _teardown_error(rec) if outcome in ("failed", "error") else None
    companion = None
    if teardown is not None:
        companion = next(
            (c for _, c in reversed(entries) if c is not keep and _is_teardown_case(c)), None
        )
    dropped = [case for _, case in entries if case is not keep and case is not companion]
    for suite, case in entries:
        if case is not keep and case is not companion:
            suite.remove(case)
    if rec.attempts and (rec.failed_attempts or len(rec.attempts) > 1):
        _annotate(keep, rec, dropped)
    if poison is not None:
        _set_properties(keep, {
            "dtf_poison_role": str(poison["role"]),
            "dtf_poison_worker": str(poison["worker"]),
            "dtf_poison_signature": str(poison["signature"]),
            "dtf_culprit": str(poison["culprit"]),
        })
    memory = memory_properties(rec)
    if memory:
        _set_properties(keep, memory)
    if teardown is not None and companion is None:
        suite = next(s for s, c in entries if c is keep)
        suite.insert(list(suite).index(keep) + 1, _teardown_case(keep, teardown))


def memory_properties(rec: TestRecord) -> dict[str, str]:
    """What the history says of the test (session.memory), and its repeats, as properties."""
    out: dict[str, str] = {}
    if rec.quarantine is not None:
        out["dtf_quarantined"] = "true"
        out["dtf_quarantine_reason"] = str(rec.quarantine.get("reason"))
    history = rec.history
    if history is not None:
        out["dtf_flaky_score"] = f"{float(history.get('score') or 0.0):.4f}"
        notes = [str(a.get("text")) for a in history.get("annotations") or ()]
        kinds = [str(a.get("kind")) for a in history.get("annotations") or ()]
        if notes:
            out["dtf_history"] = "; ".join(notes)
            out["dtf_history_kind"] = ",".join(kinds)
    repeat = rec.repeat
    if repeat is not None:
        out["dtf_repeat_kind"] = str(repeat.get("kind"))
        out["dtf_repeat_runs"] = str(repeat.get("runs"))
        out["dtf_repeat_passed"] = str(repeat.get("passed"))
    return out


def _rebuild(
    entries: list[tuple[ET.Element, ET.Element]], recs: list[TestRecord], key: tuple[str, str]
) -> None:
    """Testcases for tests that share one (classname, name), written from the ledger."""
    suite, first = entries[0]
    at = list(suite).index(first)
    for s, case in entries:
        s.remove(case)
    for rec in recs:
        for case in _fresh_cases(rec, key):
            suite.insert(at, case)
            at += 1


def _fresh_cases(rec: TestRecord, key: tuple[str, str]) -> list[ET.Element]:
    outcome, reason = final_outcome(rec)
    duration = rec.attempts[-1].duration if rec.attempts else 0.0
    case = ET.Element(
        "testcase", {"classname": key[0], "name": key[1], "time": f"{duration:.3f}"}
    )
    if outcome == "skipped":
        reason = reason or "skipped"
        ET.SubElement(case, "skipped", {"type": "pytest.skip", "message": xml_text(reason)})
    _annotate(case, rec, [])
    _set_properties(case, {"dtf_nodeid": rec.nodeid})
    cases = [case]
    teardown = _teardown_error(rec) if outcome in ("failed", "error") else None
    if teardown is not None:
        cases.append(_teardown_case(case, teardown))
    return cases


def _teardown_error(rec: TestRecord) -> dict[str, Any] | None:
    """The teardown error of a last attempt that had failed in call already."""
    last = rec.attempts[-1] if rec.attempts else None
    if last is None or not last.failed or last.phase != "call" or not last.error:
        return None
    teardown = last.error.get("teardown_error")
    return dict(teardown) if isinstance(teardown, dict) else None


def _is_teardown_case(case: ET.Element) -> bool:
    error = case.find("error")
    return error is not None and str(error.get("message", "")).startswith("failed on teardown")


def _teardown_case(case: ET.Element, error: dict[str, Any]) -> ET.Element:
    """The second testcase pytest writes for a teardown error after a failed call."""
    out = ET.Element("testcase", {k: v for k, v in case.attrib.items() if k != "time"})
    out.set("time", "0.000")
    reason = f"{error.get('type') or 'Error'}: {error.get('message') or ''}"
    el = ET.SubElement(
        out, "error", {"message": xml_text(_clip(f'failed on teardown with "{reason}"', MAX_MESSAGE))}
    )
    el.text = xml_text(_clip(str(error.get("traceback") or reason), MAX_TRACE))
    return out


def _choose(
    entries: list[tuple[ET.Element, ET.Element]], outcome: str, last: Attempt | None = None
) -> ET.Element:
    """The testcase that matches the final outcome, the latest one first.

    For a failed test, the one with the result of its last failed attempt
    (a <failure> for a failed call, not the teardown <error> after it).
    """
    cases = [case for _, case in entries]
    wanted = set(FINAL_TAGS)
    if outcome in ("failed", "error") and last is not None:
        wanted = {"failure" if _is_failure(last) else "error"}

    def matches(case: ET.Element, final: set[str]) -> bool:
        tags = {child.tag for child in case}
        if outcome in ("failed", "error"):
            return bool(tags & final)
        if outcome == "skipped":
            return "skipped" in tags
        return not tags & {*FINAL_TAGS, "skipped"}

    for final in (wanted, set(FINAL_TAGS)):
        for case in reversed(cases):
            if matches(case, final):
                return case
    return cases[-1]


def _annotate(case: ET.Element, rec: TestRecord, dropped: list[ET.Element]) -> None:
    previous = [child for child in case if child.tag in INTERIM_TAGS]
    for child in previous:
        case.remove(child)
    outcome, reason = final_outcome(rec)
    failed = rec.failed_attempts
    if outcome in ("passed", "flaky"):
        for child in list(case):
            if child.tag in FINAL_TAGS:  # the ledger says it passed in the end
                case.remove(child)
        interim, kind = failed, "flaky"
    elif outcome in ("failed", "error"):
        interim, kind = failed[:-1], "rerun"
        if not any(child.tag in FINAL_TAGS for child in case):
            _insert(case, _final_result(failed[-1] if failed else None, outcome, reason))
    else:  # skipped in the end: earlier failures are still worth showing
        interim, kind = failed, "rerun"

    # Captured output of earlier attempts lives in the testcases pytest wrote for
    # them (or, on a second rewrite, in our own interim children); use it only
    # when they line up one to one with the attempts.
    donors = [_Donor.of(c) for c in dropped if any(ch.tag in FINAL_TAGS for ch in c)]
    if len(donors) != len(interim):
        donors = [_Donor.of(el) for el in previous]
    if len(donors) != len(interim):
        donors = [_Donor() for _ in interim]
    for att, donor in zip(interim, donors):
        tag = kind + ("Failure" if _is_failure(att) else "Error")
        _insert(case, _interim_result(tag, att, donor))
    _set_properties(case, {"dtf_category": _category(rec), "dtf_attempts": str(len(rec.attempts))})
    _add_forensics(case, rec)


def _add_forensics(case: ET.Element, rec: TestRecord) -> None:
    """The crash forensics of every crashed attempt, after what <system-err> already holds
    (replaced, not repeated, on a second rewrite)."""
    texts = [
        f"attempt {att.attempt} on {att.node}:\n{att.error['forensics']}"
        for att in rec.attempts
        if att.error and att.error.get("forensics")
    ]
    err = case.find("system-err")
    before = (err.text or "") if err is not None else ""
    before = before.split(FORENSICS_HEADER, 1)[0].rstrip("\n")
    if not texts:
        if err is not None and err.text != before:  # ours from an earlier rewrite, gone from the ledger
            err.text = before
        return
    if err is None:
        err = ET.SubElement(case, "system-err")
    body = xml_text(_clip(f"{FORENSICS_HEADER}\n" + "\n\n".join(texts), MAX_TRACE))
    err.text = f"{before}\n{body}" if before else body


class _Donor:
    """What an earlier XML element knew about an attempt: message, trace, output."""

    __slots__ = ("err", "message", "out", "trace")

    def __init__(
        self,
        message: str | None = None,
        trace: str | None = None,
        out: str | None = None,
        err: str | None = None,
    ) -> None:
        self.message, self.trace, self.out, self.err = message, trace, out, err

    @classmethod
    def of(cls, el: ET.Element) -> _Donor:
        if el.tag in INTERIM_TAGS:
            result: ET.Element | None = el
            trace_el = el.find("stackTrace")
            trace = None if trace_el is None else trace_el.text
        else:  # a <testcase>
            result = next((ch for ch in el if ch.tag in FINAL_TAGS), None)
            trace = None if result is None else result.text
        out, err = el.find("system-out"), el.find("system-err")
        return cls(
            None if result is None else result.get("message"),
            trace,
            None if out is None else out.text,
            None if err is None else err.text,
        )


def _is_failure(att: Attempt) -> bool:
    """A failure is an assertion in the call phase; setup, teardown and crashes are errors."""
    return att.outcome == "failed" and att.phase in (None, "call")


def _interim_result(tag: str, att: Attempt, donor: _Donor) -> ET.Element:
    error: Mapping[str, Any] = att.error or {}
    message = error.get("message")
    if message is None:
        message = donor.message
    el = ET.Element(
        tag,
        {
            "message": xml_text(_clip(str(message or att.category or att.outcome), MAX_MESSAGE)),
            "type": xml_text(str(error.get("type") or att.category or att.outcome)),
        },
    )
    trace = att.longrepr if att.longrepr is not None else donor.trace
    ET.SubElement(el, "stackTrace").text = xml_text(_clip(str(trace or message or ""), MAX_TRACE))
    for name, fallback in (("stdout", donor.out), ("stderr", donor.err)):
        value = getattr(att, name, None) or error.get(name) or fallback
        if value:
            ET.SubElement(el, f"system-{name[3:]}").text = xml_text(_clip(str(value), MAX_TRACE))
    return el


def _final_result(att: Attempt | None, outcome: str, reason: str | None) -> ET.Element:
    """A <failure>/<error> for a failed test pytest wrote no result for."""
    error: Mapping[str, Any] = (att.error if att else None) or {}
    tag = "failure" if att is not None and _is_failure(att) else "error"
    message = error.get("message") or reason or outcome
    el = ET.Element(tag, {"message": xml_text(_clip(str(message), MAX_MESSAGE))})
    if error.get("type"):
        el.set("type", xml_text(str(error["type"])))
    el.text = xml_text(_clip(str((att.longrepr if att else None) or message), MAX_TRACE))
    return el


def _insert(case: ET.Element, el: ET.Element) -> None:
    """Place el after the results and before captured output, as Surefire does."""
    children = list(case)
    for i, child in enumerate(children):
        if child.tag in ("system-out", "system-err"):
            case.insert(i, el)
            return
    case.append(el)


def _category(rec: TestRecord) -> str:
    for att in reversed(rec.failed_attempts):
        if att.category:
            return att.category
    return ""


def _set_properties(case: ET.Element, values: dict[str, str]) -> None:
    props = case.find("properties")
    if props is None:
        props = ET.Element("properties")
        case.insert(0, props)
    for prop in list(props):
        if prop.get("name") in values:
            props.remove(prop)
    for name, value in values.items():
        if value:
            ET.SubElement(props, "property", {"name": name, "value": xml_text(value)})


def _recount(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        suite.set(attr, str(sum(1 for c in cases if c.find(tag) is not None)))


def _recount_root(root: ET.Element, suites: list[ET.Element]) -> None:
    for attr in ("tests", "failures", "errors", "skipped"):
        if attr in root.attrib:
            root.set(attr, str(sum(int(s.get(attr, "0")) for s in suites)))


def xml_text(text: str) -> str:
    """text with the characters XML 1.0 forbids replaced, as pytest does it."""
    if _bin_xml_escape is not None:
        return str(_bin_xml_escape(text))
    return _ILLEGAL_XML.sub(lambda m: f"#x{ord(m.group()):02X}", text)


def _clip(text: str, limit: int) -> str:
    return (
        text
        if len(text) <= limit
        else text[:limit] + f"\n... ({len(text) - limit} more characters)"
    )


__all__ = ["rewrite", "testcase_key", "xml_text"]
