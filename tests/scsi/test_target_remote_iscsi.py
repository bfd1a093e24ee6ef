"""`serverfree datamover serve --config` reaching tgtd's LUNs over iSCSI as an initiator.

A private tgtd serves a source and a destination LUN; the mover (a real
subprocess, stopped by PID) serves one small local LUN and lists both tgtd
LUNs in its ``remote:`` section.  An EXTENDED COPY sent over iSCSI to the
mover's LUN 0 names the tgtd LUNs by their own VPD 83h designators; the data
moves tgtd -> mover -> tgtd.  An initiator whose ACL entry does not list a
remote device gets COPY TARGET DEVICE NOT REACHABLE.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pyscsi.pyscsi.scsi import SCSI

from scsi.commands import copy_status, extended_copy, sense_from_exception
from scsi.designators import cscd_for_device
from scsi.xcopy import BlockToBlock, Header, ParameterList

MOVER = "iqn.2026-11.org.serverfree:dm-remote"
ALLOWED = "iqn.2026-11.org.serverfree:allowed"
MASKED = "iqn.2026-11.org.serverfree:masked"
SIZE = 4 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serverfree(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from orchestrator.cli import main; sys.exit(main())", *args]


def _device(url: str, initiator: str):
    from scsi.devices import LibiscsiDevice

    return LibiscsiDevice(url, initiator_iqn=initiator, timeout=60)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def san(tgtd, tmp_path_factory):
    """tgtd target with LUN 1 (source, random bytes) and LUN 2 (destination, zeros)."""
    target = tgtd.new_target("remote-src-dst", {1: SIZE, 2: SIZE})
    payload = os.urandom(SIZE)
    target.luns[1].write_bytes(payload)
    yield target, payload
    target.delete()


def _designator_of(url: str) -> str:
    dev = _device(url, ALLOWED)
    try:
        return cscd_for_device(SCSI(dev)).designator
    finally:
        dev.close()


@pytest.fixture(scope="module")
def mover(san, tmp_path_factory):
    """The product's mover process reaching both tgtd LUNs; yields its LUN 0 URL."""
    target, _ = san
    work = tmp_path_factory.mktemp("mover")
    gateway = work / "gateway.img"
    with open(gateway, "wb") as f:
        f.truncate(1 << 20)
    port = _free_port()
    cfg = {
        "portal": f"127.0.0.1:{port}", "target": MOVER,
        "luns": [{"id": 0, "path": "gateway.img", "serial": "GATEWAY1"}],
        "remote": [
            {"name": "client", "url": target.url(1), "designator": _designator_of(target.url(1)), "sessions": 2},
            {"name": "pool", "url": target.url(2), "sessions": 2},
        ],
        "acl": [{"initiator": ALLOWED, "luns": [0], "remote": ["client", "pool"]},
                {"initiator": MASKED, "luns": [0], "remote": ["client"]}],
        "limits": {"chunk_bytes": 256 << 10, "io_depth": 4},
    }
    path = work / "mover.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log_path = work / "mover.log"
    with open(log_path, "w") as log_file:  # a file, not a pipe: a full pipe would stall the mover
        proc = subprocess.Popen(_serverfree("-v", "datamover", "serve", "--config", str(path)),
                                stdout=subprocess.PIPE, stderr=log_file, text=True)
    try:
        line = proc.stdout.readline()
        if "reaching 2 remote device(s)" not in line:
            _stop(proc)
            pytest.fail(f"mover did not start: {line!r} {log_path.read_text()}")
        yield f"iscsi://127.0.0.1:{port}/{MOVER}/0", log_path
    finally:
        _stop(proc)


def _plist(mover_scsi_url: str, src_url: str, dst_url: str, initiator: str, list_id: int) -> ParameterList:
    """A list naming the tgtd LUNs by the designators *they* report (read with the initiator's own session)."""
    cscds = []
    for url in (src_url, dst_url):
        dev = _device(url, initiator)
        try:
            cscds.append(cscd_for_device(SCSI(dev)))
        finally:
            dev.close()
    blocks = SIZE // 512
    segs = tuple(BlockToBlock(src=0, dst=1, block_count=min(2048, blocks - lba), src_lba=lba, dst_lba=lba)
                 for lba in range(0, blocks, 2048))
    return ParameterList(header=Header(list_id=list_id), cscds=tuple(cscds), segments=segs)


def test_extended_copy_over_iscsi_moves_tgtd_lun_to_tgtd_lun(san, mover):
    target, payload = san
    url, log_path = mover
    dst_path: Path = target.luns[2]
    assert dst_path.read_bytes() != payload
    pl = _plist(url, target.url(1), target.url(2), ALLOWED, list_id=7)
    dev = _device(url, ALLOWED)
    try:
        scsi = SCSI(dev)
        extended_copy(scsi, pl)
        st = copy_status(scsi, 7)
    finally:
        dev.close()
    assert st.bytes_transferred * (1 << (10 * int(st.transfer_count_units))) == SIZE
    assert dst_path.read_bytes() == payload
    logged = log_path.read_text()
    assert f"EXTENDED COPY list id 7 from {ALLOWED}" in logged, logged  # each copy is logged


