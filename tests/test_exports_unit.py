"""The public API: ``__all__`` is the one table of ``pytest_dtf_errors/__init__.py``, loaded lazily."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_dtf_errors

INIT = Path(pytest_dtf_errors.__file__)


def test_every_name_in_all_imports() -> None:
    for name in pytest_dtf_errors.__all__:
        assert getattr(pytest_dtf_errors, name) is not None, name
        namespace: dict[str, object] = {}
        exec(f"from pytest_dtf_errors import {name}", namespace)  # noqa: S102
        assert namespace[name] is getattr(pytest_dtf_errors, name), name
    assert "integrate_error_handler" in pytest_dtf_errors.__all__
    assert "ErrorCategory" in pytest_dtf_errors.__all__


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from pytest_dtf_errors import *", namespace)  # noqa: S102
    assert set(namespace) - {"__builtins__"} == set(pytest_dtf_errors.__all__)


def test_a_public_name_is_the_object_of_its_defining_module() -> None:
    from pytest_dtf_errors import engine

    for name in pytest_dtf_errors.__all__:
        if name != "__version__" and hasattr(engine, name):
            assert getattr(engine, name) is getattr(pytest_dtf_errors, name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        pytest_dtf_errors.NoSuchThing  # noqa: B018


def test_dir_lists_the_public_names() -> None:
    listed = dir(pytest_dtf_errors)
    assert set(pytest_dtf_errors.__all__) <= set(listed)
    assert listed == sorted(listed)


def test_importing_the_package_does_not_import_the_engine() -> None:
    code = "import pytest_dtf_errors, sys; assert 'pytest_dtf_errors.engine' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    # dir() and __all__ are no use of a name: they import nothing either
    code = (
        "import pytest_dtf_errors, sys; dir(pytest_dtf_errors); pytest_dtf_errors.__all__; "
        "assert 'pytest_dtf_errors.engine' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _type_checking_imports() -> dict[str, str]:
    """name -> module of the ``if TYPE_CHECKING:`` imports of ``__init__.py``."""
    tree = ast.parse(INIT.read_text())
    blocks = [
        node for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1
    found: dict[str, str] = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1 and node.module, ast.dump(node)
        for alias in node.names:
            # `X as X`: an explicit re-export for type checkers (mypy --strict users)
            assert alias.asname == alias.name, alias.name
            assert alias.name not in found, alias.name
            found[alias.name] = node.module
    return found


def test_the_type_checking_imports_match_the_table() -> None:
    table = pytest_dtf_errors._PUBLIC
    assert _type_checking_imports() == table
    assert pytest_dtf_errors.__all__ == ["__version__", *table]
    for name, module in table.items():
        defining = importlib.import_module(f"pytest_dtf_errors.{module}")
        assert getattr(defining, name) is getattr(pytest_dtf_errors, name), name
