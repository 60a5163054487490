"""Error patterns: Sentry-style message normalization, rapidfuzz clustering, scope.

``add_error`` fingerprints an error on type + normalized message + top in-app
frames. An exact fingerprint seen before is a dict hit; otherwise the
normalized text is compared with ``rapidfuzz.fuzz.ratio`` against the patterns
of the same bucket (same type and category) and joins the best one scoring at
least ``similarity_threshold``; else it starts a new pattern.

Memory is bounded: per pattern a count, the first and last ``EXAMPLES``
examples, and distinct sets capped at ``MAX_DISTINCT``; at most
``MAX_PATTERNS`` patterns, after which an unmatched error joins its nearest
pattern in the bucket (or an overflow pattern).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from rapidfuzz import fuzz, process

from .categories import ErrorCategory
from .classify import coerce_record, safe_text

__all__ = ["MAX_NORMALIZE_CHARS", "ErrorAggregator", "ErrorPattern", "normalize_message"]

#: Text beyond this many characters (head + tail) is cut before normalizing.
MAX_NORMALIZE_CHARS = 2048
EXAMPLES = 3
MAX_DISTINCT = 10_000
MAX_PATTERNS = 2_000
_MAX_FINGERPRINTS = 50_000
_TEMPLATE_CHARS = 512
_TOP_FRAMES = 3

# (regex, placeholder, flags, gate): without a gate substring in the text the regex
# cannot match, and a cheap `in` test skips it. Order matters: wide shapes (URLs, timestamps, UUIDs)
# go before the numbers inside them.
_SUBS: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = tuple(
    (re.compile(rx, flags), repl, (gate,) if isinstance(gate, str) and gate else tuple(gate))
    for rx, repl, flags, gate in (
        (r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s'\"<>()]+", "<url>", 0, "://"),
        (r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+\b", "<email>", 0, "@"),
        (r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
         "<timestamp>", 0, "-"),
        (r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<time>", 0, ":"),
        (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>",
         re.IGNORECASE, "-"),
        (r"\b0x[0-9a-f]+\b", "<hex>", re.IGNORECASE, "0x"),
        (r"(?<![\w:])(?=[0-9a-f:]*\d)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])", "<ip>",
         re.IGNORECASE, ":"),
        (r"\b\d{1,3}(?:\.\d{1,3}){3}\b", "<ip>", 0, "."),
        (r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", "<hex>", re.IGNORECASE, ""),
        (r"(?:\b[A-Za-z]:)?(?:[\\/][\w.@+~-]+){2,}[\\/]?|\b[\w.-]+(?:/[\w.@+-]+)+", "<path>", 0,
         ("/", "\\")),
        (r"'[^'\n]{0,200}'", "'<val>'", 0, "'"),
        (r"\"[^\"\n]{0,200}\"", "\"<val>\"", 0, '"'),
        (r"\b(?:localhost|[\w-]+(?:\.[\w-]+)+)(?=:\d)", "<host>", 0, ":"),
        (r"(?<=:)\d{2,5}\b", "<port>", 0, ":"),
        (r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", "<n>", 0, ""),
        (r"\s+", " ", 0, ""),
    )
)
_HAS_DIGIT = re.compile(r"\d")


def normalize_message(text: Any) -> str:
    """Replace variable parts (numbers, ids, addresses, paths, quoted values, ...) by
    placeholders so that messages of one template normalize to one string."""
    s = safe_text(text, MAX_NORMALIZE_CHARS)
    digits = _HAS_DIGIT.search(s) is not None
    for rx, repl, gate in _SUBS:
        if gate and not any(g in s for g in gate):
            continue
        if not digits and repl in ("<n>", "<hex>", "<time>", "<timestamp>", "<port>", "<ip>"):
            continue
        s = rx.sub(repl, s)
    return s.strip()


def _frames_key(frames: Any) -> str:
    if not isinstance(frames, (list, tuple)):
        return ""
    parts = []
    for f in frames[:_TOP_FRAMES]:
        if isinstance(f, Mapping):
            name = safe_text(f.get("file"), 200).replace("\\", "/").rsplit("/", 1)[-1]
            parts.append(f"{name}:{safe_text(f.get('function'), 200)}")
    return " | ".join(parts)


class _CappedSet(set):  # type: ignore[type-arg]
    """A set that stops growing at ``MAX_DISTINCT`` entries (and says so)."""

    overflow = False

    def add_capped(self, item: Any) -> None:
        if item is None or item == "":
            return
        if len(self) < MAX_DISTINCT:
            self.add(item)
        elif item not in self:
            self.overflow = True


class ErrorPattern:
    """A group of similar errors: counts, distinct tests/nodes/hardware/hosts, examples."""

    __slots__ = (
        "_first",
        "_last",
        "_population",
        "category",
        "count",
        "frames",
        "hardware",
        "hosts",
        "id",
        "nodes",
        "template",
        "tests",
        "type",
    )

    def __init__(self, pattern_id: str, category: ErrorCategory | None, type_name: str,
                 template: str, frames: str, population: ErrorAggregator) -> None:
        self.id = pattern_id
        self.category = category
        self.type = type_name
        self.template = template
        self.frames = frames
        self.count = 0
        self.tests: _CappedSet = _CappedSet()
        self.nodes: _CappedSet = _CappedSet()
        self.hardware: _CappedSet = _CappedSet()
        self.hosts: _CappedSet = _CappedSet()
        self._first: list[dict[str, Any]] = []
        self._last: deque[dict[str, Any]] = deque(maxlen=EXAMPLES)
        self._population = population

    def _add(self, message: str, ctx: Mapping[str, Any]) -> None:
        self.count += 1
        test_id = ctx.get("test_id")
        worker = ctx.get("worker_id")
        self.tests.add_capped(test_id)
        self.nodes.add_capped(worker)
        self.hardware.add_capped(ctx.get("hardware_type"))
        self.hosts.add_capped(ctx.get("host"))
        example = {"test_id": test_id, "message": message[:_TEMPLATE_CHARS], "worker_id": worker}
        if len(self._first) < EXAMPLES:
            self._first.append(example)
        else:
            self._last.append(example)

    @property
    def examples(self) -> list[dict[str, Any]]:
        """The first and the last few examples (at most 2 × EXAMPLES)."""
        return self._first + list(self._last)

    @property
    def distinct_tests(self) -> int:
        return len(self.tests) if self.tests else self.count

    @property
    def scope(self) -> str:
        """"test", "node", "hardware" or "systemic", from what the aggregator has seen."""
        if self.distinct_tests <= 1:
            return "test"
        pop = self._population
        if len(self.nodes) == 1 and len(pop.known_nodes) >= 2:
            return "node"
        if len(self.hardware) == 1 and len(pop.known_hardware) >= 2:
            return "hardware"
        return "systemic"

    @property
    def hint(self) -> str:
        """One line saying where the problem probably lies."""
        scope = self.scope
        if scope == "test":
            test = next(iter(self.tests), None)
            return f"only {test}: a problem of this test" if test else "one test: a test problem"
        if scope == "node":
            return f"all on {next(iter(self.nodes))}: node problem"
        if scope == "hardware":
            return f"all on {next(iter(self.hardware))} workers: hardware problem"
        n = self.distinct_tests
        family = self.category.family if self.category is not None else "other"
        where = (f"{len(self.hosts)} hosts" if len(self.hosts) > 1
                 else f"{len(self.nodes)} nodes" if len(self.nodes) > 1 else "one place")
        why = {
            "network": "a shared service is down",
            "resource": "a shared resource is exhausted",
            "test": "a shared code or fixture problem",
            "hardware": "a hardware or driver problem",
            "worker": "workers are unstable",
            "system": "the machines are overloaded",
        }.get(family, "a common cause")
        return f"{n} tests, {where}: {why}"

    def to_dict(self, max_tests: int = 100) -> dict[str, Any]:
        """JSON-ready summary; ``tests`` is a sorted list, or a count past ``max_tests``."""
        tests: list[str] | int = (sorted(map(str, self.tests)) if len(self.tests) <= max_tests
                                  else len(self.tests))
        examples = self.examples
        return {
            "id": self.id,
            "category": self.category.value if self.category is not None else None,
            "count": self.count,
            "tests": tests,
            "nodes": sorted(map(str, self.nodes)),
            "hardware": sorted(map(str, self.hardware)),
            "hosts": sorted(map(str, self.hosts)),
            "scope": self.scope,
            "template": self.template,
            "example": examples[0] if examples else None,
            "hint": self.hint,
        }

    def __repr__(self) -> str:
        return f"<ErrorPattern {self.id} count={self.count} scope={self.scope} {self.template!r}>"


class ErrorAggregator:
    """Groups errors into patterns (see the module docstring); thread-safe."""

    def __init__(self, similarity_threshold: float = 0.8) -> None:
        if not 0.0 <= float(similarity_threshold) <= 1.0:
            raise ValueError(f"similarity_threshold must be in [0, 1], got {similarity_threshold}")
        self.similarity_threshold = float(similarity_threshold)
        self.patterns: dict[str, ErrorPattern] = {}
        self.known_nodes: _CappedSet = _CappedSet()
        self.known_hardware: _CappedSet = _CappedSet()
        self.known_hosts: _CappedSet = _CappedSet()
        self._by_fingerprint: dict[tuple[str, Any, str, str], ErrorPattern] = {}
        self._buckets: dict[tuple[str, Any], dict[str, str]] = {}
        self._lock = threading.Lock()

    def note_node(self, node_id: str, hardware: str | Iterable[str] | None = None,
                  host: str | None = None) -> None:
        """Tell the aggregator a node exists (the population scopes are judged against)."""
        with self._lock:
            self.known_nodes.add_capped(node_id)
            if isinstance(hardware, str):
                self.known_hardware.add_capped(hardware)
            elif hardware is not None:
                for h in hardware:
                    self.known_hardware.add_capped(h)
            self.known_hosts.add_capped(host)

    def add_error(self, error: Any, context: Mapping[str, Any] | None = None) -> str:
        """Record one error; returns the id ("P1", "P2", ...) of the pattern it joined."""
        rec = coerce_record(error)
        ctx = dict(context) if isinstance(context, Mapping) else {}
        type_name = safe_text(rec.get("type"), 256).rsplit(".", 1)[-1]
        message = safe_text(rec.get("message"))
        category = ctx.get("category")
        if category is not None and not isinstance(category, ErrorCategory):
            try:
                category = ErrorCategory.lookup(category)
            except KeyError:
                category = None
        template = normalize_message(message)[:_TEMPLATE_CHARS]
        frames = _frames_key(rec.get("frames"))
        fp = (type_name, category, template, frames)
        with self._lock:
            self.known_nodes.add_capped(_hashable(ctx.get("worker_id")))
            self.known_hardware.add_capped(_hashable(ctx.get("hardware_type")))
            self.known_hosts.add_capped(_hashable(ctx.get("host")))
            pattern = self._by_fingerprint.get(fp)
            if pattern is None:
                pattern = self._match(type_name, category, template, frames)
                if len(self._by_fingerprint) < _MAX_FINGERPRINTS:
                    self._by_fingerprint[fp] = pattern
            pattern._add(message, {k: _hashable(v) for k, v in ctx.items()})
            return pattern.id

    def _match(self, type_name: str, category: Any, template: str, frames: str) -> ErrorPattern:
        bucket = self._buckets.setdefault((type_name, category), {})
        query = f"{template} @ {frames}" if frames else template
        at_cap = len(self.patterns) >= MAX_PATTERNS
        if bucket:
            cutoff = 0.0 if at_cap else self.similarity_threshold * 100.0
            best = process.extractOne(query, bucket, scorer=fuzz.ratio, score_cutoff=cutoff)
            if best is not None:
                return self.patterns[best[2]]
        if at_cap:
            overflow = self.patterns.get("P0")
            if overflow is None:
                overflow = ErrorPattern("P0", None, "", "<other errors>", "", self)
                self.patterns["P0"] = overflow
            return overflow
        pid = f"P{len(self.patterns) + 1}"
        pattern = ErrorPattern(pid, category, type_name, template, frames, self)
        self.patterns[pid] = pattern
        bucket[pid] = query
        return pattern

    def get(self, pattern_id: str) -> ErrorPattern | None:
        return self.patterns.get(pattern_id)

    def get_error_groups(self) -> list[ErrorPattern]:
        """All patterns, most frequent first (creation order among equals)."""
        with self._lock:
            groups = list(self.patterns.values())
        return sorted(groups, key=lambda p: -p.count)

    def get_frequent_errors(self, min_count: int = 2) -> list[ErrorPattern]:
        """Patterns seen at least ``min_count`` times, most frequent first."""
        return [p for p in self.get_error_groups() if p.count >= min_count]

    def clear(self) -> None:
        with self._lock:
            self.patterns.clear()
            self._by_fingerprint.clear()
            self._buckets.clear()


def _hashable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float)):
        return value
    return safe_text(value, 256)
