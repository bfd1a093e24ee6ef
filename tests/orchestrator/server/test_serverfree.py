"""Server-free backup initiated by the server: EXTENDED COPY from the server to the mover over iSCSI."""
from __future__ import annotations

import json
import textwrap

import pytest

from orchestrator.cli import main
from orchestrator.server.app import open_server
from tests.fixtures.backup_server import ADMIN_PW, NODE_PW, actlog, admin, hostport, run_commands

TARGET = "iqn.2026-12.test.serverfree:server"
MIB = 1 << 20


CHAP = {"username": "srvinit", "secret": "server-chap-secret1"}


@pytest.fixture
def lab(tmp_path):
    yield from make_lab(tmp_path)


@pytest.fixture
def chap_lab(tmp_path):
    yield from make_lab(tmp_path, chap=True)


@pytest.fixture
def fabric_lab(tmp_path):
    yield from make_lab(tmp_path, fabric=True)


def fabric_file(path, disk_naa: str, pool_naa: str, mover_zoned: bool = True):
    """The demo's SAN with this lab's designators: NODEA's E: on ARR1:0, DM1 zoned to it unless told not."""
    import copy

    import yaml

    from orchestrator.cli.demo_cmd import DEMO_TOPOLOGY

    t = copy.deepcopy(DEMO_TOPOLOGY)
    t["hosts"][0]["name"] = "NODEA"
    t["storage_agents"][0].update(host="NODEA", clients=["NODEA"])
    t["arrays"][0]["luns"] = [{"number": 0, "naa": disk_naa, "serial": "vol0", "size": "64MiB"}]
    t["arrays"][0]["masking"] = [{"initiator": m["initiator"], "luns": [0]} for m in t["arrays"][0]["masking"]]
    t["arrays"][1]["luns"][0]["naa"] = pool_naa
    t["volumes"] = [{"client": "NODEA", "mount": "E:", "filesystem": "NTFS", "lun": "ARR1:0", "size": "32MiB",
                     "mgmtclass": "SF1"}]
    if not mover_zoned:
        t["zones"] = [z for z in t["zones"] if z["name"] != "Z_DM1"]
        t["zonesets"][0]["zones"] = [z for z in t["zonesets"][0]["zones"] if z != "Z_DM1"]
    path.write_text(yaml.safe_dump(t))
    return path


