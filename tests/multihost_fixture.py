"""Multi-host test fixture: fake "hosts" made of Linux network namespaces.

Written from the recipe in ../shared/multihost (README, up.sh, down.sh,
fault_run.py); nothing from there is called at run time.  See tests/MULTIHOST.md.

Topology of one ``MultiHost`` (prefix ``dtfXXXX``, 4 random hex digits, and a
random /24 inside 10.200.0.0-10.254.255.0 that no route of the machine uses)::

    root ns: bridge dtfXXXXbr 10.a.b.1/24
      +- dtfXXXXA-r == veth == dtfXXXXA-n 10.a.b.2/24 [netns dtfXXXXA] socketserver(s) :P, P+1..  DTF_HARDWARE=cuda
      +- dtfXXXXB-r == veth == dtfXXXXB-n 10.a.b.3/24 [netns dtfXXXXB] socketserver(s) :P, P+1..  DTF_HARDWARE=cpu

Every server is ``python -m execnet.script.socketserver ADDR:PORT`` (``-m``,
never the script path: execnet/script/socketserver.py would shadow the stdlib
module), started with ``setsid ip netns exec NS env ...`` so the recorded Popen
pid *is* the server.  One stock server is one xdist worker at a time and reuses
its interpreter for every connection, so call ``restart_servers()`` before every
pytest session (the ``multihost`` fixture hands out freshly started servers).

Use as a plugin (``pytest_plugins = ["multihost_fixture"]`` or
``-p multihost_fixture`` with tests/ on sys.path):

* ``require_netns()``  -- skip (or fail when ``DTF_REQUIRE_NETNS=1``) without root/netns
* fixture ``multihost`` -- an up ``MultiHost`` (function scope, always torn down);
  ``@pytest.mark.multihost(servers_per_host=2, hosts=...)`` passes constructor args
* fixture ``multihost_factory`` -- ``factory(**kwargs)`` -> up ``MultiHost``, torn down at test end
* ``run_pytest(args, cwd, timeout, fault=..., after_results=N)`` -> ``RunResult``
* ``write_sample_project(root)`` / ``read_results(results_dir, uid)``
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE_ROOT = os.environ.get("DTF_MULTIHOST_STATE", "/tmp/dtf-multihost")
NETNS_DIR = "/run/netns"
REQUIRED_TOOLS = ("ip", "ss", "setsid", "timeout")
DEFAULT_HOSTS = {"A": "cuda", "B": "cpu"}
DEFAULT_PORT = 8888
SSH_PORT = 22
SSH_TOOLS = ("ssh", "ssh-keygen", "sshd")
SERVER_MODULE = "execnet.script.socketserver"
# Environment variables of the outer pytest run that must not leak into the
# fake hosts or into the inner pytest runs.
_LEAKY_ENV = re.compile(r"^(PYTEST_(CURRENT_TEST|XDIST_.*|ADDOPTS|PLUGINS)|DTF_(HARDWARE|HOST.*))$")
_NAME_OK = re.compile(r"^[A-Za-z0-9]{1,6}$")
# Installed plugins that break xdist workers on other hosts (namespaces):
# * pytest-rerunfailures: the controller binds its status DB on 127.0.0.1 and
#   every worker connects to 127.0.0.1:<port> in pytest_configure -> in another
#   netns: ConnectionRefusedError, INTERNALERROR, then a hang re-connecting.
# * pytest-retry: with `-d --tx ...` (no -n) the controller starts no report
#   server but workers read workerinput["server_port"] -> KeyError, same hang.
# Pass these to inner runs unless the test is about those plugins.
REMOTE_UNSAFE_PLUGINS_OFF = ["-p", "no:rerunfailures", "-p", "no:pytest-retry"]


def dtf_args(heartbeat: float) -> list[str]:
    """A multi-host run's arguments: retries on, a short heartbeat timeout, -v."""
    return [
        *REMOTE_UNSAFE_PLUGINS_OFF,  # pytest-rerunfailures' localhost socket cannot cross hosts
        "-p", "no:warnings",
        "-p", "no:cacheprovider",
        "-v",
        "--dtf-retry",
        "-o", f"dtf_heartbeat_timeout={heartbeat:g}",
    ]


# --------------------------------------------------------------------------- #
# small helpers
# --------------------------------------------------------------------------- #
def _ip(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    r = subprocess.run(("ip", *args), check=False, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        raise RuntimeError(f"ip {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def _clean_env(base: dict | None = None) -> dict:
    env = dict(os.environ if base is None else base)
    for k in list(env):
        if _LEAKY_ENV.match(k):
            del env[k]
    return env


def _prepend_path(env: dict, paths: Iterable[str]) -> None:
    paths = [p for p in paths if p]
    if not paths:
        return
    old = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))


def _pid_alive(pid: int) -> bool:
    """True for a live, non-zombie process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def _pid_starttime(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2 :].split()[19]
    except (OSError, IndexError, ValueError):
        return None


def _pidns() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _ns_ident(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def netns_list() -> list[str]:
    """Names of the named network namespaces (``ip netns list``)."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except OSError:
        return []


def netns_of_pid(pid: int) -> str | None:
    """Name of the named network namespace ``pid`` lives in ("root"-ns and
    unnamed namespaces give None)."""
    me = _ns_ident(f"/proc/{pid}/ns/net")
    if me is None:
        return None
    for name in netns_list():
        if _ns_ident(os.path.join(NETNS_DIR, name)) == me:
            return name
    return None


def pids_in_netns(ns: str) -> list[int]:
    """Live pids whose network namespace is the named namespace ``ns``
    (the same as ``ip netns pids NS``, without a subprocess)."""
    target = _ns_ident(os.path.join(NETNS_DIR, ns))
    if target is None:
        return []
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        if _ns_ident(f"/proc/{d}/ns/net") == target and _pid_alive(int(d)):
            out.append(int(d))
    return sorted(out)


def link_names() -> list[str]:
    r = _ip("-o", "link", "show", check=False)
    names = []
    for line in r.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


def _kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> list[int]:
    done = []
    for pid in pids:
        try:
            os.kill(pid, sig)
            done.append(pid)
        except ProcessLookupError:
            pass
    return done


def _wait_dead(pids: Iterable[int], timeout: float = 5.0) -> list[int]:
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _pid_alive(p)]
        if pids:
            time.sleep(0.02)
    return pids


