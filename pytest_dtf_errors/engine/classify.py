"""ErrorClassifier: an error record -> an ErrorCategory, and the rule that decided.

Order of the rules (the first that decides wins):

1. ``user-type:NAME``   the user's type mapping (``error_categories``), matched
   against the qualified type name (the record's ``qualname``, else its ``type``),
   its last component and every ``mro`` entry.
2. ``type:NAME``        hard types decided by type alone: AssertionError,
   SyntaxError (IndentationError, TabError) and pytest's ``Failed`` (unless its
   message is pytest-timeout's ``Timeout >Ns``). Their message is never read for
   anything else, so a message that mentions a network error cannot make them
   retryable.
3. ``user-pattern:RX``  the user's message patterns (``error_patterns``).
4. ``type:NAME``        the built-in type tables, qualified ("requests.exceptions.Timeout")
   then short ("ConnectionRefusedError").
5. ``mro:NAME``         the class hierarchy: the record's ``mro`` list, or for a
   built-in exception name alone, Python's own hierarchy
   (ConnectionAbortedError -> ``mro:builtins.ConnectionError``).
6. ``chain:cause->...`` the outer type is generic (not decided above): the
   root cause of ``raise X from Y`` decides if it is not UNKNOWN (a nested chain
   is read flat, up to 8 links: a cause's cause is a cause).
7. ``errno:ENAME``      errno in the message ("[Errno 28]", "ENOSPC").
8. ``pattern:ID``       the built-in message patterns (``BUILTIN_PATTERNS``), then the
   same patterns on ``stderr_tail``.
9. ``chain:context->...`` / ``chain:group->...`` implicit context and
   exception-group members.
10. ``default``         UNKNOWN.

Messages are cut to ``MAX_MESSAGE_CHARS`` (head and tail) before any matching,
so the work per record is bounded whatever the size of the error text.
"""

from __future__ import annotations

import builtins
import errno as _errno
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .categories import ErrorCategory
from .record import MAX_MESSAGE, MAX_TYPE, cut, from_exception, safe_str
from .sticky import STICKY_REGEX

if TYPE_CHECKING:
    from .config import DtfConfig, UserRegex

__all__ = [
    "BUILTIN_PATTERNS",
    "MAX_MESSAGE_CHARS",
    "Classification",
    "ErrorClassifier",
    "coerce_record",
    "safe_text",
    "truncate",
]

E = ErrorCategory

#: Messages longer than this are cut to their first and last half before matching.
MAX_MESSAGE_CHARS = MAX_MESSAGE
_MAX_TYPE_CHARS = MAX_TYPE
_MAX_CHAIN_LINKS = 32
_MAX_CHAIN_DEPTH = 4
_CACHE_SIZE = 4096
_CACHE_KEY_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Classification:
    """The category of an error, the short id of the rule that decided, and why."""

    category: ErrorCategory
    rule: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"category": self.category.value, "rule": self.rule, "detail": self.detail}


# --------------------------------------------------------------------------- records

#: Any value -> a str of at most ``limit`` chars (head and tail); never raises.
safe_text = safe_str
#: Keep the head and the tail of ``text`` when it is longer than ``limit``.
truncate = cut

_TB_LAST_LINE = re.compile(r"^([A-Za-z_][\w.]{0,200}):(?: (.*))?$")


def coerce_record(error: Any) -> dict[str, Any]:
    """Any error (record dict, exception, str, None) -> a record dict; never raises.

    An exception's record is the one the plugin's workers send (``engine.record``).
    """
    if type(error) is dict:
        return error
    if isinstance(error, Mapping):
        return dict(error) if not isinstance(error, dict) else error
    if isinstance(error, BaseException):
        return cast("dict[str, Any]", from_exception(error))
    return {"type": "", "message": safe_text(error)}


# --------------------------------------------------------------------------- type tables

_HARD_TYPES: dict[str, ErrorCategory] = {
    "AssertionError": E.TEST_ASSERTION_ERROR,
    "SyntaxError": E.TEST_SYNTAX_ERROR,
    "IndentationError": E.TEST_SYNTAX_ERROR,
    "TabError": E.TEST_SYNTAX_ERROR,
}
_FAILED_TYPES = frozenset({"Failed", "_pytest.outcomes.Failed", "pytest.fail.Exception",
                           "Failed.Exception", "XFailed", "_pytest.outcomes.XFailed"})

