"""`serverfree datamover serve` as a real process: starts, serves, stops on SIGTERM by PID."""
from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading

import pytest

IQN = "iqn.2026-11.org.serverfree:cli"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serverfree(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from orchestrator.cli import main; sys.exit(main())", *args]


@pytest.fixture
def images(tmp_path):
    paths = []
    for name in ("a.img", "b.img"):
        with open(tmp_path / name, "wb") as f:
            f.truncate(4 << 20)
        paths.append(str(tmp_path / name))
    return paths


@pytest.mark.skipif(shutil.which("iscsi-ls") is None, reason="libiscsi-bin (iscsi-ls) is not installed")
def test_quick_mode_serves_luns_and_stops_on_sigterm(images):
    port = _free_port()
    proc = subprocess.Popen(_serverfree("datamover", "serve", "--portal", f"127.0.0.1:{port}", "--iqn", IQN,
                                        "--lun", images[0], "--lun", images[1]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # printed once listening
        assert f"on 127.0.0.1:{port}" in line, line + proc.stderr.read() if proc.poll() is not None else line
        out = subprocess.run(["iscsi-ls", "-s", f"iscsi://127.0.0.1:{port}"], capture_output=True, text=True,
                             timeout=60).stdout
        assert f"Target:{IQN}" in out and "Lun:0" in out and "Lun:1" in out
        os.kill(proc.pid, signal.SIGUSR1)  # log counters, keep running
        # SIGTERM only once SIGUSR1 is answered: sent back to back, the two may reach
        # different threads and SIGTERM be handled first, leaving SIGUSR1 to a closed loop
        lines = queue.SimpleQueue()
        reader = threading.Thread(target=lambda: [lines.put(l) for l in proc.stderr], daemon=True)
        reader.start()
        seen = []
        while not any("counters" in l for l in seen):
            seen.append(lines.get(timeout=30))
        assert proc.poll() is None, "SIGUSR1 stopped the mover"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    reader.join(timeout=30)  # stderr is at its end once the process has exited
    while not lines.empty():
        seen.append(lines.get())
    err = "".join(seen)
    assert err.count("counters") == 2 and "'commands':" in err and "Traceback" not in err, err


def test_bad_config_is_one_line_error_and_exit_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("target: iqn.2026-11.org.x:t\nluns: [{id: 0, path: nowhere.img}]\n")
    r = subprocess.run(_serverfree("datamover", "serve", "--config", str(cfg)), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("serverfree: error:") and "nowhere.img" in lines[0]
