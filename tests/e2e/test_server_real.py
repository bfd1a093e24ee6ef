"""The SAN lab through `serverfree server`: the server initiates EXTENDED COPY to our mover over iSCSI.

tgtd serves the client disk, the pool and the restore LUN; the data mover
reaches them as remote devices; `serverfree server` (its own process) owns the
pool volume (the pool LUN's backing file) and the catalogue and commands the
mover; the client commands run with a site file that has no pool.  Judged by
ntfs-3g's tools on the restored LUN and by the mover's own copy counters.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.server.client import ServerSession
from tests.fixtures.lab_server import designator
from tests.fixtures.sanlab import CLIENT_LUN, POOL_LUN, RESTORE_LUN
from tests.fixtures.sanlab_volume import judge

ADMIN_PW, NODE_PW = "lab-admin-secret", "lab-node-secret"
SERVERFREE = str(Path(sys.executable).parent / "serverfree")


def start_server(sanlab, data: Path) -> tuple[subprocess.Popen, int]:
    """`serverfree server` with its own --data, the lab's mover as DM1, and the lab's pool, node, policy, mover,
    disk and path defined by the administrator."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([SERVERFREE, "server", "--data", str(data), "--listen", f"127.0.0.1:{port}",
                             "--mover", f"DM1={sanlab.mover_url}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "SERVERFREE_ADMIN_PASSWORD": ADMIN_PW})
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening"), line + proc.stderr.read()
        with ServerSession("127.0.0.1", port, role="admin", name="admin", password=ADMIN_PW) as a:
            for c in [f"register node LABNODE {NODE_PW}", "define devclass FILECLASS devtype=file",
                      "define stgpool POOL1 FILECLASS dataformat=nonblock",
                      f"define volume POOL1 {sanlab.pool_img} designator={designator(sanlab.url(POOL_LUN))}",
                      "define mgmtclass STANDARD STANDARD destination=POOL1",
                      "define datamover DM1 type=scsi wwn=21:00:00:e0:8b:05:05:04 dataformat=nonblock",
                      f"define disk LABNODE DISK1 wwn={designator(sanlab.url(CLIENT_LUN))}",
                      "define path DM1 DISK1 srctype=datamover desttype=disk node=LABNODE lun=1"]:
                ok, out = a.command(c)
                assert ok, f"{c}: {out}"
    except BaseException:
        stop(proc)
        raise
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(15)
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            f.close()


@pytest.fixture(scope="module")
def server(sanlab, tmp_path_factory):
    data = tmp_path_factory.mktemp("server")
    proc, port = start_server(sanlab, data)
    try:
        yield port, data
    finally:
        stop(proc)


def test_server_free_backup_and_restore_commanded_by_the_server(sanlab, server, tmp_path, capsys):
    port, _ = server
    (tmp_path / "site.yaml").write_text(textwrap.dedent(f"""
        devices: {{disk0: "{sanlab.url(CLIENT_LUN)}", rest: "{sanlab.url(RESTORE_LUN)}"}}
        volumes: {{"E:": {{device: disk0}}}}
    """))
    (tmp_path / "dsm.opt").write_text(f"nodename LABNODE\nenableserverfree yes\nimagetype static\n"
                                      f"tcpserveraddress 127.0.0.1\ntcpport {port}\npassword {NODE_PW}\n")
    opts = ["--options", str(tmp_path / "dsm.opt"), "--site", str(tmp_path / "site.yaml"), "--json"]
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "server-free", report
    sanlab.blank_restore_lun()
    assert main(["restore", "image", "E:", "rest", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "server-free", report
    assert judge(sanlab.restore_img, sanlab.volume.files) == []


def test_the_failover_ladder_through_the_server_on_the_lab(sanlab, tmp_path, capsys):
    """The mover aborts the server's copy (its own fault injection): the client moves the image LAN-free to the
    pool LUN on tgtd (its storage-agent map); a client without that map restores it over the LAN through the
    server.  Judged by ntfs-3g's tools on the restored LUN, and by the mover's log that the fault fired."""
    sanlab.start_mover(["copy-aborted=0D/02@bytes=2M"])
    proc, port = start_server(sanlab, tmp_path / "server")
    try:
        devices = f'disk0: "{sanlab.url(CLIENT_LUN)}", rest: "{sanlab.url(RESTORE_LUN)}", pool: "{sanlab.url(POOL_LUN)}"'
        (tmp_path / "site.yaml").write_text(f'devices: {{{devices}}}\nvolumes: {{"E:": {{device: disk0}}}}\n'
                                            f'storage_agent: {{"{sanlab.pool_img}": pool}}\n')
        (tmp_path / "site-lan.yaml").write_text(f'devices: {{{devices}}}\nvolumes: {{"E:": {{device: disk0}}}}\n')
        (tmp_path / "dsm.opt").write_text(f"nodename LABNODE\nenableserverfree yes\nenablelanfree yes\n"
                                          f"imagetype static\ntcpserveraddress 127.0.0.1\ntcpport {port}\n"
                                          f"password {NODE_PW}\n")
        opts = ["--options", str(tmp_path / "dsm.opt"), "--json"]
        assert main(["backup", "image", "E:", *opts, "--site", str(tmp_path / "site.yaml")]) == 0, \
            capsys.readouterr()
        report = json.loads(capsys.readouterr().out)
        assert report["outcome"] == "completed" and report["path_used"].endswith("lan-free"), report
        ladder = [(f["from_path"], f["to_path"]) for f in report["failovers"]] or \
            [("server-free", "lan-free") for r in report["reasons"] if "through the backup server" in r]
        assert ladder == [("server-free", "lan-free")], report
        assert "COPY ABORTED" in json.dumps(report), report
        assert "fault injected: copy-aborted=0D/02@bytes=2M" in (sanlab.workdir / "mover.log").read_text()
        sanlab.blank_restore_lun()
        assert main(["restore", "image", "E:", "rest", *opts, "-enableserverfree=no",
                     "--site", str(tmp_path / "site-lan.yaml")]) == 0, capsys.readouterr()
        report = json.loads(capsys.readouterr().out)
        assert report["outcome"] == "completed" and report["path_used"] == "lan", report
        assert judge(sanlab.restore_img, sanlab.volume.files) == []
    finally:
        stop(proc)
        sanlab.start_mover()