#: Qualified names checked before short names.
QUALIFIED_TYPES: dict[str, ErrorCategory] = {
    "socket.timeout": E.NETWORK_TIMEOUT,
    "socket.gaierror": E.NETWORK_CONNECTION_ERROR,
    "socket.herror": E.NETWORK_CONNECTION_ERROR,
    "requests.exceptions.Timeout": E.NETWORK_TIMEOUT,
    "requests.Timeout": E.NETWORK_TIMEOUT,
    "torch.OutOfMemoryError": E.RESOURCE_EXHAUSTED,
    "torch.cuda.OutOfMemoryError": E.RESOURCE_EXHAUSTED,
    "concurrent.futures.TimeoutError": E.NETWORK_TIMEOUT,
    "asyncio.TimeoutError": E.NETWORK_TIMEOUT,
    "asyncio.exceptions.TimeoutError": E.NETWORK_TIMEOUT,
}

#: Last component of the type name -> category. Built-in ones are the roots;
#: their subclasses resolve through the hierarchy.
SHORT_TYPES: dict[str, ErrorCategory] = {
    # resources
    "MemoryError": E.RESOURCE_EXHAUSTED,
    "OutOfMemoryError": E.RESOURCE_EXHAUSTED,
    "FileNotFoundError": E.RESOURCE_NOT_FOUND,
    "BlockingIOError": E.RESOURCE_UNAVAILABLE,
    # network
    "TimeoutError": E.NETWORK_TIMEOUT,
    "ConnectTimeout": E.NETWORK_TIMEOUT,
    "ReadTimeout": E.NETWORK_TIMEOUT,
    "WriteTimeout": E.NETWORK_TIMEOUT,
    "PoolTimeout": E.NETWORK_TIMEOUT,
    "ConnectTimeoutError": E.NETWORK_TIMEOUT,
    "ReadTimeoutError": E.NETWORK_TIMEOUT,
    "TimeoutException": E.NETWORK_TIMEOUT,
    "ServerTimeoutError": E.NETWORK_TIMEOUT,
    "DeadlineExceeded": E.NETWORK_TIMEOUT,
    "ServerSelectionTimeoutError": E.NETWORK_TIMEOUT,
    "ConnectionError": E.NETWORK_CONNECTION_ERROR,
    "ConnectionRefusedError": E.NETWORK_CONNECTION_ERROR,
    "ConnectError": E.NETWORK_CONNECTION_ERROR,
    "NewConnectionError": E.NETWORK_CONNECTION_ERROR,
    "NameResolutionError": E.NETWORK_CONNECTION_ERROR,
    "ClientConnectorError": E.NETWORK_CONNECTION_ERROR,
    "ServerDisconnectedError": E.NETWORK_CONNECTION_ERROR,
    "RemoteDisconnected": E.NETWORK_CONNECTION_ERROR,
    "ConnectionClosed": E.NETWORK_CONNECTION_ERROR,
    "ConnectionFailure": E.NETWORK_CONNECTION_ERROR,
    "AutoReconnect": E.NETWORK_CONNECTION_ERROR,
    "gaierror": E.NETWORK_CONNECTION_ERROR,
    "InternalServerError": E.NETWORK_SERVER_ERROR,
    "BadGateway": E.NETWORK_SERVER_ERROR,
    "ServiceUnavailable": E.NETWORK_SERVER_ERROR,
    "GatewayTimeout": E.NETWORK_SERVER_ERROR,
    # tests
    "ImportError": E.TEST_IMPORT_ERROR,
    "ModuleNotFoundError": E.TEST_IMPORT_ERROR,
    "FixtureLookupError": E.TEST_DEPENDENCY_ERROR,
    "DistributionNotFound": E.TEST_DEPENDENCY_ERROR,
    "VersionConflict": E.TEST_DEPENDENCY_ERROR,
    "PackageNotFoundError": E.TEST_DEPENDENCY_ERROR,
    # hardware (names a coordinator may use for its own synthetic records)
    "HardwareNotAvailableError": E.HARDWARE_NOT_AVAILABLE,
    "HardwareMismatchError": E.HARDWARE_MISMATCH,
    "HardwareCompatibilityError": E.HARDWARE_COMPATIBILITY_ERROR,
    # workers (synthetic records of a coordinator; execnet's HostNotFound)
    "WorkerCrashed": E.WORKER_CRASHED,
    "WorkerCrashedError": E.WORKER_CRASHED,
    "WorkerDisconnected": E.WORKER_DISCONNECTED,
    "WorkerDisconnectedError": E.WORKER_DISCONNECTED,
    "HostNotFound": E.WORKER_DISCONNECTED,
    "WorkerTimeout": E.WORKER_TIMEOUT,
    "WorkerTimeoutError": E.WORKER_TIMEOUT,
    # the plugin's own records of worker deaths (engine.record.CRASH_TYPES)
    "WorkerCrash": E.WORKER_CRASHED,
    "WorkerSegfault": E.SYSTEM_CRASH,
    "WorkerOOMKilled": E.RESOURCE_EXHAUSTED,
    "WorkerLost": E.WORKER_DISCONNECTED,
    # system
    "SystemError": E.SYSTEM_CRASH,
}


