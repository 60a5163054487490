"""Config loading: dict, [tool.dtf], standalone TOML; one error per problem naming the key."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dtf_errors.engine import (
    ConfigError,
    DistributedErrorHandler,
    DtfConfig,
    ErrorCategory,
    RetryPolicy,
    load_config,
    load_config_file,
    load_pyproject,
)
from pytest_dtf_errors.engine.config import check_regex
from pytest_dtf_errors.engine.retry import POLICY_BOUNDS

E = ErrorCategory

GUIDE = {
    "error_categories": {"MyCustomError": ErrorCategory.RESOURCE_EXHAUSTED},
    "retry_policies": {"RESOURCE_EXHAUSTED": {"max_retries": 10, "retry_delay_seconds": 30,
                                              "retry_backoff_factor": 1.5}},
    "error_patterns": {r"(?i)custom\s+error\s+pattern": "TEST_ASSERTION_ERROR"},
    "similarity_threshold": 0.75,
}


def test_guide_config_loads():
    cfg = load_config(GUIDE)
    assert isinstance(cfg, DtfConfig)
    assert cfg.error_categories == {"MyCustomError": E.RESOURCE_EXHAUSTED}
    assert cfg.retry_policies[E.RESOURCE_EXHAUSTED] == {
        "max_retries": 10, "retry_delay_seconds": 30.0, "retry_backoff_factor": 1.5}
    assert cfg.error_patterns == {r"(?i)custom\s+error\s+pattern": E.TEST_ASSERTION_ERROR}
    assert cfg.similarity_threshold == 0.75


def test_empty_and_none():
    assert load_config({}).similarity_threshold == 0.8
    assert load_config(None).error_patterns == {}


def test_categories_by_value_and_policy_lists():
    cfg = load_config({"error_categories": {"X": "network_timeout"},
                       "retry_policies": {"network_timeout": {
                           "categories_to_skip": ["UNKNOWN"], "retry_jitter": 0}}})
    assert cfg.error_categories["X"] is E.NETWORK_TIMEOUT
    assert cfg.retry_policies[E.NETWORK_TIMEOUT]["categories_to_skip"] == [E.UNKNOWN]


def test_custom_categories_register_before_use():
    cfg = load_config({"custom_categories": ["CFG_FLAKY_API"],
                       "error_categories": {"FlakyApiError": "CFG_FLAKY_API"},
                       "retry_policies": {"CFG_FLAKY_API": {"max_retries": 1}}})
    assert ErrorCategory.CFG_FLAKY_API.value == "cfg_flaky_api"
    assert cfg.custom_categories == [ErrorCategory.CFG_FLAKY_API]
    cfg = load_config({"custom_categories": {"CFG_LICENSE": "license_server_down"}})
    assert ErrorCategory.lookup("license_server_down").name == "CFG_LICENSE"


BAD = [
    ({"retry_policies": {"NETWORK_TIMEOUT": {"max_retries": -1}}},
     "retry_policies.NETWORK_TIMEOUT.max_retries",
     "retry_policies.NETWORK_TIMEOUT.max_retries: must be an integer from 0 to 1000, got -1"),
    ({"retry_policies": {"NETWORK_TIMEOUT": {"max_retries": 1.5}}},
     "retry_policies.NETWORK_TIMEOUT.max_retries", None),
    ({"retry_policies": {"NETWORK_TIMEOUT": {"retry_delay_seconds": math.nan}}},
     "retry_policies.NETWORK_TIMEOUT.retry_delay_seconds", None),
    ({"retry_policies": {"NETWORK_TIMEOUT": {"retry_delay_seconds": -2}}},
     "retry_policies.NETWORK_TIMEOUT.retry_delay_seconds", None),
    ({"retry_policies": {"NETWORK_TIMEOUT": {"retry_jitter": 2}}},
     "retry_policies.NETWORK_TIMEOUT.retry_jitter", None),
    ({"retry_policies": {"NETWORK_TIMEOUT": {"max_retry_delay_seconds": math.inf}}},
     "retry_policies.NETWORK_TIMEOUT.max_retry_delay_seconds", None),
    ({"retry_policies": {"NETWORK_TIMEOUT": {"retries": 1}}},
     "retry_policies.NETWORK_TIMEOUT.retries", "unknown key"),
    ({"retry_policies": {"NETWORK_TIMEOUT": {"categories_to_retry": ["NOPE"]}}},
     "retry_policies.NETWORK_TIMEOUT.categories_to_retry[0]", "unknown category"),
    ({"retry_policies": {"NETWORK_TIMEOUT": {"categories_to_retry": "UNKNOWN"}}},
     "retry_policies.NETWORK_TIMEOUT.categories_to_retry", "must be a list"),
    ({"retry_policies": {"NOT_A_CATEGORY": {}}}, "retry_policies.NOT_A_CATEGORY",
     "unknown category"),
    ({"retry_policies": {"NETWORK_TIMEOUT": 3}}, "retry_policies.NETWORK_TIMEOUT",
     "must be a table"),
    ({"retry_policies": []}, "retry_policies", "must be a table"),
    ({"error_categories": {"MyError": "NOPE"}}, "error_categories.MyError",
     "unknown category 'NOPE'"),
    ({"error_categories": {"MyError": 3}}, "error_categories.MyError", "must be a category name"),
    ({"error_patterns": {"([": "UNKNOWN"}}, "error_patterns.'(['", "RE2 cannot take"),
    ({"error_patterns": {"(?=x)": "UNKNOWN"}}, "error_patterns.'(?=x)'", "lookaround"),
    ({"error_patterns": {"ok": "NOPE"}}, "error_patterns.'ok'", "unknown category"),
    ({"similarity_threshold": 1.5}, "similarity_threshold", "between 0 and 1"),
    ({"similarity_threshold": math.nan}, "similarity_threshold", "got nan"),
    ({"similarity_threshold": "high"}, "similarity_threshold", "got str"),
    ({"similarity_threshold": True}, "similarity_threshold", None),
    ({"bogus": 1}, "bogus", "unknown key"),
    ({"custom_categories": ["lower"]}, "custom_categories[0]", "UPPER_CASE"),
    ({"custom_categories": {"NETWORK_TIMEOUT": "other"}}, "custom_categories.NETWORK_TIMEOUT",
     "already exists"),
    ({"custom_categories": 5}, "custom_categories", "must be a list"),
]


@pytest.mark.parametrize(("data", "key", "text"), BAD, ids=[b[1] for b in BAD])
def test_errors_name_the_key_path(data, key, text):
    with pytest.raises(ConfigError) as info:
        load_config(data)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")
    if text:
        assert text in str(info.value)
    assert isinstance(info.value, ValueError)


def test_not_a_mapping():
    with pytest.raises(ConfigError):
        load_config(["a"])  # type: ignore[arg-type]


def test_extra_keys_validators():
    def positive(value, key):
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(key, f"must be a positive integer, got {value!r}")
        return value * 2

    def raises_value_error(value, key):
        raise ValueError("not good")

    cfg = load_config({"max_worker_failures": 3}, extra_keys={"max_worker_failures": positive})
    assert cfg.extras == {"max_worker_failures": 6}
    with pytest.raises(ConfigError, match=r"^max_worker_failures: must be a positive"):
        load_config({"max_worker_failures": 0}, extra_keys={"max_worker_failures": positive})
    with pytest.raises(ConfigError, match=r"^other: not good"):
        load_config({"other": 1}, extra_keys={"other": raises_value_error})
    with pytest.raises(ConfigError, match="expected one of: .*max_worker_failures"):
        load_config({"nope": 1}, extra_keys={"max_worker_failures": positive})


def test_pyproject(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n')
    assert load_pyproject(path) is None
    path.write_text('[tool.dtf]\nsimilarity_threshold = 0.7\n'
                    '[tool.dtf.retry_policies.NETWORK_TIMEOUT]\nmax_retries = 4\n'
                    '[tool.dtf.error_patterns]\n"license server" = "RESOURCE_UNAVAILABLE"\n')
    cfg = load_pyproject(path)
    assert cfg.similarity_threshold == 0.7
    assert cfg.retry_policies[E.NETWORK_TIMEOUT] == {"max_retries": 4}
    assert cfg.source == str(path)
    path.write_text('[tool.dtf.retry_policies.NETWORK_TIMEOUT]\nmax_retries = -1\n')
    with pytest.raises(ConfigError) as info:
        load_pyproject(path)
    assert info.value.key == "tool.dtf.retry_policies.NETWORK_TIMEOUT.max_retries"
    assert str(info.value) == (f"{path}: tool.dtf.retry_policies.NETWORK_TIMEOUT.max_retries: "
                               "must be an integer from 0 to 1000, got -1")
    path.write_text('[tool]\ndtf = 3\n')
    with pytest.raises(ConfigError, match="tool.dtf: must be a table"):
        load_pyproject(path)


def test_standalone_file(tmp_path):
    path = tmp_path / "dtf.toml"
    path.write_text('similarity_threshold = 0.9\n[error_categories]\nBoom = "WORKER_CRASHED"\n')
    cfg = load_config_file(path)
    assert cfg.error_categories == {"Boom": E.WORKER_CRASHED}
    path.write_text('unknown_key = 1\n')
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert info.value.key == "unknown_key" and str(info.value).startswith(str(path))


def test_toml_syntax_error_and_missing_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("this is = = not toml\n")
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert info.value.key == str(path) and "invalid TOML" in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.toml")
    path.write_bytes(b"\xff\xfe = 1")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config_file(path)
    with pytest.raises(ConfigError):
        load_pyproject(path)


# Patterns that backtrack exponentially in Python's re; the last passed the old static
# check and took 196 s on a 61-character message. RE2 takes each in linear time.
EXPONENTIAL_IN_RE = [r"(a+)+$", r"(a*)*b", r"(\w+\s?)+$", r"(.*a){12}", r"(a|a)*b",
                     r"(\d{1,3})+$", r"(.|x)+$", r"(?:x+y)*", r"^(1\d|\d1)+$"]


def _texts(n: int) -> tuple[str, ...]:
    return ("a" * n + "!", "1" * n + "!", "x" * n, "a b " * (n // 4) + "!")


@pytest.mark.parametrize("rx", EXPONENTIAL_IN_RE)
def test_patterns_that_backtrack_in_re_run_in_linear_time_on_re2(rx):
    import re
    import time

    compiled = check_regex(rx)
    # the answers Python's re gives on texts short enough for it to backtrack through
    for text in _texts(8):
        assert compiled.search(text) is (re.search(rx, text) is not None), text
    for text in _texts(4000):
        start = time.perf_counter()
        compiled.search(text)  # returns: a backtracking engine would not, in our lifetime
        assert time.perf_counter() - start < 1.0, text[:20]


@pytest.mark.parametrize("rx, reason", [
    (r"(a)\1", "invalid escape sequence"), (r"(?=a)b", "perl operator"),
    (r"(?<!x)y", "perl operator"), (r"(?>a+)", "perl operator"), (r"a++", "repetition"),
    (r"(", r"missing \)"), ("x" * 1001, "longer than 1000"), (r"((a{100}){100}){100}", "repetition"),
])
def test_regexes_re2_cannot_take_are_rejected_with_the_reason(rx, reason):
    with pytest.raises(ValueError, match=reason):
        check_regex(rx)


@pytest.mark.parametrize("rx", [r"(?i)custom\s+error\s+pattern", r"(\d{1,3}\.){3}\d+",
                                r"Connection (refused|reset)", r"^(foo|bar)\s+\d+$",
                                r"(a|b)+", r"timeout after \d+s"])
def test_ordinary_regexes_accepted(rx):
    assert check_regex(rx).pattern == rx


def test_a_user_regex_searches_text_with_a_lone_surrogate():
    assert check_regex(r"bad .udcff").search("bad \udcff text")
    assert check_regex("bad").search("bad \udcff text")
    assert not check_regex("good").search("bad \udcff text")


def test_a_pattern_re2_rejects_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError) as info:
        load_config({"error_patterns": {"ok": "NETWORK_TIMEOUT", r"(\w+)-\1": "UNKNOWN"}},
                    prefix="tool.dtf.")
    assert info.value.key == "tool.dtf.error_patterns.'(\\\\w+)-\\\\1'"
    assert "RE2 cannot take this regex" in str(info.value)


WIDE = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                 st.booleans(), st.none(), st.text(max_size=5), st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(POLICY_BOUNDS)), WIDE)
def test_a_policy_number_is_accepted_in_bounds_or_names_its_key(name, value):
    lo, hi = POLICY_BOUNDS[name]
    data = {"retry_policies": {"NETWORK_TIMEOUT": {name: value}}}
    try:
        cfg = load_config(data, prefix="tool.dtf.")
    except ConfigError as exc:
        assert exc.key == f"tool.dtf.retry_policies.NETWORK_TIMEOUT.{name}"
        assert f"from {lo:g} to {hi:g}" in str(exc)
        return
    got = cfg.retry_policies[E.NETWORK_TIMEOUT][name]
    assert lo <= got <= hi and math.isfinite(got)
    assert not isinstance(value, bool) and (name != "max_retries" or isinstance(value, int))
    # and the engine takes it: the handler builds the policy and a delay is finite
    handler = DistributedErrorHandler(cfg)
    assert 0 <= handler.retry_policies[E.NETWORK_TIMEOUT].delay_for(10**6) <= 2 * 3600


@settings(max_examples=200, deadline=None)
@given(WIDE)
def test_similarity_threshold_is_accepted_in_bounds_or_names_its_key(value):
    try:
        cfg = load_config({"similarity_threshold": value})
    except ConfigError as exc:
        assert exc.key == "similarity_threshold"
        return
    assert 0.0 <= cfg.similarity_threshold <= 1.0


@pytest.mark.parametrize("name, value", [
    ("retry_delay_seconds", 1e308), ("max_retry_delay_seconds", 3600.5),
    ("retry_backoff_factor", 0.5), ("retry_backoff_factor", 11), ("max_retries", 1001),
    ("retry_jitter", 1.01),
])
def test_policy_numbers_out_of_bounds_are_rejected(name, value):
    with pytest.raises(ConfigError, match=f"{name}: must be"):
        load_config({"retry_policies": {"NETWORK_TIMEOUT": {name: value}}})
    with pytest.raises(ValueError, match=name):
        RetryPolicy(**{name: value})
