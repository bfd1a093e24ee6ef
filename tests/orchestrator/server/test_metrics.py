"""Prometheus metrics of the server and the data mover, scraped over HTTP."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from orchestrator.ops import StoredPiece
from orchestrator.server.app import open_server
from orchestrator.server.client import ServerRefused
from orchestrator.server.node_client import NodeSession
from tests.fixtures.backup_server import ADMIN_PW, admin, hostport, with_pool


def scrape(address: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def settled(address: str, key: str, want: float) -> dict[str, float]:
    """Scrape until ``key`` reads ``want`` (a session's end is counted by the server thread a moment later)."""
    deadline = time.monotonic() + 10
    while True:
        m = scrape(address)
        if m.get(key) == want or time.monotonic() > deadline:
            return m
        time.sleep(0.05)


def test_server_metrics(tmp_path):
    srv = open_server(tmp_path / "srv", admin_password=ADMIN_PW, metrics_port=0).start()
    try:
        with admin(srv) as a:
            assert a.command("register node NODEA node-a-secret")[0]
        with_pool(srv, tmp_path, "4m")
        before = settled(srv.metrics.address, 'serverfree_server_sessions{role="admin"}', 0)
        assert before['serverfree_server_sessions{role="admin"}'] == 0
        with NodeSession(*hostport(srv), "NODEA", "node-a-secret") as n:
            assert scrape(srv.metrics.address)['serverfree_server_sessions{role="node"}'] == 1
            g = n.begin("E:", 12288, 12288)
            n.put(g["object_id"], 0, 12288, b"z" * 12288)
            n.commit(g["object_id"], [StoredPiece(0, 0, 12288)], failovers=["lost-connection"])
            n.get(g["object_id"], 0, 4096)
        with pytest.raises(ServerRefused):
            NodeSession(*hostport(srv), "NODEA", "wrong-password")
        m = settled(srv.metrics.address, 'serverfree_server_sessions{role="node"}', 0)
        assert m['serverfree_server_bytes_total{path="lan"}'] == 12288
        assert m['serverfree_server_bytes_total{path="lan-restore"}'] == 4096
        assert m['serverfree_server_objects_total{outcome="committed"}'] == 1
        assert m['serverfree_failovers_total{reason="lost-connection"}'] == 1
        assert m['serverfree_server_refusals_total{msgno="ANR0424W"}'] == 1
        assert m['serverfree_server_request_seconds_count{request="put"}'] == 1
        assert m['serverfree_server_sessions{role="node"}'] == 0
    finally:
        srv.close()


def test_server_metrics_over_tls_with_the_server_certificate(tmp_path):
    import ssl

    from orchestrator.server.tls import fingerprint_of_der

    srv = open_server(tmp_path / "srv", admin_password=ADMIN_PW, metrics_port=0, tls=True).start()
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        host, port = srv.metrics.address.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
            assert fingerprint_of_der(tls.getpeercert(binary_form=True)) == srv.tls_fingerprint
            tls.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            body = b""
            while chunk := tls.recv(65536):
                body += chunk
        assert b"serverfree_server_sessions" in body
        with pytest.raises(Exception):
            scrape(srv.metrics.address)  # plain HTTP is not served
    finally:
        srv.close()


@pytest.mark.skipif(shutil.which("iscsi-inq") is None, reason="libiscsi-bin (iscsi-inq) not installed")
def test_mover_metrics(tmp_path):
    lun = tmp_path / "lun0.img"
    lun.write_bytes(bytes(1 << 20))
    exe = str(Path(sys.executable).parent / "serverfree")
    iqn = "iqn.2026-12.test:metrics"
    proc = subprocess.Popen([exe, "datamover", "serve", "--portal", "127.0.0.1:0", "--iqn", iqn, "--lun", str(lun),
                             "--metrics-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        metrics = next(re.search(r"metrics on (\S+)", x).group(1) for x in lines if "metrics on" in x)
        portal = next(re.search(r" on (127\.0\.0\.1:\d+)$", x.strip()).group(1) for x in lines if "serving" in x)
        before = scrape(metrics)
        r = subprocess.run(["iscsi-inq", f"iscsi://{portal}/{iqn}/0"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        after = scrape(metrics)
        changed = [k for k in after if after[k] > before.get(k, 0)]
        assert changed and all(k.startswith("serverfree_mover_") for k in after if not k.startswith(("python_",
                                                                                                      "process_")))
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(15)
