"""When no path is left, the message names the real cause, not 'no verified ... path'."""
from __future__ import annotations

import pytest

from orchestrator.eligibility import NoPathError, decide
from topology.report import Route, VolumeVerdict


def healthy_but_not_server_free():
    route = Route(array_port="a", mover_in="b", mover="DM1", mover_out="c", device_port="d", device="T1")
    return VolumeVerdict(volume="v", client="C1", mount="E:", filesystem="ntfs", lun="L1", server_free=True,
                         lan_free=True, lan=True, path=None, route=route, reasons={})


def no_path_message(**kw) -> str:
    with pytest.raises(NoPathError) as exc:
        decide(enableserverfree=False, file_system="ntfs", **kw)
    return str(exc.value)


def test_enablelanfree_no_and_missing_lan_path_are_named():
    msg = no_path_message(verdict=healthy_but_not_server_free(), enablelanfree=False, lan_available=False)
    assert "LAN-free: enablelanfree is no" in msg
    assert "LAN: no LAN path is configured" in msg
    assert "no verified" not in msg


def test_without_topology_both_causes_are_given():
    msg = no_path_message(verdict=None, enablelanfree=True, lan_available=False)
    assert "LAN-free: no SAN topology was given" in msg
    assert "LAN: no LAN path is configured" in msg


def test_cli_names_the_missing_lan_path(tmp_path, capsys):
    from orchestrator.cli import main
    from orchestrator.volume.samples import bundled_ntfs_image

    bundled_ntfs_image(tmp_path / "e.img")
    (tmp_path / "pool.img").write_bytes(bytes(1 << 20))
    (tmp_path / "site.yaml").write_text(
        "devices: {disk0: e.img, pool0: pool.img}\n"
        "pool: {volumes: [{name: VOL1, device: pool0, capacity: 1048576}]}\n"
        "volumes: {'E:': {device: disk0}}\n")
    assert main(["backup", "image", "E:", "--site", str(tmp_path / "site.yaml"),
                 f"-catalog={tmp_path / 'cat.db'}", "-nodename=N1"]) == 2
    err = capsys.readouterr().err
    assert "LAN-free: enablelanfree is no" in err and "LAN: no LAN path is configured" in err
