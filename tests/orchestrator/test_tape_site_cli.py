"""Tape pools in the site file: `serverfree backup image` / `restore image` to and from a tape pool on the
project's own iSCSI target (a disk LUN with an NTFS volume, a tape LUN, a blank LUN and the data mover),
server-free, LAN-free, and LAN through the site's lan_pool (the drive as local mode's server side opens it);
bad tape entries are refused with the file and the field named."""
from __future__ import annotations

import json
import textwrap

import pytest

from orchestrator.cli import main
from orchestrator.drivers.site import load_site

MIB = 1 << 20
TARGET = "iqn.2026-11.test.serverfree:tapesite"


def write_site(tmp, urls: dict[str, str], lan_tape: str = "", pool_extra: str = "") -> str:
    lan = f'lan_pool: {{tapes: {{drv1: "{lan_tape}"}}}}' if lan_tape else ""
    (tmp / "site.yaml").write_text(textwrap.dedent(f"""
        {lan}
        verified_without_topology: true
        devices: {{disk0: "{urls['disk0']}", drv1: "{urls['drv1']}", disk1: "{urls['disk1']}"}}
        movers: {{DM1: "{urls['mover']}"}}
        pool:
          name: TAPEPOOL
          kind: tape
          record_size: 64k
          block_mode: variable
          drives: [drv1]
          volumes: [{{name: VOL001, device: drv1, capacity: 1g}}]
          {pool_extra}
        volumes: {{"E:": {{device: disk0}}}}
    """))
    return str(tmp / "site.yaml")


@pytest.fixture
def tape_target(tmp_path):
    """The target serving LUN 0 = NTFS volume, 1 = tape drive, 2 = blank LUN, with its copy manager."""
    try:
        from scsi.devices.iscsi import LibiscsiDevice  # noqa: F401 - needs libiscsi's shared library
    except (ImportError, OSError) as exc:
        pytest.skip(f"libiscsi is not available: {exc}")
    from orchestrator.volume.samples import bundled_ntfs_image
    from scsi.iscsi.harness import ThreadedTarget
    from scsi.target.build import build_target
    from scsi.target.config import parse_config

    vol = bundled_ntfs_image(tmp_path / "vol.img")
    (tmp_path / "dest.img").write_bytes(bytes(vol.stat().st_size))
    built = build_target(parse_config({"target": TARGET, "luns": [
        {"id": 0, "path": str(vol), "serial": "vol0"},
        {"id": 1, "kind": "tape", "path": str(tmp_path / "drv1.tape"), "create": True, "serial": "drv1"},
        {"id": 2, "path": str(tmp_path / "dest.img"), "serial": "dest0"}]}), with_copy_manager=True)
    target = ThreadedTarget([built.node]).start()
    urls = {"disk0": target.url(TARGET, 0), "drv1": target.url(TARGET, 1), "disk1": target.url(TARGET, 2),
            "mover": target.url(TARGET, 0)}
    (tmp_path / "dsm.opt").write_text("nodename NODE1\nenableserverfree yes\nenablelanfree yes\n"
                                      f"imagetype static\ncatalog {tmp_path / 'cat.db'}\n")
    yield tmp_path, built, urls
    target.stop()
    built.close()


def run_cli(tmp, site, *args):
    return main([*args, "--site", site, "--options", str(tmp / "dsm.opt"), "--json"])


def catalogued_location(tmp):
    from orchestrator.catalogue import Catalogue
    from orchestrator.plan.tape_position import TapeLocation

    cat = Catalogue(tmp / "cat.db")
    try:
        (obj,) = cat.query("NODE1", "E:")
        return TapeLocation.decode(obj.tape_location)
    finally:
        cat.close()


