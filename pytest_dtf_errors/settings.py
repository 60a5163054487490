"""Options, ini keys and config keys of the plugin, validated in one place.

Every option is declared once, as an ``Option`` on ``Settings``: that is its
attribute, its ``[tool.dtf]`` key, its ini key ``dtf_<key>``, its flag and its
help. ``OPTIONS`` is collected from the class; ``plugin.py`` registers them
and ``load_settings`` turns command line, ini and ``[tool.dtf]`` into one
validated ``Settings`` plus the engine's config. A mistake is a UsageError
naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, final, overload

import pytest

from .engine.errors import ConfigError

if TYPE_CHECKING:
    from .engine.config import DtfConfig

# exit status when every test passed but some only after retries (--dtf-fail-on-flaky)
EXIT_FLAKY = 6
# the workerinput key under which the controller sends workers what they need
# of the settings: workers neither read nor validate the config themselves
WORKERINPUT_KEY = "dtf_settings"

T = TypeVar("T")
N = TypeVar("N", int, float)

Check = Callable[[object, str], T]  # (raw value, key or flag for the message) -> value


def _number(kind: type[N], minimum: float, maximum: float = math.inf) -> Check[N]:
    def check(value: object, key: str) -> N:
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


def _text(value: object, key: str) -> str:
    return str(value)


def _choice(*choices: str) -> Check[str]:
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


MAX_GPU_SIZES = 1024  # sizes one --dtf-gpus-per-worker list may give


def _gpu_sizes(value: object, key: str) -> int | tuple[int, ...]:
    """``--dtf-gpus-per-worker``: N GPUs for every local worker, or a list of sizes, one per
    worker slot (``1,1,2``, or a TOML list); a list's sizes may be 0 (that worker gets none)."""
    size = _number(int, 0, 1024)
    if isinstance(value, str) and "," in value:
        parts: list[object] = [p.strip() for p in value.split(",")]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        return size(value, key)
    if not 1 <= len(parts) <= MAX_GPU_SIZES:
        raise ConfigError(key, f"must list 1 to {MAX_GPU_SIZES} GPU counts, got {len(parts)}")
    sizes = []
    for n, part in enumerate(parts, 1):
        try:
            sizes.append(size(part, key))
        except ConfigError as exc:
            raise ConfigError(key, f"entry {n} of {value!r} {exc.message}") from None
    return tuple(sizes)


