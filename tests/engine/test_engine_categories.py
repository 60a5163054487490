"""ErrorCategory: the 19 built-in members, lookup, JSON, extension by subclass and register."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from pytest_dtf_errors.engine import ErrorCategory
from pytest_dtf_errors.engine.categories import UnknownCategoryError

BUILTIN = [
    "RESOURCE_EXHAUSTED", "RESOURCE_NOT_FOUND", "RESOURCE_UNAVAILABLE",
    "NETWORK_TIMEOUT", "NETWORK_CONNECTION_ERROR", "NETWORK_SERVER_ERROR",
    "TEST_ASSERTION_ERROR", "TEST_IMPORT_ERROR", "TEST_DEPENDENCY_ERROR", "TEST_SYNTAX_ERROR",
    "HARDWARE_NOT_AVAILABLE", "HARDWARE_MISMATCH", "HARDWARE_COMPATIBILITY_ERROR",
    "WORKER_DISCONNECTED", "WORKER_TIMEOUT", "WORKER_CRASHED",
    "SYSTEM_CRASH", "SYSTEM_RESOURCE_LIMIT", "UNKNOWN",
]


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_member_name_value_family(name):
    member = getattr(ErrorCategory, name)
    assert member.name == name
    assert member.value == name.lower()
    assert member == name.lower()
    assert isinstance(member, ErrorCategory)
    expected_family = "other" if name == "UNKNOWN" else name.split("_")[0].lower()
    assert member.family == expected_family
    assert member.is_builtin


def test_all_builtins_iterate_in_order():
    names = [c.name for c in ErrorCategory]
    assert names[: len(BUILTIN)] == BUILTIN


def test_json_hash_and_equality_by_value():
    cat = ErrorCategory.NETWORK_TIMEOUT
    assert json.dumps(cat) == '"network_timeout"'
    assert json.dumps({cat: 1}) == '{"network_timeout": 1}'
    assert {cat: 1}["network_timeout"] == 1
    assert hash(cat) == hash("network_timeout")
    assert cat in [ErrorCategory.UNKNOWN, ErrorCategory.NETWORK_TIMEOUT]
    assert cat != ErrorCategory.NETWORK_CONNECTION_ERROR


def test_repr_str_format():
    cat = ErrorCategory.NETWORK_TIMEOUT
    assert repr(cat) == "<ErrorCategory.NETWORK_TIMEOUT: 'network_timeout'>"
    assert str(cat) == "network_timeout"
    assert f"{cat}" == "network_timeout"


@pytest.mark.parametrize("key", ["NETWORK_TIMEOUT", "network_timeout", " network_timeout "])
def test_lookup_by_name_or_value(key):
    assert ErrorCategory.lookup(key.strip() if key.startswith(" ") else key) \
        is ErrorCategory.NETWORK_TIMEOUT
    assert ErrorCategory("network_timeout") is ErrorCategory.NETWORK_TIMEOUT


def test_from_name_from_value_and_errors():
    assert ErrorCategory.from_name("UNKNOWN") is ErrorCategory.UNKNOWN
    assert ErrorCategory.from_value("unknown") is ErrorCategory.UNKNOWN
    for bad in ("nope", "", None, 3):
        with pytest.raises(KeyError):
            ErrorCategory.lookup(bad)
        with pytest.raises(ValueError):
            ErrorCategory.lookup(bad)
    with pytest.raises(UnknownCategoryError):
        ErrorCategory.from_name("network_timeout")
    with pytest.raises(UnknownCategoryError):
        ErrorCategory.from_value("NETWORK_TIMEOUT")


def test_membership_and_len():
    assert "network_timeout" in ErrorCategory
    assert "NETWORK_TIMEOUT" in ErrorCategory
    assert "bogus" not in ErrorCategory
    assert len(ErrorCategory) >= 19
    assert ErrorCategory["UNKNOWN"] is ErrorCategory.UNKNOWN


def test_pickle_and_copy_keep_identity():
    cat = ErrorCategory.WORKER_CRASHED
    assert pickle.loads(pickle.dumps(cat)) is cat
    assert copy.copy(cat) is cat
    assert copy.deepcopy(cat) is cat


def test_subclass_adds_members_visible_on_base():
    class MoreCategories(ErrorCategory):
        FLAKY_BACKEND = "flaky_backend"
        ANOTHER_ONE = "another_one"

    assert ErrorCategory.FLAKY_BACKEND is MoreCategories.FLAKY_BACKEND
    assert ErrorCategory.lookup("flaky_backend") is MoreCategories.FLAKY_BACKEND
    assert ErrorCategory.FLAKY_BACKEND.family == "custom"
    assert isinstance(ErrorCategory.FLAKY_BACKEND, ErrorCategory)
    assert ErrorCategory.ANOTHER_ONE in list(ErrorCategory)
    assert pickle.loads(pickle.dumps(ErrorCategory.FLAKY_BACKEND)) is ErrorCategory.FLAKY_BACKEND


def test_register_is_idempotent_and_rejects_conflicts():
    a = ErrorCategory.register("REG_TEST_CAT")
    assert a.value == "reg_test_cat"
    assert ErrorCategory.register("REG_TEST_CAT", "reg_test_cat") is a
    assert ErrorCategory.REG_TEST_CAT is a
    with pytest.raises(ValueError):
        ErrorCategory.register("REG_TEST_CAT", "other_value")
    with pytest.raises(ValueError):
        ErrorCategory.register("REG_TEST_CAT_TWO", "reg_test_cat")
    with pytest.raises(ValueError):
        ErrorCategory.register("lower_case")
    with pytest.raises(ValueError):
        ErrorCategory.register("FAMILY_CAT", family="galaxy")
    hw = ErrorCategory.register("GPU_ECC_ERROR", family="hardware")
    assert hw.family == "hardware"


def test_builtin_cannot_be_redefined_with_another_value():
    with pytest.raises(ValueError):
        class Bad(ErrorCategory):
            UNKNOWN = "something_else"
