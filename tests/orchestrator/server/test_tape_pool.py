"""A tape storage pool behind the server: defined with DEVCLASS/LIBRARY/DRIVE/PATH/STGPOOL, one job per drive.

The lab is our iSCSI target on 127.0.0.1 with the client's NTFS volume, a
blank destination and an SSC tape LUN (an emulated tape file), and the
target's copy manager as the data mover; the server reaches the drive over
iSCSI (PATH ... DEVICE=iscsi://...) to LOCATE it and, on the LAN path, to
write and read the records itself.
"""
from __future__ import annotations

import json
import textwrap

import pytest

from orchestrator.cli import main
from orchestrator.plan.tape_position import TapeLocation
from orchestrator.server.app import open_server
from tests.fixtures.backup_server import ADMIN_PW, NODE_PW, actlog, admin, hostport, run_commands

TARGET = "iqn.2026-12.test.serverfree:tape"
MIB = 1 << 20


@pytest.fixture
def tape_lab(tmp_path):
    try:
        from scsi.devices.iscsi import LibiscsiDevice  # noqa: F401 - needs libiscsi's shared library
    except (ImportError, OSError) as exc:
        pytest.skip(f"libiscsi is not available: {exc}")
    from scsi.devices import open_device
    from scsi.iscsi.harness import ThreadedTarget
    from scsi.target.build import build_target
    from scsi.target.config import parse_config

    from orchestrator.drivers.real_devices import BlockIO
    from orchestrator.volume.samples import bundled_ntfs_image

    vol = bundled_ntfs_image(tmp_path / "vol.img")
    (tmp_path / "dest.img").write_bytes(bytes(vol.stat().st_size))
    (tmp_path / "pool.img").write_bytes(bytes(vol.stat().st_size + 8 * MIB))
    built = build_target(parse_config({"target": TARGET, "luns": [
        {"id": 0, "path": str(vol), "serial": "vol0"}, {"id": 1, "path": str(tmp_path / "dest.img"), "serial": "dest0"},
        {"id": 2, "path": str(tmp_path / "drv1.tape"), "kind": "tape", "create": True, "serial": "drv1"},
        {"id": 3, "path": str(tmp_path / "pool.img"), "serial": "pool0"}]}), with_copy_manager=True)
    target = ThreadedTarget([built.node]).start()
    url = lambda lun: target.url(TARGET, lun)  # noqa: E731
    dev = open_device(url(0))
    try:
        disk_naa = BlockIO(dev, "lun0").designator()
    finally:
        dev.close()
    srv = open_server(tmp_path / "srv", admin_password=ADMIN_PW, movers={"DM1": url(3)}).start()
    with admin(srv) as a:
        run_commands(a, ["define domain TAPEDOM", "register node NODEA " + NODE_PW["NODEA"] + " domain=TAPEDOM",
                         "register node NODEB " + NODE_PW["NODEB"],
                         "define library LIB1 libtype=manual",
                         "define drive LIB1 DRV1 wwn=50:01:04:f0:00:00:00:01",
                         f"define path SERVER1 DRV1 srctype=server desttype=drive library=LIB1 device={url(2)}",
                         "define devclass LTOCLASS devtype=lto library=LIB1",
                         "define stgpool TAPEPOOL LTOCLASS dataformat=nonblock",
                         "define volume TAPEPOOL VOL001 drive=DRV1",
                         "define devclass FILECLASS devtype=file",
                         "define stgpool DISKPOOL FILECLASS dataformat=nonblock",
                         f"define volume DISKPOOL {tmp_path / 'pool.img'}",
                         "define mgmtclass TAPEDOM TAPECLASS destination=TAPEPOOL",
                         "define mgmtclass STANDARD STANDARD destination=DISKPOOL",
                         "define datamover DM1 type=scsi wwn=21:00:00:e0:8b:05:05:04 dataformat=nonblock",
                         f"define disk NODEA DISK1 wwn={disk_naa}",
                         "define path DM1 DISK1 srctype=datamover desttype=disk node=NODEA lun=0"])
    (tmp_path / "site.yaml").write_text(textwrap.dedent(f"""
        devices: {{disk0: "{url(0)}", disk1: "{url(1)}"}}
        volumes: {{"E:": {{device: disk0}}}}
    """))
    host, port = hostport(srv)
    (tmp_path / "dsm.opt").write_text(f"nodename NODEA\nimagetype static\ntcpserveraddress {host}\n"
                                      f"tcpport {port}\npassword {NODE_PW['NODEA']}\n")
    yield tmp_path, srv, built, url
    srv.close()
    target.stop()
    built.close()