def _repeats(value: object, key: str) -> int | None:
    """``--dtf-new-test-repeats``: a count (0 turns early flake detection off) or ``auto`` (None)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    return _number(int, 0, MAX_REPEATS)(value, key)


MAX_REPEATS = 10_000  # runs one --dtf-repeat or --dtf-new-test-repeats may ask per test


@final
class Quarantine:
    """``quarantine`` in ``[tool.dtf]``: how tests are quarantined (docs/history.md)."""

    __slots__ = ("mode", "release_after", "tests", "threshold")

    def __init__(
        self, mode: str = "off", tests: tuple[str, ...] = (), threshold: float = 0.2, release_after: int = 10,
    ) -> None:
        self.mode = mode  # "auto": by score; "off": the manual list only
        self.tests = tests  # quarantined by hand, as nodeids
        self.threshold = threshold  # score over which "auto" quarantines a test
        self.release_after = release_after  # clean runs in a row that release a test

    def __repr__(self) -> str:
        return (
            f"Quarantine(mode={self.mode!r}, tests={self.tests!r}, threshold={self.threshold!r}, "
            f"release_after={self.release_after!r})"
        )


QUARANTINE_KEYS = ("mode", "tests", "threshold", "release_after")


def _quarantine(value: object, key: str) -> Quarantine:
    if not isinstance(value, dict):
        raise ConfigError(key, f"must be a table (mode, tests, threshold, release_after), got {type(value).__name__}")
    unknown = sorted(set(value) - set(QUARANTINE_KEYS))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"is not a quarantine key (known: {', '.join(QUARANTINE_KEYS)})")
    out = Quarantine()
    if "mode" in value:
        out.mode = _choice("auto", "off")(value["mode"], f"{key}.mode")
    if "tests" in value:
        tests = value["tests"]
        if not isinstance(tests, list) or not all(isinstance(t, str) and t for t in tests):
            raise ConfigError(f"{key}.tests", "must be a list of test nodeids")
        out.tests = tuple(tests)
    if "threshold" in value:
        out.threshold = _number(float, 0.0, 1.0)(value["threshold"], f"{key}.threshold")
    if "release_after" in value:
        out.release_after = _number(int, 1, 10_000)(value["release_after"], f"{key}.release_after")
    return out


@final
class Option(Generic[T]):
    """One setting, declared on ``Settings``: its default, check, help, flag and ini key.

    A descriptor: ``Settings.max_retries`` is the Option, ``settings.max_retries``
    its value (typed ``T``). The key is the attribute's name.
    """

    __slots__ = ("check", "default", "flag", "help", "ini", "key")

    def __init__(
        self,
        default: T,
        check: Check[T],
        help: str,
        *,
        flag: str | None = None,
        ini: bool = True,
    ) -> None:
        self.key = ""  # set by __set_name__
        self.default = default
        self.check = check
        self.help = help
        self.flag = flag  # command-line option
        self.ini = ini  # an ini key dtf_<key>

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Option[T]: ...
    @overload
    def __get__(self, obj: Settings, owner: type | None = None) -> T: ...
    def __get__(self, obj: Settings | None, owner: type | None = None) -> Option[T] | T:
        if obj is None:
            return self
        value: T = obj._values[self.key]
        return value

    def __set__(self, obj: Settings, value: T) -> None:
        obj._values[self.key] = value


@final
class Settings:
    """The run-level knobs, validated by the plugin (a plain class: no dataclass to build at import).

    ``Settings()`` is the defaults; ``Settings(retry=True, max_retries=2)`` sets options by key,
    unchecked (``load_settings`` checks what the user wrote).
    """

    __slots__ = ("_values", "peer", "peer_installed", "schedule")

    retry: Option[bool] = Option(False, _bool, "retry failures worth retrying, by category policy", flag="--dtf-retry")
    max_retries: Option[int | None] = Option(None, _number(int, 0, 1000), "global cap on retries per test, over the category policies", flag="--dtf-max-retries")
    # None: derived from the collection size
    retry_budget: Option[int | None] = Option(None, _number(int, 0, 10**7), "suite-wide cap on retries, a last resort against retry storms (default: half the collected tests, at least 100)", flag="--dtf-retry-budget")
    fail_on_flaky: Option[bool] = Option(False, _bool, f"exit with status {EXIT_FLAKY} when a test passed only after a retry", flag="--dtf-fail-on-flaky")
    report: Option[str | None] = Option(None, _text, "write the JSON error report to this path", flag="--dtf-report")
    run_label: Option[str | None] = Option(None, _text, "a label for this run in the JSON report and the history (default: the git commit of the rootdir, when it is a checkout)", flag="--dtf-run-label")
    gpus_per_worker: Option[int | tuple[int, ...]] = Option(0, _gpu_sizes, "give each local worker its own N GPUs via CUDA_VISIBLE_DEVICES, or one size per worker: 1,1,2", flag="--dtf-gpus-per-worker")
    heartbeat_timeout: Option[float] = Option(10.0, _number(float, 0.5, 86400), "seconds without a heartbeat before a worker is declared lost")
    missing_hardware: Option[str] = Option("skip", _choice("skip", "fail"), "what a test gets when no worker has its hardware")
    quarantine_threshold: Option[int] = Option(3, _number(int, 1, 10**6), "distinct tests failing only on one worker (and passing elsewhere) that quarantine it")
    breaker_min_tests: Option[int] = Option(3, _number(int, 1, 10**6), "distinct tests a pattern needs before the breaker may stop its retries")
    breaker_min_failed_retries: Option[int] = Option(3, _number(int, 1, 10**6), "failed retries of a pattern, none helping, that trip the breaker")
    hardware: Option[dict[str, list[str]]] = Option({}, _tag_map, "extra hardware tags per worker id or host, e.g. {gw0 = [\"cuda\"]}", ini=False)
    # the history (docs/history.md): None is the default file in pytest's cache dir, "off" none
    history: Option[str | None] = Option(None, _text, "the test history file (SQLite); 'off' for none (default: in pytest's cache dir, when dtf is asked for)", flag="--dtf-history")
    quarantine: Option[Quarantine] = Option(Quarantine(), _quarantine, "test quarantine: {mode = \"auto\", threshold = 0.2, tests = [...], release_after = 10}", ini=False)
    no_quarantine: Option[bool] = Option(False, _bool, "this run, a quarantined test's failure fails the session as any other", flag="--dtf-no-quarantine")
    new_test_repeats: Option[int | None] = Option(None, _repeats, "extra runs of a test the history has never seen (early flake detection); 0 for none, auto (the default) by its duration", flag="--dtf-new-test-repeats")
    new_test_share: Option[float] = Option(0.2, _number(float, 0.0, 1.0), "at most this share of the session's time goes to new tests' extra runs")
    repeat: Option[int] = Option(0, _number(int, 0, MAX_REPEATS), "run each selected test N times, spread over all workers, and report its pass rate", flag="--dtf-repeat")
    html: Option[str | None] = Option(None, _text, "write the HTML report (one self-contained file: worker timeline, patterns, tests) to this path", flag="--dtf-html")
    summary_md: Option[str | None] = Option(None, _text, "write a short Markdown summary to this path ('off': none; default: appended to $GITHUB_STEP_SUMMARY when it is set)", flag="--dtf-summary-md")

    def __init__(self, **values: Any) -> None:
        unknown = values.keys() - BY_KEY.keys()
        if unknown:
            raise TypeError(f"Settings() got unknown options: {', '.join(sorted(unknown))}")
        self._values: dict[str, Any] = {
            o.key: values[o.key] if o.key in values else _fresh(o.default) for o in OPTIONS
        }
        self.peer: str | None = None  # an active peer retry plugin that owns retries
        self.peer_installed: str | None = None  # owns tests marked @pytest.mark.flaky
        # dtf's scheduler runs only when asked: retries, GPU pinning or per-worker hardware tags;
        # otherwise xdist's own scheduler runs, unchanged
        self.schedule: bool = self.retry

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def for_workers(self) -> WorkerSettings:
        """What a worker needs, to the wire (plain data: it travels in xdist's workerinput)."""
        return {"retry": self.retry, "schedule": self.schedule, "missing": self.missing_hardware}


class WorkerSettings(TypedDict):
    """What the controller sends a worker of the settings (``Settings.for_workers``)."""

    retry: bool  # retries are on: the worker leaves --maxfail to the controller
    schedule: bool  # dtf's scheduler routes: the worker announces its tags, runs the flush item
    missing: str  # "skip" or "fail": a test whose hardware the worker lacks, under xdist's scheduler


def worker_settings(workerinput: Mapping[str, object]) -> WorkerSettings:
    """From the wire: what the controller sent (an older or foreign controller: the defaults)."""
    sent = workerinput.get(WORKERINPUT_KEY)
    data: Mapping[str, object] = sent if isinstance(sent, Mapping) else {}
    missing = data.get("missing")
    return {
        "retry": bool(data.get("retry")),
        "schedule": bool(data.get("schedule")),
        "missing": missing if isinstance(missing, str) and missing in ("skip", "fail") else "skip",
    }


def _fresh(default: T) -> T:
    """A default of its own for each Settings (the hardware table is a dict)."""
    if isinstance(default, Quarantine):
        return Quarantine(default.mode, default.tests, default.threshold, default.release_after)  # type: ignore[return-value]
    return type(default)(default) if isinstance(default, dict) else default


OPTIONS: tuple[Option[Any], ...] = tuple(v for v in vars(Settings).values() if isinstance(v, Option))
BY_KEY = {o.key: o for o in OPTIONS}


def ini_name(option: Option[Any]) -> str:
    return f"dtf_{option.key}"


def dest(option: Option[Any]) -> str:
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


def load_settings(config: pytest.Config) -> tuple[Settings, DtfConfig | None]:
    """Command line over ini over [tool.dtf] / --dtf-config over defaults.

    The engine's config is None when the project has none; ``engine_config``
    builds the defaults when the engine is first needed.
    """
    try:
        engine_config = _engine_config(config)
        extras = engine_config.extras if engine_config is not None else {}
        values: dict[str, Any] = {}
        for o in OPTIONS:
            if o.key in extras:
                values[o.key] = extras[o.key]
            if o.ini:
                raw = config.getini(ini_name(o))
                if raw not in (None, "", []):
                    values[o.key] = o.check(raw, ini_name(o))
            if o.flag:
                cli = config.getoption(dest(o))
                if cli is not None:
                    values[o.key] = o.check(cli, o.flag)
    except ConfigError as exc:
        raise pytest.UsageError(f"pytest-dtf-errors: {exc}") from None
    return Settings(**values), engine_config


def engine_config(loaded: DtfConfig | None) -> DtfConfig:
    """The engine's config: the user's or the defaults (the engine knows the plugin's record types)."""
    from .engine.config import load_config

    return loaded if loaded is not None else load_config({})
