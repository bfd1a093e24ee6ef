"""`backup image`, `restore image`, `query backup` of a client whose site file has no pool: through the server."""
from __future__ import annotations

import json
import os
import random
import time
from datetime import datetime, timezone

import pytest

from orchestrator.cli import main
from tests.fixtures.backup_server import NODE_PW, actlog, hostport, with_pool


@pytest.fixture
def client(server, tmp_path):
    with_pool(server, tmp_path / "", "16m")
    rng = random.Random(7)
    vol = bytearray(4 << 20)
    for i in range(0, len(vol), 64 << 10):
        if rng.random() < 0.6:
            vol[i:i + (64 << 10)] = rng.randbytes(64 << 10)
    (tmp_path / "e.img").write_bytes(bytes(vol))
    (tmp_path / "r.img").write_bytes(bytes(len(vol)))
    site = tmp_path / "site.yaml"
    site.write_text("devices: {disk0: e.img, disk1: r.img}\nvolumes:\n  'E:': {device: disk0, filesystem: raw}\n")
    host, port = hostport(server)
    opts = [f"-tcpserveraddress={host}", f"-tcpport={port}", "-nodename=NODEA", "--site", str(site)]
    return server, tmp_path, opts, bytes(vol)


def test_backup_query_restore_through_the_server(client, capsys, monkeypatch):
    srv, tmp, opts, vol = client
    rc = main(["backup", "image", "E:", "--json", f"-password={NODE_PW['NODEA']}", "-imagegapsize=0", *opts])
    out = capsys.readouterr()
    assert rc == 0, out.err + out.out
    report = json.loads(out.out)
    assert report["outcome"] == "completed" and report["path_used"] == "lan", report
    monkeypatch.setenv("SERVERFREE_PASSWORD", NODE_PW["NODEA"])
    rc = main(["query", "backup", "E:", *opts[:3]])
    out = capsys.readouterr().out
    assert rc == 0 and "NODEA:E:" in out and "object:" in out
    rc = main(["restore", "image", "E:", "disk1", *opts])
    assert rc == 0, capsys.readouterr()
    assert (tmp / "r.img").read_bytes() == vol
    # node B sees nothing of it
    monkeypatch.setenv("SERVERFREE_PASSWORD", NODE_PW["NODEB"])
    rc = main(["query", "backup", f"-tcpserveraddress={opts[0].split('=')[1]}", opts[1], "-nodename=NODEB"])
    assert rc == 0 and "no image backups of NODEB" in capsys.readouterr().out
    assert "ANR0511I" in actlog(srv)


def test_wrong_password_gives_one_line(client, capsys):
    srv, tmp, opts, vol = client
    rc = main(["backup", "image", "E:", "-password=wrong-password", *opts])
    err = capsys.readouterr().err
    assert rc == 2 and "authentication failed" in err and "Traceback" not in err
    with srv.pools.catalogue() as cat:
        assert cat.states() == {}


def test_a_site_without_pool_and_without_a_server_password(client, capsys, monkeypatch):
    srv, tmp, opts, vol = client
    monkeypatch.delenv("SERVERFREE_PASSWORD", raising=False)
    rc = main(["backup", "image", "E:", *opts])
    err = capsys.readouterr().err
    assert rc == 2 and "password" in err
    assert os.path.getsize(tmp / "pool0.img") == 16 << 20


def lan_free_site(tmp, mapping: str) -> None:
    (tmp / "site.yaml").write_text(
        f"devices: {{disk0: e.img, disk1: r.img, pooldev: {tmp / 'pool0.img'}}}\n"
        f"storage_agent: {{'{mapping}': pooldev}}\n"
        "volumes:\n  'E:': {device: disk0, filesystem: raw}\n")


def test_lan_free_into_the_granted_range(client, capsys):
    srv, tmp, opts, vol = client
    lan_free_site(tmp, tmp / "pool0.img")
    rc = main(["backup", "image", "E:", "--json", f"-password={NODE_PW['NODEA']}", "-imagegapsize=0", "-enablelanfree=yes", *opts])
    out = capsys.readouterr()
    assert rc == 0, out.err + out.out
    report = json.loads(out.out)
    assert report["outcome"] == "completed" and report["path_used"] == "lan-free", report
    rc = main(["restore", "image", "E:", "disk1", f"-password={NODE_PW['NODEA']}", *opts])
    assert rc == 0, capsys.readouterr()
    assert (tmp / "r.img").read_bytes() == vol
    assert "committed (" in actlog(srv) and "lan-free)" in actlog(srv)