def _listening(pid: int, port: int) -> bool:
    """Is there a LISTEN socket on ``port`` in the network namespace of ``pid``?
    (/proc/PID/net/tcp shows the sockets of that pid's namespace.)"""
    want = f":{port:04X}"
    try:
        with open(f"/proc/{pid}/net/tcp") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[1].endswith(want) and cols[3] == "0A":
                    return True
    except (OSError, StopIteration, IndexError):
        pass
    return False


def _tool(name: str) -> str | None:
    """``name`` in the sbin/bin directories (sshd is in /usr/sbin, often not on PATH)."""
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return shutil.which(name)


def _keygen(path: str, comment: str) -> None:
    if os.path.exists(path) and os.path.exists(path + ".pub"):
        return
    for p in (path, path + ".pub"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    subprocess.run(
        [_tool("ssh-keygen") or "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
        check=True, capture_output=True, timeout=30,
    )
    os.chmod(path, 0o600)


def _ssh_client_pids(ssh_config: str) -> list[int]:
    """Live ``ssh ... -F ssh_config ...`` processes (the unique config path makes them ours)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or not _pid_alive(int(d)):
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"ssh" and ssh_config.encode() in argv:
            out.append(int(d))
    return sorted(out)


# --------------------------------------------------------------------------- #
# skip / fail logic
# --------------------------------------------------------------------------- #
_reason_cache: list[str | None] = []


def _probe_netns() -> str | None:
    if not sys.platform.startswith("linux"):
        return "multi-host tests need Linux network namespaces"
    if os.geteuid() != 0:
        return "multi-host tests need root (ip netns, veth, bridge)"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return f"multi-host tests need {', '.join(missing)} (apt-get install iproute2 util-linux coreutils)"
    name = "dtfprobe" + secrets.token_hex(2)
    try:
        _ip("netns", "add", name, timeout=15)
        _ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1", timeout=15)
        _ip("-n", name, "link", "add", "br0", "type", "bridge", timeout=15)
        _ip("netns", "exec", name, "true", timeout=15)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return f"ip netns/veth/bridge unusable here: {e}"
    finally:
        _ip("netns", "del", name, check=False, timeout=15)
    return None


def netns_unavailable_reason() -> str | None:
    """None if fake hosts can be built here, else why not (probed once)."""
    if not _reason_cache:
        _reason_cache.append(_probe_netns())
    return _reason_cache[0]


def netns_required() -> bool:
    return os.environ.get("DTF_REQUIRE_NETNS", "").strip().lower() in ("1", "true", "yes", "on")


def require_netns() -> None:
    """Skip the calling test when root / network namespaces / ip, ss, setsid are
    unavailable; with ``DTF_REQUIRE_NETNS=1`` (CI) fail instead of skipping."""
    _require(netns_unavailable_reason())


def _require(reason: str | None) -> None:
    if reason is None:
        return
    if netns_required():
        pytest.fail(f"DTF_REQUIRE_NETNS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def sshd_unavailable_reason() -> str | None:
    """None if fake ssh hosts can be built here (netns and OpenSSH), else why not."""
    reason = netns_unavailable_reason()
    if reason is None:
        missing = [t for t in SSH_TOOLS if _tool(t) is None]
        if missing:
            reason = f"ssh hosts need {', '.join(missing)} (apt-get install openssh-server openssh-client)"
    return reason


def require_sshd() -> None:
    """Like require_netns(), for MultiHost(ssh=True): also needs ssh, ssh-keygen and sshd."""
    _require(sshd_unavailable_reason())


# --------------------------------------------------------------------------- #
# MultiHost
# --------------------------------------------------------------------------- #
@dataclass
class Host:
    name: str  # "A"
    hardware: str  # DTF_HARDWARE
    ns: str  # network namespace, e.g. dtf1a2bA
    addr: str  # address inside the namespace
    hostdir: str  # the server's cwd (xdist rsyncs into <hostdir>/pyexecnetcache)
    ports: list[int]
    servers: dict[int, subprocess.Popen] = field(default_factory=dict)
    sshd: subprocess.Popen | None = None  # with MultiHost(ssh=True): its sshd on port 22

    @property
    def rif(self) -> str:  # root-side veth end (on the bridge)
        return self.ns + "-r"

    @property
    def nif(self) -> str:  # namespace-side veth end
        return self.ns + "-n"


def _lock_state_root(state_root: str):
    os.makedirs(state_root, exist_ok=True)
    fd = os.open(os.path.join(state_root, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _used_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    r = _ip("-4", "-o", "addr", "show", check=False)
    for m in re.finditer(r"\binet (\d+\.\d+\.\d+\.\d+/\d+)", r.stdout):
        nets.append(ipaddress.ip_interface(m.group(1)).network)
    r = _ip("-4", "route", "show", "table", "all", check=False)
    for line in r.stdout.splitlines():
        tok = line.split()
        if not tok:
            continue
        dest = (
            tok[1]
            if tok[0] in ("local", "broadcast", "unicast", "multicast") and len(tok) > 1
            else tok[0]
        )
        if dest == "default":
            continue
        try:
            nets.append(ipaddress.ip_network(dest, strict=False))
        except ValueError:
            pass
    return nets


def sweep_stale(state_root: str = STATE_ROOT) -> list[str]:
    """Tear down fake hosts left by MultiHost sessions whose owner process is
    dead (e.g. SIGKILLed pytest).  Only touches what their owner.json records."""
    swept: list[str] = []
    try:
        entries = os.listdir(state_root)
    except OSError:
        return swept
    for prefix in entries:
        d = os.path.join(state_root, prefix)
        owner = os.path.join(d, "owner.json")
        try:
            with open(owner) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        if rec.get("pidns") != _pidns():
            continue  # owner lives in another pid namespace: cannot judge it
        pid = rec.get("pid")
        if pid and _pid_alive(pid) and _pid_starttime(pid) == rec.get("starttime"):
            continue
        _teardown_recorded(rec.get("namespaces", []), rec.get("bridge"))
        shutil.rmtree(d, ignore_errors=True)
        swept.append(prefix)
    return swept


def _teardown_recorded(namespaces: Sequence[str], bridge: str | None) -> list[str]:
    """Kill every pid in ``namespaces``, delete their veths, the namespaces and
    the bridge.  Returns error strings (empty when all went well)."""
    errors = []
    for _ in range(5):
        pids = [p for ns in namespaces for p in pids_in_netns(ns)]
        if not pids:
            break
        _kill_pids(pids)
        left = _wait_dead(pids, 5)
        if left:
            errors.append(f"pids did not die: {left}")
    have_links = set(link_names())
    existing = set(netns_list())
    for ns in namespaces:
        if ns + "-r" in have_links:
            # deleting one end removes the pair synchronously (netns deletion
            # alone destroys the veth asynchronously)
            r = _ip("link", "del", ns + "-r", check=False)
            if r.returncode and ns + "-r" in link_names():
                errors.append(f"ip link del {ns}-r: {r.stderr.strip()}")
        if ns in existing:
            r = _ip("netns", "del", ns, check=False)
            if r.returncode:
                errors.append(f"ip netns del {ns}: {r.stderr.strip()}")
    if bridge and bridge in have_links:
        r = _ip("link", "del", bridge, check=False)
        if r.returncode:
            errors.append(f"ip link del {bridge}: {r.stderr.strip()}")
    return errors


class MultiHost:
    """N fake hosts (network namespaces on one bridge) with execnet socket servers.

    >>> mh = MultiHost().up()                 # hosts A (cuda) and B (cpu)
    >>> args = ["-d", *mh.tx_specs(), "--rsyncdir", proj, proj]
    >>> mh.restart_servers()                  # fresh interpreters before the next session
    >>> mh.down()
    """

    def __init__(
        self,
        hosts: dict[str, str] | Sequence[str] | Sequence[tuple[str, str]] | None = None,
        servers_per_host: int = 1,
        port: int = DEFAULT_PORT,
        python: str | None = None,
        pythonpath: Sequence[str] = (REPO_ROOT,),
        env: dict[str, str] | None = None,
        state_root: str = STATE_ROOT,
        start_timeout: float = 20.0,
        keep_state: bool = False,
        ssh: bool = False,
    ):
        if hosts is None:
            hosts = DEFAULT_HOSTS
        if isinstance(hosts, dict):
            pairs = list(hosts.items())
        else:
            pairs = [(h, "cpu") if isinstance(h, str) else (h[0], h[1]) for h in hosts]
        for name, _ in pairs:
            if not _NAME_OK.match(name):
                raise ValueError(
                    f"host name {name!r}: 1-6 letters/digits (interface names are <= 15 chars)"
                )
        if len({n for n, _ in pairs}) != len(pairs) or not pairs or len(pairs) > 250:
            raise ValueError("host names must be unique, 1..250 hosts")
        if servers_per_host < 1:
            raise ValueError("servers_per_host must be >= 1")
        self._pairs = pairs
        self.servers_per_host = servers_per_host
        self.port = port
        self.python = python or sys.executable
        self.pythonpath = list(pythonpath)
        self.extra_env = dict(env or {})
        self.state_root = state_root
        self.start_timeout = start_timeout
        self.keep_state = keep_state
        self.ssh = ssh
        self.prefix: str | None = None
        self.bridge: str | None = None
        self.network: ipaddress.IPv4Network | None = None
        self.bridge_addr: str | None = None
        self.state_dir: str | None = None
        self.hosts: dict[str, Host] = {}
        self._lock = threading.RLock()
        self._is_up = False
        self._created = False
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ info
    def __repr__(self) -> str:
        return f"<MultiHost {self.prefix} {self.network} hosts={list(self.hosts) or [n for n, _ in self._pairs]}>"

    def __enter__(self):  # -> Self (typing.Self needs 3.11)
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    @property
    def namespaces(self) -> list[str]:
        return [h.ns for h in self.hosts.values()]

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            for h in self.hosts.values():  # also accept the namespace name
                if h.ns == name:
                    return h
            raise KeyError(f"no host {name!r}; hosts: {list(self.hosts)}") from None

    def addr(self, host: str) -> str:
        return self.host(host).addr

    def ns(self, host: str) -> str:
        return self.host(host).ns

    def hardware(self, host: str) -> str:
        return self.host(host).hardware

    def server_pids(self, host: str | None = None) -> list[int]:
        hs = [self.host(host)] if host else list(self.hosts.values())
        return [
            p.pid for h in hs for p in h.servers.values() if p.poll() is None and _pid_alive(p.pid)
        ]

    def pids(self, host: str) -> list[int]:
        """All live pids inside the host's namespace (servers and workers)."""
        return pids_in_netns(self.host(host).ns)

    def worker_pids(self, host: str) -> list[int]:
        """Live pids in the host's namespace that are not its socket servers
        (e.g. ``popen//via=`` workers spawned by a proxy gateway)."""
        servers = set(self.server_pids(host))
        return [p for p in self.pids(host) if p not in servers]

    def host_of_pid(self, pid: int) -> str | None:
        """Host name ("A") whose namespace ``pid`` runs in, or None."""
        ns = netns_of_pid(pid)
        for h in self.hosts.values():
            if h.ns == ns:
                return h.name
        return None

    def host_of_netns(self, ns: str | None) -> str | None:
        for h in self.hosts.values():
            if h.ns == ns:
                return h.name
        return None

    def log_path(self, host: str, port: int | None = None) -> str:
        h = self.host(host)
        return os.path.join(self.state_dir or "", f"{h.ns}.{port or h.ports[0]}.log")

    def server_logs(self) -> str:
        out = []
        for h in self.hosts.values():
            for port in h.ports:
                try:
                    with open(self.log_path(h.name, port), errors="replace") as f:
                        out.append(f"--- {h.ns}:{port}\n{f.read()[-3000:]}")
                except OSError:
                    pass
        return "\n".join(out)

    def listening(self, host: str) -> str:
        """``ss -ltn`` inside the host's namespace (diagnostics)."""
        r = subprocess.run(
            ["ip", "netns", "exec", self.host(host).ns, "ss", "-ltnH"],
            check=False,
            capture_output=True,
            text=True,
            timeout=15,
        )
        return r.stdout + r.stderr

    # ------------------------------------------------------------------ specs
    def _hosts_sel(self, hosts: Iterable[str] | str | None) -> list[Host]:
        if hosts is None:
            return list(self.hosts.values())
        if isinstance(hosts, str):
            hosts = [hosts]
        return [self.host(h) for h in hosts]

    def tx_specs(
        self,
        hosts: Iterable[str] | str | None = None,
        servers: int | None = None,
        extra: str = "",
        id_prefix: str = "host",
    ) -> list[str]:
        """``--tx socket=ADDR:PORT//id=hostA ...`` for every server of ``hosts``
        (ids ``hostA-0``, ``hostA-1``, ... with several servers per host).
        ``extra`` is appended as further ``//key=value`` keys."""
        out = []
        for h in self._hosts_sel(hosts):
            ports = h.ports[: servers or len(h.ports)]
            for i, port in enumerate(ports):
                ident = f"{id_prefix}{h.name}" if len(ports) == 1 else f"{id_prefix}{h.name}-{i}"
                spec = f"socket={h.addr}:{port}//id={ident}"
                if extra:
                    spec += "//" + extra.lstrip("/")
                out += ["--tx", spec]
        return out

    def px_specs(
        self, hosts: Iterable[str] | str | None = None, workers: int = 2, extra: str = ""
    ) -> list[str]:
        """Proxy topology: ``--px socket=ADDR:P//id=pA --tx N*popen//via=pA`` per host.
        Workers are fresh processes spawned inside the namespace by the server
        (ids gw0, gw1, ...; ``N*...//id=`` is rejected by xdist).  Pass the
        absolute project path: the workers' cwd is the server's cwd."""
        out = []
        for h in self._hosts_sel(hosts):
            out += ["--px", f"socket={h.addr}:{h.ports[0]}//id=p{h.name}"]
            tx = f"popen//via=p{h.name}" + (f"//id=host{h.name}" if workers == 1 else "")
            if workers > 1:
                tx = f"{workers}*" + tx
            if extra:
                tx += "//" + extra.lstrip("/")
            out += ["--tx", tx]
        return out

    # ------------------------------------------------------------------ up
    def up(self) -> MultiHost:
        with self._lock:
            if self._is_up:
                return self
            t0 = time.monotonic()
            self._stop.clear()
            try:
                self._create()
                self._start_all_servers()
                self._check_reachable()
            except BaseException:
                with contextlib.suppress(Exception):
                    self.down()
                raise
            self._is_up = True
            self.timings["up"] = time.monotonic() - t0
            return self

    def _create(self) -> None:
        fd = _lock_state_root(self.state_root)
        try:
            sweep_stale(self.state_root)
            taken_ns = set(netns_list())
            taken_links = set(link_names())
            for _ in range(100):
                prefix = "dtf" + secrets.token_hex(2)
                if not any(
                    n.startswith(prefix) for n in taken_ns | taken_links
                ) and not os.path.exists(os.path.join(self.state_root, prefix)):
                    break
            else:
                raise RuntimeError("no free dtfXXXX name prefix")
            used = _used_networks()
            rnd = random.SystemRandom()
            for _ in range(500):
                net = ipaddress.IPv4Network(
                    f"10.{rnd.randint(200, 254)}.{rnd.randint(0, 255)}.0/24"
                )
                if not any(net.overlaps(u) for u in used):
                    break
            else:
                raise RuntimeError("no free 10.2xx.x.0/24 subnet")
            self.prefix, self.network = prefix, net
            self.bridge = prefix + "br"
            hosts_ip = list(net.hosts())
            self.bridge_addr = str(hosts_ip[0])
            self.state_dir = os.path.join(self.state_root, prefix)
            os.makedirs(self.state_dir)
            for i, (name, hw) in enumerate(self._pairs):
                ns = prefix + name
                self.hosts[name] = Host(
                    name=name,
                    hardware=hw,
                    ns=ns,
                    addr=str(hosts_ip[i + 1]),
                    hostdir=os.path.join(self.state_dir, "hosts", ns),
                    ports=[self.port + k for k in range(self.servers_per_host)],
                )
            self._created = True
            self._write_owner()
            atexit.register(self._atexit)
            # the bridge (and its address) is created under the lock, so a
            # concurrent session sees our subnet in `ip addr`
            mac = ["address", "02:" + ":".join(secrets.token_hex(1) for _ in range(5))] if self.ssh else []
            _ip("link", "add", self.bridge, *mac, "type", "bridge")
            _ip("addr", "add", f"{self.bridge_addr}/{net.prefixlen}", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        finally:
            os.close(fd)
        for h in self.hosts.values():
            _ip("netns", "add", h.ns)
            _ip("link", "add", h.rif, "type", "veth", "peer", "name", h.nif, "netns", h.ns)
            _ip("link", "set", h.rif, "master", self.bridge)
            _ip("link", "set", h.rif, "up")
            _ip("-n", h.ns, "link", "set", "lo", "up")
            _ip("-n", h.ns, "addr", "add", f"{h.addr}/{net.prefixlen}", "dev", h.nif)
            _ip("-n", h.ns, "link", "set", h.nif, "up")
            os.makedirs(h.hostdir, exist_ok=True)
        if self.ssh:
            self._static_neighbours()
            self._write_ssh_files()

    def _write_owner(self) -> None:
        rec = {
            "pid": os.getpid(),
            "starttime": _pid_starttime(os.getpid()),
            "pidns": _pidns(),
            "prefix": self.prefix,
            "bridge": self.bridge,
            "network": str(self.network),
            "namespaces": [h.ns for h in self.hosts.values()],
            "created": time.time(),
        }
        assert self.state_dir
        tmp = os.path.join(self.state_dir, "owner.json.tmp")
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.replace(tmp, os.path.join(self.state_dir, "owner.json"))

    def _server_env(self, h: Host) -> dict:
        env = _clean_env()
        env.update(self.extra_env)
        env.update(
            DTF_HARDWARE=h.hardware, DTF_HOST=h.ns, DTF_HOST_NAME=h.name, PYTHONUNBUFFERED="1"
        )
        _prepend_path(env, self.pythonpath)
        return env

    def _spawn_server(self, h: Host, port: int) -> subprocess.Popen:
        assert self.state_dir
        with open(os.path.join(self.state_dir, f"{h.ns}.{port}.log"), "ab") as log:
            # setsid: own session, so signals to the caller's process group
            # (Ctrl-C, `timeout`) do not reach it.  Neither setsid (we are no
            # group leader) nor `ip netns exec` nor env fork: Popen.pid is the server.
            return subprocess.Popen(
                [
                    "setsid",
                    "ip",
                    "netns",
                    "exec",
                    h.ns,
                    self.python,
                    "-u",
                    "-m",
                    SERVER_MODULE,
                    f"{h.addr}:{port}",
                ],
                cwd=h.hostdir,
                env=self._server_env(h),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )

    def _start_all_servers(self, hosts: Iterable[Host] | None = None) -> None:
        t0 = time.monotonic()
        hosts = list(self.hosts.values()) if hosts is None else list(hosts)
        pending = []
        for h in hosts:
            for port in h.ports:
                p = self._spawn_server(h, port)
                h.servers[port] = p
                pending.append((h, port, p))
            if self.ssh:
                h.sshd = self._spawn_sshd(h)
                pending.append((h, SSH_PORT, h.sshd))
        target = {h.ns: _ns_ident(os.path.join(NETNS_DIR, h.ns)) for h in hosts}
        deadline = time.monotonic() + self.start_timeout
        while pending:
            still = []
            for h, port, p in pending:
                if p.poll() is not None:
                    raise RuntimeError(
                        f"server {h.ns} {h.addr}:{port} exited rc={p.returncode}:\n"
                        + self.server_logs()
                    )
                if (
                    _ns_ident(f"/proc/{p.pid}/ns/net") == target[h.ns]
                    and (SERVER_MODULE if port != SSH_PORT else "sshd") in _cmdline(p.pid)
                    and _listening(p.pid, port)
                ):
                    continue
                still.append((h, port, p))
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"socket servers not listening after {self.start_timeout}s: "
                        f"{[(h.ns, port) for h, port, _ in pending]}\n" + self.server_logs()
                    )
                time.sleep(0.02)
        self.timings["start_servers"] = time.monotonic() - t0

    def _check_reachable(self) -> None:
        # connect to a port nobody listens on: "refused" proves the route works
        # without consuming an accept() of a socket server
        for h in self.hosts.values():
            s = socket.socket()
            s.settimeout(3)
            try:
                s.connect((h.addr, 9))
            except ConnectionRefusedError:
                continue
            except OSError as e:
                raise RuntimeError(
                    f"fake host {h.name} ({h.addr}) unreachable from the root ns: {e}"
                ) from e
            finally:
                s.close()
            raise RuntimeError(f"something listens on {h.addr}:9 ?")

    # ------------------------------------------------------------------ ssh
    @property
    def ssh_config(self) -> str:
        """The client's ssh_config (``//ssh_config=``): aliases hostA, hostB, ... and our key."""
        assert self.state_dir, "not up"
        return os.path.join(self.state_dir, "ssh", "ssh_config")

    def _static_neighbours(self) -> None:
        # a fixed ARP entry: a host whose link goes down vanishes silently, as a
        # remote host behind a router does (no early "No route to host")
        for h in self.hosts.values():
            out = _ip("-n", h.ns, "-o", "link", "show", h.nif).stdout
            mac = out.split("link/ether", 1)[1].split()[0]
            _ip("neigh", "replace", h.addr, "lladdr", mac, "nud", "permanent", "dev", self.bridge)

    def _write_ssh_files(self) -> None:
        """A client key, an ssh_config and known_hosts, and per host a host key and sshd_config."""
        assert self.state_dir
        d = os.path.join(self.state_dir, "ssh")
        os.makedirs(d, exist_ok=True)
        key = os.path.join(d, "id_ed25519")
        _keygen(key, "dtf-multihost-client")
        authorized = os.path.join(d, "authorized_keys")
        shutil.copyfile(key + ".pub", authorized)
        os.chmod(authorized, 0o600)
        known, config = [], []
        for h in self.hosts.values():
            hostkey = os.path.join(h.hostdir, "ssh_host_ed25519_key")
            _keygen(hostkey, f"host{h.name}")
            with open(hostkey + ".pub") as f:
                known.append(f"host{h.name},{h.addr} {' '.join(f.read().split()[:2])}")
            config += [f"Host host{h.name}", f"    HostName {h.addr}", ""]
            env = {
                "DTF_HARDWARE": h.hardware,
                "DTF_HOST": h.ns,
                "DTF_HOST_NAME": h.name,
                "PYTHONUNBUFFERED": "1",
                **({"PYTHONPATH": os.pathsep.join(self.pythonpath)} if self.pythonpath else {}),
                **self.extra_env,
            }
            with open(os.path.join(h.hostdir, "sshd_config"), "w") as f:
                f.write("\n".join([
                    f"Port {SSH_PORT}",
                    f"ListenAddress {h.addr}",
                    f"HostKey {hostkey}",
                    f"PidFile {os.path.join(h.hostdir, 'sshd.pid')}",
                    f"AuthorizedKeysFile {authorized}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "UseDNS no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "MaxStartups 50:30:100",
                    "SetEnv " + " ".join(f"{k}={v}" for k, v in env.items()),
                    "LogLevel VERBOSE",
                    "",
                ]))
        with open(os.path.join(d, "known_hosts"), "w") as f:
            f.write("\n".join(known) + "\n")
        # a user's plain config: no ConnectTimeout, no ServerAliveInterval (ssh's defaults)
        config += [
            "Host *",
            "    User root",
            f"    Port {SSH_PORT}",
            f"    IdentityFile {key}",
            "    IdentitiesOnly yes",
            "    BatchMode yes",
            "    StrictHostKeyChecking yes",
            f"    UserKnownHostsFile {os.path.join(d, 'known_hosts')}",
            "    GlobalKnownHostsFile /dev/null",
            "    LogLevel ERROR",
            "    ControlMaster no",
            "",
        ]
        with open(self.ssh_config, "w") as f:
            f.write("\n".join(config))

    def _spawn_sshd(self, h: Host) -> subprocess.Popen:
        if not os.path.isdir("/run/sshd"):  # sshd's privilege separation directory
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with open(os.path.join(h.hostdir, "sshd.log"), "ab") as log:
            return subprocess.Popen(
                ["setsid", "ip", "netns", "exec", h.ns, _tool("sshd") or "/usr/sbin/sshd",
                 "-D", "-e", "-f", os.path.join(h.hostdir, "sshd_config")],
                cwd=h.hostdir,
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )

    def ssh_specs(
        self, hosts: Iterable[str] | str | None = None, python: str | None = None, extra: str = ""
    ) -> list[str]:
        """``--tx ssh=root@hostA//ssh_config=CFG//python=PY//chdir=DIR//id=hostA ...``
        (needs ``MultiHost(ssh=True)``).  DIR is the host's own directory, as for
        socket specs: pass ``--rsyncdir PROJ`` and the project path."""
        assert self.ssh, "MultiHost(ssh=True) starts the sshds"
        out = []
        for h in self._hosts_sel(hosts):
            spec = (
                f"ssh=root@host{h.name}//ssh_config={self.ssh_config}//python={python or self.python}"
                f"//chdir={os.path.join(h.hostdir, 'pyexecnetcache')}//id=host{h.name}"
            )
            if extra:
                spec += "//" + extra.lstrip("/")
            out += ["--tx", spec]
        return out

    def ssh_clients(self) -> list[str]:
        """Live ssh client processes that use our ssh_config (on the controller's side):
        ``"PID: cmdline"`` each.  After a pytest run there should be none."""
        if not self.ssh or not self.state_dir:
            return []
        return [f"{pid}: {_cmdline(pid)[:160]}" for pid in _ssh_client_pids(self.ssh_config)]

    # ------------------------------------------------------------------ servers
    def _stop_servers(self, hosts: list[Host]) -> None:
        pids = []
        for h in hosts:
            for p in [*h.servers.values(), *([h.sshd] if h.sshd else [])]:
                if p.poll() is None:
                    pids += _kill_pids([p.pid])
            # leftovers (popen//via workers, anything else in the namespace)
            pids += _kill_pids(pids_in_netns(h.ns))
        left = _wait_dead(pids, 5)
        for h in hosts:
            for p in [*h.servers.values(), *([h.sshd] if h.sshd else [])]:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
            h.servers.clear()
            h.sshd = None
        if left:
            raise RuntimeError(f"pids did not die: {left}")
        for h in hosts:
            left = pids_in_netns(h.ns)
            if left:
                _kill_pids(left)
                if _wait_dead(left, 5):
                    raise RuntimeError(f"pids left in {h.ns}: {left}")

    def restart_servers(self, hosts: Iterable[str] | str | None = None) -> None:
        """Kill the servers and every process in the hosts' namespaces, then start
        fresh servers (the stock server reuses one interpreter: stale sys.modules,
        os.environ and cwd persist into the next session otherwise).  Does not
        change link state; see ``restore()``."""
        with self._lock:
            sel = self._hosts_sel(hosts)
            t0 = time.monotonic()
            self._stop_servers(sel)
            self._start_all_servers(sel)
            self.timings["restart_servers"] = time.monotonic() - t0

    def restore(self) -> None:
        """After a fault: stop flap threads, bring every link up, fresh servers."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()
        self._stop.clear()
        for h in self.hosts.values():
            self.link_up(h.name)
        self.restart_servers()
        self._check_reachable()

    # ------------------------------------------------------------------ faults
    def kill_server(self, host: str, port: int | None = None) -> list[int]:
        """SIGKILL the host's socket server(s) (only ``port`` if given)."""
        h = self.host(host)
        return _kill_pids(
            [
                p.pid
                for prt, p in h.servers.items()
                if (port is None or prt == port) and p.poll() is None
            ]
        )

    def kill_host(self, host: str) -> list[int]:
        """SIGKILL every process inside the host's namespace."""
        return _kill_pids(self.pids(host))

    def kill_workers(self, host: str) -> list[int]:
        """SIGKILL every process in the namespace except the socket servers
        (proxy ``popen//via=`` workers); the host stays reachable."""
        return _kill_pids(self.worker_pids(host))

    def link_down(self, host: str) -> None:
        _ip("link", "set", self.host(host).rif, "down")

    def link_up(self, host: str) -> None:
        _ip("link", "set", self.host(host).rif, "up")

    def link_is_up(self, host: str) -> bool:
        r = _ip("-o", "link", "show", self.host(host).rif, check=False)
        m = re.search(r"<([^>]*)>", r.stdout)
        return m is not None and "UP" in m.group(1).split(",")

    def flap(self, host: str, seconds: float) -> threading.Thread:
        """Link down now, up again after ``seconds`` (background thread; joined
        by restore()/down())."""
        self.link_down(host)

        def _up_later():
            if self._stop.wait(seconds):
                pass  # stopping: restore()/down() handle the link
            with contextlib.suppress(Exception):
                if self.host(host).rif in link_names():
                    self.link_up(host)

        t = threading.Thread(target=_up_later, name=f"flap-{host}", daemon=True)
        t.start()
        self._threads.append(t)
        return t

    # ------------------------------------------------------------------ down
    def leftovers(self) -> list[str]:
        """What of ours still exists (empty list == clean)."""
        if not self.prefix:
            return []
        left = [f"netns {n}" for n in netns_list() if n.startswith(self.prefix)]
        left += [f"link {n}" for n in link_names() if n.startswith(self.prefix)]
        left += [
            f"server pid {p.pid}"
            for h in self.hosts.values()
            for p in h.servers.values()
            if _pid_alive(p.pid)
        ]
        left += [f"sshd pid {h.sshd.pid}" for h in self.hosts.values() if h.sshd and _pid_alive(h.sshd.pid)]
        left += [f"ssh client {c}" for c in self.ssh_clients()]
        if self.state_dir and os.path.exists(self.state_dir) and not self.keep_state:
            left.append(f"state dir {self.state_dir}")
        return left

    def down(self) -> None:
        """Kill servers and every pid in our namespaces (by pid), delete the veths,
        namespaces and bridge, remove the state dir, verify.  Idempotent."""
        with self._lock:
            if not self._created:
                return
            t0 = time.monotonic()
            self._stop.set()
            errors = []
            hosts = list(self.hosts.values())
            try:
                self._stop_servers(hosts)
            except Exception as e:  # noqa: BLE001 - keep tearing down
                errors.append(str(e))
            if self.ssh and self.state_dir:
                # ssh clients a run left behind (to a host gone silent): ours by their -F path
                clients = _ssh_client_pids(self.ssh_config)
                _kill_pids(clients)
                _wait_dead(clients, 5)
            errors += _teardown_recorded([h.ns for h in hosts], self.bridge)
            for t in self._threads:
                t.join(timeout=5)
            self._threads.clear()
            if self.state_dir and not self.keep_state:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            self._is_up = False
            left = self.leftovers()
            self.timings["down"] = time.monotonic() - t0
            if left or errors:
                raise RuntimeError(
                    f"MultiHost {self.prefix} not clean after down(): {left} {errors}"
                )
            self._created = False
            with contextlib.suppress(Exception):
                atexit.unregister(self._atexit)

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):
            self.down()


# --------------------------------------------------------------------------- #
# running pytest as a subprocess, with timestamps and fault injection
# --------------------------------------------------------------------------- #
# xdist -v: "[gw0] [ 22%] PASSED test_x.py::t[9]"; plain -v: "test_x.py::t[9] PASSED   [ 22%]".
# Any upper-case word counts (PASSED FAILED ERROR SKIPPED XFAIL RERUN FLAKY ...).
RESULT_LINE = re.compile(
    r"^(?:\[(?P<node>[^\]]+)\] \[\s*\d+%\] (?P<word>[A-Z][A-Z_]+)\b(?: (?P<nodeid>\S.*?))?"
    r"|(?P<nodeid2>\S+::\S+) (?P<word2>[A-Z][A-Z_]+)\b.*)\s*$"
)
DOWN_LINE = re.compile(r"node down|\blost\b", re.IGNORECASE)
SUMMARY_LINE = re.compile(r"^=+ (?P<body>.*?) in (?P<secs>[\d.]+)s(?: \([^)]*\))? =+$")


@dataclass
class ResultLine:
    t: float
    node: str | None
    word: str
    nodeid: str | None


@dataclass
class RunResult:
    cmd: list[str]
    rc: int
    elapsed: float
    lines: list[tuple[float, str]]  # (seconds since start, line)
    results: list[ResultLine]
    fault_t: float | None
    down_t: float | None  # first "node down"/"lost" line (after the fault, if any)
    fault_error: str | None = None
    testrunuid: str | None = None

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    @property
    def counts(self) -> Counter:
        """Result words of the -v lines: Counter({'PASSED': 39, 'FAILED': 1})."""
        return Counter(r.word for r in self.results)

    @property
    def counts_by_node(self) -> dict[str, Counter]:
        out: dict[str, Counter] = {}
        for r in self.results:
            out.setdefault(r.node or "", Counter())[r.word] += 1
        return out

    @property
    def summary(self) -> dict[str, int]:
        """Counts from the final "== 1 failed, 39 passed in 1.2s ==" line ({} if none)."""
        for _, line in reversed(self.lines):
            m = SUMMARY_LINE.match(line.strip())
            if m:
                return {w: int(n) for n, w in re.findall(r"(\d+) (\w+)", m.group("body"))}
        return {}

    @property
    def timed_out(self) -> bool:
        return self.rc in (124, 137)

    @property
    def detect_delay(self) -> float | None:
        if self.fault_t is None or self.down_t is None:
            return None
        return self.down_t - self.fault_t

    @property
    def fault_to_end(self) -> float | None:
        return None if self.fault_t is None else self.elapsed - self.fault_t

    def text(self) -> str:
        return "\n".join(f"[{t:7.2f}s] {line}" for t, line in self.lines)

    def describe(self) -> str:
        return (
            f"rc={self.rc} elapsed={self.elapsed:.2f}s fault_t={self.fault_t} down_t={self.down_t} "
            f"counts={dict(self.counts)} summary={self.summary}"
        )

    def executed(self, results_dir: str | os.PathLike) -> list[dict]:
        """Records written by the sample project's tests during this run."""
        return read_results(results_dir, self.testrunuid)


def run_pytest(
    args: Sequence[str],
    cwd: str | os.PathLike,
    timeout: float = 120,
    fault: Callable[[], Any] | None = None,
    after_results: int = 8,
    *,
    kill_after: float = 30,
    python: str | None = None,
    env: dict[str, str] | None = None,
    pythonpath: Sequence[str] = (REPO_ROOT,),
    testrunuid: str | bool | None = None,
    echo: bool = True,
) -> RunResult:
    """Run ``timeout -s INT -k KILL_AFTER TIMEOUT python -m pytest ARGS`` in ``cwd``.

    Every output line is timestamped (seconds since start) and echoed.  With
    ``fault`` (a callable), it is called once ``after_results`` -v result lines
    have been seen.  ``testrunuid=True`` adds ``--testrunuid=<random>`` (an
    xdist option; a string is used as is), so the sample project's records of
    this run land in ``results_dir/<uid>/``.  SIGINT on timeout lets pytest
    print its summary; ``-k`` is the backstop (rc 137).
    """
    uid = None
    args = [str(a) for a in args]
    if testrunuid:
        uid = testrunuid if isinstance(testrunuid, str) else "run-" + uuid.uuid4().hex[:8]
        args.append(f"--testrunuid={uid}")
    cmd = [
        "timeout",
        "-s",
        "INT",
        "-k",
        str(kill_after),
        str(timeout),
        python or sys.executable,
        "-u",
        "-m",
        "pytest",
        *args,
    ]
    full_env = _clean_env()
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.setdefault("COLUMNS", "200")
    _prepend_path(full_env, pythonpath)
    if env:
        full_env.update(env)
    lines: list[tuple[float, str]] = []
    results: list[ResultLine] = []
    t0 = time.monotonic()

    def log(line: str) -> float:
        t = time.monotonic() - t0
        lines.append((t, line))
        if echo:
            sys.stdout.write(f"[{t:7.2f}s] {line}\n")
        return t

    log("CMD " + " ".join(cmd))
    proc = subprocess.Popen(
        cmd,
        cwd=str(cwd),
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        errors="replace",
    )
    ev: dict[str, Any] = {"fault_t": None, "down_t": None, "fault_error": None}

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            t = log(line)
            m = RESULT_LINE.match(line)
            if m:
                results.append(
                    ResultLine(
                        t,
                        m.group("node"),
                        m.group("word") or m.group("word2"),
                        m.group("nodeid") or m.group("nodeid2"),
                    )
                )
            if (
                ev["down_t"] is None
                and (fault is None or ev["fault_t"] is not None)
                and DOWN_LINE.search(line)
                and not line.startswith("CMD ")
            ):
                ev["down_t"] = t
            if fault is not None and ev["fault_t"] is None and len(results) >= after_results:
                ev["fault_t"] = log(f"FAULT {getattr(fault, '__name__', repr(fault))}")
                try:
                    fault()
                except Exception as e:  # noqa: BLE001 - reported on the result
                    ev["fault_error"] = f"{type(e).__name__}: {e}"
                    log(f"FAULT failed: {ev['fault_error']}")

    # the output is read in a thread: a process that outlives pytest (an ssh client
    # left behind) keeps the pipe open, and the run must still end when pytest does
    reader = threading.Thread(target=read, name="run_pytest-reader", daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=timeout + 2 * kill_after + 30)
    except BaseException:
        with contextlib.suppress(Exception):
            proc.kill()
            proc.wait(timeout=10)
        raise
    elapsed = time.monotonic() - t0
    reader.join(5)
    if reader.is_alive():
        log("(pytest exited; its output pipe is still held open by a process that outlived it)")
    log(f"EXIT rc={rc} elapsed={elapsed:.2f}s")
    return RunResult(
        cmd=cmd,
        rc=rc,
        elapsed=elapsed,
        lines=list(lines),  # copies: a reader still blocked on the pipe appends no more
        results=list(results),
        fault_t=ev["fault_t"],
        down_t=ev["down_t"],
        fault_error=ev["fault_error"],
        testrunuid=uid,
    )


# --------------------------------------------------------------------------- #
# the sample project (like ../shared/multihost/sample_proj)
# --------------------------------------------------------------------------- #
SAMPLE_TEST = '''\
import json
import os
import socket
import time

import pytest

RESULTS = {results!r}  # shared filesystem: every fake host can write here


def _netns_name():
    """Name of the network namespace we run in (via /run/netns bind mounts)."""
    try:
        me = os.stat("/proc/self/ns/net")
        for name in os.listdir("/run/netns"):
            st = os.stat(os.path.join("/run/netns", name))
            if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
                return name
    except OSError:
        pass
    return "root"


@pytest.mark.parametrize("i", range({n}))
def test_sleep(i):
    time.sleep({sleep})
    d = os.path.join(RESULTS, os.environ.get("PYTEST_XDIST_TESTRUNUID", "norun"))
    os.makedirs(d, exist_ok=True)
    rec = dict(i=i, worker=os.environ.get("PYTEST_XDIST_WORKER"), hw=os.environ.get("DTF_HARDWARE"),
               dtf_host=os.environ.get("DTF_HOST"), netns=_netns_name(), hostname=socket.gethostname(),
               pid=os.getpid(), cwd=os.getcwd(), file=__file__, t=time.time())
    tmp = os.path.join(d, "%04d.json.%d" % (i, os.getpid()))
    with open(tmp, "w") as f:
        json.dump(rec, f)
    os.replace(tmp, os.path.join(d, "%04d.json" % i))
'''


def write_sample_project(
    root: str | os.PathLike,
    n_tests: int = 40,
    sleep: float = 0.1,
    name: str = "proj",
    results_dir: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write a project of ``n_tests`` tests (each sleeps, then records its netns,
    DTF_HARDWARE, worker id and pid to ``results_dir/<testrunuid>/NNNN.json``).
    Returns (project_dir, results_dir); results_dir is outside the project so
    --rsyncdir does not copy it."""
    root = Path(root)
    proj = root / name
    results = Path(results_dir) if results_dir else root / (name + "-results")
    proj.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    (proj / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (proj / "test_hosts.py").write_text(
        SAMPLE_TEST.format(results=str(results), n=n_tests, sleep=sleep)
    )
    return proj, results


def read_results(results_dir: str | os.PathLike, testrunuid: str | None = None) -> list[dict]:
    d = Path(results_dir) / (testrunuid or "norun")
    out = []
    for f in sorted(d.glob("*.json")):
        with open(f) as fh:
            out.append(json.load(fh))
    return out


# --------------------------------------------------------------------------- #
# pytest plugin part
# --------------------------------------------------------------------------- #
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "multihost(**kwargs): constructor arguments of the MultiHost built by the "
        "`multihost` fixture (hosts=..., servers_per_host=..., port=...)",
    )


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While active, SIGTERM raises KeyboardInterrupt (if SIGTERM had its default
    action), so fixture teardown runs when CI kills the job.  No-op off the main thread."""
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            yield
            return

        def _raise(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        old = signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, old)


@pytest.fixture
def multihost(request: pytest.FixtureRequest):
    """An up MultiHost (default: host A cuda, host B cpu, one server each) with
    freshly started servers; torn down (and verified clean) after the test,
    also on failure or KeyboardInterrupt.  Skips without root/netns (fails with
    DTF_REQUIRE_NETNS=1)."""
    require_netns()
    marker = request.node.get_closest_marker("multihost")
    kwargs = dict(marker.kwargs) if marker else {}
    kwargs.update(getattr(request, "param", None) or {})
    if kwargs.get("ssh"):
        require_sshd()
    mh = MultiHost(**kwargs)
    with sigterm_as_interrupt():
        try:
            mh.up()
            yield mh
        finally:
            mh.down()


@pytest.fixture
def multihost_factory():
    """``factory(**MultiHost_kwargs)`` -> an up MultiHost; all torn down at test end."""
    require_netns()
    made: list[MultiHost] = []

    def factory(**kwargs) -> MultiHost:
        mh = MultiHost(**kwargs)
        made.append(mh)
        return mh.up()

    with sigterm_as_interrupt():
        try:
            yield factory
        finally:
            _down_all(made)


def _down_all(made: list[MultiHost]) -> None:
    errors = []
    for mh in reversed(made):
        try:
            mh.down()
        except Exception as e:  # noqa: BLE001 - tear the others down too
            errors.append(str(e))
    if errors:
        raise RuntimeError("; ".join(errors))
