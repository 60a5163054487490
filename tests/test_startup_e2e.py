"""Start-up: an installed plugin's modules load from their bytecode, not through pytest's rewrite."""

from __future__ import annotations

import compileall
import shutil
from pathlib import Path

import pytest
from conftest import MODES, outcomes, run

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_dtf_errors"

CHECK = """
import sys

def test_the_plugin_modules_are_not_assertion_rewritten():
    for name in ("pytest_dtf_errors.settings", "pytest_dtf_errors.worker"):
        module = sys.modules[name]
        assert module.__file__.startswith({site!r}), module.__file__
        assert type(module.__spec__.loader).__name__ != "AssertionRewritingHook", name
"""


def install_like_pip(site: Path) -> None:
    """The package as a wheel install lays it out: files, compiled bytecode, a RECORD.

    pytest marks the packages a pytest11 distribution's RECORD lists for assertion
    rewriting (an editable checkout lists none, so the dev venv never shows it).
    """
    shutil.copytree(PACKAGE, site / "pytest_dtf_errors", ignore=shutil.ignore_patterns("__pycache__"))
    compileall.compile_dir(str(site / "pytest_dtf_errors"), quiet=1)
    info = site / "pytest_dtf_errors-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest-dtf-errors\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\ndtf_errors = pytest_dtf_errors.plugin\n")
    files = [p.relative_to(site).as_posix() for p in (site / "pytest_dtf_errors").rglob("*.py")]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in sorted(files)))


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_an_installed_plugin_is_not_rewritten_in_every_process(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    site = pytester.path / "site"
    install_like_pip(site)
    pytester.makepyfile(test_loader=CHECK.format(site=str(site)))
    # what container images set: nothing is cached, every process compiles what it imports
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("PYTHONPATH", str(site))
    result = run(pytester, *mode)
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result) == {"passed": 1}