def test_lan_free_to_a_volume_this_client_cannot_reach_fails_over_to_the_lan(client, capsys):
    srv, tmp, opts, vol = client
    lan_free_site(tmp, "/not/the/granted/volume.img")
    rc = main(["backup", "image", "E:", "--json", f"-password={NODE_PW['NODEA']}", "-imagegapsize=0", "-enablelanfree=yes", *opts])
    out = capsys.readouterr()
    assert rc == 0, out.err + out.out
    report = json.loads(out.out)
    assert report["path_used"] == "lan" and report["failovers"], report


def test_a_lan_free_commit_the_pool_does_not_back_is_refused(client):
    from orchestrator.ops import StoredPiece
    from orchestrator.server.client import ServerRefused
    from orchestrator.server.node_client import NodeSession

    srv, tmp, opts, vol = client
    host, port = hostport(srv)
    with NodeSession(host, port, "NODEA", NODE_PW["NODEA"]) as n:
        g = n.begin("E:", 65536, 65536, lan_free=True)
        assert g["lan_free"]["length"] == 65536
        # nothing was written over the SAN; the client claims digests of data it never wrote
        with pytest.raises(ServerRefused, match="does not hold the LAN-free data"):
            n.commit(g["object_id"], [StoredPiece(0, 0, 65536)], "lan-free", [(0, "00" * 32)], chunk_size=65536)
    with srv.pools.catalogue() as cat:
        assert set(cat.states().values()) == {"abandoned"}


def test_incremental_and_point_in_time_through_the_server(client, capsys):
    srv, tmp, opts, vol = client
    pw = f"-password={NODE_PW['NODEA']}"
    assert main(["backup", "image", "E:", pw, "-imagegapsize=0", *opts]) == 0, capsys.readouterr()
    capsys.readouterr()
    time.sleep(0.05)
    between = datetime.now(timezone.utc).isoformat()
    changed = bytearray(vol)
    changed[100_000:100_100] = b"\x42" * 100
    (tmp / "e.img").write_bytes(bytes(changed))
    rc = main(["backup", "image", "E:", "--json", pw, "-imagegapsize=0", "-mode=incremental", *opts])
    out = capsys.readouterr()
    assert rc == 0, out.err + out.out
    report = json.loads(out.out)
    assert report["outcome"] == "completed" and report["image_size"] <= len(vol) // 4, report  # one changed chunk
    assert main(["restore", "image", "E:", "disk1", pw, "-incremental", *opts]) == 0, capsys.readouterr()
    assert (tmp / "r.img").read_bytes() == bytes(changed)
    assert main(["restore", "image", "E:", "disk1", pw, f"-pitdate={between}", *opts]) == 0, capsys.readouterr()
    assert (tmp / "r.img").read_bytes() == vol


def test_lan_free_restore_reads_the_granted_range_of_the_pool(client, capsys):
    srv, tmp, opts, vol = client
    pw = f"-password={NODE_PW['NODEA']}"
    assert main(["backup", "image", "E:", pw, "-imagegapsize=0", *opts]) == 0, capsys.readouterr()
    capsys.readouterr()
    lan_free_site(tmp, tmp / "pool0.img")
    rc = main(["restore", "image", "E:", "disk1", "--json", pw, "-enablelanfree=yes", *opts])
    out = capsys.readouterr()
    assert rc == 0, out.err + out.out
    report = json.loads(out.out)
    assert report["path_used"] == "lan-free" and not report["failovers"], report
    assert (tmp / "r.img").read_bytes() == vol
    assert "granted LAN-free read of object" in actlog(srv)
    deadline = time.monotonic() + 10  # the server's session thread logs the end after the client's bye
    while "ended with the session" not in actlog(srv) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "read grant(s) of node NODEA for object(s)" in actlog(srv)


