"""The target against real initiators: libiscsi's tools and conformance suite, qemu-img.

The target runs in this process on a background event loop (free port chosen
by the OS) and is stopped by cancelling the server at teardown.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from scsi.iscsi.harness import ThreadedTarget
from scsi.target.build import build_target
from scsi.target.config import parse_config

OPEN = "iqn.2026-11.org.serverfree:dm-open"
CHAP = "iqn.2026-11.org.serverfree:dm-chap"
MUTUAL = "iqn.2026-11.org.serverfree:dm-mutual"
SIZE = 32 * 1024 * 1024

needs = pytest.mark.skipif(shutil.which("iscsi-inq") is None, reason="libiscsi-bin (iscsi-inq) is not installed")


def _sparse(path, size=SIZE):
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    d = tmp_path_factory.mktemp("luns")
    builts = [
        build_target(parse_config({"target": OPEN, "luns": [{"id": 0, "path": _sparse(d / "a.img")},
                                                            {"id": 1, "path": _sparse(d / "b.img")}]}),
                     with_copy_manager=True),
        build_target(parse_config({"target": CHAP, "chap": {"username": "alice", "secret": "alicesecret12"},
                                   "luns": [{"id": 0, "path": _sparse(d / "c.img", 1 << 20)}]})),
        build_target(parse_config({"target": MUTUAL, "chap": {
            "username": "bob", "secret": "bobsecret1234", "mutual_username": "dm", "mutual_secret": "dmsecret12345"},
            "luns": [{"id": 0, "path": _sparse(d / "m.img", 1 << 20)}]})),
    ]
    t = ThreadedTarget([b.node for b in builts]).start()
    t.dir = d
    t.built = builts[0]
    yield t
    t.stop()
    for b in builts:
        b.close()


def _run(*cmd, timeout=240, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout, env=env)


@needs
def test_sendtargets_discovery_with_iscsi_ls(target):
    out = _run("iscsi-ls", f"iscsi://127.0.0.1:{target.port}").stdout
    for name in (OPEN, CHAP, MUTUAL):
        assert f"Target:{name} Portal:127.0.0.1:{target.port},1" in out


@needs
def test_iscsi_inq_standard_and_device_identification(target):
    r = _run("iscsi-inq", target.url(OPEN, 0))
    assert r.returncode == 0, r.stderr
    assert "Peripheral Device Type:DIRECT_ACCESS" in r.stdout and "SPC-4" in r.stdout and "SBC-3" in r.stdout
    r = _run("iscsi-inq", "-e", "1", "-c", "131", target.url(OPEN, 1))  # VPD 83h (popt wants decimal)
    assert r.returncode == 0, r.stderr
    assert "Designator Type:(3) NAA" in r.stdout and "LOGICAL_UNIT" in r.stdout
    r = _run("iscsi-readcapacity16", target.url(OPEN, 1))
    assert f"Total size:{SIZE}" in r.stdout


@needs
@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
def test_qemu_img_convert_into_and_out_of_a_lun_is_byte_identical(target, tmp_path):
    src = tmp_path / "src.raw"
    payload = os.urandom(SIZE // 2) + bytes(SIZE // 4) + os.urandom(SIZE // 4)
    src.write_bytes(payload)
    r = _run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(src), target.url(OPEN, 1))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out.raw"
    r = _run("qemu-img", "convert", "-f", "raw", "-O", "raw", target.url(OPEN, 1), str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == payload


@needs
@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
def test_qemu_img_copy_offload_goes_through_extended_copy(target, tmp_path):
    src = tmp_path / "src.raw"
    payload = os.urandom(SIZE)  # no zero runs: qemu would write those itself instead of copying
    src.write_bytes(payload)
    assert _run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(src), target.url(OPEN, 0)).returncode == 0
    before = target.built.counters()
    r = _run("qemu-img", "convert", "-C", "-n", "-f", "raw", "-O", "raw", target.url(OPEN, 0), target.url(OPEN, 1))
    assert r.returncode == 0, r.stderr
    after = target.built.counters()
    assert after["xcopy.completed"] > before.get("xcopy.completed", 0)
    assert after["xcopy.bytes"] - before.get("xcopy.bytes", 0) >= len(payload)
    assert after.get("lun1.write_bytes", 0) == before.get("lun1.write_bytes", 0)  # no WRITE went to LUN 1
    out = tmp_path / "out.raw"
    assert _run("qemu-img", "convert", "-f", "raw", "-O", "raw", target.url(OPEN, 1), str(out)).returncode == 0
    assert out.read_bytes() == payload


@needs
def test_two_sessions_at_once_with_qemu_img(target, tmp_path):
    procs, payloads = [], []
    for lun in (0, 1):
        src = tmp_path / f"s{lun}.raw"
        payloads.append(os.urandom(4 * 1024 * 1024))
        src.write_bytes(payloads[-1])
        procs.append(subprocess.Popen(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(src),
                                       target.url(OPEN, lun)], stderr=subprocess.PIPE))
    try:
        for p in procs:
            assert p.wait(timeout=120) == 0, p.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for lun, payload in zip((0, 1), payloads):
        out = tmp_path / f"o{lun}.raw"
        assert _run("qemu-img", "convert", "-f", "raw", "-O", "raw", target.url(OPEN, lun), str(out)).returncode == 0
        assert out.read_bytes()[:len(payload)] == payload


@needs
def test_chap_one_way_good_and_bad_secret(target):
    host = f"127.0.0.1:{target.port}"
    good = _run("iscsi-inq", f"iscsi://alice%alicesecret12@{host}/{CHAP}/0")
    assert good.returncode == 0 and "DIRECT_ACCESS" in good.stdout, good.stderr
    bad = _run("iscsi-inq", f"iscsi://alice%wrongsecret1@{host}/{CHAP}/0")
    assert bad.returncode != 0 and "DIRECT_ACCESS" not in bad.stdout
    none = _run("iscsi-inq", f"iscsi://{host}/{CHAP}/0")
    assert none.returncode != 0


@needs
def test_chap_mutual_good_and_bad_target_secret(target):
    host = f"127.0.0.1:{target.port}"
    good = _run("iscsi-inq", f"iscsi://bob%bobsecret1234@{host}/{MUTUAL}/0?target_user=dm&target_password=dmsecret12345")
    assert good.returncode == 0 and "DIRECT_ACCESS" in good.stdout, good.stderr
    bad = _run("iscsi-inq", f"iscsi://bob%bobsecret1234@{host}/{MUTUAL}/0?target_user=dm&target_password=notthetarget")
    assert bad.returncode != 0
