"""Options, ini keys and config keys of the plugin, validated in one place.

Every option is listed once in OPTIONS; ``plugin.py`` registers them and
``load_settings`` turns command line, ini and ``[tool.dtf]`` into one
validated ``Settings`` plus the engine's config. A mistake is a UsageError
naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

import pytest

from .engine.errors import ConfigError

if TYPE_CHECKING:
    from .engine.config import DtfConfig

# exit status when every test passed but some only after retries (--dtf-fail-on-flaky)
EXIT_FLAKY = 6
# the workerinput key under which the controller sends workers what they need
# of the settings: workers neither read nor validate the config themselves
WORKERINPUT_KEY = "dtf_settings"


@final
class Settings:
    """The run-level knobs, validated by the plugin (a plain class: no dataclass to build at import)."""

    __slots__ = (
        "breaker_min_failed_retries", "breaker_min_tests", "budget", "fail_on_flaky",
        "heartbeat_timeout", "max_retries", "missing_hardware", "peer", "peer_installed",
        "quarantine_threshold", "retry", "schedule",
    )

    def __init__(
        self,
        retry: bool = False,
        max_retries: int | None = None,
        budget: int | None = None,
        fail_on_flaky: bool = False,
        breaker_min_tests: int = 3,
        breaker_min_failed_retries: int = 3,
        quarantine_threshold: int = 3,
        missing_hardware: str = "skip",
        heartbeat_timeout: float = 10.0,
    ) -> None:
        self.retry = retry
        self.max_retries = max_retries
        self.budget = budget  # None: derived from the collection size
        self.fail_on_flaky = fail_on_flaky
        self.breaker_min_tests = breaker_min_tests
        self.breaker_min_failed_retries = breaker_min_failed_retries
        self.quarantine_threshold = quarantine_threshold
        self.missing_hardware = missing_hardware
        self.heartbeat_timeout = heartbeat_timeout
        self.peer: str | None = None  # an active peer retry plugin that owns retries
        self.peer_installed: str | None = None  # owns tests marked @pytest.mark.flaky
        # dtf's scheduler runs only when asked: retries, GPU pinning or per-worker hardware tags;
        # otherwise xdist's own scheduler runs, unchanged
        self.schedule = retry

    def for_workers(self) -> dict[str, Any]:
        """What a worker needs (plain data: it travels in xdist's workerinput)."""
        return {"retry": self.retry, "schedule": self.schedule, "missing": self.missing_hardware}


def _number(kind: type, minimum: float, maximum: float = math.inf) -> Callable[[object, str], Any]:
    def check(value: object, key: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(key, f"must be a {kind.__name__}, got {type(value).__name__}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"must be a {kind.__name__}, got {value!r}") from None
        if isinstance(number, float) and math.isnan(number):
            raise ConfigError(key, "must be a number, got NaN")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(key, f"must be an integer, got {value!r}")
        if not minimum <= number <= maximum:
            raise ConfigError(key, f"must be between {minimum:g} and {maximum:g}, got {value!r}")
        return number

    return check


def _bool(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.strip().lower() in ("1", "true", "yes", "on")
    raise ConfigError(key, f"must be true or false, got {value!r}")


def _choice(*choices: str) -> Callable[[object, str], str]:
    def check(value: object, key: str) -> str:
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return check


def _tag_map(value: object, key: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ConfigError(key, f"must be a table of worker id or host -> tags, got {type(value).__name__}")
    out: dict[str, list[str]] = {}
    for name, tags in value.items():
        if isinstance(tags, str):
            tags = [t for t in tags.replace(",", " ").split() if t]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ConfigError(f"{key}.{name}", "must be a list of tag strings")
        out[str(name)] = [t.lower() for t in tags]
    return out


@final
class Option:
    """One setting: its config key, ini key, command-line flag, default and check."""

    __slots__ = ("check", "default", "flag", "help", "ini", "key")

    def __init__(
        self,
        key: str,
        default: Any,
        check: Callable[[object, str], Any],
        help: str,
        flag: str | None = None,
        ini: bool = True,
    ) -> None:
        self.key = key
        self.default = default
        self.check = check
        self.help = help
        self.flag = flag  # command-line option
        self.ini = ini


OPTIONS = (
    Option("retry", False, _bool, "retry failures worth retrying, by category policy", "--dtf-retry"),
    Option("max_retries", None, _number(int, 0, 1000), "global cap on retries per test, over the category policies", "--dtf-max-retries"),
    Option("retry_budget", None, _number(int, 0, 10**7), "suite-wide cap on retries, a last resort against retry storms (default: half the collected tests, at least 100)", "--dtf-retry-budget"),
    Option("fail_on_flaky", False, _bool, f"exit with status {EXIT_FLAKY} when a test passed only after a retry", "--dtf-fail-on-flaky"),
    Option("report", None, lambda v, k: str(v), "write the JSON error report to this path", "--dtf-report"),
    Option("gpus_per_worker", 0, _number(int, 0, 1024), "give each local worker its own N GPUs via CUDA_VISIBLE_DEVICES", "--dtf-gpus-per-worker"),
    Option("heartbeat_timeout", 10.0, _number(float, 0.5, 86400), "seconds without a heartbeat before a worker is declared lost"),
    Option("missing_hardware", "skip", _choice("skip", "fail"), "what a test gets when no worker has its hardware"),
    Option("quarantine_threshold", 3, _number(int, 1, 10**6), "distinct tests failing only on one worker (and passing elsewhere) that quarantine it"),
    Option("breaker_min_tests", 3, _number(int, 1, 10**6), "distinct tests a pattern needs before the breaker may stop its retries"),
    Option("breaker_min_failed_retries", 3, _number(int, 1, 10**6), "failed retries of a pattern, none helping, that trip the breaker"),
    Option("hardware", {}, _tag_map, "extra hardware tags per worker id or host, e.g. {gw0 = [\"cuda\"]}", ini=False),
)
BY_KEY = {o.key: o for o in OPTIONS}


def ini_name(option: Option) -> str:
    return f"dtf_{option.key}"


def dest(option: Option) -> str:
    return f"dtf_{option.key}"


def addoptions(parser: pytest.Parser) -> None:
    group = parser.getgroup("dtf-errors", "error categories, retries and hardware routing (pytest-dtf-errors)")
    for o in OPTIONS:
        if o.flag:
            if o.default is False:
                group.addoption(o.flag, action="store_true", dest=dest(o), default=None, help=o.help)
            else:
                group.addoption(o.flag, action="store", dest=dest(o), default=None, metavar="VALUE", help=o.help)
        if o.ini:
            parser.addini(ini_name(o), help=o.help, type="string", default=None)
    group.addoption(
        "--dtf-config",
        action="store",
        dest="dtf_config",
        default=None,
        metavar="FILE",
        help="TOML file with the engine's keys (error_categories, retry_policies, ...); "
        "[tool.dtf] in pyproject.toml is read without it",
    )


def _engine_config(config: pytest.Config) -> DtfConfig | None:
    """The user's engine config, validated now; None when there is none (the defaults)."""
    extra = {o.key: o.check for o in OPTIONS}
    path = config.getoption("dtf_config")
    if path:
        from .engine.config import load_config_file

        file = Path(path)
        if not file.is_absolute():
            file = Path(config.invocation_params.dir) / file
        if not file.is_file():
            raise ConfigError("--dtf-config", f"no such file: {path}")
        return load_config_file(file, extra_keys=extra)
    pyproject = Path(config.rootpath) / "pyproject.toml"
    # any [tool.dtf] spelling has "dtf" in it; the rest of a project is not parsed again
    if pyproject.is_file() and b"dtf" in pyproject.read_bytes():
        from .engine.config import load_pyproject

        return load_pyproject(pyproject, extra_keys=extra)
    return None


def load_settings(config: pytest.Config) -> tuple[Settings, DtfConfig | None, dict[str, Any]]:
    """Command line over ini over [tool.dtf] / --dtf-config over defaults.

    The engine's config is None when the project has none; ``engine_config``
    builds the defaults when the engine is first needed.
    """
    try:
        engine_config = _engine_config(config)
        extras = engine_config.extras if engine_config is not None else {}
        values: dict[str, Any] = {}
        for o in OPTIONS:
            value = extras.get(o.key, o.default)
            if o.ini:
                raw = config.getini(ini_name(o))
                if raw not in (None, "", []):
                    value = o.check(raw, ini_name(o))
            if o.flag:
                cli = config.getoption(dest(o))
                if cli is not None:
                    value = o.check(cli, o.flag)
            values[o.key] = value
    except ConfigError as exc:
        raise pytest.UsageError(f"pytest-dtf-errors: {exc}") from None
    settings = Settings(
        retry=bool(values["retry"]),
        max_retries=values["max_retries"],
        budget=values["retry_budget"],
        fail_on_flaky=bool(values["fail_on_flaky"]),
        breaker_min_tests=values["breaker_min_tests"],
        breaker_min_failed_retries=values["breaker_min_failed_retries"],
        quarantine_threshold=values["quarantine_threshold"],
        missing_hardware=values["missing_hardware"],
        heartbeat_timeout=values["heartbeat_timeout"],
    )
    return settings, engine_config, values


def engine_config(loaded: DtfConfig | None) -> DtfConfig:
    """The engine's config: the user's or the defaults (the engine knows the plugin's record types)."""
    from .engine.config import load_config

    return loaded if loaded is not None else load_config({})