def test_server_free_backup_to_tape_and_restore_to_a_blank_lun_byte_identical(tape_target, capsys):
    tmp, built, urls = tape_target
    site = write_site(tmp, urls)
    assert run_cli(tmp, site, "backup", "image", "E:") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "server-free", report
    assert built.counters().get("xcopy.completed", 0) >= 1
    loc = catalogued_location(tmp)
    assert (loc.drive, loc.volume, loc.file_number, loc.first_object, loc.record_bytes) == \
        ("drv1", "VOL001", 0, 0, 64 * 1024)
    objs = built.luns[1].objects()  # the object's records, closed by one filemark
    assert len(objs) == loc.records + 1 and objs[-1] is None and objs.count(None) == 1
    assert all(0 < len(r) <= 64 * 1024 for r in objs[:-1])
    assert (tmp / "dest.img").read_bytes() != (tmp / "vol.img").read_bytes()
    assert run_cli(tmp, site, "restore", "image", "E:", "disk1") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "server-free", report
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()


def test_lan_free_backup_and_restore_with_a_tape_pool(tape_target, capsys):
    tmp, built, urls = tape_target
    site = write_site(tmp, urls)
    assert run_cli(tmp, site, "backup", "image", "E:", "-enableserverfree=no") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "lan-free", report
    assert built.counters().get("xcopy.completed", 0) == 0
    assert run_cli(tmp, site, "restore", "image", "E:", "disk1", "-enableserverfree=no") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "lan-free", report
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()


def test_lan_backup_and_restore_through_the_lan_pool_owning_the_drive(tape_target, capsys):
    tmp, built, urls = tape_target
    site = write_site(tmp, urls, lan_tape=urls["drv1"], pool_extra="lan_drive: drv1")
    off = ["-enableserverfree=no", "-enablelanfree=no"]
    assert run_cli(tmp, site, "backup", "image", "E:", *off) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "lan", report
    assert built.counters().get("xcopy.completed", 0) == 0
    assert run_cli(tmp, site, "restore", "image", "E:", "disk1", *off) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "lan", report
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()


BASE = """
devices: {disk0: vol.img, drv1: drv1.tape, drv2: drv2.tape}
pool:
  name: TAPEPOOL
  %s
volumes: {"E:": {device: disk0}}
"""


@pytest.mark.parametrize("pool, words", [
    ("record_size: 64k\n  volumes: [{name: V, device: drv1, capacity: 1g}]",
     ["pool.record_size", "only a tape pool", "kind: tape"]),
    ("kind: tape\n  volumes: [{name: V, device: drv1, capacity: 1g}]", ["pool.drives", "at least one drive"]),
    ("kind: tape\n  drives: [drv1]\n  lan_drive: drv2\n  volumes: [{name: V, device: drv1, capacity: 1g}]",
     ["pool.lan_drive", "'drv2'", "not one of the pool's drives"]),
    ("kind: tape\n  drives: [drv1]\n  volumes: [{name: V, device: drv2, capacity: 1g}]",
     ["pool.volumes[0].device", "'drv2'"]),
    ("kind: tape\n  drives: [drv1, drv1]\n  volumes: [{name: V, device: drv1, capacity: 1g}]",
     ["pool.drives[1]", "twice"]),
    ("kind: tape\n  drives: [drv1, drv9]\n  volumes: [{name: V, device: drv1, capacity: 1g}]",
     ["'drv9'", "not listed under devices"]),
    ("kind: tape\n  block_mode: fixed\n  drives: [drv1]\n  volumes: [{name: V, device: drv1, capacity: 1g}]",
     ["pool.block_length", "fixed"]),
    ("kind: tape\n  block_length: 512\n  drives: [drv1]\n  volumes: [{name: V, device: drv1, capacity: 1g}]",
     ["pool.block_length", "only for block_mode fixed"]),
    (("kind: tape\n  block_mode: fixed\n  block_length: 512\n  record_size: 1000\n  drives: [drv1]\n"
      "  volumes: [{name: V, device: drv1, capacity: 1g}]"), ["pool.record_size"]),
    ("kind: tape\n  record_size: 64m\n  drives: [drv1]\n  volumes: [{name: V, device: drv1, capacity: 1g}]",
     ["pool.record_size"]),
    ("kind: tape\n  record_size: lots\n  drives: [drv1]\n  volumes: [{name: V, device: drv1, capacity: 1g}]",
     ["pool.record_size", "not a size"]),
    ("kind: tape\n  block_mode: streaming\n  drives: [drv1]\n  volumes: [{name: V, device: drv1, capacity: 1g}]",
     ["pool.block_mode", "variable", "fixed"]),
    ("kind: cloud\n  volumes: [{name: V, device: drv1, capacity: 1g}]", ["pool.kind", "disk", "tape"]),
    ("kind: tape\n  drives: [{device: drv1, designator: xyz}]\n  volumes: [{name: V, device: drv1, capacity: 1g}]",
     ["pool.drives.0.designator", "hex"]),
    (("kind: tape\n  drives: [{device: drv1, designator: 6001405111}]\n"
      "  volumes: [{name: V, device: drv1, capacity: 1g}]"),
     ["pool.drives.0.designator", "in quotes"]),
])
def test_bad_tape_pool_entries_name_the_file_and_the_field(tmp_path, pool, words):
    (tmp_path / "bad.yaml").write_text(BASE % pool)
    with pytest.raises(ValueError) as info:
        load_site(tmp_path / "bad.yaml")
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'bad.yaml'}: ") and all(w in msg for w in words), msg


