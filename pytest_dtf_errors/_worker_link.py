"""Worker side of the DTF link (sent verbatim with ``gateway.remote_exec``).

Runs on the worker before xdist starts its worker module. It opens a second
execnet channel whose callback runs in execnet's receiver thread (not the
busy main thread), starts a heartbeat thread that ends when the controller
closes the link (a sleeping thread left at exit slows the worker's exit), and
publishes its state as the module ``_dtf_link`` for the worker's pytest
plugin. Stdlib only; no imports from the package.
"""

import contextlib
import os
import sys
import threading
import time
import types


def _dtf_mem() -> dict:
    """Resident memory of this process and the machine's available memory, in MiB."""
    out = {}
    try:
        with open("/proc/self/statm") as f:
            out["rss_mb"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    out[key] = int(rest.split()[0]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def _dtf_link_main(channel) -> None:
    params = channel.receive()
    state = types.ModuleType("_dtf_link")
    state.attempts = {}
    state.params = params
    link = channel.gateway.newchannel()
    state.channel = link
    sys.modules["_dtf_link"] = state

    closed = threading.Event()

    def on_message(message) -> None:
        if message is closed:  # the controller closed the link: the session is over
            closed.set()
            return
        # never let a bad message kill execnet's receiver thread
        with contextlib.suppress(Exception):
            kind, data = message
            if kind == "attempt":
                state.attempts[data["nodeid"]] = data

    link.setcallback(on_message, endmarker=closed)
    interval = float(params.get("heartbeat_interval", 1.0))

    def beat() -> None:
        # ends when the link closes, so no thread outlives the session
        while not closed.is_set():
            try:
                link.send(("hb", {"t": time.time(), **_dtf_mem()}))
            except Exception:  # noqa: BLE001 - channel closed: the session is over
                return
            closed.wait(interval)

    channel.send({"pid": os.getpid()})
    # the controller knows the link before the first beat: data for a channel
    # it does not know yet would be dropped
    channel.send(link)
    threading.Thread(target=beat, name="dtf-heartbeat", daemon=True).start()


if __name__ == "__channelexec__":
    _dtf_link_main(channel)  # noqa: F821 - execnet puts `channel` in the globals
