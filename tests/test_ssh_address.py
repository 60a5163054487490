"""The address a replacement's reachability probe connects to for an ``ssh=`` spec.

``ssh -G`` applies the ssh_config (it reads it, it connects nowhere), so the
probe goes where ssh would go. Needs the OpenSSH client (CI installs it).
"""

from __future__ import annotations

import execnet

from pytest_dtf_errors.xdist.hosts import ssh_address as _ssh_address


def _config(tmp_path, body: str) -> str:
    path = tmp_path / "ssh_config"
    path.write_text(body)
    return str(path)


def test_alias_resolved_through_the_given_ssh_config(tmp_path):
    cfg = _config(tmp_path, "Host build1\n    HostName 10.9.8.7\n    Port 2222\n")
    spec = execnet.XSpec(f"ssh=ci@build1//ssh_config={cfg}//python=python3")
    assert _ssh_address(spec, 3.0) == ("10.9.8.7", 2222)


def test_plain_host_and_port_option_from_the_spec(tmp_path):
    cfg = _config(tmp_path, "")
    spec = execnet.XSpec(f"ssh=-p 2022 ci@10.1.2.3//ssh_config={cfg}")
    assert _ssh_address(spec, 3.0) == ("10.1.2.3", 2022)


def test_behind_a_jump_host_there_is_no_direct_address(tmp_path):
    cfg = _config(tmp_path, "Host inner\n    HostName 10.0.0.5\n    ProxyJump bastion\n")
    spec = execnet.XSpec(f"ssh=inner//ssh_config={cfg}")
    assert _ssh_address(spec, 3.0) is None


def test_a_config_ssh_rejects_gives_no_address(tmp_path):
    cfg = _config(tmp_path, "NoSuchOption yes\n")
    spec = execnet.XSpec(f"ssh=host//ssh_config={cfg}")
    assert _ssh_address(spec, 3.0) is None
