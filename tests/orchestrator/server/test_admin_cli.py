"""`serverfree server` as its own process and `serverfree admin` in dsmadmc spelling against it."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SERVERFREE = str(Path(sys.executable).parent / "serverfree")

PW = "admin-secret-1"


@pytest.fixture
def server_process(tmp_path):
    env = {**os.environ, "SERVERFREE_ADMIN_PASSWORD": PW}
    proc = subprocess.Popen([SERVERFREE, "server", "--data", str(tmp_path / "d"),
                             "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening 127.0.0.1:"), line + proc.stderr.read()
        yield line.split(":")[-1].strip(), tmp_path
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


def admin(port: str, *words: str, password: str | None = PW, env_password: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != "SERVERFREE_PASSWORD"}
    if env_password:
        env["SERVERFREE_PASSWORD"] = env_password
    argv = [SERVERFREE, "admin", "-id=admin", "-tcpserveraddress=127.0.0.1",
            f"-tcpport={port}", *([f"-password={password}"] if password else []), *words]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


def test_macro_file_defines_and_queries(server_process):
    port, tmp = server_process
    macro = tmp / "setup.mac"
    macro.write_text("/* nodes and the SAN */\n"
                     "REGister NOde CLIENT1 client1-secret DOmain=STANDARD\n"
                     "DEFine DATAMover DM1 Type=SCSI WWN=21:00:00:e0:8b:05:05:04 -\n"
                     "   DATAFormat=NONBlock\n"
                     "SET SERVERFree BATCHSize=120\n")
    r = admin(port, "macro", str(macro), password=None, env_password=PW)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ANR2060I Node CLIENT1 registered" in r.stdout and "DATAMOVER DM1 defined" in r.stdout
    r = admin(port, "q datam")
    assert r.returncode == 0 and "DM1" in r.stdout and "NONBlock" in r.stdout
    r = admin(port, "query status")
    assert "120 MB" in r.stdout
    r = admin(port, "query node")
    assert "CLIENT1" in r.stdout


def test_refused_commands_and_bad_logins_have_their_exit_status(server_process):
    port, _ = server_process
    r = admin(port, "define datamover DM9 type=nas hladdress=x")
    assert r.returncode == 1 and "TYPE=NAS is not supported" in r.stdout
    r = admin(port, "register node X short")
    assert r.returncode == 1 and "at least 8" in r.stdout
    r = admin(port, "frobnicate x")
    assert r.returncode == 1 and "ANR2000E Unknown command - FROBNICATE." in r.stdout, r.stdout
    r = admin(port, "query actlog begintime=garbage")
    assert r.returncode == 1 and "ANR2022E QUERY ACTLOG: parameter BEGINTIME= is not known here" in r.stdout, r.stdout
    r = admin(port, "q node f=d")  # dsmadmc habit: accepted
    assert r.returncode in (0, 1) and "ANR2022E" not in r.stdout, r.stdout
    r = admin(port, "q node f=x")
    assert r.returncode == 1 and "FORMAT is STANDARD or DETAILED" in r.stdout, r.stdout
    r = admin(port, "query node", password="wrong-password")
    assert r.returncode == 2 and "authentication failed" in r.stderr and "Traceback" not in r.stderr
    r = admin(port, "query actlog search=refused")
    assert "ANR0424W" in r.stdout
    with socket.socket() as s:  # a port nothing listens on: no session, exit 2, one line
        s.bind(("127.0.0.1", 0))
        closed = str(s.getsockname()[1])
    r = admin(closed, "query node")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot reach the server" in r.stderr, r.stderr


def test_a_volume_the_server_cannot_create_is_refused_and_the_session_goes_on(server_process):
    port, tmp = server_process
    macro = tmp / "vol.mac"
    macro.write_text("define devclass F devtype=file\ndefine stgpool P F\n"
                     f"define volume P {tmp / 'no-such-dir' / 'v.img'} capacity=1m\n"
                     "define mgmtclass STANDARD STANDARD destination=P\n")
    r = admin(port, "macro", str(macro))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "ANR2020E DEFINE VOLUME" in r.stdout and "No such file or directory" in r.stdout
    assert "ANR1520I Management class STANDARD defined" in r.stdout.split("ANR2020E")[1]  # the same session
    assert "ANR1519W" not in r.stdout  # P is a defined storage pool
    r = admin(port, "query stgpool P")
    assert "DEVCLASS=F" in r.stdout, r.stdout  # the device class named after the pool's name is shown


def test_a_class_whose_destination_is_not_a_pool_is_defined_with_a_warning(server_process):
    port, _ = server_process
    r = admin(port, "define mgmtclass STANDARD STANDARD destination=NOSUCHPOOL")
    assert r.returncode == 0 and "ANR1520I" in r.stdout, r.stdout + r.stderr
    assert "ANR1519W Destination NOSUCHPOOL is not a defined storage pool" in r.stdout


def test_interactive_prompt(server_process):
    port, _ = server_process
    argv = [SERVERFREE, "admin", "-id=admin", f"-password={PW}",
            "-tcpserveraddress=127.0.0.1", f"-tcpport={port}"]
    r = subprocess.run(argv, input="register node N2 n2-secret-xx\nquery node\nquit\n", capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "ANR2060I" in r.stdout and "N2" in r.stdout.split("ANR2060I")[1]