def test_a_good_tape_pool_becomes_the_jobs_tape_plan(tmp_path):
    (tmp_path / "ok.yaml").write_text(BASE % (
        "kind: tape\n  record_size: 32k\n  block_mode: fixed\n  block_length: 512\n"
        "  drives: [drv1, {device: drv2, designator: 'naa.6001405222222222'}]\n  lan_drive: drv2\n"
        "  volumes: [{name: V, device: drv1, capacity: 1g}]"))
    site = load_site(tmp_path / "ok.yaml")
    plan = site.pool.tape_plan()
    assert (plan.record_bytes, plan.fixed, plan.block_length, plan.drives) == (32 * 1024, True, 512,
                                                                               ["drv1", "drv2"])
    assert site.pool.drives[1].designator == "6001405222222222" and site.pool.lan_drive == "drv2"
    (tmp_path / "disk.yaml").write_text("devices: {p: p.img, d: d.img}\npool: {volumes: [{name: V, device: p, "
                                        "capacity: 1m}]}\nvolumes: {\"E:\": {device: d}}\n")
    assert load_site(tmp_path / "disk.yaml").pool.tape_plan() is None


def test_a_file_drive_that_is_not_an_emulated_tape_is_refused_through_the_cli(tmp_path, capsys):
    from orchestrator.volume.samples import bundled_ntfs_image

    bundled_ntfs_image(tmp_path / "vol.img")
    (tmp_path / "drv1.tape").write_bytes(b"not a tape file" * 100)
    (tmp_path / "site.yaml").write_text(BASE.replace(", drv2: drv2.tape", "") % (
        "kind: tape\n  drives: [drv1]\n  volumes: [{name: V, device: drv1, capacity: 1g}]"))
    (tmp_path / "dsm.opt").write_text(f"nodename NODE1\nimagetype static\ncatalog {tmp_path / 'cat.db'}\n")
    assert main(["backup", "image", "E:", "--site", str(tmp_path / "site.yaml"), "--options",
                 str(tmp_path / "dsm.opt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("serverfree: error: ") and "tape drive 'drv1'" in err, err


@pytest.fixture
def file_tape_site(tmp_path):
    """File devices served in-process: the NTFS volume, two emulated tape drives, a blank disk, an in-process mover."""
    from orchestrator.volume.samples import bundled_ntfs_image
    from scsi.luns import TapeLun

    vol = bundled_ntfs_image(tmp_path / "vol.img")
    (tmp_path / "dest.img").write_bytes(bytes(vol.stat().st_size))
    for n in ("drv1", "drv2"):
        TapeLun(n, tmp_path / f"{n}.tape", create=True).close()
    (tmp_path / "dsm.opt").write_text("nodename NODE1\nenableserverfree yes\nenablelanfree yes\n"
                                      f"imagetype static\ncatalog {tmp_path / 'cat.db'}\n")

    gone = "lan_pool: {tapes: {drv1: gone.tape, drv2: gone.tape}}"  # a LAN path whose drives cannot be opened

    def site(pool: str, lan: str = gone) -> str:
        (tmp_path / "site.yaml").write_text(lan + textwrap.dedent("""
            verified_without_topology: true
            devices: {disk0: vol.img, drv1: drv1.tape, drv2: drv2.tape, disk1: dest.img}
            movers: {DM1: inprocess}
            pool:
              name: TAPEPOOL
              kind: tape
              volumes: [{name: VOL001, device: drv1, capacity: 1g}]
        """) + textwrap.indent(textwrap.dedent(pool), "  ") + 'volumes: {"E:": {device: disk0}}\n')
        return str(tmp_path / "site.yaml")
    return tmp_path, site


def test_fixed_block_tape_pool_on_emulated_tape_files_with_the_in_process_mover(file_tape_site, capsys):
    from scsi.luns import TapeLun

    tmp, make = file_tape_site
    site = make("record_size: 32k\nblock_mode: fixed\nblock_length: 512\ndrives: [drv1, drv2]\n")
    assert run_cli(tmp, site, "backup", "image", "E:") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "server-free", report
    loc = catalogued_location(tmp)
    assert (loc.drive, loc.fixed, loc.block_length, loc.record_bytes) == ("drv1", True, 512, 32 * 1024)
    tape = TapeLun("check", tmp / "drv1.tape", read_only=True)
    try:
        objs = tape.objects()
    finally:
        tape.close()
    assert len(objs) == loc.records + 1 and objs[-1] is None
    assert run_cli(tmp, site, "restore", "image", "E:", "disk1") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "server-free", report
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()


def test_a_lan_restore_of_an_image_on_a_drive_the_lan_path_does_not_reach_is_refused_up_front(
        file_tape_site, capsys):
    tmp, make = file_tape_site
    site = make("drives: [drv1, drv2]\nlan_drive: drv2\n")
    assert run_cli(tmp, site, "backup", "image", "E:") == 0
    assert json.loads(capsys.readouterr().out)["path_used"] == "server-free"
    assert run_cli(tmp, site, "restore", "image", "E:", "disk1", "-enableserverfree=no", "-enablelanfree=no") == 2
    err = capsys.readouterr().err
    assert "site.yaml: pool.lan_drive" in err and "'drv2'" in err and "drive drv1" in err, err
    assert not any((tmp / "dest.img").read_bytes())


def test_a_fixed_block_pool_takes_no_lan_free_path_and_says_why(file_tape_site, capsys):
    tmp, make = file_tape_site
    fixed = "record_size: 32k\nblock_mode: fixed\nblock_length: 512\ndrives: [drv1]\n"
    site = make(fixed, lan="")
    assert run_cli(tmp, site, "backup", "image", "E:", "-enableserverfree=no") == 2
    err = capsys.readouterr().err
    assert "fixed-block tape pool has no LAN-free path" in err and "no LAN path is configured" in err, err
    site = make(fixed, lan="lan_pool: {tapes: {drv1: gone.tape}}")  # a LAN path whose drive cannot be opened: the job starts on the LAN path, not LAN-free
    assert run_cli(tmp, site, "backup", "image", "E:", "-enableserverfree=no") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["start_path"] == "lan" and report["outcome"] == "failed", report
    assert any("fixed-block tape pool has no LAN-free path" in r for r in report["reasons"])
    assert "gone.tape" in report["message"]


def test_a_lan_backup_needs_a_pool_volume_in_the_lan_drive(file_tape_site, capsys):
    tmp, make = file_tape_site
    site = make("drives: [drv1, drv2]\nlan_drive: drv2\n")
    assert run_cli(tmp, site, "backup", "image", "E:", "-enableserverfree=no", "-enablelanfree=no") == 2
    err = capsys.readouterr().err
    assert "site.yaml: pool.lan_drive" in err and "every pool volume is in drive drv1" in err, err