def test_initiator_not_allowed_to_reach_a_remote_device_is_refused(san, mover):
    target, _ = san
    url, log_path = mover
    before = target.luns[2].read_bytes()
    pl = _plist(url, target.url(1), target.url(2), MASKED, list_id=8)
    dev = _device(url, MASKED)
    try:
        with pytest.raises(Exception) as info:
            extended_copy(SCSI(dev), pl)
    finally:
        dev.close()
    sense = sense_from_exception(info.value)
    assert sense is not None, info.value
    assert (int(sense.key), sense.asc, sense.ascq) == (0x0A, 0x0D, 0x02)  # COPY ABORTED, NOT REACHABLE
    assert target.luns[2].read_bytes() == before
    assert f"initiator {MASKED}" in log_path.read_text() and "may not reach" in log_path.read_text()


def _run_config(tmp_path: Path, remote: list[dict], acl: list[dict] | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "gw.img").write_bytes(bytes(1 << 20))
    cfg = {"portal": f"127.0.0.1:{_free_port()}", "target": MOVER, "luns": [{"id": 0, "path": "gw.img"}],
           "remote": remote}
    if acl is not None:
        cfg["acl"] = acl
    path = tmp_path / "mover.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run(_serverfree("datamover", "serve", "--config", str(path)), check=False, capture_output=True,
                          text=True, timeout=120)


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "serving" not in r.stdout  # nothing listened
    lines = [l for l in r.stderr.splitlines() if l.startswith("serverfree: error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_designator_mismatch_is_a_clear_error_before_listening(san, tmp_path):
    target, _ = san
    wrong = "60000000000000000000000000000001"
    line = _one_error_line(_run_config(tmp_path, [{"name": "client", "url": target.url(1), "designator": wrong}]))
    assert "remote client" in line and f"expected NAA designator {wrong}" in line


def test_unreachable_url_is_a_clear_error_before_listening(tmp_path):
    url = f"iscsi://127.0.0.1:{_free_port()}/iqn.2026-11.org.serverfree:nobody/1"
    line = _one_error_line(_run_config(tmp_path, [{"name": "pool", "url": url, "timeout": 5}]))
    assert "remote pool" in line and "cannot be reached" in line


def test_unknown_remote_in_acl_is_a_clear_error(tmp_path):
    url = f"iscsi://127.0.0.1:{_free_port()}/iqn.2026-11.org.serverfree:nobody/1"
    line = _one_error_line(_run_config(tmp_path, [{"name": "pool", "url": url}],
                                       [{"initiator": ALLOWED, "luns": [0], "remote": ["pool", "tape9"]}]))
    assert "acl.0" in line and "tape9" in line


def test_remote_device_behind_chap_is_reached_with_its_account_and_refused_without(tgtd, gateway_cfg):
    from scsi.target.build import open_remote
    from scsi.target.config import parse_config

    target = tgtd.new_target("remote-chap", {1: "1M"})
    try:
        target.require_chap("dmremote", "dmremotesecret12")
        good = {"name": "vault", "url": target.url(1), "timeout": 10,
                "chap": {"username": "dmremote", "secret": "dmremotesecret12"}}
        bad = {**good, "chap": {"username": "dmremote", "secret": "wrongsecret1234"}}
        lun = open_remote(parse_config({**gateway_cfg, "remote": [good]}).remote[0])
        try:
            assert lun.num_blocks == (1 << 20) // 512
        finally:
            lun.close()
        with pytest.raises(ValueError) as info:
            open_remote(parse_config({**gateway_cfg, "remote": [bad]}).remote[0])
        assert "remote vault" in str(info.value) and "cannot be reached" in str(info.value)
        assert "wrongsecret1234" not in str(info.value)
    finally:
        target.delete()


@pytest.fixture
def gateway_cfg(tmp_path):
    (tmp_path / "gw.img").write_bytes(bytes(1 << 20))
    return {"target": MOVER, "luns": [{"id": 0, "path": str(tmp_path / "gw.img")}]}


def test_quick_mode_reach_logs_in_before_listening(san, tmp_path):
    target, _ = san
    gw = tmp_path / "gw.img"
    gw.write_bytes(bytes(1 << 20))
    port = _free_port()
    with open(tmp_path / "mover.log", "w") as log_file:
        proc = subprocess.Popen(_serverfree("-v", "datamover", "serve", "--portal", f"127.0.0.1:{port}", "--iqn",
                                            MOVER, "--lun", str(gw), "--reach", target.url(2)),
                                stdout=subprocess.PIPE, stderr=log_file, text=True)
    try:
        line = proc.stdout.readline()
        assert f"reaching 1 remote device(s) on 127.0.0.1:{port}" in line, (tmp_path / "mover.log").read_text()
    finally:
        _stop(proc)
    assert proc.returncode == 0
    assert f"remote remote0 ({target.url(2)}): reached" in (tmp_path / "mover.log").read_text()
