"""A crash mid-backup on the real lab through the backup server: the client SIGKILLed, the server SIGKILLed.

The client is ``serverfree backup image`` (its own process) against
``serverfree server``.  SIGKILLed at a seeded random moment after its pending
object appears: the server ends the session and abandons the object; nothing is
listed but complete objects, and the next backup completes and restores
identical.  The server SIGKILLed while the mover holds in the middle of its
server-free copy: the client fails with one line; started again, the server
sweeps the pending object (``ANR1341I``) and gives its space back once
(``ANR1342I``); the client's retry succeeds and restores identical (ntfs-3g).
"""
from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest

from tests.fixtures.lab_server import LabServer
from tests.fixtures.sanlab_volume import judge


@pytest.fixture(scope="module")
def server(sanlab, tmp_path_factory):
    srv = LabServer(sanlab, tmp_path_factory.mktemp("crash-server"), mover_timeout=5.0).start()
    try:
        yield srv
    finally:
        srv.stop()


def _wait_pending(srv: LabServer, proc, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while "pending" not in srv.states().values():
        assert proc.poll() is None, f"the client ended before it was killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "no pending object appeared"
        time.sleep(0.01)


def _restores_identical(sanlab, srv: LabServer, **kw) -> dict:
    r = srv.restore(**kw)
    assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-1000:]
    assert judge(sanlab.restore_img, sanlab.volume.files) == []
    return json.loads(r.stdout)


def test_client_killed_mid_backup_leaves_nothing_restorable(sanlab, server):
    seed = int(os.environ.get("SANLAB_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"client crash seed {seed}")
    delay = random.Random(seed).uniform(0.0, 0.3)
    before = set(server.states())
    # LAN-free: the client moves the data itself, so killing it stops the data
    proc = server.popen("backup", "image", "E:", "--json", "-enableserverfree=no")
    try:
        _wait_pending(server, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, _ = proc.communicate(timeout=30)
        print(f"client killed {delay:.2f} s after its pending object appeared; it had reported: {out or 'nothing'}")
    deadline = time.monotonic() + 30  # the server sees the session end and abandons the object
    while "pending" in server.states().values() and time.monotonic() < deadline:
        time.sleep(0.05)
    states = {i: s for i, s in server.states().items() if i not in before}
    # killed before its commit: abandoned, nothing listed; killed after it (a fast job): one complete object
    assert list(states.values()) in (["abandoned"], ["active"]), (seed, states)
    listed = server.query("-inactive")
    assert {o["id"] for o in listed} == {i for i, s in server.states().items() if s in ("active", "inactive")}
    if list(states.values()) == ["abandoned"]:
        assert "session ended before the object was committed" in server.actlog(), seed
    # the next backup completes, is the one listed, and restores identical
    res = server.backup()
    assert res.returncode == 0, res.stdout[-1000:] + res.stderr[-1000:]
    new = json.loads(res.stdout)["object_id"]
    assert [o["id"] for o in server.query()] == [new]
    _restores_identical(sanlab, server, serverfree=False)


def _counts(srv: LabServer) -> tuple[int, int]:
    log = srv.actlog()
    return log.count("ANR1341I"), log.count("ANR1342I")


def test_server_killed_mid_copy_then_started_again(sanlab, server):
    swept, reclaimed = _counts(server)
    used = server.volume_used_mb()
    mark = (sanlab.workdir / "mover.log").stat().st_size
    sanlab.start_mover([f"stall=60s@bytes={8 << 20}"])  # the mover holds in the middle of the server's copy
    proc = server.popen("backup", "image", "E:", "--json")
    try:
        deadline = time.monotonic() + 60
        while "fault injected" not in (sanlab.workdir / "mover.log").read_bytes()[mark:].decode(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        assert "pending" in server.states().values()
        server.kill()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        sanlab.start_mover()
    assert proc.returncode == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "pending" in server.states().values()
    server.start()
    assert "pending" not in server.states().values()
    assert _counts(server) == (swept + 1, reclaimed + 1), server.actlog()[-2000:]  # swept, reclaimed once
    assert server.volume_used_mb() == used  # the pending object's space is free again (QUERY VOLUME)
    listed = len(server.query("-inactive"))
    assert server.occupancy_objects() == listed  # QUERY OCCUPANCY counts only complete objects
    res = server.backup()  # the client's retry
    assert res.returncode == 0, res.stdout[-1000:] + res.stderr[-1000:]
    assert json.loads(res.stdout)["path_used"] == "server-free"
    _restores_identical(sanlab, server)
    assert server.occupancy_objects() == listed + 1
    grown = server.volume_used_mb()
    assert grown > used
    server.kill()
    server.start()  # a second start sweeps and reclaims nothing more
    assert _counts(server) == (swept + 1, reclaimed + 1), server.actlog()[-2000:]
    assert server.volume_used_mb() == grown
