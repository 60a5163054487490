"""The real-GPU check of issue 4, as one prepared script (a few minutes on one NVIDIA GPU).

    python bench/gpu_check.py [--json out.json]

Needs torch with CUDA on the machine (the device image has it) and the
plugin installed (or the repo root on PYTHONPATH); pytest-xdist and execnet.
It runs, in a temporary directory:

1. 4 workers: 2 with ``CUDA_VISIBLE_DEVICES=""`` and 2 with the GPU.
   ``@pytest.mark.hardware("cuda")`` tests doing a real ``torch.cuda``
   operation must run only on the GPU workers; a real
   ``torch.cuda.OutOfMemoryError`` (an allocation far beyond the card) on the
   first attempt must be categorized RESOURCE_EXHAUSTED and retried on
   another worker.
2. ``-n 2 --dtf-gpus-per-worker 1``: each worker's CUDA_VISIBLE_DEVICES is its
   own slice (with one GPU both get "0", by the wrap-around rule).
3. A real sticky CUDA error (issue 13): a test indexes a CUDA tensor out of
   bounds (a device-side assert), then 10 CUDA tests run after it on the same
   worker (``--dist loadfile``). The worker must be replaced, the victims must
   pass on fresh workers and be reported as victims, and the culprit must fail
   "reproduced on a fresh worker".

It prints what it saw and exits 1 when a check fails. Nothing is asserted in
the test suite about GPUs: CI has none.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

SUITE = '''
import json, os, pytest

def _record(name, extra=None):
    rec = {"name": name, "worker": os.environ.get("PYTEST_XDIST_WORKER"),
           "cvd": os.environ.get("CUDA_VISIBLE_DEVICES")}
    rec.update(extra or {})
    with open(os.path.join(os.path.dirname(__file__), "gpu.log"), "a") as f:
        f.write(json.dumps(rec) + "\\n")

@pytest.mark.hardware("cuda")
@pytest.mark.parametrize("i", range(6))
def test_cuda_op(i):
    import torch
    x = torch.arange(1000, device="cuda", dtype=torch.float32)
    value = float((x * 2).sum().item())
    _record("op%d" % i, {"device": torch.cuda.get_device_name(0)})
    assert value == 999000.0

@pytest.mark.hardware("cuda")
def test_oom(dtf_attempt):
    import torch
    _record("oom", {"attempt": dtf_attempt})
    if dtf_attempt == 1:
        torch.empty(1 << 45, dtype=torch.uint8, device="cuda")  # 32 TiB: a real OutOfMemoryError

@pytest.mark.parametrize("i", range(6))
def test_cpu(i):
    _record("cpu%d" % i)
'''

PINNED = '''
import json, os
def test_where_a():
    with open(os.path.join(os.path.dirname(__file__), "pin.log"), "a") as f:
        f.write(json.dumps([os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("CUDA_VISIBLE_DEVICES")]) + "\\n")
def test_where_b():
    test_where_a()
'''


CASCADE = '''
import pytest
import torch

def test_0_culprit():
    x = torch.zeros(4, device="cuda")
    idx = torch.tensor([1000], device="cuda")
    x[idx] = 1.0  # out of bounds: a device-side assert
    torch.cuda.synchronize()

@pytest.mark.parametrize("i", range(10))
def test_victim(i):
    y = torch.ones(8, device="cuda") * i
    torch.cuda.synchronize()
    assert float(y.sum()) == 8 * i
'''


def cascade(root: Path, problems: list[str]) -> dict[str, object]:
    """Check 3: a real device-side assert poisons a worker; victims and culprit."""
    work = root / "cascade"
    work.mkdir()
    (work / "test_cascade.py").write_text(textwrap.dedent(CASCADE))
    (work / "test_cpu.py").write_text("import time\ndef test_cpu():\n    time.sleep(0.5)\n")
    proc = run(["-n", "2", "--dist", "loadfile", "--dtf-retry", "--dtf-report=r.json", "-v"], work)
    report = json.loads((work / "r.json").read_text())
    tests = {t["nodeid"].split("::")[-1]: t for t in report["tests"]}
    culprit = tests["test_0_culprit"]
    victims = [t for t in tests.values() if (t.get("poison") or {}).get("role") == "victim"]
    seen = {"rc": proc.returncode, "poisoned": report.get("poisoned"), "culprit": culprit.get("reason"),
            "victims": {t["nodeid"]: t["outcome"] for t in victims},
            "categories": sorted({a["category"] for t in tests.values() for a in t["attempts"]
                                  if a["outcome"] != "passed"})}
    if not report.get("poisoned"):
        problems.append(f"cascade: no poisoned worker recognized: {seen}")
    if culprit["outcome"] != "failed" or "reproduced on a fresh worker" not in (culprit.get("reason") or ""):
        problems.append(f"cascade: the culprit was not confirmed: {culprit.get('reason')}")
    if any(t["outcome"] != "passed" for t in victims):
        problems.append(f"cascade: a victim did not pass on a fresh worker: {seen['victims']}")
    return seen


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True, timeout=600)
    print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n", flush=True)
    return proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json")
    args = ap.parse_args()
    problems: list[str] = []
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "test_gpu.py").write_text(textwrap.dedent(SUITE))
        (root / "pyproject.toml").write_text("[tool.dtf]\nbreaker_min_tests = 1000\n")
        specs = ["--tx", "2*popen//env:CUDA_VISIBLE_DEVICES=", "--tx", "2*popen"]
        proc = run(["-d", *specs, "--dtf-retry", "--dtf-report=r.json", "-v"], root)
        out["routing_rc"] = proc.returncode
        report = json.loads((root / "r.json").read_text())
        nodes = {n["id"]: n["hardware"] for n in report["nodes"]}
        out["nodes"] = nodes
        gpu_workers = {n for n, tags in nodes.items() if "cuda" in tags}
        records = [json.loads(line) for line in (root / "gpu.log").read_text().splitlines()]
        out["records"] = records
        if len(gpu_workers) != 2:
            problems.append(f"expected 2 cuda workers, saw {nodes}")
        ops = [r for r in records if r["name"].startswith("op")]
        if not ops or any(r["worker"] not in gpu_workers for r in ops):
            problems.append(f"cuda tests ran outside the GPU workers: {ops}")
        oom = next(t for t in report["tests"] if t["nodeid"].endswith("test_oom"))
        out["oom"] = oom
        first = oom["attempts"][0]
        if first["category"] != "resource_exhausted":
            problems.append(f"OutOfMemoryError categorized {first['category']} ({first['rule']})")
        if oom["outcome"] != "flaky" or oom["attempts"][1]["node"] == first["node"]:
            problems.append(f"OOM retry did not pass on another worker: {oom}")
        if proc.returncode != 0:
            problems.append(f"routing run exited {proc.returncode}")

        pin = root / "pin"
        pin.mkdir()
        (pin / "test_pin.py").write_text(textwrap.dedent(PINNED))
        proc = run(["-n", "2", "--dtf-gpus-per-worker", "1", "-v"], pin)
        seen = dict(tuple(json.loads(line)) for line in (pin / "pin.log").read_text().splitlines())
        out["pinning"] = seen
        if proc.returncode != 0 or not seen or any(v is None for v in seen.values()):
            problems.append(f"pinning: rc={proc.returncode}, CUDA_VISIBLE_DEVICES per worker {seen}")
        out["cascade"] = cascade(root, problems)
    out["problems"] = problems
    print(json.dumps({k: v for k, v in out.items() if k != "records"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    print("gpu_check:", "OK" if not problems else "FAILED: " + "; ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
