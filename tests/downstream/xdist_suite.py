"""Downstream check: pytest-xdist's own test suite, with and without this plugin installed.

Like pluggy's ``downstream/``: xdist's ``testing/`` runs pytester sessions that
load every installed plugin, so an installed-but-not-asked plugin that changes
anything of xdist's behaviour shows up as a test whose outcome differs.

    python tests/downstream/xdist_suite.py [--workdir DIR] [--keep]

Two virtual environments are made from the running interpreter, identical but
for this plugin: the same pytest, the installed pytest-xdist version (whose
sdist supplies ``testing/``), execnet, filelock and this plugin's own
dependencies. Both run the suite; every test's outcome is compared. Exit 0
when no test differs, 1 otherwise (the differing tests are listed).
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
import xml.etree.ElementTree as ET
from importlib.metadata import requires, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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


def outcomes(junit: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        out[name] = "+".join(kinds) if kinds else "passed"
    return out


def run_suite(py: Path, source: Path, junit: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DTF_"))}
    start = time.perf_counter()
    # the outer session is xdist's own (-p no:dtf_errors); the sessions its tests start load everything
    subprocess.run(
        [
            str(py), "-m", "pytest", "testing", "-q", "-p", "no:cacheprovider", "-p", "no:dtf_errors",
            "-n", str(min(4, os.cpu_count() or 1)), f"--junitxml={junit}",
        ],
        cwd=source, env=env, stdout=subprocess.DEVNULL, check=False,
    )
    return time.perf_counter() - start


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
        results: dict[str, dict[str, str]] = {}
        times: dict[str, float] = {}
        for label, py in (("plain", plain), ("with-plugin", withp)):
            junit = workdir / f"{label}.xml"
            times[label] = run_suite(py, source, junit)
            results[label] = outcomes(junit)
        a, b = results["plain"], results["with-plugin"]
        differ = sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))
        print(f"pytest-xdist {xv} testing/: {len(a)} tests without the plugin, {len(b)} with it")
        print(f"wall: {times['plain']:.1f} s without, {times['with-plugin']:.1f} s with")
        for name in differ:
            print(f"DIFFERS {name}: without {a.get(name, 'absent')}, with {b.get(name, 'absent')}")
        print(f"{len(differ)} tests differ")
        if args.json:
            args.json.write_text(json.dumps({"times": times, "differ": differ, "results": results}, indent=1))
        return 1 if differ or not a else 0
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