def run(args, capsys) -> dict:
    rc = main([*args, "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err + out.out
    return json.loads(out.out)


def drives_free(srv) -> bool:
    """Whether no job holds a drive once the last session's thread has ended (it ends after the client's bye)."""
    import time

    deadline = time.monotonic() + 10
    while srv.drives.held() and time.monotonic() < deadline:
        time.sleep(0.05)
    return srv.drives.held() == {}


def tape_objects(srv) -> list:
    with srv.pools.catalogue() as cat:
        return [o for o in cat.query("NODEA", inactive=True) if o.tape_location]


def test_server_free_backup_to_tape_and_back(tape_lab, capsys):
    tmp, srv, built, _ = tape_lab
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "-enableserverfree=yes"]
    report = run(["backup", "image", "E:", *opts], capsys)
    assert report["outcome"] == "completed" and report["path_used"] == "server-free", report
    [obj] = tape_objects(srv)
    loc = TapeLocation.decode(obj.tape_location)
    assert obj.pool == "TAPEPOOL" and loc.volume == "VOL001" and loc.drive == "DRV1" and loc.records > 0
    assert "to tape pool TAPEPOOL completed" in actlog(srv)
    report = run(["restore", "image", "E:", "disk1", *opts], capsys)
    assert report["path_used"] == "server-free", report
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()
    assert drives_free(srv)


def test_lan_backup_to_tape_and_restore_over_the_lan(tape_lab, capsys):
    tmp, srv, built, _ = tape_lab
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml")]
    first = run(["backup", "image", "E:", *opts], capsys)
    assert first["path_used"] == "lan", first
    second = run(["backup", "image", "E:", *opts], capsys)  # appended after the first object's filemark
    objs = sorted(tape_objects(srv), key=lambda o: o.id)
    assert len(objs) == 2 and built.counters().get("xcopy.copies", 0) == 0
    a, b = (TapeLocation.decode(o.tape_location) for o in objs)
    assert b.first_object == a.end_object and b.file_number == (a.file_number or 0) + 1, (a, b)
    report = run(["restore", "image", "E:", "disk1", *opts], capsys)
    assert report["path_used"] == "lan" and report["object_id"] == second["object_id"], report
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()
    assert drives_free(srv)


def test_one_job_per_drive(tape_lab, capsys):
    from orchestrator.server.client import ServerFailed
    from orchestrator.server.node_client import NodeSession

    tmp, srv, built, _ = tape_lab
    host, port = hostport(srv)
    with NodeSession(host, port, "NODEA", NODE_PW["NODEA"]) as first:
        g = first.begin("F:", 1 * MIB, 1 * MIB)
        assert g["pool"] == "TAPEPOOL" and g["tape"]
        assert list(srv.drives.held()) == ["DRV1"]
        with admin(srv) as a:
            ok, out = a.command("query drive")
            assert ok and "LIB1 DRV1" in out and "In Use By" in out and "(node NODEA)" in out, out
        opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "-enableserverfree=yes"]
        rc = main(["backup", "image", "E:", *opts])
        err = capsys.readouterr().err
        assert rc == 1 and "drive DRV1 is in use by session" in err and "one job per drive" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        with NodeSession(host, port, "NODEA", NODE_PW["NODEA"]) as second, \
                pytest.raises(ServerFailed, match="drive DRV1 is in use"):  # not bad input: a job failed
            second.begin("G:", 1 * MIB, 1 * MIB)
    assert "ANR8447E" in actlog(srv)
    # the first session ended: its object is abandoned and the drive free again
    assert drives_free(srv)
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml")]
    assert run(["backup", "image", "E:", *opts], capsys)["outcome"] == "completed"