def _builtin_mros() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for name in dir(builtins):
        obj = getattr(builtins, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            out[name] = tuple(k.__name__ for k in obj.__mro__[1:] if k.__module__ == "builtins")
    out["timeout"] = ("OSError",)
    return out


_BUILTIN_MRO = _builtin_mros()

# --------------------------------------------------------------------------- errno

ERRNO_CATEGORIES: dict[str, ErrorCategory] = {
    "ENOSPC": E.RESOURCE_EXHAUSTED,
    "ENOMEM": E.RESOURCE_EXHAUSTED,
    "EDQUOT": E.RESOURCE_EXHAUSTED,
    "EMFILE": E.SYSTEM_RESOURCE_LIMIT,
    "ENFILE": E.SYSTEM_RESOURCE_LIMIT,
    "EAGAIN": E.RESOURCE_UNAVAILABLE,
    "EWOULDBLOCK": E.RESOURCE_UNAVAILABLE,
    "EBUSY": E.RESOURCE_UNAVAILABLE,
    "EADDRINUSE": E.RESOURCE_UNAVAILABLE,
    "ENOENT": E.RESOURCE_NOT_FOUND,
    "ECONNREFUSED": E.NETWORK_CONNECTION_ERROR,
    "ECONNRESET": E.NETWORK_CONNECTION_ERROR,
    "ECONNABORTED": E.NETWORK_CONNECTION_ERROR,
    "EHOSTUNREACH": E.NETWORK_CONNECTION_ERROR,
    "EHOSTDOWN": E.NETWORK_CONNECTION_ERROR,
    "ENETUNREACH": E.NETWORK_CONNECTION_ERROR,
    "ENETDOWN": E.NETWORK_CONNECTION_ERROR,
    "ENETRESET": E.NETWORK_CONNECTION_ERROR,
    "EPIPE": E.NETWORK_CONNECTION_ERROR,
    "ETIMEDOUT": E.NETWORK_TIMEOUT,
    "ENODEV": E.HARDWARE_NOT_AVAILABLE,
    "ENXIO": E.HARDWARE_NOT_AVAILABLE,
}
_ERRNO_NUM_RE = re.compile(r"\[(?:Errno|WinError) (\d{1,5})\]")
_ERRNO_NAME_RE = re.compile(r"\b(E[A-Z]{3,14})\b")
_ERRNO_WORDS = frozenset(name.lower() for name in ERRNO_CATEGORIES)

# --------------------------------------------------------------------------- patterns

#: (id, category, regex), in priority order: the first that matches wins. They match
#: the lower-cased message, so case never matters.
BUILTIN_PATTERNS: tuple[tuple[str, ErrorCategory, str], ...] = (
    ("pytest-timeout", E.WORKER_TIMEOUT,
     r"^(?:Failed: )?Timeout \(?>\s*\d+(?:\.\d+)?s|\+{5,} Timeout \+{5,}"),
    # a sticky error first: after it, "out of memory" and the rest may follow in the same text
    ("cuda-sticky", E.HARDWARE_NOT_AVAILABLE, STICKY_REGEX),
    ("cuda-oom", E.RESOURCE_EXHAUSTED,
     (r"CUDA out of memory|CUDA error: out of memory|CUBLAS_STATUS_ALLOC_FAILED"
      r"|cudaErrorMemoryAllocation|CUDA_ERROR_OUT_OF_MEMORY|HIP out of memory"
      r"|MPS backend out of memory|OutOfMemoryError|RESOURCE_EXHAUSTED: OOM")),
    ("cuda-no-device", E.HARDWARE_NOT_AVAILABLE,
     (r"no CUDA-capable device|Found no NVIDIA driver|NVIDIA-SMI has failed"
      r"|No CUDA GPUs are available|CUDA_ERROR_NO_DEVICE|Torch not compiled with CUDA"
      r"|couldn't communicate with the NVIDIA driver|cuda(?:GetDeviceCount|Init)\b.{0,40}fail"
      r"|CUDA (?:is )?(?:not available|unavailable)|no GPU (?:devices? )?(?:found|available)")),
    ("cuda-incompatible", E.HARDWARE_COMPATIBILITY_ERROR,
     (r"NVIDIA driver on your system is too old|CUDA driver version is insufficient"
      r"|no kernel image is available for execution|is not compatible with the current PyTorch"
      r"|Illegal instruction|unsupported (?:GPU|compute capability)")),
    ("host-oom", E.RESOURCE_EXHAUSTED,
     r"cannot allocate memory|out of memory|std::bad_alloc|memory exhausted"),
    ("disk-full", E.RESOURCE_EXHAUSTED, r"no space left on device|disk quota exceeded"),
    ("too-many-files", E.SYSTEM_RESOURCE_LIMIT,
     r"too many open files|can't start new thread|RLIMIT_\w+|resource limit"),
    ("http-5xx", E.NETWORK_SERVER_ERROR,
     (r"\b5\d\d Server Error\b|HTTP Error 5\d\d\b|Server error '5\d\d|too many 5\d\d error"
      r"|\b(?:status(?:[ _]code)?|HTTP/\d(?:\.\d)?|response code)[ :=]*5\d\d\b"
      r"|\b(?:Internal Server Error|Bad Gateway|Service Unavailable|Gateway Time-?out)\b")),
    ("dns-failure", E.NETWORK_CONNECTION_ERROR,
     (r"name or service not known|nodename nor servname|temporary failure in name resolution"
      r"|getaddrinfo failed|failed to resolve|NameResolutionError|could not resolve host"
      r"|no address associated with hostname|could not translate host name"
      r"|Name does not resolve|NXDOMAIN")),
    ("db-connection-refused", E.NETWORK_CONNECTION_ERROR,
     (r"could not connect to server|connection to server at .{0,200} failed"
      r"|can't connect to (?:local )?MySQL server|lost connection to MySQL server"
      r"|server closed the connection unexpectedly|Error \d+ connecting to"
      r"|\bconnection (?:is )?closed\b")),
    ("connection-refused", E.NETWORK_CONNECTION_ERROR,
     (r"connection refused|connection reset|connection aborted|network is unreachable"
      r"|no route to host|failed to establish a new connection|broken pipe"
      r"|remote end closed connection|ECONNREFUSED|Max retries exceeded")),
    ("network-timeout", E.NETWORK_TIMEOUT,
     r"timed out|\btimeout (?:error|exceeded|expired)|deadline exceeded|ETIMEDOUT"),
    ("rate-limited", E.RESOURCE_UNAVAILABLE,
     r"\b429 Client Error|HTTP Error 429|Too Many Requests|rate limit"),
    ("resource-busy", E.RESOURCE_UNAVAILABLE,
     (r"resource temporarily unavailable|device or resource busy|address already in use"
      r"|database is locked|resource (?:is )?(?:busy|unavailable)")),
    ("not-found", E.RESOURCE_NOT_FOUND,
     r"no such file or directory|\b404 Client Error|HTTP Error 404|Not Found for url"),
    ("worker-crash", E.WORKER_CRASHED,
     (r"segmentation fault|fatal python error|core dumped|\bSIGSEGV\b|\bSIGKILL\b|\bSIGABRT\b"
      r"|worker '?\w+'? crashed|node down|replacing crashed worker")),
    ("worker-lost", E.WORKER_DISCONNECTED,
     r"worker (?:\w+ )?disconnected|connection to (?:the )?worker lost|gateway .{0,40}closed"),
    ("fixture-missing", E.TEST_DEPENDENCY_ERROR,
     r"fixture '[^']{1,200}' not found|recursive dependency involving fixture"),
)

#: Words (runs of a-z in the lower-cased text) of which at least one must occur for
#: the pattern to be tried: a cheap set intersection spares most regex searches.
TRIGGERS: dict[str, frozenset[str]] = {pid: frozenset(words.split()) for pid, words in {
    "pytest-timeout": "timeout",
    "cuda-sticky": "illegal memory access device side assert unspecified launch misaligned address "
                   "uncorrectable ecc instruction hardware stack program counter timed "
                   "cudaerrorillegaladdress cudaerrorassert cudaerrorlaunchfailure "
                   "cudaerrormisalignedaddress cudaerroreccuncorrectable cudaerrorillegalinstruction "
                   "cudaerrorhardwarestackerror cudaerrorinvalidpc cudaerrorlaunchtimeout "
                   "hiperrorillegaladdress hiperrorassert hiperrorlaunchfailure "
                   "hiperroreccnotcorrectable hiperrorlaunchtimeout fault",
    "cuda-oom": "memory cublas cudaerrormemoryallocation outofmemoryerror oom",
    "cuda-no-device": "cuda nvidia gpu gpus device driver smi cudagetdevicecount cudainit",
    "cuda-incompatible": "driver kernel pytorch illegal gpu compute",
    "host-oom": "memory alloc",
    "disk-full": "space quota",
    "too-many-files": "files thread rlimit limit",
    "http-5xx": "server http status response responses internal gateway unavailable code",
    "dns-failure": "service nodename resolution getaddrinfo resolve nameresolutionerror host "
                   "hostname nxdomain",
    "db-connection-refused": "server connect connecting connection mysql",
    "connection-refused": "connection unreachable route pipe remote econnrefused retries",
    "network-timeout": "timed timeout deadline etimedout",
    "rate-limited": "requests rate client http",
    "resource-busy": "unavailable busy address locked resource",
    "not-found": "file client http found",
    "worker-crash": "segmentation fatal core sigsegv sigkill sigabrt crashed down",
    "worker-lost": "disconnected worker gateway",
    "fixture-missing": "fixture",
}.items()}
_WORD = re.compile(r"[a-z]+")

# Patterns are matched against the lower-cased text, so they are written (and compiled)
# lower-case, without IGNORECASE, which makes sre several times faster.
_COMPILED = tuple((pid, cat, re.compile(rx.lower(), re.MULTILINE), TRIGGERS[pid])
                  for pid, cat, rx in BUILTIN_PATTERNS)
_TIMEOUT_RX = _COMPILED[0][2]

_DETAIL_SOURCE = {"message": "message", "stderr": "stderr tail"}

# In an exception group a member of these categories decides first (it is never retried).
_GROUP_FIRST = (E.TEST_ASSERTION_ERROR, E.TEST_SYNTAX_ERROR, E.TEST_IMPORT_ERROR,
                E.TEST_DEPENDENCY_ERROR)


_LINEAR = ("cause", "context")
_MAX_LINEAR = 8


def _linear(chain: list[Any] | tuple[Any, ...]) -> list[Mapping[str, Any]]:
    """The links of a chain, each cause or context followed by its own (the root last).

    A builder nests the chain (a cause's cause is in the cause's chain); the rules
    read it flat, as ``raise X from Y`` reads: the root cause decides. A link that
    was followed is read without its cause and context (they follow it here).
    """
    out: list[Mapping[str, Any]] = []
    for link in chain[:_MAX_CHAIN_LINKS]:
        if not isinstance(link, Mapping):
            continue
        if link.get("relation", "cause") not in _LINEAR:
            out.append(link)
            continue
        for _ in range(_MAX_LINEAR):
            inner = link.get("chain")
            if not inner or not isinstance(inner, (list, tuple)):
                out.append(link)
                break
            links = [x for x in inner[:_MAX_CHAIN_LINKS] if isinstance(x, Mapping)]
            linear = {rel: x for x in reversed(links)
                      if (rel := x.get("relation", "cause")) in _LINEAR}
            if not linear:
                out.append(link)
                break
            out.append({**link, "chain": [x for x in links
                                          if x.get("relation", "cause") not in _LINEAR]})
            link = linear["cause"] if "cause" in linear else linear["context"]
        if len(out) >= _MAX_CHAIN_LINKS:
            break
    return out[:_MAX_CHAIN_LINKS]


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _strip_builtins(name: str) -> str:
    return name.removeprefix("builtins.")


# --------------------------------------------------------------------------- classifier


class ErrorClassifier:
    """Classifies error records; compiled patterns and a small result cache per instance."""

    def __init__(self, config: DtfConfig | None = None) -> None:
        self.config = config
        user_types: dict[str, ErrorCategory] = {}
        user_patterns: list[tuple[str, ErrorCategory, UserRegex]] = []
        if config is not None:
            user_types = {_strip_builtins(k): v for k, v in config.error_categories.items()}
            if config.error_patterns:
                from .config import check_regex  # RE2: linear time whatever the pattern

                user_patterns = [(rx, cat, check_regex(rx))
                                 for rx, cat in config.error_patterns.items()]
        self._user_types = user_types
        self._user_short = {_short(k): v for k, v in user_types.items() if "." not in k}
        self._user_patterns = user_patterns
        self._cache: dict[tuple[Any, ...], Classification] = {}
        self._type_cache: dict[tuple[Any, ...], tuple[Any, str, Any]] = {}

    # public ---------------------------------------------------------------
    def classify(self, record: Any) -> Classification:
        """The category of ``record`` (any error) and the rule that decided; never raises."""
        try:
            return self._classify(coerce_record(record), 0)
        except RecursionError:
            return Classification(E.UNKNOWN, "default", "The error record was too deeply nested.")
        except Exception as exc:  # noqa: BLE001 - a malformed record must never break a run
            return Classification(E.UNKNOWN, "default",
                                  f"The error record could not be read ({type(exc).__name__}).")

    explain = classify

    def categorize(self, record: Any) -> ErrorCategory:
        return self.classify(record).category

    def cache_clear(self) -> None:
        self._cache.clear()
        self._type_cache.clear()

    # internals ------------------------------------------------------------
    def _classify(self, rec: Mapping[str, Any], depth: int) -> Classification:
        raw_type = rec.get("qualname")  # a builder's record: "type" is the short name
        if type(raw_type) is str and raw_type.strip():
            raw_type = _strip_builtins(raw_type)
        else:
            raw_type = rec.get("type")
        type_name = raw_type if type(raw_type) is str and len(raw_type) <= _MAX_TYPE_CHARS \
            else safe_text(raw_type, _MAX_TYPE_CHARS)
        raw_msg = rec.get("message")
        message = raw_msg if type(raw_msg) is str and len(raw_msg) <= MAX_MESSAGE_CHARS \
            else safe_text(raw_msg)
        type_name = type_name.strip()
        if not type_name:
            type_name, message = self._from_traceback(rec, message)
        mro = rec.get("mro")
        mro_key: tuple[str, ...] = ()
        if mro:
            if isinstance(mro, (list, tuple)):
                mro_key = tuple(safe_text(m, _MAX_TYPE_CHARS) for m in mro[:32])
            else:
                mro_key = ()
        chain = rec.get("chain")
        if not isinstance(chain, (list, tuple)):
            chain = ()
        stderr = rec.get("stderr_tail")

        cacheable = not chain and not stderr and len(message) <= _CACHE_KEY_CHARS
        if cacheable:
            key = (type_name, message, mro_key)
            hit = self._cache.get(key)
            if hit is None:
                hit = self._by_type(type_name, message, mro_key) or self._by_message(
                    message, "message") or Classification(
                    E.UNKNOWN, "default", f"No rule matched {type_name or 'the error'}.")
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                self._cache[key] = hit
            return hit
        hit = self._by_type(type_name, message, mro_key)
        if hit is not None:
            return hit

        # The outer type is generic: causes first, then the message, then context.
        causes: list[Mapping[str, Any]] = []
        others: list[Mapping[str, Any]] = []
        if chain and depth < _MAX_CHAIN_DEPTH:
            for link in _linear(chain):
                rel = link.get("relation", "cause")
                (causes if rel == "cause" else others).append(link)
        members = [x for x in others if x.get("relation") == "group"]
        group = self._from_group(members, depth) if members else None
        if group is not None and group.category in _GROUP_FIRST:
            return group  # a failing assertion anywhere in the group: never retried
        for link in reversed(causes):
            found = self._from_link(link, "cause", depth)
            if found is not None:
                return found
        found = self._by_message(message, "message")
        if found is not None:
            return found
        if stderr:
            found = self._by_message(safe_text(stderr), "stderr")
            if found is not None:
                return found
        for link in reversed([x for x in others if x.get("relation") != "group"]):
            found = self._from_link(link, str(link.get("relation", "context")), depth)
            if found is not None:
                return found
        if group is not None:
            return group
        return Classification(E.UNKNOWN, "default", f"No rule matched {type_name or 'the error'}.")

    def _from_group(self, members: list[Mapping[str, Any]], depth: int) -> Classification | None:
        """The members of an exception group decide, whatever their order.

        A member of a test category (assertion, syntax, import, dependency) wins,
        in that order; else the member category first in ErrorCategory's order;
        UNKNOWN members decide nothing. Ties go to the smallest rule, so the same
        members in any order give the same result.
        """
        order = {name: i for i, name in enumerate(ErrorCategory.names())}
        best: tuple[tuple[int, int, str, str], Classification] | None = None
        for link in members:
            found = self._from_link(link, "group", depth)
            if found is None:
                continue
            cat = found.category
            rank = (_GROUP_FIRST.index(cat) if cat in _GROUP_FIRST else len(_GROUP_FIRST),
                    order.get(cat.name, len(order)), found.rule, found.detail)
            if best is None or rank < best[0]:
                best = (rank, found)
        return best[1] if best is not None else None

    def _from_link(self, link: Mapping[str, Any], relation: str,
                   depth: int) -> Classification | None:
        inner = self._classify(link, depth + 1)
        if inner.category is E.UNKNOWN:
            return None
        return Classification(inner.category, f"chain:{relation}->{inner.rule}",
                              f"The {relation} decides: {inner.detail}")

    def _from_traceback(self, rec: Mapping[str, Any], message: str) -> tuple[str, str]:
        tb = rec.get("traceback")
        if not tb:
            return "", message
        text = safe_text(tb)
        for line in reversed(text.strip().splitlines()[-5:]):
            m = _TB_LAST_LINE.match(line.strip())
            if m and _short(m.group(1))[:1].isupper():
                return m.group(1), message or (m.group(2) or "")
        return "", message

    def _by_type(self, type_name: str, message: str,
                 mro: tuple[str, ...]) -> Classification | None:
        """Rules 1-5 (user types, hard types, user patterns, type tables, hierarchy)."""
        key = (type_name, mro)
        decided = self._type_cache.get(key)
        if decided is None:
            decided = self._type_rules(type_name, mro)
            if len(self._type_cache) >= _CACHE_SIZE:
                self._type_cache.clear()
            self._type_cache[key] = decided
        first, failed, table = decided
        if first is not None:
            return first
        if failed:
            if _TIMEOUT_RX.search(message.lower()):
                return Classification(E.WORKER_TIMEOUT, "pattern:pytest-timeout",
                                      "pytest-timeout stopped the test (Timeout >Ns).")
            return Classification(E.TEST_ASSERTION_ERROR, f"type:{failed}",
                                  "pytest.fail() failed the test.")
        # 3. user patterns
        for rx, cat, compiled in self._user_patterns:
            if compiled.search(message):
                return Classification(cat, f"user-pattern:{rx}",
                                      f"The message matches the configured pattern {rx!r}.")
        return table

    def _type_rules(self, type_name: str, mro: tuple[str, ...]
                    ) -> tuple[Classification | None, str, Classification | None]:
        """The message-independent rules: (user or hard type result, the short name if
        it is pytest's Failed, type-table or hierarchy result)."""
        name = _strip_builtins(type_name)
        short = _short(name)
        names = [name] + [_strip_builtins(m) for m in mro]
        # 1. user type mapping
        if self._user_types:
            for n in names:
                for k in (n, _short(n)):
                    cat = self._user_types.get(k) if k == n else self._user_short.get(k)
                    if cat is not None:
                        return (Classification(cat, f"user-type:{k}",
                                               f"The type {n} is mapped to {cat.value} "
                                               f"by the config."), "", None)
        # 2. hard types: decided by type alone
        for n in names:
            cat = _HARD_TYPES.get(_short(n)) or _HARD_TYPES.get(_builtin_hard(n))
            if cat is not None:
                rule = f"type:{short}" if n == name else f"mro:builtins.{_short(n)}"
                return (Classification(cat, rule, f"{short} is decided by its type: {cat.value}."),
                        "", None)
        if short in ("Failed", "XFailed") or name in _FAILED_TYPES:
            return None, short, None
        # 4. type tables
        cat = QUALIFIED_TYPES.get(name)
        if cat is not None:
            return None, "", Classification(cat, f"type:{name}", f"The type {name} is a {cat.value}.")
        cat = SHORT_TYPES.get(short)
        if cat is not None:
            return None, "", Classification(cat, f"type:{short}",
                                            f"The type {short} is a {cat.value}.")
        # 5. hierarchy: the record's mro, else Python's own for a built-in name
        for qual in mro:
            n = _strip_builtins(qual)
            cat = QUALIFIED_TYPES.get(n) or SHORT_TYPES.get(_short(n))
            if cat is not None:
                return None, "", Classification(cat, f"mro:{qual}",
                                                f"{short} derives from {qual}, a {cat.value}.")
        if not mro and "." not in name:
            for base in _BUILTIN_MRO.get(name, ()):
                cat = SHORT_TYPES.get(base)
                if cat is not None:
                    return None, "", Classification(
                        cat, f"mro:builtins.{base}",
                        f"{short} derives from builtins.{base}, a {cat.value}.")
        return None, "", None

    def _by_message(self, text: str, source: str) -> Classification | None:
        """Rules 7-8: errno, then the built-in patterns (first in priority order wins)."""
        if not text:
            return None
        lower = text.lower()
        words = set(_WORD.findall(lower))
        ename = None
        if "errno " in lower or "winerror " in lower:
            for m in _ERRNO_NUM_RE.finditer(text):
                name = _errno.errorcode.get(int(m.group(1)))
                if name in ERRNO_CATEGORIES:
                    ename = name
                    break
        if ename is None and not words.isdisjoint(_ERRNO_WORDS):
            for m in _ERRNO_NAME_RE.finditer(text):
                if m.group(1) in ERRNO_CATEGORIES:
                    ename = m.group(1)
                    break
        if ename is not None:
            cat = ERRNO_CATEGORIES[ename]
            return Classification(cat, f"errno:{ename}",
                                  f"The {_DETAIL_SOURCE[source]} carries {ename}, a {cat.value}.")
        for pid, cat, rx, triggers in _COMPILED:
            if not words.isdisjoint(triggers) and rx.search(lower):
                return Classification(cat, f"pattern:{pid}",
                                      f"The {_DETAIL_SOURCE[source]} matches the {pid} pattern.")
        return None



def _builtin_hard(name: str) -> str:
    """A built-in subclass of a hard type resolves to it (e.g. a custom TabError)."""
    for base in _BUILTIN_MRO.get(name, ()):
        if base in _HARD_TYPES:
            return base
    return ""
