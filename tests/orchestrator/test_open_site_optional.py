"""OpenSite's optional devices: a storage agent's way to the pool that cannot be opened is left out, with why.

Through the backup server the client has another way to the pool (the LAN),
so a storage-agent device that is gone must not fail the job; any other
device that cannot be opened still does, naming it.
"""
from __future__ import annotations

import socket

import pytest

from orchestrator.drivers.open_site import OpenSite
from orchestrator.drivers.site import SiteConfig


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def site(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    gone = f"iscsi://127.0.0.1:{_closed_port()}/iqn.2026-01.example:gone/2"
    return SiteConfig(devices={"disk0": str(disk), "pool0": gone}, volumes={"E:": {"device": "disk0"}},
                      storage_agent={"/srv/pool/vol1.img": "pool0"})


def test_an_optional_device_that_cannot_be_opened_is_left_out_with_its_reason(site):
    with OpenSite(site, optional={"pool0"}) as opened:
        assert set(opened.devices) == {"disk0"}
        assert list(opened.unavailable) == ["pool0"] and "127.0.0.1" in opened.unavailable["pool0"]


def test_any_other_device_that_cannot_be_opened_still_fails(site):
    with pytest.raises(Exception, match="127.0.0.1"):
        OpenSite(site)


def test_the_client_of_the_server_names_the_storage_agent_device_it_does_without(site):
    from orchestrator.server.node_jobs import optional_agents, storage_agent

    assert optional_agents(site, "disk0") == {"pool0"}
    assert optional_agents(site, "pool0") == set()  # the job's own volume or destination is never optional
    with OpenSite(site, optional_agents(site, "disk0")) as opened:
        agent, why = storage_agent(site, opened)
    assert agent == {} and len(why) == 1 and why[0].startswith("LAN-free: storage agent device pool0 (pool volume "
                                                                "/srv/pool/vol1.img) cannot be opened:"), why
