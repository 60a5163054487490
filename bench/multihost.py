"""Lost hosts and silent workers: time from fault to detection and to the end of the run.

Runs the four faults of issue 6 over execnet socket servers, and a killed and
a silent host over real ssh (issue 11: an sshd per namespace), 40 tests on two
fake hosts, host B cut off after 8 results, each with plain xdist and with
``--dtf-retry``, side by side. Needs root and network namespaces, and OpenSSH
for the ssh cases (see tests/MULTIHOST.md).

    sudo .venv/bin/python bench/multihost.py [--json out.json] [--only ssh]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import multihost_fixture as mf

HEARTBEAT = 5.0
PLAIN_TIMEOUT = 45.0
BASE = [*mf.REMOTE_UNSAFE_PLUGINS_OFF, "-p", "no:warnings", "-p", "no:cacheprovider", "-v"]
PLUGINS = {
    "plain xdist": ["-p", "no:dtf_errors"],
    "dtf --dtf-retry": ["--dtf-retry", "-o", f"dtf_heartbeat_timeout={HEARTBEAT:g}"],
}


def cases(mh: mf.MultiHost):
    socket = (mh.tx_specs(), True)
    proxy = (mh.px_specs(workers=1), False)
    return {
        "kill-server": (socket, lambda: mh.kill_server("B")),
        "link-down": (socket, lambda: mh.link_down("B")),
        "link-flap 3 s": (socket, lambda: mh.flap("B", 3.0)),
        "proxy, worker killed": (proxy, lambda: mh.kill_workers("B")),
    }


def ssh_cases(mh: mf.MultiHost):
    ssh = (mh.ssh_specs(), True)
    return {
        "ssh, host killed": (ssh, lambda: mh.kill_host("B")),
        "ssh, link-down": (ssh, lambda: mh.link_down("B")),
    }


def run_cases(mh: mf.MultiHost, table: dict, rows: list) -> None:
    for name, ((specs, rsync), fault) in table.items():
        for label, extra in PLUGINS.items():
            mh.restore()
            with tempfile.TemporaryDirectory() as tmp:
                proj, results = mf.write_sample_project(tmp)
                cmd = ["-d", *specs, *(["--rsyncdir", str(proj)] if rsync else []), *BASE, *extra, str(proj)]
                r = mf.run_pytest(cmd, cwd=proj, timeout=PLAIN_TIMEOUT, fault=fault, after_results=8,
                                  echo=False, testrunuid=True)
                ran = len(r.executed(results))
                clients = mh.ssh_clients()  # before down() or restore() end them
            rows.append({
                "case": name,
                "run": label,
                "rc": r.rc,
                "timed_out": r.timed_out,
                "detect_s": None if r.detect_delay is None else round(r.detect_delay, 2),
                "fault_to_end_s": None if r.fault_to_end is None else round(r.fault_to_end, 2),
                "summary": r.summary,
                "internal_error": "INTERNALERROR" in r.output,
                "executed": ran,
                "ssh_clients_left": len(clients),
            })
            row = rows[-1]
            print(f"{name:22} {label:16} rc={row['rc']:<4} detect={row['detect_s']!s:>6}s "
                  f"end={row['fault_to_end_s']!s:>6}s  {row['summary']}"
                  f"{'  INTERNALERROR' if row['internal_error'] else ''}"
                  f"{'  (killed by timeout)' if row['timed_out'] else ''}"
                  f"{f'  {len(clients)} ssh client(s) left' if clients else ''}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--only", choices=["socket", "ssh"])
    args = ap.parse_args()
    reason = mf.netns_unavailable_reason()
    if reason:
        raise SystemExit(f"needs root and network namespaces: {reason}")
    rows: list = []
    if args.only != "ssh":
        with mf.MultiHost() as mh:
            run_cases(mh, cases(mh), rows)
    if args.only != "socket":
        reason = mf.sshd_unavailable_reason()
        if reason:
            raise SystemExit(f"the ssh cases need: {reason}")
        with mf.MultiHost(ssh=True) as mh:
            run_cases(mh, ssh_cases(mh), rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
