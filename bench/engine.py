"""Engine benchmark: categorizations per second, and clustering 10,000 messages.

    .venv/bin/python bench/engine.py

Prints figures only (they go to BENCHMARKS.md); nothing is asserted.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_dtf_errors.engine import ErrorAggregator, ErrorClassifier

# A mix as a real failing suite produces it: type decides for most, patterns for the rest.
MIXED = [
    ("AssertionError", "assert {n} == {m}"),
    ("AssertionError", "assert 'user-{n}' in ['user-{m}']"),
    ("ConnectionRefusedError", "[Errno 111] Connection refused"),
    ("requests.exceptions.ConnectionError",
     "HTTPConnectionPool(host='10.0.{n}.{m}', port=8080): Max retries exceeded"),
    ("RuntimeError", "CUDA out of memory. Tried to allocate {n}.00 MiB (GPU 0; {m} GiB total)"),
    ("OSError", "[Errno 28] No space left on device: '/tmp/build-{n}/out.bin'"),
    ("psycopg2.OperationalError",
     "could not connect to server: Connection refused\n\tIs the server running on port {n}?"),
    ("requests.exceptions.HTTPError", "503 Server Error: Service Unavailable for url: http://api/{n}"),
    ("Failed", "Timeout >{n}.0s"),
    ("KeyError", "'key-{n}'"),
    ("ValueError", "invalid literal for int() with base 10: 'x{n}'"),
    ("TimeoutError", "timed out after {n} seconds"),
    ("ImportError", "cannot import name 'thing{n}' from 'pkg'"),
    ("RuntimeError", "something went wrong in step {n} of {m}"),
    ("socket.gaierror", "[Errno -2] Name or service not known"),
    ("ConnectionAbortedError", "[Errno 103] Software caused connection abort"),
]


def records(count: int, unique: bool, seed: int = 1) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        t, msg = MIXED[i % len(MIXED)]
        n, m = (rng.randrange(10**6), rng.randrange(10**6)) if unique else (i % 7, i % 5)
        out.append({"type": t, "message": msg.format(n=n, m=m)})
    return out


def bench_classify(unique: bool, count: int = 200_000) -> float:
    recs = records(count, unique)
    classifier = ErrorClassifier()
    classify = classifier.classify
    best = 0.0
    for _ in range(3):
        classifier.cache_clear()
        t0 = time.perf_counter()
        for r in recs:
            classify(r)
        best = max(best, count / (time.perf_counter() - t0))
    return best


# Ten message shapes as real suites print them; with five exception types, 50 templates.
SHAPES = [
    "assert response.status_code == {n}, got {m} for user {u}",
    "HTTPConnectionPool(host='{h}', port={p}): Max retries exceeded with url: /api/v1/items/{n}",
    "CUDA out of memory. Tried to allocate {f} MiB (GPU {g}; {f} GiB total capacity)",
    "could not connect to server: Connection refused. Is the server running on host {h}?",
    "[Errno 28] No space left on device: '/tmp/pytest-of-ci/pytest-{n}/data.bin'",
    "Timeout >{f}s while waiting for job {u} to finish",
    "KeyError: 'session-{n}' not in cache shard {m} at 0x{a:x}",
    "expected {n} rows in table orders_{m}, found {n} (query took {f} ms)",
    "worker gw{g} lost heartbeat at 2026-11-28T10:{m:02d}:00Z after {n} tests",
    "fixture 'db_{n}' raised ValueError: invalid literal for int() with base 10: '{u}'",
]
TYPES = ["AssertionError", "ConnectionError", "RuntimeError", "OSError", "ValueError"]


def cluster_messages(total: int = 10_000, seed: int = 2) -> list[tuple[dict[str, str], dict[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(total):
        i = rng.randrange(len(SHAPES) * len(TYPES))
        shape, type_name = SHAPES[i % len(SHAPES)], TYPES[i // len(SHAPES)]
        msg = shape.format(n=rng.randrange(10**5), m=rng.randrange(60), u=f"u{rng.randrange(10**6)}",
                           h=f"10.0.{rng.randrange(255)}.{rng.randrange(255)}",
                           p=rng.randrange(1024, 65535), f=round(rng.random() * 1e3, 2),
                           g=rng.randrange(8), a=rng.randrange(2**48))
        out.append(({"type": type_name, "message": msg},
                    {"test_id": f"t{rng.randrange(2000)}", "worker_id": f"gw{rng.randrange(8)}"}))
    return out


def bench_cluster(total: int = 10_000) -> tuple[float, int]:
    msgs = cluster_messages(total)
    agg = ErrorAggregator(0.8)
    t0 = time.perf_counter()
    for rec, ctx in msgs:
        agg.add_error(rec, ctx)
    return time.perf_counter() - t0, len(agg.get_error_groups())


def main() -> None:
    print(f"python {sys.version.split()[0]}")
    print(f"categorizations/s, mixed, unique messages (cache misses): {bench_classify(True):,.0f}")
    print(f"categorizations/s, mixed, repeating messages (cache hits): {bench_classify(False):,.0f}")
    seconds, groups = bench_cluster()
    print(f"clustering 10,000 messages from 50 templates: {seconds:.3f} s, {groups} groups")


if __name__ == "__main__":
    main()