def make_lab(tmp_path, chap: bool = False, fabric: bool = False, faults: list[str] | None = None,
             raw_mib: int = 0):
    """The lab; ``raw_mib``: the client's volume is that many MiB of random bytes (a raw volume) instead of NTFS."""
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

    if raw_mib:
        import random

        vol = tmp_path / "vol.img"
        vol.write_bytes(random.Random(5).randbytes(raw_mib * MIB))
    else:
        vol = bundled_ntfs_image(tmp_path / "vol.img")
    size = vol.stat().st_size
    (tmp_path / "dest.img").write_bytes(bytes(size))
    (tmp_path / "pool.img").write_bytes(bytes(2 * size + 8 * MIB))
    built = build_target(parse_config({"target": TARGET, **({"chap": CHAP} if chap else {}),
                                       **({"faults": faults} if faults else {}), "luns": [
        {"id": 0, "path": str(vol), "serial": "vol0"}, {"id": 1, "path": str(tmp_path / "pool.img"), "serial": "pool0"},
        {"id": 2, "path": str(tmp_path / "dest.img"), "serial": "dest0"}]}), with_copy_manager=True)
    target = ThreadedTarget([built.node]).start()
    account = f"{CHAP['username']}%{CHAP['secret']}@" if chap else ""
    url = lambda lun: target.url(TARGET, lun).replace("iscsi://", f"iscsi://{account}")  # noqa: E731

    def designator(lun: int) -> str:
        dev = open_device(url(lun))
        try:
            return BlockIO(dev, f"lun{lun}").designator()
        finally:
            dev.close()

    fabric_path = fabric_file(tmp_path / "fabric.yaml", designator(0), designator(1)) if fabric else None
    srv = open_server(tmp_path / "srv", admin_password=ADMIN_PW, movers={"DM1": url(1)},
                      fabric=str(fabric_path) if fabric else None).start()
    with admin(srv) as a:
        run_commands(a, ["register node NODEA " + NODE_PW["NODEA"], "define devclass FILECLASS devtype=file",
                         "define stgpool POOL1 FILECLASS dataformat=nonblock",
                         f"define volume POOL1 {tmp_path / 'pool.img'} designator={designator(1)}",
                         "define mgmtclass STANDARD STANDARD destination=POOL1",
                         "define datamover DM1 type=scsi wwn=21:00:00:e0:8b:05:05:04 dataformat=nonblock",
                         f"define disk NODEA DISK1 wwn={designator(0)}",
                         "define path DM1 DISK1 srctype=datamover desttype=disk node=NODEA lun=0"])
    (tmp_path / "site.yaml").write_text(textwrap.dedent(f"""
        devices: {{disk0: "{url(0)}", disk1: "{url(2)}"}}
        volumes: {{"E:": {{device: disk0{", filesystem: raw" if raw_mib else ""}}}}}
    """))
    host, port = hostport(srv)
    (tmp_path / "dsm.opt").write_text(f"nodename NODEA\nenableserverfree yes\nimagetype static\n"
                                      f"tcpserveraddress {host}\ntcpport {port}\npassword {NODE_PW['NODEA']}\n")
    yield tmp_path, srv, built, url
    srv.close()
    target.stop()
    built.close()


