"""Sticky GPU errors and the poison book, without pytester."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dtf_errors.engine.record import from_exception
from pytest_dtf_errors.engine.sticky import STICKY, sticky_signature
from pytest_dtf_errors.session.poison import PoisonBook

TEXTS = [
    ("CUDA error: an illegal memory access was encountered", "illegal memory access"),
    ("torch.AcceleratorError: CUDA error: device-side assert triggered", "device-side assert"),
    ("CUDA error: unspecified launch failure", "unspecified launch failure"),
    ("CUDA error: misaligned address", "misaligned address"),
    ("CUDA error: uncorrectable ECC error encountered", "uncorrectable ECC error"),
    ("CUDA error: an illegal instruction was encountered", "illegal instruction"),
    ("CUDA error: hardware stack error", "hardware stack error"),
    ("CUDA error: invalid program counter", "invalid program counter"),
    ("CUDA error: the launch timed out and was terminated", "launch timeout"),
    ("cudaErrorIllegalAddress: an illegal memory access was encountered", "illegal memory access"),
    ("[700] Call to cuMemcpyDtoH results in CUDA_ERROR_ILLEGAL_ADDRESS", "illegal memory access"),
    ("hipErrorLaunchFailure: unspecified launch failure", "unspecified launch failure"),
    ("Memory access fault by GPU node-2 (Agent handle: 0x5): Page not present", "illegal memory access"),
]


@pytest.mark.parametrize(("text", "signature"), TEXTS)
def test_each_sticky_error_has_its_signature(text, signature):
    assert sticky_signature(from_exception(RuntimeError(text))) == signature


def test_every_signature_is_tested_here():
    assert {name for name, _ in STICKY} <= {sig for _, sig in TEXTS}


@pytest.mark.parametrize("text", [
    "CUDA out of memory. Tried to allocate 2.00 GiB",
    "No CUDA GPUs are available",
    "Illegal instruction (core dumped)",  # SIGILL on the host, not a GPU fault
    "assert 1 == 2",
])
def test_other_errors_are_not_sticky(text):
    assert sticky_signature(from_exception(RuntimeError(text))) is None


def test_a_sticky_cause_counts():
    try:
        try:
            raise RuntimeError("CUDA error: device-side assert triggered")
        except RuntimeError as exc:
            raise ValueError("the model failed") from exc
    except ValueError as outer:
        assert sticky_signature(from_exception(outer)) == "device-side assert"


@given(st.text(max_size=2000))
def test_any_text_is_answered(text):
    assert sticky_signature(from_exception(RuntimeError(text))) in {None, *(n for n, _ in STICKY)}
    assert sticky_signature(text) is None  # not a record


def test_the_first_sticky_failure_on_a_worker_is_its_culprit_and_later_ones_its_victims():
    book = PoisonBook()
    assert book.failed("t::a", "gw0", None) is None
    culprit = book.failed("t::bad", "gw0", "illegal memory access")
    assert culprit is not None and culprit.kind == "culprit" and culprit.reproduced is None
    v1 = book.failed("t::v1", "gw0", "illegal memory access")
    v2 = book.failed("t::v2", "gw0", "illegal memory access")
    assert v1 is not None and v1.kind == "victim" and v1.poisoning is culprit.poisoning
    assert v2 is not None and v2.kind == "victim"
    assert culprit.poisoning.victims == ["t::v1", "t::v2"]
    # a failure without a sticky error on the poisoned worker is nobody's victim
    assert book.failed("t::other", "gw0", None) is None
    assert book.role_of("t::bad") == ("culprit", culprit.poisoning)
    assert book.role_of("t::v1") == ("victim", culprit.poisoning)
    assert book.role_of("t::a") is None


def test_a_culprit_that_poisons_a_fresh_worker_is_reproduced():
    book = PoisonBook()
    first = book.failed("t::bad", "gw0", "device-side assert")
    book.failed("t::v", "gw0", "device-side assert")
    again = book.failed("t::bad", "gw2", "device-side assert")
    assert again is not None and again.kind == "culprit" and again.reproduced is first.poisoning
    assert first.poisoning.reproduced_on == "gw2"
    assert [p.worker for p in book.poisonings] == ["gw0", "gw2"]
    assert first.poisoning.to_dict() == {
        "worker": "gw0", "signature": "device-side assert", "culprit": "t::bad", "victims": ["t::v"],
        "reproduced_on": "gw2",
    }


def test_a_victim_that_poisons_a_fresh_worker_itself_is_reproduced_too():
    book = PoisonBook()
    book.failed("t::bad", "gw0", "illegal memory access")
    book.failed("t::v", "gw0", "illegal memory access")
    role = book.failed("t::v", "gw3", "illegal memory access")
    assert role is not None and role.kind == "culprit" and role.reproduced is not None
    assert role.reproduced.culprit == "t::bad"
