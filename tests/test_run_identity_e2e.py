"""Each session's JSON report names its run: a unique id and a label (--dtf-run-label, else the git commit)."""

from __future__ import annotations

import json

import pytest

from pytest_dtf_errors.report import validate

SHA = "0123456789abcdef0123456789abcdef01234567"


def _run(pytester: pytest.Pytester, *args: str) -> dict:
    result = pytester.runpytest_subprocess("-n", "2", "--dtf-report=r.json", "-p", "no:cacheprovider", *args)
    assert result.ret == 0
    report = json.loads((pytester.path / "r.json").read_text())
    validate(report)
    return report["run"]


def test_runs_have_distinct_ids_and_the_checkout_commit_as_label(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass\n")
    git = pytester.path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(SHA + "\n")
    first, second = _run(pytester), _run(pytester)
    assert first["label"] == second["label"] == SHA
    assert len(first["id"]) == 32 and first["id"] != second["id"]


def test_a_packed_ref_and_a_detached_head_are_read_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass\n")
    git = pytester.path / ".git"
    git.mkdir()
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "packed-refs").write_text(f"# pack-refs with: peeled\n{SHA} refs/heads/main\n")
    assert _run(pytester)["label"] == SHA
    (git / "HEAD").write_text("fedcba9876543210fedcba9876543210fedcba98\n")
    assert _run(pytester)["label"] == "fedcba9876543210fedcba9876543210fedcba98"


def test_the_label_option_wins_and_no_checkout_is_no_label(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass\n")
    assert _run(pytester)["label"] is None
    assert _run(pytester, "--dtf-run-label", "nightly-42")["label"] == "nightly-42"