def test_the_server_initiates_the_copy_and_the_client_moves_nothing(lab, capsys):
    tmp, srv, built, _ = lab
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "server-free", report
    assert built.counters().get("xcopy.completed", 0) >= 1
    assert "server-free backup of NODEA:E: completed" in actlog(srv)
    copies = built.counters()["xcopy.completed"]
    assert main(["restore", "image", "E:", "disk1", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "restore" and report["path_used"] == "server-free", report
    assert built.counters()["xcopy.completed"] > copies
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()
    assert "server-free restore of NODEA:E: completed" in actlog(srv)


def test_without_a_path_for_the_node_the_client_falls_back_to_the_lan(lab, capsys):
    tmp, srv, built, _ = lab
    with admin(srv) as a:
        assert a.command("delete path DM1 DISK1")[0]
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "lan"
    assert "no PATH to a disk of node NODEA" in json.dumps(report)
    assert built.counters().get("xcopy.copies", 0) == 0
    assert main(["restore", "image", "E:", "disk1", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "lan" and "no PATH to a disk" in json.dumps(report)
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()


def test_the_server_logs_in_to_a_mover_that_requires_chap(chap_lab, capsys):
    tmp, srv, built, url = chap_lab
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "server-free", report
    # the same server without the account in its --mover URL is refused by the mover: the client falls back
    srv.serverfree.urls["DM1"] = url(1).replace(f"{CHAP['username']}%{CHAP['secret']}@", "")
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "lan" and "server-free through the backup server" in json.dumps(report)
    assert "server-free backup of NODEA:E: failed" in actlog(srv)


def test_with_a_fabric_the_server_verifies_the_san_path(fabric_lab, capsys):
    tmp, srv, built, url = fabric_lab
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "server-free", report
    # the mover's zone is gone from the fabric: the topology verdict refuses, the client goes over the LAN
    import yaml

    fabric = yaml.safe_load((tmp / "fabric.yaml").read_text())
    fabric_file(tmp / "fabric.yaml", fabric["arrays"][0]["luns"][0]["naa"], fabric["arrays"][1]["luns"][0]["naa"],
                mover_zoned=False)
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "lan", report
    assert "the topology has no server-free path for NODEA:E:" in json.dumps(report)


def test_incremental_chains_and_point_in_time_restore_server_free(lab, capsys):
    """The mover copies an image incremental (the client's scan decides what changed), and restores the full
    image and its incrementals (or the chain in force at -pitdate)."""
    import time
    from datetime import datetime, timezone

    tmp, srv, built, _ = lab
    (tmp / "site.yaml").write_text((tmp / "site.yaml").read_text().replace("{device: disk0}",
                                                                           "{device: disk0, filesystem: raw}"))
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
    original = (tmp / "vol.img").read_bytes()
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    full = json.loads(capsys.readouterr().out)
    assert full["path_used"] == "server-free"
    time.sleep(0.05)
    between = datetime.now(timezone.utc).isoformat()
    changed = bytearray(original)
    changed[4 * MIB + 300_000:4 * MIB + 305_000] = b"\x5a" * 5000  # inside used data
    (tmp / "vol.img").write_bytes(bytes(changed))
    assert main(["backup", "image", "E:", *opts, "-mode=incremental"]) == 0, capsys.readouterr()
    incr = json.loads(capsys.readouterr().out)
    assert incr["outcome"] == "completed" and incr["image_size"] < full["image_size"], incr
    assert incr["path_used"] == "server-free", incr  # the client scanned its volume, the mover copied the change
    with srv.pools.catalogue() as cat:
        assert [(o.mode, o.base_id) for o in cat.query("NODEA", inactive=True)] == \
            [("selective", None), ("incremental", full["object_id"])]
    copies = built.counters()["xcopy.completed"]
    assert main(["restore", "image", "E:", "disk1", *opts, "-incremental", "-enableserverfree=no"]) == 0
    lanrep = json.loads(capsys.readouterr().out)
    assert lanrep["path_used"] == "lan" and (tmp / "dest.img").read_bytes() == bytes(changed)  # the LAN's view
    (tmp / "dest.img").write_bytes(bytes(len(original)))
    assert main(["restore", "image", "E:", "disk1", *opts, "-incremental"]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "server-free", report
    assert built.counters()["xcopy.completed"] > copies
    assert (tmp / "dest.img").read_bytes() == bytes(changed)
    assert main(["restore", "image", "E:", "disk1", *opts, f"-pitdate={between}"]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "server-free", report
    assert (tmp / "dest.img").read_bytes() == original


def test_a_topology_verdict_about_another_pool_does_not_count(fabric_lab, capsys):
    """The server's policy decides the destination: a fabric whose volume's class sends it to other LUNs
    proves no path to the pool the data goes to, so the copy is not server-free and the report says why."""
    import yaml

    tmp, srv, built, url = fabric_lab
    fabric = yaml.safe_load((tmp / "fabric.yaml").read_text())
    fabric_file(tmp / "fabric.yaml", fabric["arrays"][0]["luns"][0]["naa"], "600140500000000000000000000000ff")
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "lan", report
    assert "judged the path of NODEA:E: to pool SFPOOL" in json.dumps(report)
    assert "the server's policy sends it to pool POOL1" in json.dumps(report)
    assert built.counters().get("xcopy.copies", 0) == 0


def test_snapshot_and_dynamic_image_types_go_server_free_as_the_local_path_does(lab, capsys):
    """imagetype snapshot (the default) has no snapshot facility here: an offline image, server-free, with the
    job's warning; imagetype dynamic is copied as it is, server-free."""
    tmp, srv, built, _ = lab
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml")]
    assert main(["backup", "image", "E:", *opts, "-imagetype=snapshot", "--json"]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "server-free", report
    assert any("no snapshot facility for E:" in w for w in report["warnings"]), report
    assert main(["backup", "image", "E:", *opts, "-imagetype=dynamic"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "path: server-free" in out, out
    with srv.pools.catalogue() as cat:
        assert [o.image_type for o in cat.query("NODEA", inactive=True)] == ["static", "dynamic"]