def test_the_policy_gives_the_same_destination_to_every_path(tape_lab, capsys):
    """Management class -> destination pool: the same pool server-free, over the LAN, and for each node."""
    from orchestrator.server.node_client import NodeSession

    tmp, srv, built, _ = tape_lab
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml")]
    run(["backup", "image", "E:", *opts, "-enableserverfree=yes"], capsys)
    run(["backup", "image", "E:", *opts], capsys)
    with srv.pools.catalogue() as cat:
        assert {(o.pool, bool(o.tape_location)) for o in cat.query("NODEA", inactive=True)} == {("TAPEPOOL", True)}
    with NodeSession(*hostport(srv), "NODEB", NODE_PW["NODEB"]) as b:  # domain STANDARD: the disk pool
        g = b.begin("E:", 4096, 4096)
        assert g["pool"] == "DISKPOOL" and "tape" not in g
        b.abandon(g["object_id"], "test")


def test_tape_definitions_refused_with_one_line(tape_lab):
    tmp, srv, built, _ = tape_lab
    with admin(srv) as a:
        ok, out = a.command("define volume TAPEPOOL VOL002")
        assert not ok and "give DRIVE=" in out
        ok, out = a.command("define volume TAPEPOOL VOL002 drive=DRV9")
        assert not ok and "DRIVE=DRV9: not a drive of tape pool TAPEPOOL" in out
        ok, out = a.command("define volume TAPEPOOL VOL002 drive=DRV1")
        assert not ok and "drive DRV1 already holds a volume" in out
        ok, out = a.command(f"define volume DISKPOOL {tmp / 'x.img'} capacity=1m drive=DRV1")
        assert not ok and "DISKPOOL is a disk pool" in out
        for line in (out,):
            assert "\n" not in line


def agent_site(tmp, url) -> None:
    """The client as a storage agent: it reaches the server's drive DRV1 over the SAN as its device tape1."""
    (tmp / "site.yaml").write_text(textwrap.dedent(f"""
        devices: {{disk0: "{url(0)}", disk1: "{url(1)}", tape1: "{url(2)}"}}
        storage_agent: {{DRV1: tape1}}
        volumes: {{"E:": {{device: disk0}}}}
    """))


def test_lan_free_backup_to_tape_by_a_storage_agent(tape_lab, capsys, monkeypatch):
    from orchestrator.server.node_ops import NodeOps

    tmp, srv, built, url = tape_lab
    agent_site(tmp, url)
    puts: list[int] = []
    real_put = NodeOps.put
    monkeypatch.setattr(NodeOps, "put", lambda self, req, data: puts.append(len(data)) or real_put(self, req, data))
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "-enablelanfree=yes"]
    run(["backup", "image", "E:", *opts], capsys)  # a LAN object first: the agent's lands after its filemark
    before = len(puts)
    report = run(["backup", "image", "E:", *opts, "-enablelanfree=yes"], capsys)
    assert report["outcome"] == "completed" and report["path_used"] == "lan-free", report
    assert len(puts) == before  # no byte crossed the LAN
    objs = sorted(tape_objects(srv), key=lambda o: o.id)
    first, agent = (TapeLocation.decode(o.tape_location) for o in objs)
    assert agent.drive == "DRV1" and agent.volume == "VOL001" and agent.first_object == first.end_object
    assert "lan-free)" in actlog(srv)
    report = run(["restore", "image", "E:", "disk1", *opts], capsys)  # the server reads the agent's records
    assert report["object_id"] == objs[1].id
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()


