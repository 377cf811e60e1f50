"""Transports: one owner for a run's transports, built on first use, shared, aborted, closed."""

from __future__ import annotations

import pytest
from inprocess import InProcessTransport, answer

from checkrunner.errors import ConfigError
from checkrunner.inventory.model import Host
from checkrunner.results import UnreachableReason
from checkrunner.transport import LocalTransport, Transports, Unreachable
from checkrunner.transport.ssh_config import SSHOptions


def host(name: str, **variables) -> Host:
    return Host(name, vars=variables)


def test_each_connection_type_gets_one_transport_built_on_first_use():
    transports = Transports(SSHOptions(ssh_config="none"))
    local_a = transports.for_host(host("a", ansible_connection="local"))
    local_b = transports.for_host(host("b", ansible_connection="local"))
    assert isinstance(local_a, LocalTransport) and local_a is local_b
    ssh_a = transports.for_host(host("c", ansible_host="127.0.0.1"))
    ssh_b = transports.for_host(host("d", ansible_connection="paramiko", ansible_host="127.0.0.2"))
    assert ssh_a is ssh_b and ssh_a.name == "ssh"
    assert ssh_a.options.ssh_config == "none"  # the options the pool was made with


def test_two_pools_share_nothing():
    first, second = Transports(), Transports()
    local = host("a", ansible_connection="local")
    assert first.for_host(local) is not second.for_host(local)


def test_an_unsupported_connection_is_unreachable_and_bad_settings_are_input_errors():
    transports = Transports()
    with pytest.raises(Unreachable) as info:
        transports.for_host(host("w", ansible_connection="winrm"))
    assert info.value.reason == UnreachableReason.UNSUPPORTED_CONNECTION
    with pytest.raises(ConfigError, match="ansible_port"):
        transports.for_host(host("p", ansible_port="seventy"))


def test_prepare_builds_what_the_hosts_need_and_stops_at_a_bad_ssh_config(tmp_path):
    hosts = [host("w", ansible_connection="winrm"), host("s", ansible_host="127.0.0.1")]
    with pytest.raises(ConfigError, match="missing_config"):
        Transports(SSHOptions(ssh_config=str(tmp_path / "missing_config"))).prepare(hosts)
    Transports(SSHOptions(ssh_config="none")).prepare(hosts)  # the winrm host is skipped


def test_abort_and_close_reach_every_transport_built_and_only_those():
    local = InProcessTransport(answer)
    ssh = InProcessTransport(answer)
    with Transports(local=local, ssh=ssh) as transports:
        assert transports.for_host(host("a", ansible_connection="local")) is local
        transports.abort()
        assert local.aborted.is_set() and not ssh.aborted.is_set()  # ssh never used
    assert (local.closed, ssh.closed) == (1, 0)
