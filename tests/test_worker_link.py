"""The DTF link's worker side, run in a real execnet worker process."""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator

import execnet
import pytest

from pytest_dtf_errors import _worker_link

THREADS = """
import threading
channel.send(sorted(t.name for t in threading.enumerate()))
"""


@pytest.fixture
def gateway() -> Iterator[execnet.Gateway]:
    gw = execnet.makegateway("popen")
    try:
        yield gw
    finally:
        gw.exit()


def open_link(gw: execnet.Gateway, interval: float) -> tuple[int, execnet.Channel]:
    channel = gw.remote_exec(inspect.getsource(_worker_link))
    channel.send({"heartbeat_interval": interval})
    hello = channel.receive(timeout=30)
    return hello["pid"], channel.receive(timeout=30)


def remote_threads(gw: execnet.Gateway) -> list[str]:
    return list(gw.remote_exec(THREADS).receive(timeout=30))


def test_the_worker_beats_until_the_controller_closes_the_link(gateway):
    pid, link = open_link(gateway, interval=0.05)
    assert pid > 0
    beats = [link.receive(timeout=10) for _ in range(3)]
    assert [kind for kind, _ in beats] == ["hb", "hb", "hb"]
    assert all(data["t"] > 0 for _, data in beats)


def test_the_heartbeat_thread_ends_when_the_link_closes(gateway):
    _, link = open_link(gateway, interval=30)  # asleep between beats when the link closes
    assert link.receive(timeout=10)[0] == "hb"
    assert "dtf-heartbeat" in remote_threads(gateway)

    link.close()
    deadline = time.monotonic() + 5
    while "dtf-heartbeat" in remote_threads(gateway):
        # no thread outlives the link: a worker's exit never waits on one
        assert time.monotonic() < deadline, "the heartbeat thread did not end"
        time.sleep(0.02)
