"""The engine example: ``python -m pytest_dtf_errors.engine``.

Runs the guide's usage example on a handful of sample errors and prints each
category, deciding rule and retry decision, then the pattern report.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

from .handler import DistributedErrorHandler

SAMPLES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("gw0", "cpu", "tests/test_api.py::test_get", {
        "type": "ConnectionError", "message": "Connection refused",
        "traceback": "...", "hardware_context": {"hardware_type": "cpu"}}),
    ("gw1", "cpu", "tests/test_api.py::test_post", {
        "type": "requests.exceptions.ConnectionError",
        "message": "HTTPConnectionPool(host='10.0.0.7', port=8080): Max retries exceeded "
                   "(Caused by NewConnectionError: [Errno 111] Connection refused)"}),
    ("gw2", "cuda", "tests/test_model.py::test_train", {
        "type": "torch.OutOfMemoryError",
        "message": "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.10 GiB total)",
        "mro": ["torch.OutOfMemoryError", "builtins.RuntimeError", "builtins.Exception"],
        "hardware_context": {"hardware_type": "cuda", "device_id": 0}}),
    ("gw3", "cuda", "tests/test_model.py::test_infer", {
        "type": "RuntimeError", "message": "Found no NVIDIA driver on your system."}),
    ("gw0", "cpu", "tests/test_math.py::test_add", {
        "type": "AssertionError", "message": "assert 3 == 4 (connection refused)"}),
    ("gw1", "cpu", "tests/test_db.py::test_query", {
        "type": "psycopg2.OperationalError",
        "message": "could not connect to server: Connection refused\n"
                   "\tIs the server running on host \"db\" (10.0.0.9) and accepting\n"
                   "\tTCP/IP connections on port 5432?"}),
    ("gw2", "cuda", "tests/test_slow.py::test_big", {
        "type": "Failed", "message": "Timeout >1.0s"}),
    ("gw3", "cuda", "tests/test_api.py::test_put", {
        "type": "ConnectionRefusedError", "message": "[Errno 111] Connection refused"}),
]


def main() -> None:
    handler = DistributedErrorHandler(rng=random.Random(0))
    for worker, hardware, test_id, error in SAMPLES:
        handler.error_aggregator.note_node(worker, hardware)
    for i, (worker, hardware, test_id, error) in enumerate(SAMPLES):
        context = {"worker_id": worker, "hardware_type": hardware, "attempt_count": 1,
                   "test_id": test_id}
        result = handler.handle_error(f"task{i}", error, context)
        print(f"{test_id}")
        print(f"  {error['type']}: {error['message'].splitlines()[0][:70]}")
        print(f"  -> {result['category'].value} (rule {result['rule']}), pattern "
              f"{result['pattern_id']}")
        if result["retry"]:
            print(f"  Retry recommended with delay: {result['retry_delay']:.2f} seconds")
        else:
            print("  No retry")
        if result["recovery_action"]:
            print(f"  Recovery actions: {result['recovery_action']['actions_taken']}")
    report = handler.get_error_report()
    print("\nBy category:", json.dumps(report["by_category"]))
    print("Patterns:")
    for p in report["patterns"]:
        print(f"  {p['id']:>3} x{p['count']} {p['category']:<26} scope={p['scope']:<8} "
              f"{p['template'][:50]!r}  ({p['hint']})")
    if "--json" in sys.argv[1:]:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
