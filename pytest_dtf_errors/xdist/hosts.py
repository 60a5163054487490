"""Where a worker runs, and whether a new gateway there can be made before xdist tries.

xdist replaces a crashed worker by opening a new gateway from its spec; on a
host that cannot be reached that raises INTERNALERROR or blocks for minutes
(ssh has no connect timeout by default). These probes answer within seconds.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any

from . import patches
from .patches import DSession, WorkerNode

__all__ = ["reachable", "spec_host", "ssh_address"]

Spec = Any  # execnet.XSpec (untyped)


def spec_host(spec: Spec) -> str:
    """The host a gateway spec points at: "localhost" for popen."""
    if getattr(spec, "socket", None):
        return str(spec.socket).rsplit(":", 1)[0]
    if getattr(spec, "ssh", None):
        return str(spec.ssh)
    if getattr(spec, "via", None):
        return f"via {spec.via}"
    return "localhost"


def node_host(node: WorkerNode) -> str:
    return spec_host(node.gateway.spec)


def reachable(ds: DSession, spec: Spec, timeout: float) -> str | None:
    """None if a new gateway for ``spec`` can be made, else why not."""
    via = getattr(spec, "via", None)
    if via:
        return None if patches.proxy_alive(ds, str(via)) else f"proxy {via} is gone"
    sock = getattr(spec, "socket", None)
    if sock:
        host, _, port = str(sock).rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout) as probe:
                probe.sendall(b"''\n")  # the socket server evals one line; this one is a no-op
        except OSError as exc:
            return f"cannot connect to {sock}: {exc.strerror or exc}"
    if getattr(spec, "ssh", None):
        # ssh has no connect timeout by default: a silent host would block the loop for minutes
        address = ssh_address(spec, timeout)
        if address is not None:
            try:
                socket.create_connection(address, timeout=timeout).close()
            except OSError as exc:
                return f"cannot connect to {address[0]}:{address[1]}: {exc.strerror or exc}"
    return None


def ssh_address(spec: Spec, timeout: float) -> tuple[str, int] | None:
    """The address ``ssh`` would connect to for ``spec`` (its ssh_config applied by
    ``ssh -G``, which reads the config only); None where a proxy stands between."""
    config = getattr(spec, "ssh_config", None)
    argv = ["ssh", "-G", *(["-F", str(config)] if config else []), *str(spec.ssh).split()]
    try:
        out = subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode:
        return None
    options = dict(line.partition(" ")[::2] for line in out.stdout.splitlines())
    if options.get("proxycommand", "none") != "none" or options.get("proxyjump", "none") != "none":
        return None
    try:
        return options["hostname"], int(options.get("port", "22"))
    except (KeyError, ValueError):
        return None
