"""The engine imports neither pytest nor xdist (it must work for any coordinator)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["pytest"] = None
    sys.modules["xdist"] = None
    sys.modules["_pytest"] = None
    sys.modules["execnet"] = None
    import pytest_dtf_errors.engine as engine
    from pytest_dtf_errors.engine import *  # noqa: F403
    from pytest_dtf_errors.coordinator_error_integration import integrate_error_handler
    h = engine.DistributedErrorHandler()
    r = h.handle_error("t", {"type": "ConnectionError", "message": "refused"}, {})
    assert r["category"] is engine.ErrorCategory.NETWORK_CONNECTION_ERROR
    bad = sorted(m for m in sys.modules if m.split(".")[0] in ("pytest", "_pytest", "xdist",
                                                                "execnet", "pluggy")
                 and sys.modules[m] is not None)
    assert not bad, bad
    print("ok")
""")


def test_engine_imports_without_pytest_and_xdist():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
