"""Downstream check: pytest-xdist's own test suite, with and without this plugin installed.

Like pluggy's ``downstream/``: xdist's ``testing/`` runs pytester sessions that
load every installed plugin, so an installed-but-not-asked plugin that changes
anything of xdist's behaviour shows up as a test whose outcome differs.

    python tests/downstream/xdist_suite.py [--workdir DIR] [--keep]

Two virtual environments are made from the running interpreter, identical but
for this plugin: the same pytest, the installed pytest-xdist version (whose
sdist supplies ``testing/``), execnet, filelock and this plugin's own
dependencies. Both run the suite; every test's outcome is compared. A test
whose outcome differs is run again, three times in each environment: it
differs when each environment keeps its own outcome, and is flaky in xdist's
suite (listed, not counted) when its outcome changes within one. Exit 0 when
no test differs, 1 otherwise (the differing tests are listed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
from importlib.metadata import requires, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RERUNS = 3  # times a test whose outcome differed is run again in each environment


def sh(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=cwd, env=env)


def runtime_dependencies() -> set[str]:
    """Names of the installed plugin's run-time requirements that apply here (no extras)."""
    names = set()
    for req in requires("pytest-dtf-errors") or []:
        spec, _, marker = req.partition(";")
        if "extra ==" in marker or (marker.strip() and not _marker_holds(marker)):
            continue
        names.add(re.split(r"[<>=!~\[ ]", spec.strip(), maxsplit=1)[0])
    return names


def _marker_holds(marker: str) -> bool:
    from packaging.markers import Marker

    return Marker(marker.strip()).evaluate()


def make_env(where: Path, packages: list[str], with_plugin: bool) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    py = where / "bin" / "python"
    sh(py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages)
    if with_plugin:
        # no deps: the same dependency versions as the plain environment
        sh(py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", str(ROOT))
    return py


def xdist_testing(workdir: Path, xdist_version: str, py: Path) -> Path:
    dl = workdir / "sdist"
    sh(
        py, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
        "--no-binary", ":all:", f"pytest-xdist=={xdist_version}", "-d", dl,
    )
    archive = next(dl.glob("pytest_xdist-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(dl, filter="data") if sys.version_info >= (3, 12) else tar.extractall(dl)
    return next(p for p in dl.iterdir() if p.is_dir())


# Loaded into the outer session only (-p): one line "nodeid outcome" per test.
RECORDER = """
import json, os

def pytest_runtest_logreport(report):
    if report.failed:
        outcome = "failed" if report.when == "call" else "error"
    elif report.skipped:
        outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    elif report.when == "call":
        outcome = "xpassed" if hasattr(report, "wasxfail") else "passed"
    else:
        return
    with open(os.environ["DTF_DOWNSTREAM_LOG"], "a") as f:
        f.write(json.dumps([report.nodeid, outcome]) + "\\n")
"""
# a test's worst outcome over its phases wins
RANK = {"passed": 0, "xpassed": 1, "xfailed": 1, "skipped": 2, "failed": 3, "error": 4}


def run_suite(py: Path, source: Path, log: Path, nodeids: list[str] | None = None) -> float:
    """Run xdist's suite (or some of its tests); each test's outcome goes to ``log``."""
    log.unlink(missing_ok=True)
    (log.parent / "dtf_downstream_recorder.py").write_text(RECORDER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DTF_"))}
    env["DTF_DOWNSTREAM_LOG"] = str(log)
    env["PYTHONPATH"] = str(log.parent)
    start = time.perf_counter()
    # the outer session is xdist's own (-p no:dtf_errors); the sessions its tests start load everything
    subprocess.run(
        [
            str(py), "-m", "pytest", *(nodeids or ["testing"]), "-q", "-p", "no:cacheprovider",
            "-p", "no:dtf_errors", "-p", "dtf_downstream_recorder",
            "-n", str(min(4, os.cpu_count() or 1)),
        ],
        cwd=source, env=env, stdout=subprocess.DEVNULL, check=False,
    )
    return time.perf_counter() - start


def outcomes(log: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        nodeid, outcome = json.loads(line)
        if RANK[outcome] >= RANK.get(out.get(nodeid, "passed"), 0):
            out[nodeid] = outcome
    return out


def confirm(
    envs: dict[str, Path], source: Path, workdir: Path, candidates: list[str], rounds: int = RERUNS
) -> tuple[dict[str, dict[str, list[str]]], dict[str, dict[str, list[str]]]]:
    """Rerun the tests whose outcome differed, ``rounds`` times in each environment.

    A test differs when each environment gives it one outcome every time, and
    they are not the same; one whose outcome changes within an environment is
    flaky in xdist's own suite (its worker-order tests race on which worker is
    ready first), and is listed but not counted.
    """
    seen: dict[str, dict[str, list[str]]] = {n: {label: [] for label in envs} for n in candidates}
    for _ in range(rounds if candidates else 0):
        for label, py in envs.items():
            log = workdir / f"rerun-{label}.log"
            run_suite(py, source, log, candidates)
            got = outcomes(log)
            for nodeid in candidates:
                seen[nodeid][label].append(got.get(nodeid, "absent"))
    differ, flaky = {}, {}
    for nodeid, by_env in seen.items():
        kinds = [set(v) for v in by_env.values()]
        if all(len(k) == 1 for k in kinds) and len(set.union(*kinds)) > 1:
            differ[nodeid] = by_env
        else:
            flaky[nodeid] = by_env
    return differ, flaky


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, help="where the environments go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--json", type=Path, help="write the comparison here")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dtf-downstream-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        xv = version("pytest-xdist")
        # the plugin's run-time dependencies, at the versions installed here, in both
        common = sorted({f"{name}=={version(name)}" for name in runtime_dependencies()} | {"filelock"})
        plain = make_env(workdir / "plain", common, with_plugin=False)
        withp = make_env(workdir / "with-plugin", common, with_plugin=True)
        source = xdist_testing(workdir, xv, plain)
        envs = {"plain": plain, "with-plugin": withp}
        results: dict[str, dict[str, str]] = {}
        times: dict[str, float] = {}
        for label, py in envs.items():
            times[label] = run_suite(py, source, workdir / f"{label}.log")
            results[label] = outcomes(workdir / f"{label}.log")
        a, b = results["plain"], results["with-plugin"]
        print(f"pytest-xdist {xv} testing/: {len(a)} tests without the plugin, {len(b)} with it")
        print(f"wall: {times['plain']:.1f} s without, {times['with-plugin']:.1f} s with")
        differ, flaky = confirm(envs, source, workdir, sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n)))
        for name, seen in flaky.items():
            print(f"FLAKY in xdist's own suite (not counted) {name}: {seen}")
        for name, seen in differ.items():
            print(f"DIFFERS {name}: {seen}")
        print(f"{len(differ)} tests differ")
        if args.json:
            args.json.write_text(json.dumps(
                {"times": times, "differ": differ, "flaky": flaky, "results": results}, indent=1
            ))
        return 1 if differ or not a else 0
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