def test_a_lan_free_restore_to_an_unmapped_volume_goes_over_the_lan(client, capsys):
    srv, tmp, opts, vol = client
    pw = f"-password={NODE_PW['NODEA']}"
    assert main(["backup", "image", "E:", pw, "-imagegapsize=0", *opts]) == 0, capsys.readouterr()
    capsys.readouterr()
    lan_free_site(tmp, "/not/the/pool.img")
    rc = main(["restore", "image", "E:", "disk1", "--json", pw, "-enablelanfree=yes", *opts])
    out = capsys.readouterr()
    assert rc == 0, out.err + out.out
    report = json.loads(out.out)
    assert report["path_used"] == "lan" and "does not map to a device of this client" in json.dumps(report)
    assert (tmp / "r.img").read_bytes() == vol


def test_read_grants_are_per_node_per_range_and_end_with_the_session(client, capsys):
    from orchestrator.drivers.open_site import OpenSite
    from orchestrator.drivers.site import load_site
    from orchestrator.ops import LanFreeRead, StoredPiece
    from orchestrator.server.client import ServerRefused
    from orchestrator.server.node_client import NodeSession
    from orchestrator.server.node_driver import ServerDriver

    srv, tmp, opts, vol = client
    host, port = hostport(srv)
    pw = f"-password={NODE_PW['NODEA']}"
    assert main(["backup", "image", "E:", pw, "-imagegapsize=0", *opts]) == 0, capsys.readouterr()
    with NodeSession(host, port, "NODEA", NODE_PW["NODEA"]) as a:
        oid = a.query("E:")[0]["id"]
    with NodeSession(host, port, "NODEB", NODE_PW["NODEB"]) as b, \
            pytest.raises(ServerRefused, match=f"object {oid} is not an object of node NODEB"):
        b.restore_grant(oid)
    assert "NODEB refused - object" in actlog(srv)
    lan_free_site(tmp, tmp / "pool0.img")
    site = load_site(tmp / "site.yaml")
    with OpenSite(site) as opened:
        a = NodeSession(host, port, "NODEA", NODE_PW["NODEA"])
        driver = ServerDriver(None, opened.movers, opened.devices, session=a)  # type: ignore[arg-type]
        g = a.restore_grant(oid)
        driver.grant_read("pooldev", g["pool_offset"], g["length"])

        def read(image_offset: int, length: int):
            piece = StoredPiece(image_offset, image_offset, length)
            return driver.execute(LanFreeRead("pooldev", g["pool_offset"], "disk1", 0, (piece,)))

        assert read(0, 4096).failure is None
        outside = read(g["length"] - 4096, 8192)  # runs past the object into pool space not granted
        assert outside.failure is not None and "outside the range the backup server granted" in \
            outside.failure.message and outside.pieces_done == 0
        a.close()
        ended = read(0, 4096)
        assert ended.failure is not None and "session that held the read grant has ended" in ended.failure.message


def test_declared_raw_volume_keeps_a_write_into_zero_space_through_the_server(server, tmp_path, capsys):
    """A volume the site declares raw is every block, even when its bytes hold an NTFS boot sector: a write
    after the full into clusters that NTFS calls free (all zeros) comes back from full + incremental."""
    from orchestrator.volume.samples import bundled_ntfs_image

    with_pool(server, tmp_path / "", "32m")
    vol = bundled_ntfs_image(tmp_path / "e.img")
    (tmp_path / "r.img").write_bytes(bytes(vol.stat().st_size))
    site = tmp_path / "site.yaml"
    site.write_text("devices: {disk0: e.img, disk1: r.img}\nvolumes:\n  'E:': {device: disk0, filesystem: raw}\n")
    host, port = hostport(server)
    opts = [f"-tcpserveraddress={host}", f"-tcpport={port}", "-nodename=NODEA", "--site", str(site),
            f"-password={NODE_PW['NODEA']}"]
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    at = 2 * (1 << 20) + 4096
    data = bytearray(vol.read_bytes())
    assert not any(data[at:at + 70_000])
    data[at:at + 70_000] = random.Random(4).randbytes(70_000)
    vol.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["backup", "image", "E:", "--json", "-mode=incremental", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and 0 < report["image_size"] <= 1 << 20, report
    assert main(["restore", "image", "E:", "disk1", "-incremental", *opts]) == 0, capsys.readouterr()
    assert (tmp_path / "r.img").read_bytes() == bytes(data)