def test_a_storage_agent_commit_the_tape_does_not_back_is_refused(tape_lab):
    from orchestrator.ops import StoredPiece
    from orchestrator.server.client import ServerRefused
    from orchestrator.server.node_client import NodeSession

    tmp, srv, built, url = tape_lab
    with NodeSession(*hostport(srv), "NODEA", NODE_PW["NODEA"]) as n:
        g = n.begin("E:", 1 * MIB, 1 * MIB, lan_free=True, tape_lan_free=True)
        assert g["lan_free"] == {"tape_drive": "DRV1", "pool_volume": "VOL001"}
        loc = TapeLocation(volume="VOL001", drive="tape1", file_number=0, first_object=0, records=4,
                           record_bytes=256 * 1024).encode()
        # nothing was written on the tape; the client claims it wrote 1 MiB at the beginning
        with pytest.raises(ServerRefused, match="cannot be read back|not the data the client's digests"):
            n.commit(g["object_id"], [StoredPiece(0, 0, 1 * MIB)], "lan-free", [(0, "00" * 32)], [], 1 * MIB,
                     tape_location=loc)
    assert drives_free(srv)
    with srv.pools.catalogue() as cat:
        assert set(cat.states().values()) == {"abandoned"}


def test_a_storage_agent_that_cannot_write_the_drive_falls_back_to_the_lan(tape_lab, capsys):
    tmp, srv, built, url = tape_lab
    agent_site(tmp, url)
    # the agent's "drive" is a disk LUN: SPACE to end of data is refused before a record is written
    (tmp / "site.yaml").write_text((tmp / "site.yaml").read_text().replace(url(2), url(3)))
    pool_before = (tmp / "pool.img").read_bytes()
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "-enablelanfree=yes"]
    report = run(["backup", "image", "E:", *opts], capsys)
    assert report["outcome"] == "completed" and report["path_used"] == "lan", report
    assert "LAN-free to tape pool failed" in json.dumps(report), report
    assert (tmp / "pool.img").read_bytes() == pool_before
    with srv.pools.catalogue() as cat:
        assert sorted(cat.states().values()) == ["abandoned", "active"]
    assert drives_free(srv)
    report = run(["restore", "image", "E:", "disk1", *opts], capsys)
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()


def test_a_drive_the_server_cannot_open_is_one_line(server, tmp_path, capsys):
    """No iSCSI here: the drive's DEVICE= names a file that is not there."""
    with admin(server) as a:
        run_commands(a, ["define library LIB1 libtype=manual", "define drive LIB1 DRV1 wwn=50:01:04:f0:00:00:00:01",
                         f"define path SERVER1 DRV1 srctype=server desttype=drive library=LIB1 device={tmp_path}/no.tape",
                         "define devclass LTOCLASS devtype=lto library=LIB1", "define stgpool TAPEPOOL LTOCLASS",
                         "define volume TAPEPOOL VOL001 drive=DRV1",
                         "define mgmtclass STANDARD STANDARD destination=TAPEPOOL"])
    (tmp_path / "e.img").write_bytes(b"\x01" * (1 << 20))
    (tmp_path / "site.yaml").write_text("devices: {disk0: e.img}\nvolumes:\n  'E:': {device: disk0, filesystem: raw}\n")
    host, port = hostport(server)
    rc = main(["backup", "image", "E:", f"-tcpserveraddress={host}", f"-tcpport={port}", "-nodename=NODEA",
               f"-password={NODE_PW['NODEA']}", "--site", str(tmp_path / "site.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and "drive DRV1: DEVICE=" in err and "no.tape" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with server.pools.catalogue() as cat:
        assert set(cat.states().values()) == {"abandoned"}
    assert server.drives.held() == {}


def test_a_drive_failing_a_write_is_named_and_frees_the_drive(tape_lab, capsys, monkeypatch):
    from orchestrator.server import tape

    tmp, srv, built, _ = tape_lab

    def broken(self, image_offset, data):
        raise OSError("SENSE KEY:MEDIUM_ERROR(3) (injected)")

    monkeypatch.setattr(tape.TapeWriter, "put", broken)
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
    rc = main(["backup", "image", "E:", *opts])
    out = capsys.readouterr()
    assert rc != 0 and "Traceback" not in out.err, out
    report = json.loads(out.out)
    assert report["outcome"] == "failed" and "drive DRV1: WRITE failed: SENSE KEY:MEDIUM_ERROR" in report["message"]
    assert "ANR8448E" in actlog(srv) and "drive DRV1: WRITE failed: SENSE KEY:MEDIUM_ERROR" in actlog(srv)
    assert drives_free(srv)
    with srv.pools.catalogue() as cat:
        assert set(cat.states().values()) == {"abandoned"}
